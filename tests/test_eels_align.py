# SPDX-License-Identifier: GPL-3.0-or-later
"""EELS, second round: where the non-negative Li bias comes from, per-component constraints,
the single-precision / padded energy shift, and out-of-core PCA / NMF."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from ionscope import eels
from ionscope.errors import DataValidationError
from ionscope.simulate import operando_eels

FIT = (30.0, 132.3)


@pytest.fixture(scope="module")
def low_dose():
    """One 64×64 frame at the benchmark's dose (200 counts/ch at 55 eV): Li noise ≈ 28 % per pixel."""
    si, truth, _ = operando_eels(shape=(64, 64), n_frames=1, energy_range=(30.0, 132.4), energy_step=0.1,
                                 dose=200.0, seed=11)
    return si.isel(time=0), truth.isel(time=0)


def test_unconstrained_li_is_mean_unbiased_over_many_pixels(low_dose):
    si, truth = low_dose
    true = truth.weights.sel(component="Li").values
    for nonneg in (False, ["Co"]):
        res = eels.mlls(si, truth.references, fit_range=FIT, nonnegative=nonneg)
        err = res.Li.values - true
        # standard error of the mean error from the fit's own per-pixel standard errors
        sem = np.sqrt(np.sum(res.Li_std.values**2)) / err.size
        assert abs(err.mean()) < 3 * sem, (nonneg, err.mean(), sem)
        assert (res.Li.values < 0).any()  # Li really is unconstrained
    assert res.attrs["nonnegative_components"] == "Co" and res.attrs["nonnegative"] == 0
    assert (res.Co.values >= 0).all()


def test_nonnegative_bias_is_the_clipping_of_li_poor_pixels(low_dose):
    si, truth = low_dose
    true = truth.weights.sel(component="Li").values
    res = eels.mlls(si, truth.references, fit_range=FIT)
    free = eels.mlls(si, truth.references, fit_range=FIT, nonnegative=False)
    sd = free.Li_std.values
    err = res.Li.values - true
    # 1. pixels whose Li is far above its noise are never clipped: there NNLS is unbiased (3σ)
    far = true > 4 * sd
    assert far.sum() > 1000
    sem = np.sqrt(np.sum(res.Li_std.values[far] ** 2)) / far.sum()
    assert abs(err[far].mean()) < 3 * sem
    # 2. the mean bias over all pixels is what clipping a Gaussian estimate at zero predicts,
    #    E[max(0, N(μ, σ))] − μ at the true μ (within 40 %: the Co weight absorbs part of it)
    z = true / sd
    predicted = np.mean(sd * norm.pdf(z) + true * norm.cdf(z) - true)
    assert predicted > 0.01 * true.mean()  # this dose really is in the clipping regime
    assert 0.6 * predicted < err.mean() < 1.4 * predicted, (err.mean(), predicted)


def test_nonnegative_bad_values(low_dose):
    si, truth = low_dose
    small = si.isel(y=slice(0, 2), x=slice(0, 2))
    with pytest.raises(DataValidationError, match=r"nonnegative: components \['Mn'\]"):
        eels.mlls(small, truth.references, fit_range=FIT, nonnegative=["Mn"])
    with pytest.raises(DataValidationError, match="nonnegative: expected True, False or a list"):
        eels.mlls(small, truth.references, fit_range=FIT, nonnegative="Li")


@pytest.mark.parametrize("n", [1021, 1024])
def test_shift_float32_and_prime_length(n):
    e = 40.0 + 0.1 * np.arange(n)
    rng = np.random.default_rng(5)
    centre = rng.uniform(70, 100, 40)
    shift = rng.uniform(-1.5, 1.5, 40)  # eV, per spectrum

    def peak(c):
        return 50 + 1e3 * np.exp(-0.5 * ((e - c[:, None]) / 2.0) ** 2)

    y = peak(centre + shift)
    out64 = eels.shift_energy(y, shift, energy=e)
    out32 = eels.shift_energy(y.astype(np.float32), shift, energy=e)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    inner = slice(50, n - 50)  # features at the ends move out of / into the window
    np.testing.assert_allclose(out64[:, inner], peak(centre)[:, inner], atol=1e-6 * 1e3)
    np.testing.assert_allclose(out32, out64, atol=2e-6 * 1e3)


def test_shift_prime_length_keeps_noise_white():
    rng = np.random.default_rng(2)
    y = rng.poisson(400.0, (2000, 1021)).astype(np.float32)
    out = eels.shift_energy(y, 0.37, energy=np.arange(1021) * 0.1 + 30)
    r = out[:, 30:-30] - 400.0
    # band-limited: variance kept (no smoothing) and neighbours stay uncorrelated
    assert abs(r.var() / 400.0 - 1) < 0.01
    assert abs(np.mean(r[:, 1:] * r[:, :-1]) / r.var()) < 0.01


# ---------------------------------------------------------------- out-of-core PCA / NMF
def _co_l_series(seed=3):
    import xarray as xr

    from ionscope.simulate import co_l_references

    rng = np.random.default_rng(seed)
    e = np.arange(760.0, 810.0, 0.25)
    H = co_l_references(e)
    W = np.stack([np.linspace(0, 400, 30)[:, None].repeat(20, 1), np.full((30, 20), 200.0)], -1)
    W = np.stack([W, 1.1 * W, 0.9 * W])  # three frames
    counts = rng.poisson(W @ H.values).astype(float)
    da = xr.DataArray(counts, dims=("time", "y", "x", "energy"),
                      coords={"energy": ("energy", e, {"units": "eV"})})
    return da, H, W


