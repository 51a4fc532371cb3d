# SPDX-License-Identifier: GPL-3.0-or-later
"""Physics-based simulator of operando experiments, with ground truth.

Every function is seeded and returns the data *and* the truth. Names are
resolved lazily (see ``_EXPORTS``) so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

# public name → private module that defines it
_EXPORTS = {
    # spectra and references (simulate/_spectra.py)
    "power_law": "_spectra",
    "li_k_edge": "_spectra",
    "co_m_edge": "_spectra",
    "edge_references": "_spectra",
    "co_l_references": "_spectra",
    # low-loss physics: zero-loss peak, valence loss, plural scattering (simulate/_lowloss.py)
    "zero_loss_peak": "_lowloss",
    "valence_loss": "_lowloss",
    "plural_scattering": "_lowloss",
    "realistic_references": "_realistic",
    # Li transport in the cathode film (simulate/_transport.py)
    "li_transport": "_transport",
    # operando STEM-EELS series and Li-map movies (simulate/_operando.py)
    "operando_eels": "_operando",
    "limap_movie": "_operando",
    "acquire": "_acquire",  # the fake microscope (simulate/_acquire.py)
    "Acquisition": "_acquire",  # what acquire returns (ionscope.live.Acquisition points here)
    # position-resolved TEM-EELS and Co-L spectrum images (simulate/_eels_extra.py)
    "tem_eels_linescan": "_eels_extra",
    "co_l_spectrum_image": "_eels_extra",
    # holograms (simulate/_holography.py)
    "hologram": "_holography",
    "phase_shifting_series": "_holography",
    # holograms of a biased cell over time (simulate/_biased.py)
    "biased_holograms": "_biased",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
