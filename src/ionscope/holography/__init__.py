# SPDX-License-Identifier: GPL-3.0-or-later
"""Electron holography: off-axis and phase-shifting reconstruction, potentials, interface profiles.

Names are resolved lazily (see ``_EXPORTS``) so ``import ionscope.holography``
costs nothing until a function is used. The sign convention shared by every
function is documented in :mod:`ionscope.holography._fourier`.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    "check_bias_options": "_checks",
    "reconstruct": "_fourier",
    "estimate_sideband": "_fringes",
    "fringe_statistics": "_fringes",
    "canonical_carrier": "_fourier",
    "phase_shifting": "_phase_shifting",
    "unwrap_phase": "_potential",
    "interaction_constant": "_potential",
    "to_potential": "_potential",
    "relative_thickness": "_potential",
    "remove_ramp": "_potential",
    "phase_difference": "_potential",
    "bias_difference": "_potential",
    "line_profile": "_profiles",
    "fit_step": "_profiles",
    "fit_steps": "_steps",
    "StepsFit": "_steps",
    "interface_asymmetry": "_profiles",
    "StepFit": "_profiles",
    "bias_series": "_series",
    "vacuum_mask": "_inputs",
    "plan_bias_series": "_plan",
    "BiasPlan": "_plan",
    "StepFitOptions": "_step_fit",
    "bias_frame": "_frame",
    "BiasFrame": "_frame",
    "assemble_bias_series": "_assemble",
    "WaveMaker": "_waves",
    "asymmetry_summary": "_bias_analysis",
    "relaxation_times": "_bias_analysis",
    "leakage_summary": "_bias_analysis",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
