# SPDX-License-Identifier: GPL-3.0-or-later
"""One figure style for every map ionscope draws.

Conventions (the same in PNGs, movies, the viewers and :func:`~ionscope.report.plot_map` in a
notebook):

- maps are drawn in nm (axes from the ``x``/``y`` coordinates, or a scale bar
  when the axes are hidden), pixel centres on the coordinates;
- ``y`` increases **downward**, as in the microscope image and in our PNGs: in
  operando data the electrolyte (row 0) is at the top. xarray's own
  ``da.plot()`` puts ``y`` upward; pass ``yincrease=False`` to agree;
- every colour bar carries one label: the quantity and its unit;
- a colour scale spans the data's robust range (1st–99th percentile, see
  :func:`colour_scale`); values beyond it are drawn in the end colours and the
  colour bar gets extend arrows at that end;
- a physically bounded quantity (x in LixCoO2 ∈ [0, 1]) never gets a colour
  scale beyond its bounds, and the share of pixels outside them is written in
  the figure (:meth:`ColourScale.note`);
- time is shown in minutes, never as a frame index;
- one SI-prefix rule for every unit (:func:`si_prefix`): the prefix makes the
  largest magnitude of the whole record read between 1 and 1000; a charge takes
  the prefix of the current it was integrated from (:func:`charge_prefix`);
- relative quantities (NMF loadings, normalised maps) get their own colour
  scale per panel, never the scale of a physical fraction.

Plotting never touches matplotlib's global state: figures are
:class:`matplotlib.figure.Figure` objects made without pyplot (no backend is
chosen or switched, nothing to close), drawn inside
``matplotlib.rc_context(RC)`` (:func:`style`), so a notebook keeps its inline
backend and its own rcParams.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _viewer_kit

#: (factor, prefixed unit) for A, C ...: shared with the offline viewers, which must not import this package.
si_prefix = _viewer_kit.si_prefix
charge_prefix = _viewer_kit.charge_prefix

#: Font sizes and line widths for figures that go into a paper at ~8 cm width.
RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "figure.dpi": 110, "savefig.dpi": 150, "axes.linewidth": 0.8,
    "image.interpolation": "nearest", "figure.constrained_layout.use": False,
}

#: Physical bounds of mapped quantities, by their ``quantity`` attribute (or variable name).
BOUNDS = {"x": (0.0, 1.0)}


def style():
    """The house style as a context manager (``matplotlib.rc_context(RC)``): global rcParams come back as they were.

    Returns
    -------
    contextlib.AbstractContextManager
        ``matplotlib.rc_context(RC)``; rcParams are restored on exit.

    Examples
    --------
    >>> import matplotlib
    >>> before = dict(matplotlib.rcParams)
    >>> with style():
    ...     matplotlib.rcParams["font.size"]
    9.0
    >>> dict(matplotlib.rcParams) == before
    True
    """
    import matplotlib

    return matplotlib.rc_context(RC)


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """``(fig, axes)`` like ``pyplot.subplots`` but on a :class:`~matplotlib.figure.Figure` made without pyplot.

    No backend is selected or switched and pyplot keeps no reference (the
    figure is freed with its last reference; saving works with any backend).
    ``figsize``, ``dpi`` and ``layout`` go to the figure, the rest to
    :meth:`~matplotlib.figure.Figure.subplots`.

    Parameters
    ----------
    nrows, ncols : int
        The grid of axes.
    **kwargs
        ``figsize``, ``dpi``, ``layout`` (or ``constrained_layout=True``) for the figure; ``sharex``,
        ``squeeze``, ... for :meth:`~matplotlib.figure.Figure.subplots`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes or ndarray of them

    Examples
    --------
    >>> fig, axes = subplots(1, 2, figsize=(4, 2))
    >>> len(axes), fig.get_size_inches().tolist()
    (2, [4.0, 2.0])
    """
    from matplotlib.figure import Figure

    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "dpi", "layout") if k in kwargs}
    if kwargs.pop("constrained_layout", False):
        fig_kw["layout"] = "constrained"
    with style():
        fig = Figure(**fig_kw)
        axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def plt():
    """:mod:`matplotlib.pyplot`, untouched (kept for callers of the old helper; it no longer sets a backend
    or rcParams). New code draws on :func:`subplots` figures inside :func:`style`."""
    import matplotlib.pyplot as pyplot

    return pyplot


def bounds_of(da=None, *, quantity: str | None = None):
    """Physical bounds ``(lo, hi)`` of a mapped quantity (``attrs["quantity"]``, else its name), or None.

    Parameters
    ----------
    da : DataArray, optional
        A map whose ``quantity`` attribute (else its name) names the quantity.
    quantity : str, optional
        The quantity by name instead (``"x"``: x in LixCoO2).

    Returns
    -------
    tuple of float or None
        ``(lo, hi)``, or None for an unbounded quantity.

    Examples
    --------
    >>> bounds_of(quantity="x"), bounds_of(quantity="li")
    ((0.0, 1.0), None)
    """
    if quantity is None and da is not None:
        quantity = da.attrs.get("quantity") or (str(da.name) if getattr(da, "name", None) is not None else None)
    return BOUNDS.get(str(quantity)) if quantity is not None else None


@dataclass(frozen=True)
class ColourScale:
    """Colour limits of a map and what lies beyond them (see :func:`colour_scale`)."""

    vmin: float
    vmax: float
    #: share of finite values below ``vmin`` / above ``vmax`` (drawn in the end colours)
    below: float = 0.0
    above: float = 0.0
    #: physical bounds, and the share of finite values outside them (impossible values)
    bounds: tuple | None = None
    below_bound: float = 0.0
    above_bound: float = 0.0

    @property
    def extend(self) -> str:
        """Matplotlib's colour-bar ``extend``: an arrow at each end that clips data."""
        return {(False, False): "neither", (True, False): "min", (False, True): "max",
                (True, True): "both"}[(self.below > 0, self.above > 0)]

    def note(self, name: str = "x") -> str:
        """'pixels with x > 1: 2.1 % (drawn in the end colours)' for values outside the physical bounds, else ''."""
        text = self.outside(name)
        return f"pixels with {text} (drawn in the end colours)" if text else ""

    def outside(self, name: str = "x") -> str:
        """'x < 0: 2.8 %, x > 1: 28 %': the shares outside the physical bounds ('' when none)."""
        if self.bounds is None:
            return ""
        parts = []
        if self.below_bound > 0:
            parts.append(f"{name} < {self.bounds[0]:g}: {_percent(self.below_bound)}")
        if self.above_bound > 0:
            parts.append(f"{name} > {self.bounds[1]:g}: {_percent(self.above_bound)}")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        """JSON-able numbers (for viewers and summaries)."""
        return {"lo": self.vmin, "hi": self.vmax, "below": self.below, "above": self.above,
                "bounds": list(self.bounds) if self.bounds else None, "below_bound": self.below_bound,
                "above_bound": self.above_bound}


