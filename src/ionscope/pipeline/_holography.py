# SPDX-License-Identifier: GPL-3.0-or-later
"""Holography under bias as a stage table: a night of holograms → potential movie, ΔV(t), width(t), τ, report.

The same runner as the EELS pipeline (:func:`ionscope.pipeline._graph.run_stages`,
one :class:`~ionscope.pipeline._stores.StageCache`), a second table:

* ``holo_plan`` — :func:`ionscope.holography.plan_bias_series`: what every
  time point shares (ψ₀, vacuum mask, thickness map, interfaces, reference
  waves), from the zero-bias frames and the references only;
* ``holo_frames`` — :func:`ionscope.holography.bias_frame` on every time point:
  one task per frame on the run's executor (inline, threads, a Dask cluster),
  written batch by batch along ``time`` (``[compute] frames_per_batch``) with
  a completion record per batch, so a killed night resumes at the next batch,
  not at frame 0; the potential and phase maps (the movie, ``(time, y, x)``)
  are stored here, once. The plan enters the graph as one key (shipped once
  per cluster worker);
* ``holo_series`` — :func:`ionscope.holography.assemble_bias_series`: the step
  fits per interface (``step_v``, ``width_nm``, ``position_nm`` ± 1σ, errors
  with the noise correlation pooled over frames), asymmetry, leakage, the
  frame checks across frames; downstream stages see it with the maps of
  ``holo_frames`` (lazily; NaN where a frame was skipped) — the
  Dataset :func:`~ionscope.holography.bias_series` returns, number for number;
* ``holo_analysis`` — relaxation times after each bias step, the asymmetry per
  polarity, the leakage per volt;
* ``holo_report`` — ``curves.csv`` and ``summary.json``, and the files of the
  writers ``run_holography`` is given (``ionscope run`` gives
  :func:`ionscope.report.holography_writers`: figures of ΔV(t) and width(t)
  per interface with error bars under the bias and current curves, potential
  maps at the extreme biases, an animated GIF of the potential beside the bias
  curve, and ``viewer.html``, the offline viewer), published into the output
  folder as one set. The runner never imports the report package.

Each stage is cached under a key of its parameters and inputs: a rerun loads
everything; changing e.g. ``window_nm`` redoes the series and what follows.
The night runs through :func:`ionscope.pipeline.run` like the EELS night (one
configuration: the ``[holography]`` section, :mod:`ionscope.pipeline._holo_config`,
beside ``[output]`` and ``[compute]``).

Every option is type-checked before anything is read, with one line naming
it and what was expected (``thickness_nm = true`` is not 1 nm). Every time
point is checked (:mod:`ionscope.holography._checks`: NaN/Inf pixels, all
zero, a mean intensity ≤ 0 or 10× off the zero-bias frames', a step fit whose
χ² is 10× off the frames so far, a reconstruction that fails): a bad one is
skipped — NaN in ``curves.csv`` and the maps — and listed with its reason in
``summary.json`` (``bad_frames``) and on the console; the night still
finishes while at least ``min_good_fraction`` of the time points are usable.
``frame_checks = false`` turns the checks off.

The specimen drifts over a night (a few nm), so the pipeline measures and
follows it by default (``drift = "auto"``, see :mod:`ionscope.holography._drift`):
it costs ~30–55 % more time per frame (Fourier, 1024²), and without it a
7 nm drift turned the ΔV per interface from 0.004–0.010 V into 0.3–0.5 V RMS
error (simulated, BENCHMARKS.md). ``bias_series``
itself keeps ``drift=None`` as its default (an explicit library call, its speed
benchmark and earlier results unchanged).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataValidationError
from ._graph import Stage

from ._holo_config import OPTIONS  # noqa: F401  (the [holography] keys, where they were always read)
from ._holo_frames import _frames

_SERIES_KEYS = ("method", "thickness_nm", "voltage_kv", "interfaces_nm", "window_nm", "model", "background",
                "order", "zero_bias", "drift", "frame_checks", "min_good_fraction")


@dataclass
class HolographyResult:
    """What :func:`run_holography` produced.

    Parameters
    ----------
    output : Path
        The output folder.
    series : xarray.Dataset, optional
        The :func:`ionscope.holography.bias_series` result (lazy maps).
    analysis : xarray.Dataset, optional
        The per-interface step analysis.
    summary : dict
        ``summary.json``'s numbers.
    records : dict of str to StageRecord
        What happened to each stage.

    Examples
    --------
    >>> from pathlib import Path
    >>> HolographyResult(Path("night")).summary
    {}
    """

    output: Path
    series: Any = None
    analysis: Any = None
    summary: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- configuration
def holography_config(config) -> tuple[dict, Path]:
    """The ``[holography]`` section with defaults, and the folder relative paths refer to.

    ``config`` is a TOML path, a dict (the whole configuration, or just the
    section) or a :class:`~ionscope.pipeline.Config`.

    Examples
    --------
    >>> opt, base = holography_config({"holography": {"thickness_nm": 60.0, "drift": "none"}})
    >>> opt["drift"] is None, opt["method"]
    (True, 'fourier')
    """
    cfg = _as_holography_config(config)
    return dict(cfg.holography), Path(cfg.base_dir)


def _as_holography_config(config):
    """A :class:`Config` with a ``[holography]`` section (a bare section dict is taken as one)."""
    from ._config import Config
    from ._run import as_config

    if isinstance(config, dict) and "holography" not in config and "holograms" in config:
        config = {"holography": config}  # just the section
    cfg = as_config(config)
    if not isinstance(cfg, Config) or cfg.holography is None:
        raise ConfigError("config: no [holography] section")
    return cfg


def _resolve(base: Path, value):
    return None if value is None else (Path(value) if Path(value).is_absolute() else base / value)


# --------------------------------------------------------------------------- stages
def _plan(ctx):
    """``holo_plan``: :func:`ionscope.holography.plan_bias_series` (ψ₀, masks, interfaces, reference waves)."""
    from ..holography import plan_bias_series

    plan = plan_bias_series(ctx["holograms"], references=ctx["references"], log=ctx["log"],
                            thickness_nm=ctx["thickness"], **plan_options(ctx.config.holography))
    return plan.to_dataset()


def plan_options(opt) -> dict:
    """The keywords of :func:`~ionscope.holography.plan_bias_series` a ``[holography]`` section gives
    (the batch table and the live night plan alike)."""
    kw = {k: opt[k] for k in ("voltage_kv", "interfaces_nm", "window_nm", "zero_bias") if opt[k] is not None}
    return dict(method=opt["method"], model=opt["model"], background=opt["background"], order=opt["order"],
                drift=opt["drift"], frame_checks=opt["frame_checks"], min_good_fraction=opt["min_good_fraction"], **kw)


def _plan_view(ctx, stored):
    from ..holography import BiasPlan

    return BiasPlan.from_dataset(stored)


def _series(ctx):
    """``holo_series``: :func:`ionscope.holography.assemble_bias_series` (stored without the maps)."""
    from ..holography import assemble_bias_series

    frames = ctx["holo_frames"]
    ds = assemble_bias_series(ctx["holo_plan"], frames.drop_vars(["phase", "potential"]))
    return ds.drop_vars([v for v in ("phase", "potential") if v in ds])


def _series_view(ctx, stored):
    """The series with its maps, read lazily from ``holo_frames`` (stored once, not copied).

    The time points the assembly's χ² check skipped are NaN there, as everywhere.
    """
    frames = ctx["holo_frames"]
    good = stored["frame_good"]
    maps = {"phase": frames["phase"].where(good).assign_attrs(
                units="rad", long_name="phase change from zero bias, leakage ramp removed"),
            "potential": frames["potential"].where(good).assign_attrs(
                units="V", long_name="potential change from zero bias")}
    maps = {k: v.drop_vars([c for c in v.coords if c not in ("time", "y", "x")]) for k, v in maps.items()}
    return stored.assign(maps)


def _refuse_bad_frames(ctx, ds) -> None:
    """``on_bad_frame = "error"``: a skipped time point stops the night, naming it (as ``[input] on_bad_frame``
    of an EELS night). Run after the stage whether computed or cached, so switching the option needs no redo."""
    opt = ctx.config.holography
    if opt.get("on_bad_frame", "skip") != "error" or "frame_good" not in ds:
        return
    good = np.asarray(ds["frame_good"].values, bool)
    if good.all():
        return
    k = int(np.flatnonzero(~good)[0])
    reason = str(ds["frame_reason"].values[k]) if "frame_reason" in ds else "skipped"
    where = str(ctx.config.path(opt["holograms"])) if opt.get("holograms") else "holograms"
    more = f" (and {int((~good).sum()) - 1} more)" if (~good).sum() > 1 else ""
    raise DataValidationError(f"{where}: time index {k} (t = {float(ds['time'].values[k]):.6g} s): {reason}{more} "
                              f"(set [holography] on_bad_frame = \"skip\" to skip such time points)")


def _analysis(ctx):
    import xarray as xr

    from ..holography import asymmetry_summary, leakage_summary, relaxation_times

    opt, ds = ctx.config.holography, ctx["holo_series"]
    scalars = ds.drop_vars(["phase", "potential"]).load()
    parts = {}
    rt = relaxation_times(scalars, min_jump_v=opt["min_jump_v"])
    parts.update({f"relax_{k}": v.rename({"step": "bias_step"}) for k, v in rt.data_vars.items()})
    if scalars.sizes.get("interface") == 2:
        asym = asymmetry_summary(scalars, min_bias_v=opt["min_bias_v"])
        parts.update({f"asym_{k}": v for k, v in asym.data_vars.items()})
    out = xr.Dataset(parts)
    try:
        leak = leakage_summary(scalars)
    except DataValidationError:
        leak = {}
    out.attrs = {f"leakage_{k}": float(v) for k, v in leak.items()}
    return out


def _analysis_params(ctx):
    opt = ctx.config.holography
    return {"min_bias_v": opt["min_bias_v"], "min_jump_v": opt["min_jump_v"]}


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _summary(ctx, ds, an):
    opt = ctx.config.holography
    s = {"method": opt["method"], "n_time_points": int(ds.sizes["time"]),
         "duration_s": float(ds["time"].values[-1] - ds["time"].values[0]),
         "interfaces_nm": [float(v) for v in ds["interface_nm"].values],
         "zero_bias_frames": ds.attrs.get("zero_bias_frames"), "window_nm": ds.attrs.get("window_nm"),
         "bias_convention": ds.attrs.get("bias_convention")}
    rel = []
    for i in range(an.sizes.get("bias_step", 0)):
        for j in range(ds.sizes["interface"]):
            rel.append({"bias_step": i, "interface": j, "time_s": _num(an["relax_time_s"][i]),
                        "bias_before_v": _num(an["relax_bias_before_v"][i]),
                        "bias_after_v": _num(an["relax_bias_after_v"][i]),
                        "tau_s": _num(an["relax_tau_s"][i, j]), "tau_s_std": _num(an["relax_tau_s_std"][i, j]),
                        "final_v": _num(an["relax_final"][i, j]), "final_v_std": _num(an["relax_final_std"][i, j])})
    s["relaxation"] = rel
    if "frame_reason" in ds:  # time points skipped, or with a step not measured: listed, never silent
        t = ds["time"].values
        s["bad_frames"] = [{"time_index": int(k), "time_s": float(t[k]), "reason": str(r),
                            "skipped": not bool(ds["frame_good"].values[k])}
                           for k, r in enumerate(ds["frame_reason"].values) if str(r)]
    if "asym_asymmetry" in an:
        s["asymmetry"] = {str(p): {"asymmetry": _num(an["asym_asymmetry"].sel(polarity=p)),
                                   "asymmetry_std": _num(an["asym_asymmetry_std"].sel(polarity=p)),
                                   "step_positive_v": _num(an["asym_step_positive_v"].sel(polarity=p)),
                                   "step_negative_v": _num(an["asym_step_negative_v"].sel(polarity=p)),
                                   "sign_fraction": _num(an["asym_sign_fraction"].sel(polarity=p)),
                                   "n_frames": int(an["asym_n_frames"].sel(polarity=p))}
                         for p in an["polarity"].values}
    s["leakage"] = {k.removeprefix("leakage_"): _num(v) for k, v in an.attrs.items() if k.startswith("leakage_")}
    if "drift_nm" in ds:
        d, sd = ds["drift_nm"].values, ds["drift_nm_std"].values
        s["drift"] = {"mode": ds.attrs.get("drift"), "units": "nm, specimen displacement (y, x) from zero bias",
                      "max_nm": _num(np.nanmax(np.hypot(d[:, 0], d[:, 1]))) if np.isfinite(d).any() else None,
                      "y_nm": [_num(v) for v in d[:, 0]], "x_nm": [_num(v) for v in d[:, 1]],
                      "y_nm_std": [_num(v) for v in sd[:, 0]], "x_nm_std": [_num(v) for v in sd[:, 1]]}
    return s


#: What ``holo_report`` writes besides ``summary.json``; part of its key, so that a run made before a file
#: was added here gets it on the next resume instead of being reported complete.
REPORT_FILES = ("figures/holo_steps.png", "figures/holo_potential.png", "potential_movie.gif", "viewer.html",
                "curves.csv")


def _report(ctx):
    """Write ``summary.json``, ``curves.csv`` and the writers' files into a staging folder (published as a set)."""
    from functools import partial

    ds, an = ctx["holo_series"], ctx["holo_analysis"]
    scal = ds.drop_vars(["phase", "potential"]).load()
    # figures, movie and viewer come from the report package, handed in by the caller (run(..., writers=))
    given = _writers(ctx)
    writers = {name: partial(w, series=ds, scalars=scal, log=ctx["log"]) for name, w in given.items()}
    writers["curves.csv"] = lambda p: _curves_csv(scal, p)
    files = _report_files(given)
    staging = _report_store(ctx).staging()
    written = {}
    for rel in files:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        writers[rel](dest)
        written[rel] = dest
    summary = {**_summary(ctx, scal, an), "files": sorted(files)}
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    written["summary.json"] = staging / "summary.json"
    return staging, written


