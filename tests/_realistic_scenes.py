# SPDX-License-Identifier: GPL-3.0-or-later
"""Realistic simulated scenes and their default NMF results, made once per test session and shared READ-ONLY by
tests/test_eels_nmf.py, tests/test_eels_nmf_li_margin.py and tests/test_eels_chemical_shift.py (they simulated the
same scenes and ran the same default fit each: ~25 s of the fast tier at load 7). A test that changes one copies it
first (``si.copy(data=...)``)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def scene(seed):
    """24×32×4 realistic spectra at dose 1000: ``operando_eels(...)`` → ``(si, truth, log)``."""
    from ionscope.simulate import operando_eels

    return operando_eels(shape=(24, 32), n_frames=4, physics="realistic", dose=1000.0, seed=seed)


@functools.lru_cache(maxsize=None)
def clean():
    """24×32×2 noise-free realistic spectra at dose 400, seed 3: ``(si, truth)``."""
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=(24, 32), n_frames=2, physics="realistic", dose=400.0, noise=False, seed=3)
    return si, truth


@functools.lru_cache(maxsize=None)
def nmf_calibrated(seed):
    """The default NMF route (full covariance, Co pooled over time) on :func:`scene` with the true k; the calibration
    only adds x (``li_fraction``): Li, Co, their σ and covariance are those of the uncalibrated call."""
    from ionscope import eels

    si, truth, _ = scene(seed)
    return eels.nmf_li(si, truth.references, calibration=truth.attrs["k_li_co"])


@functools.lru_cache(maxsize=None)
def nmf_clean():
    """The default NMF route on :func:`clean` with the true k."""
    from ionscope import eels

    si, truth = clean()
    return eels.nmf_li(si, truth.references, calibration=truth.attrs["k_li_co"])
