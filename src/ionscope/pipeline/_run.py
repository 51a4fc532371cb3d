# SPDX-License-Identifier: GPL-3.0-or-later
"""``run``: one wrapper for every night, whatever its table and wherever it runs.

A *night* is a stage table plus how its inputs are opened (:class:`Night`):
the EELS night (:mod:`ionscope.pipeline._eels`) and the holography night
(:mod:`ionscope.pipeline._holography`). :func:`run` does, once for both, what
every run needs around the table:

1. the configuration is validated and names its night (``[holography]`` or not);
2. every input is opened and checked, and the output paths are checked (the
   cache a new path or one ionscope made, nothing inside an input, no name of
   a user's file to be replaced) — all before a folder, a lock or a cache
   exists, so a run refused by validation leaves nothing behind;
3. the output folder (and the cache's, when it lives elsewhere) is held
   exclusively (:func:`ionscope._outdir.session`: lock and ledger);
4. the table runs on the executor (:mod:`ionscope.pipeline._executors`),
   every stage cached and resumable; a run refused before its first stage
   finished removes what it created.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import os_errors
from .._outdir import OutputFolder, session, session_for
from ..errors import ConfigError, DataValidationError, IonscopeError, OutputPathError
from ._config import Config, from_dict, load_config
from ._executors import Executor, executor_for, executor_from_config
from ._graph import Context, Stage, run_stages
from ._stores import StageCache, StageRecord, cache_state


@dataclass(frozen=True)
class Night:
    """What the runner needs of a night besides its table.

    Parameters
    ----------
    name : str
        ``"eels"`` or ``"holography"`` (:attr:`Config.table`).
    table : tuple of Stage
        The stages in execution order.
    open : callable(config, given, result) -> (sources, info)
        Opens and checks every input (``given``: in-memory inputs passed to
        :func:`run`, by name); returns the sources ``{name: (value, key)}``
        and side information for the stages (``Context.info``). May append
        to ``result.bad_frames`` / ``result.ignored_files``.
    input_paths : callable(config) -> dict
        ``{config key: path}`` of every file the configuration reads (the
        output may not lie inside one).

    Examples
    --------
    >>> night = night_of({"limap": {}})
    >>> night.name, night.table[0].name
    ('eels', 'screen')
    """

    name: str
    table: tuple
    open: Callable
    input_paths: Callable


@dataclass
class RunResult:
    """What a run produced: stage records, bad frames, output files, cached results.

    Parameters
    ----------
    config : Config
        The run's configuration.
    cache : StageCache
        Where every stage's result is stored (:meth:`dataset` reads it back, lazily).
    stages : dict of str to StageRecord
        What happened to each stage (computed or cached, seconds, resumed batches).
    bad_frames : list of dict
        Frames left out, each with its ``frame`` number and ``reason``.
    ignored_files : list of str
        Files in the frame folder that are not frames.
    flagged_pixels : list of dict
        Kept frames with spectra whose raw counts cannot occur
        (:mod:`ionscope.eels._plausible`): ``frame``, ``file``, ``pixels``
        (how many; NaN in the maps there), ``reason``.
    files : dict of str to str
        Files a report stage wrote, by name.
    context : Context, optional
        The stage graph's context after the run.

    Examples
    --------
    >>> import tempfile
    >>> from ionscope.simulate import operando_eels
    >>> si, truth, log = operando_eels(shape=(8, 12), n_frames=3, energy_step=1.0, seed=1)
    >>> res = run({"output": {"dir": tempfile.mkdtemp() + "/run"}, "denoise": {"method": "none"}},
    ...           series=si, log=log, executor="synchronous")
    >>> res.summary()["n_frames"], res.li_denoised.dims, res.bad_frames
    (3, ('time', 'y', 'x'), [])
    """

    config: Config
    cache: StageCache
    stages: dict[str, StageRecord] = field(default_factory=dict)
    bad_frames: list[dict] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)  # files in the frame folder that are not frames
    flagged_pixels: list[dict] = field(default_factory=list)  # frames kept with implausible spectra made NaN
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
        return self.dataset("holo_analysis" if self.config.table == "holography" else "analysis")

    @property
    def sync(self):
        return self.dataset("sync")

    def summary(self) -> dict:
        """Whole-run numbers (JSON-able)."""
        an = self.analysis
        out = {k: v for k, v in an.attrs.items() if isinstance(v, (int, float, str)) and not k.startswith("ionscope")}
        if "time" in an.sizes:
            out["n_frames"] = int(an.sizes["time"])
        out["bad_frames"] = len(self.bad_frames)
        out["missing_frames"] = [int(b["frame"]) for b in self.bad_frames
                                 if str(b.get("reason", "")).startswith("missing")]
        out["ignored_files"] = list(self.ignored_files)
        out["implausible_pixels"] = int(sum(int(f["pixels"]) for f in self.flagged_pixels))
        out["stages_cached"] = [n for n, r in self.stages.items() if r.cached]
        out["stage_seconds"] = {n: round(r.seconds, 3) for n, r in self.stages.items()}
        if "limap" in self.stages:  # where the Li-K shift the maps were fitted with came from (traceable)
            attrs = self.dataset("limap").attrs
            out.update({k: attrs[k] for k in sorted(attrs) if k.startswith("li_k_shift_")
                        and isinstance(attrs[k], (int, float, str))})
        return out


def as_config(config) -> Config:
    """A :class:`Config` from a Config, a dict (validated) or the path of a TOML file.

    Parameters
    ----------
    config : Config, dict, str or Path
        A Config (returned as it is), a dict of sections (validated as
        :func:`from_dict` does) or the path of a TOML file (:func:`load_config`).

    Returns
    -------
    Config

    Examples
    --------
    >>> cfg = as_config({"input": {"series": "frames/", "frame_interval_s": 60.0}})
    >>> cfg.table, as_config(cfg) is cfg
    ('eels', True)
    """
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return from_dict(config)
    return load_config(config)


def _nights() -> dict[str, Night]:
    from ._eels_sources import EELS_NIGHT
    from ._holography import HOLOGRAPHY_NIGHT

    return {"eels": EELS_NIGHT, "holography": HOLOGRAPHY_NIGHT}


def night_of(config) -> Night:
    """The night (table and input opener) a configuration describes.

    Parameters
    ----------
    config : Config, dict or path to a TOML file
        A ``[holography]`` section makes it the holography night, else the EELS night.

    Returns
    -------
    Night

    Examples
    --------
    >>> night_of({}).name, night_of({"holography": {"holograms": "h.zarr", "thickness_nm": 60}}).name
    ('eels', 'holography')
    """
    return _nights()[as_config(config).table]


def run(config, *, executor: Executor | str | None = None, series=None, holograms=None, log=None, references=None,
        segmentation=None, truth=None, on_stage: Callable[[str, StageRecord], None] | None = None,
        show_progress: bool | None = None, stages: tuple[str, ...] | None = None,
        extra_stages: tuple[Stage, ...] = (), wait: bool | float = False, writers: dict | None = None) -> RunResult:
    """Run a night — EELS or holography, as the configuration says — cached and resumable, on an executor.

    Parameters
    ----------
    config : Config, dict or path to a TOML file
        See :func:`ionscope.pipeline.load_config`; a ``[holography]`` section
        makes it a holography night.
    executor : Executor or str, optional
        Where the work runs (:mod:`ionscope.pipeline._executors`):
        ``"threads"``, ``"synchronous"``, ``"local"`` (a Dask LocalCluster),
        ``"tcp://HOST:PORT"`` (a remote scheduler) or an :class:`Executor`.
        Default: ``[compute] scheduler``. Every executor gives the same results.
    series : xarray.DataArray (time, y, x, energy), optional
        EELS: the frames, instead of ``[input] series`` (e.g. straight from
        :func:`ionscope.simulate.operando_eels`); dask-backed stays lazy.
    holograms : xarray.DataArray, optional
        Holography: the holograms, instead of ``[holography] holograms``.
    log : xarray.Dataset, optional
        The electrochemistry (EELS) or bias (holography) log, instead of the config's.
    references : xarray.DataArray or callable, optional
        EELS: reference spectra (component, energy), or a callable of the energy
        axis, instead of ``[limap] references``. Holography: vacuum reference
        holograms, instead of ``[holography] references``.
    segmentation : (y, x) int array, optional
        EELS: grain labels (boundaries 0) for per-region statistics.
    truth : xarray.Dataset, optional
        EELS: simulator ground truth (``flux_y``, ``flux_x``); the analysis then
        also reports its error against it.
    on_stage : callable(name, record), optional
        Called after each stage is done (cached or computed); raising from it
        stops the run there (what a crash would do) — the next run resumes.
    show_progress : bool, optional
        Progress bars with ETA per stage (default: on a terminal).
    stages : tuple of str, optional
        Run only these stages and what they need (default: every stage).
    extra_stages : tuple of Stage
        Stages appended to the table, e.g. the report
        (:func:`ionscope.report.operando_report_stage`, which ``ionscope run`` adds).
    wait : bool or float
        The output folder is held exclusively while the run lasts. Another
        live run holding it: refuse at once (False, default), wait (True) or
        wait at most this many seconds.
    writers : dict, optional
        Holography: files the ``holo_report`` stage writes beside
        ``summary.json`` and ``curves.csv`` (name → ``writer(path, *, series,
        scalars, log)``; :func:`ionscope.report.holography_writers` gives the
        figures, movie and viewer). The EELS report is a stage of its own
        (``extra_stages``).

    Returns
    -------
    RunResult

    Raises
    ------
    FileFormatError, DataValidationError, CalibrationError, ConfigError
        Unusable input or configuration (messages name the file / frame / config key).
    OutputLockedError
        Another run holds the output folder.
    OutputPathError
        The output cannot be written (disk full, read-only, no permission, in the way), or would
        replace a file ionscope did not write (the message names it; see :mod:`ionscope._outdir`).
    StageFailedError
        The executor failed (no cluster worker, an unreachable scheduler).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> import tempfile
    >>> from ionscope.simulate import operando_eels
    >>> si, truth, log = operando_eels(shape=(8, 12), n_frames=4, energy_step=1.0, seed=1)
    >>> out = tempfile.mkdtemp() + "/run"
    >>> res = run({"output": {"dir": out}, "denoise": {"method": "none"}}, series=si, log=log,
    ...           executor="synchronous")
    >>> res.li_denoised.sizes["time"], sorted(res.stages)[:3]
    (4, ['analysis', 'denoise', 'energy_drift'])
    """
    cfg = as_config(config)
    night = _nights()[cfg.table]
    table = tuple(night.table) + tuple(extra_stages)
    _check_targets(table, stages)
    given = {"series": series, "holograms": holograms, "log": log, "references": references,
             "segmentation": segmentation, "truth": truth, "writers": writers}
    misplaced = [k for k, v in given.items() if v is not None and k in _NOT_FOR[night.name]]
    if misplaced:
        raise DataValidationError(f"run: {misplaced} belong to the other kind of night; this configuration "
                                  f"describes a {night.name} night")
    executor = executor_from_config(cfg.compute) if executor is None else executor_for(
        executor, n_workers=cfg.compute.n_workers, worker_timeout_s=cfg.compute.worker_timeout_s)
    # disk full, read-only file system, no permission, a file in the way: one line with what to do
    with os_errors(cfg.out_dir):
        # every input is opened and checked before anything is created: a run that fails validation
        # leaves no folder, cache or lock behind
        res = RunResult(config=cfg, cache=None)
        sources, info = night.open(cfg, given, res)
        _check_output_paths(cfg, night.input_paths(cfg))
        planned = _planned_outputs(table, cfg, info)
        _check_planned_outside_inputs(cfg, planned, night.input_paths(cfg))
        OutputFolder(cfg.out_dir).check_new(planned)  # (again below, under the lock)
        with contextlib.ExitStack() as held:
            folders = [held.enter_context(session(folder, wait=wait)) for folder in _lock_folders(cfg)]
            try:
                folders[0].check_new(planned)  # what the stages will write in the output folder: new or ours
                cache_folder = session_for(cfg.cache_path)
                if cache_state(cfg.cache_path) in ("ours", "legacy"):  # its own marker proves it ionscope's
                    cache_folder.adopt(cache_folder.rel(cfg.cache_path))
                cache_folder.claim([cache_folder.rel(cfg.cache_path)], kind="dir", hint=" ([output] cache)")
                res.cache = StageCache(cfg.cache_path)
                res.cache.clear_stale()
                ctx = Context(cache=res.cache, config=cfg, show_progress=show_progress,
                              batch=cfg.compute.frames_per_batch, result=res)
                ctx.info.update(info)
                with executor:
                    ctx = run_stages(table, cache=res.cache, sources=sources, targets=stages, ctx=ctx,
                                     on_stage=lambda name, rec: _record(res, on_stage, name, rec))
            except IonscopeError:
                if not res.stages:  # refused before any stage finished (too few good frames)
                    for folder in folders:
                        folder.discard_new()
                raise
        res.context = ctx
        return res


#: In-memory inputs that belong to the other kind of night.
_NOT_FOR = {"eels": ("holograms", "writers"), "holography": ("series", "segmentation", "truth")}


def _check_targets(table, stages) -> None:
    names = [st.name for st in table]
    if stages is not None:
        unknown = [s for s in stages if s not in names]
        if unknown:
            hint = " (the report stage is added by ionscope.report.operando_report_stage())" \
                if "report" in unknown else ""
            raise DataValidationError(f"run: unknown stage(s) {unknown}; expected names from {tuple(names)}{hint}")


def _planned_outputs(table, cfg: Config, info: dict) -> list[str]:
    """Names the stages will write in the output folder (``Stage.outputs``), known before they run."""
    ctx = Context(cache=None, config=cfg)
    ctx.info.update(info)
    return [name for st in table if getattr(st, "outputs", None) is not None for name in st.outputs(ctx)]


def _check_planned_outside_inputs(cfg: Config, planned: list[str], inputs: dict) -> None:
    """No output lands in an input: the output folder may hold the input (``OUT/frames``), but an input
    folder named like one of the outputs' folders (``OUT/figures`` a folder of frames) would receive them."""
    out = cfg.out_dir.resolve()
    paths = {name: Path(p).resolve() for name, p in inputs.items() if p is not None}
    for rel in planned:
        target = out / rel
        for name, inp in paths.items():
            if target == inp or inp in target.parents:
                raise ConfigError(f"config [output] dir = {str(cfg.out_dir)!r}: the output {rel} would be written "
                                  f"into the input {name} ({inputs[name]}); choose another output folder "
                                  f"(ionscope never writes into its inputs)")


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


def _check_output_paths(cfg: Config, inputs: dict[str, Path]) -> None:
    """Before anything is written: the cache is a new path or a cache ionscope made, and neither the
    cache nor the output folder is (inside) an input."""
    from .._outdir import check_inputs

    cache, out = cfg.cache_path.resolve(), cfg.out_dir.resolve()
    if cache == out or cache in out.parents:
        raise ConfigError(f"config [output] cache = {str(cfg.cache_path)!r} is or holds the output folder {out}; "
                          f"the stage cache must be a path of its own (default: <dir>/cache.zarr)")
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
