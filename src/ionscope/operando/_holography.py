# SPDX-License-Identifier: GPL-3.0-or-later
"""Holography under bias as a stage table: a night of holograms → potential movie, ΔV(t), width(t), τ, report.

The same runner as the EELS pipeline (:func:`ionscope.operando._graph.run_stages`,
one :class:`~ionscope.operando._stages.StageCache`), a second table:

* ``holo_series`` — :func:`ionscope.holography.bias_series`: per time point the
  potential change from the zero-bias state (the movie, ``(time, y, x)``) and
  the step fits per interface (``step_v``, ``width_nm``, ``position_nm`` ± 1σ),
  asymmetry, leakage; the maps are written frame by frame;
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

Configuration (TOML or dict), section ``[holography]``::

    [holography]
    holograms = "night.zarr"      # (time, y, x) off-axis or (time, frame, y, x) phase-shifting groups
    references = "refs.zarr"      # optional: vacuum references on their own time axis
    log = "bias.csv"              # optional: bias log (ionscope.io.read_log); else the holograms' bias_v
    output = "holography_run"     # folder (relative to the config file)
    method = "fourier"            # or "phase-shifting"
    thickness_nm = 60.0           # or the path of a (y, x) map in nm
    drift = "auto"                # specimen drift: measured per frame (default), "none", or [[y, x], ...] nm
    # optional: voltage_kv, interfaces_nm, window_nm, model, background ("piecewise", "linear",
    #           "constant"), order, workers, zero_bias,
    #           min_bias_v (asymmetry), min_jump_v (relaxation),
    #           frame_checks (true), min_good_fraction (0.5)

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
from ._graph import Stage, run_stages

#: Options of ``[holography]`` and their defaults (None: not given).
OPTIONS = {
    "holograms": None, "references": None, "log": None, "output": "holography_run", "method": "fourier",
    "thickness_nm": None, "voltage_kv": None, "interfaces_nm": None, "window_nm": None, "model": "erf",
    "background": "piecewise", "order": 1, "workers": 1, "zero_bias": None, "min_bias_v": None, "min_jump_v": None,
    "drift": "auto", "frame_checks": True, "min_good_fraction": 0.5,
}
_SERIES_KEYS = ("method", "thickness_nm", "voltage_kv", "interfaces_nm", "window_nm", "model", "background",
                "order", "zero_bias", "drift", "frame_checks", "min_good_fraction")


@dataclass
class HolographyResult:
    """What :func:`run_holography` produced."""

    output: Path
    series: Any = None
    analysis: Any = None
    summary: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- configuration
def holography_config(config) -> tuple[dict, Path]:
    """The ``[holography]`` section with defaults, and the folder relative paths refer to.

    ``config`` is a TOML path or a dict (the whole config or just the section).
    """
    base = Path.cwd()
    if isinstance(config, (str, Path)):
        import tomllib

        path = Path(config)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        base = path.resolve().parent
    elif isinstance(config, dict):
        raw = config
    else:
        raise ConfigError(f"config: expected a TOML path or a dict, got {type(config).__name__}")
    sec = raw.get("holography", raw if "holography" not in raw and "holograms" in raw else None)
    if not isinstance(sec, dict):
        raise ConfigError("config: no [holography] section")
    unknown = sorted(set(sec) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"config [holography]: unknown option(s) {unknown}; expected {sorted(OPTIONS)}")
    out = {**OPTIONS, **sec}
    _check_section(out)
    out["drift"] = _drift_option(out["drift"])
    return out, base


def _check_section(opt: dict) -> None:
    """Every ``[holography]`` value's type and range, before anything is read: one line naming the key."""
    from ..holography._checks import check_options

    if opt["thickness_nm"] is None:
        raise ConfigError("config [holography] thickness_nm: required (nm, or the path of a (y, x) map)")
    for key in ("holograms", "references", "log", "output"):
        v = opt[key]
        if v is not None and not (isinstance(v, str) and v.strip()):
            raise ConfigError(f"config [holography] {key}: expected a path (a string), got {v!r}")
    if not isinstance(opt["frame_checks"], bool):
        raise ConfigError(f"config [holography] frame_checks: expected true or false, got {opt['frame_checks']!r}")
    try:
        check_options(allow_path=True, **{k: opt[k] for k in (
            "thickness_nm", "voltage_kv", "interfaces_nm", "window_nm", "model", "background", "order", "workers",
            "zero_bias", "method", "min_good_fraction", "min_bias_v", "min_jump_v")})
    except DataValidationError as exc:
        key, _, rest = str(exc).partition(": ")
        raise ConfigError(f"config [holography] {key}: {rest}") from None


