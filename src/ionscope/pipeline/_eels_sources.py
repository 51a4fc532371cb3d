# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS night's inputs, every one opened and checked before the first stage runs.

:func:`open_sources` reads the series (a folder of frames, a multi-frame file
or a Zarr store), the electrochemistry log, the reference spectra, a
dual-EELS low loss and a segmentation; checks the windows and sizes that only
the data can check; and returns them with the keys (content fingerprints)
that enter the stage keys: a changed byte of any input redoes what reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataValidationError, FileFormatError
from ._config import Config
from ._eels import _canonical_chunks, _fit_window
from ._stores import fingerprint, fingerprint_files


def _read_log(path: Path, *, missing: str = "error", duplicates: str = "error", resets: str = "error"):
    """A CSV log through :func:`ionscope.io.read_log`; a NetCDF/Zarr Dataset as stored."""
    import xarray as xr

    from .. import io as iio

    if path.suffix.lower() == ".csv":
        return iio.read_log(path, missing=missing, duplicates=duplicates, resets=resets)
    try:
        log = xr.open_dataset(path, engine="zarr" if path.suffix.lower() == ".zarr" else "h5netcdf").load()
    except Exception as exc:  # the backends raise many types for an unreadable file
        raise FileFormatError(f"{path}: not a readable log; expected CSV, NetCDF or Zarr ({exc})") from None
    if "time" not in log.coords:
        raise FileFormatError(f"{path}: the log has no 'time' coordinate (s)")
    return log


def _token(obj) -> str:
    from dask.base import tokenize

    return tokenize(obj)




# --------------------------------------------------------------------------- sources (every input, opened up front)

#: Named reference models a config may ask for (``[limap] references = "simulated"``):
#: "module:function" of a ``function(energy) -> (component, energy)`` DataArray,
#: imported only when a config names it.
REFERENCE_MODELS = {"simulated": "ionscope.simulate:edge_references",
                    "simulated-realistic": "ionscope.simulate:realistic_references"}


def _from_simulator(series) -> bool:
    return "ionscope.simulate" in str(series.attrs.get("title", ""))


def _reference_source(cfg: Config, references, series):
    """``(energy -> references, key)``: given spectra, a callable, a named model or a file (loaded now).

    Model references only describe the simulator's own spectra: they are taken
    (by name, or by default) only for a series the simulator wrote — never as a
    silent fall-back for real data.
    """
    import importlib

    import xarray as xr

    if references is not None:
        if callable(references) and not isinstance(references, xr.DataArray):
            return references, f"callable:{getattr(references, '__module__', '')}.{getattr(references, '__qualname__', '')}"
        return (lambda energy: references), _token(references)
    ref = cfg.limap.references
    if not ref and cfg.limap.method in ("mlls", "sasb"):
        if not _from_simulator(series):
            raise ConfigError(
                "config [limap] references: required — a (component, energy) file of reference spectra measured "
                "on your data (`ionscope refs regions SI --region-px ... --composition ... -o refs.nc`); the model "
                "references describe only ionscope's simulator")
        ref = "simulated-realistic" if series.attrs.get("physics") == "realistic" else "simulated"
    elif ref in REFERENCE_MODELS and not _from_simulator(series):
        raise ConfigError(f"config [limap] references = {ref!r}: the simulator's model shapes do not describe "
                          "measured spectra; measure references on the data (`ionscope refs regions ...`)")
    if not ref:
        return (lambda energy: None), "none"
    if ref in REFERENCE_MODELS:
        module, _, attr = REFERENCE_MODELS[ref].partition(":")
        return getattr(importlib.import_module(module), attr), ref
    from .. import io as iio

    path = cfg.path(ref)
    refs = iio.load(path)
    if "component" not in refs.dims or "energy" not in refs.dims:
        raise DataValidationError(f"config [limap] references: {ref} must hold (component, energy) spectra, "
                                  f"got dims {refs.dims}")
    refs = refs.load()
    return (lambda energy: refs), f"{ref}:{fingerprint([path])}"  # by content: other bytes redo the maps


#: Largest batch of frames held at once in a stage ([compute] frames_per_batch × frame size).
_MAX_BATCH_BYTES = 8 * 2**30


