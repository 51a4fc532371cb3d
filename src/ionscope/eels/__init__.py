# SPDX-License-Identifier: GPL-3.0-or-later
"""EELS analysis: background, MLLS, SA/SB, multivariate analysis, alignment, line scans.

Main entry points (resolved lazily so that ``import ionscope.eels`` is cheap):

- :func:`mlls` — Poisson-weighted, non-negative MLLS of edge references with a
  per-pixel power-law background; the Li map.
- :func:`remove_background`, :func:`fit_background` — power-law background
  (Poisson ML, least squares, log-linear, exact two-area).
- :func:`sasb`, :func:`sasb_calibration` — the SA/SB two-window Li/Co method.
- :func:`pca`, :func:`nmf`, :func:`phase_map` — multivariate analysis.
- :func:`estimate_shift`, :func:`shift_energy`, :func:`align_energy`,
  :func:`crop`, :func:`rebin` — energy calibration and alignment.
- :func:`li_profile`, :func:`layer_width` — position-resolved TEM-EELS.
- :func:`thickness`, :func:`deconvolve` — low loss: log-ratio t/λ, Fourier-log and
  Fourier-ratio deconvolution with propagated variance (``mlls(...,
  plural_scattering="fourier-log")`` fits real spectra through it).
- :func:`li_fraction` — x in LixCoO2 from the Li and Co maps, with σ.
- :func:`references_from_regions` — references measured on the data.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    "mlls": "_mlls",
    "remove_background": "_background",
    "fit_background": "_background",
    "powerlaw": "_background",
    "sasb": "_sasb",
    "sasb_calibration": "_sasb",
    "sasb_calibration_from_regions": "_sasb",
    "pca": "_mva",
    "nmf": "_mva",
    "phase_map": "_mva",
    "nmf_li": "_nmf_li",
    "estimate_shift": "_align",
    "shift_energy": "_align",
    "align_energy": "_align",
    "crop": "_align",
    "rebin": "_align",
    "li_profile": "_linescan",
    "layer_width": "_linescan",
    "thickness": "_lowloss",
    "deconvolve": "_lowloss",
    "li_fraction": "_fraction",
    "calibration_from_charge": "_fraction",
    "references_from_regions": "_refs",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