def _report_store(ctx):
    from ._filesets import FileSetStore

    return FileSetStore(ctx.config.out_dir, "holo_report")


def _report_outputs(ctx) -> list[str]:
    """The names ``holo_report`` publishes (checked before the run starts: new, or written by ionscope)."""
    return ["summary.json", *_report_files(_writers(ctx)), "holo_report.json", ".holo_report.publish.json"]


def _writers(ctx) -> dict:
    """The figure/movie/viewer writers the run was given (none: the runner draws nothing itself)."""
    return ctx.info.get("holo_writers") or {}


def _report_files(writers) -> tuple:
    """REPORT_FILES that a writer (or the runner: curves.csv) makes, in their order."""
    return tuple(f for f in REPORT_FILES if f in writers or f == "curves.csv") + tuple(
        sorted(set(writers) - set(REPORT_FILES)))


def _curves_csv(ds, path):
    import pandas as pd

    t = ds["time"].values
    cols = {"time_s": t, "bias_v": ds["bias_v"].values, "asymmetry": ds["asymmetry"].values,
            "asymmetry_std": ds["asymmetry_std"].values}
    for i in range(ds.sizes["interface"]):
        for k in ("step_v", "step_v_std", "width_nm", "width_nm_std", "position_nm", "position_nm_std"):
            cols[f"{k}_{i}"] = ds[k].values[:, i]
    if "drift_nm" in ds:
        for j, ax in enumerate(("y", "x")):
            cols[f"drift_{ax}_nm"] = ds["drift_nm"].values[:, j]
            cols[f"drift_{ax}_nm_std"] = ds["drift_nm_std"].values[:, j]
    pd.DataFrame(cols).to_csv(path, index=False, float_format="%.6g")


