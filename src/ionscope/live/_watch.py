# SPDX-License-Identifier: GPL-3.0-or-later
"""``watch``: the operando pipeline run frame by frame while the microscope acquires.

Each complete frame goes through the same science as ``ionscope run``: a
per-frame stage table (:func:`live_table`) walked by the pipeline's one runner
(:func:`ionscope.pipeline._graph.run_stages`) — the batch table's own
``energy_drift`` and ``limap`` stages, with the same block shapes and one BLAS
thread, so a frame's live Li map is the one the batch run computes whenever
the computation is the same — then:

* registration uses a *running* reference (``[register] reference``:
  ``"first"`` is causal already; ``"previous"`` chains to the last frame;
  ``"mean"`` uses the mean of the frames so far);
* denoising is *causal*: the configured denoiser runs on a sliding window of
  the last ``window`` raw maps and the newest frame of its output is kept;
* each frame is synchronised with the electrochemistry log as the CSV grows
  (a frame the log does not cover yet waits for it).

Every processed frame is cached in ``<output>/live/frames/`` so a restarted
``watch`` resumes where it stopped. When the acquisition ends (a stop file,
an idle timeout, Ctrl-C) the batch pipeline :func:`ionscope.operando.run`
runs on the same frames, so the final outputs are exactly those of
``ionscope run``; the causal live movie is kept apart in ``live/causal.nc``.

The per-frame step is :func:`process_frame`; quantities beyond the Li map
(x, t/λ, ...) plug in as *frame hooks* (:data:`FRAME_HOOKS`).

Each frame passes the batch run's plausibility gates (``[screen]``,
:mod:`ionscope.live._gates`) before and after its fit, against the medians of
the frames accepted so far; a refused frame is listed with its reason on the
dashboard and in ``live/summary.json``, and kept out of the live movie and flux.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from .._outdir import session
from ..errors import DataValidationError, FileFormatError, IonscopeError
from ..io import frame_time

from ..io import accepts_data
from ..io._follow import FrameFile, FrameFollower, LogFollower
from ._gates import LiveGates
from ._state import LiveState, load_npz_maps

_CACHE_SCHEMA = 2  # 2: frames cached under their number from the file name (was: rank from the first)


# --------------------------------------------------------------------------- per-frame science


@dataclass
class FrameContext:
    """What a frame hook sees: the frame at every step of :func:`process_frame`.

    ``frame`` is the raw (y, x, energy) spectrum image; ``corrected`` the
    energy- and drift-corrected (time=1, y, x, energy) series restricted to the
    fit window; ``fit`` the mapping result (``li``, ``li_std``, ``chi2``);
    ``config`` the run :class:`~ionscope.operando.Config`.
    """

    index: int
    frame: Any
    corrected: Any
    fit: Any
    config: Any
    references: Any


def pre_edge_intensity(ctx: FrameContext) -> dict:
    """Mean counts per channel in the 5 eV below the fit window's start.

    Proportional to thickness × probe current; a *trend* that falls while the
    probe current is steady means the region thins under the beam. It is not
    t/λ (that needs the zero-loss peak: :func:`ionscope.eels` thickness when
    available) and is labelled as such on the dashboard.
    """
    lo = float(ctx.config.limap.fit_range[0])
    e = ctx.frame.energy.values
    sel = (e >= lo - 5.0) & (e < lo)
    if not sel.any():
        sel = e < e[0] + 5.0
    img = np.asarray(ctx.frame.values[..., sel], float).mean(axis=-1)
    return {"scalars": {"pre_edge_counts": float(img.mean())}}


#: name → hook(FrameContext) → {"maps": {name: (y, x)}, "scalars": {name: float}}.
#: Every returned map is cached, selectable on the dashboard and written to the
#: causal movie file; every scalar is stored per frame. The EELS-physics issue's
#: x and t/λ slot in here: a hook returning ``maps={"x": ...}``,
#: ``scalars={"x_mean": ...}`` and ``maps={"t_over_lambda": ...}``,
#: ``scalars={"t_over_lambda_mean": ...}`` makes the page plot the x and t/λ
#: trends (instead of the Li weight and the pre-edge proxy) and the thinning
#: warning use t/λ.
FRAME_HOOKS: dict[str, Callable[[FrameContext], dict]] = {"pre_edge": pre_edge_intensity}


@dataclass
class Reference:
    """The running registration reference (what the next frame is registered onto)."""

    mode: str
    first: np.ndarray | None = None      # the first frame's image
    previous: np.ndarray | None = None   # the last frame's image ("previous")
    previous_shift: np.ndarray | None = None
    total: np.ndarray | None = None      # sum of the images so far ("mean")
    count: int = 0
    spectrum: np.ndarray | None = None   # first frame's summed spectrum (energy drift "edge")
    fraction_k: dict | None = None       # x calibration {"k", "k_std"} once known (from a region form)

    def update(self, image: np.ndarray, shift: np.ndarray, spectrum: np.ndarray | None = None) -> None:
        image = np.asarray(image)
        if self.first is None:
            self.first = image
            self.spectrum = spectrum
        self.previous, self.previous_shift = image, np.asarray(shift, float)
        self.total = image.astype(float) if self.total is None else self.total + image
        self.count += 1


def _register_shift(image: np.ndarray, ref: Reference, rc) -> np.ndarray:
    """(dy, dx) of this frame, with the arithmetic of the batch stage where it is causal."""
    from ..transport import estimate_shifts

    if ref.first is None or not rc.enabled:
        return np.zeros(2)
    up = rc.upsample_factor
    if rc.reference == "first":
        return estimate_shifts(np.stack([ref.first, image]), reference="first", upsample_factor=up)[1]
    if rc.reference == "previous":
        return ref.previous_shift + estimate_shifts(np.stack([ref.previous, image]), reference="first",
                                                    upsample_factor=up)[1]
    mean = ref.total / ref.count  # "mean": the mean of the frames so far, relative to the first frame
    s = estimate_shifts(np.stack([mean, ref.first, image]), reference="first", upsample_factor=up)
    return s[2] - s[1]


@accepts_data("frame")
def process_frame(frame, *, config, reference: Reference | None = None, references=None, index: int = 0,
                  time_s: float = 0.0, hooks: dict | None = None) -> dict:
    """One frame through energy drift → registration → Li map → hooks.

    Parameters
    ----------
    frame : xarray.DataArray (y, x, energy)
        A calibrated spectrum image.
    config : Config
        The run configuration (``[energy_drift]``, ``[register]``, ``[limap]`` used).
    reference : Reference, optional
        Running registration reference; updated in place. None: a new one.
    references : xarray.DataArray (component, energy), optional
        Edge references (default ``[limap] references``).
    index, time_s : int, float
        Frame number and time coordinate (s).
    hooks : dict, optional
        Frame hooks (default :data:`FRAME_HOOKS`).

    Returns
    -------
    dict
        ``maps`` ({"li", "li_std", "chi2", ...}: (y, x) float32), ``scalars``
        (``energy_shift``, ``dy``, ``dx``, ``li_mean``, ``chi2_mean``, ...),
        ``image`` (the registration image).

    References
    ----------
    M. Guizar-Sicairos et al., Opt. Lett. 33 (2008) 156, doi:10.1364/OL.33.000156 (registration);
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> from ionscope.simulate import operando_eels
    >>> from ionscope.operando import from_dict
    >>> si, truth, _ = operando_eels(shape=(8, 12), n_frames=1, energy_step=0.5)
    >>> out = process_frame(si.isel(time=0), config=from_dict({}))
    >>> out["maps"]["li"].shape, sorted(out["scalars"])[:3]
    ((8, 12), ['chi2_mean', 'dx', 'dy'])
    """
    import xarray as xr

    from ..pipeline._graph import run_stages
    from ..pipeline._eels import _canonical_chunks

    cfg = config
    if not isinstance(frame, xr.DataArray) or set(frame.dims) != {"y", "x", "energy"}:
        raise DataValidationError(f"process_frame: frame {index}: expected a DataArray with dims (y, x, energy)")
    frame = frame.transpose("y", "x", "energy")
    reference = Reference(cfg.register.reference) if reference is None else reference
    hooks = FRAME_HOOKS if hooks is None else hooks
    # the batch run's block shapes (one whole frame per chunk): same arithmetic, same bits
    series = _canonical_chunks(frame.expand_dims(time=[float(time_s)]).chunk())
    opts = dict(cfg.energy_drift.options)
    if opts.get("method") == "edge" and "reference" not in opts and reference.spectrum is not None:
        # causal: align to the first frame's spectrum (the batch default, the series mean, is the future too)
        cfg = cfg.replace(energy_drift={"options": {**opts, "reference": reference.spectrum.tolist()}})
    ref_model, ref_key = _references_for(cfg, references, series)
    cfg, fraction = _fraction_plan(cfg, reference, index)
    store = MemoryStore()
    table = live_table(fraction=fraction)
    sources = {"screen": (series, f"frame-{index}-{time_s}"), "references": (ref_model, ref_key),
               "reference_state": (reference, f"{reference.mode}-{reference.count}")}
    # other inputs the batch stages may read (e.g. a dual-EELS "low_loss" series): not followed live
    stages = {st.name for st in table}
    for name in {i for st in table for i in st.inputs} - stages - set(sources):
        sources[name] = (None, f"no-{name}")
    ctx = run_stages(table, cache=store, config=cfg, batch=cfg.compute.frames_per_batch, sources=sources,
                     targets=("fraction",) if fraction else ("limap",))
    fit = ctx["limap"].compute()
    e_shift = np.asarray(store.load("energy_drift").energy_shift.values, float)
    reg = store.load("register")
    shift = np.asarray(reg.drift.values, float)[0]
    image = np.asarray(reg.image.values)[0]
    spectrum = np.asarray(_fit_window_of(series, cfg).sum(("y", "x")).compute().values)[0]
    reference.update(image, shift, spectrum)
    # native dtype (the batch run's): a live map can be compared with the batch one bit for bit
    maps = {name: np.asarray(fit[name].values).reshape(frame.shape[:2])
            for name in ("li", "li_std", "chi2") if name in fit}
    li = maps["li"]
    scalars = {"energy_shift": float(e_shift[0]), "dy": float(shift[0]), "dx": float(shift[1]),
               "li_mean": float(np.nanmean(li))}
    if not fraction and "zero_loss" in fit:
        # uncalibrated real spectra: Li per zero-loss intensity (areal Li), as the batch fraction stage shows
        i0 = np.asarray(fit["zero_loss"].values, float).reshape(frame.shape[:2])
        i0 = np.where(i0 > 0, i0, np.nan) / 1e6  # per 10⁶ zero-loss counts, as the batch fraction stage
        maps["li_areal"] = (li / i0).astype(np.float32)
        if "li_std" in maps:
            maps["li_areal_std"] = (maps["li_std"] / i0).astype(np.float32)
        scalars["li_areal_mean"] = float(np.nanmean(maps["li_areal"]))
    if "chi2" in maps:
        scalars["chi2_mean"] = float(np.nanmean(maps["chi2"]))
    if "thickness" in fit:  # t/λ from the mapping's plural-scattering deconvolution (the batch limap stage)
        maps["t_over_lambda"] = np.asarray(fit["thickness"].values).reshape(frame.shape[:2])
        scalars["t_over_lambda_mean"] = float(np.nanmean(maps["t_over_lambda"]))
    if fraction:  # the batch fraction stage: x in LixCoO2 with [limap] calibration
        frac = ctx["fraction"].compute()
        if frac["li"].attrs.get("quantity") == "x":
            maps["x"] = np.asarray(frac["li"].values).reshape(frame.shape[:2])
            if "li_std" in frac:
                maps["x_std"] = np.asarray(frac["li_std"].values).reshape(frame.shape[:2])
            scalars["x_mean"] = float(np.nanmean(maps["x"]))
            if reference.fraction_k is None and "k" in frac.attrs:
                reference.fraction_k = {"k": float(frac.attrs["k"]), "k_std": float(frac.attrs.get("k_std", 0.0))}
            scalars["x_k"] = reference.fraction_k["k"] if reference.fraction_k else float("nan")
    fctx = FrameContext(index=index, frame=frame, corrected=ctx["register"], fit=fit, config=cfg,
                        references=ref_model(ctx["register"].energy.values))
    for name, hook in hooks.items():
        try:
            got = hook(fctx) or {}
        except IonscopeError as exc:  # a hook that cannot run on this frame: record why, go on
            scalars[f"{name}_error"] = str(exc)
            continue
        maps.update({k: np.asarray(v) for k, v in got.get("maps", {}).items()})
        scalars.update({k: float(v) for k, v in got.get("scalars", {}).items()})
    return {"maps": maps, "scalars": scalars, "image": image.astype(np.float32)}


def _references_for(cfg, references, series):
    """``(energy -> references, key)`` as the batch run gets them (the pipeline's own helper; newer
    layouts also look at the series, to refuse simulator references for real data)."""
    import inspect

    from ..pipeline._eels_sources import _reference_source

    if len(inspect.signature(_reference_source).parameters) >= 3:
        return _reference_source(cfg, references, series)
    return _reference_source(cfg, references)


def _fit_window_of(series, cfg):
    from ..pipeline._eels import _fit_window

    return _fit_window(series, cfg)


# --------------------------------------------------------------------------- the per-frame stage table


class MemoryStore:
    """A store for :func:`~ionscope.pipeline._graph.run_stages` that keeps one frame's results in memory.

    The live cache is the per-frame ``.npz`` of the watcher, so the per-frame
    stages need no Zarr round trip; results are materialised (as the batch
    run's Zarr store materialises them, float32 stays float32) and re-chunked
    one frame per chunk along the batched dimension, as reading them back
    from the batch cache would give.
    """

    def __init__(self):
        self._results: dict[str, tuple[str, Any]] = {}

    def has(self, name: str, key: str) -> bool:
        return name in self._results and self._results[name][0] == key

    def save(self, name: str, key: str, value) -> None:
        self._results[name] = (key, value.compute() if hasattr(value, "compute") else value)

    def save_batched(self, name: str, key: str, ds, *, dim: str, batch: int, progress=None, on_batch=None) -> int:
        self._results[name] = (key, ds.compute().chunk({dim: 1}))
        return 0

    def load(self, name: str):
        return self._results[name][1]


def _live_register(ctx):
    """Registration onto the running reference (``ctx["reference_state"]``), not onto the whole series."""
    import xarray as xr

    from ..transport import apply_shifts
    from ..pipeline._eels import _keep

    cfg, full, si_e, ref = ctx.config, ctx["screen"], ctx["energy_drift"], ctx["reference_state"]
    rc = cfg.register
    window = full.sel(energy=slice(*rc.window_ev)) if rc.window_ev else full
    image = window.sum("energy").compute()
    shift = _register_shift(np.asarray(image.values)[0], ref, rc)[None, :]
    ds = xr.Dataset({"drift": (("time", "component"), shift, {"units": "px"}), "image": image},
                    coords={"component": ["dy", "dx"], "time": si_e.time})
    if _keep(ctx):
        ds["si"] = apply_shifts(si_e, shift) if rc.enabled else si_e
    return ds


def _live_register_view(ctx, ds):
    # the batch stage's view: what downstream stages see of a registered frame is the same live and batch
    from ..pipeline._eels import _register_view

    return _register_view(ctx, ds)


def _fraction_plan(cfg, reference: Reference, index: int):
    """Whether this frame gets x (the batch ``fraction`` stage, where the pipeline has one), and with
    which calibration: ``{"k": ...}`` as given; a region form calibrates k once, on its frame, and
    later frames use that k (as the batch run does); the charge form needs the whole series (the
    final run computes it) — live maps then stay Li weights."""
    from ..pipeline._eels import TABLE

    if "fraction" not in {st.name for st in TABLE}:
        return cfg, False
    cal = dict(getattr(cfg.limap, "calibration", {}) or {})
    if not cal or "k" in cal:
        return cfg, bool(cal)
    if "region" in cal:
        if reference.fraction_k is not None:
            return cfg.replace(limap={"calibration": dict(reference.fraction_k)}), True
        if index == int(cal.get("frame", 0)):
            region = dict(cal, frame=0)  # the live series holds this one frame
            return cfg.replace(limap={"calibration": region}), True
    return cfg, False


def live_table(*, fraction: bool = False) -> tuple:
    """The per-frame stage table: the batch table's own ``energy_drift`` and ``limap`` (and, for x,
    ``fraction``) stages, with ``register`` replaced by registration onto the running reference;
    ``screen`` (the frame, already read and checked by the watcher) and ``reference_state`` are sources."""
    from ..pipeline._graph import Stage
    from ..pipeline._eels import TABLE, _keep, _spectra_dim

    by_name = {st.name: st for st in TABLE}
    register = Stage("register", _live_register, inputs=("screen", "energy_drift", "reference_state"),
                     params=lambda ctx: [ctx.config.section("register"), _keep(ctx)], batched=_spectra_dim,
                     view=_live_register_view)
    table = (by_name["energy_drift"], register, by_name["limap"])
    return table + (by_name["fraction"],) if fraction else table


def causal_denoise(raw_window: np.ndarray, std_window: np.ndarray | None, config, *, whole: bool = False):
    """The newest frame of the configured denoiser run on the last frames only (causal).

    ``whole=True`` returns the denoised window (time, y, x) instead of its newest frame.
    """
    import xarray as xr

    from ..pipeline._eels import _denoise

    da = xr.DataArray(np.asarray(raw_window, np.float32), dims=("time", "y", "x"))
    out = np.asarray(_denoise(da, config, std_window, show_progress=False).values, np.float32)
    return out if whole else out[-1]


def window_flux(movie: np.ndarray, times, states, *, pixel_nm: float, config) -> dict:
    """Li flux at the newest frame, from the causally denoised window (the past only).

    :func:`ionscope.operando.analyse` (``[analysis]`` options) on the window;
    returns the newest frame's ``toward_electrolyte`` (mean through-film flux,
    + toward the electrolyte; Li-map units × nm/s) and ``through_fraction``.
    """
    import xarray as xr

    from ..transport import analyse

    ny, nx = movie.shape[1:]
    li = xr.DataArray(movie, dims=("time", "y", "x"),
                      coords={"time": np.asarray(times, float), "y": np.arange(ny) * pixel_nm,
                              "x": np.arange(nx) * pixel_nm})
    ac = config.analysis
    known = states is not None and all(s not in (None, "", "uncovered") for s in states)
    an = analyse(li, states=np.asarray(states, str) if known else None, method=ac.method, interface=ac.interface,
                 open_edges=ac.open_edges, x_boundary=ac.x_boundary, profile_bins=ac.profile_bins,
                 rest_states=ac.rest_states)
    return {"flux_toward_electrolyte": float(an.toward_electrolyte.values[-1]),
            "flux_through_fraction": float(an.through_fraction.values[-1])}


# --------------------------------------------------------------------------- the watcher


@dataclass
class WatchResult:
    """What a live session produced.

    Parameters
    ----------
    frames : list
        One record per processed frame.
    bad_frames : list
        Frames left out, with why.
    warnings : dict
        Warnings raised during the session, by kind.
    ended_by : str
        ``"stop file"``, ``"timeout"``, ``"interrupted"`` or ``"stopped"``.
    run : RunResult, optional
        The batch run at the end (None with ``final=False``).
    url : str, optional
        The dashboard's address.
    live_dir : Path, optional
        Where the live results are kept.
    psnr_causal_vs_batch : float, optional
        PSNR (dB) of the live (causal) denoised maps against the batch ones.
    resumed_frames : int
        Frames found processed by an earlier session.
    ignored_files : list
        Files in the series folder that are not frames.

    Examples
    --------
    >>> WatchResult(ended_by="stop file").frames
    []
    """

    frames: list = field(default_factory=list)       # one record per processed frame
    bad_frames: list = field(default_factory=list)
    warnings: dict = field(default_factory=dict)
    ended_by: str = ""                                 # "stop file" | "timeout" | "interrupted" | "stopped"
    run: Any = None                                    # the batch RunResult (None with final=False)
    url: str | None = None
    live_dir: Path | None = None
    psnr_causal_vs_batch: float | None = None
    resumed_frames: int = 0
    ignored_files: list = field(default_factory=list)  # files in the series folder that are not frames


def _cache_key(cfg, window: int, hooks: dict) -> str:
    blob = json.dumps({"schema": _CACHE_SCHEMA, "window": window, "hooks": sorted(hooks),
                       **{s: cfg.section(s)
                          for s in ("input", "screen", "energy_drift", "register", "limap", "denoise")}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class _Session:
    """The watch loop's state (one per call)."""

    def __init__(self, cfg, *, references, window, state: LiveState, expected_frames, poll_s, settle_s, late_s,
                 stop_file, sidecar, hooks):
        self.cfg = cfg
        self.hooks = FRAME_HOOKS if hooks is None else dict(hooks)
        self.references = references
        self.window = int(window)
        self.state = state
        self.expected = expected_frames
        self.poll_s = poll_s
        ic = cfg.input
        if not ic.series:
            raise DataValidationError("config [input] series: no series folder given")
        self.folder = cfg.path(ic.series)
        if self.folder.exists() and not self.folder.is_dir():
            raise DataValidationError(f"{self.folder}: watch follows a folder of frame files; "
                                      f"for a finished store use ionscope run")
        self.stop_path = Path(stop_file) if stop_file and Path(stop_file).is_absolute() else \
            self.folder / (stop_file or "STOP")
        # the batch run's frame-numbering rule and log parser (ionscope.io): live and final runs read alike
        self.frames = FrameFollower(self.folder, settle_s=settle_s, late_s=late_s, sidecar=sidecar,
                                    pattern=getattr(ic, "frame_pattern", "") or None,
                                    max_missing_ratio=getattr(ic, "max_missing_ratio", 10.0))
        self.log = LogFollower(cfg.path(ic.log), missing=ic.log_missing,
                               duplicates=getattr(ic, "log_duplicates", "error"),
                               resets=getattr(ic, "log_resets", "error")) if ic.log else None
        self.ignored_seen = 0
        self.live = cfg.out_dir / "live"
        self.cache_dir = self.live / "frames"
        self.reference = Reference(cfg.register.reference)
        self.gates = LiveGates(cfg.screen)  # the [screen] plausibility gates, medians of the frames so far
        # raw maps (and their standard errors) of the newest frames, for the causal window;
        # bounded: older ones are read back from the cache when a late denoising needs them
        self.hist: OrderedDict[int, tuple] = OrderedDict()
        self.pending_denoise: list[int] = []
        self.records: list[dict] = []
        self.pending_sync: list[dict] = []
        self.energy = None
        self.frame_bytes = 0
        self.resumed = 0
        self.last_new = time.monotonic()
        state.set_meta(series=str(self.folder), log=str(cfg.path(ic.log)) if ic.log else "",
                       frame_interval_s=ic.frame_interval_s, window=self.window, out_dir=str(cfg.out_dir),
                       denoise=cfg.denoise.method, register_reference=cfg.register.reference)
        if self.log is not None:
            state.set_log(self.log)
        if getattr(ic, "low_loss", ""):
            state.warn("low_loss", "[input] low_loss (dual EELS) is not followed live: live maps are made without "
                                   "the plural-scattering correction; the final run uses it")

    def list_ignored(self) -> None:
        """Files in the series folder that are not frames: listed once on the dashboard (never analysed)."""
        ignored = self.frames.ignored
        if len(ignored) > self.ignored_seen:
            self.ignored_seen = len(ignored)
            pattern = getattr(self.cfg.input, "frame_pattern", "") or "the last run of digits"
            self.state.warn("ignored", f"{len(ignored)} file(s) in the series folder are not named like frames "
                                       f"([input] frame_pattern: {pattern}) and are ignored: "
                                       + ", ".join(ignored[:10]) + (" ..." if len(ignored) > 10 else ""))

    # -- cache ---------------------------------------------------------------------
    def _cache_path(self, k: int) -> Path:
        return self.cache_dir / f"frame_{k:06d}.npz"

    def load_cache(self) -> None:
        """Resume: reuse cached frames whose file is unchanged, in order, until the first gap."""
        key = _cache_key(self.cfg, self.window, self.hooks)
        key_file = self.live / "key.json"
        if key_file.exists() and json.loads(key_file.read_text()).get("key") != key:
            for old in self.cache_dir.glob("frame_*.npz"):  # another configuration: start afresh
                old.unlink()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(key_file) as tmp:
            tmp.write_text(json.dumps({"key": key}))
        self.frames.poll()  # learn the first frame number
        files = self.frames._scan()
        first = self.frames.first_number if self.frames.first_number is not None else 0
        k = first
        while self._cache_path(k).exists():
            p = self._cache_path(k)
            try:
                with np.load(p) as z:
                    rec = json.loads(str(z["record"]))
                    if rec.get("bad"):  # refused by a plausibility gate: listed again, not reprocessed
                        image = z["image"] if rec.get("bad_after_use") and "image" in z.files else None
                    else:
                        image, raw = z["image"], z["map_li"]
                        std = z["map_li_std"] if "map_li_std" in z.files else None
            except (OSError, ValueError, KeyError):
                break
            f = files.get(k)
            if f is None or rec.get("fingerprint") != _fingerprint(f):
                break
            if rec.get("bad"):
                self.frames.bad.append({"frame": k, "file": rec.get("file", ""), "reason": rec["bad"]})
                if image is not None:  # refused after it had become the registration reference: as then
                    self.reference.update(image, np.array([rec["dy"], rec["dx"]]))
                k += 1
                continue
            self.gates.accept(rec, judged=rec.get("gate_judged", True))
            self.reference.update(image, np.array([rec["dy"], rec["dx"]]))
            if np.isfinite(rec.get("x_k", np.nan)) and self.reference.fraction_k is None:
                self.reference.fraction_k = {"k": rec["x_k"], "k_std": 0.0}
            self._remember(k, *_mapped(load_npz_maps(p) or {"li": raw, "li_std": std}))
            rec.pop("published_at", None)
            self.records.append(rec)
            if "li_causal_mean" not in rec:
                self.pending_denoise.append(k)
            if rec.get("covered") is False:
                self.pending_sync.append(rec)
            self.state.put_frame(rec, {})
            k += 1
        for stale in self.cache_dir.glob("frame_*.npz"):
            number = stale.stem.split("_")[1]
            # (only names _cache_path makes)
            if number.isdigit() and len(number) == 6 and (int(number) >= k or int(number) < first):
                stale.unlink()
        self.frames.start = self.frames._next = k
        self.resumed = len(self.records)
        if self.records:
            self.state.set_meta(resumed_frames=self.resumed)

    def _save(self, rec: dict, maps: dict, image: np.ndarray) -> None:
        with atomic_path(self._cache_path(rec["frame"])) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, record=np.array(json.dumps(rec)), image=image,
                         **{f"map_{n}": v for n, v in maps.items()})

    def loader(self, k: int):
        return load_npz_maps(self._cache_path(k))

    def _remember(self, k: int, raw, std) -> None:
        self.hist[k] = (raw, std)
        while len(self.hist) > self.window + 32:
            self.hist.popitem(last=False)

    def _record(self, k: int) -> dict | None:
        return next((r for r in reversed(self.records) if r["frame"] == k), None)

    # -- one frame -------------------------------------------------------------------
    def handle(self, ff: FrameFile, *, final_attempt: bool) -> bool:
        """Process one released frame; False when it must be retried later."""
        from .. import io as iio

        try:
            da = iio.load(ff.path, var=self.cfg.input.var or None)
            if "energy" not in da.dims or set(da.dims) != {"y", "x", "energy"}:
                raise FileFormatError(f"{ff.path}: expected a (y, x, energy) spectrum image, got dims {da.dims}")
            e = np.asarray(da.energy.values, float) if "energy" in da.coords else np.arange(0.0)
            if e.size > 1 and not (np.all(np.isfinite(e)) and np.all(np.diff(e) > 0)):
                # (issue 17) a descending axis would pair channels with the wrong energies: the frame is refused
                raise FileFormatError(f"{ff.path}: coordinate 'energy' is not strictly increasing ({e[0]:.6g} … "
                                      f"{e[-1]:.6g} eV); expected ascending energies")
            if self.energy is not None:
                e = np.asarray(da.energy.values, float)
                if e.shape != self.energy.shape or np.max(np.abs(e - self.energy)) > 1e-3 * abs(
                        float(self.energy[1] - self.energy[0])):
                    raise FileFormatError(f"{ff.path}: energy axis differs from the first frame's")
        except IonscopeError as exc:
            given_up = self.frames.failed(ff, str(exc).replace(f"{ff.path}: ", ""),
                                          attempts=1 if final_attempt else 3)
            self.state.set_bad(self.frames.bad)
            return given_up
        if self.energy is None:
            self.energy = np.asarray(da.energy.values, float)
            px = float(abs(da.x.values[1] - da.x.values[0])) if "x" in da.coords and da.sizes["x"] > 1 else 1.0
            self.state.set_meta(ny=int(da.sizes["y"]), nx=int(da.sizes["x"]), n_energy=int(da.sizes["energy"]),
                                pixel_nm=px, pixel_units=str(da.x.attrs.get("units", "px")) if "x" in da.coords
                                else "px")
        self.frame_bytes = max(self.frame_bytes, ff.size)
        ic = self.cfg.input
        k = ff.index
        # frame number k (from its name) at start_s + k · interval: the batch reader's rule (ionscope.io)
        t = float(frame_time(k, start_s=ic.start_s, interval_s=ic.frame_interval_s, anchor=ic.time_anchor))
        t0 = time.perf_counter()
        gate_stats, reason = self.gates.counts(da.transpose("y", "x", "energy").values)
        if reason:
            return self._refuse(ff, reason)
        before = dataclasses.replace(self.reference)  # process_frame moves the reference on; a refused fit must not
        try:
            out = process_frame(da, config=self.cfg, reference=self.reference, references=self.references,
                                index=k, time_s=t, hooks=self.hooks)
        except IonscopeError as exc:
            if not self.records:
                raise  # the very first frame: a configuration problem, not a bad frame
            self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": f"not processed: {exc}"})
            self.state.set_bad(self.frames.bad)
            return True
        reason = self.gates.fit(out["scalars"].get("chi2_mean"))
        if reason:
            self.reference = before
            return self._refuse(ff, reason)
        maps, sc = out["maps"], out["scalars"]
        rec = {"frame": k, "file": ff.path.name, "time_s": t, "fingerprint": _fingerprint(ff.path),
               "complete_how": ff.how, "mtime": ff.mtime, **sc, **gate_stats, "gate_judged": self.gates.judging,
               "process_s": time.perf_counter() - t0}
        now = time.time()
        rec["published_at"] = now
        rec["latency_s"] = now - ff.mtime
        self._sync(rec)
        self._save(rec, maps, out["image"])
        self.state.put_frame(rec, {n: v for n, v in maps.items() if n != "li_std"})
        self._remember(k, *_mapped(maps))
        self.records.append(rec)
        self.pending_denoise.append(k)
        self.last_new = time.monotonic()
        self.gates.accept(rec, judged=rec["gate_judged"])
        for j, why in self.gates.review():
            self._refuse_late(j, why)
        self._warnings(rec)
        return True

    def _refuse(self, ff: FrameFile, reason: str) -> bool:
        """A frame a plausibility gate refuses: listed with its reason, cached as such (a resume skips it)."""
        k = ff.index
        self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": reason})
        self.state.set_bad(self.frames.bad)
        rec = {"frame": k, "file": ff.path.name, "fingerprint": _fingerprint(ff.path), "bad": reason}
        with atomic_path(self._cache_path(k)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, record=np.array(json.dumps(rec)))
        self.last_new = time.monotonic()
        return True

    def _refuse_late(self, k: int, reason: str) -> None:
        """A frame accepted before a median could judge it, found implausible once there were enough frames."""
        rec = self._record(k)
        if rec is None:
            return
        self.records.remove(rec)
        self.pending_sync = [r for r in self.pending_sync if r["frame"] != k]
        if k in self.pending_denoise:
            self.pending_denoise.remove(k)
        self.hist.pop(k, None)
        rec.update(bad=reason, bad_after_use=True)
        self.frames.bad.append({"frame": k, "file": rec.get("file", ""), "reason": reason})
        self.frames.bad.sort(key=lambda b: b["frame"])
        self.state.set_bad(self.frames.bad)
        p = self._cache_path(k)
        maps = load_npz_maps(p) or {}
        with np.load(p) as z:
            image = z["image"]
        self._save(rec, maps, image)

    def denoise_next(self) -> bool:
        """Causally denoise one waiting frame (the newest first); False when none waits.

        Raw maps come first: while frames are waiting to be mapped, denoising
        waits, so the newest raw map's latency stays bounded even when the
        denoiser is slower than the frame rate; the skipped frames are filled
        in (newest first) whenever the watcher is idle, and all of them before
        the final run. A frame's causal window is the ``window`` processed
        frames up to it, whenever it is computed.
        """
        if not self.pending_denoise:
            return False
        k = max(self.pending_denoise)
        self.pending_denoise.remove(k)
        rec = self._record(k)
        # the window: the last frames up to k that map the same quantity (x, or the Li weight)
        is_x = "x_mean" in rec
        done = [r["frame"] for r in self.records if r["frame"] <= k and ("x_mean" in r) == is_x][-self.window:]
        raws, stds = [], []
        for j in done:
            if j not in self.hist:
                self.hist[j] = _mapped(self.loader(j) or {})
            raws.append(self.hist[j][0])
            stds.append(self.hist[j][1])
        t1 = time.perf_counter()
        movie = causal_denoise(np.stack(raws), None if any(s is None for s in stds) else np.stack(stds), self.cfg,
                               whole=True)
        causal = movie[-1]
        rec["denoise_s"] = time.perf_counter() - t1
        if len(done) >= 2:  # flux so far: the transport analysis on the causally denoised window
            recs = [self._record(j) for j in done]
            try:
                rec.update(window_flux(movie, [r["time_s"] for r in recs], [r.get("state") for r in recs],
                                       pixel_nm=float(self.state.meta.get("pixel_nm", 1.0)), config=self.cfg))
            except IonscopeError as exc:
                rec["flux_error"] = str(exc)
        rec["li_causal_mean"] = float(np.nanmean(causal))
        rec["latency_denoised_s"] = time.time() - rec["mtime"]
        p = self._cache_path(k)
        maps = load_npz_maps(p) or {}
        with np.load(p) as z:
            image = z["image"]
        maps["li_causal"] = causal
        self._save(rec, maps, image)
        self.state.put_frame(rec, {"li_causal": causal})
        return True

    def _sync(self, rec: dict) -> None:
        """Voltage, current, charge and state of this frame from the log so far (or wait for it)."""
        if self.log is None:
            return
        from ..transport import sync_frames

        ic = self.cfg.input
        start = rec["time_s"] - (0.5 * ic.frame_interval_s if ic.time_anchor == "mid" else 0.0)
        if self.log.t_end < start + ic.frame_interval_s:
            rec["covered"] = False
            self.pending_sync.append(rec)
            return
        ds = self.log.dataset()
        try:
            s = sync_frames(np.array([start]), ds, duration_s=ic.frame_interval_s, capacity_c=self.cfg.sync.capacity_c,
                            allow_uncovered=True)
        except DataValidationError as exc:
            rec["sync_error"] = str(exc)
            return
        rec["covered"] = bool(s.covered.values[0])
        for name in ("voltage", "current", "charge_c"):
            if name in s:
                v = float(s[name].values[0])
                rec[name] = v if np.isfinite(v) else None
        rec["state"] = str(s.state.values[0])

    def resync(self) -> None:
        """Frames that waited for the log, now that it grew."""
        if not self.pending_sync:
            return
        waiting, self.pending_sync = self.pending_sync, []
        for rec in waiting:
            self._sync(rec)
            if rec.get("covered"):
                self.state.put_frame(rec, {})
                p = self._cache_path(rec["frame"])
                maps = load_npz_maps(p)
                if maps is not None:
                    with np.load(p) as z:
                        image = z["image"]
                    self._save(rec, maps, image)

    def _warnings(self, rec: dict) -> None:
        st = self.state
        recs = self.records
        # χ² far above its running median: the references no longer describe the spectra
        chi = [r["chi2_mean"] for r in recs[:-1] if r.get("chi2_mean") is not None]
        if len(chi) >= 3 and rec.get("chi2_mean") is not None and rec["chi2_mean"] > 2.0 * float(np.median(chi)):
            st.warn("chi2", f"frame {rec['frame']}: mean χ² {rec['chi2_mean']:.3g} is over twice the median "
                            f"so far ({np.median(chi):.3g}): reference spectra may not fit (phase change, "
                            f"contamination, energy calibration)")
        else:
            st.warn("chi2", None)
        # χ² drifting away from 1 (slowly: the running median follows it): the noise model no longer holds
        last = [r["chi2_mean"] for r in recs[-3:] if r.get("chi2_mean") is not None]
        level = float(np.median(last)) if len(last) == 3 else None
        if level is not None and not 0.5 <= level <= 2.0:
            st.warn("chi2_level", f"mean reduced χ² of the last 3 frames is {level:.2g}, far from 1: the noise "
                                  f"model does not describe the spectra (noise {'over' if level < 0.5 else 'under'}"
                                  "estimated: dose, gain or detector setting changed?); σ and pulls are off")
        else:
            st.warn("chi2_level", None)
        # thinning: t/λ when a frame hook measures it, else the pre-edge intensity (a proxy)
        tl = [r["t_over_lambda_mean"] for r in recs if r.get("t_over_lambda_mean") is not None]
        pe = tl or [r["pre_edge_counts"] for r in recs if r.get("pre_edge_counts") is not None]
        if len(pe) >= 2:
            base = float(np.median(pe[:3]))
            drop = 1.0 - pe[-1] / base if base > 0 else 0.0
            what = ("mean t/λ" if tl else "pre-edge signal")
            st.warn("thinning", None if drop < 0.1 else
                    f"{what} down {100 * drop:.0f} % since the first frames: the region may be thinning under the "
                    f"beam" + ("" if tl else " (or the probe current dropped); a proxy, not t/λ"))
        self.check_disk()

    def check_disk(self) -> None:
        """Warn early: free space against the frames still to come and the final run's cache."""
        if not self.frame_bytes:
            return
        n_done = len(self.records)
        if self.expected:
            to_come = max(0, int(self.expected) - n_done)
            horizon = f"the {to_come} frames still expected"
        else:
            to_come = int(np.ceil(3600.0 / self.cfg.input.frame_interval_s))
            horizon = f"one more hour ({to_come} frames)"
        # the microscope writes each frame; the final run caches the cropped series twice
        crop = 2 if self.cfg.compute.cache_spectra else 0
        need = to_come * self.frame_bytes + (n_done + to_come) * self.frame_bytes * crop * 0.6
        try:
            free = _free_bytes(self.folder)
        except OSError:
            return
        self.state.set_meta(disk_free_gb=free / 1e9)
        self.state.warn("disk", None if free >= need else
                        f"disk space: {free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed for {horizon} "
                        f"and the final run's cache")


