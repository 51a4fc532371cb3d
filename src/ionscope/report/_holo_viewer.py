# SPDX-License-Identifier: GPL-3.0-or-later
"""A holography series under bias as one offline HTML page: the potential movie beside its curves.

The page (``viewer.html`` of the ``holo_report`` stage) shows the map of the
potential change from the zero-bias state (ΔV, V) frame by frame, with nm
axes, a scale bar, the interfaces marked and a colour bar in V that stays the
same for every frame (symmetric about 0, ± the 99.5th percentile of |ΔV| over
the frames shown, within the profile region when the series has one, so a few
unwrapping outliers or the thin edge of a wedge do not wash it out; arrows at the
colour bar's ends where the maps go beyond it). Beside it,
on one time axis (s, or min for series of 20 min and more): the bias and the
current from the bias log, ΔV(t) and the 10–90 % width(t) per interface with
± 1σ error bars (a width where the fit found no step — |ΔV| < 3σ, a width
known worse than its size or narrower than a pixel — is not drawn and reads
"—"); a cursor follows the frame, and the frame's numbers (ΔV ± σ,
width ± σ, position per interface, asymmetry ± σ) are written out under the
map. Controls: frame slider, play/pause, and a hover readout of ΔV and the
position under the mouse pointer. One static file, no network, no external
script; it is built from the same pieces as the EELS viewer
(:mod:`ionscope._viewer_kit`). It is written by the ``holo_report`` stage of
:func:`ionscope.operando.run_holography` (through :func:`ionscope.report.holography_writers`).

Size limits, so that a long 2048² night gives a page a browser opens:

* at most ``max_frames`` maps (default 100), picked evenly over the series as
  the GIF movie does; the curves always show every frame;
* maps whose longer side exceeds ``max_side`` pixels (default 256) are
  block-averaged by the smallest integer factor that fits (a 2048² map becomes
  256², a block with more than half its pixels undefined stays undefined;
  < factor pixels at the far edges are dropped);
* 16 bits per map pixel (ΔV beyond ± 10× the colour limit is clipped), so the
  maps take at most ``max_frames × max_side² × 2 × 4/3`` bytes of base64:
  17.5 MB at the defaults, usually much less (a Fourier reconstruction is
  coarser than the hologram);
* the bias and current log is drawn from at most 2000 points (the first,
  minimum, maximum and last point of each of 500 bins, so steps and current
  spikes survive).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .. import _viewer_kit as _kit
from ..errors import DataValidationError

#: Most maps embedded in the page (evenly subsampled beyond that).
MAX_FRAMES = 100
#: Longest map side embedded, in pixels (block-averaged beyond that).
MAX_SIDE = 256
#: Bins of the bias/current log curve (first, min, max and last point of each are drawn).
LOG_BINS = 500
_NEEDED = ("potential", "bias_v", "step_v", "step_v_std", "width_nm", "width_nm_std")


def _block_mean(m: np.ndarray, f: int) -> np.ndarray:
    """Mean over f×f blocks of the finite pixels; NaN where more than half of a block is undefined."""
    if f == 1:
        return m
    ny, nx = m.shape[0] // f * f, m.shape[1] // f * f
    b = m[:ny, :nx].reshape(ny // f, f, nx // f, f)
    ok = np.isfinite(b)
    n = ok.sum(axis=(1, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.where(ok, b, 0.0).sum(axis=(1, 3)) / n
    return np.where(2 * n > f * f, mean, np.nan)


def _envelope(t, v, bins: int = LOG_BINS):
    """(t, v) thinned to ≤ 4 points per each of ``bins`` bins (first, min, max, last, in time order):
    spikes keep their height and steps their place. All points when there are few."""
    t, v = np.asarray(t, float), np.asarray(v, float)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if t.size <= 4 * bins:
        return t, v
    edges = np.linspace(0, t.size, bins + 1).astype(int)
    pick = []
    for a, b in zip(edges[:-1], edges[1:]):
        seg = v[a:b]
        pick.extend(sorted({a, a + int(np.argmin(seg)), a + int(np.argmax(seg)), b - 1}))
    pick = np.asarray(pick)
    return t[pick], v[pick]


def _values(a, digits: int = 6):
    """Nested lists with NaN/inf as None (JSON null), rounded to ``digits`` significant digits."""
    a = np.asarray(a, float)
    if a.ndim > 1:
        return [_values(r, digits) for r in a]
    return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in a]


def _range(values, sigma=None, *, zero: bool = False):
    """A y range on the bulk of the data: 1–99th percentiles, padded by 3 median σ (fits at zero bias
    that found no step carry enormous σ and must not set the scale) and 6 % of the span."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return [-1.0, 1.0]
    lo, hi = (float(x) for x in np.percentile(v, [1, 99]))
    if sigma is not None:
        s = np.asarray(sigma, float)
        s = s[np.isfinite(s)]
        pad = 3 * float(np.median(s)) if s.size else 0.0
        lo, hi = lo - pad, hi + pad
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    extra = 0.06 * (hi - lo)
    return [lo - extra, hi + extra]