#: The holography stage table (one runner with the EELS table: :func:`run_stages`).
TABLE = (
    Stage("holo_plan", _plan, inputs=("holograms", "references", "log", "thickness"),
          params=lambda ctx: {k: ctx.config.holography[k] for k in _SERIES_KEYS}, view=_plan_view),
    Stage("holo_frames", _frames, inputs=("holo_plan", "holograms"), batched="time"),
    Stage("holo_series", _series, inputs=("holo_plan", "holo_frames"), view=_series_view, after=_refuse_bad_frames),
    Stage("holo_analysis", _analysis, inputs=("holo_series",), params=_analysis_params),
    Stage("holo_report", _report, inputs=("holo_series", "holo_analysis", "log"),
          params=lambda ctx: {"files": list(_report_files(_writers(ctx)))},
          store=_report_store, outputs=_report_outputs),
)

#: Names of the holography stages in execution order.
STAGES = HOLOGRAPHY_STAGES = tuple(st.name for st in TABLE)


# --------------------------------------------------------------------------- sources and the run
def _token(value) -> str:
    import dask.base

    return "obj:" + dask.base.tokenize(value)


def _sources(opt, base, *, holograms, references, log, digests=None):
    from .. import io as iio
    from ._stores import fingerprint, fingerprint_files

    def source(given, option, loader):
        if given is not None:
            return given, _token(given)
        path = _resolve(base, opt[option])
        if path is None:
            return None, "none"
        if not path.exists():
            raise ConfigError(f"config [holography] {option} = {opt[option]!r}: {path} does not exist")
        fp, read = fingerprint_files([path])  # (each file's digest too: a live session's holograms are matched)
        if digests is not None and option == "holograms":
            digests.update(read)
        return loader(path), "file:" + fp

    holos, hkey = source(holograms, "holograms", lambda p: _load_holograms(opt, p))
    if holos is None:
        raise ConfigError("config [holography] holograms: required (a store or file of holograms)")
    if holograms is None and hasattr(holos, "dims") and not {"time", "y", "x"} <= set(holos.dims):
        # named here, by the key and the file: bias_series knows only its argument's name
        raise ConfigError(f"config [holography] holograms = {opt['holograms']!r}: dims {tuple(holos.dims)}; expected "
                          "a night of holograms (time, y, x), or (time, frame, y, x) for phase-shifting groups")
    refs, rkey = source(references, "references", iio.load)
    lg, lkey = source(log, "log", iio.read_log)
    t = opt["thickness_nm"]
    if isinstance(t, (int, float)):
        thick, tkey = float(t), f"value:{float(t)!r}"
    else:
        path = _resolve(base, t)
        if not path.exists():
            raise ConfigError(f"config [holography] thickness_nm = {t!r}: {path} does not exist")
        thick, tkey = np.asarray(iio.load(path).values, float), "file:" + fingerprint([path])
    return {"holograms": (holos, hkey), "references": (refs, rkey), "log": (lg, lkey), "thickness": (thick, tkey)}


