# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS table's stages after the Li maps: fraction → denoise → sync → analysis (split from
:mod:`ionscope.pipeline._eels`, which holds the table).

Each sees only the frames both plausibility gates kept (:func:`_gated`): the screen's and the χ² fit check's.
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import DataValidationError
from . import _refs_noise
from ._eels_adapters import _denoise


def _gated(ctx, ds):
    """``ds`` (along the screened frames' ``time``) without the frames the χ² gate dropped (unchanged when
    none is dropped, or when the table has no ``fit_check``, as live)."""
    check = ctx.values.get("fit_check")
    if check is None:
        return ds
    good = np.asarray(check.good.values, bool)
    return ds if good.all() else ds.isel(time=np.flatnonzero(good))


def _fraction(ctx):
    """x = (w_Li/w_Co)/k per pixel with ``[limap] calibration`` (else the Li weight), t/λ per frame."""
    import xarray as xr

    from .. import eels

    ds_l = _gated(ctx, ctx["limap"]).load()
    cal = dict(ctx.config.limap.calibration)
    li, li_std = ds_l["li"], ds_l.get("li_std")
    out = {}
    attrs = {}
    if cal:
        if "co" not in ds_l:
            raise DataValidationError(f"config [limap] calibration needs the {ctx.config.limap.co_component!r} "
                                      "weights of an MLLS fit ([limap] co_component)")
        maps = xr.Dataset({"Li": li, "Co": ds_l["co"]})
        if li_std is not None and "co_std" in ds_l:
            maps["Li_std"], maps["Co_std"] = li_std, ds_l["co_std"]
        if "k" in cal:
            spec = {"k": float(cal["k"]), "k_std": float(cal.get("k_std", 0.0))}
        elif "region" in cal:
            y0, y1, x0, x1 = cal["region"]
            frame = int(cal.get("frame", 0))
            if frame >= maps.sizes["time"] or y1 > maps.sizes["y"] or x1 > maps.sizes["x"]:
                raise DataValidationError(f"config [limap] calibration: region {cal['region']} / frame {frame} lies "
                                          f"outside the maps ({maps.sizes['time']} frames of "
                                          f"{maps.sizes['y']}×{maps.sizes['x']})")
            mask = xr.zeros_like(li.isel(time=0), dtype=bool)
            mask[y0:y1, x0:x1] = True
            first = eels.li_fraction(maps.isel(time=frame), calibration={"region": mask,
                                                                         "x": float(cal.get("x", 1.0))})
            spec = {"k": first.attrs["k"], "k_std": first.attrs["k_std"]}
        else:
            if ctx["log"] is None:
                raise DataValidationError("config [limap] calibration: the charge form needs the log ([input] log)")
            from ..transport import sync_frames

            _, starts = _frame_times(ctx)
            s_ = sync_frames(starts, ctx["log"], duration_s=ctx.config.input.frame_interval_s,
                             capacity_c=ctx.config.sync.capacity_c, allow_uncovered=True)
            spec = eels.calibration_from_charge(maps, s_["charge_c"].values, co_mol=float(cal["co_mol"]))
        frac = eels.li_fraction(maps, calibration=spec, smooth_co=ctx.config.limap.co_smoothing_px)
        x = frac.li_fraction
        # a pixel whose spectrum could not be used (NaN weights: impossible raw counts) stays NaN, not x = 0
        unusable = ~np.isfinite(li) | ~np.isfinite(ds_l["co"])
        undefined = ~np.isfinite(x) & ~unusable
        # where the (smoothed) Co map is ≤ 0 there is no LixCoO2 to speak of: x is set to 0 and counted
        out["li"] = x.where(~undefined, 0.0).astype("float32").assign_attrs(
            long_name="Li fraction x in LixCoO2", units="1", quantity="x")
        out["li_std"] = frac.li_fraction_std.where(~undefined, np.inf).astype("float32").assign_attrs(units="1")
        attrs.update(k=float(spec["k"]), k_std=float(spec["k_std"]), calibration=json.dumps(cal),
                     undefined_pixels=int(undefined.sum()))
        sx = _refs_noise.x_std_references(ds_l, float(spec["k"]))
        if sx is not None:  # the references' own noise, common to every pixel (issue 19)
            out["li_std_references"] = sx.where(~undefined, np.inf).astype("float32").assign_attrs(
                units="1", long_name="σ of x from the references' own noise (common to every pixel: averaging "
                                     "pixels does not shrink it)")
            attrs.update(_refs_noise.assess(ds_l, sx, k=float(spec["k"])))
    elif "zero_loss" in ds_l:
        # Uncalibrated real spectra: the weight is in single-scattering counts, ∝ I0·e^(−t/λ)·t/λ·ρ_Li —
        # it mirrors thickness and beam current. Per zero-loss intensity it is Li per unit area (× the
        # Li-K cross section): the areal Li map, what a user should see without a calibration.
        # (per 10⁶ zero-loss counts: readable numbers, ~1–100, on colour bars)
        i0 = ds_l["zero_loss"].where(ds_l["zero_loss"] > 0) / 1e6
        out["li"] = (li / i0).astype("float32").assign_attrs(
            long_name="Li per zero-loss intensity (areal Li, uncalibrated)",
            units="single-scattering counts per 10⁶ zero-loss counts", quantity="areal")
        if li_std is not None:
            out["li_std"] = (li_std / i0).astype("float32")
    else:
        unit = "single-scattering counts" if "thickness" in ds_l else "counts"
        out["li"] = li.astype("float32").assign_attrs(long_name="Li weight (MLLS)", units=unit, quantity="weight")
        if li_std is not None:
            out["li_std"] = li_std.astype("float32")
    sx = None if cal else _refs_noise.x_std_references(ds_l)
    if sx is not None:  # uncalibrated maps: in the references' units (the regions' x, for references from regions)
        attrs.update(_refs_noise.assess(ds_l, sx))
    if "thickness" in ds_l:
        t = ds_l["thickness"]
        mean_t = t.mean(("y", "x"))
        out["thickness_mean"] = mean_t.assign_attrs(long_name="mean t/λ of the frame", units="1")
        change = float(mean_t[-1] / mean_t[0] - 1) if mean_t.size > 1 else 0.0
        attrs["thickness_change"] = change
        # a film thinning under the beam changes every Li map: say so where the user looks
        attrs["thinning_warning"] = int(change < -0.05)
    return xr.Dataset(out, attrs=attrs)