def _check_against_data(cfg: Config, series) -> None:
    """Windows and sizes that only the data can check, before any stage runs."""
    e = np.asarray(series.energy.values, float)
    _check_energy_axis(cfg, e)
    _check_pixel_axes(cfg, series)
    _check_interval(cfg, series)
    lo, hi = float(np.nanmin(e)), float(np.nanmax(e))
    _fit_window(series, cfg)  # [limap] fit_range must hold enough channels
    windows = [("[register] window_ev", cfg.register.window_ev if cfg.register.enabled else ())]
    ed = cfg.energy_drift.options.get("window")
    if cfg.energy_drift.enabled and ed is not None:
        windows.append(("[energy_drift] options.window", ed))
    for name, win in windows:
        if not win:
            continue
        inside = int(np.count_nonzero((e >= float(win[0])) & (e <= float(win[1]))))
        if inside < 2:
            raise DataValidationError(f"config {name} = {list(win)} eV holds {inside} channel(s) of the series, "
                                      f"which spans {lo:.4g}..{hi:.4g} eV: choose a window inside the data")
    frame = series.dtype.itemsize * series.sizes["y"] * series.sizes["x"] * series.sizes["energy"]
    if cfg.compute.frames_per_batch * frame > _MAX_BATCH_BYTES:
        raise DataValidationError(
            f"config [compute] frames_per_batch = {cfg.compute.frames_per_batch}: "
            f"{cfg.compute.frames_per_batch} frames of {frame / 2**20:.0f} MiB exceed "
            f"{_MAX_BATCH_BYTES / 2**30:.0f} GiB held at once; use at most {max(1, _MAX_BATCH_BYTES // frame)}")


def _check_energy_axis(cfg: Config, e: np.ndarray) -> None:
    """The ``energy`` coordinate must be finite and strictly increasing (issue 17: a descending axis was
    refused later by a misleading window message, or could pair channels with the wrong energies)."""
    where = str(cfg.path(cfg.input.series)) if cfg.input.series else "series"
    if e.size and not np.all(np.isfinite(e)):
        raise DataValidationError(f"{where}: coordinate 'energy' holds {int(np.count_nonzero(~np.isfinite(e)))} "
                                  f"NaN/Inf value(s); expected finite energies in eV")
    step = np.diff(e)
    if step.size and not np.all(step > 0):
        if np.all(step < 0):
            how = f"is descending ({e[0]:.6g} → {e[-1]:.6g} eV)"
        else:
            k = int(np.flatnonzero(step <= 0)[0])
            how = f"is not increasing at channel {k + 1} ({e[k]:.6g} → {e[k + 1]:.6g} eV)"
        raise DataValidationError(f"{where}: coordinate 'energy' {how}; expected strictly increasing energies "
                                  f"(eV) — store the spectra with ascending energy (e.g. "
                                  f"series.sortby('energy')) so no channel is read at the wrong energy")


def _check_pixel_axes(cfg: Config, series) -> None:
    """The ``y``/``x`` coordinates, where the series has them, are finite, uniform and of non-zero step.

    Found (s28seams): a store whose ``x`` coordinate was all zero (pixel size 0) ran every heavy stage and was
    refused only by the analysis ("not uniformly sampled (steps 0.0..0.0)"); the flux needs the pixel size.
    """
    where = str(cfg.path(cfg.input.series)) if cfg.input.series else "series"
    for dim in ("y", "x"):
        if dim not in series.coords or series.sizes.get(dim, 0) < 2:
            continue
        v = np.asarray(series[dim].values, float)
        units = series[dim].attrs.get("units", "nm")
        step = np.diff(v)
        if not np.all(np.isfinite(v)):
            how = f"holds {int(np.count_nonzero(~np.isfinite(v)))} NaN/Inf value(s)"
        elif np.any(step == 0):
            k = int(np.flatnonzero(step == 0)[0])
            how = f"repeats {v[k]:.6g} {units} (pixels {k} and {k + 1}: a pixel size of 0)"
        elif not (np.all(step > 0) or np.all(step < 0)) or np.ptp(step) > 1e-3 * np.max(np.abs(step)):
            how = f"is not uniformly spaced (steps {step.min():.6g}..{step.max():.6g} {units})"
        else:
            continue
        raise DataValidationError(f"{where}: coordinate {dim!r} {how}; expected pixel positions with one "
                                  f"non-zero step (the pixel size) — fix the spatial calibration")


