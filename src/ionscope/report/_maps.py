# SPDX-License-Identifier: GPL-3.0-or-later
"""Map figures in the house style: a grid of maps (:func:`map_grid`) and the notebook helper (:func:`plot_map`).

Conventions and the colour-scale rules are those of :mod:`ionscope.report._style`.
"""
from __future__ import annotations

import numpy as np

from ..io import accepts_data
from ._style import (
    RC,
    bounds_of,
    colour_bar,
    colour_scale,
    image,
    minutes,
    quantity_label,
    style,
    subplots,
)


@accepts_data("da", array_kind="image")
def map_grid(da, *, title: str | None = None, max_frames: int = 8, relative: bool = False, label: str | None = None,
             cmap: str = "viridis", ncols: int = 4, bounds=None):
    """A grid of maps of a (y, x), (time, y, x) or (component, y, x) DataArray.

    Panels are titled by time in min (or component), drawn in nm (axes on the
    first column and bottom row, scale bars elsewhere) with one labelled colour
    bar, or one per panel when ``relative`` (each panel its own scale). The
    colour scale is the robust range of the panels shown (:func:`colour_scale`),
    within ``bounds`` (default: the quantity's physical bounds,
    :func:`bounds_of`); extend arrows mark clipped ends and the share of pixels
    outside the physical bounds is written under the title.

    Parameters
    ----------
    da : DataArray
        The maps: (y, x), or with one or more leading dims (``time``, ``component``, ...).
    title : str, optional
        The figure title.
    max_frames : int
        At most this many panels (evenly spaced along the leading dim).
    relative : bool
        Each panel its own colour scale and bar (NMF loadings, normalised maps).
    label : str, optional
        The colour-bar label (default: :func:`quantity_label`).
    cmap : str
        Colour map.
    ncols : int
        At most this many panels per row.
    bounds : (lo, hi), optional
        Physical bounds (default :func:`bounds_of`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import calibrated
    >>> da = calibrated(np.random.default_rng(0).random((3, 8, 10)), ("time", "y", "x"),
    ...                 scale={"time": 60.0, "y": 2.0, "x": 2.0}, name="Li")
    >>> fig = map_grid(da, label="Li (fraction)")
    >>> [a.get_title() for a in fig.axes[:3]]
    ['0.0 min', '1.0 min', '2.0 min']
    """
    lead = [d for d in da.dims if d not in ("y", "x")]
    if len(lead) > 1:
        da = da.stack(_panel=lead)
        lead = ["_panel"]
    if lead:
        n = da.sizes[lead[0]]
        idx = np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int))
        panels = [da.isel({lead[0]: int(i)}) for i in idx]
        if lead[0] == "time" and "time" in da.coords:
            names = [minutes(da.time.values[i]) for i in idx]
        elif lead[0] in da.coords:
            names = [f"{lead[0]} {da[lead[0]].values[i]}" for i in idx]
        else:
            names = [f"{lead[0]} {i}" for i in idx]
    else:
        panels, names = [da], [""]
    label = label or quantity_label(da, title)
    bounds = None if relative else (bounds if bounds is not None else bounds_of(da))
    ny, nx = da.sizes["y"], da.sizes["x"]
    rows = int(np.ceil(len(panels) / ncols))
    cols = int(np.ceil(len(panels) / rows))  # 6 panels: 3 × 2, not 4 + 2
    panel = 2.4 if nx >= ny else 2.4 * nx / ny
    w = panel * cols + (1.0 if not relative else 1.0 * cols) + 0.6
    h = rows * (panel * ny / nx + 0.45) + (0.5 if title else 0.1) + 0.5
    fig, axes = subplots(rows, cols, figsize=(w, h), squeeze=False, layout="constrained")
    shared = None if relative else colour_scale(np.concatenate([np.ravel(pn.values) for pn in panels]),
                                                bounds=bounds)
    im = None
    with style():
        for k, ax in enumerate(axes.ravel()):
            if k >= len(panels):
                ax.set_visible(False)
                continue
            sc = colour_scale(panels[k].values) if relative else shared
            r, c = divmod(k, cols)
            first = r == rows - 1 and c == 0
            im = image(ax, panels[k], cmap=cmap, vmin=sc.vmin, vmax=sc.vmax, axes_nm=first, bar=not first)
            ax.set_title(names[k])
            if relative:
                colour_bar(fig, im, sc, ax=ax, shrink=0.85,
                           label=f"{label} (relative)" if "relative" not in label else label)
        if not relative and im is not None:
            colour_bar(fig, im, shared, ax=axes.ravel().tolist(), shrink=0.85, label=label)
        note = shared.note(_short(label)) if shared is not None else ""
        if title or note:
            fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=RC["font.size"])
    return fig


def _short(label: str) -> str:
    """The symbol a note uses for a quantity: 'x' for x in LixCoO2, else the label without its unit."""
    return "x" if "LixCoO2" in label or label.startswith("x ") else label.split(" (")[0]


@accepts_data("da", array_kind="image")
def plot_map(da, ax=None, **kwargs):
    """Notebook helper: draw one (y, x) map the way ionscope's PNGs do (nm, y downward, labelled colour bar).

    The colour scale is the map's robust range within the quantity's physical
    bounds (override with ``vmin``/``vmax``), with extend arrows where it clips.
    Drawn in the house style through :func:`style`: the notebook's backend and
    rcParams are left as they were. Equivalent xarray call:
    ``da.plot(yincrease=False)``.

    Parameters
    ----------
    da : DataArray
        One (y, x) map.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new pyplot figure, shown by the notebook's backend).
    **kwargs
        ``label``, ``bounds``, ``vmin``, ``vmax``, and :func:`image`'s ``cmap``, ``axes_nm``, ``bar``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.random.default_rng(0).random((8, 10)), dims=("y", "x"), name="li",
    ...                   attrs={"quantity": "x", "units": "1"})
    >>> ax = plot_map(da)
    >>> ax.figure.axes[-1].get_ylabel()
    'x in LixCoO2'
    """
    label = kwargs.pop("label", None) or quantity_label(da)
    sc = colour_scale(da.values, bounds=kwargs.pop("bounds", None) or bounds_of(da),
                      vmin=kwargs.pop("vmin", None), vmax=kwargs.pop("vmax", None))
    with style():
        if ax is None:
            import matplotlib.pyplot as pyplot  # a notebook figure: shown by the user's own backend

            _, ax = pyplot.subplots(figsize=(4.5, 4.5 * da.sizes["y"] / da.sizes["x"] + 0.8), layout="constrained")
        im = image(ax, da, vmin=sc.vmin, vmax=sc.vmax, **kwargs)
        colour_bar(ax.figure, im, sc, ax=ax, shrink=0.85, label=label)
        if sc.note():
            ax.set_title(sc.note(_short(label)), fontsize=7)
    return ax