def _percent(f: float) -> str:
    p = 100.0 * f
    return f"{p:.2g} %" if p < 10 else f"{p:.0f} %"


def colour_scale(values, *, bounds=None, percentiles=(1.0, 99.0), symmetric: bool = False, vmin=None,
                 vmax=None) -> ColourScale:
    """Colour limits from the data's robust range, clipped to physical bounds, with what falls outside.

    Parameters
    ----------
    values : array_like
        The values the colour scale serves (all panels that share it).
    bounds : (lo, hi), optional
        Physical bounds (e.g. ``(0, 1)`` for x in LixCoO2): the limits never
        go beyond them, and the share of values outside is counted.
    percentiles : (lo, hi)
        The robust range (default 1st–99th percentile).
    symmetric : bool
        Limits ±(upper percentile of |values|), for a diverging map about 0.
    vmin, vmax : float, optional
        Fixed limits instead of the percentiles.

    Returns
    -------
    ColourScale
        ``vmin``, ``vmax``, the shares ``below``/``above`` them (→ ``extend``)
        and ``below_bound``/``above_bound`` outside ``bounds``.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.r_[np.linspace(0.2, 0.9, 95), [1.2, 1.3, 1.4, 1.1, 1.05]]
    >>> s = colour_scale(v, bounds=(0, 1))
    >>> s.vmax, s.extend, round(s.above_bound, 2)
    (1.0, 'both', 0.05)
    """
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        lo, hi = (bounds if bounds else (0.0, 1.0))
        return ColourScale(float(lo), float(hi), bounds=tuple(bounds) if bounds else None)
    if symmetric:
        m = float(np.percentile(np.abs(v), percentiles[1]))
        lo, hi = -m, m
    else:
        lo, hi = (float(x) for x in np.percentile(v, percentiles))
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    if bounds is not None:
        b0, b1 = float(bounds[0]), float(bounds[1])
        lo, hi = max(lo, b0), min(hi, b1)
        if not hi > lo:  # the bulk lies outside the bounds: show the whole physical range
            lo, hi = b0, b1
    if not hi > lo:
        lo, hi = (lo - 0.5, lo + 0.5) if lo == hi else (hi, lo)
    # a few ulps of slack: a value equal to a limit is not "beyond" it
    tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    below, above = float(np.mean(v < lo - tol)), float(np.mean(v > hi + tol))
    bb = ab = 0.0
    if bounds is not None:
        bb, ab = float(np.mean(v < bounds[0])), float(np.mean(v > bounds[1]))
    return ColourScale(float(lo), float(hi), below, above, tuple(float(b) for b in bounds) if bounds else None,
                       bb, ab)


