# SPDX-License-Identifier: GPL-3.0-or-later
"""Position-resolved TEM-EELS: Li-K profile along a line with error bars, and layer widths.

A position-resolved TEM-EELS image (Shimoyamada, Yamamoto et al. 2015) has
one axis of energy loss and one of position along a line across an interface.
Each position is a spectrum, so the Li-K weight per position comes from the
same Poisson MLLS as a spectrum image (:func:`ionscope.eels.mlls`), or,
without references, from the background-subtracted counts in a Li-K window.
The width of a Li-rich layer is then fitted with error-function edges (the
interface roughness and probe blur make the edges Gaussian-smoothed steps),
weighted by the profile's standard errors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataValidationError
from ..io import accepts_data
from . import _common

LI_WINDOW = (54.0, 70.0)
PRE_EDGE = (40.0, 52.0)


@accepts_data("linescan")
def li_profile(linescan: Any, *, references: Any = None, component: str = "Li", fit_range=None,
               window=LI_WINDOW, pre_edge=PRE_EDGE, energy: Any = None, plural_scattering: str | None = "auto",
               implausible: str = "raise"):
    """Li-K intensity along the line, with standard errors.

    Parameters
    ----------
    linescan : xarray.DataArray or array_like
        ``(position, energy)`` counts (plain arrays: energy last, need ``energy=``).
    references : xarray.DataArray, optional
        Edge references (component, energy). With them the Li weight is the
        Poisson MLLS weight of ``component`` with a per-position power-law
        background over ``fit_range`` (default: the whole axis).
    component : str
        Which reference is Li.
    window, pre_edge : (float, float)
        Without references: Li-K integration window and power-law background
        window (eV); counts are summed after background subtraction and the
        error propagates the Poisson counts and the background fit covariance.
    energy : array_like, optional
    plural_scattering : {"auto", None, "fourier-log", "convolve"}
        For line scans recorded with their zero-loss peak (real ones): with
        ``references`` passed to :func:`mlls` (weights in single-scattering
        counts, not mirroring thickness; unclipped so that profiles average
        correctly; ``fit_range`` then defaults to 45 eV – the end of the axis);
        without, the window is integrated on each position's Fourier-log
        deconvolved spectrum with the pre-edge power law fitted there, and σ
        propagated exactly through the deconvolution. ``"auto"`` (default):
        ``"fourier-log"`` when the energy axis holds a zero-loss peak, else None.
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN results at those pixels and a warning.

    Returns
    -------
    xarray.Dataset
        ``Li`` and ``Li_std`` over ``position`` (and any other leading dims),
        the names ``mlls``/``limap`` give the Li map; also under the older
        names ``li`` and ``li_std`` (the same arrays), which scripts read.

    References
    ----------
    .. [1] A. Shimoyamada, K. Yamamoto et al., Microscopy 64 (2015) 401,
       doi:10.1093/jmicro/dfv045.
    .. [2] Y. Nomura et al., Angew. Chem. Int. Ed. 58 (2019) 5292,
       doi:10.1002/anie.201814669.

    Examples
    --------
    >>> from ionscope.simulate import tem_eels_linescan
    >>> data, truth = tem_eels_linescan(n_positions=40, energy_step=0.5)
    >>> prof = li_profile(data, references=truth.references)
    >>> prof.li.dims
    ('position',)
    """
    import xarray as xr

    da = _common.spectra(linescan, energy=energy, name="linescan")
    e = np.asarray(da.coords["energy"].values, float)
    if plural_scattering == "auto":
        plural_scattering = "fourier-log" if e[0] < 0 < e[-1] else None
    if plural_scattering not in (None, "fourier-log", "convolve"):
        raise DataValidationError(
            f"plural_scattering: expected 'auto', None, 'fourier-log' or 'convolve', got {plural_scattering!r}")
    from . import _plausible

    # raw counts (with or without their zero-loss peak): the plausibility rule
    da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(linescan, "linescan"))
    if references is None and plural_scattering is not None:
        return _window_ssd(da, e, window, pre_edge)
    if references is not None:
        from ._mlls import mlls

        rng = fit_range if fit_range is not None else (max(e[0], 45.0) if plural_scattering else e[0], e[-1])
        if plural_scattering is None and rng[0] <= 0:
            raise DataValidationError(
                f"fit_range starts at {rng[0]:g} eV: a line scan recorded with its zero-loss peak needs "
                "plural_scattering='fourier-log' (or 'auto'), or a fit_range above 0 eV")
        if plural_scattering is None:
            res = mlls(da, references, fit_range=rng)
        else:
            res = mlls(da, references, fit_range=rng, plural_scattering=plural_scattering, nonnegative=False)
        if component not in res:
            raise DataValidationError(f"component={component!r} is not among the references {res.attrs['components']}")
        out = xr.Dataset({"li": res[component], "li_std": res[f"{component}_std"], "chi2": res["chi2"]})
        out.attrs = {"method": "mlls", "component": component, "plural_scattering": str(plural_scattering)}
        return _with_li_names(out)
    from ._background import fit_background

    ia = _common.window(e, window, name="window")
    fit = fit_background(da, fit_range=pre_edge)
    if e[_common.window(e, pre_edge, name="pre_edge")[-1]] >= e[ia[0]]:
        raise DataValidationError(f"pre_edge={tuple(pre_edge)} must end below window={tuple(window)}")
    lnx = xr.DataArray(np.log(e[ia] / fit.attrs["e0_ev"]), dims="energy")
    g = np.exp(-fit.exponent * lnx)
    counts = da.isel(energy=ia)
    s = counts.sum("energy") - fit.amplitude * g.sum("energy")
    # delta method: ∂bg/∂A = Σg, ∂bg/∂r = −A Σ g·ln x
    dA = g.sum("energy")
    dr = -fit.amplitude * (g * lnx).sum("energy")
    var_bg = dA**2 * fit.amplitude_std**2 + dr**2 * fit.exponent_std**2 + 2 * dA * dr * fit.amplitude_exponent_cov
    var = counts.sum("energy").clip(min=0) + var_bg
    out = xr.Dataset({"li": s, "li_std": np.sqrt(var)})
    out.attrs = {"method": "window", "window_ev": list(map(float, window))}
    return _with_li_names(out)


def _with_li_names(out):
    """``Li``/``Li_std`` (the Li map's name everywhere else) beside ``li``/``li_std`` (kept: scripts read them)."""
    out["Li"] = out["li"].copy(deep=False)
    out["Li_std"] = out["li_std"].copy(deep=False)
    for old, new in (("li", "Li"), ("li_std", "Li_std")):
        out[old].attrs = {**out[old].attrs, "alias_of": new}
    return out


def _window_ssd(da, e, window, pre_edge):
    """Reference-free profile on the single-scattering distribution: window sum minus the pre-edge power law."""
    import xarray as xr

    from ..data import apply_kernel
    from . import _lowloss, _ssdfit
    from ._kernels import powerlaw_basis
    from ._sasb_ssd import _kernel

    if not (e[0] < 0 < e[-1]):
        raise DataValidationError("linescan: plural_scattering needs spectra recorded with their zero-loss peak")
    _lowloss._check_equal_steps(e, "linescan energy")
    ia = _common.window(e, window, name="window")
    pre = _common.window(e, pre_edge, name="pre_edge", min_channels=4)
    if e[pre[-1]] >= e[ia[0]]:
        raise DataValidationError(f"pre_edge={tuple(pre_edge)} must end below window={tuple(window)}")
    if e[pre[0]] <= 0:
        raise DataValidationError("pre_edge: must start above 0 eV for a power law")
    fw = _lowloss._resolution(_lowloss._probe(da), e, None)
    ch = np.union1d(pre, ia)
    B = powerlaw_basis(e[ch] / e[pre[0]], (2.0, 4.0))
    inw = np.isin(ch, ia)
    L1 = inw[None, :].astype(float)
    L2 = -B[inw].sum(axis=0)[None, :]
    out = apply_kernel(_kernel, da, input_core_dims=[["energy"]], output_core_dims=[["stat"]],
                       output_sizes={"stat": _ssdfit.n_outputs(1)}, output_dtypes=[np.float64],
                       kwargs=dict(energy=e, channels=ch, fit_mask=np.isin(ch, pre), X=B, L1=L1, L2=L2,
                                   resolution_fwhm=fw))
    vals, var, _, chi2, thick, i0 = _ssdfit.unpack(out.data, 1)
    lead = out.dims[:-1]
    coords = {k: v for k, v in out.coords.items() if "stat" not in v.dims}
    ds = xr.Dataset({"li": (lead, vals[..., 0], {"long_name": "Li-K window, single scattering, background removed",
                                                 "units": "single-scattering counts"}),
                     "li_std": (lead, np.sqrt(np.maximum(var[..., 0], 0)),
                                {"long_name": "standard error (propagated through the deconvolution)"}),
                     "thickness": (lead, thick, {"long_name": "t/λ (log-ratio)", "units": "1"})}, coords=coords)
    ds.attrs = {"method": "window", "window_ev": list(map(float, window)), "plural_scattering": "fourier-log"}
    return ds


def _edge(x, centre, sigma):
    from scipy.special import erf

    return 0.5 * (1.0 + erf((x - centre) / (np.sqrt(2.0) * np.maximum(np.abs(sigma), 1e-6))))


def _profile_arrays(profile, *, std, position):
    """``(x, y, σ, std)`` of a 1-D profile (Dataset, DataArray or array), finite points with σ > 0 only.

    ``std`` comes back as given, or as the Dataset's ``Li_std``/``li_std`` when it had one (None: unweighted).
    """
    import xarray as xr

    if isinstance(profile, xr.Dataset):
        main = "Li" if "Li" in profile else "li"
        if std is None and f"{main}_std" in profile:
            std = profile[f"{main}_std"]
        profile = profile[main]
    if isinstance(profile, xr.DataArray):
        if profile.ndim != 1:
            raise DataValidationError(f"profile: expected 1-D, got dims {profile.dims}")
        dim = profile.dims[0]
        x = np.asarray(profile.coords[dim].values if dim in profile.coords else np.arange(profile.size), float)
        y = np.asarray(profile.values, float)
    else:
        y = np.asarray(profile, float).ravel()
        x = np.arange(y.size, dtype=float) if position is None else np.asarray(position, float).ravel()
    if x.size != y.size or y.size < 8:
        raise DataValidationError(f"profile: needs ≥ 8 points with matching positions, got {y.size}/{x.size}")
    s = np.ones_like(y) if std is None else np.asarray(std, float).ravel()
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    return x[ok], y[ok], s[ok], std


@accepts_data("profile", keep_dataset=("profile",))
def layer_width(profile: Any, *, std: Any = None, kind: str = "enhancement", position: Any = None,
                interface: float | None = None):
    """Width of a layer in a profile, with its standard error.

    Parameters
    ----------
    profile : xarray.DataArray, xarray.Dataset or array_like
        1-D profile over ``position`` (or ``y``/``x``); a Dataset from
        :func:`li_profile` supplies ``li`` and ``li_std``.
    std : array_like, optional
        Standard errors of the profile (weights of the fit); default uniform.
    kind : {"enhancement", "step"}
        ``"enhancement"``: a layer of raised intensity just beyond an
        interface, ``c·E(x)·(1 + a·L(x))`` with ``E`` a rising edge at the
        interface ``x0`` and ``L`` a falling edge at ``x0 + width`` (Li-rich
        space-charge layer). ``"step"``: ``c + a·½·erfc((x − x0 − width)/(√2 s))``,
        a layer that starts at the interface ``x0`` (default the first position
        minus half a step, i.e. the image edge) — e.g. a Co3O4 fraction profile.
    position : array_like, optional
        Positions (nm) for a plain-array profile.
    interface : float, optional
        Fixed interface position for ``kind="step"``.

    Returns
    -------
    dict
        ``width_nm``, ``width_std_nm``, ``interface_nm`` (and its std),
        ``amplitude`` (enhancement ``a`` or step height), ``baseline``, ``fit`` (the model curve),
        ``reduced_chi2``, and ``problems``: why the width should not be read as a
        measured layer (empty when it can) — no enhancement found (``a`` ≤ 0, on
        its bound −1: a Li-poor layer), an amplitude within 2σ of zero, a width
        on a bound of the fit, or a reduced χ² far from 1 (with ``std`` given);
        for ``"enhancement"`` also a layer that lowers χ² by less than 25 against
        no layer ("layer not detected") or a width whose σ exceeds 25 % of it
        ("width not resolved"); ``resolved`` is True when ``problems`` is empty.
        ``"enhancement"`` also returns ``width_interval_nm`` and
        ``width_interval95_nm`` (central 68 % and 95 % intervals of the width's
        marginal likelihood, interface and edge widths summed over) and
        ``dchi2_no_layer``. ``width_std_nm`` is the larger of the curvature σ and
        half the 68 % interval: the χ² of two edge positions is
        far from parabolic, and the curvature alone was 2–8× too small.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erfc
    >>> x = np.arange(0.0, 60.0, 0.5)
    >>> f = 0.1 + 0.5 * 0.5 * erfc((x - 20.0) / (np.sqrt(2) * 1.0))
    >>> round(layer_width(f, position=x, kind="step", interface=0.0)["width_nm"], 6)
    20.0
    """
    from scipy.optimize import curve_fit

    x, y, s, std = _profile_arrays(profile, std=std, position=position)
    step = float(np.median(np.diff(x)))
    span = float(x[-1] - x[0])
    # starting values from a median-smoothed copy, so that single noisy points do not mislead them
    from scipy.ndimage import median_filter

    ys = median_filter(y, size=min(9, max(3, y.size // 20) | 1), mode="nearest")
    bounds = (-np.inf, np.inf)
    if kind == "enhancement":
        far = np.median(y[-max(3, y.size // 4):])
        if far <= 0:
            raise DataValidationError("profile: the far (bulk) end must be positive for kind='enhancement'")
        # edges narrower than half a sample are unresolvable: below that the χ² is flat in the edge
        # position between samples and its curvature (hence σ) meaningless (the demo reported 7.6 ± 0.0 nm)
        s_lo = 0.5 * step
        bounds = ([-np.inf, -1.0, x[0], 0.0, s_lo, s_lo], [np.inf, np.inf, x[-1], span, 0.25 * span, 0.25 * span])

        def model(xx, c, a, xi, w, s1, s2):
            return c * _edge(xx, xi, s1) * (1.0 + a * _edge(-xx, -(xi + w), s2))

        # start from the global optimum over all (interface, far edge) pairs on the sample grid
        # (the two amplitudes are linear and solved exactly per pair): at a Li signal-to-noise of
        # ~1.5 per position the median-filter heuristics below found a local optimum (width 7.6 or
        # 0.6 nm for a true 13 nm on the realistic simulator)
        g = _grid_enhancement(x, y, s, max(step, s_lo))
        post = None
        if g is not None:
            p0 = [g[0], g[1], g[2], max(g[3], step), step, step]
            from ._layer_post import width_posterior

            # the width's marginal likelihood on a finer grid (edge widths free too): its best point is a
            # better start than the sample grid (a local optimum 2 nm off was seen at 8000 counts/channel)
            post = width_posterior(x, y, s, g[2], step, scale=1.0 if std is not None else "auto")
            xi_b, w_b, s1_b, s2_b = post["best"]
            c_b, a_b = post["amplitudes"]
            if c_b > 0 and a_b > -1:
                p0 = [c_b, a_b, xi_b, w_b, max(s1_b, s_lo), max(s2_b, s_lo)]
        else:
            x0 = float(x[np.argmax(ys > 0.5 * far)])
            a0 = max(float(ys.max() / far - 1.0), 0.05)
            above = np.flatnonzero((x > x0) & (ys < far * (1 + 0.5 * a0)))
            w0 = float(x[above[0]] - x0) if above.size else 5 * step
            p0 = [far, a0, x0, max(w0, 2 * step), step, step]
    elif kind == "step":
        xi = (x[0] - 0.5 * step) if interface is None else float(interface)
        base = float(np.median(y[-max(3, y.size // 4):]))
        top = float(np.median(y[: max(2, y.size // 10)]))
        half = np.flatnonzero(np.abs(ys - base) < 0.5 * abs(top - base))
        w0 = float(x[half[0]] - xi) if half.size else float(x[y.size // 2] - xi)

        def model(xx, c, a, w, s1):
            return c + a * (1.0 - _edge(xx, xi + w, s1))

        g = _grid_step(x, y, s, xi, step)
        p0 = [base, top - base, max(w0, step), step] if g is None else [g[0], g[1], max(g[2], step), step]
        bounds = ([-np.inf, -np.inf, 0.0, 0.5 * step], [np.inf, np.inf, span + step, span])
    else:
        raise DataValidationError(f"kind: expected 'enhancement' or 'step', got {kind!r}")
    import warnings

    p0 = np.clip(p0, np.asarray(bounds[0], float) + 1e-9, np.asarray(bounds[1], float) - 1e-9)
    try:
        popt, pcov = curve_fit(model, x, y, p0=p0, sigma=s, absolute_sigma=std is not None, bounds=bounds,
                               max_nfev=20000)
    except RuntimeError as exc:
        # report the global grid optimum, with unknown errors, rather than nothing
        warnings.warn(f"layer_width: the layer model did not converge ({exc}); returning the grid estimate "
                      "with unknown (NaN) errors — is there a layer?", RuntimeWarning, stacklevel=2)
        popt, pcov = np.asarray(p0, float), np.full((len(p0), len(p0)), np.nan)
    perr = np.sqrt(np.maximum(np.diag(pcov), 0))
    n_main = 4 if kind == "enhancement" else 3
    if np.all(np.isfinite(pcov)) and (not np.all(np.isfinite(perr[:n_main])) or np.any(perr[:n_main] > 10 * span)):
        # An edge sharper than the sampling makes its own width unidentifiable and the
        # joint covariance singular; the errors of the other parameters are then
        # taken with the edge widths held at their fitted values.
        fixed = popt[n_main:]

        def sub(xx, *p):
            return model(xx, *p, *fixed)

        _, pc = curve_fit(sub, x, y, p0=popt[:n_main], sigma=s, absolute_sigma=std is not None,
                          bounds=(np.asarray(bounds[0][:n_main]), np.asarray(bounds[1][:n_main])), max_nfev=20000)
        perr[:n_main] = np.sqrt(np.maximum(np.diag(pc), 0))
    # a zero or undefined error means the parameter sat on a bound: say "unknown", not "exact"
    tiny = 1e-6 * max(span, 1e-300)
    perr = np.where(np.isfinite(perr) & (perr > tiny), perr, np.nan)
    i_w = 3 if kind == "enhancement" else 2
    if np.all(np.isfinite(pcov)) and not np.isfinite(perr[i_w]):
        warnings.warn("layer_width: the width's standard error is zero or undefined (a parameter at its bound, "
                      "or an edge sharper than the sampling); width_std_nm is NaN", RuntimeWarning, stacklevel=2)
    _warn_if_no_layer(kind, popt, perr, bounds, n_main, span)
    fit = model(x, *popt)
    chi2 = float(np.sum(((y - fit) / s) ** 2) / max(y.size - len(popt), 1))
    if kind == "enhancement":
        c, a, xi, w = popt[:4]
        out = {"width_nm": float(w), "width_std_nm": float(perr[3]), "interface_nm": float(xi),
               "interface_std_nm": float(perr[2]), "amplitude": float(a), "amplitude_std": float(perr[1]),
               "baseline": float(c), "fit": fit, "reduced_chi2": chi2}
        if post is not None:
            _with_posterior(out, post)
    else:
        c, a, w = popt[:3]
        out = {"width_nm": float(w), "width_std_nm": float(perr[2]), "interface_nm": float(xi),
               "interface_std_nm": 0.0, "amplitude": float(a), "amplitude_std": float(perr[1]),
               "baseline": float(c), "fit": fit, "reduced_chi2": chi2}
    out["problems"] = _layer_problems(out, kind, weighted=std is not None)
    new = out["problems"][-1:] if out["problems"] and out["problems"][-1].startswith(("layer not", "width not")) else []
    if new:
        warnings.warn(f"layer_width: {new[0]}", RuntimeWarning, stacklevel=2)
    out["resolved"] = not out["problems"]
    return out

def _with_posterior(out: dict, post: dict) -> None:
    """Widen the width's σ to the marginal likelihood's and add its intervals (in place).

    The χ² is far from parabolic in the width (a change-point model): the curvature σ was 2–8× too
    small over seeds of the realistic simulator. σ is the larger of the curvature and half the
    marginal likelihood's central 68 % interval (interface and edge widths summed over).
    """
    q = post["quantiles"]
    sig = 0.5 * (q[3] - q[1])
    curv = out["width_std_nm"]
    out["width_std_nm"] = float(max(curv, sig)) if np.isfinite(curv) else float(sig)
    out["width_interval_nm"] = (float(q[1]), float(q[3]))
    out["width_interval95_nm"] = (float(q[0]), float(q[4]))
    out["dchi2_no_layer"] = post["dchi2_no_layer"]


def _warn_if_no_layer(kind: str, popt, perr, bounds, n_main: int, span: float) -> None:
    """Warn when a main parameter sits at its bound or the layer's amplitude is within 2σ of 0."""
    import warnings

    lo_b, hi_b = np.asarray(bounds[0], float), np.asarray(bounds[1], float)
    at_bound = [i for i in range(n_main) if np.isfinite(lo_b[i]) and popt[i] - lo_b[i] < 1e-6 * (span + 1)
                or np.isfinite(hi_b[i]) and hi_b[i] - popt[i] < 1e-6 * (span + 1)]
    if at_bound:
        names = (["baseline", "amplitude", "interface", "width"] if kind == "enhancement"
                 else ["baseline", "amplitude", "width"])
        warnings.warn(f"layer_width: {', '.join(names[i] for i in at_bound)} at the limit of its range: the "
                      "profile does not show the layer model (is there a layer?)", RuntimeWarning, stacklevel=3)
    elif np.isfinite(perr[1]) and abs(popt[1]) < 2.0 * perr[1]:
        warnings.warn(f"layer_width: the layer's amplitude {popt[1]:.3g} ± {perr[1]:.2g} is within 2σ of 0: "
                      "no significant layer; the width is not meaningful", RuntimeWarning, stacklevel=3)



def _layer_problems(r: dict, kind: str, *, weighted: bool) -> list[str]:
    """Why a layer fit's width should not be read as a measured layer (empty when it can)."""
    a, sa, sw = r["amplitude"], r["amplitude_std"], r["width_std_nm"]
    out = []
    if kind == "enhancement" and not a > 0:
        out.append(f"no Li-rich layer found: the fitted enhancement is {a:+.2f} (a Li-poor layer); width undefined")
    elif not (np.isfinite(sa) and abs(a) > 2 * sa):
        out.append(f"no significant layer: amplitude {a:.3g} ± {sa:.2g} (< 2σ); width undefined")
    elif not (np.isfinite(sw) and sw > 0):
        out.append("the layer width sits on a bound of the fit (no σ); width undefined")
    if weighted and np.isfinite(r["reduced_chi2"]) and not 0.5 <= r["reduced_chi2"] <= 2.0:
        out.append(f"reduced χ² = {r['reduced_chi2']:.3g}, far from 1: the σ given do not describe the scatter")
    if out or "dchi2_no_layer" not in r:
        return out
    from ._layer_post import DETECTION_DCHI2, RESOLVED_FRACTION

    lo, hi = r["width_interval95_nm"]
    if r["dchi2_no_layer"] < DETECTION_DCHI2:
        out.append(f"layer not detected: it lowers χ² by only {r['dchi2_no_layer']:.1f} (< {DETECTION_DCHI2:g}) "
                   f"against no layer; width not resolved (95 % interval {lo:.1f}–{hi:.1f} nm)")
    elif not r["width_std_nm"] <= RESOLVED_FRACTION * r["width_nm"]:
        out.append(f"width not resolved: σ = {r['width_std_nm']:.2g} nm is over {RESOLVED_FRACTION:.0%} of the "
                   f"width (95 % interval {lo:.1f}–{hi:.1f} nm)")
    return out




def _grid_enhancement(x, y, s, sig):
    """Global least-squares start for the enhancement model: (c, a, interface, width) or None.

    Every pair (interface at a sample, far edge at a later sample) with edges of
    Gaussian width ``sig``; the model is linear in ``c`` and ``c·a`` for a fixed
    pair, so each pair's χ² is exact (2×2 normal equations, all far edges at once).
    """
    w8 = 1.0 / s**2
    E = _edge(x[None, :], x[:, None], sig)  # rising edge at each candidate
    L = _edge(-x[None, :], -x[:, None], sig)  # falling edge at each candidate
    yy = float(np.sum(w8 * y * y))
    best, arg = np.inf, None
    for i in range(x.size - 2):
        e = E[i]
        we2 = w8 * e * e
        wey = w8 * e * y
        Lf = L[i + 1:]
        g11, b1 = float(we2.sum()), float(wey.sum())
        g12, g22, b2 = Lf @ we2, (Lf * Lf) @ we2, Lf @ wey
        det = g11 * g22 - g12**2
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (g22 * b1 - g12 * b2) / det
            d = (g11 * b2 - g12 * b1) / det
            chi = yy - (c * b1 + d * b2)
        ok = (det > 1e-12 * g11 * np.maximum(g22, 1e-300)) & (c > 0) & (d >= -c)
        if not ok.any():
            continue
        j = int(np.argmin(np.where(ok, chi, np.inf)))
        if chi[j] < best:
            best, arg = float(chi[j]), (float(c[j]), float(d[j] / c[j]), float(x[i]), float(x[i + 1 + j] - x[i]))
    return arg


def _grid_step(x, y, s, xi, step):
    """Global least-squares start for the step model: (c, a, width) or None (far edge at each sample)."""
    w8 = 1.0 / s**2
    best, arg = np.inf, None
    for xf in x[x > xi]:
        f = 1.0 - _edge(x, xf, step)
        X = np.column_stack([np.ones_like(x), f])
        G = X.T @ (X * w8[:, None])
        if np.linalg.cond(G) > 1e12:
            continue
        coef = np.linalg.solve(G, X.T @ (w8 * y))
        chi = float(np.sum(w8 * (y - X @ coef) ** 2))
        if chi < best:
            best, arg = chi, (float(coef[0]), float(coef[1]), float(xf - xi))
    return arg
