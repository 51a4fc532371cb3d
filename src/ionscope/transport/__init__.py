# SPDX-License-Identifier: GPL-3.0-or-later
"""Where Li goes: the analysis of a (time, y, x) map movie.

- :func:`estimate_shifts`, :func:`apply_shifts` — specimen drift between frames
  (sub-pixel registration) and its correction;
- :func:`sync_frames`, :func:`interval_means` — each frame's share of the
  electrochemistry log (voltage, current, charge, state);
- :func:`analyse` and its kernels — Li flux from the movie (continuity or
  optical flow), toward the electrolyte and in plane, profiles, rest activity.

Plain functions on arrays and calibrated DataArrays; no I/O, no scheduling.
Names are resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    # specimen drift (transport/_register.py)
    "estimate_shifts": "_register",
    "apply_shifts": "_register",
    # frames ↔ electrochemistry log (transport/_sync.py)
    "sync_frames": "_sync",
    "interval_means": "_sync",
    # Li transport (transport/_flux.py)
    "analyse": "_flux",
    "change_maps": "_flux",
    "interface_distance": "_flux",
    "flux_error": "_flux",
    "continuity_flux_kernel": "_flux",
    "optical_flow_kernel": "_flux",
    "block_jackknife": "_stats",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