def colour_bar(fig, mappable, scale: ColourScale | None = None, *, label: str, **kwargs):
    """One colour bar with one label (quantity and unit) and extend arrows where ``scale`` clips data.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure the bar goes into.
    mappable : matplotlib.cm.ScalarMappable
        What the bar describes (an ``AxesImage``, ...).
    scale : ColourScale, optional
        The colour scale; its ``extend`` is used unless ``extend`` is passed.
    label : str
        The quantity and its unit.
    **kwargs
        Passed to :meth:`~matplotlib.figure.Figure.colorbar` (``ax``, ``shrink``, ...).

    Returns
    -------
    matplotlib.colorbar.Colorbar

    Examples
    --------
    >>> import numpy as np
    >>> fig, ax = subplots()
    >>> sc = colour_scale(np.r_[np.linspace(0, 1, 99), 5.0], vmin=0.0)
    >>> cb = colour_bar(fig, ax.imshow([[0.0, 1.0]], vmin=sc.vmin, vmax=sc.vmax), sc, ax=ax, label="x")
    >>> cb.ax.get_ylabel(), cb.extend
    ('x', 'max')
    """
    if scale is not None:
        kwargs.setdefault("extend", scale.extend)
    with style():
        cb = fig.colorbar(mappable, **kwargs)
        cb.set_label(label)
    return cb


def with_sigma(value, sigma, *, unit: str = "", signed: bool = False) -> str:
    """'0.809 ± 0.031' : σ to two significant digits and the value to the same decimal place.

    Parameters
    ----------
    value : float
        The estimate.
    sigma : float or None
        Its standard error (NaN or None: written ``?``).
    unit : str
        Appended after a space (a dimensionless ``"1"`` is not written).
    signed : bool
        Write ``+`` before a positive value.

    Returns
    -------
    str

    Examples
    --------
    >>> with_sigma(0.80928, 0.03144), with_sigma(1523.4, 87.0, unit="s"), with_sigma(0.5, float("nan"))
    ('0.809 ± 0.031', '1523 ± 87 s', '0.5 ± ?')
    """
    import math

    v, s = float(value), float(sigma) if sigma is not None else float("nan")
    tail = f" {unit}" if unit and unit != "1" else ""
    if not math.isfinite(v):
        return f"{v}{tail}"
    sign = "+" if signed and v > 0 else ""
    if not (math.isfinite(s) and s >= 0):
        return f"{sign}{v:.4g} ± ?{tail}"
    if s == 0:
        return f"{sign}{v:.4g} ± 0{tail}"
    exp = math.floor(math.log10(s)) - 1          # the decimal place of σ's second significant digit
    if exp >= 0:
        return f"{sign}{round(v, -exp):.0f} ± {round(s, -exp):.0f}{tail}"
    d = min(-exp, 12)
    if abs(v) >= 1e6 or (abs(v) < 1e-4 and v != 0):
        return f"{sign}{v:.{max(1, d + int(math.floor(math.log10(abs(v)))))}e} ± {s:.1e}{tail}"
    return f"{sign}{v:.{d}f} ± {s:.{d}f}{tail}"


def minutes(t_s) -> str:
    """'12.5 min' for a time in s (the label every frame gets instead of its index)."""
    return f"{float(t_s) / 60.0:.1f} min"


def quantity_label(da, name: str | None = None, default_unit: str | None = None) -> str:
    """'Li weight (× reference)' from a DataArray's ``long_name``/``units`` attrs (or a fallback unit).

    A dimensionless unit ("1", "") is not written; x in LixCoO2 is named as such.

    Parameters
    ----------
    da : DataArray
        The mapped quantity (its ``long_name``, ``units``, ``quantity`` attributes, else its name).
    name : str, optional
        The name when ``da`` has no ``long_name``.
    default_unit : str, optional
        The unit when ``da`` has no ``units``.

    Returns
    -------
    str

    Examples
    --------
    >>> import xarray as xr
    >>> quantity_label(xr.DataArray([0.5], name="li", attrs={"quantity": "x", "units": "1"}))
    'x in LixCoO2'
    """
    if da.attrs.get("quantity") == "x" and not da.attrs.get("long_name"):
        name = "x in LixCoO2"
    else:
        name = da.attrs.get("long_name") or name or (str(da.name) if da.name is not None else "value")
    unit = da.attrs.get("units") or default_unit
    return f"{name} ({unit})" if unit and str(unit) not in ("1", "") else str(name)


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
    """Draw a (y, x) DataArray in nm with y downward; returns the AxesImage.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    da : DataArray
        A (y, x) map; with ``x``/``y`` coordinates (nm) the axes are in nm, else in pixels.
    cmap : str
        Colour map.
    vmin, vmax : float, optional
        Colour limits (see :func:`colour_scale`).
    axes_nm : bool
        Label the axes; False hides them.
    bar : bool
        A scale bar (for a map drawn without axes).

    Returns
    -------
    matplotlib.image.AxesImage

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import calibrated
    >>> da = calibrated(np.zeros((4, 6)), ("y", "x"), scale={"y": 2.0, "x": 2.0})
    >>> fig, ax = subplots()
    >>> im = image(ax, da)
    >>> [float(e) for e in im.get_extent()], ax.get_xlabel()
    ([-1.0, 11.0, 7.0, -1.0], 'x (nm)')
    """
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