def _check_interval(cfg: Config, series) -> None:
    """A store's own frame times are ``[input] frame_interval_s`` apart (median step, to 2 %).

    Found (s28seams): a store with frames 10 s apart read with the default ``frame_interval_s = 60`` put each
    frame's start 25 s early (half an interval before its "mid" time) and averaged the log over 60 s windows
    that overlap five frames — silently. A folder's times come from the interval itself (``frame_index``).
    """
    if "frame_index" in series.coords or series.sizes.get("time", 0) < 2:
        return
    step = float(np.median(np.diff(np.asarray(series.time.values, float))))
    interval = float(cfg.input.frame_interval_s)
    if abs(step - interval) <= 0.02 * interval:
        return
    where = str(cfg.path(cfg.input.series)) if cfg.input.series else "series"
    raise DataValidationError(
        f"{where}: its frames are {step:.6g} s apart (median step of its time coordinate), but [input] "
        f"frame_interval_s = {interval:g} — the duration each frame is synchronised over, and half of it the "
        f"start of a mid-anchored time; set [input] frame_interval_s = {step:.6g}")


def _check_log(log, cfg: Config):
    """A log Dataset's numbers are finite (or interpolated when ``[input] log_missing`` asks)."""
    import xarray as xr

    if not isinstance(log, xr.Dataset) or "time" not in log.coords:
        raise DataValidationError("log: expected an xarray.Dataset with a 'time' coordinate in s")
    for name in ("voltage", "current", "charge_c"):
        if name not in log:
            continue
        v = np.asarray(log[name].values, float)
        bad = ~np.isfinite(v)
        if bad.any():
            if cfg.input.log_missing != "interpolate" or bad.sum() > v.size - 2:
                t = np.asarray(log.time.values, float)[bad]
                raise DataValidationError(
                    f"log: {name} holds {int(bad.sum())} NaN/Inf value(s), first at t = {t[0]:.6g} s "
                    f"(fix the log, or ask to interpolate: [input] log_missing = \"interpolate\")")
            log = log.assign({name: log[name].interpolate_na("time")})
    return log


def frame_starts(cfg: Config, times) -> np.ndarray:
    """The frames' acquisition starts (s) from their stored times (``[input] time_anchor``: "mid" or "start")."""
    ic = cfg.input
    return np.asarray(times, float) - (0.5 * ic.frame_interval_s if ic.time_anchor == "mid" else 0.0)


def _check_clocks(cfg: Config, series, log, frame_files) -> None:
    """The frame times on the log's clock agree with the clocks of the files, where both carry one.

    Found (s28seams): frame *k* is put at ``start_s + k · frame_interval_s`` on the log's clock whatever the
    files say; a log started 10 min before the acquisition (``start_s`` left at 0) gave every frame the
    voltage and charge of 10 min earlier without a word, though the first frame's DM timestamp and the
    Protochips log's start time said so. Now, when both carry a timestamp, the first frame's start on the
    log's clock by the timestamps must lie within 1.5 intervals + 60 s of its start by the frame times.
    """
    import datetime as _dt

    stamps = series.attrs.get("timestamp"), log.attrs.get("timestamp")
    if not cfg.sync.check_timestamps or not all(isinstance(v, str) and v for v in stamps):
        return
    try:
        frame_clock, log_clock = (_dt.datetime.fromisoformat(v) for v in stamps)
        by_clocks = (frame_clock - log_clock).total_seconds()
    except (ValueError, TypeError):  # unreadable, or one with a time zone and one without: nothing to compare
        return
    ic = cfg.input
    by_times = float(frame_starts(cfg, series.time.values)[0])
    tolerance = 1.5 * ic.frame_interval_s + 60.0
    if abs(by_clocks - by_times) <= tolerance:
        return
    k = int(series.frame_index.values[0]) if "frame_index" in series.coords else 0
    name = f" ({frame_files[0]})" if frame_files else ""
    raise DataValidationError(
        f"{cfg.path(ic.series)}: frame {k}{name} starts at {by_times:.6g} s on the log's clock by [input] start_s "
        f"= {ic.start_s:g} and frame_interval_s = {ic.frame_interval_s:g}, but its timestamp ({stamps[0]}) is "
        f"{by_clocks:.6g} s after the log's ({stamps[1]}): every frame would get the voltage of another "
        f"moment; set [input] start_s = {ic.start_s + by_clocks - by_times:.6g} (or, if a clock is wrong — "
        f"another time zone —, [sync] check_timestamps = false)")


