# SPDX-License-Identifier: GPL-3.0-or-later
"""Figures, movies, the offline HTML viewers (EELS and holography) and HTML reports.

Science modules never import this package; it reads what they produce. Names
are resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    "li_movie": "_movie",
    "render_frames": "_movie",
    "write_movie": "_movie",
    "write_viewer": "_viewer",
    "write_html_report": "_html",
    "write_run_report": "_run",
    "operando_report_stage": "_run",
    "save_figure": "_figures",
    "charge_curve": "_figures",
    "mean_li": "_figures",
    "flux_components": "_figures",
    "profiles": "_figures",
    "flux_map": "_figures",
    "rest_activity": "_figures",
    "map_grid": "_maps",
    "plot_map": "_maps",
    # the house style, for every figure ionscope draws (and a user's own, in the same look)
    "colour_scale": "_style",
    "colour_bar": "_style",
    "style": "_style",
    "subplots": "_style",
    "image": "_style",
    "with_sigma": "_style",
    "bounds_of": "_style",
    "quantity_label": "_style",
    "release_figure": "_figures",
    # holography under bias: figures, movie and viewer (written by operando.run_holography's report stage)
    "holo_steps_figure": "_holography",
    "holo_potential_figure": "_holography",
    "holo_movie": "_holography",
    "holography_writers": "_holography",
    "write_holo_viewer": "_holo_viewer",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