def _denoise_stage(ctx):
    import xarray as xr

    ds_l = ctx["fraction"]
    li, filled = fill_undefined(ds_l["li"].load())
    out = _denoise(li, ctx.config, ds_l["li_std"].values if "li_std" in ds_l else None, ctx.show_progress)
    return xr.Dataset({"li": out.astype("float32").assign_attrs(
        {k: v for k, v in li.attrs.items() if k in ("long_name", "units", "quantity")})},
        attrs={"filled_pixels": filled} if filled else {})


def fill_undefined(li, *, max_rounds: int = 8):
    """The Li movie with its NaN/Inf pixels filled from their finite neighbours, for the denoiser and the flux.

    A pixel is NaN in the raw maps where its spectrum could not be used (impossible raw counts: the run
    reports them as ``flagged_pixels``); the denoiser and the transport analysis need every pixel. Each such
    pixel takes the mean of the finite pixels of its 3×3 neighbourhood in its own frame (repeated for
    larger holes; the frame's mean where a whole frame is empty). The raw maps keep their NaN.

    Returns
    -------
    (li, n) : (xarray.DataArray, int)
        ``li`` itself when every value is finite (n = 0).
    """
    from scipy import ndimage

    v = np.asarray(li.values, float)
    bad = ~np.isfinite(v)
    n = int(bad.sum())
    if n == 0:
        return li, 0
    out = np.where(bad, 0.0, v)
    good = (~bad).astype(float)
    size = (1,) + (3,) * (v.ndim - 1)
    for _ in range(max_rounds):
        if not bad.any():
            break
        num = ndimage.uniform_filter(out * good, size=size, mode="nearest")
        den = ndimage.uniform_filter(good, size=size, mode="nearest")
        take = bad & (den > 0)
        out[take] = num[take] / den[take]
        good[take] = 1.0
        bad &= ~take
    if bad.any():  # a frame with nothing finite near: its own mean (0 if none)
        for t in np.unique(np.argwhere(bad)[:, 0]):
            fin = good[t] > 0
            out[t][bad[t]] = out[t][fin].mean() if fin.any() else 0.0
    return li.copy(data=out.astype(li.dtype)), n


