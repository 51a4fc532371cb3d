# SPDX-License-Identifier: GPL-3.0-or-later
"""Li maps on realistic spectra: zero-loss peak, plural scattering, thickness, honest errors, x.

Every tolerance is stated where it is asserted. Truth comes from
``simulate.operando_eels(physics="realistic")``, whose spectra hold a zero-loss
peak, a plasmon, every order of plural scattering, a Li-K chemical shift and
de-scan — physics the fitting code does not assume.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from ionscope import eels
from ionscope.errors import DataValidationError
from ionscope.simulate import operando_eels, plural_scattering, valence_loss
from ionscope.simulate import _realistic

FIT = (45.0, 85.0)


@pytest.fixture(scope="module")
def clean():
    # noise-free, no chemical shift: what is left is the method's own systematic error
    return operando_eels(shape=(24, 32), n_frames=2, physics="realistic", noise=False, seed=3,
                         li_chemical_shift_ev=0.0)


@pytest.fixture(scope="module")
def clean_shifted():
    return operando_eels(shape=(24, 32), n_frames=2, physics="realistic", noise=False, seed=3)


@pytest.fixture(scope="module")
def noisy():
    return operando_eels(shape=(24, 32), n_frames=2, physics="realistic", dose=1000.0, seed=4)


def _cathode(truth):
    return truth.co.broadcast_like(truth.thickness) > 0.5


# ---------------------------------------------------------------- simulator physics

def test_realistic_spectra_hold_zero_loss_plasmon_and_plural_scattering(clean):
    si, truth, _ = clean
    e = si.energy.values
    assert e[0] < 0 < e[-1] and si.attrs["physics"] == "realistic"
    spec = si.isel(time=0).mean(("y", "x")).values
    assert abs(e[np.argmax(spec)]) < 0.5                        # zero-loss peak near 0 eV (de-scan ≤ 0.3 eV)
    valence = (e > 10) & (e < 40)
    assert 18 < e[valence][np.argmax(spec[valence])] < 26       # the bulk plasmon
    t = truth.thickness.values
    assert 0.25 < t.min() and t.max() < 1.3                     # t/λ 0.3–1.2 by default
    assert truth.thickness.isel(time=-1).mean() < truth.thickness.isel(time=0).mean()  # beam thinning


def test_poisson_sum_matches_log_ratio_thickness_exactly():
    # over a long range, ln(I_t/I0) of the simulated spectrum is the t/λ put in (Egerton §5.1)
    e = np.arange(-10.0, 800.0, 0.1)
    j = plural_scattering(e, i0=np.array([1e6, 1e6]), components=[(np.array([0.3, 1.2]), valence_loss, None)])
    assert np.allclose(np.log(j.sum(axis=1) / 1e6), [0.3, 1.2], rtol=0, atol=2e-3)


def test_truth_weights_are_single_scattering_amounts(clean):
    si, truth, _ = clean
    # x = (w_Li/w_Co)/k holds pixel by pixel in the truth
    w = truth.weights
    x = (w.sel(component="Li") / w.sel(component="Co")) / truth.attrs["k_li_co"]
    assert np.allclose(x.values, truth.x_li.values, rtol=1e-4)


# ---------------------------------------------------------------- thickness

def test_thickness_recovers_t_over_lambda(clean):
    si, truth, _ = clean
    t = eels.thickness(si)
    rel = (t - truth.thickness) / truth.thickness
    # the power-law tail model is the main systematic error: |mean| < 1.5 %, spread < 1 %
    assert abs(float(rel.mean())) < 0.015 and float(rel.std()) < 0.01
    assert t.attrs["method"] == "log-ratio"


def test_thickness_error_bar_is_honest_where_noise_dominates():
    si, truth, _ = operando_eels(shape=(24, 32), n_frames=2, physics="realistic", dose=100.0, seed=5)
    t = eels.thickness(si)
    pull = ((t - truth.thickness) / t.thickness_std).values
    assert 0.8 < np.std(pull) < 1.3


def test_thickness_refuses_spectra_without_zero_loss(clean):
    si, _, _ = clean
    with pytest.raises(DataValidationError, match="zero-loss"):
        eels.thickness(si.sel(energy=slice(30, None)))


# ---------------------------------------------------------------- deconvolution

def test_fourier_log_recovers_the_single_scattering_distribution():
    e = np.arange(-5.0, 102.4, 0.1)
    li = _realistic.LI_SHAPE
    i0 = np.array([2e6])
    comps = [(np.array([0.9]), valence_loss, None), (np.array([0.003]), li, None)]
    j = plural_scattering(e, i0=i0, components=comps, zlp_centre=np.array([0.13]))
    d = eels.deconvolve(j, energy=e)
    from scipy.ndimage import gaussian_filter1d

    truth = gaussian_filter1d(i0[0] * 0.1 * (0.9 * valence_loss(np.maximum(e, 1e-6)) * (e > 0)
                                             + 0.003 * li(e)), d.attrs["resolution_fwhm_ev"] / 2.3548 / 0.1)
    win = (e > 40) & (e < 90)
    # 1 % over the Li-K window, although the zero-loss peak sat at +0.13 eV (aligned by the ratio j/z)
    assert np.max(np.abs(d.ssd.values[0, win] / truth[win] - 1)) < 0.01
    grid = np.arange(0.01, 2000.0, 0.01)
    t_true = 0.9 + 0.003 * np.trapezoid(li(grid), grid)      # the edge adds its area to t/λ
    assert abs(float(d.thickness[0]) / t_true - 1) < 0.015


def test_deconvolved_variance_matches_the_scatter_of_repeated_measurements():
    rng = np.random.default_rng(0)
    e = np.arange(-5.0, 97.4, 0.1)
    comps = [(np.array([0.7]), valence_loss, None)]
    mean = plural_scattering(e, i0=np.array([3e5]), components=comps)[0]
    draws = rng.poisson(np.broadcast_to(mean, (300, e.size))).astype(float)
    d = eels.deconvolve(draws, energy=e)
    win = (e > 45) & (e < 85)
    ratio = d.ssd.values[:, win].var(axis=0) / d.ssd_var.values[:, win].mean(axis=0)
    # 300 draws: the sample variance is known to ~8 %; averaged over the window to ~2 %
    assert 0.9 < float(np.mean(ratio)) < 1.1


def test_fourier_ratio_recovers_edges_from_a_separate_low_loss():
    # Egerton §4.2.2: the background-free core loss divided by the low loss in Fourier space
    li = _realistic.LI_SHAPE
    e_all = np.arange(-5.0, 200.0, 0.1)
    i0 = np.array([2e6])
    val = [(np.array([0.8]), valence_loss, None)]
    full = plural_scattering(e_all, i0=i0, components=val + [(np.array([0.004]), li, None)])[0]
    valence = plural_scattering(e_all, i0=i0, components=val)[0]
    core_sel, low_sel = (e_all >= 40) & (e_all < 140), e_all < 51.2
    edge = (full - valence)[core_sel]                      # what a perfect background removal leaves
    d = eels.deconvolve(edge[None], energy=e_all[core_sel], method="fourier-ratio",
                        low_loss=xr.DataArray(valence[low_sel][None], dims=("x", "energy"),
                                              coords={"energy": e_all[low_sel]}))
    from scipy.ndimage import gaussian_filter1d

    truth = gaussian_filter1d(i0[0] * 0.1 * 0.004 * li(e_all[core_sel]), d.attrs["resolution_fwhm_ev"] / 2.3548 / 0.1)
    win = (e_all[core_sel] > 56) & (e_all[core_sel] < 85)
    assert np.max(np.abs(d.ssd.values[0, win] - truth[win])) < 0.02 * truth.max()
    with pytest.raises(DataValidationError, match="low_loss"):
        eels.deconvolve(edge[None], energy=e_all[core_sel], method="fourier-ratio")


def test_dual_eels_spliced_mlls_matches_truth():
    core, low, truth, _ = operando_eels(shape=(24, 16), n_frames=1, physics="realistic", dual_eels=True,
                                       noise=False, seed=2, li_chemical_shift_ev=0.0)
    maps = eels.mlls(core, truth.references, fit_range=FIT, plural_scattering="fourier-log", low_loss=low,
                     nonnegative=False)
    for name in ("Li", "Co"):
        bias, leak = _stats(maps, truth, name)
        assert abs(bias) < 0.015 and abs(leak) < 0.015, (name, bias, leak)


# ---------------------------------------------------------------- MLLS with plural scattering

def _stats(maps, truth, name="Li"):
    w = truth.weights.sel(component=name)
    est = maps[name]
    mask = _cathode(truth)
    bias = float((est - w).where(mask).mean() / w.where(mask).mean())
    rel = ((est - w) / w.where(mask).mean()).where(mask)
    th = truth.thickness.where(mask)
    ok = np.isfinite(rel.values)
    leak = np.polyfit(th.values[ok], rel.values[ok], 1)[0]
    return bias, leak


def test_fourier_log_mlls_is_unbiased_and_does_not_mirror_thickness(clean):
    si, truth, _ = clean
    maps = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    for name in ("Li", "Co"):
        bias, leak = _stats(maps, truth, name)
        # targets of the issue: |bias| < 1 %, |leak| < 1 % per unit t/λ (noise-free: the method's own error)
        assert abs(bias) < 0.01, (name, bias)
        assert abs(leak) < 0.01, (name, leak)
    assert {"thickness", "zero_loss", "Li_std", "chi2"} <= set(maps.data_vars)
    assert maps.attrs["plural_scattering"] == "fourier-log"


def test_raw_mlls_on_realistic_spectra_fails_and_warns(clean):
    si, truth, _ = clean
    with pytest.warns(UserWarning, match="zero-loss"):
        raw = eels.mlls(si, truth.references, fit_range=FIT, nonnegative=False)
    bias, leak = _stats(raw, truth)
    # why this issue exists: without the low loss the Li map reads thickness
    assert abs(bias) > 0.2 or abs(leak) > 0.2


def test_fourier_log_error_bars_are_honest(noisy):
    si, truth, _ = noisy
    maps = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    for name in ("Li", "Co"):
        pull = ((maps[name] - truth.weights.sel(component=name)) / maps[f"{name}_std"]).values.ravel()
        # 1536 pixels: the spread of a unit-normal pull is known to ±2 %; the chemical shift adds a little
        assert 0.9 < np.std(pull) < 1.1, (name, np.std(pull))
        assert abs(np.mean(pull)) < 0.15
    assert 0.7 < float(maps.chi2.mean()) < 1.3


def test_mean_li_fraction_within_002_of_truth(clean_shifted):
    si, truth, _ = clean_shifted
    maps = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    frac = eels.li_fraction(maps, calibration=truth.attrs["k_li_co"])
    err = (frac.li_fraction - truth.x_li).where(_cathode(truth))
    # with the 0.6 eV Li-K chemical shift and one Li-K reference: mean within 0.02 (issue target)
    assert abs(float(err.mean())) < 0.02


def test_convolve_route_runs_and_is_measured_worse(clean):
    si, truth, _ = clean
    maps = eels.mlls(si.isel(y=slice(0, 8)), truth.references, fit_range=FIT, plural_scattering="convolve",
                     nonnegative=False)
    assert maps.attrs["plural_scattering"] == "convolve"
    assert np.isfinite(maps.Li.values).all()


def test_plural_scattering_needs_a_zero_loss_peak(clean):
    si, truth, _ = clean
    with pytest.raises(DataValidationError, match="zero-loss"):
        eels.mlls(si.sel(energy=slice(30, None)), truth.references.sel(energy=slice(30, None)), fit_range=FIT,
                  plural_scattering="fourier-log")
    with pytest.raises(DataValidationError, match="plural_scattering"):
        eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="magic")


def test_ideal_spectra_without_zero_loss_do_not_warn():
    si, truth, _ = operando_eels(shape=(8, 12), n_frames=1, energy_step=0.5, noise=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eels.mlls(si, truth.references, fit_range=(30, 131))


# ---------------------------------------------------------------- x and references from the data

def test_li_fraction_calibrated_on_a_region_of_known_x(clean_shifted):
    si, truth, _ = clean_shifted
    maps = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    x0 = truth.x_li.isel(time=0)
    region = (x0 > 0.9) & (truth.co > 0.5)
    known = float(x0.where(region).mean())
    frac = eels.li_fraction(maps.isel(time=0), calibration={"region": region, "x": known})
    assert abs(frac.attrs["k"] / truth.attrs["k_li_co"] - 1) < 0.02
    assert "region" in frac.attrs["calibration"]
    with pytest.raises(DataValidationError):
        eels.li_fraction(maps, calibration={"nonsense": 1})


def _rich_poor_references(clean):
    si, truth, _ = clean
    frame = si.isel(time=0)
    x0 = truth.x_li.isel(time=0)
    rich, poor = (x0 > 0.9).values, (x0 < 0.75).values
    comp = {"rich": {"Li": float(x0.where(rich).mean()), "Co": 1.0},
            "poor": {"Li": float(x0.where(poor).mean()), "Co": 1.0}}
    refs = eels.references_from_regions(frame, {"rich": rich, "poor": poor}, comp, fit_range=FIT)
    return si, truth, frame, rich, comp, refs


def test_references_from_regions_recover_the_edge_shapes(clean):
    si, truth, frame, rich, comp, refs = _rich_poor_references(clean)
    assert refs.dims == ("component", "energy") and "resolution_fwhm_ev" in refs.attrs
    assert "references_std" in refs.coords
    with pytest.raises(DataValidationError, match="regions"):
        eels.references_from_regions(frame, {"rich": rich}, comp, fit_range=FIT)


# slow tier (issue 20, third pass; ~6.5 CPU-s, most of it the Li-K shift search the references
# leave open): the fast tier runs the same route — references from a rich and a poor region, mlls with the shift
# measured on the data, x calibrated on the rich region — with tighter tolerances in
# tests/test_eels_chemical_shift.py (x bias ≤ 0.01 on 4×4 blocks, noise-free and at dose 1000)
@pytest.mark.slow
def test_mlls_with_references_from_regions_gives_x(clean):
    si, truth, frame, rich, comp, refs = _rich_poor_references(clean)
    # MLLS with the measured references: the ratio Li/Co, i.e. x up to k, is right
    maps = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    frac = eels.li_fraction(maps, calibration={"region": xr.DataArray(rich, dims=("y", "x")),
                                               "x": comp["rich"]["Li"]})
    err = (frac.li_fraction - truth.x_li).where(_cathode(truth))
    assert abs(float(err.mean())) < 0.03


# ---------------------------------------------------------------- line scans and Co-L with realistic physics

def test_realistic_linescan_li_profile_through_fourier_log():
    from ionscope.simulate import tem_eels_linescan

    data, truth = tem_eels_linescan(physics="realistic", dose=2000.0, seed=1)
    assert data.energy.values[0] < 0 and data.attrs["physics"] == "realistic"
    prof = eels.li_profile(data, references=truth.references, fit_range=(45, 97), plural_scattering="fourier-log")
    el = truth.position > truth.attrs["interface_nm"] + 2
    pull = ((prof.li - truth.li) / prof.li_std).where(el)
    # honest errors along the line; the mean over the electrolyte within 3 σ of the truth
    assert 0.8 < float(pull.std()) < 1.25
    assert abs(float(pull.mean())) * np.sqrt(int(el.sum())) < 3 * float(pull.std()) + 1e-9 or \
        abs(float(pull.mean())) < 0.3


def test_realistic_co_l_has_plasmon_replicas_and_low_loss():
    from ionscope.simulate import co_l_spectrum_image

    ideal, _ = co_l_spectrum_image(shape=(24, 16), physics="ideal", seed=1)
    real, low, truth = co_l_spectrum_image(shape=(24, 16), physics="realistic", dual_eels=True, seed=1)
    assert low.energy.values[0] < 0 < low.energy.values[-1] and low.attrs["exposure_ratio"] == 0.01
    # the dose keeps its meaning (counts at the first channel), within noise
    assert abs(float(real.isel(energy=0).mean()) / float(ideal.isel(energy=0).mean()) - 1) < 0.05
    t = eels.thickness(low)
    # low-loss at 1 % exposure: t/λ per pixel to a few %, unbiased to 2 % of its range
    assert abs(float((t - truth.thickness).mean())) < 0.02
    assert np.corrcoef(t.values.ravel(), truth.thickness.values.ravel())[0, 1] > 0.9


def test_phase_map_with_low_loss_handles_plural_scattering():
    from ionscope.simulate import co_l_spectrum_image

    data, low, truth = co_l_spectrum_image(shape=(48, 32), physics="realistic", dual_eels=True, dose=30000.0,
                                           seed=2)
    plain = eels.phase_map(data, truth.spectra, background=True)
    dual = eels.phase_map(data, truth.spectra, background=True, low_loss=low)
    true = truth.fraction.sel(component="Co3O4")
    err_plain = float(np.abs(plain.fraction.sel(component="Co3O4") - true).mean())
    err = dual.fraction.sel(component="Co3O4") - true
    # high dose: the references convolved with each pixel's low loss leave < 0.015 mean error
    assert abs(float(err.mean())) < 0.015 and float(np.abs(err).mean()) < 0.5 * err_plain
    assert 0.8 < float((err / dual.fraction_std.sel(component="Co3O4")).std()) < 1.3


def test_k_from_the_charge_passed_cross_checks_the_calibration():
    si, truth, _ = operando_eels(shape=(24, 32), n_frames=6, physics="realistic", noise=False, seed=3,
                                 protocol=(("charge", 6),))
    maps = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    cal = eels.calibration_from_charge(maps, truth.charge_c, co_mol=truth.attrs["capacity_mol"],
                                       region=truth.co > 0.5)
    # a pixel mean is not the Co-weighted mean Faraday's law gives: a cross-check to ~10 %, not a standard
    assert abs(cal["k"] / truth.attrs["k_li_co"] - 1) < 0.15
    frac = eels.li_fraction(maps, calibration=cal)
    assert frac.attrs["k"] == cal["k"]
    with pytest.raises(DataValidationError, match="charge"):
        eels.calibration_from_charge(maps, np.zeros(6), co_mol=1e-18)


def test_reference_mismatch_shows_in_chi2_and_warns(noisy):
    si, truth, _ = noisy
    # per pixel the weak edges hide a mismatch in the noise; 8×8-binned spectra (neighbours have
    # nearly the same thickness, so Fourier-log still holds) show a missing component clearly
    binned = si.isel(time=0).coarsen(y=8, x=8).sum()
    with pytest.warns(UserWarning, match="χ²"):
        bad = eels.mlls(binned, truth.references.sel(component=["Li"]), fit_range=FIT,
                        plural_scattering="fourier-log", nonnegative=False)
    good = eels.mlls(binned, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    assert float(bad.chi2.mean()) > 2.0 > 1.5 > float(good.chi2.mean())