def write_holo_viewer(path, ds, *, log=None, max_frames: int = MAX_FRAMES, max_side: int = MAX_SIDE,
                      title: str = "ionscope holography under bias", cmap: str = "RdBu_r") -> Path:
    """Write the offline viewer of a :func:`ionscope.holography.bias_series` result (atomically).

    Parameters
    ----------
    path : str or Path
        Output ``.html``.
    ds : xarray.Dataset
        The series: ``potential`` (time, y, x) in V relative to zero bias,
        ``bias_v`` (time), ``step_v``, ``step_v_std``, ``width_nm``,
        ``width_nm_std`` (time, interface); ``position_nm``, ``asymmetry``,
        ``asymmetry_std``, ``positive_interface`` and ``interface_nm`` are
        shown when present. ``potential`` may be lazy (dask, Zarr): the frames
        shown are read one at a time.
    log : xarray.Dataset, optional
        Bias log with ``time`` (s, the series' clock), ``voltage`` (V) and
        ``current`` (A) — :func:`ionscope.io.read_log`. Without it the bias
        curve is drawn from ``bias_v`` and there is no current panel.
    max_frames, max_side : int
        Size limits (module docstring): most maps, longest map side in pixels.
    title : str
    cmap : str
        Matplotlib colour map of the ΔV map (diverging: 0 in its middle).

    Returns
    -------
    Path

    Raises
    ------
    DataValidationError
        A needed variable is missing, the potential is not (time, y, x), its
        pixels are not square, or a limit is not a positive integer.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> t, y, x = np.arange(3) * 10.0, np.arange(8.0), np.arange(12.0)
    >>> ds = xr.Dataset({"potential": (("time", "y", "x"), np.random.default_rng(0).normal(size=(3, 8, 12))),
    ...                  "bias_v": ("time", [0.0, 1.0, 1.0]),
    ...                  **{k: (("time", "interface"), np.ones((3, 2))) for k in
    ...                     ("step_v", "step_v_std", "width_nm", "width_nm_std")}},
    ...                 coords={"time": t, "y": y, "x": x, "interface_nm": ("interface", [3.0, 9.0])})
    >>> p = write_holo_viewer(pathlib.Path(tempfile.mkdtemp()) / "viewer.html", ds)
    >>> "<canvas" in p.read_text() and "ΔV" in p.read_text()
    True
    """
    missing = [k for k in _NEEDED if k not in ds]
    if missing:
        raise DataValidationError(f"holography viewer: ds lacks {missing}; expected a bias_series Dataset with "
                                  f"{list(_NEEDED)}")
    pot = ds["potential"]
    if pot.dims != ("time", "y", "x"):
        raise DataValidationError(f"holography viewer: potential must have dims (time, y, x), got {pot.dims}")
    for name, v in (("max_frames", max_frames), ("max_side", max_side)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise DataValidationError(f"holography viewer: {name} = {v!r}; expected a positive integer")
    n, ny, nx = pot.shape
    x = np.asarray(ds["x"].values, float) if "x" in ds.coords else np.arange(nx, dtype=float)
    y = np.asarray(ds["y"].values, float) if "y" in ds.coords else np.arange(ny, dtype=float)
    dx = float(x[1] - x[0]) if nx > 1 else 1.0
    dy = float(y[1] - y[0]) if ny > 1 else dx
    if not math.isclose(dx, dy, rel_tol=0.01):
        raise DataValidationError(f"holography viewer: pixels of {dx:g} × {dy:g} nm; the viewer draws square "
                                  "pixels (resample the series first)")
    times = np.asarray(ds["time"].values, float)
    idx = np.unique(np.linspace(0, n - 1, min(n, int(max_frames))).round().astype(int))
    f = max(1, math.ceil(max(ny, nx) / int(max_side)))
    # frames one at a time: a lazy 2048² series is never loaded whole
    maps = np.stack([_block_mean(np.asarray(pot.isel(time=int(k)).values, float), f) for k in idx])
    finite = np.abs(maps[np.isfinite(maps)])
    if not finite.size:
        raise DataValidationError("holography viewer: the potential maps shown hold no finite value")
    # the colour scale from the profile region when there is one: ΔV = Δφ/(C_E·t) is noisy
    # where the wedge thins to nothing, and those pixels would set it
    scale_from = finite
    if "region" in ds and ds["region"].dims == ("y", "x"):
        reg = _block_mean(np.asarray(ds["region"].values, float), f) > 0.5
        inside = np.abs(maps[:, reg][np.isfinite(maps[:, reg])])
        scale_from = inside if inside.size else finite
    lim = float(np.percentile(scale_from, 99.5))
    lim = lim if lim > 0 else 1.0
    qlim = min(float(finite.max()), 10 * lim) if finite.max() > lim else lim
    q = _kit.quantise(maps, lo=-qlim, hi=qlim, what="potential-map")
    shown = maps[np.isfinite(maps)]
    below, above = float(np.mean(shown < -lim)), float(np.mean(shown > lim))  # drawn in the end colours

    n_if = int(ds.sizes.get("interface", np.shape(ds["step_v"])[1]))
    if "interface_nm" in ds:
        where = [float(v) for v in np.asarray(ds["interface_nm"].values, float)]
    else:
        where = [None] * n_if
    bias = np.asarray(ds["bias_v"].values, float)

    def var(name, shape):
        # a copy: the widths of frames without a step are blanked below, and ds is the run's result (an
        # in-place edit changed res.series and every later writer of a fresh run, but not of a cached one)
        return np.array(ds[name].values, float) if name in ds else np.full(shape, np.nan)

    step, step_s = var("step_v", (n, n_if)), var("step_v_std", (n, n_if))
    width, width_s = var("width_nm", (n, n_if)), var("width_nm_std", (n, n_if))
    pos, pos_s = var("position_nm", (n, n_if)), var("position_nm_std", (n, n_if))
    # where a fit found no step (|ΔV| < 3σ, or a width known worse than its size) width and position mean
    # nothing: not drawn, "—" in the table (as the report's figure draws them hollow)
    from ._holography import _found

    none = ~_found(step, step_s, width, width_s, abs(dx))
    for a in (width, width_s, pos, pos_s):
        a[none] = np.nan
    asym, asym_s = var("asymmetry", (n,)), var("asymmetry_std", (n,))
    posif = np.asarray(ds["positive_interface"].values, float) if "positive_interface" in ds else np.full(n, np.nan)

    bias_curve = cur_curve = cur_frame = None
    if log is not None and "voltage" in log:
        bt, bv = _envelope(log["time"].values, log["voltage"].values)
        bias_curve = {"t": _values(bt), "v": _values(bv)}
    if log is not None and "current" in log:
        lt, lc = np.asarray(log["time"].values, float), np.asarray(log["current"].values, float)
        ct, cv = _envelope(lt, lc)
        factor, unit = _kit.si_prefix(cv, "A")
        cur_curve = {"t": _values(ct), "v": _values(cv * factor), "unit": unit,
                     "range": _range(cv * factor, zero=True)}
        ok = np.isfinite(lt) & np.isfinite(lc)
        if ok.sum() >= 1:
            cur_frame = _values(np.interp(times, lt[ok], lc[ok], left=np.nan, right=np.nan) * factor)
    bias_all = np.concatenate([bias, np.asarray(bias_curve["v"], float)]) if bias_curve else bias
    span = float(times[-1] - times[0]) if n > 1 else 0.0
    minutes = span >= 1200.0

    payload = {
        "nt": int(idx.size), "ny": int(maps.shape[1]), "nx": int(maps.shape[2]), "pixel_nm": dx * f,
        "x0": float(x[0] - dx / 2), "y0": float(y[0] - dy / 2), "block": f, "frames": [int(k) for k in idx],
        "lo": -lim, "hi": lim, "qlo": q["lo"], "qhi": q["hi"], "clipped": bool(qlim < finite.max()),
        "b64": q["b64"], "lut": _kit.colour_lut(cmap), "label": "ΔV from zero bias (V)",
        "below": below, "above": above, "bounds": None,
        "t": _values(times), "bias": _values(bias), "bias_curve": bias_curve,
        "current": cur_curve, "current_frame": cur_frame,
        "step": _values(step.T), "step_std": _values(step_s.T), "width": _values(width.T),
        "width_std": _values(width_s.T), "pos": _values(pos.T), "pos_std": _values(pos_s.T),
        "asym": _values(asym), "asym_std": _values(asym_s), "posif": _values(posif),
        "interfaces_nm": where, "has_nan": bool(np.isnan(maps).any()),
        "ranges": {"bias": _range(bias_all, zero=True), "step": _range(step, step_s, zero=True),
                   "width": [0.0, 1.3 * float(np.nanpercentile(width, 98)) if np.isfinite(width).any() else 1.0]},
        "tunit": "min" if minutes else "s", "tdiv": 60.0 if minutes else 1.0,
    }
    return _kit.write_page(path, _TEMPLATE, title=title, payload=payload)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
""" + _kit.VIEWER_CSS + """#wrap{flex-wrap:nowrap}
#frame{width:26em}
#numbers{border-collapse:collapse;font-size:13px;margin-top:0.6em}
#numbers td,#numbers th{padding:0.15em 0.6em;text-align:right;font-variant-numeric:tabular-nums}
#numbers td:first-child,#numbers th:first-child{text-align:left}
#numbers th{font-weight:600;border-bottom:1px solid #999}
#asym{font-size:13px;margin-top:0.4em}
#colorbar{padding-bottom:0.9em}
.swatch{display:inline-block;width:0.8em;height:0.8em;border-radius:50%;margin-right:0.4em;vertical-align:-0.05em}
</style></head>
<body>
<h2>__TITLE__</h2>
<div id="controls">
  <button id="play" type="button">&#9654; play</button>
  <input id="frame" type="range" min="0" max="0" value="0" step="1" aria-label="frame">
  <span id="label"></span>
</div>
<div id="wrap">
  <div><div id="mapbox"><canvas id="map"></canvas><svg id="axes" role="img" aria-label="map axes"></svg></div>
    <div id="colorbar"><span id="cb-lo"></span><canvas id="cb" width="256" height="12"></canvas><span id="cb-hi"></span><span id="cb-label"></span>
      <span id="cb-nodata"><span class="swatch" style="background:#c8c8c8;border-radius:0"></span>no data</span></div>
    <div id="readout">hover over the map</div>
    <table id="numbers"></table>
    <div id="asym"></div></div>
  <svg id="curve" width="620" height="300" role="img" aria-label="bias, current, potential drop and width curves"></svg>
</div>
<script>
"use strict";
const D = __DATA__;
""" + _kit.JS_HELPERS + """const Q = decode(D.b64), npx = D.ny * D.nx, NI = D.step.length;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];
let frame = 0, timer = null;
const slider = document.getElementById("frame");
slider.max = D.nt - 1;
const canvas = document.getElementById("map");
// about 440 px on the longer side whatever the map size (nearest-neighbour scaling)
const zoom = 440 / Math.max(D.nx, D.ny);
canvas.width = Math.round(D.nx * zoom); canvas.height = Math.round(D.ny * zoom);
const ctx = canvas.getContext("2d");
ctx.imageSmoothingEnabled = false;
const off = document.createElement("canvas");
off.width = D.nx; off.height = D.ny;
const octx = off.getContext("2d");
const img = octx.createImageData(D.nx, D.ny);
""" + _kit.JS_MAP_AXES + """// the interfaces: dashed lines over the map; the scale bar in black (white is ΔV = 0 here)
(function () {
  const ax = document.getElementById("axes"), wx = D.nx * D.pixel_nm;
  const bar = ax.querySelector("rect");
  bar.setAttribute("fill", "black"); bar.setAttribute("stroke", "white");
  document.getElementById("scalebar").setAttribute("style",
    "fill:black;stroke:white;stroke-width:3px;paint-order:stroke;font-weight:600");
  D.interfaces_nm.forEach((xi, i) => {
    if (xi === null) return;
    const X = (xi - D.x0) / wx * canvas.width;
    el("line", {x1: X, x2: X, y1: 0, y2: canvas.height, stroke: COLORS[i % 4], "stroke-width": 1.2,
                "stroke-dasharray": "5,4", "stroke-opacity": 0.8, class: "interface-line"}, ax);
  });
})();
""" + _kit.JS_COLOUR_BAR + """// a 0 tick in the middle of the symmetric colour bar
(function () {
  colourBarExtend(D.below, D.above, 0, 0);  // arrows where the maps go beyond the scale (before the 0 is placed)
  const cb = document.getElementById("cb"), z = document.createElement("span");
  cb.parentNode.style.position = "relative";  // first, so that offsetLeft/Top are relative to the bar's row
  z.id = "cb-zero"; z.textContent = "0";
  z.setAttribute("style", "position:absolute;left:" + (cb.offsetLeft + cb.width / 2 - 3) + "px;top:" +
                 (cb.offsetTop + cb.height + 1) + "px;font-size:11px");
  cb.parentNode.appendChild(z);
  document.getElementById("cb-lo").textContent = minus(D.lo.toPrecision(3));
  document.getElementById("cb-hi").textContent = "+" + D.hi.toPrecision(3);
})();
function value(k, i) {
  const q = Q[k * npx + i];
  return q === 0 ? NaN : D.qlo + (q - 1) / 65534 * (D.qhi - D.qlo);
}
function minus(text) { return text.replace(/^-/, "−"); }  // a typographic minus, as in the figures
function tfmt(s) { return D.tunit === "min" ? (s / 60).toFixed(1) + " min" : s.toFixed(0) + " s"; }
function pm(v, s, signed) {  // '+0.53 ± 0.17': decimals from σ (2 significant digits), 1 to 4
  if (v === null) return "—";
  const d = (s === null || !(s > 0)) ? 3 : Math.min(4, Math.max(1, 1 - Math.floor(Math.log10(s))));
  const sv = s === null ? "?" : (s < 1000 ? s.toFixed(d) : s.toExponential(1));
  return (v < 0 ? "−" : (signed ? "+" : "")) + Math.abs(v).toFixed(d) + " ± " + sv;
}
// ---- curves: bias, current, ΔV and width on one time axis
const svg = document.getElementById("curve");
const W = 620, M = {l: 66, r: 12, t: 8, b: 64}, PH = 104, GAP = 12;
const tlo = D.t[0], thi = D.t[D.t.length - 1] > D.t[0] ? D.t[D.t.length - 1] : D.t[0] + 1;
const xs = v => M.l + (v - tlo) / (thi - tlo) * (W - M.l - M.r);
const defs = el("defs", {}, svg);
const panels = [];
function panel(label, range) {
  const k = panels.length, top = M.t + k * (PH + GAP), ylo = range[0], yhi = range[1];
  const ys = v => top + PH - (v - ylo) / (yhi - ylo) * PH;
  el("rect", {x: M.l, y: top, width: W - M.l - M.r, height: PH, fill: "none", stroke: "#999"}, svg);
  const ystep0 = niceStep(yhi - ylo, 4);  // at least 3 labelled ticks (4 asked can give 2)
  const ystep = Math.floor(yhi / ystep0) - Math.ceil(ylo / ystep0) < 2 ? niceStep(yhi - ylo, 8) : ystep0;
  for (let v = Math.ceil(ylo / ystep) * ystep; v <= yhi; v += ystep) {
    el("line", {x1: M.l - 4, x2: M.l, y1: ys(v), y2: ys(v), stroke: "#444"}, svg);
    el("text", {x: M.l - 6, y: ys(v) + 4, "text-anchor": "end"}, svg).textContent = fmt(v, ystep);
  }
  el("text", {x: 13, y: top + PH / 2, "text-anchor": "middle", transform: "rotate(-90 13 " + (top + PH / 2) + ")"}, svg)
    .textContent = label;
  const cp = el("clipPath", {id: "clip-" + k}, defs);
  el("rect", {x: M.l, y: top, width: W - M.l - M.r, height: PH}, cp);
  const g = el("g", {"clip-path": "url(#clip-" + k + ")"}, svg);
  if (ylo < 0 && yhi > 0) el("line", {x1: M.l, x2: W - M.r, y1: ys(0), y2: ys(0), stroke: "#bbb"}, g);
  const cur = el("line", {id: k === 0 ? "cursor" : "cursor-" + k, x1: 0, x2: 0, y1: top, y2: top + PH,
                          stroke: "#444", "stroke-dasharray": "3,3"}, svg);
  const P = {top: top, ys: ys, g: g, cur: cur, marks: []};
  panels.push(P); return P;
}
function line(P, t, v, attrs) {
  const pts = [];
  t.forEach((tt, i) => { if (v[i] !== null) pts.push(xs(tt).toFixed(1) + "," + P.ys(v[i]).toFixed(1)); });
  return el("polyline", Object.assign({points: pts.join(" "), fill: "none", "stroke-width": 1.3}, attrs), P.g);
}
function errorbars(P, v, s, color, id) {  // ± 1σ bars (clipped to the panel), the values as a line with dots
  let d = "";
  D.t.forEach((tt, i) => {
    if (v[i] === null || s[i] === null) return;
    const x = xs(tt).toFixed(1), a = Math.max(P.top - 5, Math.min(P.top + PH + 5, P.ys(v[i] - s[i])));
    const b = Math.max(P.top - 5, Math.min(P.top + PH + 5, P.ys(v[i] + s[i])));
    d += "M" + x + " " + a.toFixed(1) + "V" + b.toFixed(1);
  });
  if (d) el("path", {d: d, stroke: color, "stroke-width": 0.9, "stroke-opacity": 0.55, fill: "none"}, P.g);
  line(P, D.t, v, {stroke: color, id: id});
  if (D.t.length <= 400) D.t.forEach((tt, i) => {
    if (v[i] !== null) el("circle", {cx: xs(tt).toFixed(1), cy: P.ys(v[i]).toFixed(1), r: 2, fill: color}, P.g);
  });
}
function marker(P, values, color, id) {
  P.marks.push({values: values, el: el("circle", {id: id, cx: -20, cy: -20, r: 5, fill: "none", stroke: color,
                                                  "stroke-width": 2}, svg)});
}
{
  const P = panel("bias (V)", D.ranges.bias);
  if (D.bias_curve) line(P, D.bias_curve.t, D.bias_curve.v, {stroke: "#222", id: "bias-line"});
  D.t.forEach((tt, i) => { if (D.bias[i] !== null)
    el("circle", {cx: xs(tt).toFixed(1), cy: P.ys(D.bias[i]).toFixed(1), r: 1.8, fill: "#888"}, P.g); });
  if (!D.bias_curve) line(P, D.t, D.bias, {stroke: "#222", id: "bias-line"});
  marker(P, D.bias, "#222", "marker");
}
if (D.current) {
  const P = panel("current (" + D.current.unit + ")", D.current.range);
  line(P, D.current.t, D.current.v, {stroke: "#7f7f7f", id: "current-line"});
  if (D.current_frame) marker(P, D.current_frame, "#7f7f7f", "marker-current");
}
{
  const P = panel("interface ΔV (V)", D.ranges.step);
  for (let i = 0; i < NI; i++) {
    errorbars(P, D.step[i], D.step_std[i], COLORS[i % 4], "step-line-" + i);
    marker(P, D.step[i], COLORS[i % 4], "marker-step-" + i);
  }
}
{
  const P = panel("10–90 % width (nm)", D.ranges.width);
  for (let i = 0; i < NI; i++) {
    errorbars(P, D.width[i], D.width_std[i], COLORS[i % 4], "width-line-" + i);
    marker(P, D.width[i], COLORS[i % 4], "marker-width-" + i);
  }
}
(function () {  // time axis and legend
  const bottom = M.t + panels.length * (PH + GAP) - GAP;
  svg.setAttribute("height", bottom + M.b);
  const tstep = niceStep((thi - tlo) / D.tdiv, 6) * D.tdiv;
  for (let v = Math.ceil(tlo / tstep) * tstep; v <= thi + 1e-9; v += tstep) {
    el("line", {x1: xs(v), x2: xs(v), y1: bottom, y2: bottom + 4, stroke: "#444"}, svg);
    el("text", {x: xs(v), y: bottom + 16, "text-anchor": "middle"}, svg).textContent = fmt(v / D.tdiv, tstep / D.tdiv);
  }
  el("text", {x: M.l + (W - M.l - M.r) / 2, y: bottom + 32, "text-anchor": "middle"}, svg).textContent =
    "time (" + D.tunit + ")";
  let x = M.l;
  for (let i = 0; i < NI; i++) {
    el("line", {x1: x, x2: x + 16, y1: bottom + 50, y2: bottom + 50, stroke: COLORS[i % 4], "stroke-width": 2}, svg);
    const t = el("text", {x: x + 20, y: bottom + 54}, svg);
    t.textContent = D.interfaces_nm[i] === null ? "interface " + i : "interface at " + D.interfaces_nm[i].toFixed(0) + " nm";
    x += 20 + t.getComputedTextLength() + 22;
  }
  el("text", {x: x, y: bottom + 54}, svg).textContent = "bars: ± 1σ · dashed line: shown frame";
})();
// ---- the frame's numbers
const table = document.getElementById("numbers");
table.innerHTML = "<tr><th>interface</th><th>ΔV (V)</th><th>width (nm)</th><th>position (nm)</th></tr>";
const rows = [];
for (let i = 0; i < NI; i++) {
  const tr = document.createElement("tr"); tr.id = "num-" + i;
  for (let c = 0; c < 4; c++) tr.appendChild(document.createElement("td"));
  table.appendChild(tr); rows.push(tr);
}
function numbers(fi) {
  const biased = D.bias[fi] !== null && D.bias[fi] !== 0;
  rows.forEach((tr, i) => {
    const c = tr.children, at = D.interfaces_nm[i] === null ? "#" + i : "at " + D.interfaces_nm[i].toFixed(0) + " nm";
    c[0].innerHTML = "<span class='swatch' style='background:" + COLORS[i % 4] + "'></span>" + at +
      (biased && D.posif[fi] === i ? " (positive side)" : "");
    c[1].textContent = pm(D.step[i][fi], D.step_std[i][fi], true);
    c[2].textContent = pm(D.width[i][fi], D.width_std[i][fi]);
    c[3].textContent = pm(D.pos[i][fi], D.pos_std[i][fi]);
  });
  document.getElementById("asym").textContent = "asymmetry (|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|) = " +
    (biased ? pm(D.asym[fi], D.asym_std[fi], true) : "— (no bias)");
}
// ---- drawing a frame
function draw() {
  const span = (D.hi - D.lo) || 1, fi = D.frames[frame];
  for (let i = 0; i < npx; i++) {
    const v = value(frame, i), o = 4 * i;
    // no data in grey: white is ΔV = 0 in the diverging map
    if (Number.isNaN(v)) { img.data[o] = img.data[o + 1] = img.data[o + 2] = 200; img.data[o + 3] = 255; continue; }
    const k = Math.max(0, Math.min(255, Math.round((v - D.lo) / span * 255)));
    img.data[o] = D.lut[3 * k]; img.data[o + 1] = D.lut[3 * k + 1]; img.data[o + 2] = D.lut[3 * k + 2]; img.data[o + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  let text = "frame " + (frame + 1) + "/" + D.nt + (D.nt < D.t.length ? " (hologram " + (fi + 1) + "/" + D.t.length + ")" : "") +
    " · t = " + tfmt(D.t[fi]);
  if (D.bias[fi] !== null) text += " · bias " + (D.bias[fi] >= 0 ? "+" : "−") + Math.abs(D.bias[fi]).toFixed(2) + " V";
  if (D.current_frame && D.current_frame[fi] !== null) text += " · current " + minus(D.current_frame[fi].toPrecision(3)) + " " + D.current.unit;
  document.getElementById("label").textContent = text;
  numbers(fi);
  const x = xs(D.t[fi]).toFixed(1);
  for (const P of panels) {
    P.cur.setAttribute("x1", x); P.cur.setAttribute("x2", x);
    for (const m of P.marks) {
      const v = m.values[fi], y = v === null ? null : P.ys(v);
      const inside = y !== null && y >= P.top && y <= P.top + PH;
      m.el.setAttribute("cx", inside ? x : -20); m.el.setAttribute("cy", inside ? y.toFixed(1) : -20);
    }
  }
}
// ---- interaction
""" + _kit.JS_PLAYER + """canvas.addEventListener("mousemove", ev => {
  const r = canvas.getBoundingClientRect();
  const ix = Math.floor((ev.clientX - r.left) / r.width * D.nx), iy = Math.floor((ev.clientY - r.top) / r.height * D.ny);
  if (ix < 0 || iy < 0 || ix >= D.nx || iy >= D.ny) return;
  const v = value(frame, iy * D.nx + ix), edge = D.clipped && (v <= D.qlo || v >= D.qhi);
  document.getElementById("readout").textContent =
    "x = " + (D.x0 + (ix + 0.5) * D.pixel_nm).toFixed(1) + " nm, y = " + (D.y0 + (iy + 0.5) * D.pixel_nm).toFixed(1) +
    " nm, ΔV = " + (Number.isNaN(v) ? "no data" : (edge ? (v > 0 ? "≥ " : "≤ ") : "") + minus(v.toFixed(3)) + " V");
});
if (!D.has_nan) document.getElementById("cb-nodata").style.display = "none";
setFrame(0);
</script>
</body></html>
"""
