# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS night as a stage table: frames → Li maps → x → denoised movie → Li flux.

screen → energy_drift → register → limap → fit_check → fraction → denoise → sync → analysis
(→ report, added by the CLI from :mod:`ionscope.report`)

Frames are checked twice for physical plausibility (:mod:`ionscope.pipeline._gates`,
``[screen]``): ``screen`` drops frames that cannot be decoded, hold NaN/Inf,
are all zero, have a negative signal, negative values beyond read noise or
total counts far outside the series' own range, before anything reads them;
``fit_check`` drops frames whose mean χ² of the Li-map fit is far above the
series' median. ``fraction``, ``sync`` (and so ``denoise`` and ``analysis``)
see only the frames both kept; a flagged frame is listed with its file and
reason (``RunResult.bad_frames``, the console, ``summary.json``, ``report.html``).
When no frame is flagged every stage sees exactly what it saw without the gates.

Spectra that hold their zero-loss peak (or come with a dual-EELS low loss) are
mapped through it (``[limap] plural_scattering``, default ``"auto"``): each
spectrum is deconvolved from its own zero-loss peak, which also aligns its
energy, so the energy-drift stage then only records the drift; the ``fraction``
stage turns Li weights into x in LixCoO2 with ``[limap] calibration``.

Each stage names its inputs (earlier stages, or the sources that
:mod:`ionscope.pipeline._eels_sources` opens before the first stage), the
parameters its result depends on and its compute function, so stopping at,
re-running or adding a stage is a table edit. Each science step is called
through one small adapter function (:mod:`ionscope.pipeline._eels_adapters`:
``_estimate_energy_drift``, ``_li_maps``, ``_denoise``) so that the EELS and denoising implementations can evolve
without touching the table. The 4-D stages are dask graphs written batch by
batch (bounded memory); the (time, y, x) stages are small. Where they run is
the executor's business (:mod:`ionscope.pipeline._executors`).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError
from ._eels_adapters import _canonical_chunks  # noqa: F401 - live mode (ionscope.live) imports it from here
from ._eels_adapters import (
    _estimate_energy_drift,
    _fit_window,
    _holds_zero_loss,
    _li_maps,
    _plural_mode,
    _reduce_in_batches,
    _select_maps,
    _undo_energy_drift,
)
from ._eels_adapters import _denoise  # noqa: F401 - its old home (callers import it from here)
from ._eels_downstream import _analysis, _denoise_stage, _fraction, _sync, _sync_after
from ._graph import Stage


# --------------------------------------------------------------------------- the stage table
#
# Each stage: its inputs (earlier stages or the sources prepared by ``_sources``),
# the parameters its result depends on, and how to compute it. ``ctx[name]`` is
# an input's value; ``ctx.config`` the Config. See ``_graph`` for the runner.


def _keep(ctx) -> bool:
    return ctx.config.compute.cache_spectra


def _spectra_dim(ctx):
    # With cache_spectra the corrected 4-D series of each stage is stored;
    # without it only the (small) shifts are, and the corrections are re-applied
    # lazily on the way into the Li maps: two full writes and reads fewer.
    return "time" if _keep(ctx) else None


