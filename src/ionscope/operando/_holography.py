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
* ``holo_report`` — figures (ΔV(t) and width(t) per interface with error bars
  under the bias and current curves; potential maps at the extreme biases; an
  animated GIF of the potential beside the bias curve), ``viewer.html`` (the
  offline viewer: the potential movie beside the bias, current, ΔV and width
  curves with a cursor, :mod:`ionscope.operando._holo_viewer`), ``curves.csv``
  and ``summary.json``, published into the output folder as one set.

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
    #           min_bias_v (asymmetry), min_jump_v (relaxation)

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
    "drift": "auto",
}
_SERIES_KEYS = ("method", "thickness_nm", "voltage_kv", "interfaces_nm", "window_nm", "model", "background",
                "order", "zero_bias", "drift")


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
    if out["method"] not in ("fourier", "phase-shifting"):
        raise ConfigError(f"config [holography] method = {out['method']!r}: expected 'fourier' or 'phase-shifting'")
    if out["background"] not in ("piecewise", "linear", "constant"):
        raise ConfigError(f"config [holography] background = {out['background']!r}: expected 'piecewise', "
                          "'linear' or 'constant'")
    if out["thickness_nm"] is None:
        raise ConfigError("config [holography] thickness_nm: required (nm, or the path of a (y, x) map)")
    if not (isinstance(out["workers"], int) and out["workers"] >= 1):
        raise ConfigError(f"config [holography] workers = {out['workers']!r}: expected an integer ≥ 1")
    out["drift"] = _drift_option(out["drift"])
    return out, base


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
                     workers=opt["workers"], out=maps, drift=opt["drift"], **kw)
    ds["potential"] = ds["potential"].astype(np.float32)
    ds["phase"] = ds["phase"].astype(np.float32)
    return ds


def _series_after(ctx, ds):
    # the frame-by-frame store was copied into the cache: drop the temporary
    import shutil

    shutil.rmtree(ctx.info["output"] / ".holo_maps.zarr", ignore_errors=True)


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
        try:
            summary = json.loads((self.folder / "summary.json").read_text())
        except (OSError, ValueError):
            return False
        files = summary.get("files", [])
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
    from ._holo_viewer import write_holo_viewer

    ds, an = ctx["holo_series"], ctx["holo_analysis"]
    scal = ds.drop_vars(["phase", "potential"]).load()
    writers = {"figures/holo_steps.png": lambda p: _fig_steps(scal, ctx["log"], p),
               "figures/holo_potential.png": lambda p: _fig_maps(ds, p),
               "potential_movie.gif": lambda p: _movie(ds, p),
               "viewer.html": lambda p: write_holo_viewer(p, ds, log=ctx["log"]),
               "curves.csv": lambda p: _curves_csv(scal, p)}
    return _summary(ctx, scal, an), {name: writers[name] for name in REPORT_FILES}


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


