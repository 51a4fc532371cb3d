# SPDX-License-Identifier: GPL-3.0-or-later
"""The Fourier-log + GLS kernel's fourth pass (issue 20): the GLS solve by Cholesky, the float64 transforms by ducc0.

:func:`ionscope.eels._plural_jit.gls_cholesky` solves every pixel's normal equations (exact NNLS by
the same enumeration of active sets as :func:`ionscope.eels._solve.nnls_batched`) in one compiled
pass; ``_plural_fast._CHOLESKY = False`` keeps numpy's batched LU. ``_plural_fast._DUCC = False``
keeps the float64 transforms in ``scipy.fft``. On small realistic frames through the per-frame path
(non-negative Co: a quarter to a half of the pixels sit on the constraint) each switch must leave Li
and Co within 1e-5 of the map's RMS and σ, χ² within 1e-5 relative.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.eels import _plural_fast
from ionscope.eels._solve import nnls_batched
from ionscope.pipeline._eels_frame import frame_columns
from test_eels_plural_fast import _col, assert_same_maps, realistic_frame


def _switched(x, plan, monkeypatch, name, **kw):
    new = frame_columns(x, plan=plan, **kw)
    with monkeypatch.context() as m:
        m.setattr(_plural_fast, name, False)
        old = frame_columns(x, plan=plan, **kw)
    return new, old


@pytest.mark.parametrize("seed, dose", [(5, 200.0), (7, 30.0)])
def test_cholesky_gls_equals_the_lu_solve(seed, dose, monkeypatch):
    pytest.importorskip("numba")
    x, plan, _ = realistic_frame(seed, dose)
    new, old = _switched(x, plan, monkeypatch, "_CHOLESKY", drift=(0.3, -0.2))
    assert_same_maps(plan, new, old)
    np.testing.assert_allclose(_col(plan, new, "chi2"), _col(plan, old, "chi2"), rtol=1e-5)
    # the constraint is active on many pixels, and on the same ones
    at_zero = _col(plan, old, "Co") == 0
    assert at_zero.mean() > 0.1
    np.testing.assert_array_equal(_col(plan, new, "Co") == 0, at_zero)


def test_gls_cholesky_equals_numpy_on_random_systems():
    """Random SPD systems, two constrained unknowns (four active sets): the NNLS optimum and ``G⁻¹``'s rows."""
    pytest.importorskip("numba")
    from ionscope.eels import _plural_jit

    rng = np.random.default_rng(0)
    P, K, M = 500, 5, 2
    X = rng.normal(size=(P, 40, K))
    G = np.einsum("pnk,pnl->pkl", X, X)
    b = rng.normal(size=(P, K)) * 10
    iu = np.triu_indices(K)
    cons = np.array([False, True, False, True, False])
    beta, ginv, ok = np.empty((P, K)), np.empty((P, M, K)), np.empty(P, bool)
    _plural_jit.gls_cholesky(G[:, iu[0], iu[1]], iu[0], iu[1], b, M, np.flatnonzero(cons), beta, ginv, ok)
    assert ok.all()
    ref = nnls_batched(G, b, cons)
    unconstrained = np.linalg.solve(G, b[..., None])[..., 0]
    assert (unconstrained[:, cons] < 0).any(axis=1).mean() > 0.5  # most pixels need the enumeration
    np.testing.assert_allclose(beta, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    assert (beta[:, cons] >= 0).all()
    np.testing.assert_allclose(ginv, np.linalg.inv(G)[:, :M], rtol=1e-9, atol=1e-12)
    # a singular system (a zero column) is reported, not solved
    G0 = G[:2].copy()
    G0[:, 2, :] = G0[:, :, 2] = 0.0
    ok0 = np.empty(2, bool)
    _plural_jit.gls_cholesky(G0[:, iu[0], iu[1]], iu[0], iu[1], b[:2], M, np.flatnonzero(cons), beta[:2],
                             ginv[:2], ok0)
    assert not ok0.any()


def test_ducc_transforms_equal_scipy(monkeypatch):
    pytest.importorskip("ducc0")
    from scipy import fft

    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 2048))
    c = fft.rfft(x, axis=1)
    assert _plural_fast._ducc() is not None
    np.testing.assert_allclose(_plural_fast._rfft64(x), c, rtol=0, atol=1e-12 * np.abs(c).max())
    np.testing.assert_allclose(_plural_fast._irfft64(c, 2048), x, rtol=0, atol=1e-13 * np.abs(x).max())
    x_, plan, _ = realistic_frame(5, 200.0)
    new, old = _switched(x_, plan, monkeypatch, "_DUCC")
    assert_same_maps(plan, new, old)


def test_float32_counts_give_the_float64_results_bit_for_bit():
    """The compiled path reads float32 counts as they are (views of whole runs of usable rows, gathered rows
    elsewhere): every value converts exactly, so the outputs equal those of the same counts as float64."""
    pytest.importorskip("numba")
    x, plan, _ = realistic_frame(5, 200.0)
    J = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), np.float32)
    J[[3, 70, 71, 200]] = 0.0  # empty spectra: the blocks' rows are no longer one run
    J[150, 10] = np.nan
    kw = plan.fit.kwargs
    a = _plural_fast.fourier_log_kernel(J, **kw)
    b = _plural_fast.fourier_log_kernel(J.astype(np.float64), **kw)
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[[3, 70, 71, 150, 200]]).all() and np.isfinite(a[:3]).all()


@pytest.mark.parametrize("seed, dose", [(5, 200.0), (7, 30.0)])
def test_direct_zero_loss_sandwich_keeps_sigma_and_the_maps(seed, dose, monkeypatch):
    """The sandwich's zero-loss part summed directly (``_DIRECT_SANDWICH``) moves σ only, by rounding; the
    maps, χ² and the weights do not depend on it."""
    pytest.importorskip("numba")
    x, plan, _ = realistic_frame(seed, dose)
    new, old = _switched(x, plan, monkeypatch, "_DIRECT_SANDWICH", drift=(0.3, -0.2))
    for name in ("Li", "Co", "chi2", "thickness", "zero_loss"):
        np.testing.assert_array_equal(_col(plan, new, name), _col(plan, old, name))
    for name in ("Li_std", "Co_std"):
        np.testing.assert_allclose(_col(plan, new, name), _col(plan, old, name), rtol=1e-6)
