# SPDX-License-Identifier: GPL-3.0-or-later
"""``run``: the operando pipeline, stage by stage, cached and resumable.

screen → energy_drift → register → limap → fit_check → fraction → denoise → sync → analysis
(→ report, added by the CLI from :mod:`ionscope.report`)

Frames are checked twice for physical plausibility (:mod:`ionscope.operando._gates`,
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

The pipeline is a declared stage table (``TABLE``, run by
:func:`ionscope.operando._graph.run_stages`): each stage names its inputs,
the parameters its result depends on and its compute function, so stopping
at, re-running or adding a stage is a table edit. Every input (series, log,
references, segmentation) is opened by ``_sources`` before the first stage.
Each science step is called through one small adapter function below
(``_energy_drift``, ``_li_maps``, ``_denoise``) so that the EELS and denoising
implementations can evolve without touching the pipeline. The 4-D stages are
streamed through dask batch by batch (bounded memory); the (time, y, x) stages
are small and run in memory. Scheduling is dask's: threads by default, or a
``distributed`` LocalCluster / remote scheduler.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (ConfigError, DataValidationError, FileFormatError, IonscopeError, OutputPathError,
                      StageFailedError)
from ._config import Config, from_dict, load_config
from .._atomic import os_errors
from .._outdir import OutputFolder, session, session_for
from ._graph import Context, Stage, run_stages
from ._stages import StageCache, StageRecord, cache_state, fingerprint



@dataclass
class RunResult:
    """What a run produced: stage records, bad frames, output files, cached results."""

    config: Config
    cache: StageCache
    stages: dict[str, StageRecord] = field(default_factory=dict)
    bad_frames: list[dict] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)  # files in the frame folder that are not frames
    files: dict[str, str] = field(default_factory=dict)
    context: Any = None  # the stage graph's Context after the run

    def dataset(self, stage: str):
        """A stage's cached Dataset (lazy)."""
        return self.cache.load(stage)

    @property
    def li_raw(self):
        """The Li maps as fitted, without the frames the χ² gate (``fit_check``) dropped."""
        li = self.dataset("limap")["li"]
        if "fit_check" not in self.stages:
            return li
        good = np.asarray(self.dataset("fit_check").good.values, bool)
        return li if good.all() else li.isel(time=np.flatnonzero(good))

    @property
    def li_fraction(self):
        """The mapped quantity before denoising: x (with a calibration) or the Li weight."""
        return self.dataset("fraction")["li"]

    @property
    def li_denoised(self):
        return self.dataset("denoise")["li"]

    @property
    def analysis(self):
        return self.dataset("analysis")

    @property
    def sync(self):
        return self.dataset("sync")

    def summary(self) -> dict:
        """Whole-run numbers (JSON-able)."""
        an = self.analysis
        out = {k: v for k, v in an.attrs.items() if isinstance(v, (int, float, str)) and not k.startswith("ionscope")}
        out["n_frames"] = int(an.sizes["time"])
        out["bad_frames"] = len(self.bad_frames)
        out["missing_frames"] = [int(b["frame"]) for b in self.bad_frames
                                 if str(b.get("reason", "")).startswith("missing")]
        out["ignored_files"] = list(self.ignored_files)
        out["stages_cached"] = [n for n, r in self.stages.items() if r.cached]
        out["stage_seconds"] = {n: round(r.seconds, 3) for n, r in self.stages.items()}
        return out


# --------------------------------------------------------------------------- adapters (one per science step)


def _reduce_in_batches(da, *, batch: int, bar):
    """Compute a lazy per-frame reduction batch by batch along ``time``.

    Same result as ``da.compute()``; the loop gives the stage a progress bar
    with ETA and keeps at most ``batch`` frames in flight.
    """
    import xarray as xr

    if da.chunks is None:
        return da
    n = da.sizes["time"]
    parts = [da.isel(time=slice(s, min(s + batch, n))).compute() for s in bar(list(range(0, n, batch)))]
    return xr.concat(parts, dim="time")