def _screen(ctx):
    """Read every frame once: which ones decode, hold finite values and pass the plausibility gates, and
    what the later stages measure on (each frame's spectrum, registration image and probe spectra)."""
    import xarray as xr

    from ._eels_frame import frame_plan
    from ._eels_fused import screen_summaries
    from ._screen import screen_reasons

    series, sc, cfg = ctx["series"], ctx.config.screen, ctx.config
    plan = frame_plan(cfg, energy=series.energy.values, references=None)
    got = screen_summaries(series, plan=plan, batch=cfg.compute.frames_per_batch,
                           bar=lambda items: ctx.bar(items, "screen: read frames"),
                           windows=_holds_zero_loss(series) and cfg.limap.method == "mlls")
    stats = got["stats"]
    reasons = np.array(screen_reasons(stats, got["unreadable"], sc), dtype=object)
    if sc.enabled:  # a frame stored reversed in energy passes the count gates (issue 17): its spectrum tells
        from ._gates import reversal_reasons

        flipped = reversal_reasons(got["spectrum"], reasons == "", min_frames=sc.min_frames)
        reasons = np.array([r or f for r, f in zip(reasons, flipped)], dtype=object)
    good = reasons == ""
    with np.errstate(invalid="ignore", divide="ignore"):
        negative = stats["negative"] / np.maximum(stats["size"], 1)
    coords = {"time": series.time, "energy": series.energy}
    coords.update({d: series[d] for d in ("y", "x") if d in series.coords})
    ds = xr.Dataset({"good": ("time", good), "reason": ("time", reasons.astype(str)),
                     "total_counts": ("time", stats["total"], {"long_name": "sum of the frame's finite values"}),
                     "negative_fraction": ("time", negative, {"long_name": "fraction of negative values"}),
                     "implausible_pixels": ("time", got["implausible"],
                                            {"long_name": "spectra whose raw counts cannot occur (NaN in the maps; "
                                                          "ionscope.eels._plausible)"}),
                     "frame_spectrum": (("time", "energy"), got["spectrum"],
                                        {"long_name": "the frame summed over its pixels (energy drift)"}),
                     "register_image": (("time", "y", "x"), got["image"],
                                        {"long_name": "the [register] window summed (specimen drift)"})},
                    coords=coords)
    if got["probe"] is not None:
        pr = got["probe"]
        # a sample across the frames: what it changes (the zero-loss width) reaches the Li-map rows through the
        # maps' own attributes, so it is left out of the screen's per-frame identity (pipeline._rows)
        sample = {"sample_across_frames": 1}
        ds["probe_window"] = (("probe", "window_y", "window_x", "energy"), pr["windows"],
                              {"long_name": "raw spectra around the pixels the zero-loss width is measured on",
                               **sample})
        ds["probe_pixel"] = (("probe", "tyx"), pr["pixels"], sample)
        ds["probe_origin"] = (("probe", "yx"), pr["origins"], sample)
    return ds


def _screen_params(ctx):
    """The ``[screen]`` keys the screen uses (the χ² gate's belong to ``fit_check``), and what its
    registration image and probe spectra depend on."""
    sc = ctx.config.section("screen")
    cfg = ctx.config
    return [{k: v for k, v in sc.items() if k != "chi2_ratio"},
            {"register_window_ev": list(cfg.register.window_ev), "probe": cfg.limap.method == "mlls",
             "layout": _SCREEN_LAYOUT}]


#: bump when what the screen stores changes (its summaries for the later stages)
_SCREEN_LAYOUT = 4  # 3: the energy-reversal gate (a cached screen from before did not judge it); 4: implausible_pixels


def _screen_view(ctx, ds):
    """The series without the frames the screen found bad (unchanged when all are good)."""
    good = np.asarray(ds.good.values, bool)
    series = ctx["series"]
    return series if good.all() else series.isel(time=np.flatnonzero(good))


def _screen_after(ctx, _series) -> None:
    """List the bad frames with file and reason; stop when too few good frames remain."""
    ic = ctx.config.input
    ds = ctx.cache.load("screen")
    series = ctx["series"]
    good = np.asarray(ds.good.values, bool)
    reasons = [str(r) for r in ds.reason.values]
    files = ctx.info.get("frame_files")
    bad_frames = ctx.result.bad_frames
    reader_bad = len(bad_frames)
    for i in np.flatnonzero(~good):
        frame = int(series.frame_index.values[i]) if "frame_index" in series.coords else int(i)
        file = files[i] if files else ""
        if ic.on_bad_frame == "error":
            raise DataValidationError(f"{ctx.config.path(ic.series) / file if file else ic.series or 'series'}: "
                                      f"frame {frame}: {reasons[i]} (set [input] on_bad_frame = \"skip\" to "
                                      f"skip such frames)")
        bad_frames.append({"frame": frame, "file": file, "reason": reasons[i]})
    bad_frames.sort(key=lambda b: b["frame"])
    _flag_implausible(ctx, ds, series, good, files)
    _enough_frames(ctx, int(good.sum()), series.sizes["time"] + reader_bad - int(good.sum()))