def _check_cover(cfg: Config, series, log, frame_files) -> None:
    """Frames the log does not cover are refused before any stage (``[sync] allow_uncovered = false``).

    Found (s28seams): the sync stage found them — after the screen, the drift corrections and the Li maps,
    hours into a long night. The same rule as :func:`ionscope.transport.sync_frames` (half a log step of
    slack: its own ``covered``), here naming the frames' numbers and files.
    """
    from ..transport import sync_frames

    if cfg.sync.allow_uncovered or "voltage" not in log and "current" not in log:
        return
    ic = cfg.input
    tl = np.asarray(log.time.values, float)
    if tl.size < 2 or np.any(np.diff(tl) <= 0):
        return  # sync_frames refuses it, with its own words
    t0 = frame_starts(cfg, series.time.values)
    if np.any(np.diff(t0) <= 0):
        return  # the sync stage refuses it, with its own words
    t1 = t0 + ic.frame_interval_s
    covered = sync_frames(t0, log, duration_s=ic.frame_interval_s, allow_uncovered=True)["covered"].values
    bad = np.flatnonzero(~covered)
    if bad.size == 0:
        return
    numbers = series.frame_index.values if "frame_index" in series.coords else np.arange(t0.size)
    listed = ", ".join(f"frame {int(numbers[i])}{f' ({frame_files[i]})' if frame_files else ''} "
                       f"[{t0[i]:.6g}, {t1[i]:.6g}] s" for i in bad[:3]) + (" ..." if bad.size > 3 else "")
    # "log does not cover" first, as sync_frames says it: `ionscope run` puts the log's file before it
    raise DataValidationError(
        f"log does not cover {bad.size} of {t0.size} frame(s): {listed}; the "
        f"log spans [{tl[0]:.6g}, {tl[-1]:.6g}] s (check [input] start_s and frame_interval_s, or set [sync] "
        f"allow_uncovered = true to mark them bad and go on)")


def _sources(cfg: Config, *, series, log, references, segmentation, truth, bad_frames: list,
             ignored: list | None = None, info: dict | None = None) -> dict:
    """Open every input before the first stage runs: ``{name: (value, key)}``."""
    import xarray as xr

    from ..io import read_series

    ic = cfg.input
    if series is None:
        if not ic.series:
            raise DataValidationError("config [input] series: no series given (a folder, file or .zarr store)")
        spath = cfg.path(ic.series)
        series, bad = read_series(spath, frame_interval_s=ic.frame_interval_s, start_s=ic.start_s,
                                  time_anchor=ic.time_anchor, on_bad_frame=ic.on_bad_frame,
                                  frame_pattern=ic.frame_pattern or None, max_missing_ratio=ic.max_missing_ratio,
                                  var=ic.var or None, check_timestamps=cfg.sync.check_timestamps)
        fp, digests = fingerprint_files([spath])  # one read: the series' key and each frame's (pipeline._rows)
        input_key = fp + json.dumps(bad) + (f" var={ic.var}" if ic.var else "")
        frame_keys = _frame_keys(series, spath, digests, ic.var)
    else:
        if not isinstance(series, xr.DataArray) or set(series.dims) != {"time", "y", "x", "energy"}:
            raise DataValidationError("run: series must be an xarray.DataArray with dims (time, y, x, energy)")
        series = series.transpose("time", "y", "x", "energy")
        if series.chunks is None:
            series = series.chunk({"time": 1})
        bad = []
        input_key = _token(series)
        frame_keys = None
    bad_frames.extend(bad)
    frame_files = series.attrs.get("frame_files")
    if ignored is not None:
        ignored.extend(series.attrs.get("ignored_files", []))
    if frame_files is not None or "ignored_files" in series.attrs:  # kept beside the series, not in the stages
        series = series.copy()
        series.attrs = {k: v for k, v in series.attrs.items() if k not in ("frame_files", "ignored_files")}
    full = _canonical_chunks(series)

    if log is None and ic.log:
        lpath = cfg.path(ic.log)
        if not lpath.exists():
            raise FileFormatError(f"{lpath}: no such log file (config [input] log)")
        log_key = fingerprint([lpath]) + ic.log_missing + ic.log_duplicates + ic.log_resets
        log = _read_log(lpath, missing=ic.log_missing, duplicates=ic.log_duplicates, resets=ic.log_resets)
    elif log is not None:
        log_key = _token(log)
    else:
        log_key = "no-log"

    if segmentation is None and cfg.analysis.segmentation:
        from .. import io as iio

        segmentation = np.asarray(iio.load(cfg.path(cfg.analysis.segmentation)).values)
    seg_token = _token(np.asarray(segmentation)) if segmentation is not None else ""
    truth_token = _token(truth[["flux_y", "flux_x"]]) if truth is not None and "flux_y" in truth else ""
    _check_against_data(cfg, full)
    if log is not None:
        log = _check_log(log, cfg)
        _check_clocks(cfg, full, log, frame_files)
        _check_cover(cfg, full, log, frame_files)
    if segmentation is not None:
        seg = np.asarray(segmentation)
        if seg.shape != (full.sizes["y"], full.sizes["x"]):
            raise DataValidationError(f"segmentation ([analysis] segmentation): shape {seg.shape} differs from the "
                                      f"frames' (y, x) = ({full.sizes['y']}, {full.sizes['x']})")
    low_loss, low_key = None, "no-low-loss"
    if ic.low_loss:
        lpath_ll = cfg.path(ic.low_loss)
        low_loss, bad_ll = read_series(lpath_ll, frame_interval_s=ic.frame_interval_s, start_s=ic.start_s,
                                       time_anchor=ic.time_anchor, on_bad_frame="error",
                                       frame_pattern=ic.frame_pattern or None,
                                       max_missing_ratio=ic.max_missing_ratio,
                                       check_timestamps=cfg.sync.check_timestamps)
        if low_loss.sizes["time"] != full.sizes["time"] or low_loss.sizes["y"] != full.sizes["y"] \
                or low_loss.sizes["x"] != full.sizes["x"]:
            raise DataValidationError(
                f"config [input] low_loss: {lpath_ll} holds {dict(low_loss.sizes)}; expected the same frames and "
                f"pixels as the series {dict(full.sizes)}")
        low_loss = low_loss.assign_coords(time=full.time.values)
        low_loss.attrs = {k: v for k, v in low_loss.attrs.items() if k not in ("frame_files", "ignored_files")}
        low_key = fingerprint([lpath_ll])
    if frame_keys is not None and info is not None:
        info["frame_keys"] = {"series": frame_keys}  # the series' per-frame keys (pipeline._rows)
    return frame_files, {
        "series": (full, input_key),
        "low_loss": (low_loss, low_key),
        "references": _reference_source(cfg, references, full),
        "log": (log, log_key),
        "segmentation": (segmentation, seg_token),
        "truth": (truth, truth_token),
    }