def _mapped(maps: dict) -> tuple:
    """(map, σ) of the quantity the movie is made of: x where the frame has it, else the Li weight."""
    if "x" in maps:
        return maps["x"], maps.get("x_std")
    if "li_areal" in maps:
        return maps["li_areal"], maps.get("li_areal_std")
    return maps.get("li"), maps.get("li_std")


def _fingerprint(path: Path) -> str:
    """A frame file's identity by content (name, size, SHA-256): other bytes of the same size and
    modification time are processed again, never taken from the live cache."""
    from ..pipeline._stores import _sha256

    path = Path(path)
    return f"{path.name}|{path.stat().st_size}|{_sha256(path)}"


def watch(config, *, references=None, serve: bool = True, host: str = "127.0.0.1", port: int = 0,
          token: str | None = None, window: int = 6, poll_s: float = 0.25, settle_s: float = 1.0,
          late_s: float | None = None, idle_timeout_s: float | None = None, stop_file: str = "STOP",
          sidecar: str | None = None, expected_frames: int | None = None, final: bool = True,
          final_stages: tuple = (), hooks: dict | None = None, hold: bool = False,
          stop_event: threading.Event | None = None, on_ready: Callable[[str], None] | None = None,
          on_frame: Callable[[dict], None] | None = None, on_end: Callable[[WatchResult], None] | None = None,
          show_progress: bool | None = None, on_wait: Callable[[str], None] | None = None,
          wait_every_s: float = 5.0) -> WatchResult:
    """Follow an acquisition folder while it is written: live Li maps, then the batch run.

    Parameters
    ----------
    config : Config, dict or path to a TOML file
        As for :func:`ionscope.operando.run`; ``[input] series`` must be the
        folder the microscope writes frame files into, ``[input] log`` the CSV
        log it appends to.
    references : xarray.DataArray (component, energy), optional
        Instead of ``[limap] references``.
    serve : bool
        Serve the live dashboard (see :class:`ionscope.live.Dashboard`).
    host, port, token : str, int, str
        Dashboard address (``port=0``: any free port). Binding anything but
        127.0.0.1/localhost requires a token (one is generated when None).
    window : int
        Frames in the causal denoising window.
    poll_s, settle_s, late_s : float
        Polling period; size-stable time after which a frame file counts as
        complete; how long a missing frame is waited for (default 3 frame
        intervals, at least 10 s).
    idle_timeout_s : float, optional
        End when no new frame arrived for this long (default: never).
    stop_file : str
        Name (in the series folder) or absolute path of the file that ends the acquisition.
    sidecar : str, optional
        Suffix of a "frame done" sidecar file written by the acquisition software.
    expected_frames : int, optional
        Frames the acquisition will write (for the disk-space warning).
    final : bool
        Run the batch pipeline when the acquisition ends.
    hooks : dict, optional
        Frame hooks (default :data:`FRAME_HOOKS`): name → ``hook(FrameContext)``.
    final_stages : tuple of Stage
        Extra stages for that run, as ``ionscope run`` adds them (the report
        stage, where the pipeline takes ``extra_stages``; the CLI passes it).
    hold : bool
        Keep serving the dashboard after the end until Ctrl-C (or ``stop_event``).
    stop_event : threading.Event, optional
        Set it to end the session (as Ctrl-C does).
    on_ready, on_frame, on_end : callable, optional
        Called with the dashboard URL once serving / with each frame's record /
        with the result once the final run is done (before ``hold``).
    on_wait : callable, optional
        Called every ``wait_every_s`` seconds until the first frame arrives with a
        line saying what is awaited (folder, file pattern, log, how to stop); the
        dashboard shows the same line as a warning.

    Returns
    -------
    WatchResult

    Raises
    ------
    DataValidationError, FileFormatError
        Unusable configuration or log (messages name the file / key).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> import tempfile, threading
    >>> from ionscope.simulate import acquire
    >>> acq = acquire(tempfile.mkdtemp(), n_frames=3, shape=(16, 24), energy_step=0.5, speed=300.0)
    >>> res = watch(acq.config_path, serve=False, settle_s=0.1, poll_s=0.05,
    ...             final=False)  # doctest: +ELLIPSIS
    >>> len(res.frames), res.ended_by
    (3, 'stop file')
    """
    from ..pipeline._run import as_config as _as_config

    cfg = _as_config(config)
    if late_s is None:
        late_s = max(10.0, 3.0 * cfg.input.frame_interval_s)
    if int(window) < 1:
        raise DataValidationError(f"watch: window must be >= 1 frame, got {window!r}")
    stop_event = stop_event or threading.Event()
    where = cfg.path(cfg.input.series) if cfg.input.series else Path(".")
    state = LiveState(title=f"ionscope live · {where.parent.name}/{where.name}")
    sess = _Session(cfg, references=references, window=window, state=state, expected_frames=expected_frames,
                    poll_s=poll_s, settle_s=settle_s, late_s=late_s, stop_file=stop_file, sidecar=sidecar,
                    hooks=hooks)
    state._loader = sess.loader
    result = WatchResult(live_dir=sess.live)
    # the output folder is held for the whole session (the final run shares it): only names ionscope owns
    with session(cfg.out_dir) as out:
        out.claim([sess.live.name], kind="dir", hint=" (the live cache)", mark_dirs=True)  # (marked: proof later)
        return _watch_session(sess, state, result, cfg, stop_event, references=references, serve=serve, host=host,
                              port=port, token=token, idle_timeout_s=idle_timeout_s, final=final,
                              final_stages=final_stages, hold=hold, on_ready=on_ready, on_frame=on_frame,
                              on_end=on_end, on_wait=on_wait, wait_every_s=wait_every_s,
                              show_progress=show_progress)


