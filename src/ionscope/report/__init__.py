# SPDX-License-Identifier: GPL-3.0-or-later
"""Figures, movies, the offline HTML viewer and HTML reports.

Science modules never import this package; it reads what they produce. Names
are resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "li_movie": "_movie",
    "render_frames": "_movie",
    "write_movie": "_movie",
    "write_viewer": "_viewer",
    "write_html_report": "_html",
    "write_run_report": "_run",
    "save_figure": "_figures",
    "charge_curve": "_figures",
    "mean_li": "_figures",
    "flux_components": "_figures",
    "profiles": "_figures",
    "flux_map": "_figures",
    "rest_activity": "_figures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ionscope.report' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
