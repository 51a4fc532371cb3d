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

_STATE_COLOURS = {"charge": "#fde0dd", "rest": "#eeeeee", "discharge": "#deebf7"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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
    """Voltage and state of charge per frame, bands by state."""
    plt = _plt()
    t = np.asarray(sync.time.values, float) / 60.0
    fig, ax = plt.subplots(figsize=(6, 3.4))
    states = sync.state.values if "state" in sync else None
    _shade_states(ax, t, states)
    if "voltage" in sync:
        ax.plot(t, sync.voltage.values, "o-", ms=3, color="C0", label="voltage")
        ax.set_ylabel("voltage (V)")
    if "soc" in sync:
        ax2 = ax.twinx()
        ax2.plot(t, sync.soc.values, "s--", ms=3, color="C1", label="charge passed (SOC)")
        ax2.set_ylabel("state of charge")
    ax.set_xlabel("time (min)")
    ax.set_title("Charge curve, per frame")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def mean_li(analysis, *, raw=None):
    """Mean Li per frame (denoised, and raw if given)."""
    plt = _plt()
    t = np.asarray(analysis.time.values, float) / 60.0
    fig, ax = plt.subplots(figsize=(6, 3.4))
    _shade_states(ax, t, analysis.state.values if "state" in analysis else None)
    if raw is not None:
        ax.plot(t, raw, ".", color="0.5", label="raw maps")
    ax.plot(t, analysis.mean_li.values, "o-", ms=3, color="C2", label="denoised maps")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("mean Li map value")
    ax.set_title("Li in the field of view")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def flux_components(analysis):
    """Through-film vs in-plane transport and the net direction per frame."""
    plt = _plt()
    t = np.asarray(analysis.time.values, float) / 60.0
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    states = analysis.state.values if "state" in analysis else None
    _shade_states(a1, t, states)
    _shade_states(a2, t, states)
    a1.plot(t, analysis.through_film.values, "o-", ms=3, label="through-film ⟨|J_y|⟩")
    a1.plot(t, analysis.in_plane.values, "s-", ms=3, label="in-plane ⟨|J_x|⟩")
    a1.set_ylabel("flux (nm/s)")
    a1.legend(fontsize=8)
    a1.set_title(f"Li flux ({analysis.attrs.get('method', '')}); through-film fraction "
                 f"{analysis.attrs.get('through_fraction', float('nan')):.2f}")
    a2.axhline(0, color="k", lw=0.5)
    a2.plot(t, analysis.toward_electrolyte.values, "o-", ms=3, color="C3")
    a2.set_ylabel("net flux toward\nelectrolyte (nm/s)")
    a2.set_xlabel("time (min)")
    fig.tight_layout()
    return fig


def profiles(analysis, *, n_curves: int = 6):
    """Li and through-film flux vs distance from the interface, for a few frames."""
    plt = _plt()
    d = np.asarray(analysis.position.values, float)
    idx = np.unique(np.linspace(0, analysis.sizes["time"] - 1, n_curves).round().astype(int))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4))
    cmap = plt.get_cmap("plasma")
    for k, i in enumerate(idx):
        c = cmap(k / max(len(idx) - 1, 1))
        lab = f"{float(analysis.time[i]) / 60:.0f} min"
        a1.plot(d, analysis.profile_li.values[i], color=c, label=lab)
        a2.plot(d, analysis.profile_flux_y.values[i], color=c)
    a1.set_xlabel("distance from the interface (nm)")
    a2.set_xlabel("distance from the interface (nm)")
    a1.set_ylabel("Li")
    a2.set_ylabel("through-film flux J_y (nm/s)")
    a2.axhline(0, color="k", lw=0.5)
    a1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def flux_map(analysis, *, frame: int | None = None, step: int = 3):
    """Li map of one frame with the flux field as arrows (default: the most active frame)."""
    plt = _plt()
    if frame is None:
        frame = int(np.argmax(analysis.through_film.values + analysis.in_plane.values))
    jy = analysis.flux_y.values[frame]
    jx = analysis.flux_x.values[frame]
    dcdt = analysis.dcdt.values[frame]
    ny, nx = jy.shape
    fig, ax = plt.subplots(figsize=(6, 6 * ny / nx + 0.6))
    lim = float(np.abs(dcdt).max()) or 1.0
    im = ax.imshow(dcdt, cmap="RdBu", vmin=-lim, vmax=lim, origin="upper")
    yy, xx = np.mgrid[0:ny:step, 0:nx:step]
    # y grows downward on screen (origin="upper"), so +J_y (toward the collector) must point down too
    ax.quiver(xx, yy, jx[::step, ::step], jy[::step, ::step], color="k", angles="xy")
    fig.colorbar(im, ax=ax, shrink=0.7, label="dLi/dt (1/s)")
    ax.set_title(f"frame {frame}: flux (arrows) over the Li change; electrolyte at the top")
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def rest_activity(analysis):
    """Mean |dLi/dt| over the rest frames: where Li keeps moving at open circuit."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(analysis.rest_activity.values, cmap="magma")
    fig.colorbar(im, ax=ax, shrink=0.8, label="mean |dLi/dt| at rest (1/s)")
    ratio = analysis.attrs.get("rest_to_active_ratio", float("nan"))
    ax.set_title(f"Activity at rest (rest/active = {ratio:.2f})")
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    """Save a figure atomically (format from the suffix) and close it."""
    plt = _plt()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
