# SPDX-License-Identifier: GPL-3.0-or-later
"""EELS extras: energy alignment, PCA/NMF/phase maps, position-resolved line scans (their CLI tests:
tests/test_cli_limap.py, test_cli_linescan.py, test_cli_mva.py; the demo steps: tests/test_demo_steps.py)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope import eels
from ionscope.errors import DataValidationError
from ionscope.simulate import co_l_spectrum_image, edge_references, tem_eels_linescan


# ---------------------------------------------------------------- alignment
def test_zlp_shift_sub_channel_per_pixel():
    rng = np.random.default_rng(0)
    e = np.arange(-5.0, 10.0, 0.05)
    true = rng.uniform(-0.4, 0.4, (6, 7))
    zlp = 1e4 * np.exp(-0.5 * ((e - true[..., None]) / 0.3) ** 2) + 10.0
    si = xr.DataArray(zlp, dims=("y", "x", "energy"), coords={"energy": e})
    shift = eels.estimate_shift(si, window=(-2.0, 2.0))
    assert shift.dims == ("y", "x")
    np.testing.assert_allclose(shift.values, true, atol=2e-3)  # < 1/25 channel
    aligned, s2 = eels.align_energy(si, window=(-2.0, 2.0))
    np.testing.assert_allclose(eels.estimate_shift(aligned, window=(-2.0, 2.0)).values, 0.0, atol=2e-3)


def test_edge_shift_and_band_limited_correction():
    e = np.arange(30.0, 100.0, 0.25)
    refs = edge_references(e)

    def spec(s):
        return 1e3 * ((e - s) / 30.0) ** -3 + 100 * edge_references(e - s).sum("component").values

    shifts = np.array([0.0, 0.13, -0.37, 0.61])
    y = np.stack([spec(s) for s in shifts])
    est = eels.estimate_shift(y, method="edge", reference=y[0], window=(40.0, 90.0), energy=e)
    np.testing.assert_allclose(est, shifts, atol=1e-3)
    back = eels.shift_energy(y, est, energy=e)
    inner = (e > 40) & (e < 90)
    assert np.max(np.abs(back[:, inner] - y[0][inner])) < 2e-3 * y[0][inner].max()
    model = eels.estimate_shift(y, method="model", references=refs, window=(32.0, 98.0), max_shift_ev=1.0,
                                grid_step_ev=0.05, energy=e)
    np.testing.assert_allclose(model, shifts, atol=0.02)


def test_shift_conserves_counts_and_keeps_noise():
    rng = np.random.default_rng(1)
    y = rng.poisson(200.0, (500, 256)).astype(float)
    e = np.arange(256) * 0.1 + 40
    out = eels.shift_energy(y, 0.05 * 3.3, energy=e)
    np.testing.assert_allclose(out.sum(1), y.sum(1), rtol=1e-2)
    # band-limited shift keeps the per-channel variance (linear interpolation would shrink it by ~45 %)
    assert 0.9 < out[:, 20:-20].var() / y[:, 20:-20].var() < 1.1


def test_crop_rebin_and_bad_inputs():
    e = np.arange(30.0, 50.0, 0.1)
    y = np.ones((3, e.size))
    c = eels.crop(xr.DataArray(y, dims=("position", "energy"), coords={"energy": e}), energy_range=(35.0, 40.0))
    assert float(c.energy[0]) >= 35.0 - 1e-9 and float(c.energy[-1]) <= 40.0 + 1e-9
    r = eels.rebin(xr.DataArray(y, dims=("position", "energy"), coords={"energy": e}), factor=4)
    assert r.sizes["energy"] == e.size // 4 and float(r.max()) == 4.0
    with pytest.raises(DataValidationError, match="factor"):
        eels.rebin(y, factor=0, energy=e)
    with pytest.raises(DataValidationError, match="method"):
        eels.estimate_shift(y, method="magic", energy=e)
    with pytest.raises(DataValidationError, match="references"):
        eels.estimate_shift(y, method="model", window=(31.0, 45.0), energy=e)
    with pytest.raises(DataValidationError, match="energy_range"):
        eels.crop(y, energy_range=(100.0, 200.0), energy=e)


# ---------------------------------------------------------------- MVA
@pytest.fixture(scope="module")
def co_l():
    return co_l_spectrum_image(shape=(40, 24), seed=2)


def test_phase_map_recovers_co3o4_fraction_and_layer(co_l):
    data, truth = co_l
    pm = eels.phase_map(data, truth.spectra, background=True)
    d = (pm.fraction - truth.fraction).values
    std = pm.fraction_std.values
    assert abs(d.mean()) < 3 * np.sqrt(np.mean(std**2) / d.size)
    assert 0.85 < np.std(d / std) < 1.3  # covariance between the two weights is neglected
    prof = pm.fraction.sel(component="Co3O4").mean("x")
    lw = eels.layer_width(prof, kind="step", interface=0.0)
    # the layer depth varies by ~5 % along x; the mean profile is compared with the nominal width
    assert abs(lw["width_nm"] - truth.attrs["layer_width_nm"]) < 0.05 * truth.attrs["layer_width_nm"]
    assert abs(lw["amplitude"] + lw["baseline"] - truth.attrs["layer_fraction"]) < 0.05


def test_pca_noise_level_selection(co_l):
    data, _ = co_l
    res = eels.pca(data)
    # background, thickness and the LiCoO2/Co3O4 contrast: signal above the Poisson noise edge
    assert 2 <= res.attrs["n_signal"] <= 3
    assert res.denoised.dims == data.dims
    pure = eels.pca(np.random.default_rng(0).poisson(50.0, (30, 30, 64)).astype(float), energy=np.arange(64.0))
    assert pure.attrs["n_signal"] == 0
    with pytest.raises(DataValidationError, match="n_components"):
        eels.pca(data, n_components=999, max_components=5)


def test_nmf_separates_two_components():
    rng = np.random.default_rng(3)
    e = np.arange(760.0, 810.0, 0.25)
    from ionscope.simulate import co_l_references

    H = co_l_references(e).values
    W = np.stack([np.linspace(0, 400, 30)[:, None].repeat(20, 1), np.full((30, 20), 200.0)], -1)
    counts = rng.poisson(W @ H)
    res = eels.nmf(counts, n_components=2, init_spectra=co_l_references(e), energy=e)
    assert list(res.component.values) == ["LiCoO2", "Co3O4"]
    # maps follow the truth (a scale ambiguity is allowed): correlation per component
    c = np.corrcoef(res.maps.values[..., 0].ravel(), W[..., 0].ravel())[0, 1]
    assert c > 0.9
    # the second component is uniform in truth: its map varies by less than the first's
    assert np.std(res.maps.values[..., 1]) < 0.5 * np.std(res.maps.values[..., 0])
    free = eels.nmf(counts, n_components=2, energy=e)
    assert free.spectra.shape == (2, e.size) and (free.maps.values >= 0).all()
    with pytest.raises(DataValidationError, match="all counts are zero"):
        eels.nmf(np.zeros((4, 4, 10)), n_components=1, energy=np.arange(10.0))


# ---------------------------------------------------------------- line scans
@pytest.fixture(scope="module")
def linescan():
    return tem_eels_linescan(seed=4)


def test_li_profile_and_layer_width(linescan):
    data, truth = linescan
    prof = eels.li_profile(data, references=truth.references)
    li = truth.li.values > 0  # electrolyte side; on Cu the non-negativity clips the noise
    pull = ((prof.li - truth.li) / prof.li_std).values[li]
    assert abs(pull.mean()) < 3 / np.sqrt(pull.size) + 0.1
    assert 0.8 < pull.std() < 1.2
    lw = eels.layer_width(prof)
    assert abs(lw["width_nm"] - truth.attrs["layer_width_nm"]) < max(3 * lw["width_std_nm"], 0.5)
    assert abs(lw["interface_nm"] - truth.attrs["interface_nm"]) < max(3 * lw["interface_std_nm"], 0.5)
    window = eels.li_profile(data)
    assert window.li.dims == ("position",) and np.isfinite(window.li_std).all()


def test_layer_width_bad_inputs():
    with pytest.raises(DataValidationError, match="kind"):
        eels.layer_width(np.ones(20), kind="bump")
    with pytest.raises(DataValidationError, match="≥ 8 points"):
        eels.layer_width(np.ones(4))
