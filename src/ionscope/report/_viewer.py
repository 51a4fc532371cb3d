# SPDX-License-Identifier: GPL-3.0-or-later
"""A self-contained, offline HTML viewer of a Li-map movie beside the charge curve.

One static file: the maps are embedded as base64 16-bit integers (quantised
between the series' min and max: 1/65535 of the range, far below the noise)
and drawn in the browser onto a canvas through a colour look-up table; the
charge curve is inline SVG with a marker that follows the frame. No network,
no external script. Controls: frame slider, play/pause, raw/denoised toggle,
and a hover readout of the Li value under the cursor.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import DataValidationError, ShapeMismatchError


def _quantise(stack: np.ndarray) -> dict:
    a = np.asarray(stack, float)
    finite = np.isfinite(a)
    if not finite.any():
        raise DataValidationError("viewer: a Li-map stack holds no finite value")
    lo, hi = float(a[finite].min()), float(a[finite].max())
    span = hi - lo if hi > lo else 1.0
    q = np.where(finite, np.round((a - lo) / span * 65534.0) + 1, 0).astype("<u2")  # 0 = no data
    return {"lo": lo, "hi": hi, "b64": base64.b64encode(q.tobytes()).decode("ascii")}


def _lut(cmap: str) -> list[int]:
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))
    return (rgba[:, :3] * 255).round().astype(int).ravel().tolist()


def write_viewer(path, *, raw, denoised=None, times, voltage=None, soc=None, states=None,
                 pixel_nm: float = 1.0, title: str = "ionscope operando viewer", cmap: str = "viridis",
                 label: str = "Li") -> Path:
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
        Cell voltage (V) and state of charge per frame: the curve beside the map.
    states : sequence of str, optional
        Cell state per frame (shown in the frame label).
    pixel_nm : float
        Pixel size for the hover readout.
    label : str
        What the map shows, with its unit (under the colour bar and in the readout).

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
    layers = {"raw": _quantise(raw)}
    if denoised is not None:
        denoised = np.asarray(denoised, float)
        if denoised.shape != raw.shape:
            raise ShapeMismatchError(f"viewer: denoised has shape {denoised.shape}, expected {raw.shape}")
        layers["denoised"] = _quantise(denoised)
    # Both layers on one colour scale, so toggling compares like with like; the
    # scale follows the cleanest layer's 0.5-99.5 percentiles (raw noise would
    # otherwise stretch it and wash the denoised map out; raw then saturates).
    best = denoised if denoised is not None else raw
    lo, hi = (float(v) for v in np.nanpercentile(best, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    series = {}
    for name, values in (("voltage", voltage), ("soc", soc)):
        if values is not None:
            v = np.asarray(values, float)
            if v.shape != (nt,):
                raise ShapeMismatchError(f"viewer: {name} has shape {v.shape}, expected ({nt},)")
            series[name] = [None if not np.isfinite(x) else round(float(x), 6) for x in v]
    curve = "voltage" if "voltage" in series else ("soc" if "soc" in series else None)
    payload = {
        "nt": nt, "ny": ny, "nx": nx, "pixel_nm": float(pixel_nm), "layers": layers, "lo": lo, "hi": hi,
        "times": [round(float(t), 6) for t in times], "series": series, "curve": curve,
        "states": [str(s) for s in states] if states is not None else None, "lut": _lut(cmap),
        "label": str(label),
    }
    page = _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", json.dumps(payload))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em;color:#222}
#wrap{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
canvas{image-rendering:pixelated;border:1px solid #999;cursor:crosshair}
#controls{margin:0.8em 0;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
#frame{width:22em}
#readout{font-family:monospace;min-height:1.3em}
svg text{font-size:11px}
#colorbar{display:flex;align-items:center;gap:0.4em;font-size:12px}
</style></head>
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
  <div><canvas id="map"></canvas>
    <div id="colorbar"><span id="cb-lo"></span><canvas id="cb" width="256" height="12"></canvas><span id="cb-hi"></span><span id="cb-label"></span></div>
    <div id="readout">hover over the map</div></div>
  <svg id="curve" width="420" height="300" role="img" aria-label="charge curve"></svg>
</div>
<script>
"use strict";
const D = __DATA__;
const SVGNS = "http://www.w3.org/2000/svg";
function decode(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Uint16Array(bytes.buffer);
}
const layers = {};
for (const [name, L] of Object.entries(D.layers)) layers[name] = {lo: L.lo, hi: L.hi, q: decode(L.b64)};
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
function value(name, t, i) {
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
  const st = D.states ? " · " + D.states[frame] : "";
  const v = D.series.voltage ? " · " + D.series.voltage[frame].toFixed(3) + " V" : "";
  document.getElementById("label").textContent =
    "frame " + (frame + 1) + "/" + D.nt + " · t = " + (D.times[frame] / 60).toFixed(1) + " min" + v + st;
  moveMarker();
}
// ---- charge curve
const svg = document.getElementById("curve");
const W = 420, H = 300, M = {l: 52, r: 12, t: 12, b: 36};
let xs = null, ys = null;
function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  (parent || svg).appendChild(e); return e;
}
if (D.curve) {
  const yv = D.series[D.curve], t = D.times;
  const fin = yv.filter(v => v !== null);
  let ylo = Math.min(...fin), yhi = Math.max(...fin); if (yhi === ylo) { yhi += 1; ylo -= 1; }
  const tlo = t[0], thi = t[t.length - 1] > t[0] ? t[t.length - 1] : t[0] + 1;
  xs = v => M.l + (v - tlo) / (thi - tlo) * (W - M.l - M.r);
  ys = v => H - M.b - (v - ylo) / (yhi - ylo) * (H - M.t - M.b);
  el("rect", {x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: "none", stroke: "#999"});
  const pts = t.map((tt, i) => yv[i] === null ? null : xs(tt).toFixed(1) + "," + ys(yv[i]).toFixed(1)).filter(p => p);
  el("polyline", {points: pts.join(" "), fill: "none", stroke: "#1f77b4", "stroke-width": 1.5, id: "curve-line"});
  const lab = D.curve === "voltage" ? "voltage (V)" : "state of charge";
  el("text", {x: 4, y: M.t + 10}, svg).textContent = yhi.toFixed(3);
  el("text", {x: 4, y: H - M.b}, svg).textContent = ylo.toFixed(3);
  el("text", {x: M.l, y: H - 8}, svg).textContent = "time (min): " + (tlo / 60).toFixed(1) + " – " + (thi / 60).toFixed(1);
  el("text", {x: W - M.r - 110, y: M.t + 14}, svg).textContent = lab;
  el("line", {id: "cursor", x1: 0, x2: 0, y1: M.t, y2: H - M.b, stroke: "#d62728", "stroke-dasharray": "3,3"});
  el("circle", {id: "marker", cx: 0, cy: 0, r: 6, fill: "#d62728"});
}
function moveMarker() {
  if (!D.curve) return;
  const yv = D.series[D.curve][frame];
  const m = document.getElementById("marker"), c = document.getElementById("cursor");
  const x = xs(D.times[frame]).toFixed(1);
  m.setAttribute("cx", x); m.setAttribute("cy", yv === null ? -20 : ys(yv).toFixed(1));
  c.setAttribute("x1", x); c.setAttribute("x2", x);
}
// ---- colour bar
(function () {
  const cb = document.getElementById("cb").getContext("2d");
  for (let k = 0; k < 256; k++) { cb.fillStyle = "rgb(" + D.lut[3*k] + "," + D.lut[3*k+1] + "," + D.lut[3*k+2] + ")"; cb.fillRect(k, 0, 1, 12); }
  document.getElementById("cb-lo").textContent = D.lo.toPrecision(3);
  document.getElementById("cb-hi").textContent = D.hi.toPrecision(3);
  document.getElementById("cb-label").textContent = D.label;
})();
// ---- interaction
function setFrame(f) { frame = Math.max(0, Math.min(D.nt - 1, f)); slider.value = frame; draw(); }
slider.addEventListener("input", () => setFrame(parseInt(slider.value, 10)));
for (const r of document.querySelectorAll("input[name=mode]"))
  r.addEventListener("change", () => { mode = r.value; draw(); });
document.getElementById("play").addEventListener("click", () => {
  const b = document.getElementById("play");
  if (timer) { clearInterval(timer); timer = null; b.innerHTML = "&#9654; play"; return; }
  b.innerHTML = "&#10074;&#10074; pause";
  timer = setInterval(() => setFrame(frame + 1 < D.nt ? frame + 1 : 0), 250);
});
canvas.addEventListener("mousemove", ev => {
  const r = canvas.getBoundingClientRect();
  const ix = Math.floor((ev.clientX - r.left) / r.width * D.nx), iy = Math.floor((ev.clientY - r.top) / r.height * D.ny);
  if (ix < 0 || iy < 0 || ix >= D.nx || iy >= D.ny) return;
  const v = value(mode, frame, iy * D.nx + ix);
  document.getElementById("readout").textContent =
    "x = " + ((ix + 0.5) * D.pixel_nm).toFixed(1) + " nm, y = " + ((iy + 0.5) * D.pixel_nm).toFixed(1) +
    " nm, " + D.label + " (" + mode + ") = " + (Number.isNaN(v) ? "no data" : v.toPrecision(4));
});
setFrame(0);
</script>
</body></html>
"""