def _frame_times(ctx):
    """Frame times (s, as stored) and their acquisition starts."""
    from ._eels_sources import frame_starts

    times = np.asarray(_gated(ctx, ctx["screen"]).time.values, float)
    return times, frame_starts(ctx.config, times)


def _sync(ctx):
    import xarray as xr

    from ..transport import sync_frames

    cfg, log = ctx.config, ctx["log"]
    times, starts = _frame_times(ctx)
    if log is None:  # no log: frames only, state unknown
        return xr.Dataset({"state": ("time", np.full(times.size, "unknown")),
                           "covered": ("time", np.ones(times.size, bool))}, coords={"time": times})
    s = sync_frames(starts, log, duration_s=cfg.input.frame_interval_s, capacity_c=cfg.sync.capacity_c,
                    allow_uncovered=cfg.sync.allow_uncovered)
    return s.assign_coords(time=("time", times, {"units": "s"}))


def _sync_after(ctx, ds_s):
    """Frames the log does not cover join the run's bad frames."""
    series = _gated(ctx, ctx["screen"])
    covered = np.asarray(ds_s.covered.values, bool)
    for i in np.flatnonzero(~covered):
        frame = int(series.frame_index.values[i]) if "frame_index" in series.coords else int(i)
        ctx.result.bad_frames.append({"frame": frame, "file": "", "reason": "outside the electrochemistry log"})


def _analysis(ctx):
    from ..transport import analyse, flux_error

    ac, log, truth = ctx.config.analysis, ctx["log"], ctx["truth"]
    ds_s = ctx["sync"]
    covered = np.asarray(ds_s.covered.values, bool)
    li = ctx["denoise"]["li"].load().isel(time=covered)
    states = np.array([str(v) for v in ds_s.state.values])[covered]
    an = analyse(li, states=None if log is None else states, method=ac.method, interface=ac.interface,
                 open_edges=ac.open_edges, x_boundary=ac.x_boundary, segmentation=ctx["segmentation"],
                 profile_bins=ac.profile_bins, rest_states=ac.rest_states)
    quantity = li.attrs.get("quantity", "weight")
    unit = "x·nm/s" if quantity == "x" else f"({li.attrs.get('units', 'map units')})·nm/s"
    for name in ("flux_y", "flux_x", "through_film", "in_plane", "toward_electrolyte"):
        if name in an:
            an[name].attrs["units"] = unit
    if "mean_li" in an:
        an["mean_li"].attrs.update(units=str(li.attrs.get("units", "")),
                                   long_name="mean x" if quantity == "x" else ("mean areal Li" if quantity == "areal" else "mean Li weight"))
    map_unit = "x" if quantity == "x" else str(li.attrs.get("units", "map units"))
    for name, u in (("profile_li", map_unit if quantity != "x" else "1"), ("profile_dcdt", f"{map_unit}/s"),
                    ("profile_flux_y", unit), ("dcdt", f"{map_unit}/s"), ("rest_activity", f"{map_unit}/s")):
        if name in an:
            an[name].attrs["units"] = u
    an.attrs["map_quantity"] = "Li fraction x" if quantity == "x" else str(li.attrs.get("long_name", "Li map"))
    if truth is not None and "flux_y" in truth:
        err = flux_error(an, truth.flux_y.values[covered], truth.flux_x.values[covered])
        an.attrs.update({f"truth_{k}": v for k, v in err.items()})
    return an
