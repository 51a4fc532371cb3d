# SPDX-License-Identifier: GPL-3.0-or-later
"""Figures and the GIF movie of a holography night under bias (what ``holo_report`` writes besides data).

* :func:`holo_steps_figure` — bias (and current) from the log, ΔV(t) and the
  10–90 % width(t) per interface with ± 1σ error bars, the asymmetry; fits that
  found no step (|ΔV| < 3σ) are drawn hollow and said so, since their width is
  undefined;
* :func:`holo_potential_figure` — the potential change maps at the most
  positive and the most negative bias (and the last frame when it is another);
* :func:`holo_movie` — an animated GIF of the potential beside the bias curve;
* :func:`holography_writers` — the files of the ``holo_report`` stage, as
  writer callables :func:`ionscope.operando.run_holography` receives (the
  runner never imports this package at module level).

Colour scales follow the house rules (:mod:`ionscope.report._style`): symmetric
about 0 over the robust range of |ΔV| inside the profile region (the thin,
noisy edge of the wedge at the vacuum does not set them), the same for every
frame, extend arrows where it clips.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _style

#: Most frames in the GIF movie (the series is subsampled evenly beyond that).
MOVIE_FRAMES = 60
#: |ΔV| below this many σ: the fit found no step; its width and position are undefined.
NO_STEP_SIGMA = 3.0
_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange")


def _interface_label(ds, i: int) -> str:
    return f"interface at {float(ds.interface_nm[i]):.0f} nm" if "interface_nm" in ds.coords or \
        "interface_nm" in ds else f"interface {i}"


def holo_steps_figure(ds, log=None):
    """ΔV(t), width(t) per interface with ± 1σ under the bias (and current) curve, and the asymmetry.

    Parameters
    ----------
    ds : xarray.Dataset
        :func:`ionscope.holography.bias_series` scalars: ``bias_v``, ``step_v``,
        ``step_v_std``, ``width_nm``, ``width_nm_std`` (time, interface),
        ``asymmetry``, ``asymmetry_std``; ``interface_nm``.
    log : xarray.Dataset, optional
        Bias log with ``voltage`` (V) and ``current`` (A) on ``time`` (s).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(6) * 10.0
    >>> one = lambda v: (("time", "interface"), np.asarray(v, float))
    >>> ds = xr.Dataset({"bias_v": ("time", [0, 0, 1, 1, 1, 1.0]),
    ...                  "step_v": one(np.c_[[0, 0, .4, .5, .5, .5], [0, 0, -.4, -.5, -.5, -.5]]),
    ...                  "step_v_std": one(np.full((6, 2), .05)), "width_nm": one(np.full((6, 2), 5.0)),
    ...                  "width_nm_std": one(np.full((6, 2), 1.0)), "asymmetry": ("time", np.zeros(6)),
    ...                  "asymmetry_std": ("time", np.full(6, .1))},
    ...                 coords={"time": t, "interface_nm": ("interface", [20.0, 80.0])})
    >>> fig = holo_steps_figure(ds)
    >>> fig.axes[2].get_ylabel()
    '10–90 % width (nm)'
    """
    fig, axes = _style.subplots(4, 1, figsize=(8, 9.5), sharex=True, layout="constrained")
    with _style.style():
        _steps(fig, axes, ds, log)
    return fig


def _steps(fig, axes, ds, log):
    t = np.asarray(ds["time"].values, float)
    ax = axes[0]
    if log is not None and "voltage" in log:
        ax.plot(log["time"].values, log["voltage"].values, color="k", lw=1, label="bias (log)")
    ax.plot(t, ds["bias_v"].values, "o", ms=3, color="k", label="bias at each hologram")
    ax.set_ylabel("bias (V)")
    if log is not None and "current" in log:
        cur = np.asarray(log["current"].values, float)
        factor, unit = _style.si_prefix(cur, "A")
        ax2 = ax.twinx()
        ax2.plot(log["time"].values, cur * factor, color="tab:gray", lw=0.8)
        ax2.set_ylabel(f"current ({unit})", color="tab:gray")
    ax.legend(loc="best", fontsize=8)
    step, step_s = np.asarray(ds["step_v"].values, float), np.asarray(ds["step_v_std"].values, float)
    width, width_s = np.asarray(ds["width_nm"].values, float), np.asarray(ds["width_nm_std"].values, float)
    found = _found(step, step_s, width, width_s, _pixel_nm(ds))
    for i in range(step.shape[1]):
        c, lab = _COLOURS[i % 4], _interface_label(ds, i)
        axes[1].errorbar(t, step[:, i], yerr=step_s[:, i], fmt="o", ms=3, color=c, label=lab)
        ok = found[:, i]
        axes[2].errorbar(t[ok], width[ok, i], yerr=width_s[ok, i], fmt="o", ms=3, color=c, label=lab)
        axes[2].plot(t[~ok], np.clip(width[~ok, i], 0, None), "o", ms=4, mfc="none", color=c, alpha=0.6)
    if "frame_good" in ds and not bool(ds["frame_good"].all()):
        # skipped time points are gaps in every curve: mark them, so a gap is never read as "no change"
        for j, tk in enumerate(t[~np.asarray(ds["frame_good"].values, bool)]):
            for a in axes[1:]:
                a.axvline(tk, color="0.55", lw=0.9, ls=":",
                          label="skipped frame (summary.json)" if a is axes[1] and j == 0 else None)
    finite = step[np.isfinite(step)]
    if finite.size:
        # degenerate fits (no step: width and height trade off) carry huge σ; keep the scale on the data
        pad = 3 * float(np.nanmedian(step_s))
        axes[1].set_ylim(np.percentile(finite, 1) - pad, np.percentile(finite, 99) + pad)
    axes[1].set_ylabel("ΔV from zero bias (V)")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].legend(fontsize=8, loc="best")
    axes[2].set_ylabel("10–90 % width (nm)")
    good = width[found & np.isfinite(width)]
    lim = np.percentile(good, 98) if good.size else (np.nanmax(width) if np.isfinite(width).any() else 1.0)
    axes[2].set_ylim(0, 1.3 * lim)
    if (~found).any():
        axes[2].plot([], [], "o", ms=4, mfc="none", color="0.4",
                     label=f"no step found (|ΔV| < {NO_STEP_SIGMA:g}σ, σ > width or width < 1 px): "
                           "width undefined")
        axes[2].legend(fontsize=8, loc="best")
    axes[3].errorbar(t, ds["asymmetry"].values, yerr=ds["asymmetry_std"].values, fmt="o", ms=3, color="k")
    axes[3].axhline(0, color="k", lw=0.5)
    axes[3].set_ylim(-1, 1)
    axes[3].set_ylabel("asymmetry\n(|ΔV₊|−|ΔV₋|)/(|ΔV₊|+|ΔV₋|)")
    axes[3].set_xlabel("time (s)")


def _found(step, step_s, width, width_s, min_width: float = 0.0):
    """Fits that found a step: |ΔV| ≥ 3σ and a width known to better than its own size (a step of a few σ
    can still be fitted by any width, down to the bound: such a width means nothing), and not below
    ``min_width`` (a pixel: narrower than the sampling is unresolved, not measured)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(step) >= NO_STEP_SIGMA * step_s) & (width_s < width) & (width >= min_width)


