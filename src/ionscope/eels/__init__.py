# SPDX-License-Identifier: GPL-3.0-or-later
"""EELS analysis: background, MLLS, SA/SB, multivariate analysis, alignment, line scans.

Main entry points (resolved lazily so that ``import ionscope.eels`` is cheap):

- :func:`mlls` — Poisson-weighted, non-negative MLLS of edge references with a
  per-pixel power-law background; the Li map. :func:`mlls_plan` — the same fit
  prepared once and applied block by block (a per-frame pipeline).
- :func:`remove_background`, :func:`fit_background` — power-law background
  (Poisson ML, least squares, log-linear, exact two-area).
- :func:`sasb`, :func:`sasb_calibration`, :func:`sasb_calibration_from_regions` —
  the SA/SB two-window Li/Co method (``plural_scattering="fourier-log"`` on real
  spectra; calibrated on regions of known x it needs no reference spectra).
- :func:`pca`, :func:`nmf`, :func:`phase_map` — multivariate analysis;
  :func:`nmf_li` — the NMF route to Li amounts and x, with σ.
- :func:`estimate_shift`, :func:`shift_energy`, :func:`align_energy`,
  :func:`crop`, :func:`rebin` — energy calibration and alignment.
- :func:`li_profile`, :func:`layer_width` — position-resolved TEM-EELS.
- :func:`thickness`, :func:`deconvolve` — low loss: log-ratio t/λ, Fourier-log and
  Fourier-ratio deconvolution with propagated variance (``mlls(...,
  plural_scattering="fourier-log")`` fits real spectra through it).
- :func:`li_fraction` — x in LixCoO2 from the Li and Co maps, with σ.
- :func:`implausible_spectra`, :func:`check_counts` — the plausibility rule for
  raw counts every route applies (``implausible="raise"|"mask"``).
- :func:`references_from_regions` — references measured on the data;
  :func:`li_shift_check` — does the Li-K edge move with x (then one Li-K shape is biased)?

Which route when (details and measured numbers: ``docs/eels_routes.md``): on real
spectra (zero-loss peak) every route goes through each spectrum's own zero-loss
peak. MLLS with ``plural_scattering="fourier-log"`` is the reference route (Li
amounts, exact σ); references from a pristine and a charged region handle the
Li-K chemical shift; :func:`nmf_li` gives the least noisy per-pixel x when there
are many pixels; SA/SB is for data without reference spectra (calibrated on
regions) or to reproduce a published SA/SB analysis; :func:`li_profile` /
:func:`layer_width` for position-resolved line scans.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    "mlls": "_mlls",
    # when the references' own noise decides x (eels/_refs_sigma.py; the run warns beyond these)
    "RHO_WARN": "_refs_sigma",
    "X_STD_WARN": "_refs_sigma",
    "mlls_plan": "_mlls_plan",
    "MllsPlan": "_mlls_plan",
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
    "li_shift_check": "_shift_check",
    "implausible_spectra": "_plausible",
    "check_counts": "_plausible",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