def _watch_session(sess, state, result, cfg, stop_event, *, references, serve, host, port, token, idle_timeout_s,
                   final, final_stages, hold, on_ready, on_frame, on_end, on_wait, wait_every_s,
                   show_progress) -> WatchResult:
    server = None
    try:
        if serve:
            from ._server import Dashboard

            server = Dashboard(state, host=host, port=port, token=token).start()
            result.url = server.url
            if on_ready is not None:
                on_ready(server.url)
        sess.load_cache()
        result.resumed_frames = sess.resumed
        state.set_phase("watching")
        result.ended_by = _loop(sess, stop_event, idle_timeout_s=idle_timeout_s, on_frame=on_frame, on_wait=on_wait,
                                wait_every_s=wait_every_s)
        result.frames = [dict(r) for r in sess.records]
        result.bad_frames = [dict(b) for b in sess.frames.bad]
        result.ignored_files = list(sess.frames.ignored)
        result.warnings = dict(state.warnings)
        _write_causal(sess)
        if final and sess.records:
            state.set_phase("final batch run")
            from ..pipeline import run as run_pipeline

            result.run = run_pipeline(cfg, references=references, show_progress=show_progress,
                                      extra_stages=tuple(final_stages))
            result.psnr_causal_vs_batch = _psnr_vs_batch(sess, result.run)
            state.set_final(psnr_causal_vs_batch=result.psnr_causal_vs_batch, out_dir=str(cfg.out_dir),
                            files=sorted(result.run.files))
        state.set_phase("done")
        _write_summary(sess, result)
        if on_end is not None:
            on_end(result)
        if hold and server is not None:
            with contextlib.suppress(KeyboardInterrupt):
                while not stop_event.wait(0.5):
                    pass
    finally:
        if server is not None:
            server.stop()
    return result


