# SPDX-License-Identifier: GPL-3.0-or-later
"""The live dashboard page: one HTML document, inline CSS and JS, nothing fetched from elsewhere.

An EELS night shows Li maps (raw and causally denoised), the electrochemistry
and the per-frame checks; a holography night (``meta.night ==
"holography"``) shows the potential map ΔV (V, colour bar, nm scale bar), ΔV(t)
and the step width per interface, the bias, and the step fit's χ² and the
leakage per hologram in the same panels.
"""
from __future__ import annotations

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ionscope live</title>
<style>
:root{--fg:#1d2330;--muted:#5b6478;--line:#d5d9e2;--bg:#f6f7fa;--card:#fff;--warn:#8a5a00;--warnbg:#fff4d6;--bad:#b42318}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--fg);background:var(--bg);font-size:14px}
header{display:flex;align-items:baseline;gap:1.2em;padding:.7em 1.2em;background:#1d2330;color:#fff;flex-wrap:wrap}
header h1{font-size:17px;margin:0;font-weight:600}
#phase{padding:.1em .6em;border-radius:1em;background:#3b4a6b;font-size:12px}
#phase.watching{background:#1a7f37}#phase.done{background:#57606a}
#status{font-variant-numeric:tabular-nums;color:#d6dae3}
#warnings{margin:.6em 1.2em 0}
.warning{background:var(--warnbg);color:var(--warn);border:1px solid #f0d48a;border-radius:6px;padding:.45em .8em;margin-bottom:.4em}
main{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:.9em;padding:.9em 1.2em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7em .8em;min-width:0}
.card h2{font-size:13px;margin:0 0 .5em;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.wide{grid-column:span 2}
canvas.map{image-rendering:pixelated;display:block;max-width:100%;border:1px solid var(--line)}
.cbar{display:flex;align-items:center;gap:.4em;font-size:12px;margin-top:.35em;font-variant-numeric:tabular-nums}
.cbar canvas{width:150px;height:10px;border:1px solid var(--line)}
#controls{display:flex;align-items:center;gap:.8em;flex-wrap:wrap}
#slider{flex:1;min-width:10em}
#framelabel{font-variant-numeric:tabular-nums;min-width:18em}
svg{display:block;width:100%;height:auto}
svg text{font-size:11px;fill:var(--muted)}
svg .title{fill:var(--fg);font-size:12px}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{border-bottom:1px solid var(--line);padding:.25em .4em;text-align:left;vertical-align:top}
.muted{color:var(--muted);font-size:12px}
.cap{margin-top:.2em;min-height:1.2em}
.card h2 select{font-size:11px;margin-left:.5em;text-transform:none}
#empty{padding:2em;color:var(--muted)}
</style></head>
<body>
<header><h1 id="title">ionscope live</h1><span id="phase">starting</span><span id="status">waiting for the first frame…</span></header>
<div id="warnings"></div>
<main>
  <div class="card"><h2><span id="raw-title">Li map · raw</span> <select id="layer" aria-label="map shown"><option value="li">Li (raw)</option></select></h2><canvas id="map-raw" class="map"></canvas>
    <div class="cbar"><span id="cb-raw-lo"></span><canvas id="cb-raw" width="256" height="10"></canvas><span id="cb-raw-hi"></span><span class="muted" id="cb-raw-label">Li weight (MLLS)</span></div><div class="muted cap" id="cap-raw"></div></div>
  <div class="card" id="card-den"><h2 id="den-title">Li map · causal denoised</h2><canvas id="map-den" class="map"></canvas>
    <div class="cbar"><span id="cb-den-lo"></span><canvas id="cb-den" width="256" height="10"></canvas><span id="cb-den-hi"></span><span class="muted" id="cb-den-label">Li weight (MLLS), same scale</span></div><div class="muted cap" id="cap-den"></div></div>
  <div class="card" id="card-ec"><h2 id="ec-title">Electrochemistry</h2><svg id="plot-v" viewBox="0 0 440 150"></svg><svg id="plot-i" viewBox="0 0 440 105"></svg><svg id="plot-q" viewBox="0 0 440 105"></svg></div>
  <div class="card wide"><h2 id="movie-title">Movie so far</h2>
    <div id="controls"><button id="play" type="button">&#9654; play</button>
      <input id="slider" type="range" min="0" max="0" value="0" step="1" aria-label="frame">
      <label><input id="follow" type="checkbox" checked> follow newest</label>
      <span id="framelabel"></span></div>
    <div class="muted" id="frameinfo"></div>
    <svg id="plot-li" viewBox="0 0 900 170"></svg><svg id="plot-flux" viewBox="0 0 900 120"></svg></div>
  <div class="card"><h2>Per-frame checks</h2><svg id="plot-chi" viewBox="0 0 440 150"></svg><svg id="plot-pe" viewBox="0 0 440 150"></svg></div>
  <div class="card wide"><h2>Acquisition</h2><table id="stats"></table></div>
  <div class="card"><h2>Bad frames</h2><div id="bad" class="muted">none</div></div>
</main>
<script>
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token");
const api = p => p + (TOKEN ? (p.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : "");
const SVGNS = "http://www.w3.org/2000/svg";
// viridis, 16 stops, interpolated
const VIR = [[68,1,84],[72,26,108],[71,47,125],[65,68,135],[57,86,140],[49,104,142],[42,120,142],[35,137,142],
  [31,154,138],[34,168,132],[53,183,121],[84,197,104],[122,209,81],[165,219,54],[210,226,27],[253,231,37]];
// a diverging map (blue - white - red, 11 stops) for signed maps centred on 0: the potential ΔV
const DIV = [[5,48,97],[33,102,172],[67,147,195],[146,197,222],[209,229,240],[247,247,247],[253,219,199],
  [244,165,130],[214,96,77],[178,24,43],[103,0,31]];
const LUT = new Uint8Array(256 * 3);
function fillLut(stops) {
  const m = stops.length - 1;
  for (let k = 0; k < 256; k++) {
    const f = k / 255 * m, i = Math.min(m - 1, Math.floor(f)), w = f - i;
    for (let c = 0; c < 3; c++) LUT[3 * k + c] = Math.round(stops[i][c] * (1 - w) + stops[i + 1][c] * w);
  }
}
fillLut(VIR);
let version = -1, series = {frames: [], log: null}, meta = {}, shown = null, playing = null, lastDen = null, scale = null;
const cache = new Map();
function decode(L) {
  const bin = atob(L.b64), n = bin.length / 2, out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const q = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
    out[i] = q === 0 ? NaN : L.lo + (q - 1) / 65534 * (L.hi - L.lo);
  }
  return out;
}
async function frameMaps(k) {
  if (cache.has(k)) return cache.get(k);
  const r = await fetch(api("/api/frame/" + k));
  if (!r.ok) return null;
  const j = await r.json(), maps = {};
  for (const [n, L] of Object.entries(j.maps)) maps[n] = decode(L);
  const v = {ny: j.ny, nx: j.nx, maps: maps};
  if (maps.li_causal || maps.potential) cache.set(k, v);  // complete frames only: the raw-only version is replaced later
  return v;
}
function pct(a, p) {
  const s = Array.from(a).filter(Number.isFinite).sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))] : 0;
}
function niceStep(span, n) {
  const raw = span / n, m = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / m;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * m;
}
function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return a >= 100 ? v.toFixed(0) : v.toPrecision(3);
}
function drawMap(id, arr, ny, nx, lo, hi) {
  const cv = document.getElementById(id), zoom = Math.max(1, Math.floor(400 / Math.max(nx, ny)));
  cv.width = nx * zoom; cv.height = ny * zoom;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(nx, ny), span = (hi - lo) || 1;
  for (let i = 0; i < nx * ny; i++) {
    const v = arr[i], o = 4 * i;
    if (!Number.isFinite(v)) { img.data[o] = img.data[o + 1] = img.data[o + 2] = 255; img.data[o + 3] = 255; continue; }
    const k = Math.max(0, Math.min(255, Math.round((v - lo) / span * 255)));
    img.data[o] = LUT[3 * k]; img.data[o + 1] = LUT[3 * k + 1]; img.data[o + 2] = LUT[3 * k + 2]; img.data[o + 3] = 255;
  }
  const off = document.createElement("canvas"); off.width = nx; off.height = ny;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, cv.width, cv.height);
  // scale bar: a round length near a fifth of the field of view
  const px = meta.pixel_nm || 1, unit = meta.pixel_units === "nm" ? "nm" : "px";
  const fov = nx * px, step = niceStep(fov / 5, 1), barPx = step / px * zoom;
  const x0 = 10, y0 = cv.height - 12;
  ctx.fillStyle = "rgba(0,0,0,0.45)"; ctx.fillRect(x0 - 5, y0 - 17, barPx + 10, 24);
  ctx.fillStyle = "#fff"; ctx.fillRect(x0, y0, barPx, 4);
  ctx.font = "12px system-ui,sans-serif"; ctx.fillText(step + " " + unit, x0, y0 - 4);
}
// share of the finite values of a map below lo / above hi
function beyond(arr, lo, hi) {
  let n = 0, b = 0, a = 0;
  for (const v of arr) if (Number.isFinite(v)) { n++; if (v < lo) b++; else if (v > hi) a++; }
  return n ? [b / n, a / n] : [0, 0];
}
const pc = f => (100 * f < 10 ? (100 * f).toPrecision(2) : (100 * f).toFixed(0)) + " %";
// the colour bar; arrows (in the end colours) where the map has values beyond its ends
function drawCbar(id, lo, hi, arr) {
  const c = document.getElementById(id).getContext("2d");
  for (let k = 0; k < 256; k++) { c.fillStyle = "rgb(" + LUT[3*k] + "," + LUT[3*k+1] + "," + LUT[3*k+2] + ")"; c.fillRect(k, 0, 1, 10); }
  const [b, a] = arr ? beyond(arr, lo, hi) : [0, 0];
  const elo = document.getElementById(id + "-lo"), ehi = document.getElementById(id + "-hi");
  elo.innerHTML = (b > 0 ? "<span style='color:rgb(" + LUT[0] + "," + LUT[1] + "," + LUT[2] + ")' title='" + pc(b) +
    " of the pixels below the scale'>&#9664;</span> " : "") + fmt(lo);
  ehi.innerHTML = fmt(hi) + (a > 0 ? " <span style='color:rgb(" + LUT[765] + "," + LUT[766] + "," + LUT[767] +
    ")' title='" + pc(a) + " of the pixels above the scale'>&#9654;</span>" : "");
}
// x in LixCoO2 lies in [0, 1]: the share of pixels outside, for the caption
function outside(arr) {
  const [b, a] = beyond(arr, 0, 1), parts = [];
  if (b > 0) parts.push(pc(b) + " x < 0"); if (a > 0) parts.push(pc(a) + " x > 1");
  return parts.length ? " · outside 0–1: " + parts.join(", ") + " (end colours)" : "";
}
function el(svg, tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  svg.appendChild(e); return e;
}
// A small line/dot plot with axes; x in minutes. lines: [{x, y, color, dots, label, dash}]
function plot(id, lines, o) {
  const svg = document.getElementById(id), vb = svg.viewBox.baseVal, W = vb.width, H = vb.height;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const M = {l: 54, r: 10, t: 18, b: 24};
  el(svg, "text", {x: M.l, y: 12, class: "title"}, o.title);
  const xs = [], ys = [];
  for (const L of lines) L.x.forEach((x, i) => { if (Number.isFinite(x) && Number.isFinite(L.y[i])) { xs.push(x); ys.push(L.y[i]); } });
  if (o.hlines) for (const h of o.hlines) if (Number.isFinite(h.y)) ys.push(h.y);
  if (!xs.length) { el(svg, "text", {x: M.l, y: H / 2}, "no data yet"); return; }
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (o.xmax !== undefined && o.xmax > x1) x1 = o.xmax;
  if (o.xmin !== undefined && o.xmin < x0) x0 = o.xmin;
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += Math.abs(y1) * 0.05 || 1; y0 -= Math.abs(y0) * 0.05 || 1; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const X = v => M.l + (v - x0) / (x1 - x0) * (W - M.l - M.r), Y = v => H - M.b - (v - y0) / (y1 - y0) * (H - M.t - M.b);
  el(svg, "rect", {x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: "none", stroke: "#d5d9e2"});
  const ys_ = niceStep(y1 - y0, 3), xs_ = niceStep(x1 - x0, 6);
  for (let v = Math.ceil(y0 / ys_) * ys_; v <= y1; v += ys_) {
    el(svg, "line", {x1: M.l, x2: W - M.r, y1: Y(v), y2: Y(v), stroke: "#eef0f4"});
    el(svg, "text", {x: M.l - 4, y: Y(v) + 4, "text-anchor": "end"}, fmt(v * (o.yscale || 1)));
  }
  for (let v = Math.ceil(x0 / xs_) * xs_; v <= x1; v += xs_)
    el(svg, "text", {x: X(v), y: H - 8, "text-anchor": "middle"}, +v.toFixed(6));
  el(svg, "text", {x: 4, y: H - 8}, "t (min)");
  if (o.hlines) for (const h of o.hlines) if (Number.isFinite(h.y)) {
    el(svg, "line", {x1: M.l, x2: W - M.r, y1: Y(h.y), y2: Y(h.y), stroke: h.color, "stroke-dasharray": "4,3"});
    el(svg, "text", {x: h.left ? M.l + 4 : W - M.r - 4, y: Y(h.y) - 3, "text-anchor": h.left ? "start" : "end",
                     style: "fill:" + h.color}, h.label);
  }
  let lx = W - M.r;
  for (const L of lines.slice().reverse()) if (L.label) {
    const t = el(svg, "text", {x: lx, y: 12, "text-anchor": "end", style: "fill:" + L.color}, L.label);
    lx -= t.getComputedTextLength ? t.getComputedTextLength() + 12 : 80;
  }
  for (const L of lines) {
    const pts = L.x.map((x, i) => Number.isFinite(L.y[i]) ? X(x).toFixed(1) + "," + Y(L.y[i]).toFixed(1) : null).filter(p => p);
    if (!L.dots && pts.length > 1) el(svg, "polyline", {points: pts.join(" "), fill: "none", stroke: L.color, "stroke-width": 1.6, "stroke-dasharray": L.dash || ""});
    if (L.dots) L.x.forEach((x, i) => { if (Number.isFinite(L.y[i])) el(svg, "circle", {cx: X(x), cy: Y(L.y[i]), r: L.r || 2.5, fill: (L.colors && L.colors[i]) || L.color}); });
  }
  if (o.cursor !== undefined && o.cursor !== null) {
    el(svg, "line", {x1: X(o.cursor), x2: X(o.cursor), y1: M.t, y2: H - M.b, stroke: "#d62728", "stroke-dasharray": "3,3", class: "cursor"});
    if (o.cursorY !== undefined && Number.isFinite(o.cursorY)) el(svg, "circle", {cx: X(o.cursor), cy: Y(o.cursorY), r: 5, fill: "#d62728", class: "marker"});
  }
}
const col = (name) => series.frames.map(r => (r[name] === null || r[name] === undefined) ? NaN : r[name]);
const tmin = () => series.frames.map(r => r.time_s / 60);
// one SI-prefix rule for every ionscope output (ionscope._viewer_kit.si_prefix): the largest |value| reads 1-1000
function prefix(vmax, unit) {
  if (!(vmax > 0)) return [1, unit];
  for (const [f, p] of [[1e-3, "k"], [1, ""], [1e3, "m"], [1e6, "µ"], [1e9, "n"], [1e12, "p"], [1e15, "f"], [1e18, "a"]])
    if (vmax * f >= 1) return [f, p + unit];
  return [1e18, "a" + unit];
}
function shownRecord() { return series.frames.find(r => r.frame === shown); }
const isHolo = () => meta.night === "holography";
const IFC = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
// holography: ΔV(t) and width(t) per interface, the bias, the step fit's χ² and the leakage per hologram
function drawHoloPlots() {
  const rec = shownRecord(), cur = rec ? rec.time_s / 60 : null, lg = series.log;
  const nif = (meta.interfaces_nm || []).length, xmax = lg ? lg.time[lg.time.length - 1] / 60 : undefined;
  const at = i => meta.interfaces_nm ? " (" + fmt(meta.interfaces_nm[i]) + " nm)" : "";
  plot("plot-v", (lg && lg.voltage ? [{x: lg.time.map(t => t / 60), y: lg.voltage, color: "#1f77b4", label: "log"}] : [])
      .concat([{x: tmin(), y: col("bias_v"), color: "#0b3d66", dots: true, label: "holograms"}]),
      {title: "bias of the right electrode (V)", cursor: cur, cursorY: rec ? rec.bias_v : undefined, xmax: xmax});
  plot("plot-i", [{x: lg && lg.current ? lg.current.map((_, i) => lg.time[i] / 60) : [], y: lg && lg.current ? lg.current.map(v => v * 1e9) : [], color: "#2ca02c"}],
      {title: "current (nA)", cursor: cur, xmax: xmax});
  const lines = [], wl = [];
  for (let i = 0; i < nif; i++) {
    lines.push({x: tmin(), y: col("step_v_" + i), color: IFC[i % 4], dots: true, r: 3, label: "interface " + i + at(i)});
    wl.push({x: tmin(), y: col("width_nm_" + i), color: IFC[i % 4], dots: true, r: 3, label: "interface " + i});
  }
  plot("plot-li", lines, {title: "ΔV per interface (V, potential step from zero bias; live fit, σ from the frame alone)",
       cursor: cur, hlines: [{y: 0, color: "#9aa3b5", label: ""}]});
  plot("plot-flux", wl, {title: "step width per interface (nm, 10–90 %)", cursor: cur});
  plot("plot-chi", [{x: tmin(), y: col("chi2_reduced"), color: "#444", dots: true}],
       {title: "reduced χ² of the step fit", cursor: cur, hlines: [{y: 1, color: "#1a7f37", label: "expected 1", left: true}]});
  plot("plot-pe", [{x: tmin(), y: col("leak_pv_rad"), color: "#8c564b", dots: true}],
       {title: "leakage ramp, peak to valley (rad, removed)", cursor: cur});
}
async function showHoloFrame(k, f) {
  shown = k;
  const pot = f.maps.potential;
  // a potential change: a symmetric scale around 0 V from the newest map's 1–99 % range
  const m = Math.max(Math.abs(pct(pot, 0.01)), Math.abs(pct(pot, 0.99))) || 1, lo = -m, hi = m;
  drawMap("map-raw", pot, f.ny, f.nx, lo, hi); drawCbar("cb-raw", lo, hi, pot);
  // the interfaces fitted (dashed, in their colours of the ΔV(t) plot), where the plan located them
  const cv = document.getElementById("map-raw"), c2 = cv.getContext("2d"), zx = cv.width / f.nx;
  (meta.interfaces_nm || []).forEach((v, j) => {
    const x = ((v - (meta.x0_nm || 0)) / (meta.pixel_nm || 1) + 0.5) * zx;
    c2.beginPath(); c2.moveTo(x, 0); c2.lineTo(x, cv.height - 30);
    c2.strokeStyle = "#fff"; c2.lineWidth = 4; c2.setLineDash([6, 4]); c2.stroke();  // a white edge: seen on any colour
    c2.strokeStyle = IFC[j % 4]; c2.lineWidth = 2; c2.stroke(); c2.setLineDash([]);
  });
  const rec = shownRecord(), i = series.frames.findIndex(r => r.frame === k);
  document.getElementById("cap-raw").textContent = "hologram " + k + (rec ? " · time index " + rec.time_index : "") +
      " · dashed: the interfaces fitted";
  document.getElementById("slider").value = i;
  document.getElementById("framelabel").textContent = rec ? ("hologram " + k + " · t = " + (rec.time_s / 60).toFixed(2) +
      " min · bias " + fmt(rec.bias_v) + " V") : "";
  const nif = (meta.interfaces_nm || []).length, parts = [];
  if (rec) for (let j = 0; j < nif; j++) parts.push("ΔV" + j + " = " + fmt(rec["step_v_" + j]) + " ± " + fmt(rec["step_v_std_" + j]) + " V");
  document.getElementById("frameinfo").textContent = rec ? (parts.join(" · ") + " · drift (" + fmt(rec.drift_y_nm) + ", " +
      fmt(rec.drift_x_nm) + ") nm" + (rec.reason ? " · skipped: " + rec.reason : "")) : "";
  document.body.dataset.shown = String(k);
  drawHoloPlots();
}
function holoLayout() {
  // the panels of a holography night: the potential map, no denoised map, no charge
  document.getElementById("card-den").style.display = "none";
  fillLut(DIV);  // ΔV is signed, its scale symmetric about 0: white is no change
  document.getElementById("plot-q").style.display = "none";
  document.getElementById("layer").style.display = "none";
  document.getElementById("raw-title").textContent = "potential map ΔV";
  document.getElementById("cb-raw-label").textContent = "ΔV from zero bias (V)";
  document.getElementById("ec-title").textContent = "Bias";
  document.getElementById("movie-title").textContent = "ΔV(t) per interface";
}
function drawPlots() {
  if (isHolo()) return drawHoloPlots();
  const rec = shownRecord(), cur = rec ? rec.time_s / 60 : null, fr = series.frames;
  const lg = series.log, xmax = lg ? lg.time[lg.time.length - 1] / 60 : undefined;
  if (lg && lg.voltage) plot("plot-v", [{x: lg.time.map(t => t / 60), y: lg.voltage, color: "#1f77b4", label: "log"},
      {x: tmin(), y: col("voltage"), color: "#0b3d66", dots: true, label: "frames"}],
      {title: "voltage (V)", cursor: cur, cursorY: rec ? rec.voltage : undefined, xmax: xmax});
  else plot("plot-v", [{x: tmin(), y: col("voltage"), color: "#1f77b4", dots: true}], {title: "voltage (V)", cursor: cur});
  const iv = lg && lg.current ? lg.current.filter(Number.isFinite).map(Math.abs) : [];
  const [isc, iun] = prefix(iv.length ? Math.max(...iv) : 0, "A");
  plot("plot-i", [{x: lg ? lg.time.map(t => t / 60) : [], y: lg && lg.current ? lg.current.map(v => v * isc) : [], color: "#2ca02c"}],
      {title: "current (" + iun + ", + charge)", cursor: cur, xmax: xmax, cursorY: rec && rec.current !== undefined && rec.current !== null ? rec.current * isc : undefined});
  // the charge in the current's prefix (Q = ∫ I dt: pA → pC, ionscope._viewer_kit.charge_prefix), so that its
  // axis keeps one unit while the charge accumulates during the run (no fC → pC switch)
  const q = col("charge_c"), imax = iv.length ? Math.max(...iv) : 0;
  const [qsc, qun] = imax > 0 ? [isc, iun.slice(0, -1) + "C"]
                              : prefix(Math.max(0, ...q.filter(Number.isFinite).map(Math.abs)), "C");
  plot("plot-q", [{x: tmin(), y: q.map(v => v * qsc), color: "#9467bd", dots: true}],
      {title: "charge passed (" + qun + "), per frame", cursor: cur, xmax: xmax, cursorY: rec && rec.charge_c !== undefined && rec.charge_c !== null ? rec.charge_c * qsc : undefined});
  // x (Li fraction) when a frame hook provides it (x_mean), else the MLLS Li weight
  const xm = col("x_mean");
  const isx = xm.some(Number.isFinite);
  if (isx) plot("plot-li", [{x: tmin(), y: xm, color: "#7f8796", dots: true, r: 3, label: "raw"},
                            {x: tmin(), y: col("li_causal_mean"), color: "#1a7f37", label: "causal denoised"}],
      {title: "mean x in LixCoO2 per frame", cursor: cur, cursorY: rec ? rec.li_causal_mean : undefined});
  else plot("plot-li", [{x: tmin(), y: col("li_mean"), color: "#7f8796", dots: true, r: 3, label: "raw"},
                        {x: tmin(), y: col("li_causal_mean"), color: "#1a7f37", label: "causal denoised"}],
      {title: "mean Li weight per frame", cursor: cur, cursorY: rec ? rec.li_causal_mean : undefined});
  plot("plot-flux", [{x: tmin(), y: col("flux_toward_electrolyte"), color: "#d62728", dots: true, r: 3}],
       {title: "Li flux toward the electrolyte, " + (isx ? "x" : "Li weight") + "·nm/s (from the causal window: lags a change of cell state by a frame)",
        cursor: cur, xmin: fr.length ? fr[0].time_s / 60 : undefined, hlines: [{y: 0, color: "#9aa3b5", label: ""}]});
  const chi = col("chi2_mean"), med = chi.filter(Number.isFinite).sort((a, b) => a - b)[Math.floor(chi.filter(Number.isFinite).length / 2)];
  // a reduced χ² should stay near 1: far below, the noise model overrates the noise; far above, the references
  // no longer fit (or it underrates it). Frames outside 0.5-2 or above twice the median are drawn red.
  const off = v => v > 2 * med || v < 0.5 || v > 2;
  plot("plot-chi", [{x: tmin(), y: chi, color: "#444", dots: true, colors: chi.map(v => off(v) ? "#b42318" : "#444")}],
       {title: "mean reduced χ² of the fit (expected ≈ 1)", cursor: cur,
        hlines: [{y: 1, color: "#1a7f37", label: "expected 1", left: true}].concat(med ? [{y: 2 * med, color: "#b42318", label: "2 × median"}] : [])});
  const tl = col("t_over_lambda_mean");
  if (tl.some(Number.isFinite)) {
    const t0 = tl.filter(Number.isFinite)[0];
    plot("plot-pe", [{x: tmin(), y: tl, color: "#8c564b", dots: true}], {title: "mean t/λ per frame", cursor: cur,
         hlines: [{y: 0.9 * t0, color: "#b8860b", label: "−10 %"}]});
    return;
  }
  const pe = col("pre_edge_counts"), base = pe.filter(Number.isFinite).slice(0, 3).sort((a, b) => a - b);
  const b0 = base.length ? base[Math.floor(base.length / 2)] : NaN;
  plot("plot-pe", [{x: tmin(), y: pe.map(v => v / b0), color: "#8c564b", dots: true}],
       {title: "pre-edge counts ÷ first frames (thickness·dose proxy, not t/λ)", cursor: cur,
        hlines: [{y: 0.9, color: "#b8860b", label: "−10 %"}]});
}
async function showFrame(k) {
  const f = await frameMaps(k);
  if (!f) return;
  if (isHolo()) { if (f.maps.potential) await showHoloFrame(k, f); else { shown = k; drawHoloPlots(); } return; }
  shown = k;
  // x in LixCoO2 where a calibration gives it (the movie is then made of x), else the MLLS Li weight
  const isx = !!f.maps.x, isa = !isx && !!f.maps.li_areal;
  const raw = isx ? f.maps.x : (isa ? f.maps.li_areal : f.maps.li), den = f.maps.li_causal || null;
  const qname = isx ? "x in LixCoO2" : (isa ? "Li per zero-loss intensity (areal, uncalibrated)" : "Li weight (MLLS)");
  // one colour scale for both maps, from the newest denoised map (raw noise would wash it out);
  // while a frame waits for denoising, the last denoised frame stays up, labelled as such
  if (den) { scale = [pct(den, 0.01), pct(den, 0.99)]; lastDen = {k: k, arr: den, ny: f.ny, nx: f.nx}; }
  else if (!scale) scale = [pct(raw, 0.01), pct(raw, 0.99)];
  // x is a fraction: its colour scale never goes beyond 0-1 (what lies beyond is counted in the captions)
  if (isx) { scale = [Math.max(0, scale[0]), Math.min(1, scale[1])]; if (!(scale[1] > scale[0])) scale = [0, 1]; }
  const [lo, hi] = scale;
  // the left panel can show any per-frame map (χ², and quantities added by frame hooks, e.g. x)
  const sel = document.getElementById("layer");
  for (const n of Object.keys(f.maps)) if (n !== "li_causal" && n !== (isx ? "x" : (isa ? "li_areal" : "li")) && !Array.from(sel.options).some(o => o.value === n)) {
    const o = document.createElement("option"); o.value = n; o.textContent = n === "chi2" ? "χ² of the fit" : n; sel.appendChild(o);
  }
  const layer = f.maps[sel.value] ? sel.value : "li";
  sel.options[0].textContent = isx ? "x (raw)" : "Li (raw)";
  if (layer === "li") { drawMap("map-raw", raw, f.ny, f.nx, lo, hi); drawCbar("cb-raw", lo, hi, raw); }
  else { const a = f.maps[layer], l2 = pct(a, 0.01), h2 = pct(a, 0.99); drawMap("map-raw", a, f.ny, f.nx, l2, h2); drawCbar("cb-raw", l2, h2, a); }
  document.getElementById("raw-title").textContent = layer === "li" ? (isx ? "x map · raw" : "Li map · raw") : "map";
  document.getElementById("cb-raw-label").textContent = layer === "li" ? qname : (layer === "chi2" ? "χ² per pixel" : layer);
  document.getElementById("cb-den-label").textContent = qname + ", same scale";
  document.getElementById("den-title").textContent = (isx ? "x" : "Li") + " map · causal denoised";
  document.getElementById("cap-raw").textContent = "frame " + k + (isx && layer === "li" ? outside(raw) : "");
  if (lastDen) { drawMap("map-den", lastDen.arr, lastDen.ny, lastDen.nx, lo, hi); drawCbar("cb-den", lo, hi, lastDen.arr); }
  document.getElementById("cap-den").textContent = (den ? "frame " + k + " (window of the last " + (meta.window || "") + " frames)"
      : (lastDen ? "frame " + lastDen.k + " · frame " + k + " is being denoised" : "frame " + k + " is being denoised")) +
      (isx && lastDen ? outside(lastDen.arr) : "");
  const rec = shownRecord(), i = series.frames.findIndex(r => r.frame === k);
  document.getElementById("slider").value = i;
  document.getElementById("framelabel").textContent = rec ? ("frame " + k + " · t = " + (rec.time_s / 60).toFixed(1) + " min" +
      (rec.voltage !== undefined && rec.voltage !== null ? " · " + rec.voltage.toFixed(3) + " V" : "") + (rec.state ? " · " + rec.state : "")) : "";
  document.getElementById("frameinfo").textContent = rec ? ("energy shift " + fmt(rec.energy_shift) + " eV · drift (" +
      fmt(rec.dy) + ", " + fmt(rec.dx) + ") px · mean χ² " + fmt(rec.chi2_mean) + (den ? "" : " · denoising…")) : "";
  document.body.dataset.shown = String(k);
  drawPlots();
}
function setStatus(s) {
  document.getElementById("title").textContent = s.title;
  const ph = document.getElementById("phase"); ph.textContent = s.phase; ph.className = s.phase.split(" ")[0];
  document.getElementById("status").textContent = s.frames ? (s.frames + " frames · newest #" + s.newest +
      " · " + (s.rate_per_min ? s.rate_per_min.toFixed(2) + " frames/min" : "rate –") +
      " · latency " + fmt(s.latency_s) + " s (median " + fmt(s.latency_median_s) + " s)" +
      " · bad frames " + s.bad.length) : "waiting for the first frame…";
  const w = document.getElementById("warnings"); w.innerHTML = "";
  for (const m of Object.values(s.warnings)) { const d = document.createElement("div"); d.className = "warning"; d.textContent = "⚠ " + m; w.appendChild(d); }
  const b = document.getElementById("bad");
  if (s.bad.length) {
    b.innerHTML = ""; const t = document.createElement("table"); b.appendChild(t);
    t.innerHTML = "<tr><th>frame</th><th>file</th><th>reason</th></tr>";
    for (const x of s.bad) { const r = t.insertRow(); r.insertCell().textContent = x.frame; r.insertCell().textContent = x.file || "–"; r.insertCell().textContent = x.reason; }
  } else b.textContent = "none";
  meta = s.meta;
  if (isHolo()) {
    holoLayout();
    const hr = [["holograms", meta.series], ["bias log", meta.log || "– (each file's bias_v)"], ["interval", fmt(meta.frame_interval_s) + " s"],
      ["wave grid", meta.ny ? meta.ny + " × " + meta.nx + " px, " + fmt(meta.pixel_nm) + " nm/px" : "– (plan not made yet)"],
      ["method", meta.method || ""], ["zero-bias holograms", meta.zero_bias_frames ? meta.zero_bias_frames.join(", ") : "–"],
      ["interfaces", meta.interfaces_nm ? meta.interfaces_nm.map(v => fmt(v) + " nm").join(", ") : "–"],
      ["drift", meta.drift || "–"], ["disk free", meta.disk_free_gb ? meta.disk_free_gb.toFixed(1) + " GB" : "–"], ["outputs", meta.out_dir || ""]];
    if (meta.resumed_frames) hr.push(["resumed from cache", meta.resumed_frames + " holograms"]);
    if (s.final && s.final.out_dir) hr.push(["final batch run", "done · " + s.final.out_dir]);
    const t = document.getElementById("stats"); t.innerHTML = "";
    for (const [k, v] of hr) { const r = t.insertRow(); r.insertCell().textContent = k; r.insertCell().textContent = v; }
    return;
  }
  const rows = [["series", meta.series], ["log", meta.log || "–"], ["frame interval", fmt(meta.frame_interval_s) + " s"],
    ["frame size", meta.ny ? meta.ny + " × " + meta.nx + " px × " + meta.n_energy + " channels, " + fmt(meta.pixel_nm) + " " + (meta.pixel_units || "") + "/px" : "–"],
    ["denoising", (meta.denoise || "") + ", causal window " + (meta.window || "") + " frames"],
    ["registration reference", meta.register_reference || ""], ["disk free", meta.disk_free_gb ? meta.disk_free_gb.toFixed(1) + " GB" : "–"],
    ["outputs", meta.out_dir || ""]];
  if (meta.resumed_frames) rows.push(["resumed from cache", meta.resumed_frames + " frames"]);
  if (s.final && s.final.psnr_causal_vs_batch !== undefined) rows.push(["final batch run", "done · causal vs batch PSNR " + fmt(s.final.psnr_causal_vs_batch) + " dB"]);
  const t = document.getElementById("stats"); t.innerHTML = "";
  for (const [k, v] of rows) { const r = t.insertRow(); r.insertCell().textContent = k; r.insertCell().textContent = v; }
}
async function refresh() {
  try {
    const s = await (await fetch(api("/api/status"))).json();
    if (s.version !== version) {
      version = s.version;
      setStatus(s);
      series = await (await fetch(api("/api/series"))).json();
      const n = series.frames.length, sl = document.getElementById("slider");
      sl.max = Math.max(0, n - 1);
      if (n) {
        const newest = series.frames[n - 1].frame;
        if (document.getElementById("follow").checked && !playing) { cache.delete(newest); await showFrame(newest); }
        else drawPlots();
      }
      document.body.dataset.version = String(version);
    }
  } catch (e) { document.getElementById("status").textContent = "dashboard server not reachable (" + e.message + ")"; }
  setTimeout(refresh, 1000);
}
document.getElementById("layer").addEventListener("change", () => { if (shown !== null) showFrame(shown); });
document.getElementById("slider").addEventListener("input", ev => {
  document.getElementById("follow").checked = false;
  const r = series.frames[parseInt(ev.target.value, 10)]; if (r) showFrame(r.frame);
});
document.getElementById("play").addEventListener("click", () => {
  const b = document.getElementById("play");
  if (playing) { clearInterval(playing); playing = null; b.innerHTML = "&#9654; play"; return; }
  document.getElementById("follow").checked = false;
  b.innerHTML = "&#10074;&#10074; pause";
  let i = 0;
  playing = setInterval(() => { const n = series.frames.length; if (!n) return; showFrame(series.frames[i % n].frame); i++; }, 300);
});
refresh();
</script>
</body></html>
"""
