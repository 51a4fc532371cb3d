# SPDX-License-Identifier: GPL-3.0-or-later
"""The operando pipeline: a night of frames → a Li movie synced with the charge curve → Li flux.

``ionscope.operando.run(config)`` runs frame screening → energy-drift correction → specimen-drift
registration → Li maps → movie denoising → transport analysis (→ report), each
stage cached in a Zarr group so an interrupted run resumes and a changed late
stage redoes only itself. The building blocks are public too. Names are
resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    # configuration (operando/_config.py)
    "Config": "_config",
    "load_config": "_config",
    "from_dict": "_config",
    # staged, cached execution (operando/_stages.py)
    "StageCache": "_stages",
    # frames ↔ electrochemistry log (operando/_sync.py)
    "sync_frames": "_sync",
    "interval_means": "_sync",
    # specimen drift (operando/_register.py)
    "estimate_shifts": "_register",
    "apply_shifts": "_register",
    # Li transport (operando/_flux.py)
    "analyse": "_flux",
    "change_maps": "_flux",
    "interface_distance": "_flux",
    "flux_error": "_flux",
    "continuity_flux_kernel": "_flux",
    "optical_flow_kernel": "_flux",
    # reading a series (operando/_series.py)
    "read_series": "_series",
    # the whole pipeline (operando/_pipeline.py)
    "run": "_pipeline",
    "RunResult": "_pipeline",
    "STAGES": "_pipeline",
    "TABLE": "_pipeline",
    "REFERENCE_MODELS": "_pipeline",
    # holography under bias: a second stage table on the same runner (operando/_holography.py)
    "run_holography": "_holography",
    "HolographyResult": "_holography",
    # the stage graph (operando/_graph.py)
    "Stage": "_graph",
    "run_stages": "_graph",
    "watch": "_watch",  # live mode (re-exported from live/_watch.py)
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
