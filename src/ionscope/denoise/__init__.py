# SPDX-License-Identifier: GPL-3.0-or-later
"""Denoising of Li-map movies by sparse coding, with baselines and metrics.

Main entry point: :func:`sparse_coding` (``sparse_coding(movie)`` with no
options gives the best result measured here). Building blocks (batch OMP,
K-SVD, Anscombe transform) and baselines (Gaussian, total variation, PCA of the
spectrum image) are exported for comparison and reuse. Names are resolved
lazily so that ``import ionscope.denoise`` stays cheap.
"""
from __future__ import annotations

from .._lazy import attach

# public name -> private module that defines it
_EXPORTS = {
    "sparse_coding": "_sparse",
    "SparseCodingOptions": "_sparse",
    "batch_omp": "_omp",
    "learn_dictionary": "_dictionary",
    "dct_dictionary": "_dictionary",
    "anscombe": "_poisson",
    "inverse_anscombe": "_poisson",
    "generalized_anscombe": "_poisson",
    "inverse_generalized_anscombe": "_poisson",
    "psnr": "_metrics",
    "ssim": "_metrics",
    "noise_level": "_metrics",
    "gaussian": "_baselines",
    "total_variation": "_baselines",
    "pca_spectrum": "_baselines",
    "super_resolve": "_superres",
    "bicubic_upsample": "_superres",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
