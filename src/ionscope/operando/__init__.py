# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando nights, in one place: the names a battery scientist reaches for.

A night of frames → a Li movie synced with the charge curve → Li flux
(``run``), holograms under bias → ΔV per interface (``run_holography``), and
the same live while the microscope writes (``watch``). This package holds no
code: it is the public face of the packages that do the work —
:mod:`ionscope.pipeline` (the runner, configuration, stage tables),
:mod:`ionscope.transport` (drift, sync with the log, Li flux),
:mod:`ionscope.io` (reading a series) and :mod:`ionscope.live` (the live
dashboard). Names are resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    # the runner (ionscope.pipeline)
    "Config": "ionscope.pipeline",
    "load_config": "ionscope.pipeline",
    "from_dict": "ionscope.pipeline",
    "StageCache": "ionscope.pipeline",
    "Stage": "ionscope.pipeline",
    "run_stages": "ionscope.pipeline",
    "run": "ionscope.pipeline",
    "RunResult": "ionscope.pipeline",
    "STAGES": "ionscope.pipeline",
    "TABLE": "ionscope.pipeline",
    "REFERENCE_MODELS": "ionscope.pipeline",
    "run_holography": "_nights",  # with its figures (pipeline.run_holography draws none)
    "HolographyResult": "ionscope.pipeline",
    # where Li goes (ionscope.transport)
    "sync_frames": "ionscope.transport",
    "interval_means": "ionscope.transport",
    "estimate_shifts": "ionscope.transport",
    "apply_shifts": "ionscope.transport",
    "analyse": "ionscope.transport",
    "change_maps": "ionscope.transport",
    "interface_distance": "ionscope.transport",
    "flux_error": "ionscope.transport",
    "continuity_flux_kernel": "ionscope.transport",
    "optical_flow_kernel": "ionscope.transport",
    # reading a series (ionscope.io)
    "read_series": "ionscope.io",
    # live mode (ionscope.live)
    "watch": "ionscope.live",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
