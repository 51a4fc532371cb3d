# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``report``: one ``report.html`` holding every earlier step's figures and numbers.

Figures are embedded (the page opens offline on its own); the operando step's
movies and interactive viewer are sibling files, shown in place by relative
link. A step's files are those under a folder named after it or whose name
starts with it (``figures/eels_limaps.png`` → ``eels``).
"""
from __future__ import annotations

from pathlib import PurePosixPath

from . import STEPS

_TITLES = {
    "simulate": "Simulated operando experiment (ground truth)",
    "eels": "Li maps from STEM-EELS (MLLS, SA/SB, NMF)",
    "linescan": "Position-resolved TEM-EELS",
    "mva": "Multivariate analysis of Co-L",
    "denoise": "Sparse-coding denoising of the Li-map movie",
    "holography": "Electron holography",
    "operando": "Operando pipeline: Li movie, charge curve, Li flux",
}


def _owner(name: str) -> str | None:
    p = PurePosixPath(name)
    for step in STEPS:
        if p.parts[0] == step or p.stem.startswith(step):
            return step
    return None


def run(ctx) -> None:
    from ..report import write_html_report

    files = sorted(set(ctx.files))
    sections = []
    for step in STEPS:
        if step == "report":
            continue
        mine = [f for f in files if _owner(f) == step]
        numbers = ctx.results.get(step)
        if not mine and not numbers:
            continue
        # one level of nesting: a titled group of rows in the table (report._html.GROUPS)
        sec = {"title": _TITLES.get(step, step), "numbers": dict(numbers or {}),
               "figures": [ctx.out / f for f in mine if f.endswith((".png", ".svg"))],
               "movies": [ctx.out / f for f in mine if f.endswith((".mp4", ".gif"))]}
        viewer = [f for f in mine if f.endswith("viewer.html")]
        if viewer:
            sec["viewer"] = ctx.out / viewer[0]
        sections.append(sec)
    others = [f for f in files if _owner(f) is None and f.endswith((".png", ".svg"))]
    if others:
        sections.append({"title": "Other figures", "figures": [ctx.out / f for f in others]})
    path = ctx.path("report.html")
    write_html_report(path, title="ionscope demo report", sections=sections,
                      intro="Every analysis of ionscope run on one simulated operando experiment with known "
                            "ground truth; numbers compare each result with the truth.")
    ctx.results["report"] = {"sections": len(sections), "figures": sum(len(s.get("figures", [])) for s in sections)}
