# SPDX-License-Identifier: GPL-3.0-or-later
"""MLLS (``eels/_mlls.py``): the one-pass unweighted path against an independent per-pixel solution,
finiteness checks without a separate pass, out-of-core equality, float32 statistics, and the
non-negativity constraints (per component; where the Li bias at low dose comes from)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls
from scipy.stats import norm

from ionscope import eels
from ionscope.errors import DataValidationError
from ionscope.simulate import operando_eels

FIT = (30.0, 132.3)
EXPONENTS = (2.0, 3.0, 4.0)


@pytest.fixture(scope="module")
def frame():
    """A 24×32 frame at dose 200 (Li noise ≈ 28 % per pixel: many Li weights are clipped at 0)."""
    si, truth, _ = operando_eels(shape=(24, 32), n_frames=1, energy_range=(30.0, 132.4), energy_step=0.1,
                                 dose=200.0, seed=11)
    return si.isel(time=0), truth.isel(time=0)


def _design(energy, references):
    from ionscope.eels._kernels import powerlaw_basis

    ch = (energy >= FIT[0]) & (energy <= FIT[1])
    e = energy[ch]
    return ch, np.column_stack([references.values[:, ch].T, powerlaw_basis(e / e[0], EXPONENTS)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_path_matches_per_pixel_nnls(frame, dtype):
    si, truth = frame
    res = eels.mlls(si.astype(dtype), truth.references, fit_range=FIT, background="basis", weights=None)
    ch, X = _design(si.energy.values, truth.references)
    Y = np.asarray(si.values, np.float64).reshape(-1, si.sizes["energy"])[:, ch]
    N, K = X.shape
    # independent reference: scipy's NNLS on the reference weights, pixel by pixel (the basis
    # columns are free: fit them as ± pairs so that NNLS leaves them unconstrained)
    Xpm = np.column_stack([X, -X[:, 2:]])
    rng = np.random.default_rng(0)
    pick = rng.choice(Y.shape[0], 60, replace=False)
    li, co = res.Li.values.ravel(), res.Co.values.ravel()
    clipped = 0
    for p in pick:
        z, _ = nnls(Xpm, Y[p], maxiter=2000)
        b = np.concatenate([z[:2], z[2:K] - z[K:]])
        np.testing.assert_allclose([li[p], co[p]], b[:2], rtol=1e-7, atol=1e-7 * abs(b[:2]).max())
        mu = X @ b
        rss = np.sum((Y[p] - mu) ** 2)
        floor = 1e-3 * abs(Y[p].mean())
        chi2 = np.sum((Y[p] - mu) ** 2 / np.maximum(mu, floor)) / (N - K)
        # residual statistics: float32 data are summed in float32 (pairwise): ~1e-6
        np.testing.assert_allclose(res.chi2.values.ravel()[p], chi2, rtol=2e-5)
        std = np.sqrt(np.diag(np.linalg.pinv(X.T @ X))[0] * rss / (N - K))
        np.testing.assert_allclose(res.Li_std.values.ravel()[p], std, rtol=2e-5)
        clipped += b[0] == 0
    assert clipped > 0  # the sample really exercises the active-set enumeration
    assert (li >= 0).all() and (co >= 0).all()


def test_fast_path_unconstrained_equals_pseudo_inverse(frame):
    si, truth = frame
    res = eels.mlls(si, truth.references, fit_range=FIT, background="basis", weights=None, nonnegative=False)
    ch, X = _design(si.energy.values, truth.references)
    Y = np.asarray(si.values, np.float64).reshape(-1, si.sizes["energy"])[:, ch]
    b = np.linalg.lstsq(X, Y.T, rcond=None)[0]
    np.testing.assert_allclose(res.Li.values.ravel(), b[0], rtol=1e-9, atol=1e-9 * abs(b[0]).max())
    np.testing.assert_allclose(res.Co.values.ravel(), b[1], rtol=1e-9, atol=1e-9 * abs(b[1]).max())
    assert (res.Li.values < 0).any()


@pytest.mark.parametrize("background,weights", [("basis", None), ("powerlaw", "poisson"), (None, None)])
def test_nonfinite_counts_raise_inside_and_outside_the_window(frame, background, weights):
    si, truth = frame
    kw = dict(fit_range=(40.0, 120.0), background=background, weights=weights)
    for channel in (si.sizes["energy"] // 2, 2):  # inside, then outside the fit window
        bad = si.copy(data=si.values.copy())
        bad[3, 4, channel] = np.inf
        bad[5, 6, channel] = np.nan
        with pytest.raises(DataValidationError, match="si: 2 NaN/Inf value"):
            eels.mlls(bad, truth.references, **kw)


def test_nonfinite_lazy_rows_are_nan_and_others_unchanged(frame):
    si, truth = frame
    bad = si.copy(data=si.values.copy())
    bad[3, 4, 500] = np.nan
    kw = dict(fit_range=FIT, background="basis", weights=None)
    lazy = eels.mlls(bad.chunk({"y": 8}), truth.references, **kw).compute()
    good = eels.mlls(si, truth.references, **kw)
    assert np.isnan(lazy.Li.values[3, 4]) and np.isnan(lazy.chi2.values[3, 4])
    mask = np.ones(lazy.Li.shape, bool)
    mask[3, 4] = False
    for name in ("Li", "Co", "Li_std", "chi2"):
        np.testing.assert_array_equal(lazy[name].values[mask], good[name].values[mask])


def test_zarr_series_out_of_core_equals_in_memory(frame, tmp_path):
    """The benchmark's out-of-core route: Zarr series → lazy mlls → stacked maps → io.save."""
    from ionscope import io

    si, truth, _ = operando_eels(shape=(16, 16), n_frames=3, energy_range=(30.0, 132.4), energy_step=0.1,
                                 dose=200.0, seed=4, out=tmp_path / "series.zarr")
    assert si.chunks is not None
    res = eels.mlls(si, truth.references, fit_range=FIT)
    maps = res[["Li", "Co", "Li_std", "chi2"]].to_dataarray(dim="component").transpose(..., "component")
    assert maps.chunks is not None  # still lazy: nothing was computed yet
    io.save(maps.rename("maps"), tmp_path / "maps.zarr")
    back = io.load(tmp_path / "maps.zarr")
    for t in range(3):
        mem = eels.mlls(si.isel(time=t).compute(), truth.references, fit_range=FIT)
        for name in ("Li", "Co", "Li_std", "chi2"):
            # the same arithmetic per pixel; SIMD sums may round differently with the
            # buffers' alignment (measured ≤ 3e-14 relative)
            np.testing.assert_allclose(back.isel(time=t).sel(component=name).values, mem[name].values,
                                       rtol=1e-12, atol=0)


# ---------------------------------------------------------------- non-negativity at low dose
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
