# SPDX-License-Identifier: GPL-3.0-or-later
"""Holography: both reconstructions recover simulated truth; sign convention; bad inputs; real Fe needle."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.holography import (bias_difference, estimate_sideband, fit_step, fringe_statistics, interaction_constant,
                                 interface_asymmetry, line_profile, phase_difference, phase_shifting,
                                 reconstruct, relative_thickness, remove_ramp, to_potential, unwrap_phase)
from ionscope.holography._phase_shifting import shifts_rms_error
from ionscope.simulate import hologram, phase_shifting_series

SMALL = dict(shape=(192, 192), width_nm=2.0, seed=3)


def wrapped_rms(wave, truth_phase, region):
    """RMS of the wrapped phase error after removing the constant offset, over ``region``."""
    d = np.angle(np.asarray(wave) * np.exp(-1j * np.asarray(truth_phase)))[region]
    d = np.angle(np.exp(1j * (d - np.angle(np.mean(np.exp(1j * d))))))
    return float(np.sqrt(np.mean(d ** 2)))


def smooth_region(truth, margin_nm=6.0):
    """Pixels far from interfaces, the specimen edge and the image border (aperture-limited zones)."""
    x = truth.x.values[None, :]
    y = truth.y.values[:, None]
    x1, x2 = truth.attrs["interface_x_nm"]
    far = (np.abs(x - x1) > margin_nm) & (np.abs(x - x2) > margin_nm)
    border = (x > 8) & (x < x.max() - 8) & (y > 8) & (y < y.max() - 8)
    return np.broadcast_to(far & border, truth.phase.shape)


# --------------------------------------------------------------------------- constants
def test_interaction_constant_matches_science_values():
    assert interaction_constant(200) == pytest.approx(7.288e-3, rel=2e-4)
    assert interaction_constant(300) == pytest.approx(6.526e-3, rel=2e-4)
    with pytest.raises(DataValidationError, match="voltage_kv"):
        interaction_constant(-5)


# --------------------------------------------------------------------------- Fourier method
@pytest.mark.parametrize("carrier", [(0.1, 0.22), (0.23, -0.08), (-0.1, -0.22), (0.0, 0.25), (0.25, 0.0),
                                     (-0.24, 0.07)])
def test_sign_convention_every_sideband(carrier):
    """Phase equals the simulated phase (positive in the specimen) for q, −q and the estimate."""
    holo, ref, truth = hologram(carrier=carrier, dose=400, **SMALL)
    q = estimate_sideband(ref)
    region = smooth_region(truth)
    for sb in (None, q, (-q[0], -q[1])):
        wave = reconstruct(holo, ref, sideband=sb, full_size=True)
        assert wrapped_rms(wave, truth.phase, region) < 0.12
        # the specimen (MIP) phase is above vacuum: the convention's physical anchor
        ph = np.angle(np.asarray(wave) * np.exp(-1j * np.asarray(truth.phase)))
        inside = np.asarray(unwrap_phase(wave))[truth.thickness_nm.values > 50].mean()
        assert inside - np.asarray(unwrap_phase(wave))[truth.vacuum.values].mean() > 5.0, ph.shape


def test_carrier_estimation_low_dose_4px_fringes():
    # ~4 px fringes, 2 counts/px, contrast 0.15: still found within a tenth of a bin of the truth
    _, ref, truth = hologram(shape=(256, 256), carrier=(0.07, 0.24), contrast=0.15, dose=2, seed=5)
    qy, qx = estimate_sideband(ref)
    assert abs(qy - 0.07) < 0.1 / 256 and abs(qx - 0.24) < 0.1 / 256


def test_reconstruct_recovers_ramp_and_mip_slab_and_step():
    holo, ref, truth = hologram(dose=800, mip_v=(15.0, 15.0), ramp_rad_per_nm=(0.01, -0.02), **SMALL)
    wave = reconstruct(holo, ref, full_size=True)
    assert wrapped_rms(wave, truth.phase, smooth_region(truth)) < 0.08
    ph = unwrap_phase(wave)
    # vacuum away from the image border (the FFT's periodic wrap disturbs the outer ~5 px)
    vac = truth.vacuum.values & (truth.y.values[:, None] < 13) & (truth.y.values[:, None] > 3) \
        & (np.abs(truth.x.values[None, :] - 48) < 40)
    flat = remove_ramp(ph, mask=vac)
    # the ramp is gone from vacuum; the MIP slab phase C_E·V·t is recovered inside the specimen
    assert float(np.median(np.abs(flat.values[vac]))) < 0.05
    thick = smooth_region(truth) & (truth.thickness_nm.values > 59)
    # a plane fitted over vacuum removes the whole ramp, leaving C_E·t·V (slab MIP + steps)
    expect = interaction_constant(200) * truth.thickness_nm.values * truth.potential.values
    err = flat.values[thick] - expect[thick]
    assert abs(np.median(err)) < 0.1


def test_cropped_output_same_phase_as_full():
    holo, ref, truth = hologram(dose=500, **SMALL)
    full = reconstruct(holo, ref, full_size=True)
    crop = reconstruct(holo, ref)
    assert crop.sizes["y"] < full.sizes["y"] and crop.dtype == np.complex64
    # same field of view: calibrated coordinates span the image
    assert float(crop.x[0]) == pytest.approx(float(full.x[0]))
    on_crop = full.interp(y=crop.y, x=crop.x, method="nearest")
    region = smooth_region(truth.interp(y=crop.y, x=crop.x, method="nearest"))
    assert wrapped_rms(crop, np.angle(on_crop), region) < 0.1


def test_plain_numpy_in_numpy_out_and_stack_out_of_core():
    holo, ref, truth = hologram(dose=300, **SMALL)
    w_np = reconstruct(holo.values, ref.values)
    assert isinstance(w_np, np.ndarray)
    w_da = reconstruct(holo, ref)
    np.testing.assert_allclose(w_np, w_da.values, atol=1e-5)
    stack = xr.concat([holo, holo * 1.0, holo], dim="frame").chunk({"frame": 1})
    lazy = reconstruct(stack, ref)
    assert lazy.chunks is not None and lazy.dims == ("frame", "y", "x")
    np.testing.assert_allclose(lazy.isel(frame=1).values, w_da.values, atol=1e-5)


def test_stacked_references_time_series_and_flip_sign():
    frames = [hologram(dose=300, bias_v=b, **SMALL) for b in (0.0, 1.0)]
    holo = xr.concat([f[0] for f in frames], dim="time")
    refs = xr.concat([f[1] for f in frames], dim="time")
    eager = reconstruct(holo, refs)
    lazy = reconstruct(holo.chunk({"time": 1}), refs.chunk({"time": 1}))
    assert eager.dims == ("time", "y", "x") and lazy.chunks is not None
    np.testing.assert_allclose(lazy.values, eager.values, atol=1e-5)
    for k, (_, _, truth) in enumerate(frames):
        single = reconstruct(frames[k][0], frames[k][1])
        np.testing.assert_allclose(eager.isel(time=k).values, single.values, atol=1e-5)
    flipped = reconstruct(frames[0][0], frames[0][1], flip_sign=True)
    np.testing.assert_allclose(flipped.values, np.conj(eager.isel(time=0).values), atol=1e-6)


def test_fringe_statistics_contrast_and_spacing():
    holo, ref, truth = hologram(shape=(256, 256), contrast=0.25, dose=50, carrier=(0.05, 0.2), seed=2)
    st = fringe_statistics(ref)
    assert st["contrast"] == pytest.approx(0.25, abs=0.02)
    assert st["spacing_px"] == pytest.approx(1 / np.hypot(0.05, 0.2), rel=0.01)
    assert st["spacing_nm"] == pytest.approx(0.5 * st["spacing_px"], rel=1e-6)


def test_reconstruct_rejects_bad_inputs():
    holo, ref, _ = hologram(shape=(128, 128), seed=0)
    noise = np.random.default_rng(0).poisson(50, (128, 128)).astype(float)
    with pytest.raises(DataValidationError, match="no fringes"):
        reconstruct(noise)
    # a specimen edge and a particle in a plain image: strong, but streaks and blobs, not a sideband
    edge = np.full((128, 128), 100.0)
    edge[:, 70:] = 60.0
    edge[50:70, 20:40] = 150.0
    with pytest.raises(DataValidationError, match="no fringes"):
        estimate_sideband(np.random.default_rng(1).poisson(edge).astype(float))
    with pytest.raises(ShapeMismatchError, match="reference"):
        reconstruct(holo, ref.values[:100])
    with pytest.raises(DataValidationError, match="sideband"):
        reconstruct(holo, ref, sideband=(0.7, 0.1))
    with pytest.raises(DataValidationError, match="aperture"):
        reconstruct(holo, ref, aperture=0.5)
    bad = holo.values.copy()
    bad[3, 3] = np.nan
    with pytest.raises(DataValidationError, match="NaN"):
        reconstruct(bad, sideband=(0.1, 0.22))


# --------------------------------------------------------------------------- phase shifting
def test_phase_shifting_recovers_shifts_and_phase():
    holos, refs, truth = phase_shifting_series(n=8, dose=100, **SMALL)
    wave, est = phase_shifting(holos, references=refs)
    # shift estimates: the target is 0.01 rad RMS at 100 counts/px/frame
    assert shifts_rms_error(est["shift"], truth["shift"]) < 0.01
    assert shifts_rms_error(est["reference_shift"], truth["reference_shift"]) < 0.01
    # the reported uncertainty is honest (within a factor ~3 of the actual error scale)
    assert 0.0005 < float(est["uncertainty"].mean()) < 0.01
    region = smooth_region(truth, margin_nm=2.0)
    assert wrapped_rms(wave, truth.phase, region) < 0.35  # per-pixel noise at full resolution
    # averaging 5×5 px leaves only the recovered signal
    err = np.exp(1j * (np.angle(wave.values) - truth.phase.values))
    from scipy.ndimage import uniform_filter

    sm = uniform_filter(err.real, 5) + 1j * uniform_filter(err.imag, 5)
    d = np.angle(sm * np.conj(np.mean(sm[region])))[region]
    assert np.sqrt(np.mean(d ** 2)) < 0.08


def test_phase_shifting_vacuum_mask_and_time_dim():
    holos, refs, truth = phase_shifting_series(n=6, dose=100, **SMALL)
    vac = truth.vacuum.values
    wave, est = phase_shifting(holos.rename(frame="time"), references=refs.rename(frame="time"), mask=vac)
    assert est["shift"].dims == ("time",)
    assert shifts_rms_error(est["shift"], truth["shift"]) < 0.01
    # per-pixel noise ∝ 1/√N: 0.35 rad at N = 8 becomes ~0.40 rad at N = 6
    assert wrapped_rms(wave, truth.phase, smooth_region(truth, margin_nm=2.0)) < 0.42


def test_phase_shifting_numpy_and_dask_agree():
    holos, refs, truth = phase_shifting_series(n=5, shape=(96, 96), dose=200, seed=4)
    w_np, est_np = phase_shifting(holos.values, references=refs.values)
    assert isinstance(w_np, np.ndarray) and set(est_np) >= {"shift", "uncertainty"}
    w_lazy, est_lazy = phase_shifting(holos.chunk({"y": 32}), references=refs.chunk({"y": 32}))
    assert w_lazy.chunks is not None
    np.testing.assert_allclose(w_lazy.values, w_np, atol=1e-4)
    np.testing.assert_allclose(est_lazy["shift"].values, est_np["shift"], atol=1e-6)


def test_phase_shifting_known_shifts_and_sign_matches_fourier():
    holos, refs, truth = phase_shifting_series(n=6, dose=None, carrier=(-0.2, 0.1), **SMALL)
    wave, est = phase_shifting(holos, references=refs, shifts=truth["shift"].values,
                               reference_shifts=truth["reference_shift"].values)
    # noiseless and exact shifts: the per-pixel solve is exact up to the constant offset
    region = smooth_region(truth, margin_nm=0.0)
    assert wrapped_rms(wave, truth.phase, region) < 1e-3
    assert np.all(est["uncertainty"].values == 0)


def test_phase_shifting_rejects_bad_inputs():
    holos, refs, truth = phase_shifting_series(n=4, shape=(64, 64), seed=1)
    with pytest.raises(DataValidationError, match="N ≥ 3"):
        phase_shifting(holos.isel(frame=slice(0, 2)))
    with pytest.raises(ShapeMismatchError, match="series"):
        phase_shifting(holos.isel(frame=0))
    with pytest.raises(ShapeMismatchError, match="references"):
        phase_shifting(holos, references=refs.isel(y=slice(0, 60)))
    with pytest.raises(DataValidationError, match="degenerate"):
        phase_shifting(holos, shifts=[0.0, np.pi, 0.0, np.pi])
    # frames all with the same fringe phase: the estimated series is degenerate
    same = xr.concat([holos.isel(frame=0)] * 4, dim="frame")
    with pytest.raises(DataValidationError, match="degenerate"):
        phase_shifting(same)
    with pytest.raises(ShapeMismatchError, match="shifts"):
        phase_shifting(holos, shifts=[0.0, 1.0, 2.0])


# --------------------------------------------------------------------------- potential, thickness, profiles
def test_potential_step_from_both_methods_and_widths():
    kw = dict(SMALL, mip_v=(15.0, 15.0))
    holo, ref, truth = hologram(dose=800, **kw)
    holos, refs, _ = phase_shifting_series(n=8, dose=100, **kw)
    x1 = truth.attrs["interface_x_nm"][0]
    vac = truth.vacuum.values & (truth.y.values[:, None] < 18)
    fits = {}
    for name, wave in (("fourier", reconstruct(holo, ref, full_size=True)),
                       ("ps", phase_shifting(holos, references=refs)[0])):
        v = to_potential(remove_ramp(unwrap_phase(wave), mask=vac), voltage_kv=200, thickness_nm=60.0)
        prof = line_profile(v, start=(70.0, x1 - 15), end=(70.0, x1 + 15), width=20.0)
        fits[name] = fit_step(prof, model="erf")
        assert fits[name].step == pytest.approx(1.3, rel=0.04)
        assert fits[name].step_err < 0.05
    # phase shifting keeps the full bandwidth: its step is sharper than the aperture-limited one
    assert fits["ps"].width == pytest.approx(2.0, abs=0.5)
    assert fits["ps"].width < fits["fourier"].width


def test_bias_difference_cancels_mip_and_gives_asymmetry():
    kw = dict(SMALL, dose=None, leakage_rad_per_v=0.0)
    h0, r0, t0 = hologram(bias_v=0.0, **kw)
    h1, r1, t1 = hologram(bias_v=1.0, **kw)
    dphi = phase_difference(reconstruct(h1, r1, full_size=True), reconstruct(h0, r0, full_size=True))
    dv = to_potential(dphi - float(dphi.values[t0.vacuum.values].mean()), voltage_kv=200, thickness_nm=60.0)
    x1, x2 = t0.attrs["interface_x_nm"]
    prof = line_profile(dv, start=(70.0, 5.0), end=(70.0, 90.0), width=10.0)
    left = fit_step(prof, center=x1, window=12.0)
    right = fit_step(prof, center=x2, window=12.0, model="tanh")
    assert left.step == pytest.approx(0.5, abs=0.03) and right.step == pytest.approx(0.5, abs=0.03)
    asym = interface_asymmetry(left, right)
    assert abs(asym["asymmetry"]) < 0.05 and asym["asymmetry_err"] >= 0


def test_relative_thickness_from_amplitude():
    # equal MIPs: no sharp phase step whose aperture ringing would modulate the amplitude
    holo, ref, truth = hologram(dose=None, mip_v=(15.0, 15.0), **SMALL)
    wave = reconstruct(holo, ref, full_size=True)
    t = relative_thickness(wave)
    region = smooth_region(truth) & (truth.thickness_nm.values > 59)
    assert float(np.median(np.abs(t.values[region] - truth.t_over_lambda.values[region]))) < 0.03
    t2 = relative_thickness(np.abs(wave.values) * 0.8, vacuum=truth.vacuum.values)
    assert float(np.median(np.abs(t2[region] - truth.t_over_lambda.values[region]))) < 0.03


def test_profile_and_potential_bad_inputs():
    img = np.zeros((32, 32))
    with pytest.raises(DataValidationError, match="outside"):
        line_profile(img, start=(0, 0), end=(0, 50))
    with pytest.raises(DataValidationError, match="complex"):
        to_potential(np.ones((4, 4), complex), voltage_kv=200, thickness_nm=10)
    with pytest.raises(DataValidationError, match="thickness_nm"):
        to_potential(img, voltage_kv=200, thickness_nm=0)
    with pytest.raises(ShapeMismatchError, match="mask"):
        remove_ramp(img, mask=np.ones((8, 8), bool))
    with pytest.raises(DataValidationError, match="model"):
        fit_step(np.arange(10.0), model="sigmoid")
    with pytest.raises(DataValidationError, match="at least 6"):
        fit_step(np.arange(4.0))


def test_simulator_truth_consistent():
    holo, ref, truth = hologram(shape=(64, 64), bias_v=0.4, seed=0)
    assert truth.attrs["step_left_v"] == pytest.approx(1.3 + 0.2)
    assert truth.attrs["step_right_v"] == pytest.approx(0.2 - 1.3)
    assert float(holo.values[truth.vacuum.values].mean()) == pytest.approx(200, rel=0.05)
    with pytest.raises(DataValidationError, match="contrast"):
        hologram(contrast=1.5)
    with pytest.raises(DataValidationError, match="n:"):
        phase_shifting_series(n=2)


# --------------------------------------------------------------------------- real Fe-needle pair
def test_real_fe_needle(real_file):
    from ionscope.io import load

    holo = load(real_file("01_holo_Vbp_130V_0V_bin2_crop.hdf5"), reader="HSPY")
    ref = load(real_file("00_ref_Vbp_130V_0V_bin2_crop.hdf5"), reader="HSPY")
    qy, qx = estimate_sideband(ref)
    # the carrier of this pair: ~3.9 px fringes, sideband at bins (−122, 58) of 512
    assert qy == pytest.approx(-0.238, abs=0.003) and qx == pytest.approx(0.113, abs=0.003)
    wave = reconstruct(holo, ref)
    assert wave.attrs["beam_energy_kv"] == 300.0
    phase = unwrap_phase(wave)
    span = float(np.percentile(phase, 99) - np.percentile(phase, 1))
    # the needle's MIP and magnetic stray-field phase span tens of radians (~58 rad measured)
    assert 20.0 < span < 100.0
    st = fringe_statistics(ref)
    assert 0.05 < st["contrast"] < 0.6


# --------------------------------------------------------------------------- image drift (phase shifting)
def test_phase_shifting_corrects_image_drift():
    holos, refs, truth = phase_shifting_series(n=8, dose=100, image_drift_px=(2.0, -3.0), image_jitter_px=0.5,
                                               **SMALL)
    assert float(truth["drift_x"][-1]) != 0.0 and float(truth["drift_y"][0]) == 0.0
    wave, est = phase_shifting(holos, references=refs)
    # drift recovered to ~0.1 px (about 2× the reported 1σ of ~0.03–0.07 px) at 100 counts/px/frame
    for ax in ("drift_y", "drift_x"):
        err = est[ax].values - truth[ax].values
        assert np.sqrt(np.mean(err ** 2)) < 0.2
        assert np.all(est[f"{ax}_uncertainty"].values < 0.15)
    # the fringe shifts on the detector are recovered as without drift
    assert shifts_rms_error(est["shift"], truth["shift"]) < 0.01
    # without registration the drift's 2π q·d corrupts the shifts and the step
    _, raw = phase_shifting(holos, references=refs, register=False)
    assert shifts_rms_error(raw["shift"], truth["shift"]) > 0.03
    assert np.all(raw["drift_x"].values == 0)
    b = wave.attrs["drift_border_px"]
    assert 3 <= b <= 6


def test_phase_shifting_step_with_drift():
    kw = dict(SMALL, mip_v=(15.0, 15.0))
    holos, refs, truth = phase_shifting_series(n=8, dose=100, image_drift_px=(0.0, 4.0), **kw)
    x1 = truth.attrs["interface_x_nm"][0]
    vac = truth.vacuum.values & (truth.y.values[:, None] < 18) & (truth.y.values[:, None] > 3)
    fits = {}
    for reg in (True, False):
        wave, _ = phase_shifting(holos, references=refs, register=reg)
        v = to_potential(remove_ramp(unwrap_phase(wave), mask=vac), voltage_kv=200, thickness_nm=60.0)
        fits[reg] = fit_step(line_profile(v, start=(70.0, x1 - 15), end=(70.0, x1 + 15), width=20.0))
    # registered: the 1.3 V step and its 2 nm width as without drift (frame 0's position)
    assert fits[True].step == pytest.approx(1.3, rel=0.04)
    assert fits[True].width == pytest.approx(2.0, abs=0.5)
    assert fits[True].center == pytest.approx(15.0, abs=0.25)  # distance along the line from x1 − 15
    # unregistered: a 4 px (2 nm) drift smears the step
    assert fits[False].width > fits[True].width + 0.5


def test_phase_shifting_vacuum_series_not_registered():
    _, refs, _ = phase_shifting_series(n=5, shape=(96, 96), dose=100, seed=2)
    with pytest.warns(UserWarning, match="not measurable"):
        _, est = phase_shifting(refs)
    assert np.all(est["drift_x"].values == 0) and np.all(est["drift_y"].values == 0)
    with pytest.raises(DataValidationError, match="register"):
        phase_shifting(refs, register="yes")
    with pytest.raises(DataValidationError, match="image_drift_px"):
        phase_shifting_series(n=4, shape=(64, 64), image_drift_px=(1.0, np.nan))


def test_fringe_statistics_per_frame_of_stacks():
    frames = [hologram(shape=(128, 128), contrast=c, dose=100, carrier=(0.05, 0.2 + 0.01 * k), seed=k)[1]
              for k, c in enumerate((0.2, 0.3, 0.4))]
    stack = xr.concat(frames, dim="time").assign_coords(time=("time", [0.0, 1.0, 2.0], {"units": "s"}))
    ds = fringe_statistics(stack.chunk({"time": 1}))
    assert ds["contrast"].dims == ("time",) and float(ds.time[2]) == 2.0
    np.testing.assert_allclose(ds["contrast"].values, [0.2, 0.3, 0.4], atol=0.03)
    np.testing.assert_allclose(ds["carrier_qx"].values, [0.2, 0.21, 0.22], atol=0.002)
    # each frame's numbers are those of the 2-D call; numpy in, dict of arrays out
    single = fringe_statistics(frames[1])
    assert float(ds["spacing_px"][1]) == pytest.approx(single["spacing_px"])
    plain = fringe_statistics(stack.values)
    assert plain["carrier"].shape == (3, 2) and plain["spacing_nm"] is None
    np.testing.assert_allclose(plain["contrast"], ds["contrast"].values)
    blank = stack.copy(data=stack.values)
    blank[1] = np.random.default_rng(0).poisson(100, (128, 128))
    with pytest.raises(DataValidationError, match="time 1: .*no fringes"):
        fringe_statistics(blank)


def test_bias_difference_aligns_and_removes_leakage():
    # unequal MIPs (Cu 20 V, electrolyte 14 V): the bias-invariant contrast the alignment locks onto
    kw = dict(SMALL, dose=800)
    h0, r0, t0 = hologram(bias_v=0.0, **kw)
    h1, r1, _ = hologram(bias_v=1.0, shift_px=(0.5, 2.5), **{**kw, "seed": 4})
    w0, w1 = reconstruct(h0, r0, full_size=True), reconstruct(h1, r1, full_size=True)
    vac = t0.vacuum.values & (t0.y.values[:, None] < 18) & (t0.y.values[:, None] > 3)
    out = bias_difference(w1, w0, mask=vac, voltage_kv=200, thickness_nm=60.0)
    dy, dx = out.attrs["shift_px"]
    # x: the interfaces give a sharp, unbiased measure; y: only the wedge-shaped edge near the top,
    # where the reconstruction's own border ringing (fixed on the detector) pulls towards zero
    assert dx == pytest.approx(2.5, abs=0.15) and dy == pytest.approx(0.5, abs=0.4)
    assert out["potential_difference"].attrs["units"] == "V"
    # leakage ramp gone over the vacuum mask
    assert float(np.abs(out["phase_difference"].values[vac]).mean()) < 0.05
    x1, x2 = t0.attrs["interface_x_nm"]
    prof = line_profile(out["potential_difference"], start=(70.0, 5.0), end=(70.0, 90.0), width=10.0)
    left = fit_step(prof, center=x1 - 5.0, window=12.0)
    right = fit_step(prof, center=x2 - 5.0, window=12.0)
    # 0.12 V: at 800 counts/px the aperture-filtered noise is correlated over ~6 nm (the same pair
    # unaligned and undisplaced gives 0.60 V; noiseless 0.52 V, the leakage ramp fitted over vacuum)
    assert left.step == pytest.approx(0.5, abs=0.12) and right.step == pytest.approx(0.5, abs=0.12)
    # numpy in: a dict of arrays and the shift; unaligned differs where the specimen moved
    plain = bias_difference(w1.values, w0.values, mask=vac, align=False)
    assert plain["shift_px"] == (0.0, 0.0) and "potential_difference" not in plain
    with pytest.raises(DataValidationError, match="complex"):
        bias_difference(np.abs(w1.values), w0.values)
    with pytest.raises(DataValidationError, match="thickness_nm"):
        bias_difference(w1, w0, voltage_kv=200)
    with pytest.raises(ShapeMismatchError, match="wave_unbiased"):
        bias_difference(w1, w0.isel(y=slice(0, 100)))