def _plt():
    import os
    import sys

    import matplotlib

    # off-screen, unless a pyplot session or a Jupyter kernel (inline) already chose its backend
    if "matplotlib.pyplot" not in sys.modules and "inline" not in os.environ.get("MPLBACKEND", ""):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_steps(ds, log, path):
    plt = _plt()
    t = ds["time"].values
    fig, axes = plt.subplots(4, 1, figsize=(8, 9.5), sharex=True, constrained_layout=True)
    ax = axes[0]
    if log is not None and "voltage" in log:
        ax.plot(log["time"].values, log["voltage"].values, color="k", lw=1, label="bias (log)")
    ax.plot(t, ds["bias_v"].values, "o", ms=3, color="k", label="bias at each hologram")
    ax.set_ylabel("bias (V)")
    if log is not None and "current" in log:
        ax2 = ax.twinx()
        ax2.plot(log["time"].values, np.asarray(log["current"].values) * 1e9, color="tab:gray", lw=0.8)
        ax2.set_ylabel("current (nA)", color="tab:gray")
    ax.legend(loc="upper right", fontsize=8)
    colors = ("tab:blue", "tab:red", "tab:green", "tab:orange")
    for i in range(ds.sizes["interface"]):
        lab = f"interface at {float(ds.interface_nm[i]):.0f} nm"
        axes[1].errorbar(t, ds["step_v"].values[:, i], yerr=ds["step_v_std"].values[:, i], fmt="o", ms=3,
                         color=colors[i % 4], label=lab)
        axes[2].errorbar(t, ds["width_nm"].values[:, i], yerr=ds["width_nm_std"].values[:, i], fmt="o", ms=3,
                         color=colors[i % 4], label=lab)
    finite = ds["step_v"].values[np.isfinite(ds["step_v"].values)]
    if finite.size:
        # degenerate fits (no step: width and height trade off) carry huge σ; keep the scale on the data
        pad = 3 * float(np.nanmedian(ds["step_v_std"].values))
        axes[1].set_ylim(np.percentile(finite, 1) - pad, np.percentile(finite, 99) + pad)
    axes[1].set_ylabel("ΔV from zero bias (V)")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].legend(fontsize=8)
    axes[2].set_ylabel("10–90 % width (nm)")
    lim = np.nanpercentile(ds["width_nm"].values, 98) if np.isfinite(ds["width_nm"].values).any() else 1
    axes[2].set_ylim(0, 1.3 * lim)
    axes[3].errorbar(t, ds["asymmetry"].values, yerr=ds["asymmetry_std"].values, fmt="o", ms=3, color="k")
    axes[3].axhline(0, color="k", lw=0.5)
    axes[3].set_ylim(-1, 1)
    axes[3].set_ylabel("asymmetry\n(|ΔV₊|−|ΔV₋|)/(|ΔV₊|+|ΔV₋|)")
    axes[3].set_xlabel("time (s)")
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _extremes(ds):
    """The last (most relaxed) frame at the most positive and at the most negative bias, and the last frame."""
    b = ds["bias_v"].values
    picks = []
    for label, level in (("most positive", np.max(b)), ("most negative", np.min(b))):
        if label == "most positive" and level <= 0 or label == "most negative" and level >= 0:
            continue
        picks.append((label, int(np.flatnonzero(np.isclose(b, level))[-1])))
    picks.append(("last frame", b.size - 1))
    return picks


def _scale_bar(ax, extent, length_nm):
    from matplotlib.patches import Rectangle

    w, h = extent[1] - extent[0], extent[2] - extent[3]
    x0, y0 = extent[0] + 0.05 * w, extent[2] - 0.08 * h
    # black on the white zero of the diverging colour map
    ax.add_patch(Rectangle((x0, y0), length_nm, 0.015 * h, color="black"))
    ax.text(x0 + length_nm / 2, y0 - 0.02 * h, f"{length_nm:g} nm", color="black", ha="center", va="bottom",
            fontsize=8, fontweight="bold")


def _bar_length(width_nm):
    target = width_nm / 4
    mag = 10 ** math.floor(math.log10(target))
    return max(m * mag for m in (1, 2, 5) if m * mag <= target)


def _extent(ds):
    x, y = ds["x"].values, ds["y"].values
    dx, dy = (x[1] - x[0]) if x.size > 1 else 1.0, (y[1] - y[0]) if y.size > 1 else 1.0
    return (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)


def _fig_maps(ds, path):
    plt = _plt()
    picks = _extremes(ds)
    maps = [np.asarray(ds["potential"].isel(time=k).values, float) for _, k in picks]
    finite = np.concatenate([m[np.isfinite(m)] for m in maps]) if maps else np.zeros(1)
    lim = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    ext = _extent(ds)
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 3.8), constrained_layout=True)
    for ax, (label, k), m in zip(np.atleast_1d(axes), picks, maps):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext)
        for x0 in ds["interface_nm"].values:
            ax.axvline(x0, color="k", lw=0.6, ls=":")
        ax.set_title(f"{label}: t = {float(ds.time[k]):.0f} s, {float(ds.bias_v[k]):+.2f} V", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, ext, _bar_length(ext[1] - ext[0]))
    cb = fig.colorbar(im, ax=axes, shrink=0.85)
    cb.set_label("potential change from zero bias (V)")
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


