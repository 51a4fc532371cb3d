# SPDX-License-Identifier: GPL-3.0-or-later
"""Building blocks of ionscope.denoise: batch OMP, K-SVD, Anscombe, metrics, baselines, super-resolution."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.denoise import (
    anscombe,
    batch_omp,
    bicubic_upsample,
    dct_dictionary,
    gaussian,
    inverse_anscombe,
    learn_dictionary,
    pca_spectrum,
    psnr,
    ssim,
    super_resolve,
    total_variation,
)
from ionscope.denoise._omp import omp_reconstruct
from ionscope.denoise._superres import downsample
from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.simulate import limap_movie


def _unit_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_batch_omp_matches_scikit_learn():
    from sklearn.linear_model import orthogonal_mp_gram

    rng = np.random.default_rng(0)
    D = _unit_rows(rng.normal(size=(64, 24)))
    X = rng.normal(size=(300, 24))
    idx, coef = batch_omp(X, D, sparsity=5)
    ours = omp_reconstruct(idx, coef, D)
    ref = orthogonal_mp_gram(D @ D.T, (X @ D.T).T, n_nonzero_coefs=5).T @ D
    np.testing.assert_allclose(ours, ref, atol=1e-8)


def test_batch_omp_recovers_sparse_codes_exactly():
    rng = np.random.default_rng(1)
    D = _unit_rows(rng.normal(size=(80, 40)))
    support = np.array([rng.choice(80, 3, replace=False) for _ in range(200)])
    true = rng.uniform(1, 2, (200, 3)) * rng.choice([-1, 1], (200, 3))
    X = np.einsum("nk,nkf->nf", true, D[support])
    idx, coef = batch_omp(X, D, sparsity=3)
    got = np.zeros((200, 80))
    np.put_along_axis(got, idx, coef, axis=1)
    want = np.zeros((200, 80))
    np.put_along_axis(want, support, true, axis=1)
    np.testing.assert_allclose(got, want, atol=1e-8)


def test_batch_omp_error_constrained_stops_early():
    rng = np.random.default_rng(2)
    D = _unit_rows(rng.normal(size=(50, 20)))
    X = np.vstack([3 * D[4], rng.normal(size=(20,)) * 5])
    idx, _ = batch_omp(X, D, sparsity=10, tol=1e-6)
    assert (idx[0] >= 0).sum() == 1 and idx[0, 0] == 4
    assert (idx[1] >= 0).sum() > 1


def test_batch_omp_bad_input():
    with pytest.raises(DataValidationError, match="must share f"):
        batch_omp(np.ones((3, 5)), np.ones((4, 6)), sparsity=2)
    with pytest.raises(DataValidationError, match="sparsity must be >= 1"):
        batch_omp(np.ones((3, 5)), np.ones((4, 5)), sparsity=0)


def test_ksvd_learns_a_planted_dictionary():
    rng = np.random.default_rng(3)
    d, atoms = 16, 24
    truth = _unit_rows(rng.normal(size=(atoms, d)))
    truth = _unit_rows(truth - truth.mean(axis=1, keepdims=True))
    codes = np.zeros((3000, atoms))
    for row in codes:
        row[rng.choice(atoms, 2, replace=False)] = rng.normal(size=2) * 3
    X = codes @ truth + 0.01 * rng.normal(size=(3000, d))
    init = dct_dictionary((1, 4, 4), atoms)
    D = learn_dictionary(X, n_atoms=atoms, sparsity=2, n_iter=15, init=init)
    # each planted atom is found (|cos| > 0.95) for most atoms (K-SVD is a local method)
    match = np.abs(truth @ D.T).max(axis=1)
    assert np.mean(match > 0.95) > 0.7
    assert np.mean(np.abs(truth @ init.T).max(axis=1) > 0.95) < 0.2


def test_anscombe_exact_inverse_is_unbiased_at_low_counts():
    rng = np.random.default_rng(4)
    for lam in (0.5, 2.0, 5.0, 30.0):
        y = anscombe(rng.poisson(lam, 400_000)).astype(np.float64).mean()
        assert inverse_anscombe(np.array([y]))[0] == pytest.approx(lam, rel=0.01, abs=0.01)
    # the algebraic inverse is biased low at 2 counts
    y2 = anscombe(rng.poisson(2.0, 400_000)).astype(np.float64).mean()
    assert inverse_anscombe(np.array([y2]), exact=False)[0] < 1.9
    assert inverse_anscombe(np.array([0.0]))[0] == 0.0


def test_metrics():
    rng = np.random.default_rng(5)
    a = rng.random((3, 20, 20))
    assert psnr(a, a) == float("inf")
    assert psnr(a + 0.1, a, data_range=1.0) == pytest.approx(20.0)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a + rng.normal(0, 0.3, a.shape), a) < 0.8
    with pytest.raises(ShapeMismatchError, match="differs from truth shape"):
        psnr(a, a[0])
    with pytest.raises(DataValidationError, match="NaN/Inf"):
        psnr(a * np.nan, a)


@pytest.fixture(scope="module")
def movie():
    return limap_movie(shape=(48, 48), n_frames=8, counts=5.0, seed=5)


def test_baselines_gain_and_keep_type(movie):
    noisy, clean = movie
    raw = psnr(noisy, clean)
    g2 = gaussian(noisy, sigma=1.5)
    g3 = gaussian(noisy.values, sigma=1.5, sigma_t=1.5)
    tv = total_variation(noisy, weight=0.6)
    assert g2.dims == noisy.dims and isinstance(g3, np.ndarray)
    assert psnr(g2, clean) > raw + 4 and psnr(g3, clean) > psnr(g2, clean)
    assert psnr(tv, clean) > raw + 6
    # a linear filter keeps the total count
    assert float(g3.mean()) == pytest.approx(float(noisy.mean()), rel=1e-5)


def test_baselines_bad_input():
    with pytest.raises(DataValidationError, match="sigma and sigma_t must be finite"):
        gaussian(np.ones((8, 8)), sigma=-1)
    with pytest.raises(DataValidationError, match="weight must be"):
        total_variation(np.ones((8, 8)), weight=0)
    with pytest.raises(ShapeMismatchError, match=r"\(y, x\) or \(time, y, x\)"):
        gaussian(np.ones(5))


def test_pca_spectrum_recovers_low_rank_spectrum_image():
    rng = np.random.default_rng(6)
    e = np.linspace(0, 1, 60)
    maps = rng.random((2, 24, 24))
    spectra = np.stack([10 * np.exp(-e / 0.3), 5 * np.exp(-((e - 0.5) / 0.05) ** 2)])
    truth = np.einsum("kyx,ke->yxe", maps, spectra) + 1.0
    noisy = rng.poisson(truth).astype(float)
    out = pca_spectrum(noisy)
    assert out.shape == truth.shape
    assert psnr(out, truth) > psnr(noisy, truth) + 8
    assert float(out.sum()) == pytest.approx(float(noisy.sum()), rel=0.01)
    with pytest.raises(DataValidationError, match="n_components"):
        pca_spectrum(noisy, n_components=0)


def test_super_resolution_beats_bicubic(movie):
    _, clean = movie
    hr = clean.values[::4]
    lr = downsample(hr)
    sr = super_resolve(lr, n_atoms=128)
    bic = bicubic_upsample(lr)
    assert sr.shape == hr.shape == bic.shape
    # measured +1.3-1.5 dB on simulator maps; floor 0.5 dB
    assert psnr(sr, hr) > psnr(bic, hr) + 0.5


def test_super_resolution_dataarray_coordinates(movie):
    _, clean = movie
    small = clean.isel(time=0).coarsen(y=2, x=2).mean()
    out = super_resolve(small, n_atoms=64)
    assert out.dims == ("y", "x") and out.shape == (48, 48)
    np.testing.assert_allclose(np.diff(out.x.values), np.diff(clean.x.values)[0])
    np.testing.assert_allclose(out.x.values, clean.x.values)
    with pytest.raises(ShapeMismatchError, match="at least 4x4"):
        super_resolve(np.ones((2, 2)))
    with pytest.raises(DataValidationError, match="sparsity must be"):
        super_resolve(np.ones((8, 8)), sparsity=0)
