# SPDX-License-Identifier: GPL-3.0-or-later
"""PCA and NMF (``eels/_mva.py``) out of core: a dask-backed series stays lazy and matches the in-memory result."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope import eels
from ionscope.errors import DataValidationError


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