#: Most frames in the GIF movie (the series is subsampled evenly beyond that).
_MOVIE_FRAMES = 60


def _movie(ds, path):
    plt = _plt()
    from matplotlib.animation import PillowWriter

    n = ds.sizes["time"]
    idx = np.unique(np.linspace(0, n - 1, min(n, _MOVIE_FRAMES)).round().astype(int))
    first = np.asarray(ds["potential"].isel(time=int(np.argmax(np.abs(ds["bias_v"].values)))).values, float)
    lim = float(np.nanpercentile(np.abs(first), 99)) if np.isfinite(first).any() else 1.0
    ext = _extent(ds)
    t, b = ds["time"].values, ds["bias_v"].values
    fig, (ax, axb) = plt.subplots(1, 2, figsize=(8.5, 3.6), gridspec_kw={"width_ratios": [1.2, 1]},
                                  constrained_layout=True)
    im = ax.imshow(first, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext)
    ax.set_xticks([])
    ax.set_yticks([])
    _scale_bar(ax, ext, _bar_length(ext[1] - ext[0]))
    fig.colorbar(im, ax=ax, shrink=0.8).set_label("ΔV (V)")
    axb.plot(t, b, color="k", lw=1)
    marker, = axb.plot([t[0]], [b[0]], "o", color="tab:red")
    axb.set_xlabel("time (s)")
    axb.set_ylabel("bias (V)")
    import os

    writer = PillowWriter(fps=8)
    gif = str(path) + ".gif"     # Pillow picks the format from the suffix; the caller's path is a temporary
    with writer.saving(fig, gif, dpi=70):
        for k in idx:
            im.set_data(np.asarray(ds["potential"].isel(time=int(k)).values, float))
            marker.set_data([t[k]], [b[k]])
            ax.set_title(f"t = {t[k]:.0f} s, bias {b[k]:+.2f} V", fontsize=9)
            writer.grab_frame()
    plt.close(fig)
    os.replace(gif, path)


#: The holography stage table (one runner with the EELS table: :func:`run_stages`).
TABLE = (
    Stage("holo_series", _series, inputs=("holograms", "references", "log", "thickness"),
          params=lambda ctx: {k: ctx.info["holography"][k] for k in _SERIES_KEYS}, after=_series_after),
    Stage("holo_analysis", _analysis, inputs=("holo_series",), params=_analysis_params),
    Stage("holo_report", _report, inputs=("holo_series", "holo_analysis", "log"),
          params=lambda ctx: {"files": list(REPORT_FILES)}, store=lambda ctx: _FolderStore(ctx.info["output"])),
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
                   show_progress=None, wait: bool | float = False) -> HolographyResult:
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
    >>> res.series.step_v.dims
    ('time', 'interface')
    """
    from ._stages import StageCache

    from .._atomic import clean_temporaries, os_errors
    from ._graph import Context
    from ._lock import folder_lock

    opt, base = holography_config(config)
    folder = Path(output) if output is not None else _resolve(base, opt["output"])
    # the same guarantees as the EELS run: one run per folder, OS faults in one line, no stale temporaries
    with os_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(folder, wait=wait):
            clean_temporaries(folder)
            sources = _sources(opt, base, holograms=holograms, references=references, log=log)
            cache = StageCache(folder / "cache.zarr")
            cache.clear_stale()
            ctx = Context(cache=cache, show_progress=show_progress)
            ctx.info["holography"] = opt
            ctx.info["output"] = folder
            ctx = run_stages(TABLE, cache=cache, sources=sources, targets=stages, ctx=ctx)
    res = HolographyResult(output=folder, records=dict(ctx.records))
    if "holo_series" in ctx:
        res.series = ctx["holo_series"]
    if "holo_analysis" in ctx:
        res.analysis = ctx["holo_analysis"]
    if "holo_report" in ctx:
        res.summary = ctx["holo_report"]
    return res