def _drift_option(value):
    """``drift``: "auto", "none" (or false) → None, or a list of [y, x] specimen positions (nm) per time point."""
    if value is False or value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) and
                                                                 not isinstance(v, bool) and math.isfinite(v)
                                                                 for v in p) for p in value):
        return [[float(v) for v in p] for p in value]
    raise ConfigError(f"config [holography] drift = {value!r}: expected \"auto\", \"none\" or a list of "
                      "[y, x] specimen positions in nm, one per time point")


def _resolve(base: Path, value):
    return None if value is None else (Path(value) if Path(value).is_absolute() else base / value)


# --------------------------------------------------------------------------- stages
def _series(ctx):
    from ..holography import bias_series

    opt = ctx.info["holography"]
    thickness = ctx["thickness"]
    kw = {k: opt[k] for k in ("voltage_kv", "interfaces_nm", "window_nm", "zero_bias") if opt[k] is not None}
    maps = ctx.info["output"] / ".holo_maps.zarr"
    ds = bias_series(ctx["holograms"], references=ctx["references"], log=ctx["log"], thickness_nm=thickness,
                     method=opt["method"], model=opt["model"], background=opt["background"], order=opt["order"],
                     workers=opt["workers"], out=maps, drift=opt["drift"], frame_checks=opt["frame_checks"],
                     min_good_fraction=opt["min_good_fraction"], **kw)
    ds["potential"] = ds["potential"].astype(np.float32)
    ds["phase"] = ds["phase"].astype(np.float32)
    return ds


def _series_after(ctx, ds):
    # the frame-by-frame store was copied into the cache: drop the temporary (only if ionscope wrote it)
    from .._atomic import _folder

    maps = ctx.info["output"] / ".holo_maps.zarr"
    if maps.exists():
        _folder(ctx.info["output"]).remove(maps.name)


def _analysis(ctx):
    import xarray as xr

    from ..holography import asymmetry_summary, leakage_summary, relaxation_times

    opt, ds = ctx.info["holography"], ctx["holo_series"]
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
    opt = ctx.info["holography"]
    return {"min_bias_v": opt["min_bias_v"], "min_jump_v": opt["min_jump_v"]}