def waiting_text(sess: _Session, waited_s: float | None = None) -> str:
    """What the session waits for: the folder, the frame-file pattern, the log and how to stop."""
    from ..io import FRAME_EXTENSIONS as FRAME_EXT

    pattern = "*{" + ",".join(FRAME_EXT) + "}" + (f" with a {sess.frames.sidecar} sidecar" if sess.frames.sidecar else "")
    log = f"log {sess.log.path}" + ("" if sess.log.path.exists() else " (not there yet)") if sess.log is not None \
        else "no log"
    since = f" after {waited_s:.0f} s" if waited_s is not None else ""
    if sess.frames.bad:
        since += f" ({len(sess.frames.bad)} bad, see the bad-frame list)"
    folder = sess.folder if sess.folder.exists() else f"{sess.folder} (not there yet)"
    text = f"waiting for frame files {pattern} in {folder}; {log}; stop with a file {sess.stop_path} or Ctrl-C"
    return f"no usable frame yet{since}: {text}" if since or sess.frames.bad else text


def _loop(sess: _Session, stop_event: threading.Event, *, idle_timeout_s, on_frame, on_wait=None,
          wait_every_s: float = 5.0) -> str:
    ended = None
    started, last_wait = time.monotonic(), None
    try:
        while ended is None:
            if not sess.records:  # say what is awaited until the first frame arrives (an empty page says nothing)
                now = time.monotonic()
                if last_wait is None or now - last_wait >= wait_every_s:
                    last_wait = now
                    text = waiting_text(sess, now - started if now - started >= 1.0 else None)
                    sess.state.warn("waiting", text)
                    if on_wait is not None:
                        on_wait(text)
            elif last_wait is not None:
                last_wait = None
                sess.state.warn("waiting", None)
            if stop_event.is_set():
                ended = "stopped"
            elif sess.stop_path.exists():
                ended = "stop file"
            elif idle_timeout_s is not None and time.monotonic() - sess.last_new > idle_timeout_s:
                ended = "timeout"
            if sess.log is not None:
                sess.log.poll()
                sess.resync()
            batch = sess.frames.finish() if ended == "stop file" else sess.frames.poll()
            for ff in batch:
                if not sess.handle(ff, final_attempt=ended is not None):
                    break  # re-offered at a later poll, with the frames after it
                if on_frame is not None and sess.records and sess.records[-1]["frame"] == ff.index:
                    on_frame(dict(sess.records[-1]))
            sess.state.set_bad(sess.frames.bad)
            sess.list_ignored()
            if ended is None and not batch and not sess.denoise_next():
                time.sleep(sess.poll_s)
    except KeyboardInterrupt:
        ended = "interrupted"
    if sess.records:
        sess.state.warn("waiting", None)  # frames came in the last round
    if sess.log is not None:
        sess.log.poll()
        sess.resync()
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C skips the remaining denoising
        while sess.denoise_next():
            pass
    return ended


