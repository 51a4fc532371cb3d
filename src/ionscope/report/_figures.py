# SPDX-License-Identifier: GPL-3.0-or-later
"""Matplotlib figures of an operando run: charge curve, mean Li, flux, profiles, rest activity.

Each function takes the plain Datasets a run produces (``sync``, ``analysis``)
and returns a :class:`matplotlib.figure.Figure`; saving is the caller's job
(atomic, via :func:`save_figure`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from . import _style

_STATE_COLOURS = {"charge": "#fde0dd", "rest": "#eeeeee", "discharge": "#deebf7"}


def _unit(da, default: str) -> str:
    return da.attrs.get("units") or default


def _is_x(analysis) -> bool:
    """The maps are x in LixCoO2 (a calibration was given), not a Li weight."""
    return str(analysis.attrs.get("map_quantity", "")).startswith("Li fraction x") or \
        analysis.attrs.get("map_unit") == "x"


def _li_name(analysis, da=None) -> str:
    """'x in LixCoO2', or 'Li weight (unit)' for uncalibrated maps (the axis label of a Li quantity)."""
    if _is_x(analysis):
        return "x in LixCoO2"
    unit = _unit(da, "map units") if da is not None else "map units"
    return f"Li ({unit})" if unit not in ("1", "") else "Li"


def _x_bounds(ax, analysis) -> None:
    """Dashed lines at the physical bounds of x (0 and 1) that lie in the plotted range."""
    if not _is_x(analysis):
        return
    lo, hi = ax.get_ylim()
    for b, what in ((1.0, "x = 1 (LiCoO2)"), (0.0, "x = 0 (CoO2)")):
        if lo <= b <= hi:
            ax.axhline(b, color="0.35", lw=0.7, ls="--", zorder=1)
            ax.text(0.01, b, what, transform=ax.get_yaxis_transform(), ha="left",
                    va="bottom" if b == 1.0 else "top", fontsize=7, color="0.35")
    ax.set_ylim(lo, hi)


def _shade_states(ax, t_min, states):
    """Background bands per cell state so every time plot reads against the protocol."""
    if states is None or len(t_min) == 0:
        return
    states = [str(s) for s in states]
    step = float(np.median(np.diff(t_min))) if len(t_min) > 1 else 1.0
    start = 0
    for i in range(1, len(states) + 1):
        if i == len(states) or states[i] != states[start]:
            first = states[start] not in ax.get_legend_handles_labels()[1]  # one legend entry per state
            ax.axvspan(t_min[start] - step / 2, t_min[i - 1] + step / 2,
                       color=_STATE_COLOURS.get(states[start], "white"), zorder=0, lw=0,
                       label=states[start] if first else None)
            start = i


def charge_curve(sync):
    """Voltage and state of charge per frame (and the current, when logged), bands by state.

    Parameters
    ----------
    sync : Dataset
        Per-frame log values on ``time`` (s), as :func:`ionscope.transport.sync_frames` gives:
        ``voltage``, and optionally ``soc``, ``current`` and ``state``.

    Returns
    -------
    matplotlib.figure.Figure
        One panel (voltage, state of charge), two with the current.

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = charge_curve(ds[["voltage", "current", "state"]])
    >>> [a.get_ylabel() for a in fig.axes]
    ['voltage (V)', 'current (fA)']
    """
    t = np.asarray(sync.time.values, float) / 60.0
    has_current = "current" in sync
    fig, axes = _style.subplots(2 if has_current else 1, 1, figsize=(7, 4.6 if has_current else 3.4), sharex=True,
                                squeeze=False, layout="constrained")
    with _style.style():
        _charge_curve(fig, axes, sync, t, has_current)
    return fig


def _charge_curve(fig, axes, sync, t, has_current):
    ax = axes[0, 0]
    states = sync.state.values if "state" in sync else None
    _shade_states(ax, t, states)
    handles = []
    if "voltage" in sync:
        handles += ax.plot(t, sync.voltage.values, "o-", ms=3, color="C0", label="voltage")
        ax.set_ylabel("voltage (V)")
    if "soc" in sync:
        ax2 = ax.twinx()
        handles += ax2.plot(t, sync.soc.values, "s--", ms=3, color="C1", label="state of charge")
        ax2.set_ylabel("state of charge")
    bands, names = ax.get_legend_handles_labels()
    bands = [h for h, n in zip(bands, names) if n in _STATE_COLOURS]
    # legend above the plot: it never hides the curve
    ax.legend(handles=bands + handles, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=5, frameon=False)
    if has_current:
        a2 = axes[1, 0]
        _shade_states(a2, t, states)
        cur = np.asarray(sync.current.values, float)
        factor, unit = _style.si_prefix(cur, _unit(sync.current, "A"))
        a2.axhline(0, color="k", lw=0.5)
        a2.plot(t, cur * factor, "o-", ms=3, color="C2")
        a2.set_ylabel(f"current ({unit})")
    axes[-1, 0].set_xlabel("time (min)")


def mean_li(analysis, *, raw=None):
    """Mean Li (x in LixCoO2 once calibrated) per frame: denoised, and raw if given.

    Parameters
    ----------
    analysis : Dataset
        A :func:`ionscope.transport.analyse` result (``mean_li``, optionally ``state``).
    raw : array_like, optional
        The mean of the raw (not denoised) maps per frame.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> from ionscope.transport import analyse
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = mean_li(analyse(ds.li, states=ds.state.values))
    >>> fig.axes[0].get_xlabel()
    'time (min)'
    """
    t = np.asarray(analysis.time.values, float) / 60.0
    fig, ax = _style.subplots(figsize=(6, 3.4), layout="constrained")
    with _style.style():
        _shade_states(ax, t, analysis.state.values if "state" in analysis else None)
        if raw is not None:
            ax.plot(t, raw, ".", color="0.5", label="raw maps")
        ax.plot(t, analysis.mean_li.values, "o-", ms=3, color="C2", label="denoised maps")
        ax.set_xlabel("time (min)")
        ax.set_ylabel(f"mean {_li_name(analysis, analysis.mean_li)}")
        ax.set_title("Li in the field of view: mean over the map", pad=24)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, frameon=False)
        _x_bounds(ax, analysis)
    return fig


def flux_components(analysis):
    """Through-film vs in-plane transport and the net direction per frame.

    Parameters
    ----------
    analysis : Dataset
        A :func:`ionscope.transport.analyse` result (``through_film``, ``in_plane``,
        ``toward_electrolyte``; the through-film share and its σ in ``attrs``).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: the flux components, and the net flux toward the electrolyte.

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> from ionscope.transport import analyse
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = flux_components(analyse(ds.li, states=ds.state.values))
    >>> fig.get_suptitle().startswith("Li flux (continuity method)")
    True
    """
    t = np.asarray(analysis.time.values, float) / 60.0
    unit = _unit(analysis.through_film, _unit(analysis.flux_y, "nm/s") if "flux_y" in analysis else "nm/s")
    fig, (a1, a2) = _style.subplots(2, 1, figsize=(7, 5.4), sharex=True, layout="constrained")
    with _style.style():
        _flux_components(fig, a1, a2, analysis, t, unit)
    return fig


def _flux_components(fig, a1, a2, analysis, t, unit):
    states = analysis.state.values if "state" in analysis else None
    _shade_states(a1, t, states)
    _shade_states(a2, t, states)
    a1.plot(t, analysis.through_film.values, "o-", ms=3, label="through-film ⟨|J_y|⟩")
    a1.plot(t, analysis.in_plane.values, "s-", ms=3, label="in-plane ⟨|J_x|⟩")
    a1.set_ylabel(f"flux ({unit})")
    a1.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, frameon=False)
    frac = analysis.attrs.get("through_fraction", float("nan"))
    frac_std = analysis.attrs.get("through_fraction_std")
    share = _style.with_sigma(frac, frac_std) if frac_std is not None else f"{frac:.2f}"
    fig.suptitle(f"Li flux ({analysis.attrs.get('method', '')} method): through-film share of |J| "
                 f"{share}")
    a2.axhline(0, color="k", lw=0.5)
    a2.plot(t, analysis.toward_electrolyte.values, "o-", ms=3, color="C3")
    a2.set_ylabel(f"net flux toward\nelectrolyte ({unit})")
    a2.set_xlabel("time (min)")


def profiles(analysis, *, n_curves: int = 6):
    """Li (x once calibrated) and through-film flux vs distance from the interface, for a few frames.

    Parameters
    ----------
    analysis : Dataset
        A :func:`ionscope.transport.analyse` result (``profile_li``, ``profile_flux_y`` on ``position``).
    n_curves : int
        Frames drawn, evenly spaced over the run.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> from ionscope.transport import analyse
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = profiles(analyse(ds.li), n_curves=3)
    >>> fig.axes[0].get_xlabel()
    'distance from the interface (nm)'
    """
    import matplotlib

    d = np.asarray(analysis.position.values, float)
    idx = np.unique(np.linspace(0, analysis.sizes["time"] - 1, n_curves).round().astype(int))
    fig, (a1, a2) = _style.subplots(1, 2, figsize=(8, 3.4), layout="constrained")
    with _style.style():
        _profiles(fig, a1, a2, analysis, d, idx, matplotlib.colormaps["plasma"])
    return fig


def _profiles(fig, a1, a2, analysis, d, idx, cmap):
    for k, i in enumerate(idx):
        c = cmap(k / max(len(idx) - 1, 1))
        lab = _style.minutes(float(analysis.time[i]))
        a1.plot(d, analysis.profile_li.values[i], color=c, label=lab)
        a2.plot(d, analysis.profile_flux_y.values[i], color=c)
    a1.set_xlabel("distance from the interface (nm)")
    a2.set_xlabel("distance from the interface (nm)")
    a1.set_ylabel(_li_name(analysis, analysis.profile_li))
    a2.set_ylabel(f"through-film flux J_y ({_unit(analysis.profile_flux_y, 'nm/s')})")
    a2.axhline(0, color="k", lw=0.5)
    a1.legend(title="time", ncol=2)
    _x_bounds(a1, analysis)
    a1.set_title("mean along the interface (over the x axis) at each distance", fontsize=8)
    a2.set_title("J_y > 0: toward the current collector", fontsize=8)


def flux_map(analysis, *, frame: int | None = None, step: int = 3):
    """Li change of one frame with the flux field as arrows (default: the most active frame).

    Drawn in nm with y downward, so the electrolyte (row 0) is at the top, as in
    every ionscope map. The colour scale is symmetric about 0 over the robust
    range of |dLi/dt| (extend arrows where it clips); a quiver key gives the
    arrow length in flux units.

    Parameters
    ----------
    analysis : Dataset
        A :func:`ionscope.transport.analyse` result (``dcdt``, ``flux_y``, ``flux_x``).
    frame : int, optional
        The frame drawn (default: the one with the largest mean |dLi/dt|).
    step : int
        An arrow every ``step`` pixels.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> from ionscope.transport import analyse
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = flux_map(analyse(ds.li), frame=2)
    >>> fig.axes[0].get_ylabel()
    'y (nm)'
    """
    if frame is None:
        frame = int(np.argmax(analysis.through_film.values + analysis.in_plane.values))
    one = analysis.isel(time=frame)
    ny, nx = one.flux_y.shape
    fig, ax = _style.subplots(figsize=(6.4, 5.8 * ny / nx + 1.9), layout="constrained")
    with _style.style():
        _flux_map(fig, ax, analysis, one, frame, step)
    return fig


def _flux_map(fig, ax, analysis, one, frame, step):
    jy = one.flux_y.values
    jx = one.flux_x.values
    ny, nx = jy.shape
    sc = _style.colour_scale(one.dcdt.values, symmetric=True)
    im = _style.image(ax, one.dcdt, cmap="RdBu", vmin=sc.vmin, vmax=sc.vmax)
    ext = _style.extent_nm(one.dcdt)
    if ext is not None:
        xs = np.asarray(one.x.values, float)[::step]
        ys = np.asarray(one.y.values, float)[::step]
    else:
        xs, ys = np.arange(0, nx, step), np.arange(0, ny, step)
    xx, yy = np.meshgrid(xs, ys)
    u, v = jx[::step, ::step], jy[::step, ::step]
    unit = _unit(analysis.flux_y, "nm/s")
    speed = np.hypot(u, v)
    speed = speed[np.isfinite(speed)]
    # arrows scaled so that the 95th-percentile arrow spans 0.9 of the arrow spacing: matplotlib's own
    # scale let strong arrows run through their neighbours (a referee cannot tell which arrow is which)
    gaps = [abs(float(c[1] - c[0])) for c in (xs, ys) if len(c) > 1]
    top = float(np.percentile(speed, 95)) if speed.size else 0.0
    scale = dict(scale_units="xy", scale=top / (0.9 * min(gaps))) if gaps and top > 0 else {}
    # y grows downward on screen, so +J_y (toward the collector) must point down too: angles="xy"
    # on an inverted y axis does exactly that
    q = ax.quiver(xx, yy, u, v, color="k", angles="xy", **scale)
    if speed.size and speed.max() > 0:
        key = _style.nice_length(4.0 * float(np.percentile(speed, 90)))  # a round value ≤ a typical arrow
        # above the map at the right, clear of the arrows of the first row: the key never hides an arrow
        ax.quiverkey(q, 0.97, 1.07, key, f"arrow key: |J| = {key:g} {unit}", labelpos="W", coordinates="axes",
                     fontproperties={"size": 8})
    _style.colour_bar(fig, im, sc, ax=ax, location="bottom", shrink=0.7, aspect=35,
                      label=f"dLi/dt ({_unit(analysis.dcdt, '1/s')})")
    t = float(analysis.time.values[frame]) if "time" in analysis.coords else None
    when = _style.minutes(t) if t is not None else f"frame {frame}"
    ax.set_title(f"Li flux J (arrows) over dLi/dt (colour) at {when}\nelectrolyte at the top", loc="left",
                 pad=10)


def rest_activity(analysis):
    """Mean |dLi/dt| over the rest frames: where Li keeps moving at open circuit.

    Parameters
    ----------
    analysis : Dataset
        A :func:`ionscope.transport.analyse` result with ``rest_activity`` (needs ``states``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> from ionscope.transport import analyse
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> fig = rest_activity(analyse(ds.li, states=ds.state.values))
    >>> "Activity at rest" in fig.axes[0].get_title()
    True
    """
    da = analysis.rest_activity
    fig, ax = _style.subplots(figsize=(5.6, 5.6 * da.sizes["y"] / da.sizes["x"] + 0.9), layout="constrained")
    with _style.style():
        sc = _style.colour_scale(da.values, percentiles=(0.0, 99.0))
        im = _style.image(ax, da, cmap="magma", vmin=max(sc.vmin, 0.0), vmax=sc.vmax)
        _style.colour_bar(fig, im, sc, ax=ax, shrink=0.8, label=f"mean |dLi/dt| at rest ({_unit(da, '1/s')})")
        ratio = analysis.attrs.get("rest_to_active_ratio", float("nan"))
        sd = analysis.attrs.get("rest_to_active_ratio_std")
        ax.set_title("Activity at rest (rest/active = "
                     f"{_style.with_sigma(ratio, sd) if sd is not None else f'{ratio:.2f}'}); electrolyte at the top")
    return fig


def thickness_trend(times_s, thickness, states=None):
    """Mean t/λ per frame: a film thinning under the beam changes every map (beam-damage check)."""
    t = np.asarray(times_s, float) / 60.0
    th = np.asarray(thickness, float)
    fig, ax = _style.subplots(figsize=(6, 3.2), layout="constrained")
    with _style.style():
        _shade_states(ax, t, states)
        ax.plot(t, th, "o-", ms=3, color="C3")
        ax.set_xlabel("time (min)")
        ax.set_ylabel("mean t/λ (log-ratio)")
        change = 100.0 * (th[-1] / th[0] - 1.0) if th.size > 1 and th[0] > 0 else 0.0
        warn = " — thinning > 5 %: beam damage?" if change < -5 else ""
        ax.set_title(f"Thickness of the field of view: {change:+.1f} % over the run{warn}", fontsize=10)
    return fig


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    """Save a figure atomically (format from the suffix) and release it.

    Saved inside the house style (:func:`ionscope.report._style.style`); a
    figure that pyplot manages is closed, one made without pyplot needs nothing.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        The file (``.png``, ``.svg``, ``.pdf``, ...); its folder is created.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope.report import subplots
    >>> fig, ax = subplots(figsize=(2, 2))
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "figures" / "line.png").stat().st_size > 0
    True
    """
    path = Path(path)
    with _style.style(), atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    _release(fig)
    return path


def _release(fig) -> None:
    """Close ``fig`` in pyplot when pyplot is in use (a no-op for a figure pyplot does not hold).

    Public as :func:`ionscope.report.release_figure`.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.

    Examples
    --------
    >>> from ionscope.report import subplots
    >>> fig, ax = subplots()
    >>> release_figure(fig)
    """
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


#: Public name of :func:`_release` (close a figure pyplot holds; drop it otherwise).
release_figure = _release