def test_pca_dask_stays_lazy_and_matches_memory():
    da, _, _ = _co_l_series()
    mem = eels.pca(da)
    lazy = eels.pca(da.chunk({"time": 1}))
    assert lazy.denoised.chunks is not None and lazy.scores.chunks is not None
    assert lazy.attrs["n_signal"] == mem.attrs["n_signal"] >= 2
    n = mem.attrs["n_signal"]
    # signal eigenvalues: both randomised SVDs converge on them (rel. 1e-3)
    np.testing.assert_allclose(lazy.eigenvalues.values[:n], mem.eigenvalues.values[:n], rtol=1e-3)
    # loadings up to sign
    for i in range(n):
        c = abs(np.dot(lazy.loadings.values[i], mem.loadings.values[i]))
        assert c > 0.999
    # denoised series: the two differ by far less than the Poisson noise they removed
    diff = lazy.denoised.values - mem.denoised.values
    noise = da.values - mem.denoised.values
    assert np.sqrt(np.mean(diff**2)) < 0.05 * np.sqrt(np.mean(noise**2))


def test_nmf_dask_projects_all_pixels_with_fixed_spectra():
    da, H, W = _co_l_series()
    mem = eels.nmf(da, n_components=2, init_spectra=H)
    lazy = eels.nmf(da.chunk({"time": 1}), n_components=2, init_spectra=H)
    assert lazy.maps.chunks is not None
    # all 1800 pixels < 20 000: the spectra are fitted on the same pixels, identically
    np.testing.assert_allclose(lazy.spectra.values, mem.spectra.values, rtol=1e-12)
    maps = lazy.maps.values
    # the projected maps are the Poisson-ML maps for those spectra: close to the joint fit's
    scale = mem.maps.values.max()
    assert np.abs(maps - mem.maps.values).max() < 0.05 * scale
    assert np.corrcoef(maps[..., 0].ravel(), W[..., 0].ravel())[0, 1] > 0.99
    # fitted on a 300-pixel subsample, projected over all pixels: as good against the truth
    sub = eels.nmf(da.chunk({"time": 1}), n_components=2, init_spectra=H, fit_pixels=300)
    assert np.corrcoef(sub.maps.values[..., 0].ravel(), W[..., 0].ravel())[0, 1] > 0.99
    with pytest.raises(DataValidationError, match="fit_pixels"):
        eels.nmf(da, n_components=2, fit_pixels=1)


def test_cli_limap_nonnegative_option(tmp_path, capsys):
    import xarray as xr

    from ionscope.cli import main
    from ionscope.io import save

    si, truth, _ = operando_eels(shape=(8, 6), n_frames=1, seed=4, dose=20.0)
    save(si, tmp_path / "si.nc")
    save(truth.references, tmp_path / "refs.nc")
    out = tmp_path / "li.zarr"
    assert main(["limap", str(tmp_path / "si.nc"), "--refs", str(tmp_path / "refs.nc"), "--out", str(out),
                 "--nonnegative", "Co"]) == 0
    ds = xr.open_zarr(out, consolidated=False)
    direct = eels.mlls(si, truth.references, fit_range=(float(si.energy[0]), float(si.energy[-1])),
                       nonnegative=["Co"])
    np.testing.assert_allclose(ds.Li.values, direct.Li.values, rtol=1e-10)
    assert main(["limap", str(tmp_path / "si.nc"), "--refs", str(tmp_path / "refs.nc"), "--out", str(out),
                 "--nonnegative", "Mn"]) == 2
    assert "nonnegative: components ['Mn']" in capsys.readouterr().err


def test_fast_path_float32_statistics_match_float64(low_dose):
    si, truth = low_dose
    part = si.isel(y=slice(0, 16))
    kw = dict(fit_range=FIT, background="basis", weights=None)
    r32 = eels.mlls(part, truth.references, **kw)
    r64 = eels.mlls(part.astype(np.float64), truth.references, **kw)
    # coefficients are solved in float64 either way; residual statistics of float32 data
    # are computed in float32 (pairwise sums): equal to a few 1e-6
    np.testing.assert_allclose(r32.Li.values, r64.Li.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r32.Li_std.values, r64.Li_std.values, rtol=1e-5)
    np.testing.assert_allclose(r32.chi2.values, r64.chi2.values, rtol=1e-5)


def test_shift_shapes_and_bad_shift():
    from ionscope.errors import ShapeMismatchError

    e = 40.0 + 0.1 * np.arange(200)
    y = np.exp(-0.5 * ((e - 50.0) / 1.0) ** 2)[None, None, :] * np.ones((3, 4, 1))
    per_row = np.array([[0.1], [0.2], [0.3]])  # (3, 1): one shift per row, broadcast over columns
    out = eels.shift_energy(y, per_row, energy=e)
    full = eels.shift_energy(y, np.broadcast_to(per_row, (3, 4)), energy=e)
    np.testing.assert_array_equal(out, full)
    np.testing.assert_allclose(e[np.argmax(out[2, 0])], 49.7, atol=1e-9)
    with pytest.raises(ShapeMismatchError, match="shift: shape \\(5,\\)"):
        eels.shift_energy(y, np.zeros(5), energy=e)
    with pytest.raises(DataValidationError, match="shift: NaN"):
        eels.shift_energy(y, np.nan, energy=e)
