# SPDX-License-Identifier: GPL-3.0-or-later
"""The assembly of a bias series: every time point's :class:`~ionscope.holography.BiasFrame` → one Dataset.

What needs the frames together, in time order: the step-fit χ² check (a
frame whose χ² is a spike among its neighbours is skipped), the noise
autocovariance pooled over frames and each frame's step errors recomputed
with it (sandwich covariance), the rule that a step with σ ≈ 0 is not
measured, the asymmetry of the two interfaces, and the fraction of the
leakage removed (its noise floor from the zero-bias frames). The result is
exactly the Dataset :func:`~ionscope.holography.bias_series` returns.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import ShapeMismatchError
from . import _checks, _drift
from ._frame import BiasFrame
from ._steps import apply_errors, recompute_errors

_RAMP_TERMS = {1: ["offset", "x", "y"], 2: ["offset", "x", "y", "xx", "xy", "yy"]}

#: A step smaller than this many σ gets no width or position (NaN).
_MIN_STEP_SIGMAS = 3.0

_STEP_VARS = ("step_v", "step_v_std", "width_nm", "width_nm_std", "position_nm", "position_nm_std", "slope_v_per_nm")
_PER_T = ("leak_rms", "resid_rms", "leak_pv", "leak_inside", "vac_rms")


def assemble_bias_series(plan, frames, *, maps=None):
    """Put a bias series together from its frames: steps with pooled errors, asymmetry, leakage, checks.

    Parameters
    ----------
    plan : BiasPlan
        From :func:`~ionscope.holography.plan_bias_series` (its ``times`` and
        ``bias_v`` are the series'; :meth:`BiasPlan.with_times` for a longer one).
    frames : sequence of BiasFrame, or Dataset
        One per time point of the plan (any order), from
        :func:`~ionscope.holography.bias_frame`; or the Dataset of their
        :meth:`BiasFrame.to_variables` stacked along ``time`` (its maps are not read).
    maps : (phase, potential), optional
        ``(time, y, x)`` maps (numpy or dask, e.g. read lazily from a store)
        used instead of the frames' own; the time points the χ² check skips
        are NaN in the result. Without ``maps`` and without maps in the
        frames, the Dataset has no ``phase``/``potential``.

    Returns
    -------
    Dataset
        As :func:`~ionscope.holography.bias_series`.

    Warns
    -----
    RuntimeWarning
        Time points skipped; steps not measured (σ ≈ 0); drift not measured.

    Raises
    ------
    DataValidationError
        Fewer than ``plan.min_good_fraction`` of the time points usable.

    References
    ----------
    H. White, Econometrica 48 (1980) 817, doi:10.2307/1912934 (the sandwich covariance).

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> from ionscope.holography import plan_bias_series, bias_frame
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 30)], seed=0)
    >>> plan = plan_bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> frames = [bias_frame(plan, holos.isel(time=k), index=k) for k in range(plan.n_time)]
    >>> ds = assemble_bias_series(plan, frames)
    >>> ds.step_v.dims, bool(abs(ds.step_v[-1, 1] - truth.step_v[-1, 1]) < 0.1)
    (('time', 'interface'), True)
    """
    frames = _frame_list(plan, frames)
    got = _collect(plan, frames)
    n_t, skipped = plan.n_time, got["skipped"]
    if plan.drift == "auto":
        _drift.warn_failed(int(np.count_nonzero(np.isnan(got["drift_nm"][:, 0] if not skipped else np.delete(
            got["drift_nm"][:, 0], sorted(skipped))))), n_t)
    if skipped:
        listed = "; ".join(f"{k} (t = {plan.times[k]:g} s): {why}" for k, why in sorted(skipped.items())[:3])
        warnings.warn(f"bias_series: {len(skipped)} of {n_t} time points skipped (NaN maps and steps; "
                      f"frame_reason says why): {listed}" + (" ..." if len(skipped) > 3 else ""),
                      RuntimeWarning, stacklevel=2)
    step_fits = got["step_fits"]
    _pool_errors(plan, step_fits, got["gammas"])
    scal, degenerate = _step_table(plan, step_fits)
    reasons = np.array([skipped.get(k, "") for k in range(n_t)], dtype=object)
    if degenerate:
        for k, which in degenerate.items():
            step_fits[k] = None  # no asymmetry from a step that was not measured
            reasons[k] = "; ".join(r for r in (reasons[k], f"step at interface(s) {which} not measured: the fit's σ "
                                                            f"is 0, not finite or < 1e-3 × the series' median (no "
                                                            f"signal, or the zero-bias reference itself); reported "
                                                            f"as NaN") if r)
        warnings.warn(f"bias_series: {len(degenerate)} time point(s) have a step fit with σ = 0, NaN or ~0 (no "
                      f"signal), reported as NaN (frame_reason says which): time indices {sorted(degenerate)[:10]}",
                      RuntimeWarning, stacklevel=2)
    if maps is not None:
        maps = _masked(maps, skipped, n_t)
    elif got["phase"] is not None:
        maps = (np.stack(got["phase"]), np.stack(got["potential"]))
    return _dataset(plan, got, scal, reasons, _asymmetry(plan, step_fits), _leakage_removed(plan, got["per_t"]),
                    maps)


def _frame_list(plan, frames) -> list:
    """The frames as BiasFrames in time order, one per time point of the plan."""
    import xarray as xr

    n_t = plan.n_time
    if isinstance(frames, xr.Dataset):
        if frames.sizes.get("time") != n_t:
            raise ShapeMismatchError(f"frames: {frames.sizes.get('time')} time points, the plan has {n_t}")
        names = [v for v in BiasFrame.layout(plan)[0] if v not in ("phase", "potential")]
        data = {v: np.asarray(frames[v].values) for v in names}
        return [BiasFrame.from_variables(plan, k, {v: data[v][k] for v in names}) for k in range(n_t)]
    frames = sorted(frames, key=lambda f: f.index)
    if [f.index for f in frames] != list(range(n_t)):
        raise ShapeMismatchError(f"frames: expected one frame for each of the plan's {n_t} time points, got "
                                 f"indices {[f.index for f in frames][:10]}")
    return frames


def _collect(plan, frames) -> dict:
    """Every frame through the χ² check, in time order, into per-time arrays."""
    n_t = plan.n_time
    skipped = dict(plan.skipped)  # time index -> why it is not used
    per_t = {k: np.full(n_t, np.nan) for k in _PER_T}
    out = {"skipped": skipped, "per_t": per_t, "coefs": np.full((n_t, plan.n_terms), np.nan),
           "drift_nm": np.full((n_t, 2), np.nan), "drift_sd": np.full((n_t, 2), np.nan), "step_fits": [None] * n_t,
           "gammas": []}
    keep_maps = all(f.phase is not None for f in frames)
    out["phase"], out["potential"] = ([], []) if keep_maps else (None, None)
    judge = _checks.FitJudge(plan.out_shape, plan.n_terms) if plan.frame_checks else None
    for k, r in _checks.judged((f.result() for f in frames), judge):
        if "bad" in r:
            skipped[k] = r["bad"]
            _checks.enough_good(skipped, n_t, plan.min_good_fraction, plan.times)
        out["coefs"][k] = r["coef"]
        out["drift_nm"][k], out["drift_sd"][k] = r["drift"]
        for key in per_t:
            per_t[key][k] = r[key]
        out["step_fits"][k] = r["steps"]
        if r["gamma"] is not None:
            out["gammas"].append(r["gamma"])
        if keep_maps:
            out["phase"].append(r["phase"] if r["phase"] is not None else np.full(plan.out_shape, np.nan, np.float32))
            out["potential"].append(r["potential"] if r["potential"] is not None
                                    else np.full(plan.out_shape, np.nan, np.float32))
    return out


def _pool_errors(plan, step_fits, gammas) -> None:
    """The step errors with the noise correlation pooled over frames; nuisance steps dropped."""
    # the noise's correlation along the profile is the same in every frame (same optics,
    # same zero-bias state, same reconstruction), so it is pooled over frames — one
    # frame's realisation alone gives a noisy correlation length
    if gammas:
        gamma = np.mean(np.stack(gammas), axis=0)
        for st in step_fits:
            if st is not None:
                apply_errors(st, recompute_errors(st, gamma))
    report = plan.reported
    for st in step_fits:
        if st is not None and st.fits and len(st.fits) != report.size:
            # nuisance steps at other boundaries were fitted too: keep the interfaces asked for
            st.fits = [st.fits[i] for i in report]
            st.step_cov = st.step_cov[np.ix_(report, report)]


def _step_table(plan, step_fits):
    """Per (time, interface) steps, widths, positions and slopes; the time points with a σ ≈ 0 step."""
    n_t, n_if = plan.n_time, plan.reported.size
    scal = {k: np.full((n_t, n_if), np.nan) for k in _STEP_VARS}
    floor = _checks.sigma_floor(step_fits, n_if)
    degenerate: dict[int, list] = {}
    for k, st in enumerate(step_fits):
        if st is None:
            continue
        for i, f in enumerate(st.fits):
            if not (np.isfinite(f.step_err) and f.step_err > floor[i]):
                # σ = 0, NaN or ~0 (a profile without noise: the zero-bias reference itself, no signal):
                # nothing measured there; never "0 ± 0 V"
                degenerate.setdefault(k, []).append(i)
                continue
            scal["step_v"][k, i], scal["step_v_std"][k, i] = f.step, f.step_err
            scal["slope_v_per_nm"][k, i] = f.slope
            # a step that is not there has no width or position (the fit leaves them
            # free and their σ meaningless): NaN, not a number that looks measured
            if abs(f.step) >= _MIN_STEP_SIGMAS * f.step_err:
                scal["width_nm"][k, i], scal["width_nm_std"][k, i] = f.width, f.width_err
                scal["position_nm"][k, i], scal["position_nm_std"][k, i] = f.center, f.center_err
    return scal, degenerate


def _asymmetry(plan, step_fits):
    """(|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|) per time point (two interfaces), its σ, and which is ΔV₊."""
    n_t, bias = plan.n_time, plan.bias_v
    asym, asym_sd, pos_if = np.full(n_t, np.nan), np.full(n_t, np.nan), np.full(n_t, -1)
    if plan.reported.size != 2:
        return asym, asym_sd, pos_if
    for k in range(n_t):
        st = step_fits[k]
        if st is None:
            continue
        d = np.array([f.step for f in st.fits])
        total = bias[k] if abs(bias[k]) >= 1e-3 else d[0] + d[1]
        p = 1 if total >= 0 else 0
        pos_if[k] = p
        a_, b_ = abs(d[p]), abs(d[1 - p])
        tot = a_ + b_
        if tot == 0:
            continue
        asym[k] = (a_ - b_) / tot
        # the two steps share the electrolyte's level: their errors are correlated
        grad = np.zeros(2)
        grad[p] = np.sign(d[p]) * 2 * b_ / tot ** 2
        grad[1 - p] = -np.sign(d[1 - p]) * 2 * a_ / tot ** 2
        asym_sd[k] = math.sqrt(max(float(grad @ st.step_cov @ grad), 0.0))
    return asym, asym_sd, pos_if


def _leakage_removed(plan, per_t):
    """Fraction of the leakage removed, with the noise floor measured on the zero-bias frames."""
    # a zero-bias frame is 1/n₀ of ψ₀ and shares that part of its noise with it:
    # var(Δφ) = σ²(1 − 1/n₀) there against σ²(1 + 1/n₀) in every other frame
    n0 = plan.zero_bias.size
    z_rms = per_t["resid_rms"][plan.zero_bias]
    noise2 = float(np.mean(z_rms[np.isfinite(z_rms)] ** 2)) if np.isfinite(z_rms).any() else float("nan")
    noise2 = noise2 * (1 + 1 / n0) / (1 - 1 / n0) if n0 > 1 else noise2
    with np.errstate(invalid="ignore", divide="ignore"):
        before = np.sqrt(np.clip(per_t["leak_rms"] ** 2 - noise2, 0, None))
        left = np.sqrt(np.clip(per_t["resid_rms"] ** 2 - noise2, 0, None))
        # only where the leakage stands clear of the noise (≥ √3 × the noise level)
        return np.where(per_t["leak_rms"] ** 2 >= 4 * noise2, 1 - left / before, np.nan)


def _masked(maps, skipped, n_t):
    """The maps with the skipped time points NaN (lazily for dask arrays)."""
    bad = np.zeros(n_t, bool)
    bad[sorted(skipped)] = True
    out = []
    for m in maps:
        m = getattr(m, "data", m)
        if m.shape[0] != n_t:
            raise ShapeMismatchError(f"maps: {m.shape[0]} time points, the plan has {n_t}")
        if not bad.any():
            out.append(m)
        elif hasattr(m, "dask"):
            import dask.array as dsa

            out.append(dsa.where(bad[:, None, None], np.float32(np.nan), m))
        else:
            m = np.array(m, copy=True)
            m[bad] = np.nan
            out.append(m)
    return tuple(out)


def _dataset(plan, got, scal, reasons, asymmetry, removed, maps):
    import xarray as xr

    n_t, oy, ox = plan.n_time, *plan.out_shape
    asym, asym_sd, pos_if = asymmetry
    per_t, skipped, fit = got["per_t"], got["skipped"], plan.step_fit
    data = {} if maps is None else _map_vars(*maps)
    data.update({k: (("time", "interface"), v, {"units": "nm" if "nm" in k and "per" not in k else
                                                ("V/nm" if "per_nm" in k else "V")}) for k, v in scal.items()})
    data.update({
        "bias_v": ("time", plan.bias_v, {"units": "V"}),
        "asymmetry": ("time", asym, {"long_name": "(|dV+| - |dV-|)/(|dV+| + |dV-|)"}),
        "asymmetry_std": ("time", asym_sd),
        "positive_interface": ("time", pos_if),
        "reference_index": ("time", np.asarray(plan.nearest).copy()),
        "leakage_ramp": (("time", "term"), got["coefs"], {"units": "rad",
                                                          "long_name": "ramp over the field, per half field"}),
        "leakage_pv_rad": ("time", per_t["leak_pv"], {"units": "rad"}),
        "leakage_inside_rad": ("time", per_t["leak_inside"], {"units": "rad"}),
        "leakage_removed_fraction": ("time", removed),
        "vacuum_rms_rad": ("time", per_t["vac_rms"], {"units": "rad"}),
        "drift_nm": (("time", "axis"), got["drift_nm"], {"units": "nm", "long_name": "specimen drift from zero bias"}),
        "drift_nm_std": (("time", "axis"), got["drift_sd"], {"units": "nm"}),
        "frame_good": ("time", np.array([k not in skipped for k in range(n_t)], bool),
                       {"long_name": "time point used (frame checks passed)"}),
        "frame_reason": ("time", reasons.astype(str), {"long_name": "why the time point (or a step) is NaN"}),
        "vacuum": (("y", "x"), plan.vacuum),
        "region": (("y", "x"), np.broadcast_to(plan.region_rows[:, None], (oy, ox)).copy())})
    report = plan.reported
    ds = xr.Dataset(data, coords={
        "time": ("time", plan.times, {"units": "s"}), "y": ("y", plan.y, {"units": "nm"}),
        "x": ("x", plan.x, {"units": "nm"}), "interface": ("interface", np.arange(report.size)),
        "interface_nm": ("interface", plan.interfaces[report], {"units": "nm"}), "term": _RAMP_TERMS[fit.order],
        "axis": ["y", "x"]})
    q = plan.waves.q
    ds.attrs = {"method": plan.method, "voltage_kv": float(plan.voltage_kv),
                "interaction_constant_rad_per_v_nm": plan.interaction_constant,
                "carrier_cycles_per_px": [float(q[0]), float(q[1])],
                "zero_bias_frames": [int(i) for i in plan.zero_bias],
                "window_nm": "all" if fit.window_nm is None else fit.window_nm, "background": fit.background,
                "model": fit.model, "max_width_nm": plan.max_width, "margin_nm": plan.margin, "ramp_order": fit.order,
                "interface_tilt_deg": plan.tilt_deg, "interface_tilt_deg_std": plan.tilt_deg_std,
                "drift": plan.drift, "bias_convention": "bias_v = potential of the right (larger-x) electrode, "
                                                        "left grounded"}
    return ds


def _map_vars(phase, potential) -> dict:
    return {"phase": (("time", "y", "x"), phase, {"units": "rad",
                                                  "long_name": "phase change from zero bias, leakage ramp removed"}),
            "potential": (("time", "y", "x"), potential, {"units": "V", "long_name": "potential change from zero bias"})}


def with_maps(series, phase, potential):
    """``series`` (an assembled bias series without maps) with its ``phase`` and ``potential`` maps put first.

    The maps (numpy or dask, ``(time, y, x)``) are taken as they are: NaN
    where ``frame_good`` is False is the caller's business.
    """
    import xarray as xr

    data = {**_map_vars(phase, potential), **{k: series[k].variable for k in series.data_vars}}
    return xr.Dataset(data, coords=series.coords, attrs=series.attrs)