def _load_holograms(opt, path):
    """``[holography] holograms``: a store or file of a whole night, or a folder of one file per time point."""
    from .. import io as iio

    if not iio.is_hologram_folder(path):
        return iio.load(path)
    if opt.get("frame_interval_s") is None:
        raise ConfigError(f"config [holography] frame_interval_s: required when holograms = {opt['holograms']!r} "
                          "is a folder of hologram files (s between two hologram numbers)")
    night, bad = iio.read_holograms(path, frame_interval_s=float(opt["frame_interval_s"]),
                                    start_s=float(opt.get("start_s") or 0.0),
                                    time_anchor=opt.get("time_anchor") or "start",
                                    frame_pattern=opt.get("frame_pattern"), on_bad_frame=opt["on_bad_frame"],
                                    method=opt["method"])
    if bad:
        import warnings

        warnings.warn(f"{path}: {len(bad)} hologram file(s) left out: "
                      + "; ".join(f"{b['frame']} {b['file']}: {b['reason']}" for b in bad[:3])
                      + (" ..." if len(bad) > 3 else ""), RuntimeWarning, stacklevel=2)
    return night


def _open(cfg, given: dict, result):
    """The holography night's inputs (for :func:`ionscope.pipeline.run`)."""
    from ..io import is_hologram_folder

    digests: dict = {}
    sources = _sources(cfg.holography, Path(cfg.base_dir), holograms=given["holograms"],
                       references=given["references"], log=given["log"], digests=digests)
    info = {"holo_writers": dict(given.get("writers") or {})}
    folder = _resolve(Path(cfg.base_dir), cfg.holography.get("holograms"))
    if given["holograms"] is None and folder is not None and is_hologram_folder(folder):
        from ._holo_reuse import live_index

        # what a live session (ionscope watch) measured in this output folder, file by file
        info["holo_live"] = live_index(cfg.out_dir, {p: d for p, d in digests.items() if p.parent == folder})
    return sources, info


