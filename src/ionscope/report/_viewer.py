# SPDX-License-Identifier: GPL-3.0-or-later
"""A self-contained, offline HTML viewer of a Li-map movie beside the charge curve.

One static file: the maps are embedded as base64 16-bit integers (quantised
between the series' min and max: 1/65535 of the range, far below the noise)
and drawn in the browser onto a canvas through a colour look-up table; the
charge curves (voltage, current, charge or state of charge; each present one
in its own panel on a shared time axis in min) are inline SVG with a marker
that follows the frame. The map has nm axes, a scale bar and a labelled colour
bar; y increases downward as in every ionscope figure (electrolyte at the top
for operando data). No network, no external script. Controls: frame slider,
play/pause, raw/denoised toggle, and a hover readout of the Li value and
position under the cursor.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import _viewer_kit as _kit
from ..errors import ShapeMismatchError


def write_viewer(path, *, raw, denoised=None, times, voltage=None, soc=None, states=None,
                 pixel_nm: float = 1.0, title: str = "ionscope operando viewer", cmap: str = "viridis",
                 label: str = "Li", current=None, charge=None, x0_nm: float = 0.0, y0_nm: float = 0.0,
                 bounds=None) -> Path:
    """Write the viewer HTML file (atomically).

    Parameters
    ----------
    path : str or Path
        Output ``.html``.
    raw, denoised : ndarray (time, y, x)
        Li maps; ``denoised`` optional (the toggle is hidden without it).
    times : array_like (time,)
        Frame times in s.
    voltage, soc : array_like (time,), optional
        Cell voltage (V) and state of charge per frame: curves beside the map.
    current, charge : array_like (time,), optional
        Cell current (A) and charge passed (C) per frame: more panels under
        the voltage (the current in mA/µA/nA ... as its size asks, the charge
        in the current's prefix: nA → nC, see :func:`ionscope._viewer_kit.charge_prefix`).
    states : sequence of str, optional
        Cell state per frame (shown in the frame label).
    pixel_nm : float
        Pixel size in nm (axes, scale bar and hover readout).
    x0_nm, y0_nm : float
        Coordinates of the first pixel's edge in nm (the data's own origin).
    label : str
        What the map shows, with its unit (under the colour bar and in the readout).
    bounds : (lo, hi), optional
        Physical bounds of the mapped quantity (``(0, 1)`` for x in LixCoO2):
        the colour scale stays within them, and the colour bar shows arrows
        and the share of pixels beyond its ends.

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.html"
    >>> _ = write_viewer(p, raw=np.random.default_rng(0).random((3, 4, 5)), times=[0, 60, 120], voltage=[3.9, 4.0, 4.1])
    >>> "<canvas" in p.read_text()
    True
    """
    raw = np.asarray(raw, float)
    if raw.ndim != 3:
        raise ShapeMismatchError(f"viewer: raw must be (time, y, x), got shape {raw.shape}")
    nt, ny, nx = raw.shape
    times = np.asarray(times, float)
    if times.shape != (nt,):
        raise ShapeMismatchError(f"viewer: times has shape {times.shape}, expected ({nt},)")
    layers = {"raw": _kit.quantise(raw, what="Li-map")}
    if denoised is not None:
        denoised = np.asarray(denoised, float)
        if denoised.shape != raw.shape:
            raise ShapeMismatchError(f"viewer: denoised has shape {denoised.shape}, expected {raw.shape}")
        layers["denoised"] = _kit.quantise(denoised, what="Li-map")
    # Both layers on one colour scale, so toggling compares like with like; the
    # scale follows the cleanest layer's 0.5-99.5 percentiles (raw noise would
    # otherwise stretch it and wash the denoised map out; raw then saturates),
    # within the quantity's physical bounds; what each layer has beyond it is counted.
    from ..report import colour_scale

    best = denoised if denoised is not None else raw
    sc = colour_scale(best, bounds=bounds, percentiles=(0.5, 99.5))
    lo, hi = sc.vmin, sc.vmax
    for name, stack in (("raw", raw), ("denoised", denoised)):
        if name in layers:
            c = colour_scale(stack, bounds=bounds, vmin=lo, vmax=hi)
            layers[name].update(below=c.below, above=c.above, below_bound=c.below_bound, above_bound=c.above_bound)
    series = []
    for name, values, unit, lab in (("voltage", voltage, "V", "voltage"), ("current", current, "A", "current"),
                                    ("charge", charge, "C", "charge passed"), ("soc", soc, "", "state of charge")):
        if values is None:
            continue
        v = np.asarray(values, float)
        if v.shape != (nt,):
            raise ShapeMismatchError(f"viewer: {name} has shape {v.shape}, expected ({nt},)")
        if unit == "C":  # the charge in the current's prefix (one SI-prefix rule for every output)
            factor, unit = _kit.charge_prefix(v, current)
        else:
            factor, unit = _kit.si_prefix(v, unit) if unit == "A" else (1.0, unit)
        series.append({"name": name, "label": f"{lab} ({unit})" if unit else lab, "unit": unit,
                       "values": [None if not np.isfinite(x) else round(float(x) * factor, 6) for x in v]})
    payload = {
        "nt": nt, "ny": ny, "nx": nx, "pixel_nm": float(pixel_nm), "x0": float(x0_nm), "y0": float(y0_nm),
        "layers": layers, "lo": lo, "hi": hi,
        "times": [round(float(t), 6) for t in times], "series": series,
        "states": [str(s) for s in states] if states is not None else None, "lut": _kit.colour_lut(cmap),
        "label": str(label), "bounds": list(bounds) if bounds is not None else None,
    }
    return _kit.write_page(path, _TEMPLATE, title=title, payload=payload)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
""" + _kit.VIEWER_CSS + """</style></head>
<body>
<h2>__TITLE__</h2>
<div id="controls">
  <button id="play" type="button">&#9654; play</button>
  <input id="frame" type="range" min="0" max="0" value="0" step="1" aria-label="frame">
  <span id="label"></span>
  <span id="modes"><label><input type="radio" name="mode" id="mode-raw" value="raw"> raw</label>
  <label><input type="radio" name="mode" id="mode-denoised" value="denoised"> denoised</label></span>
</div>
<div id="wrap">
  <div><div id="mapbox"><canvas id="map"></canvas><svg id="axes" role="img" aria-label="map axes"></svg></div>
    <div id="colorbar"><span id="cb-lo"></span><canvas id="cb" width="256" height="12"></canvas><span id="cb-hi"></span><span id="cb-label"></span></div>
    <div id="readout">hover over the map</div></div>
  <svg id="curve" width="460" height="300" role="img" aria-label="charge curves"></svg>
</div>
<script>
"use strict";
const D = __DATA__;
""" + _kit.JS_HELPERS + """const layers = {};
for (const [name, L] of Object.entries(D.layers))
  layers[name] = {lo: L.lo, hi: L.hi, q: decode(L.b64), below: L.below || 0, above: L.above || 0,
                  below_bound: L.below_bound || 0, above_bound: L.above_bound || 0};
let mode = layers.denoised ? "denoised" : "raw";
let frame = 0, timer = null;
const npx = D.ny * D.nx;
const slider = document.getElementById("frame");
slider.max = D.nt - 1;
const canvas = document.getElementById("map");
const zoom = Math.max(1, Math.floor(420 / Math.max(D.nx, D.ny)));
canvas.width = D.nx * zoom; canvas.height = D.ny * zoom;
const ctx = canvas.getContext("2d");
ctx.imageSmoothingEnabled = false;
const off = document.createElement("canvas");
off.width = D.nx; off.height = D.ny;
const octx = off.getContext("2d");
const img = octx.createImageData(D.nx, D.ny);
if (!layers.denoised) document.getElementById("modes").style.display = "none";
document.getElementById("mode-" + mode).checked = true;
""" + _kit.JS_MAP_AXES + """function value(name, t, i) {
  const L = layers[name], q = L.q[t * npx + i];
  return q === 0 ? NaN : L.lo + (q - 1) / 65534 * (L.hi - L.lo);
}
function draw() {
  const span = (D.hi - D.lo) || 1;
  for (let i = 0; i < npx; i++) {
    const v = value(mode, frame, i), o = 4 * i;
    if (Number.isNaN(v)) { img.data[o] = img.data[o + 1] = img.data[o + 2] = 255; img.data[o + 3] = 255; continue; }
    const k = Math.max(0, Math.min(255, Math.round((v - D.lo) / span * 255)));
    img.data[o] = D.lut[3 * k]; img.data[o + 1] = D.lut[3 * k + 1]; img.data[o + 2] = D.lut[3 * k + 2]; img.data[o + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  colourBarExtend(layers[mode].below, layers[mode].above, layers[mode].below_bound, layers[mode].above_bound);
  const st = D.states ? " · " + D.states[frame] : "";
  let v = "";
  for (const S of D.series) if (S.name !== "soc" && S.values[frame] !== null) v += " · " + S.values[frame].toPrecision(4) + " " + S.unit;
  document.getElementById("label").textContent =
    "frame " + (frame + 1) + "/" + D.nt + " · t = " + (D.times[frame] / 60).toFixed(1) + " min" + v + st;
  moveMarker();
}
// ---- curves: one panel per series, shared time axis (min)
const svg = document.getElementById("curve");
const W = 460, M = {l: 62, r: 12, t: 8, b: 40}, PH = 120, GAP = 14;
const panels = [];
if (D.series.length) {
  const Htot = M.t + D.series.length * (PH + GAP) - GAP + M.b;
  svg.setAttribute("height", Htot);
  const t = D.times, tlo = t[0], thi = t[t.length - 1] > t[0] ? t[t.length - 1] : t[0] + 1;
  const xs = v => M.l + (v - tlo) / (thi - tlo) * (W - M.l - M.r);
  D.series.forEach((S, k) => {
    const top = M.t + k * (PH + GAP), yv = S.values, fin = yv.filter(v => v !== null);
    let ylo = Math.min(...fin), yhi = Math.max(...fin); if (yhi === ylo) { yhi += 1; ylo -= 1; }
    const pad = 0.06 * (yhi - ylo); ylo -= pad; yhi += pad;
    const ys = v => top + PH - (v - ylo) / (yhi - ylo) * PH;
    el("rect", {x: M.l, y: top, width: W - M.l - M.r, height: PH, fill: "none", stroke: "#999"}, svg);
    const ystep0 = niceStep(yhi - ylo, 4);  // at least 3 labelled ticks (4 asked can give 2)
    const ystep = Math.floor(yhi / ystep0) - Math.ceil(ylo / ystep0) < 2 ? niceStep(yhi - ylo, 8) : ystep0;
    for (let v = Math.ceil(ylo / ystep) * ystep; v <= yhi; v += ystep) {
      el("line", {x1: M.l - 4, x2: M.l, y1: ys(v), y2: ys(v), stroke: "#444"}, svg);
      el("text", {x: M.l - 6, y: ys(v) + 4, "text-anchor": "end"}, svg).textContent = fmt(v, ystep);
    }
    el("text", {x: 12, y: top + PH / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (top + PH / 2) + ")"}, svg)
      .textContent = S.label;
    const pts = t.map((tt, i) => yv[i] === null ? null : xs(tt).toFixed(1) + "," + ys(yv[i]).toFixed(1)).filter(p => p);
    el("polyline", {points: pts.join(" "), fill: "none", stroke: ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"][k % 4],
                    "stroke-width": 1.5, id: k === 0 ? "curve-line" : "curve-line-" + k}, svg);
    const cur = el("line", {id: k === 0 ? "cursor" : "cursor-" + k, x1: 0, x2: 0, y1: top, y2: top + PH,
                            stroke: "#d62728", "stroke-dasharray": "3,3"}, svg);
    const mk = el("circle", {id: k === 0 ? "marker" : "marker-" + k, cx: 0, cy: 0, r: 5, fill: "#d62728"}, svg);
    panels.push({S: S, ys: ys, cur: cur, mk: mk, xs: xs});
  });
  const bottom = M.t + D.series.length * (PH + GAP) - GAP;
  const tstep = niceStep((thi - tlo) / 60, 6) * 60;
  for (let v = Math.ceil(tlo / tstep) * tstep; v <= thi + 1e-9; v += tstep) {
    el("line", {x1: xs(v), x2: xs(v), y1: bottom, y2: bottom + 4, stroke: "#444"}, svg);
    el("text", {x: xs(v), y: bottom + 16, "text-anchor": "middle"}, svg).textContent = fmt(v / 60, tstep / 60);
  }
  el("text", {x: M.l + (W - M.l - M.r) / 2, y: bottom + 33, "text-anchor": "middle"}, svg).textContent = "time (min)";
}
function moveMarker() {
  for (const P of panels) {
    const yv = P.S.values[frame], x = P.xs(D.times[frame]).toFixed(1);
    P.mk.setAttribute("cx", x); P.mk.setAttribute("cy", yv === null ? -20 : P.ys(yv).toFixed(1));
    P.cur.setAttribute("x1", x); P.cur.setAttribute("x2", x);
  }
}
""" + _kit.JS_COLOUR_BAR + """// ---- interaction
""" + _kit.JS_PLAYER + """for (const r of document.querySelectorAll("input[name=mode]"))
  r.addEventListener("change", () => { mode = r.value; draw(); });
canvas.addEventListener("mousemove", ev => {
  const r = canvas.getBoundingClientRect();
  const ix = Math.floor((ev.clientX - r.left) / r.width * D.nx), iy = Math.floor((ev.clientY - r.top) / r.height * D.ny);
  if (ix < 0 || iy < 0 || ix >= D.nx || iy >= D.ny) return;
  const v = value(mode, frame, iy * D.nx + ix);  // the value itself, also beyond the colour scale
  document.getElementById("readout").textContent =
    "x = " + (D.x0 + (ix + 0.5) * D.pixel_nm).toFixed(1) + " nm, y = " + (D.y0 + (iy + 0.5) * D.pixel_nm).toFixed(1) +
    " nm, " + D.label + " (" + mode + ") = " + (Number.isNaN(v) ? "no data" : v.toPrecision(4));
});
setFrame(0);
</script>
</body></html>
"""
