# SPDX-License-Identifier: GPL-3.0-or-later
"""HTML reports: one page with figures embedded (base64), numbers, movies and the viewer.

The page is self-contained for figures and numbers (it opens offline and can
be mailed); movies and the interactive viewer are sibling files it embeds by
relative link, because inlining a video would make the page tens of MB.
"""
from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path

_STYLE = """body{font-family:system-ui,sans-serif;max-width:72em;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
.figs{display:flex;flex-direction:column;gap:1.4em}.figs figure{margin:0;width:100%}
.figs img{display:block;max-width:100%;height:auto;margin:0 auto;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;text-align:center}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
td.num{text-align:right;font-family:monospace}td.unit{color:#555}.bad{color:#b00}
iframe{width:100%;height:560px;border:1px solid #ccc}
video,img.movie{max-width:100%}"""


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "nan" if math.isnan(f) else f"{f:.4g}"
    if isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 160 else text[:157] + "..."


#: Human names and units of the numbers reports show, by key. Keys not listed are shown
#: with their underscores as spaces; a key ending in a unit (``_nm``, ``_s``, ``_ev`` ...)
#: gets that unit. Add entries here rather than formatting names at the call site.
LABELS: dict[str, tuple[str, str]] = {
    "method": ("flux method", ""),
    "x_boundary": ("side edges (x) of the field of view", ""),
    "through_fraction": ("through-film share of the Li flux, Σ|J_y| / Σ(|J_y| + |J_x|)", "1"),
    # {map_unit}: the mapped quantity's unit ("x" once calibrated), from the numbers' own "map_unit"
    "net_toward_electrolyte": ("net Li flux toward the electrolyte", "{map_unit}·nm/s"),
    "rest_activity_mean": ("mean |dLi/dt| at rest", "{map_unit}/s"),
    "map_quantity": ("mapped quantity", ""),
    "map_unit": ("unit of the maps", ""),
    "k": ("calibration k = w_Li/w_Co at x = 1", "1"),
    "k_std": ("σ of k", "1"),
    "thickness_change": ("change of the mean t/λ over the run", "1"),
    "thinning_warning": ("film thins > 5 % (beam damage?)", ""),
    "undefined_pixels": ("pixels where x is undefined (no Co)", ""),
    "thickness_per_frame": ("mean t/λ per frame", "1"),
    "bias_percent": ("bias of the mean", "%"),
    "thickness_leak_percent_per_t": ("thickness leak (slope of the error against t/λ)", "% per unit t/λ"),
    "li_pull_std": ("spread of (estimate − truth)/σ", "1"),
    "mean_chi2": ("mean reduced χ²", "1"),
    "thickness_bias": ("t/λ bias", "1"),
    "thickness_pull_std": ("t/λ spread of (estimate − truth)/σ", "1"),
    "k_calibrated": ("k calibrated on a region of known x", "1"),
    "k_true": ("k of the simulation", "1"),
    "mean_x_error_per_frame_max": ("largest error of a frame's mean x", "1"),
    "rest_to_active_ratio": ("activity at rest / during (dis)charge", "1"),
    "truth_through_fraction_estimate": ("through-film share, estimated", "1"),
    "truth_through_fraction_truth": ("through-film share, simulator truth", "1"),
    "truth_through_fraction_observable": ("through-film share, observable part of the truth", "1"),
    "truth_direction_agreement": ("flux direction agreement with the truth", "1"),
    "truth_cosine": ("cosine similarity of flux to the truth", "1"),
    "truth_cosine_observable": ("cosine similarity to the observable truth", "1"),
    "n_frames": ("frames", ""),
    "bad_frames": ("frames marked bad", ""),
    "seconds": ("time", "s"),
    "stage": ("stage", ""),
    "cached": ("from the cache", ""),
    "resumed batches": ("resumed batches", ""),
    "frame": ("frame", ""),
    "file": ("file", ""),
    "reason": ("reason", ""),
}
_UNIT_SUFFIXES = {"_nm": "nm", "_s": "s", "_ev": "eV", "_v": "V", "_kv": "kV", "_rad": "rad", "_mrad": "mrad",
                  "_px": "px", "_c": "C", "_a": "A", "_db": "dB", "_min": "min", "_percent": "%"}


