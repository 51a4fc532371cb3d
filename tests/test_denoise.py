# SPDX-License-Identifier: GPL-3.0-or-later
"""sparse_coding: recovers simulator truth, keeps the mean, handles edge cases and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.denoise import noise_level, psnr, sparse_coding, ssim
from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.simulate import limap_movie


@pytest.fixture(scope="module")
def movie5():
    return limap_movie(shape=(48, 48), n_frames=8, counts=5.0, seed=3)


@pytest.fixture(scope="module")
def denoised5(movie5):
    return sparse_coding(movie5[0])


def test_default_gains_psnr_and_ssim_on_simulator(movie5, denoised5):
    noisy, clean = movie5
    # measured ~+13 dB on this 8x48x48 movie; floor +8 dB leaves room for seeds
    assert psnr(denoised5, clean) > psnr(noisy, clean) + 8.0
    assert ssim(denoised5, clean) > ssim(noisy, clean) + 0.3


def test_returns_same_type_dims_and_coords(movie5, denoised5):
    noisy, _ = movie5
    assert denoised5.dims == noisy.dims and denoised5.shape == noisy.shape
    np.testing.assert_array_equal(denoised5.x.values, noisy.x.values)
    assert denoised5.x.attrs.get("units") == "nm"
    out = sparse_coding(noisy.values)
    assert isinstance(out, np.ndarray) and out.shape == noisy.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, denoised5.values, rtol=1e-5, atol=1e-5)


def test_no_bias_in_mean_count(movie5, denoised5):
    noisy, clean = movie5
    # exact unbiased inverse Anscombe: mean within 1 % of the truth's mean (algebraic inverse is ~3 % low)
    assert abs(float(denoised5.mean()) - float(clean.mean())) < 0.01 * float(clean.mean())


def test_dose_20_beats_dose_5(movie5, denoised5):
    noisy20, clean20 = limap_movie(shape=(48, 48), n_frames=8, counts=20.0, seed=3)
    out = sparse_coding(noisy20)
    assert psnr(out, clean20) > psnr(denoised5, movie5[1])


def test_ksvd_method_gains(movie5):
    noisy, clean = movie5
    out = sparse_coding(noisy, method="ksvd", n_atoms=64, sparsity=4)
    assert psnr(out, clean) > psnr(noisy, clean) + 6.0


def test_noise_free_input_nearly_unchanged(movie5):
    _, clean = movie5
    out = sparse_coding(clean)
    # the estimated noise level of the smooth truth is ~0, so it is left (almost) alone
    assert psnr(out, clean) > 45.0


def test_single_map_and_single_frame(movie5):
    noisy, clean = movie5
    frame = sparse_coding(noisy.isel(time=0))
    assert frame.dims == ("y", "x")
    assert psnr(frame, clean.isel(time=0)) > psnr(noisy.isel(time=0), clean.isel(time=0)) + 4.0
    one = sparse_coding(noisy.values[:1])
    assert one.shape == (1, 48, 48)
    np.testing.assert_allclose(one[0], sparse_coding(noisy.values[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (5, 1, 7)])
def test_images_smaller_than_a_patch(shape):
    rng = np.random.default_rng(0)
    x = rng.poisson(5.0, shape).astype(np.float32)
    out = sparse_coding(x)
    assert out.shape == x.shape and np.all(np.isfinite(out)) and np.all(out >= 0)


def test_constant_and_zero_counts_are_returned_exactly():
    for value in (0.0, 7.0):
        x = np.full((4, 16, 16), value, np.float32)
        np.testing.assert_array_equal(sparse_coding(x), x)


def test_gaussian_noise_mode_accepts_negative_values():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:40, 0:40]
    clean = np.tile(np.where(xx > 20, 1.0, -1.0) + 0.3 * np.sin(yy / 5.0), (6, 1, 1))
    noisy = clean + rng.normal(0, 0.5, clean.shape)
    out = sparse_coding(noisy)
    assert psnr(out, clean) > psnr(noisy, clean) + 8.0


def test_noise_level_of_poisson_counts_is_one_after_anscombe(movie5):
    noisy, clean = movie5
    assert noise_level(noisy, poisson=True) == pytest.approx(1.0, abs=0.06)
    assert noise_level(clean, poisson=True) < 0.1


def test_dask_input_stays_lazy(movie5, denoised5):
    noisy, _ = movie5
    lazy = sparse_coding(noisy.chunk({"time": 4}))
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.compute().values, denoised5.values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "bm3d"}, "method must be one of"),
        ({"patch": 1}, "patch must be an integer >= 2"),
        ({"sparsity": 0}, "sparsity must be an integer >= 1"),
        ({"noise": "speckle"}, "noise must be one of"),
        ({"sigma": -1.0}, "sigma must be a finite number"),
        ({"sigma": "high"}, "sigma must be a finite number"),
        ({"passes": 2.5}, "passes must be an integer"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(DataValidationError, match=message):
        sparse_coding(np.ones((4, 8, 8)), **kwargs)


def test_bad_data():
    with pytest.raises(DataValidationError, match="NaN/Inf"):
        sparse_coding(np.full((2, 8, 8), np.nan))
    with pytest.raises(ShapeMismatchError, match=r"\(y, x\) map or a \(time, y, x\) movie"):
        sparse_coding(np.ones(10))
    with pytest.raises(DataValidationError, match="non-negative counts"):
        sparse_coding(-np.ones((2, 8, 8)), noise="poisson")
    import xarray as xr

    with pytest.raises(ShapeMismatchError, match="need dimensions 'y' and 'x'"):
        sparse_coding(xr.DataArray(np.ones((3, 8)), dims=("time", "energy")))
