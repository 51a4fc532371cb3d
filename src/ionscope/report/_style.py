# SPDX-License-Identifier: GPL-3.0-or-later
"""One figure style for every map ionscope draws.

Conventions (the same in PNGs, movies, the viewer and :func:`plot_map` in a
notebook):

- maps are drawn in nm (axes from the ``x``/``y`` coordinates, or a scale bar
  when the axes are hidden), pixel centres on the coordinates;
- ``y`` increases **downward**, as in the microscope image and in our PNGs: in
  operando data the electrolyte (row 0) is at the top. xarray's own
  ``da.plot()`` puts ``y`` upward; pass ``yincrease=False`` to agree;
- every colour bar names the quantity and its unit;
- time is shown in minutes, never as a frame index;
- relative quantities (NMF loadings, normalised maps) get their own colour
  scale per panel, never the scale of a physical fraction.
"""
from __future__ import annotations

import numpy as np

from .. import _viewer_kit

#: (factor, prefixed unit) for A, C ...: shared with the offline viewers, which must not import this package.
si_prefix = _viewer_kit.si_prefix

#: Font sizes and line widths for figures that go into a paper at ~8 cm width.
RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "figure.dpi": 110, "savefig.dpi": 150, "axes.linewidth": 0.8,
    "image.interpolation": "nearest", "figure.constrained_layout.use": False,
}


def plt():
    import os
    import sys

    import matplotlib

    # Files are drawn off-screen (Agg). But a session that already drew with pyplot, or a Jupyter kernel
    # (inline backend), keeps its backend: switching it would make every later figure of the user's
    # notebook vanish.
    if "matplotlib.pyplot" not in sys.modules and "inline" not in os.environ.get("MPLBACKEND", ""):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update(RC)
    return pyplot


def minutes(t_s) -> str:
    """'12.5 min' for a time in s (the label every frame gets instead of its index)."""
    return f"{float(t_s) / 60.0:.1f} min"


def quantity_label(da, name: str | None = None, default_unit: str | None = None) -> str:
    """'Li (fraction)' from a DataArray's ``long_name``/``units`` attrs (or a fallback unit)."""
    name = da.attrs.get("long_name") or name or (str(da.name) if da.name is not None else "value")
    unit = da.attrs.get("units") or default_unit
    return f"{name} ({unit})" if unit else str(name)


def extent_nm(da):
    """imshow extent (left, right, bottom, top) in nm with y downward; None if uncalibrated."""
    if not ({"x", "y"} <= set(da.coords) and da.sizes["x"] > 1 and da.sizes["y"] > 1):
        return None
    x = np.asarray(da.x.values, float)
    y = np.asarray(da.y.values, float)
    dx, dy = x[1] - x[0], y[1] - y[0]
    return (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 × 10^n) close to a quarter of ``span``."""
    if not span > 0:
        return 1.0
    target = span / 4.0
    power = 10.0 ** np.floor(np.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * power <= target:
            return m * power
    return power


def scale_bar(ax, extent, *, color: str = "white") -> None:
    """A labelled scale bar in the lower left corner (for maps drawn without axes)."""
    if extent is None:
        return
    left, right, bottom, top = extent
    length = nice_length(abs(right - left))
    height = abs(bottom - top)
    x0 = left + 0.05 * abs(right - left)
    y0 = bottom - 0.07 * height if bottom > top else bottom + 0.07 * height
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2, foreground="black")]
    ax.plot([x0, x0 + length], [y0, y0], color=color, lw=2.5, solid_capstyle="butt", path_effects=outline)
    ax.text(x0 + length / 2, y0 - 0.03 * height * (1 if bottom > top else -1),
            f"{length:g} nm", color=color, ha="center", va="bottom", fontsize=7, path_effects=outline)


def image(ax, da, *, cmap: str = "viridis", vmin=None, vmax=None, axes_nm: bool = True, bar: bool = False):
    """Draw a (y, x) DataArray in nm with y downward; returns the AxesImage."""
    ext = extent_nm(da)
    values = np.asarray(da.transpose("y", "x").values, float)
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, extent=ext, origin="upper", interpolation="nearest")
    if ext is not None and axes_nm:
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
    elif ext is None and axes_nm:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if bar:
        scale_bar(ax, ext)
    return im


def robust_limits(values, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    return float(a), float(b if b > a else a + 1.0)


def map_grid(da, *, title: str | None = None, max_frames: int = 8, relative: bool = False, label: str | None = None,
             cmap: str = "viridis", ncols: int = 4):
    """A grid of maps of a (y, x), (time, y, x) or (component, y, x) DataArray.

    Panels are titled by time in min (or component), drawn in nm (axes on the
    first column and bottom row, scale bars elsewhere) with one labelled colour
    bar, or one per panel when ``relative`` (each panel its own scale).

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
    p = plt()
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
    ny, nx = da.sizes["y"], da.sizes["x"]
    rows = int(np.ceil(len(panels) / ncols))
    cols = int(np.ceil(len(panels) / rows))  # 6 panels: 3 × 2, not 4 + 2
    panel = 2.4 if nx >= ny else 2.4 * nx / ny
    w = panel * cols + (1.0 if not relative else 1.0 * cols) + 0.6
    h = rows * (panel * ny / nx + 0.45) + (0.5 if title else 0.1) + 0.5
    fig, axes = p.subplots(rows, cols, figsize=(w, h), squeeze=False, layout="constrained")
    lims = None if relative else robust_limits(np.concatenate([np.ravel(pn.values) for pn in panels]))
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        vmin, vmax = robust_limits(panels[k].values) if relative else lims
        r, c = divmod(k, cols)
        first = r == rows - 1 and c == 0
        im = image(ax, panels[k], cmap=cmap, vmin=vmin, vmax=vmax, axes_nm=first, bar=not first)
        ax.set_title(names[k])
        if relative:
            fig.colorbar(im, ax=ax, shrink=0.85, label=f"{label} (relative)" if "relative" not in label else label)
    if not relative and im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85, label=label)
    if title:
        fig.suptitle(title)
    return fig


def plot_map(da, ax=None, **kwargs):
    """Notebook helper: draw one (y, x) map the way ionscope's PNGs do (nm, y downward, labelled colour bar).

    Equivalent xarray call: ``da.plot(yincrease=False)``.
    """
    p = plt()
    if ax is None:
        _, ax = p.subplots(figsize=(4.5, 4.5 * da.sizes["y"] / da.sizes["x"] + 0.5))
    label = kwargs.pop("label", None) or quantity_label(da)
    im = image(ax, da, **kwargs)
    ax.figure.colorbar(im, ax=ax, shrink=0.85, label=label)
    return ax