def _flag_implausible(ctx, ds, series, good, files) -> None:
    """Say which kept frames hold spectra whose raw counts cannot occur: the Li-map read makes them NaN
    (:func:`ionscope.pipeline._eels_frame.corrected_frame`); one corrupt pixel neither stops the night nor is
    analysed."""
    import warnings

    if "implausible_pixels" not in ds:
        return
    counts = np.asarray(ds.implausible_pixels.values, np.int64)
    # every [limap] method masks them (eels.nmf too, since it applies the rule)
    where = "NaN in the maps there"
    flagged = getattr(ctx.result, "flagged_pixels", None)
    if flagged is None:  # a result without the list (a caller's own): the maps are NaN there all the same
        return
    for i in np.flatnonzero(good & (counts > 0)):
        frame = int(series.frame_index.values[i]) if "frame_index" in series.coords else int(i)
        n = int(counts[i])
        flagged.append({"frame": frame, "file": files[i] if files else "", "pixels": n,
                        "reason": f"{n} spectra with impossible raw counts (a value below -8x the spectrum's noise "
                                  f"level, or NaN/Inf among finite channels): " + where})
    if flagged:
        listed = "; ".join(f"frame {f['frame']}: {f['pixels']}" for f in flagged[:5])
        warnings.warn(f"{ctx.config.input.series or 'series'}: {sum(f['pixels'] for f in flagged)} spectra in "
                      f"{len(flagged)} frame(s) hold impossible raw counts ({listed}"
                      + (" ..." if len(flagged) > 5 else "") + f"): {where}", stacklevel=2)


def _enough_frames(ctx, n_good: int, n_bad: int) -> None:
    """Stop when fewer than ``[input] min_good_fraction`` of the frames are usable."""
    ic = ctx.config.input
    bad_frames = ctx.result.bad_frames
    total = n_good + n_bad
    if n_good == 0 or n_good < ic.min_good_fraction * total:
        listed = "; ".join(f"frame {b['frame']} {b['file']}: {b['reason']}".replace("  ", " ")
                           for b in bad_frames[:3])
        raise DataValidationError(
            f"{ic.series or 'series'}: only {n_good} of {total} frames are usable "
            f"({n_good / total:.0%} < [input] min_good_fraction = {ic.min_good_fraction:g}): {listed}"
            + (" ..." if len(bad_frames) > 3 else ""))


def _energy_drift_params(ctx):
    cfg = ctx.config
    input_params = {k: v for k, v in cfg.section("input").items() if k not in ("series", "log")}
    return [input_params, cfg.section("energy_drift"), list(cfg.limap.fit_range), cfg.limap.crop_margin_ev,
            _keep(ctx)]


def _screened(ctx, name: str):
    """A summary the screen gathered in its read (``frame_spectrum``, ``register_image``), for the frames it
    kept; None where the table has no screen stage (live: the frame is a source)."""
    if "screen" not in ctx.records:
        return None
    ds = ctx.cache.load("screen")
    if name not in ds:
        return None
    good = np.asarray(ds.good.values, bool)
    da = ds[name]
    return da if good.all() else da.isel(time=np.flatnonzero(good))


def _frame_sums(ctx, series):
    """Each frame of ``series`` summed over its pixels: from the screen's read, or summed now."""
    spectra = _screened(ctx, "frame_spectrum")
    if spectra is None:
        return None
    return spectra.sel(energy=series.energy.values).load().assign_coords(time=series.time.values)


def _energy_drift(ctx):
    import xarray as xr

    cfg = ctx.config
    series = _fit_window(ctx["screen"], cfg)
    if cfg.energy_drift.enabled and _plural_mode(cfg, series) != "none":
        # each spectrum is aligned on its own zero-loss peak by the deconvolution: record the drift only
        low = _good_low_loss(ctx)
        src = series if _holds_zero_loss(series) else low
        shifts = np.zeros(series.sizes["time"])
        if src is not None:
            # [energy_drift] options are honoured; the zero-loss window defaults to ±5 eV clipped to the
            # data's axis (spectra starting above −5 eV were refused with a fixed window)
            opts = _zlp_drift_options(cfg.energy_drift.options, src.energy.values)
            refs = ctx["references"](src.energy.values) if opts["method"] == "model" else None
            shifts = _estimate_energy_drift(src, opts, refs, cfg.limap.fit_range,
                                            batch=cfg.compute.frames_per_batch,
                                            bar=lambda items: ctx.bar(items, "energy_drift: zero-loss"),
                                            frame_sum=_frame_sums(ctx, src) if src is series else None)
        ds = xr.Dataset({"energy_shift": ("time", shifts, {"units": "eV", "applied": 0,
                                                           "long_name": "zero-loss position (aligned per spectrum)"})},
                        coords={"time": series.time})
        if _keep(ctx):
            ds["si"] = series
        return ds
    if cfg.energy_drift.enabled:
        refs = ctx["references"](series.energy.values)
        # shifts the frames executor already estimated for a frame ({time: eV}; one frame per kernel call
        # makes a frame's shift its own): taken as they were, the other frames estimated
        known = ctx.info.get("known_energy_shift") or {}
        times = [float(t) for t in series.time.values]
        todo = [i for i, t in enumerate(times) if t not in known]
        shifts = np.array([known.get(t, np.nan) for t in times], float)
        if todo:
            whole = len(todo) == len(times)
            part = series if whole else series.isel(time=todo)
            sums = _frame_sums(ctx, series)  # the screen's read: no second pass over the spectra
            if sums is not None and not whole:
                sums = sums.isel(time=todo)
            shifts[todo] = _estimate_energy_drift(part, cfg.energy_drift.options, refs, cfg.limap.fit_range,
                                                  batch=cfg.compute.frames_per_batch,
                                                  bar=lambda items: ctx.bar(items, "energy_drift: estimate"),
                                                  frame_sum=sums)
    else:
        shifts = np.zeros(series.sizes["time"])
    ds = xr.Dataset({"energy_shift": ("time", shifts, {"units": "eV"})}, coords={"time": series.time})
    if _keep(ctx):
        ds["si"] = _undo_energy_drift(series, shifts) if cfg.energy_drift.enabled else series
    return ds


