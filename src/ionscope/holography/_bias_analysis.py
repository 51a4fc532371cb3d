# SPDX-License-Identifier: GPL-3.0-or-later
"""What a bias series means: asymmetry per polarity, relaxation times after bias steps, leakage per volt.

Functions of the Dataset :func:`ionscope.holography.bias_series` returns
(no holograms, no reconstruction): they summarise its per-frame steps and
leakage ramps with uncertainties.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError
from ..io import accepts_data


def _check_series(series, need):
    if not (hasattr(series, "data_vars") and all(v in series for v in need)):
        raise DataValidationError(f"series: expected the Dataset returned by bias_series (with {', '.join(need)})")


def _zero_floor(series, sd):
    """Variance every frame shares through the zero-bias state (mean of n₀ frames): σ²/(n₀ + 1)."""
    n0 = len(series.attrs.get("zero_bias_frames", [])) or 1
    return float(np.nanmedian(sd ** 2)) / (n0 + 1)


@accepts_data("series", keep_dataset=("series",))
def asymmetry_summary(series, *, min_bias_v=None):
    """Asymmetry between the positive and negative interface, per bias polarity and overall, with σ.

    Parameters
    ----------
    series : Dataset
        Output of :func:`bias_series` (two interfaces).
    min_bias_v : float, optional
        Use time points with |bias| ≥ this (default half the largest |bias|).

    Returns
    -------
    Dataset
        Along ``polarity`` (``positive``, ``negative``, ``all``: the sign of
        the bias): ``asymmetry`` and ``asymmetry_std`` (weighted mean of the
        per-frame (|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|) over the settled frames — the
        later half of each stretch of constant bias, after the layers have
        relaxed; its σ includes the error all frames share through the
        zero-bias state), ``step_positive_v``, ``step_negative_v`` (mean |ΔV|
        of the interface at the positive and at the negative electrode, settled
        frames) with ``*_std``, ``sign_fraction`` (all frames of the polarity
        whose asymmetry has the sign of the mean) and ``n_frames``.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.

    Examples
    --------
    >>> from ionscope.holography import bias_series
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    >>> s = asymmetry_summary(bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values))
    >>> [str(p) for p in s.polarity.values], bool(s.asymmetry.sel(polarity="positive") > 0)
    (['positive', 'negative', 'all'], True)
    """
    import xarray as xr

    _check_series(series, ("asymmetry", "asymmetry_std", "bias_v", "step_v", "positive_interface"))
    if series.sizes.get("interface") != 2:
        raise DataValidationError("series: the asymmetry needs exactly two interfaces")
    bias = series["bias_v"].values
    a, sa = series["asymmetry"].values, series["asymmetry_std"].values
    lim = 0.5 * np.nanmax(np.abs(bias)) if min_bias_v is None else float(min_bias_v)
    pos_if = series["positive_interface"].values
    steps, sds = np.abs(series["step_v"].values), series["step_v_std"].values
    # position of each frame within its stretch of constant bias
    stretch = np.concatenate([[0], np.cumsum(np.abs(np.diff(bias)) > 1e-3)])
    settled = np.zeros(bias.size, bool)
    for g in np.unique(stretch):
        members = np.flatnonzero(stretch == g)
        settled[members[members.size // 2:]] = True
    rows = {k: [] for k in ("asymmetry", "asymmetry_std", "step_positive_v", "step_positive_v_std",
                            "step_negative_v", "step_negative_v_std", "sign_fraction", "n_frames")}
    for name, sel in (("positive", bias >= lim), ("negative", bias <= -lim), ("all", np.abs(bias) >= lim)):
        ok = sel & np.isfinite(a) & np.isfinite(sa) & (sa > 0) & (pos_if >= 0)
        n = int(np.count_nonzero(ok))
        rows["n_frames"].append(n)
        if n == 0:
            for k in rows:
                if k != "n_frames":
                    rows[k].append(np.nan)
            continue

        def wmean(v, s):
            w = 1 / s ** 2
            m = float(np.sum(w * v) / np.sum(w))
            chi2 = float(np.sum(w * (v - m) ** 2)) / max(v.size - 1, 1)
            var = max(chi2, 1.0) / float(np.sum(w)) + _zero_floor(series, s)
            return m, math.sqrt(var)

        use = ok & settled if np.any(ok & settled) else ok
        m, s = wmean(a[use], sa[use])
        rows["asymmetry"].append(m)
        rows["asymmetry_std"].append(s)
        rows["sign_fraction"].append(float(np.mean(np.sign(a[ok]) == np.sign(m))))
        # |ΔV| still relaxes after a step: average the settled frames (the later half of
        # each constant-bias stretch), unweighted (σ grows with the step, so 1/σ² weights
        # would favour the small early values)
        idx = np.flatnonzero(ok & settled)
        if idx.size == 0:
            idx = np.flatnonzero(ok)
        for role, col in (("positive", pos_if[idx]), ("negative", 1 - pos_if[idx])):
            v = steps[idx, col]
            var = (np.var(v, ddof=1) / v.size if v.size > 1 else np.nan) + _zero_floor(series, sds[idx, col])
            rows[f"step_{role}_v"].append(float(np.mean(v)))
            rows[f"step_{role}_v_std"].append(math.sqrt(var))
    ds = xr.Dataset({k: ("polarity", np.asarray(v)) for k, v in rows.items()},
                    coords={"polarity": ["positive", "negative", "all"]})
    for k in ("step_positive_v", "step_positive_v_std", "step_negative_v", "step_negative_v_std"):
        ds[k].attrs["units"] = "V"
    ds.attrs = {"min_bias_v": lim}
    return ds


@accepts_data("series", keep_dataset=("series",))
def relaxation_times(series, *, variable="step_v", min_jump_v=None, min_frames=5):
    """Relaxation time of each interface after every bias step: y(t) = y∞ + A·e^{−t/τ}.

    A step is a change of the bias between consecutive time points larger
    than ``min_jump_v``, followed by at least ``min_frames`` time points at a
    constant bias (ramps are skipped). t counts from the last time point
    before the step, so A is the extrapolated change at that point. The fit is
    weighted by ``{variable}_std`` (absolute σ); the uncertainties are scaled
    up by √χ²ᵣ when the scatter exceeds the claimed errors.

    Parameters
    ----------
    series : Dataset
        Output of :func:`bias_series`.
    variable : str
        ``"step_v"`` (default) or ``"width_nm"``.
    min_jump_v : float, optional
        Smallest bias change counted as a step (default 5 % of the largest |bias|, ≥ 10 mV).
    min_frames : int
        Fewest time points after a step to fit (≥ 4).

    Returns
    -------
    Dataset
        Dims ``(step, interface)``: ``tau_s``, ``tau_s_std``, ``final``,
        ``final_std``, ``amplitude``, ``amplitude_std``, ``chi2_reduced``; per
        step ``time_s`` (first time point at the new bias), ``bias_before_v``,
        ``bias_after_v``, ``n_frames``. Fits that fail are NaN.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.

    Examples
    --------
    >>> from ionscope.holography import bias_series
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 200)], seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> tau = relaxation_times(ds)
    >>> tau.tau_s.dims, int(tau.sizes["step"])
    (('step', 'interface'), 1)
    """
    import xarray as xr
    from scipy.optimize import curve_fit

    _check_series(series, (variable, f"{variable}_std", "bias_v"))
    if not (isinstance(min_frames, (int, np.integer)) and min_frames >= 4):
        raise DataValidationError(f"min_frames: expected an integer ≥ 4, got {min_frames!r}")
    bias = series["bias_v"].values
    t = np.asarray(series["time"].values, float)
    y_all, s_all = series[variable].values, series[f"{variable}_std"].values
    jump = max(0.05 * float(np.nanmax(np.abs(bias))), 0.01) if min_jump_v is None else float(min_jump_v)
    changes = np.flatnonzero(np.abs(np.diff(bias)) > jump) + 1
    tol = 0.1 * jump
    segs = []
    for j, k in enumerate(changes):
        end = changes[j + 1] if j + 1 < len(changes) else bias.size
        flat = np.abs(bias[k:end] - bias[k]) <= tol
        stop = k + (int(np.argmin(flat)) if not flat.all() else flat.size)
        if stop - k >= min_frames:
            segs.append((k, stop))
    n_if = y_all.shape[1]
    out = {k: np.full((len(segs), n_if), np.nan) for k in ("tau_s", "tau_s_std", "final", "final_std", "amplitude",
                                                         "amplitude_std", "chi2_reduced")}

    def model(x, y_inf, amp, tau):
        return y_inf + amp * np.exp(-x / tau)

    for si, (k, stop) in enumerate(segs):
        x = t[k:stop] - t[k - 1]
        span = float(x[-1])
        dt = float(np.min(np.diff(t[k - 1:stop])))
        for i in range(n_if):
            y, s = y_all[k:stop, i], s_all[k:stop, i]
            ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
            if np.count_nonzero(ok) < min_frames:
                continue
            xs, ys, ss = x[ok], y[ok], s[ok]
            y_inf0 = float(np.mean(ys[-max(2, ys.size // 4):]))
            tau0 = span / 4
            amp0 = (float(ys[0]) - y_inf0) * math.exp(xs[0] / tau0)
            try:
                popt, pcov = curve_fit(model, xs, ys, p0=[y_inf0, amp0, tau0], sigma=ss, absolute_sigma=True,
                                       bounds=([-np.inf, -np.inf, 0.05 * dt], [np.inf, np.inf, 20 * span]),
                                       maxfev=5000)
            except (RuntimeError, ValueError):
                continue
            chi2 = float(np.sum(((ys - model(xs, *popt)) / ss) ** 2)) / max(ys.size - 3, 1)
            err = np.sqrt(np.clip(np.diag(pcov), 0, None)) * math.sqrt(max(chi2, 1.0))
            out["final"][si, i], out["amplitude"][si, i], out["tau_s"][si, i] = popt
            out["final_std"][si, i], out["amplitude_std"][si, i], out["tau_s_std"][si, i] = err
            out["chi2_reduced"][si, i] = chi2
    unit = "V" if variable.endswith("_v") else "nm"
    ds = xr.Dataset({k: (("step", "interface"), v) for k, v in out.items()},
                    coords={"step": np.arange(len(segs)), "interface": series["interface"].values})
    ds["time_s"] = ("step", np.array([t[k] for k, _ in segs]), {"units": "s"})
    ds["bias_before_v"] = ("step", np.array([bias[k - 1] for k, _ in segs]), {"units": "V"})
    ds["bias_after_v"] = ("step", np.array([bias[k] for k, _ in segs]), {"units": "V"})
    ds["n_frames"] = ("step", np.array([stop - k for k, stop in segs]))
    for k in ("tau_s", "tau_s_std"):
        ds[k].attrs["units"] = "s"
    for k in ("final", "final_std", "amplitude", "amplitude_std"):
        ds[k].attrs["units"] = unit
    if "interface_nm" in series.coords:
        ds = ds.assign_coords(interface_nm=series["interface_nm"])
    ds.attrs = {"variable": variable, "min_jump_v": jump, "model": "y_inf + amplitude*exp(-t/tau)"}
    return ds


@accepts_data("series", keep_dataset=("series",))
def leakage_summary(series, *, unshielded=None):
    """Leakage field per volt of bias, and the fraction a shield removes.

    The leakage gradient is the ``x`` term of the ramp fitted over the vacuum
    in each frame (:func:`bias_series`, rad per half field), regressed on the
    bias (least squares with an offset, σ from the residuals).

    Parameters
    ----------
    series : Dataset
        Output of :func:`bias_series` (e.g. the shielded specimen).
    unshielded : Dataset, optional
        The same for an unshielded specimen (or before the shield was
        grounded): gives the fraction of the leakage field the shield removes.

    Returns
    -------
    dict
        ``gradient_rad_per_v`` and ``gradient_rad_per_v_std``; ``pv_rad_per_v``
        (peak to valley of the fitted ramp over the vacuum, per volt);
        ``removed_fraction_median`` (median per-frame fraction of the vacuum
        leakage removed by the ramp); with ``unshielded``, ``shield_removed_fraction``
        = 1 − gradient/gradient_unshielded and its ``_std``.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.
    M. Beleggia et al., Appl. Phys. Lett. 98 (2011) 243101, doi:10.1063/1.3598468.

    Examples
    --------
    >>> from ionscope.holography import bias_series
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], shield=False, seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> leakage_summary(ds)["gradient_rad_per_v"] > 1.0
    True
    """
    def fit(ds):
        _check_series(ds, ("leakage_ramp", "bias_v", "leakage_pv_rad"))
        b = ds["bias_v"].values
        g = ds["leakage_ramp"].sel(term="x").values
        ok = np.isfinite(g)
        if np.count_nonzero(ok) < 3 or np.ptp(b[ok]) <= 0:
            raise DataValidationError("series: the leakage per volt needs ≥ 3 time points at different biases")
        a = np.stack([np.ones(np.count_nonzero(ok)), b[ok]], axis=1)
        coef, *_ = np.linalg.lstsq(a, g[ok], rcond=None)
        resid = g[ok] - a @ coef
        dof = max(resid.size - 2, 1)
        cov = np.linalg.inv(a.T @ a) * float(np.sum(resid ** 2)) / dof
        pv = ds["leakage_pv_rad"].values
        big = np.abs(b) >= 0.5 * np.max(np.abs(b))
        return float(coef[1]), float(math.sqrt(cov[1, 1])), float(np.nanmedian(pv[big] / np.abs(b[big]))), ds

    g, sg, pv, _ = fit(series)
    out = {"gradient_rad_per_v": g, "gradient_rad_per_v_std": sg, "pv_rad_per_v": pv,
           "removed_fraction_median": float(np.nanmedian(series["leakage_removed_fraction"].values))
           if np.any(np.isfinite(series["leakage_removed_fraction"].values)) else float("nan")}
    if unshielded is not None:
        gu, sgu, _, _ = fit(unshielded)
        if gu == 0:
            raise DataValidationError("unshielded: no leakage gradient measured")
        r = g / gu
        out["shield_removed_fraction"] = 1 - r
        out["shield_removed_fraction_std"] = abs(r) * math.hypot(sg / g if g else 0.0, sgu / gu)
    return out