def _pixel_nm(ds) -> float:
    x = np.asarray(ds["x"].values, float) if "x" in ds.coords else np.array([])
    return float(abs(x[1] - x[0])) if x.size > 1 else 0.0


def _extremes(ds):
    """The last (most relaxed) frame at the most positive and at the most negative bias, and the last frame
    when it is neither of those (of the frames kept: a skipped one has no map)."""
    b = np.asarray(ds["bias_v"].values, float)
    good = _kept(ds)
    picks = []
    for label, level in (("most positive", np.nanmax(b[good])), ("most negative", np.nanmin(b[good]))):
        if label == "most positive" and level <= 0 or label == "most negative" and level >= 0:
            continue
        picks.append((label, int(np.flatnonzero(np.isclose(b, level) & good)[-1])))
    last = int(np.flatnonzero(good)[-1])
    if last not in [k for _, k in picks]:
        picks.append(("last frame", last))
    return picks


def _kept(ds) -> np.ndarray:
    """Time points with a map (``frame_good`` of a night with skipped frames; all when none was skipped)."""
    n = ds.sizes["time"]
    good = np.asarray(ds["frame_good"].values, bool) if "frame_good" in ds else np.ones(n, bool)
    return good if good.any() else np.ones(n, bool)


def _extent(ds):
    x, y = ds["x"].values, ds["y"].values
    dx, dy = (x[1] - x[0]) if x.size > 1 else 1.0, (y[1] - y[0]) if y.size > 1 else 1.0
    return (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)