def _estimate_energy_drift(si, options: dict, references, fit_range, *, batch: int = 4,
                           bar=lambda items: items) -> np.ndarray:
    """Energy shift (eV) of every frame of a (time, y, x, energy) series.

    The shift is estimated once per frame on the frame's summed spectrum (a
    single pixel is far too noisy for it), by default with the EELS issue's
    ``"model"`` method (shift of the edge references minimising the fit χ²,
    robust to the Li content changing between frames).
    """
    from .. import eels

    opts = dict(options)
    method = opts.pop("method", "model")
    window = tuple(opts.pop("window", fit_range))
    target = float(opts.pop("target", 0.0))
    if method == "model":
        opts.setdefault("references", references)
    frame_sum = _reduce_in_batches(si.sum(("y", "x")), batch=batch, bar=bar)  # one read; (time, energy) is small
    shift = eels.estimate_shift(frame_sum, method=method, window=window, **opts)
    values = np.asarray(shift.values, float)
    return values - target if method == "zlp" else values


def _undo_energy_drift(si, shifts: np.ndarray):
    """Move every pixel of each frame back by the frame's shift (lazy for dask input)."""
    import xarray as xr

    from .. import eels

    shift = xr.DataArray(np.asarray(shifts, float), dims=("time",))
    if si.chunks is not None:  # match the series' time chunks so the shift maps block by block
        shift = shift.chunk({"time": si.chunksizes["time"]})
    return eels.shift_energy(si, shift).astype(si.dtype)


def _li_maps(si, references, cfg, *, plural="none", low_loss=None):
    """Li map (and its standard error, χ²) per frame from the EELS issue's mapping methods."""
    from .. import eels

    lc = cfg.limap
    background = None if lc.background == "none" else lc.background
    if lc.method == "mlls":
        weights = None if lc.weights == "none" else lc.weights
        options = dict(lc.options)
        # The movie is averaged by the denoiser and the analysis, so the mapped component must not
        # be clipped at zero (clipping noisy Li-poor pixels biases the mean by ~+3 % at dose 200);
        # the other components keep their physical non-negativity.
        options.setdefault("nonnegative",
                           [str(c) for c in references["component"].values if str(c) != lc.component])
        if plural != "none":
            # real spectra: through each spectrum's own zero-loss peak (the background is the basis)
            options.pop("weights", None)
            ds = eels.mlls(si, references, fit_range=tuple(lc.fit_range), plural_scattering=plural,
                           low_loss=low_loss, **options)
        else:
            ds = eels.mlls(si, references, fit_range=tuple(lc.fit_range), background=background, weights=weights,
                           **options)
    elif lc.method == "sasb":
        ds = eels.sasb(si, **lc.options)
    else:
        ds = eels.nmf(si, **lc.options)
    if hasattr(ds, "data_vars"):
        if lc.component not in ds:
            raise DataValidationError(f"config [limap] component: {lc.component!r} is not among the maps "
                                      f"{list(ds.data_vars)}")
        out = {"li": ds[lc.component]}
        if f"{lc.component}_std" in ds:
            out["li_std"] = ds[f"{lc.component}_std"]
        for name, key in (("chi2", "chi2"), ("thickness", "thickness"), ("co", lc.co_component),
                          ("co_std", f"{lc.co_component}_std"), ("zero_loss", "zero_loss")):
            if key in ds:
                out[name] = ds[key]
        import xarray as xr

        return xr.Dataset(out)
    return ds.to_dataset(name="li")


def _denoise(li, cfg, li_std=None, show_progress=None):
    """Denoise the (time, y, x) Li-map movie.

    Li maps are fitted weights, not counts: their noise is not Poisson in the
    map's own units. The mapping step's standard errors give the noise level
    directly, so sparse coding is told ``noise="gaussian"`` with that sigma
    (measured on the simulator: 24.6 dB vs 19.6 dB with the Poisson default).
    """
    method, options = cfg.denoise.method, dict(cfg.denoise.options)
    if method == "none":
        return li.copy()
    if method == "gaussian":
        from scipy import ndimage

        sigma = options.get("sigma", (1.0, 1.0, 1.0))
        return li.copy(data=ndimage.gaussian_filter(np.asarray(li.values, float), sigma=sigma, mode="nearest"))
    from .. import denoise

    if li_std is not None and "noise" not in options and "sigma" not in options:
        std = np.asarray(li_std, float)
        std = std[np.isfinite(std)]
        if std.size:
            options.update(noise="gaussian", sigma=float(np.median(std)))
    if "progress" not in options:  # the denoiser's own bar (with ETA) is this stage's bar
        from .._progress import progress_enabled

        options["progress"] = progress_enabled() if show_progress is None else bool(show_progress)
    return denoise.sparse_coding(li, **options)


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