def _input_paths(cfg) -> dict:
    opt, base = cfg.holography, Path(cfg.base_dir)
    return {f"[holography] {k}": _resolve(base, opt[k]) for k in ("holograms", "references", "log", "thickness_nm")
            if isinstance(opt[k], str)}


def _night():
    from ._run import Night

    return Night("holography", TABLE, _open, _input_paths)


#: The holography night: its table and how its inputs are opened.
HOLOGRAPHY_NIGHT = _night()


def run_holography(config, *, holograms=None, references=None, log=None, output=None, stages=None,
                   show_progress=None, wait: bool | float = False, writers=None, executor=None) -> HolographyResult:
    """Run the holography-under-bias night: potential movie, ΔV(t)/width(t), asymmetry, τ, summary.

    The holography night of :func:`ionscope.pipeline.run`, with its result in
    the shape this function always returned.

    Parameters
    ----------
    config : path, dict or Config
        A TOML file or dict with a ``[holography]`` section (just the section is
        accepted too; see :mod:`ionscope.pipeline._holo_config`).
    holograms, references, log : optional
        In-memory inputs instead of the files named in the config.
    output : path, optional
        Output folder (default ``[output] dir``, else the section's ``output``,
        relative to the config file).
    stages : tuple of str, optional
        Only these stages and what they need (e.g. ``("holo_series",)``).
    show_progress : bool, optional
        Progress bars (default: on a terminal).
    wait : bool or float
        Another live run holding the output folder: refuse (False), wait (True) or wait at most this many s.
    writers : dict, optional
        Files the ``holo_report`` stage writes besides ``curves.csv`` and
        ``summary.json``: relative name → ``writer(path, *, series, scalars, log)``.
        :func:`ionscope.report.holography_writers` gives the two figures, the
        GIF movie and ``viewer.html`` (``ionscope run`` and
        :func:`ionscope.operando.run_holography` pass them); without it the
        runner draws nothing (it never imports the report package).
    executor : Executor or str, optional
        Where the work runs (default ``[compute] scheduler``).

    Returns
    -------
    HolographyResult
        ``series`` (the bias_series Dataset, from the cache), ``analysis``,
        ``summary`` (also in ``summary.json``), per-stage ``records`` (cached or computed, seconds).

    Raises
    ------
    ConfigError
        Missing section, unknown option, missing file.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> res = run_holography({"holography": {"thickness_nm": 60.0}}, holograms=holos, references=refs, log=log,
    ...                      output=out / "run", stages=("holo_series",))
    >>> # with the figures, movie and viewer: writers=ionscope.report.holography_writers()
    >>> res.series.step_v.dims
    ('time', 'interface')
    """
    from ._run import run

    cfg = _as_holography_config(config)
    if output is not None:
        cfg = cfg.replace(output={"dir": str(Path(output).resolve())})
    res = run(cfg, holograms=holograms, references=references, log=log, stages=stages, show_progress=show_progress,
              wait=wait, writers=writers, executor=executor)
    out = HolographyResult(output=cfg.out_dir, records=dict(res.stages))
    ctx = res.context
    if "holo_series" in ctx:
        out.series = ctx["holo_series"]
    if "holo_analysis" in ctx:
        out.analysis = ctx["holo_analysis"]
    if "holo_report" in ctx:
        out.summary = json.loads((cfg.out_dir / "summary.json").read_text())
    return out