def _scale(ds, maps):
    """Symmetric robust colour scale of ΔV maps, from the profile region when the series has one."""
    values = np.stack(maps)
    if "region" in ds and ds["region"].dims == ("y", "x"):
        reg = np.asarray(ds["region"].values, bool)
        if reg.any():
            inside = values[:, reg]
            base = _style.colour_scale(inside, symmetric=True)
            return _style.colour_scale(values, vmin=base.vmin, vmax=base.vmax)
    return _style.colour_scale(values, symmetric=True)


def _cmap():
    """RdBu_r with undefined pixels (vacuum, masked edge) in grey: white is ΔV = 0 on this map."""
    import matplotlib

    return matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.78")


def _mark_interfaces(ax, ds):
    if "interface_nm" in ds.coords or "interface_nm" in ds:
        for x0 in np.asarray(ds["interface_nm"].values, float):
            ax.axvline(x0, color="k", lw=0.6, ls=":")


def holo_potential_figure(ds):
    """Potential change maps (V) at the extreme biases on one symmetric colour scale, interfaces dotted.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`ionscope.holography.bias_series` result (``potential`` (time, y, x) in V, ``bias_v``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"potential": (("time", "y", "x"), np.random.default_rng(0).normal(size=(3, 8, 12))),
    ...                  "bias_v": ("time", [0.0, 1.0, -1.0])}, coords={"time": [0.0, 10.0, 20.0]})
    >>> [a.get_title() for a in holo_potential_figure(ds).axes[:2]]
    ['most positive: t = 10 s, +1.00 V', 'most negative: t = 20 s, -1.00 V']
    """
    picks = _extremes(ds)
    maps = [np.asarray(ds["potential"].isel(time=k).values, float) for _, k in picks]
    sc = _scale(ds, maps)
    ext = _extent(ds)
    fig, axes = _style.subplots(1, len(picks), figsize=(4.2 * len(picks), 4.0), layout="constrained",
                                squeeze=False)
    with _style.style():
        im = None
        for ax, (label, k), m in zip(axes[0], picks, maps):
            im = ax.imshow(m, cmap=_cmap(), vmin=sc.vmin, vmax=sc.vmax, extent=ext, interpolation="nearest")
            _mark_interfaces(ax, ds)
            ax.set_title(f"{label}: t = {float(ds.time[k]):.0f} s, {float(ds.bias_v[k]):+.2f} V", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            _style.scale_bar(ax, ext)
        _style.colour_bar(fig, im, sc, ax=list(axes[0]), shrink=0.85, label="ΔV from zero bias (V)")
        if any(np.isnan(m).any() for m in maps):
            fig.text(0.01, 0.005, "grey: no data (vacuum or masked)", fontsize=7, color="0.3", va="bottom")
    return fig


def holo_movie(ds, path, *, fps: float = 8.0, max_frames: int = MOVIE_FRAMES) -> Path:
    """An animated GIF: the potential change map (V) beside the bias curve with a marker, per frame.

    One colour scale for every frame (symmetric, the robust range of |ΔV| over
    the frames shown inside the profile region), with extend arrows where it
    clips. The GIF is written to ``path`` (a temporary of an atomic write is
    fine: Pillow is told the format).

    Parameters
    ----------
    ds : Dataset
        A :func:`ionscope.holography.bias_series` result (``potential`` (time, y, x) in V, ``bias_v``).
    path : str or Path
        The GIF to write.
    fps : float
        Frames per second.
    max_frames : int
        At most this many frames (evenly spaced over the series).

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> ds = xr.Dataset({"potential": (("time", "y", "x"), np.random.default_rng(0).normal(size=(3, 8, 12))),
    ...                  "bias_v": ("time", [0.0, 1.0, -1.0])}, coords={"time": [0.0, 10.0, 20.0]})
    >>> holo_movie(ds, pathlib.Path(tempfile.mkdtemp()) / "potential.gif").stat().st_size > 0
    True
    """
    from matplotlib.animation import PillowWriter

    n = ds.sizes["time"]
    idx = np.unique(np.linspace(0, n - 1, min(n, int(max_frames))).round().astype(int))
    maps = [np.asarray(ds["potential"].isel(time=int(k)).values, float) for k in idx]
    kept = _kept(ds)[idx]
    sc = _scale(ds, [m for m, ok in zip(maps, kept) if ok] or maps)  # a skipped frame's NaN map sets no scale
    ext = _extent(ds)
    t, b = np.asarray(ds["time"].values, float), np.asarray(ds["bias_v"].values, float)
    fig, (ax, axb) = _style.subplots(1, 2, figsize=(9.0, 4.2), gridspec_kw={"width_ratios": [1.1, 1]},
                                     layout="constrained")
    with _style.style():
        im = ax.imshow(maps[0], cmap=_cmap(), vmin=sc.vmin, vmax=sc.vmax, extent=ext, interpolation="nearest")
        _mark_interfaces(ax, ds)
        ax.set_xticks([])
        ax.set_yticks([])
        _style.scale_bar(ax, ext)
        # the colour bar under the map: its label never meets the bias axis beside it
        _style.colour_bar(fig, im, sc, ax=ax, orientation="horizontal", shrink=0.8, pad=0.02,
                          label="ΔV from zero bias (V)")
        axb.plot(t, b, color="k", lw=1)
        marker, = axb.plot([t[0]], [b[0]], "o", color="tab:red")
        axb.set_xlabel("time (s)")
        axb.set_ylabel("bias (V)")
        title = ax.set_title("", fontsize=9)
        writer = PillowWriter(fps=fps)
        gif = str(path) + ".gif"     # Pillow picks the format from the suffix; the caller's path is a temporary
        with writer.saving(fig, gif, dpi=70):
            for k, m in zip(idx, maps):
                im.set_data(m)
                marker.set_data([t[k]], [b[k]])
                title.set_text(f"t = {t[k]:.0f} s, bias {b[k]:+.2f} V")
                writer.grab_frame()
    os.replace(gif, path)
    return Path(path)


def _save_png(fig, path) -> None:
    with _style.style():
        fig.savefig(path, format="png", dpi=100)


def holography_writers() -> dict:
    """The ``holo_report`` stage's figure, movie and viewer writers, by file name (relative to the output).

    Each writer is called ``writer(path, series=ds, scalars=scal, log=log)``
    with the temporary path of an atomic write: ``ds`` the
    :func:`~ionscope.holography.bias_series` result (lazy maps), ``scal`` its
    scalars in memory, ``log`` the bias log or None.

    Returns
    -------
    dict of str to callable
        ``{relative file name: writer}``; the holography report stage writes each file atomically.

    Examples
    --------
    >>> sorted(holography_writers())
    ['figures/holo_potential.png', 'figures/holo_steps.png', 'potential_movie.gif', 'viewer.html']
    """
    from ._holo_viewer import write_holo_viewer

    return {
        "figures/holo_steps.png": lambda p, *, series, scalars, log: _save_png(holo_steps_figure(scalars, log), p),
        "figures/holo_potential.png": lambda p, *, series, scalars, log: _save_png(holo_potential_figure(series), p),
        "potential_movie.gif": lambda p, *, series, scalars, log: holo_movie(series, p),
        "viewer.html": lambda p, *, series, scalars, log: write_holo_viewer(p, series, log=log),
    }