def _input_paths(cfg: Config) -> dict[str, Path]:
    """The files and folders a config reads: ``{config key: path}``."""
    ic = cfg.input
    named = {"[input] series": ic.series, "[input] log": ic.log, "[input] low_loss": ic.low_loss,
             "[analysis] segmentation": cfg.analysis.segmentation}
    if cfg.limap.references and cfg.limap.references not in REFERENCE_MODELS:
        named["[limap] references"] = cfg.limap.references
    return {k: cfg.path(v) for k, v in named.items() if v}


def _open(cfg: Config, given: dict, result):
    """The EELS night's inputs (for :func:`ionscope.pipeline.run`): sources, the frame files and their keys."""
    info: dict = {}
    frame_files, sources = _sources(cfg, series=given["series"], log=given["log"], references=given["references"],
                                    segmentation=given["segmentation"], truth=given["truth"],
                                    bad_frames=result.bad_frames, ignored=result.ignored_files, info=info)
    return sources, {"frame_files": frame_files, **info}


def _frame_keys(series, folder: Path, digests: dict, var: str) -> dict | None:
    """``{row id: frame key}`` of a series read from a folder of frame files (None for a store or file)."""
    from ._framekeys import frame_key, row_id

    files = series.attrs.get("frame_files")
    if not files or "frame_index" not in series.coords:
        return None
    extra = f"|var={var}" if var else ""
    per_frame = _frame_digests(folder, digests)
    keys = {}
    for f, k, t in zip(files, series.frame_index.values, series.time.values):
        digest = per_frame.get(f)
        if digest is None:  # a frame we cannot key: no row is reused (never a stale one)
            return None
        keys[row_id(t)] = frame_key(digest + extra, k, t)
    return keys


def _frame_digests(folder: Path, digests: dict) -> dict:
    """``{name in folder: digest}``: a file's own, or a folder store's (every file inside it, by name), in one
    pass over the fingerprinted files."""
    import hashlib

    own, inside = {}, {}
    for p, d in digests.items():
        if not Path(p).is_relative_to(folder):
            continue
        parts = Path(p).relative_to(folder).parts
        if len(parts) == 1:
            own[parts[0]] = d
        else:
            inside.setdefault(parts[0], []).append(("/".join(parts[1:]), d))
    for name, files in inside.items():
        own.setdefault(name, "dir|" + hashlib.sha256("\n".join(f"{n}={d}" for n, d in sorted(files)).encode())
                       .hexdigest())
    return own


def _night():
    from ._eels import TABLE
    from ._run import Night

    return Night("eels", TABLE, _open, _input_paths)


#: The EELS night: its table and how its inputs are opened.
EELS_NIGHT = _night()