def _zlp_drift_options(options, energy) -> dict:
    """``[energy_drift]`` options for spectra holding their zero-loss peak: method "zlp" unless set,
    window ±5 eV around 0 clipped to the energy axis unless set."""
    opts = dict(options)
    opts.setdefault("method", "zlp")
    if opts["method"] == "zlp" and "window" not in opts:
        e = np.asarray(energy, float)
        step = float(abs(e[1] - e[0])) if e.size > 1 else 0.0
        opts["window"] = (max(-5.0, float(e.min()) + step), min(5.0, float(e.max()) - step))
    return opts


def _energy_drift_view(ctx, ds):
    """The energy-corrected series (stored, or the correction re-applied lazily)."""
    if _keep(ctx):
        return ds["si"]
    series = _fit_window(ctx["screen"], ctx.config)
    if ctx.config.energy_drift.enabled and int(ds.energy_shift.attrs.get("applied", 1)):
        return _undo_energy_drift(series, ds.energy_shift.values)
    return series


def _register(ctx):
    import xarray as xr

    from ..transport import apply_shifts, estimate_shifts

    cfg, si_e, full = ctx.config, ctx["energy_drift"], ctx["screen"]
    rc = cfg.register
    if rc.enabled:
        # The reference image is a broad energy-window sum. An energy shift
        # is uniform over a frame, so it changes that sum by a near-constant
        # factor per frame, which the mean-subtracted correlation ignores:
        # read the uncorrected series (one plain read) rather than
        # re-applying the energy correction to every pixel just for this.
        ref = _screened(ctx, "register_image")  # summed by the screen's read
        if ref is None:
            window = full.sel(energy=slice(*rc.window_ev)) if rc.window_ev else full
            ref = _reduce_in_batches(window.sum("energy"), batch=cfg.compute.frames_per_batch,
                                     bar=lambda items: ctx.bar(items, "register: estimate"))
        shifts = estimate_shifts(np.asarray(ref.values), reference=rc.reference, upsample_factor=rc.upsample_factor)
    else:
        shifts = np.zeros((si_e.sizes["time"], 2))
    ds = xr.Dataset({"drift": (("time", "component"), shifts, {"units": "px"})},
                    coords={"component": ["dy", "dx"], "time": si_e.time})
    if _keep(ctx):
        ds["si"] = apply_shifts(si_e, shifts) if rc.enabled else si_e
    return ds


def _register_view(ctx, ds):
    """The registered series (stored, or the shifts re-applied lazily)."""
    from ..transport import apply_shifts

    if _keep(ctx):
        return ds["si"]
    if ctx.config.register.enabled:
        return apply_shifts(ctx["energy_drift"], ds.drift.values)
    return ctx["energy_drift"]


def _good_low_loss(ctx):
    """The dual-EELS low loss of the frames the screen kept (None without one)."""
    low = ctx["low_loss"]
    if low is None:
        return None
    good = np.asarray(ctx.cache.load("screen").good.values, bool)
    return low if good.all() else low.isel(time=np.flatnonzero(good))


def _fused(ctx) -> bool:
    """Whether the Li maps come from one read of the frames (:mod:`ionscope.pipeline._eels_fused`,
    ``[compute] fused``): MLLS without a dual-EELS low loss (SA/SB and NMF see the whole series; dual
    EELS splices two series)."""
    return ctx.config.compute.fused and ctx.config.limap.method == "mlls" and ctx["low_loss"] is None