# --------------------------------------------------------------------------- scheduling


@contextlib.contextmanager
def _scheduler(cfg: Config):
    """dask's threads / synchronous scheduler, a LocalCluster, or a remote scheduler.

    On a cluster a watchdog asks the scheduler for its workers every second;
    when it has had none for ``[compute] worker_timeout_s`` (all died, none
    ever joined) the run stops with :class:`~ionscope.errors.StageFailedError`
    instead of waiting forever. Finished stages stay cached. A worker lost
    while others remain only costs time: dask recomputes its tasks, with the
    same results (every task is deterministic and single-threaded).
    """
    import dask

    name = cfg.compute.scheduler
    if name in ("threads", "synchronous"):
        with dask.config.set(scheduler=name):
            yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DataValidationError(f"config [compute] scheduler = {name!r} needs dask.distributed: "
                                  f"pip install 'ionscope[cluster]'") from None
    cluster = None
    timeout = cfg.compute.worker_timeout_s
    try:
        if name == "local":
            # processes, one thread each: the GIL-bound parts of the kernels scale
            cluster = LocalCluster(n_workers=cfg.compute.n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            # a bounded handshake first: a non-dask server or a dead address fails here in one line, within
            # seconds, instead of hanging in (or overflowing) distributed's own connect
            from ._probe import probe_scheduler

            connect_s = max(5.0, min(timeout, 20.0))  # as long as distributed would retry (a scheduler starting)
            probe_scheduler(name, timeout_s=min(5.0, timeout), connect_s=connect_s)
            client = Client(name, timeout=f"{connect_s}s")
    except (OSError, TimeoutError) as exc:
        raise StageFailedError(f"config [compute] scheduler: cannot reach {name!r} ({exc}); start the scheduler "
                               f"or use scheduler = 'threads'") from None
    except (MemoryError, ValueError, TypeError) as exc:  # what distributed raises for a server that is not dask
        raise StageFailedError(f"config [compute] scheduler: {name!r} does not answer like a dask scheduler "
                               f"({type(exc).__name__}); start the scheduler or use scheduler = 'threads'") from None
    watchdog = _Watchdog(client, timeout)
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise StageFailedError(f"config [compute] scheduler {name!r}: no worker joined within {timeout:g} s; "
                                   f"start workers (dask worker {name}) or raise [compute] worker_timeout_s") \
                from None
        watchdog.start()
        try:
            with client.as_current():
                yield client
        except Exception:
            if watchdog.lost:
                raise StageFailedError(
                    f"config [compute] scheduler {name!r}: the cluster has had no worker for {timeout:g} s "
                    f"(all workers died or were stopped); the stages finished so far are cached: start workers "
                    f"and run again") from None
            raise
    finally:
        watchdog.stop()
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


class _Watchdog:
    """Closes the client when the scheduler has had no worker for ``timeout`` s (see ``_scheduler``)."""

    def __init__(self, client, timeout: float, poll_s: float = 1.0):
        import threading

        self.client, self.timeout, self.poll = client, float(timeout), poll_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ionscope-worker-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        import time

        empty_since = None
        while not self._stop.wait(self.poll):
            try:
                n = len(self.client.nthreads())
            except Exception:  # noqa: BLE001 - a scheduler that cannot answer counts as no workers
                n = 0
            now = time.monotonic()
            if n:
                empty_since = None
                continue
            empty_since = empty_since or now
            if now - empty_since >= self.timeout:
                self.lost = True
                # closing the client makes the computation waiting on it raise in the run's thread
                with contextlib.suppress(Exception):
                    self.client.close(timeout=5)
                return


# --------------------------------------------------------------------------- the run


#: Largest frame kept whole in one dask chunk (bytes).
_WHOLE_FRAME_BYTES = 256 * 2**20


def _canonical_chunks(series):
    """One frame per chunk (whole frames up to 256 MB, else split along y).

    Every stage then sees the same block shapes whatever the store's own
    chunking, so results do not depend on how the input happened to be
    chunked (vectorised solvers give last-bit differences for different
    block shapes) and memory per task stays bounded.
    """
    frame = series.dtype.itemsize * series.sizes["y"] * series.sizes["x"] * series.sizes["energy"]
    rows = series.sizes["y"] if frame <= _WHOLE_FRAME_BYTES else max(
        1, int(series.sizes["y"] * _WHOLE_FRAME_BYTES // frame))
    return series.chunk({"time": 1, "y": rows, "x": -1, "energy": -1})


def _fit_window(series, cfg: Config):
    """The channels the Li maps need: MLLS fits only ``fit_range``, so the
    energy correction, the registration shift and the fit run on
    ``fit_range ± crop_margin_ev`` (the margin keeps the FFT energy shift's
    edge effects out of the fit window). Other mapping methods keep every channel.
    """
    lc = cfg.limap
    if lc.method != "mlls" or lc.crop_margin_ev < 0 or _plural_mode(cfg, series) != "none":
        return series  # (through the zero-loss peak every channel is needed)
    lo, hi = lc.fit_range[0] - lc.crop_margin_ev, lc.fit_range[1] + lc.crop_margin_ev
    e = series.energy.values
    if lo <= e.min() and hi >= e.max():
        return series
    cropped = series.sel(energy=slice(lo, hi))
    if cropped.sizes["energy"] < 10:
        raise DataValidationError(f"config [limap] fit_range {list(lc.fit_range)} eV holds fewer than 10 channels "
                                  f"of the series ({e.min():.4g}..{e.max():.4g} eV)")
    return cropped


def _holds_zero_loss(series) -> bool:
    e = np.asarray(series.energy.values, float)
    return bool(e.min() < 0 < e.max())


def _plural_mode(cfg: Config, series, *, low_loss=None) -> str:
    """``[limap] plural_scattering`` resolved: "auto" → "fourier-log" for spectra with their zero-loss
    peak (or a dual-EELS low loss), else "none"."""
    mode = cfg.limap.plural_scattering
    if mode != "auto":
        return mode
    return "fourier-log" if (low_loss is not None or cfg.input.low_loss or _holds_zero_loss(series)) else "none"


def _as_config(config) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return from_dict(config)
    return load_config(config)


def _token(obj) -> str:
    from dask.base import tokenize

    return tokenize(obj)


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
    """Read every frame once: which ones decode, hold finite values and pass the plausibility gates."""
    import xarray as xr

    from ._series import screen_reasons, screen_statistics

    series, sc = ctx["series"], ctx.config.screen
    stats, unreadable = screen_statistics(series, batch=ctx.config.compute.frames_per_batch,
                                          bar=lambda items: ctx.bar(items, "screen: read frames"),
                                          negative_below=sc.negative_below)
    reasons = np.array(screen_reasons(stats, unreadable, sc), dtype=object)
    good = reasons == ""
    with np.errstate(invalid="ignore", divide="ignore"):
        negative = stats["negative"] / np.maximum(stats["size"], 1)
    return xr.Dataset({"good": ("time", good), "reason": ("time", reasons.astype(str)),
                       "total_counts": ("time", stats["total"], {"long_name": "sum of the frame's finite values"}),
                       "negative_fraction": ("time", negative, {"long_name": "fraction of negative values"})},
                      coords={"time": series.time})


def _screen_params(ctx):
    """The ``[screen]`` keys the screen uses (the χ² gate's belong to ``fit_check``)."""
    sc = ctx.config.section("screen")
    return {k: v for k, v in sc.items() if k != "chi2_ratio"}


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
    _enough_frames(ctx, int(good.sum()), series.sizes["time"] + reader_bad - int(good.sum()))


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
                                            bar=lambda items: ctx.bar(items, "energy_drift: zero-loss"))
        ds = xr.Dataset({"energy_shift": ("time", shifts, {"units": "eV", "applied": 0,
                                                           "long_name": "zero-loss position (aligned per spectrum)"})},
                        coords={"time": series.time})
        if _keep(ctx):
            ds["si"] = series
        return ds
    if cfg.energy_drift.enabled:
        refs = ctx["references"](series.energy.values)
        shifts = _estimate_energy_drift(series, cfg.energy_drift.options, refs, cfg.limap.fit_range,
                                        batch=cfg.compute.frames_per_batch,
                                        bar=lambda items: ctx.bar(items, "energy_drift: estimate"))
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

    from ._register import apply_shifts, estimate_shifts

    cfg, si_e, full = ctx.config, ctx["energy_drift"], ctx["screen"]
    rc = cfg.register
    if rc.enabled:
        # The reference image is a broad energy-window sum. An energy shift
        # is uniform over a frame, so it changes that sum by a near-constant
        # factor per frame, which the mean-subtracted correlation ignores:
        # read the uncorrected series (one plain read) rather than
        # re-applying the energy correction to every pixel just for this.
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
    from ._register import apply_shifts

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


def _limap(ctx):
    si_r = ctx["register"]
    low = _good_low_loss(ctx)
    if low is not None and ctx.config.register.enabled:
        from ._register import apply_shifts

        low = apply_shifts(low, ctx.cache.load("register").drift.values)  # the same specimen drift
    plural = _plural_mode(ctx.config, si_r, low_loss=low)
    return _li_maps(si_r, ctx["references"](si_r.energy.values), ctx.config, plural=plural, low_loss=low)


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
            from ._sync import sync_frames

            _, starts = _frame_times(ctx)
            s_ = sync_frames(starts, ctx["log"], duration_s=ctx.config.input.frame_interval_s,
                             capacity_c=ctx.config.sync.capacity_c, allow_uncovered=True)
            spec = eels.calibration_from_charge(maps, s_["charge_c"].values, co_mol=float(cal["co_mol"]))
        frac = eels.li_fraction(maps, calibration=spec, smooth_co=ctx.config.limap.co_smoothing_px)
        x = frac.li_fraction
        undefined = ~np.isfinite(x)
        # where the (smoothed) Co map is ≤ 0 there is no LixCoO2 to speak of: x is set to 0 and counted
        out["li"] = x.where(~undefined, 0.0).astype("float32").assign_attrs(
            long_name="Li fraction x in LixCoO2", units="1", quantity="x")
        out["li_std"] = frac.li_fraction_std.where(~undefined, np.inf).astype("float32").assign_attrs(units="1")
        attrs.update(k=float(spec["k"]), k_std=float(spec["k_std"]), calibration=json.dumps(cal),
                     undefined_pixels=int(undefined.sum()))
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
    li = ds_l["li"].load()
    out = _denoise(li, ctx.config, ds_l["li_std"].values if "li_std" in ds_l else None, ctx.show_progress)
    return xr.Dataset({"li": out.astype("float32").assign_attrs(
        {k: v for k, v in li.attrs.items() if k in ("long_name", "units", "quantity")})})


def _frame_times(ctx):
    """Frame times (s, as stored) and their acquisition starts."""
    ic = ctx.config.input
    times = np.asarray(_gated(ctx, ctx["screen"]).time.values, float)
    return times, times - (0.5 * ic.frame_interval_s if ic.time_anchor == "mid" else 0.0)


def _sync(ctx):
    import xarray as xr

    from ._sync import sync_frames

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
    from ._flux import analyse, flux_error

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
    Stage("limap", _limap, inputs=("register", "references", "low_loss"),
          params=lambda ctx: {k: v for k, v in ctx.config.section("limap").items() if k != "calibration"},
          batched="time"),
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


def _sources(cfg: Config, *, series, log, references, segmentation, truth, bad_frames: list,
             ignored: list | None = None) -> dict:
    """Open every input before the first stage runs: ``{name: (value, key)}``."""
    import xarray as xr

    from ._series import read_series

    ic = cfg.input
    if series is None:
        if not ic.series:
            raise DataValidationError("config [input] series: no series given (a folder, file or .zarr store)")
        spath = cfg.path(ic.series)
        series, bad = read_series(spath, frame_interval_s=ic.frame_interval_s, start_s=ic.start_s,
                                  time_anchor=ic.time_anchor, on_bad_frame=ic.on_bad_frame,
                                  frame_pattern=ic.frame_pattern or None, max_missing_ratio=ic.max_missing_ratio,
                                  var=ic.var or None)
        input_key = fingerprint([spath]) + json.dumps(bad) + (f" var={ic.var}" if ic.var else "")
    else:
        if not isinstance(series, xr.DataArray) or set(series.dims) != {"time", "y", "x", "energy"}:
            raise DataValidationError("run: series must be an xarray.DataArray with dims (time, y, x, energy)")
        series = series.transpose("time", "y", "x", "energy")
        if series.chunks is None:
            series = series.chunk({"time": 1})
        bad = []
        input_key = _token(series)
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
                                       max_missing_ratio=ic.max_missing_ratio)
        if low_loss.sizes["time"] != full.sizes["time"] or low_loss.sizes["y"] != full.sizes["y"] \
                or low_loss.sizes["x"] != full.sizes["x"]:
            raise DataValidationError(
                f"config [input] low_loss: {lpath_ll} holds {dict(low_loss.sizes)}; expected the same frames and "
                f"pixels as the series {dict(full.sizes)}")
        low_loss = low_loss.assign_coords(time=full.time.values)
        low_loss.attrs = {k: v for k, v in low_loss.attrs.items() if k not in ("frame_files", "ignored_files")}
        low_key = fingerprint([lpath_ll])
    return frame_files, {
        "series": (full, input_key),
        "low_loss": (low_loss, low_key),
        "references": _reference_source(cfg, references, full),
        "log": (log, log_key),
        "segmentation": (segmentation, seg_token),
        "truth": (truth, truth_token),
    }


# --------------------------------------------------------------------------- the run


def run(config, *, series=None, log=None, references=None, segmentation=None, truth=None,
        on_stage: Callable[[str, StageRecord], None] | None = None, show_progress: bool | None = None,
        stages: tuple[str, ...] | None = None, extra_stages: tuple[Stage, ...] = (),
        wait: bool | float = False) -> RunResult:
    """Run the operando pipeline (cached, resumable) on the scheduler of ``[compute]``.

    Parameters
    ----------
    config : Config, dict or path to a TOML file
        See :func:`ionscope.operando.load_config`.
    series : xarray.DataArray (time, y, x, energy), optional
        The frames, instead of ``[input] series`` (e.g. straight from
        :func:`ionscope.simulate.operando_eels`); dask-backed stays lazy.
    log : xarray.Dataset, optional
        The electrochemistry log, instead of ``[input] log``.
    references : xarray.DataArray (component, energy) or callable, optional
        Instead of ``[limap] references``; a callable gets the energy axis
        (eV) and returns the spectra on it.
    segmentation : (y, x) int array, optional
        Grain labels (boundaries 0) for per-region statistics, instead of
        ``[analysis] segmentation``.
    truth : xarray.Dataset, optional
        Simulator ground truth (``flux_y``, ``flux_x``); the analysis then
        also reports its error against it.
    on_stage : callable(name, record), optional
        Called after each stage is done (cached or computed); raising from it
        stops the run there (what a crash would do) — the next run resumes.
    show_progress : bool, optional
        Progress bars with ETA per stage (default: on a terminal).
    stages : tuple of str, optional
        Run only these stages and what they need (default: every stage).
    extra_stages : tuple of Stage
        Stages appended to the operando table, e.g. the report
        (:func:`ionscope.report.operando_report_stage`, which ``ionscope run`` adds).
    wait : bool or float
        The output folder is held exclusively while the run lasts. Another
        live run holding it: refuse at once (False, default), wait (True) or
        wait at most this many seconds.

    Returns
    -------
    RunResult

    Raises
    ------
    FileFormatError, DataValidationError, CalibrationError
        Unusable input (messages name the file / frame / config key).
    OutputLockedError
        Another run holds the output folder.
    OutputPathError
        The output cannot be written (disk full, read-only, no permission, in the way), or would
        replace a file ionscope did not write (the message names it; see :mod:`ionscope._outdir`).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> from ionscope.simulate import operando_eels  # doctest: +SKIP
    >>> si, truth, log = operando_eels(seed=1)  # doctest: +SKIP
    >>> res = run({"output": {"dir": "out"}}, series=si, log=log)  # doctest: +SKIP
    >>> res.analysis.attrs["through_fraction"]  # doctest: +SKIP
    0.97
    """
    cfg = _as_config(config)
    table = TABLE + tuple(extra_stages)
    names = [st.name for st in table]
    if stages is not None:
        unknown = [s for s in stages if s not in names]
        if unknown:
            hint = " (the report stage is added by ionscope.report.operando_report_stage())" \
                if "report" in unknown else ""
            raise DataValidationError(f"run: unknown stage(s) {unknown}; expected names from {tuple(names)}{hint}")
    # disk full, read-only file system, no permission, a file in the way: one line with what to do
    with os_errors(cfg.out_dir):
        # every input is opened and checked before anything is created: a run that fails validation
        # leaves no folder, cache or lock behind
        bad_frames: list = []
        ignored_files: list = []
        frame_files, sources = _sources(cfg, series=series, log=log, references=references,
                                        segmentation=segmentation, truth=truth, bad_frames=bad_frames,
                                        ignored=ignored_files)
        _check_output_paths(cfg)
        planned = _planned_outputs(table, cfg)
        OutputFolder(cfg.out_dir).check_new(planned)  # (again below, under the lock)
        with contextlib.ExitStack() as held:
            folders = [held.enter_context(session(folder, wait=wait)) for folder in _lock_folders(cfg)]
            res = None
            try:
                folders[0].check_new(planned)  # what the stages will write in the output folder: new or ours
                cache_folder = session_for(cfg.cache_path)
                if cache_state(cfg.cache_path) in ("ours", "legacy"):  # its own marker proves it ionscope's
                    cache_folder.adopt(cache_folder.rel(cfg.cache_path))
                cache_folder.claim([cache_folder.rel(cfg.cache_path)], kind="dir", hint=" ([output] cache)")
                cache = StageCache(cfg.cache_path)
                cache.clear_stale()
                res = RunResult(config=cfg, cache=cache, bad_frames=bad_frames, ignored_files=ignored_files)
                ctx = Context(cache=cache, config=cfg, show_progress=show_progress,
                              batch=cfg.compute.frames_per_batch, result=res)
                ctx.info["frame_files"] = frame_files
                with _scheduler(cfg):
                    ctx = run_stages(table, cache=cache, sources=sources, targets=stages, ctx=ctx,
                                     on_stage=lambda name, rec: _record(res, on_stage, name, rec))
            except IonscopeError:
                if res is None or not res.stages:  # refused before any stage finished (too few good frames)
                    for folder in folders:
                        folder.discard_new()
                raise
        res.context = ctx
        return res


def _planned_outputs(table, cfg: Config) -> list[str]:
    """Names the stages will write in the output folder (``Stage.outputs``), known before they run."""
    ctx = Context(cache=None, config=cfg)
    return [name for st in table if getattr(st, "outputs", None) is not None for name in st.outputs(ctx)]


def _lock_folders(cfg: Config) -> list[Path]:
    """The output folder, and the cache's folder when the cache lives elsewhere."""
    out = cfg.out_dir
    folders = [out]
    cache_parent = cfg.cache_path.parent
    try:
        inside = cache_parent.resolve().is_relative_to(out.resolve())
    except OSError:
        inside = False
    if not inside:
        folders.append(cache_parent)
    return folders


def _input_paths(cfg: Config) -> dict[str, Path]:
    """The files and folders a config reads: ``{config key: path}``."""
    ic = cfg.input
    named = {"[input] series": ic.series, "[input] log": ic.log, "[input] low_loss": ic.low_loss,
             "[analysis] segmentation": cfg.analysis.segmentation}
    if cfg.limap.references and cfg.limap.references not in REFERENCE_MODELS:
        named["[limap] references"] = cfg.limap.references
    return {k: cfg.path(v) for k, v in named.items() if v}


def _check_output_paths(cfg: Config) -> None:
    """Before anything is written: the cache is a new path or a cache ionscope made, and neither the
    cache nor the output folder is (inside) an input."""
    from .._outdir import check_inputs
    from ._stages import cache_state

    cache, out = cfg.cache_path.resolve(), cfg.out_dir.resolve()
    if cache == out or cache in out.parents:
        raise ConfigError(f"config [output] cache = {str(cfg.cache_path)!r} is or holds the output folder {out}; "
                          f"the stage cache must be a path of its own (default: <dir>/cache.zarr)")
    inputs = _input_paths(cfg)
    check_inputs(cfg.out_dir, inputs, key="[output] dir")
    check_inputs(cfg.cache_path, inputs, key="[output] cache", any_input=True)
    state = cache_state(cfg.cache_path)
    if state.startswith("foreign"):
        raise OutputPathError(f"{cfg.cache_path}: {state.split(':', 1)[1].strip()}; [output] cache must be a new "
                              f"path or a cache ionscope made: choose another path (nothing was changed)")


def _record(res: RunResult, on_stage, name: str, rec: StageRecord) -> None:
    res.stages[name] = rec
    if on_stage is not None:
        on_stage(name, rec)