def human(key: str) -> tuple[str, str]:
    """(name, unit) of a report key: from :data:`LABELS`, else from its spelling.

    Examples
    --------
    >>> human("width_nm"), human("through_fraction")[1], human("spectra_per_s")
    (('width', 'nm'), '1', ('spectra per second', '1/s'))
    """
    if key in LABELS:
        return LABELS[key]
    head, dot, last = key.rpartition(".")
    if dot and last in LABELS:  # a nested key ("route.bias_percent"): the group, then the label
        name, unit = LABELS[last]
        return f"{head.replace('_', ' ')}: {name}", unit
    low = key.lower()
    if low.endswith("_per_s"):  # a rate: "spectra_per_s" is spectra per second, not a time
        return key[:-6].replace("_", " ") + " per second", "1/s"
    for suffix, unit in _UNIT_SUFFIXES.items():
        if low.endswith(suffix) and len(low) > len(suffix):
            return key[: -len(suffix)].replace("_", " "), unit
    return key.replace("_", " "), ""


def _numbers_table(numbers: Mapping[str, Any]) -> str:
    if not numbers:
        return ""
    rows = []
    map_unit = str(numbers.get("map_unit", "map units"))
    for k, v in numbers.items():
        name, unit = human(str(k))
        unit = unit.replace("{map_unit}", map_unit)
        rows.append(f"<tr><th>{html.escape(name)}</th><td class='num'>{html.escape(_fmt(v))}</td>"
                    f"<td class='unit'>{html.escape(unit if unit != '1' else '')}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _figure(path: Path, caption: str) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream")
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img src='data:{mime};base64,{b64}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_html_report(path, *, title: str, sections: Sequence[Mapping[str, Any]], intro: str = "") -> Path:
    """Write one HTML report page (atomically).

    Parameters
    ----------
    path : str or Path
        The ``.html`` to write; relative links are resolved from its folder.
    title : str
    sections : sequence of dict
        Each with ``title`` and optional ``text``, ``numbers`` (mapping),
        ``figures`` (paths of PNG/SVG files, embedded), ``movies`` (paths of
        MP4/GIF files, linked), ``viewer`` (path of a viewer HTML, embedded in
        an iframe), ``table`` (list of dicts, e.g. bad frames).
    intro : str
        A paragraph under the title (plain text).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.html"
    >>> _ = write_html_report(p, title="t", sections=[{"title": "a", "numbers": {"x": 1.5}}])
    >>> "1.5" in p.read_text()
    True
    """
    path = Path(path)
    base = path.parent
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    toc = "".join(f"<li><a href='#s{i}'>{html.escape(s['title'])}</a></li>" for i, s in enumerate(sections))
    parts.append(f"<ul>{toc}</ul>")
    for i, sec in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(sec['title'])}</h2>")
        if sec.get("text"):
            parts.append(f"<p>{html.escape(sec['text'])}</p>")
        if sec.get("error"):
            parts.append(f"<p class='bad'>{html.escape(sec['error'])}</p>")
        parts.append(_numbers_table(sec.get("numbers") or {}))
        if sec.get("table"):
            rows = sec["table"]
            keys = list(rows[0])
            head = "".join("<th>{}</th>".format(html.escape(
                human(k)[0] + (f" ({human(k)[1]})" if human(k)[1] not in ("", "1") else ""))) for k in keys)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k, '')))}</td>" for k in keys) + "</tr>"
                           for r in rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        figs = [Path(f) for f in sec.get("figures", ()) if Path(f).is_file()]
        if figs:
            parts.append("<div class='figs'>" + "".join(_figure(f, f.stem.replace("_", " ")) for f in figs) + "</div>")
        for m in sec.get("movies", ()):
            rel = html.escape(_rel(m, base))
            if str(m).lower().endswith(".mp4"):
                parts.append(f"<p><video controls loop muted src='{rel}'></video><br><a href='{rel}'>{rel}</a></p>")
            else:
                parts.append(f"<p><img class='movie' src='{rel}' alt='movie'><br><a href='{rel}'>{rel}</a></p>")
        if sec.get("viewer"):
            rel = html.escape(_rel(sec["viewer"], base))
            parts.append(f"<p>Interactive viewer (<a href='{rel}'>open on its own</a>):</p>"
                         f"<iframe src='{rel}' title='viewer'></iframe>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def _rel(target, base: Path) -> str:
    target = Path(target)
    try:
        return target.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return target.resolve().as_uri()