def _limap(ctx):
    if _fused(ctx):
        return _li_maps_fused(ctx)
    si_r = ctx["register"]
    low = _good_low_loss(ctx)
    if low is not None and ctx.config.register.enabled:
        from ..transport import apply_shifts

        low = apply_shifts(low, ctx.cache.load("register").drift.values)  # the same specimen drift
    plural = _plural_mode(ctx.config, si_r, low_loss=low)
    refs, shift_attrs = ctx["references"], {}
    if low is None:  # the night's Li-K shift (pipeline._li_shift_night), on the first registered frame
        from ._eels_fused import lazy_probe
        from ._li_shift_night import night_references

        refs, shift_attrs = night_references(
            ctx, series=si_r, plural=plural, probe=lambda: lazy_probe(si_r),
            frame_block=lambda: np.asarray(si_r.isel(time=0).transpose("y", "x", "energy").values))
    ds = _li_maps(si_r, refs(si_r.energy.values), ctx.config, plural=plural, low_loss=low)
    ds.attrs.update(shift_attrs)
    return ds


def _li_maps_fused(ctx):
    """The Li maps of every frame from the frames as read: energy drift, registration and the fit per frame
    (:func:`ionscope.pipeline._eels_frame.frame_maps`), one task per frame; the same numbers as the
    stage-by-stage corrections (``[compute] fused = false``)."""
    from ._eels_frame import frame_plan
    from ._eels_fused import li_columns

    cfg = ctx.config
    series = ctx["screen"]
    plural = _plural_mode(cfg, series)
    shifts = np.asarray(ctx.cache.load("energy_drift").energy_shift.values, float)
    drift = np.asarray(ctx.cache.load("register").drift.values, float)
    probe = None
    if plural != "none" and cfg.limap.options.get("resolution_fwhm") is None:
        probe = _probe_spectra(ctx, series, drift)
        if probe is not None:  # an implausible probe spectrum is NaN: the zero-loss width is not measured on it
            from ..eels import implausible_spectra

            probe = np.where(implausible_spectra(probe)[:, None], np.nan, probe)
    refs, shift_attrs = _night_shift(ctx, series, plural, shifts, drift, probe)
    plan = frame_plan(cfg, energy=series.energy.values, references=refs, probe=probe, plural=plural)
    ds = _select_maps(plan.fit.dataset(li_columns(series, plan, shifts, drift)), cfg)
    ds.attrs.update(shift_attrs)
    return ds


def _night_shift(ctx, series, plural, shifts, drift, probe):
    """The references with the night's Li-K shift fixed (:mod:`ionscope.pipeline._li_shift_night`): measured
    on the first frame the screen kept, as the fit sees it (energy and specimen drift undone)."""
    from ._eels_frame import corrected_frame, frame_plan
    from ._li_shift_night import night_references

    def first():
        bare = frame_plan(ctx.config, energy=series.energy.values, references=None, plural=plural)
        raw = np.asarray(series.isel(time=0).transpose("y", "x", "energy").values)
        return corrected_frame(raw, plan=bare, energy_shift=float(shifts[0]), drift=drift[0])

    return night_references(ctx, series=series, plural=plural, frame_block=first, probe=probe)


def _probe_spectra(ctx, series, drift):
    """The registered spectra the zero-loss width is measured on (:func:`ionscope.eels.mlls`'s choice):
    from the windows the screen gathered, or — frames dropped, a drift beyond the windows — read again."""
    from ._eels_fused import lazy_probe, registered_probe

    scr = ctx.cache.load("screen") if "screen" in ctx.records else None
    if scr is not None and "probe_window" in scr and bool(scr.good.all()):
        probe = {"pixels": scr.probe_pixel.values, "origins": scr.probe_origin.values,
                 "windows": scr.probe_window.values}
        moved = drift if ctx.config.register.enabled else np.zeros_like(drift)
        got = registered_probe(probe, moved, (series.sizes["y"], series.sizes["x"]))
        if got is not None:
            return got
    return lazy_probe(ctx["register"])