class _FolderStore:
    """The report's store: figures and ``summary.json`` in the output folder, the key in the summary."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def has(self, name, key):
        from .._atomic import _folder
        from .._outdir import safe_relpath
        from ..errors import OutputPathError

        if not _folder(self.folder).owns("summary.json"):  # absent, or not ionscope's: not a stored report
            return False
        try:
            summary = json.loads((self.folder / "summary.json").read_text())
            files = [safe_relpath(self.folder, f, what="summary.json file") for f in summary.get("files", [])]
        except (OSError, ValueError, TypeError, AttributeError, OutputPathError):
            return False
        return summary.get("key") == key and all((self.folder / f).exists() for f in files)

    def save(self, name, key, value):
        from .._atomic import atomic_path

        summary, files = value
        for rel, writer in files.items():
            dest = self.folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                writer(tmp)
        summary = {**summary, "key": key, "files": sorted(files)}
        with atomic_path(self.folder / "summary.json") as tmp:
            Path(tmp).write_text(json.dumps(summary, indent=2, default=_json_default))

    def load(self, name):
        return json.loads((self.folder / "summary.json").read_text())


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
    opt = ctx.info["holography"]
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
    from functools import partial

    ds, an = ctx["holo_series"], ctx["holo_analysis"]
    scal = ds.drop_vars(["phase", "potential"]).load()
    # figures, movie and viewer come from the report package, handed in by run_holography (writers=)
    given = _writers(ctx)
    writers = {name: partial(w, series=ds, scalars=scal, log=ctx["log"]) for name, w in given.items()}
    writers["curves.csv"] = lambda p: _curves_csv(scal, p)
    return _summary(ctx, scal, an), {name: writers[name] for name in _report_files(given)}


def _writers(ctx) -> dict:
    """The figure/movie/viewer writers run_holography was given (none: the runner draws nothing itself)."""
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
    Stage("holo_series", _series, inputs=("holograms", "references", "log", "thickness"),
          params=lambda ctx: {k: ctx.info["holography"][k] for k in _SERIES_KEYS}, after=_series_after),
    Stage("holo_analysis", _analysis, inputs=("holo_series",), params=_analysis_params),
    Stage("holo_report", _report, inputs=("holo_series", "holo_analysis", "log"),
          params=lambda ctx: {"files": list(_report_files(_writers(ctx)))},
          store=lambda ctx: _FolderStore(ctx.info["output"])),
)

#: Names of the holography stages in execution order.
STAGES = tuple(st.name for st in TABLE)


# --------------------------------------------------------------------------- sources and the run
def _token(value) -> str:
    import dask.base

    return "obj:" + dask.base.tokenize(value)


def _sources(opt, base, *, holograms, references, log):
    from .. import io as iio
    from ._stages import fingerprint

    def source(given, option, loader):
        if given is not None:
            return given, _token(given)
        path = _resolve(base, opt[option])
        if path is None:
            return None, "none"
        if not path.exists():
            raise ConfigError(f"config [holography] {option} = {opt[option]!r}: {path} does not exist")
        return loader(path), "file:" + fingerprint([path])

    holos, hkey = source(holograms, "holograms", iio.load)
    if holos is None:
        raise ConfigError("config [holography] holograms: required (a store or file of holograms)")
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


def run_holography(config, *, holograms=None, references=None, log=None, output=None, stages=None,
                   show_progress=None, wait: bool | float = False, writers=None) -> HolographyResult:
    """Run the holography-under-bias table: potential movie, ΔV(t)/width(t), asymmetry, τ, figures, summary.

    Parameters
    ----------
    config : path or dict
        A TOML file or dict with a ``[holography]`` section (see the module docstring).
    holograms, references, log : optional
        In-memory inputs instead of the files named in the config.
    output : path, optional
        Output folder (default the config's ``output``, relative to the config file).
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
        GIF movie and ``viewer.html`` (``ionscope run`` passes them, as it adds
        the EELS table's report stage); without it the runner draws nothing
        (it never imports the report package).

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
    from .._atomic import os_errors
    from .._outdir import OutputFolder, check_inputs, session
    from ..errors import IonscopeError
    from ._graph import Context
    from ._stages import StageCache, cache_state

    opt, base = holography_config(config)
    folder = Path(output) if output is not None else _resolve(base, opt["output"])
    # the same guarantees as the EELS run: one run per folder, OS faults in one line, no stale temporaries,
    # only names ionscope owns written (a clash is refused before any work), nothing left by a refused start
    planned = ["cache.zarr", ".holo_maps.zarr", "summary.json", *_report_files(writers or {})]
    with os_errors(folder):
        sources = _sources(opt, base, holograms=holograms, references=references, log=log)
        check_inputs(folder, {f"[holography] {k}": _resolve(base, opt[k]) for k in ("holograms", "references", "log",
                                                                                   "thickness_nm")
                              if isinstance(opt[k], str)}, key="[holography] output")
        if cache_state(folder / "cache.zarr") in ("ours", "legacy"):
            planned.remove("cache.zarr")
        OutputFolder(folder).check_new(planned)
        with session(folder, wait=wait) as out:
            ctx = None
            try:
                out.check_new([p for p in planned if p != "cache.zarr"])
                if cache_state(folder / "cache.zarr") in ("ours", "legacy"):  # its own marker proves it ours
                    out.adopt("cache.zarr")
                out.claim(["cache.zarr"], kind="dir")
                cache = StageCache(folder / "cache.zarr")
                cache.clear_stale()
                ctx = Context(cache=cache, show_progress=show_progress)
                ctx.info["holography"] = opt
                ctx.info["output"] = folder
                ctx.info["holo_writers"] = dict(writers or {})
                ctx = run_stages(TABLE, cache=cache, sources=sources, targets=stages, ctx=ctx)
            except IonscopeError:
                if ctx is None or not ctx.records:  # refused before any stage finished
                    out.discard_new()
                raise
    res = HolographyResult(output=folder, records=dict(ctx.records))
    if "holo_series" in ctx:
        res.series = ctx["holo_series"]
    if "holo_analysis" in ctx:
        res.analysis = ctx["holo_analysis"]
    if "holo_report" in ctx:
        res.summary = ctx["holo_report"]
    return res
