# SPDX-License-Identifier: GPL-3.0-or-later
"""Pieces shared by the offline HTML viewers (the EELS Li-map movie, the holography potential movie).

Both pages are one static file: maps embedded as base64 16-bit integers and
drawn onto a canvas through a 256-colour look-up table, curves as inline SVG,
no network and no external script. What is common lives here, below both
:mod:`ionscope.report` and :mod:`ionscope.operando` (which must not import the
report package): the quantisation, the look-up table, JSON that is safe inside
``<script>``, SI prefixes, the base style sheet and four JavaScript snippets.

The snippets expect, in the page's script: ``D`` (the payload, with ``nx``,
``ny``, ``pixel_nm``, ``x0``, ``y0``, ``lut``, ``lo``, ``hi``, ``label``),
``canvas`` (the ``#map`` canvas, already sized) and elements ``#axes`` (an SVG
over the canvas), ``#cb``, ``#cb-lo``, ``#cb-hi``, ``#cb-label``.
"""
from __future__ import annotations

import base64
import json

import numpy as np

from .errors import DataValidationError


def write_page(path, template: str, *, title: str, payload: dict):
    """Fill ``__TITLE__`` (escaped) and ``__DATA__`` (the payload as script-safe JSON) and write atomically."""
    import html
    from pathlib import Path

    from ._atomic import atomic_path

    page = template.replace("__TITLE__", html.escape(title)).replace("__DATA__", json_for_script(payload))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def quantise(stack, *, lo: float | None = None, hi: float | None = None, what: str = "map",
             empty_ok: bool = False) -> dict:
    """A map stack as base64 little-endian uint16: 0 = no data, 1..65535 = ``lo``..``hi``.

    ``lo``/``hi`` default to the finite min and max (the step is then 1/65534
    of the range); values outside given bounds are clipped to them. ``what``
    names the stack in the error raised when it holds no finite value; with
    ``empty_ok`` such a stack is encoded as all "no data" (range 0..1) instead
    (the live dashboard shows a frame whose map is not computed yet).
    This is the one map encoder of the offline viewers and the live dashboard.

    Examples
    --------
    >>> q = quantise(np.array([[0.0, 1.0, np.nan]]))
    >>> q["lo"], q["hi"], len(q["b64"])
    (0.0, 1.0, 8)
    """
    a = np.asarray(stack, float)
    finite = np.isfinite(a)
    if not finite.any():
        if empty_ok:
            return {"lo": 0.0, "hi": 1.0, "b64": base64.b64encode(np.zeros(a.size, "<u2").tobytes()).decode("ascii")}
        raise DataValidationError(f"viewer: a {what} stack holds no finite value")
    lo = float(a[finite].min()) if lo is None else float(lo)
    hi = float(a[finite].max()) if hi is None else float(hi)
    span = hi - lo if hi > lo else 1.0
    q = np.where(finite, np.round(np.clip((a - lo) / span, 0.0, 1.0) * 65534.0) + 1, 0).astype("<u2")
    return {"lo": lo, "hi": hi, "b64": base64.b64encode(q.tobytes()).decode("ascii")}