def _fit_check(ctx):
    """The χ² gate: frames whose fit is far worse than the series' (``[screen] chi2_ratio``)."""
    import xarray as xr

    from ._gates import chi2_reasons

    ds_l, sc = ctx["limap"], ctx.config.screen
    times = ds_l.time
    if "chi2" in ds_l:
        chi2 = ds_l["chi2"]
        # a reduction per frame: the (time, y, x) map is read once, not held
        mean = np.asarray(chi2.mean([d for d in chi2.dims if d != "time"]).values, float)
    else:  # methods without a fit (SA/SB, NMF): nothing to gate on
        mean = np.full(times.size, np.nan)
    reasons = chi2_reasons(mean, ratio=sc.chi2_ratio if sc.enabled else 0.0, min_frames=sc.min_frames)
    reasons = np.array(reasons, dtype=object).astype(str)
    return xr.Dataset({"good": ("time", reasons == ""), "reason": ("time", reasons),
                       "chi2_mean": ("time", mean, {"long_name": "mean reduced χ² of the frame's fit"})},
                      coords={"time": times})


def _fit_check_after(ctx, ds) -> None:
    """List the frames the χ² gate drops (file and reason); stop when too few good frames remain."""
    good = np.asarray(ds.good.values, bool)
    if good.all():
        return
    ic = ctx.config.input
    series = ctx["screen"]
    files = _kept_files(ctx)
    bad_frames = ctx.result.bad_frames
    for i in np.flatnonzero(~good):
        frame = int(series.frame_index.values[i]) if "frame_index" in series.coords else int(i)
        file = files[i] if files else ""
        reason = str(ds.reason.values[i])
        if ic.on_bad_frame == "error":
            raise DataValidationError(f"{ctx.config.path(ic.series) / file if file else ic.series or 'series'}: "
                                      f"frame {frame}: {reason} (set [input] on_bad_frame = \"skip\" to skip such "
                                      f"frames, or [screen] chi2_ratio = 0 to turn this check off)")
        bad_frames.append({"frame": frame, "file": file, "reason": reason})
    bad_frames.sort(key=lambda b: b["frame"])
    _enough_frames(ctx, int(good.sum()), len(bad_frames))


def _kept_files(ctx):
    """The file of each frame the screen kept (None for a store)."""
    files = ctx.info.get("frame_files")
    if not files:
        return None
    good = np.asarray(ctx.cache.load("screen").good.values, bool)
    return [f for f, g in zip(files, good) if g]


def _limap_params(ctx):
    """``[limap]`` but the calibration (the fraction stage's), and the night's Li-K shift where it changes the
    fit (:func:`ionscope.pipeline._li_shift_night.limap_params`: nothing for one Li-K shape or a stored shift)."""
    from ._li_shift_night import limap_params

    params = {k: v for k, v in ctx.config.section("limap").items() if k not in ("calibration", "chemical_shift")}
    params.update(limap_params(ctx, ctx["screen"]))
    return params


def _section(name):
    return lambda ctx: ctx.config.section(name)


#: The operando stage table (the report stage is added by :mod:`ionscope.report`).
TABLE = (
    Stage("screen", _screen, inputs=("series",), params=_screen_params, view=_screen_view, after=_screen_after),
    Stage("energy_drift", _energy_drift, inputs=("screen", "references", "low_loss"), params=_energy_drift_params,
          batched=_spectra_dim, view=_energy_drift_view),
    Stage("register", _register, inputs=("screen", "energy_drift"),
          params=lambda ctx: [ctx.config.section("register"), _keep(ctx)], batched=_spectra_dim,
          view=_register_view),
    Stage("limap", _limap, inputs=("screen", "energy_drift", "register", "references", "low_loss"),
          params=_limap_params, batched="time"),
    Stage("fit_check", _fit_check, inputs=("limap",),
          params=lambda ctx: [ctx.config.screen.enabled, ctx.config.screen.chi2_ratio, ctx.config.screen.min_frames],
          after=_fit_check_after),
    Stage("fraction", _fraction, inputs=("screen", "limap", "fit_check", "log"),
          params=lambda ctx: ctx.config.limap.calibration),
    Stage("denoise", _denoise_stage, inputs=("fraction",), params=_section("denoise")),
    Stage("sync", _sync, inputs=("screen", "fit_check", "log"),
          params=lambda ctx: [ctx.config.section("sync"), ctx.config.input.frame_interval_s,
                              ctx.config.input.time_anchor], after=_sync_after),
    Stage("analysis", _analysis, inputs=("denoise", "sync", "segmentation", "truth"), params=_section("analysis")),
)

#: Names of the operando stages in execution order.
STAGES = tuple(st.name for st in TABLE)