def _write_causal(sess: _Session) -> None:
    """The causal live movie (raw and causally denoised maps per frame), kept apart from the batch outputs."""
    import xarray as xr

    recs = [r for r in sess.records]
    if not recs:
        return
    maps = [sess.loader(r["frame"]) or {} for r in recs]
    names = sorted(set.intersection(*(set(m) for m in maps))) if maps else []
    data = {n: (("time", "y", "x"), np.stack([m[n] for m in maps])) for n in names if n != "li_std"}
    ds = xr.Dataset(data, coords={"time": ("time", [r["time_s"] for r in recs], {"units": "s"}),
                                  "frame_index": ("time", [r["frame"] for r in recs])},
                    attrs={"window": sess.window, "denoise": sess.cfg.denoise.method,
                           "note": "li_causal: the denoiser run on the last `window` frames only (live view)"})
    with atomic_path(sess.live / "causal.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def _psnr_vs_batch(sess: _Session, run) -> float | None:
    """PSNR (dB) of the causal live movie against the batch-denoised one, over their common frames."""
    from ..denoise import psnr

    batch = run.li_denoised.load()
    live_q = ("x" if any("x_mean" in r for r in sess.records)
              else "areal" if any("li_areal_mean" in r for r in sess.records) else "weight")
    if batch.attrs.get("quantity", "weight") != live_q:
        return None  # x in LixCoO2 vs Li weight/areal Li (e.g. charge calibration): not comparable
    idx = batch.frame_index.values if "frame_index" in batch.coords else np.arange(batch.sizes["time"])
    pos = {int(k): i for i, k in enumerate(idx)}
    live, ref = [], []
    for r in sess.records:
        if r["frame"] in pos:
            m = sess.loader(r["frame"])
            if m and "li_causal" in m:
                live.append(m["li_causal"])
                ref.append(np.asarray(batch.values[pos[r["frame"]]]))
    if not live:
        return None
    ref = np.stack(ref)
    return float(psnr(np.stack(live), ref, data_range=float(np.ptp(ref))))


def _write_summary(sess: _Session, result: WatchResult) -> None:
    lat = [r["latency_s"] for r in result.frames if r.get("latency_s") is not None]
    summary = {"frames": len(result.frames), "resumed_frames": result.resumed_frames, "ended_by": result.ended_by,
               "bad_frames": result.bad_frames, "ignored_files": result.ignored_files, "warnings": result.warnings,
               "latency_median_s": float(np.median(lat)) if lat else None,
               "psnr_causal_vs_batch_db": result.psnr_causal_vs_batch}
    sess.live.mkdir(parents=True, exist_ok=True)
    with atomic_path(sess.live / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