def colour_lut_array(cmap: str) -> np.ndarray:
    """(256, 3) uint8 RGB of a matplotlib colour map (matplotlib imported only here)."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))
    return (rgba[:, :3] * 255).round().astype(np.uint8)


def colour_lut(cmap: str) -> list[int]:
    """256 RGB triplets (0-255), flattened, of a matplotlib colour map (for a page's script)."""
    return colour_lut_array(cmap).astype(int).ravel().tolist()


def json_for_script(payload) -> str:
    """JSON safe inside <script>: '</' cannot close the element, and U+2028/9 are escaped too."""
    return (json.dumps(payload).replace("</", "<\\/").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


def si_prefix(values, unit: str) -> tuple[float, str]:
    """(factor, prefixed unit) so that ``values × factor`` reads between 1 and 1000: A → µA, fA ...

    Examples
    --------
    >>> si_prefix([7e-15, -7e-15], "A")
    (1000000000000000.0, 'fA')
    """
    v = np.asarray(values, float)
    peak = float(np.nanmax(np.abs(v))) if v.size and np.isfinite(v).any() else 0.0
    if peak == 0.0:
        return 1.0, unit
    for factor, prefix in _PREFIXES:
        if peak * factor >= 1.0:
            return factor, prefix + unit
    return _PREFIXES[-1][0], _PREFIXES[-1][1] + unit


#: SI prefixes from large to small, (factor, prefix): a value × factor is in the prefixed unit.
_PREFIXES = ((1e-3, "k"), (1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p"), (1e15, "f"), (1e18, "a"))


def charge_prefix(charge, current=None) -> tuple[float, str]:
    """(factor, prefixed unit) of a charge passed: the prefix of the current it was integrated from.

    Q = ∫ I dt: with the current in pA the charge is in pC (pA × s), so a
    charge axis never changes unit while a live run accumulates it (fC → pC)
    and a page never shows the current in one prefix and its charge in
    another. Without a finite, non-zero current: :func:`si_prefix` of the charge.

    Examples
    --------
    >>> charge_prefix([0.0, 4e-12], current=[7e-15, -7e-15])
    (1000000000000000.0, 'fC')
    >>> charge_prefix([0.0, 4e-12])
    (1000000000000.0, 'pC')
    """
    if current is not None:
        c = np.asarray(current, float)
        if c.size and np.isfinite(c).any() and np.nanmax(np.abs(c)) > 0:
            factor, unit = si_prefix(c, "A")
            return factor, unit[:-1] + "C"
    return si_prefix(charge, "C")


#: The style sheet both viewers start from.
VIEWER_CSS = """body{font-family:system-ui,sans-serif;margin:1em;color:#222}
#wrap{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
#mapbox{position:relative;margin:0 0 0 3.6em}
canvas#map{image-rendering:pixelated;border:1px solid #999;cursor:crosshair;display:block}
#axes{position:absolute;left:0;top:0;overflow:visible;pointer-events:none}
#controls{margin:0.8em 0;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
#frame{width:22em}
#readout{font-family:monospace;min-height:1.3em;margin-top:0.4em}
svg text{font-size:11px;fill:#222}
#colorbar{display:flex;align-items:center;gap:0.4em;font-size:12px;margin-top:3.2em}
"""

#: ``decode`` (base64 → Uint16Array), ``el`` (SVG element), ``niceStep`` (1/2/5 tick step), ``fmt`` (tick text).
JS_HELPERS = """const SVGNS = "http://www.w3.org/2000/svg";
function decode(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Uint16Array(bytes.buffer);
}
function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  parent.appendChild(e); return e;
}
function niceStep(span, n) {
  const raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function fmt(v, step) {  // as many decimals as the tick step needs: 3.90, 4.00, 4.10
  const d = step ? Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) : (Number.isInteger(v) ? 0 : 2);
  return (Math.abs(v) < 1e-12 ? 0 : v).toFixed(Math.min(d, 6));
}
"""

#: nm axes around the map canvas (y downward) and a 1/2/5 × 10^n nm scale bar at the lower left.
JS_MAP_AXES = """// ---- map axes (nm, y downward) and scale bar, drawn over the canvas
(function () {
  const ax = document.getElementById("axes"), W = canvas.width, H = canvas.height;
  ax.setAttribute("width", W); ax.setAttribute("height", H);
  const wx = D.nx * D.pixel_nm, wy = D.ny * D.pixel_nm, step = niceStep(Math.max(wx, wy), 5);
  for (let v = Math.ceil(D.x0 / step) * step; v <= D.x0 + wx + 1e-9; v += step) {
    const x = (v - D.x0) / wx * W;
    el("line", {x1: x, x2: x, y1: H, y2: H + 5, stroke: "#444"}, ax);
    el("text", {x: x, y: H + 17, "text-anchor": "middle"}, ax).textContent = fmt(v, step);
  }
  for (let v = Math.ceil(D.y0 / step) * step; v <= D.y0 + wy + 1e-9; v += step) {
    const y = (v - D.y0) / wy * H;
    el("line", {x1: -5, x2: 0, y1: y, y2: y, stroke: "#444"}, ax);
    el("text", {x: -8, y: y + 4, "text-anchor": "end"}, ax).textContent = fmt(v, step);
  }
  el("text", {x: W / 2, y: H + 32, "text-anchor": "middle"}, ax).textContent = "x (nm)";
  el("text", {x: -44, y: H / 2, "text-anchor": "middle", transform: "rotate(-90 -44 " + H / 2 + ")"}, ax)
    .textContent = "y (nm)";
  // scale bar: the largest 1, 2 or 5 × 10^n not longer than a quarter of the width
  const q = wx / 4, pw = Math.pow(10, Math.floor(Math.log10(q)));
  const bar = [5, 2, 1].map(m => m * pw).find(b => b <= q) || pw, bl = bar / wx * W;
  el("rect", {x: 10, y: H - 18, width: bl, height: 5, fill: "white", stroke: "black", "stroke-width": 0.8}, ax);
  const t = el("text", {x: 10 + bl / 2, y: H - 23, "text-anchor": "middle", id: "scalebar"}, ax);
  t.textContent = fmt(bar, bar) + " nm"; t.setAttribute("style", "fill:white;stroke:black;stroke-width:2.5px;paint-order:stroke");
})();
"""

#: The colour bar: the look-up table between ``D.lo`` and ``D.hi``, labelled ``D.label``.
JS_PLAYER = """// ---- frame slider and play button (the page defines frame, timer, slider and draw())
function setFrame(f) { frame = Math.max(0, Math.min(D.nt - 1, f)); slider.value = frame; draw(); }
slider.addEventListener("input", () => setFrame(parseInt(slider.value, 10)));
document.getElementById("play").addEventListener("click", () => {
  const b = document.getElementById("play");
  if (timer) { clearInterval(timer); timer = null; b.innerHTML = "&#9654; play"; return; }
  b.innerHTML = "&#10074;&#10074; pause";
  timer = setInterval(() => setFrame(frame + 1 < D.nt ? frame + 1 : 0), 250);
});
"""

JS_COLOUR_BAR = """// ---- colour bar
(function () {
  const cb = document.getElementById("cb").getContext("2d");
  for (let k = 0; k < 256; k++) { cb.fillStyle = "rgb(" + D.lut[3*k] + "," + D.lut[3*k+1] + "," + D.lut[3*k+2] + ")"; cb.fillRect(k, 0, 1, 12); }
  document.getElementById("cb-lo").textContent = D.lo.toPrecision(3);
  document.getElementById("cb-hi").textContent = D.hi.toPrecision(3);
  document.getElementById("cb-label").textContent = D.label;
})();
// arrows at the colour bar's ends where the map has values beyond them (drawn in the end colours), and
// the share of pixels outside the quantity's physical bounds (D.bounds) written under the bar
function colourBarExtend(below, above, belowBound, aboveBound) {
  const cb = document.getElementById("cb");
  let lo = document.getElementById("cb-under"), hi = document.getElementById("cb-over");
  let note = document.getElementById("cb-note");
  const rgb = k => "rgb(" + D.lut[3 * k] + "," + D.lut[3 * k + 1] + "," + D.lut[3 * k + 2] + ")";
  const mark = (id, k) => { const e = document.createElement("span"); e.id = id; e.style.color = rgb(k);
    e.style.textShadow = "0 0 1px #000, 0 0 1px #000"; return e; };  // a light end colour stays visible on white
  if (!lo) { lo = mark("cb-under", 0); cb.parentNode.insertBefore(lo, cb); }
  if (!hi) { hi = mark("cb-over", 255); cb.parentNode.insertBefore(hi, cb.nextSibling); }
  if (!note) { note = document.createElement("div"); note.id = "cb-note"; note.style.fontSize = "12px";
               document.getElementById("colorbar").insertAdjacentElement("afterend", note); }
  const pc = f => (100 * f < 10 ? (100 * f).toPrecision(2) : (100 * f).toFixed(0)) + " %";
  lo.textContent = below > 0 ? "\u25C0" : ""; lo.title = below > 0 ? pc(below) + " of the pixels below the scale" : "";
  hi.textContent = above > 0 ? "\u25B6" : ""; hi.title = above > 0 ? pc(above) + " of the pixels above the scale" : "";
  const parts = [];
  if (D.bounds && belowBound > 0) parts.push(pc(belowBound) + " < " + D.bounds[0]);
  if (D.bounds && aboveBound > 0) parts.push(pc(aboveBound) + " > " + D.bounds[1]);
  note.textContent = parts.length ? "pixels outside the physical range " + D.bounds[0] + "–" + D.bounds[1] + ": " +
    parts.join(", ") + " (drawn in the end colours)" : "";
}
"""
