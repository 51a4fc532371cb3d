# SPDX-License-Identifier: GPL-3.0-or-later
"""Specimen drift over a night of biased holograms: simulated, measured, followed by bias_series and the pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.errors import ConfigError, DataValidationError, ShapeMismatchError
from ionscope.holography import bias_series
from ionscope.simulate import biased_holograms

# a 300 s night at 256² px of 1 nm; the specimen drifts 0.02 nm/s along x, 0.01 nm/s along y
# (6 nm and 3 nm by the end) plus a 0.05 nm random walk per frame
PROGRAMME = [("rest", 30), ("hold", 1.5, 120), ("hold", -1.5, 150)]
KW = dict(programme=PROGRAMME, shape=(256, 256), pixel_nm=1.0, dose=1000.0, frame_interval_s=10.0)
DRIFT = dict(specimen_drift_nm_per_s=(0.01, 0.02), specimen_jitter_nm=0.05)
# ΔV RMS tolerances of the drift-free tests (tests/test_holography_series.py), same size and dose
TOL = {"fourier": 0.035, "phase-shifting": 0.03}


def _biased(truth, min_v=0.2):
    return np.all(np.abs(truth["step_v"].values) > min_v, axis=1)


def _rms(a):
    return float(np.sqrt(np.nanmean(np.asarray(a) ** 2)))


@pytest.fixture(scope="module")
def drifting():
    return biased_holograms(method="fourier", seed=0, **KW, **DRIFT)


@pytest.fixture(scope="module")
def drifting_auto(drifting):
    holos, refs, log, truth = drifting
    return bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, drift="auto")


# --------------------------------------------------------------------------- simulator
def test_simulator_drift_moves_the_specimen_not_the_microscope():
    small = dict(programme=[("rest", 20), ("hold", 1.0, 40)], shape=(64, 64), pixel_nm=2.0, seed=3)
    holos0, refs0, _, truth0 = biased_holograms(**small)
    holos, refs, _, truth = biased_holograms(specimen_drift_nm_per_s=(0.05, -0.1), **small)
    t = truth["time"].values
    # truth: the displacement, the interfaces and the layers move with it
    assert truth["drift_nm"].dims == ("time", "axis") and list(truth["axis"].values) == ["y", "x"]
    np.testing.assert_allclose(truth["drift_nm"].values, np.outer(t, [0.05, -0.1]))
    np.testing.assert_allclose(truth["position_nm"].values,
                               truth0["position_nm"].values + truth["drift_nm"].values[:, 1:2])
    np.testing.assert_allclose(truth0["drift_nm"].values, 0.0)
    k = int(np.argmax(np.abs(truth["step_v"].values[:, 0])))
    np.testing.assert_allclose(truth["delta_potential"].values[k],
                               np.interp(truth["x"].values + 0.1 * t[k], truth0["x"].values,
                                         truth0["delta_potential"].values[k]), atol=0.02)
    # the first frame (no drift yet), the references (vacuum) and the photon-noise streams are those
    # of the drift-free night; later frames differ
    np.testing.assert_array_equal(holos.isel(time=0).values, holos0.isel(time=0).values)
    np.testing.assert_array_equal(refs.values, refs0.values)
    assert not np.array_equal(holos.isel(time=-1).values, holos0.isel(time=-1).values)
    # a random walk on top, from its own stream
    _, _, _, tw = biased_holograms(specimen_jitter_nm=0.3, **small)
    steps = np.diff(tw["drift_nm"].values, axis=0)
    np.testing.assert_allclose(tw["drift_nm"].values[0], 0.0)
    assert 0.1 < np.std(steps) < 0.6
    # the default: no drift at all, identical to not asking for it
    h_default, *_ = biased_holograms(specimen_drift_nm_per_s=(0.0, 0.0), specimen_jitter_nm=0.0, **small)
    np.testing.assert_array_equal(h_default.values, holos0.values)
    for bad in ((1.0,), "fast", (np.nan, 0.0)):
        with pytest.raises(DataValidationError, match="specimen_drift_nm_per_s"):
            biased_holograms(specimen_drift_nm_per_s=bad, **small)
    with pytest.raises(DataValidationError, match="specimen_jitter_nm"):
        biased_holograms(specimen_jitter_nm=-1.0, **small)


# --------------------------------------------------------------------------- bias_series
def test_auto_recovers_drift_and_steps_fourier(drifting, drifting_auto):
    holos, refs, log, truth = drifting
    ds = drifting_auto
    assert ds["drift_nm"].dims == ("time", "axis") and ds.attrs["drift"] == "auto"
    # the drift, per frame, within 0.1 px (1 px = 1 nm here) RMS (measured 0.02–0.03 nm)
    err = ds["drift_nm"].values - truth["drift_nm"].values
    assert _rms(err[:, 0]) < 0.1 and _rms(err[:, 1]) < 0.1
    assert np.abs(err).max() < 0.2
    # its σ is of the right size (measured pulls 0.5–1.3)
    sd = ds["drift_nm_std"].values
    assert np.all((sd > 0) & (sd < 0.2))
    assert _rms(err) < 3 * float(np.median(sd))
    # ΔV per interface within the drift-free tolerance (measured 0.015 V, as on the same night without
    # drift), honest σ, interfaces followed across the field
    b = _biased(truth)
    dv = ds["step_v"].values - truth["step_v"].values
    assert _rms(dv[b]) < TOL["fourier"] and _rms(dv) < TOL["fourier"] + 0.01
    pull = (dv / ds["step_v_std"].values).ravel()
    assert 0.7 < np.std(pull) < 1.5 and abs(np.mean(pull)) < 0.6
    assert _rms((ds["position_nm"].values - truth["position_nm"].values)[b]) < 1.5
    assert np.all(np.sign(ds["asymmetry"].values[b]) == np.sign(truth["asymmetry"].values[b]))


def test_without_correction_the_drift_ruins_the_steps(drifting, drifting_auto):
    """Proof that the test above can fail: the same night without drift correction."""
    holos, refs, log, truth = drifting
    ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    assert ds.attrs["drift"] == "none" and np.all(np.isnan(ds["drift_nm"].values))
    b = _biased(truth)
    err_none = _rms((ds["step_v"].values - truth["step_v"].values)[b])
    err_auto = _rms((drifting_auto["step_v"].values - truth["step_v"].values)[b])
    # measured 0.86 V against 0.015 V: the moved mean-inner-potential edges dwarf the bias-induced steps
    assert err_none > TOL["fourier"] * 10 and err_none > 20 * err_auto
    # the known drift given instead of measured does as well as "auto"
    given = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values,
                        drift=truth["drift_nm"].values + 100.0)       # absolute positions: only changes count
    assert given.attrs["drift"] == "given"
    np.testing.assert_allclose(given["drift_nm"].values, truth["drift_nm"].values, atol=1e-9)
    assert _rms((given["step_v"].values - truth["step_v"].values)[b]) < TOL["fourier"]


def test_auto_phase_shifting():
    holos, refs, log, truth = biased_holograms(method="phase-shifting", seed=1, **KW, **DRIFT)
    ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values,
                     method="phase-shifting", drift="auto")
    err = ds["drift_nm"].values - truth["drift_nm"].values
    assert _rms(err[:, 0]) < 0.1 and _rms(err[:, 1]) < 0.1          # measured 0.017 / 0.013 nm
    b = _biased(truth)
    # measured 0.016 V (the same night without drift: 0.010 V; uncorrected: 0.77 V)
    assert _rms((ds["step_v"].values - truth["step_v"].values)[b]) < TOL["phase-shifting"]
    assert _rms((ds["width_nm"].values - truth["width_nm"].values)[_biased(truth, 0.4)]) < 1.6


def test_drift_with_tilted_interfaces():
    """The specimen of the tilt test (turned by 2°) drifting 4.5 nm: measured, followed, re-sheared per frame."""
    from scipy import ndimage

    holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 120)], shape=(256, 256),
                                               pixel_nm=1.0, dose=10000.0, method="phase-shifting", seed=0,
                                               specimen_drift_nm_per_s=(0.01, 0.03))

    def turn(a):
        return ndimage.rotate(np.asarray(a), 2.0, axes=(-2, -1), reshape=False, order=3, mode="reflect")

    holos, refs = holos.copy(data=turn(holos.values)), refs.copy(data=turn(refs.values))
    t = ndimage.rotate(truth.thickness_nm.values, 2.0, reshape=False, order=1, mode="nearest")
    b = np.all(np.abs(truth["step_v"].values) > 0.3, axis=1)
    ds = bias_series(holos, references=refs, log=log, thickness_nm=t, method="phase-shifting", drift="auto")
    assert abs(abs(ds.attrs["interface_tilt_deg"]) - 2.0) < max(0.1, 3 * ds.attrs["interface_tilt_deg_std"])
    # the drift in the field of view is the specimen's turned by the same 2° (measured 0.005 / 0.011 nm RMS)
    a = np.radians(2.0)
    turned = truth["drift_nm"].values @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    assert _rms(ds["drift_nm"].values - turned) < 0.05
    # as the drift-free tilt test (tests/test_holography_series.py): measured max 0.011 V, widths +0.6 nm
    np.testing.assert_allclose(ds["step_v"].values[b], truth["step_v"].values[b], atol=0.015)
    assert abs(np.mean((ds["width_nm"].values - truth["width_nm"].values)[b])) < 1.0


def test_no_drift_estimates_zero_and_leaves_the_steps_alone():
    holos, refs, log, truth = biased_holograms(method="fourier", seed=0, **KW)
    t = truth.thickness_nm.values
    plain = bias_series(holos, references=refs, log=log, thickness_nm=t)
    auto = bias_series(holos, references=refs, log=log, thickness_nm=t, drift="auto")
    # measured ≤ 0.055 nm per frame
    assert np.abs(auto["drift_nm"].values).max() < 0.1
    # ΔV the same within noise. Each frame moves by about its σ (measured RMS 1.15σ): a registration
    # error of 0.03 nm already leaves a dipole at the 2.6 rad MIP steps worth ~σ (0.012 V here), and
    # the profile's ends are cut back as for a drifting frame; the error against truth grows little
    # (measured 0.0148 → 0.0178 V for this seed, 0.0152 → 0.0158 V averaged over four)
    diff = (auto["step_v"].values - plain["step_v"].values) / plain["step_v_std"].values
    assert _rms(diff) < 1.5
    b = _biased(truth)
    err_auto = _rms((auto["step_v"].values - truth["step_v"].values)[b])
    assert err_auto < TOL["fourier"] and err_auto < 1.35 * _rms((plain["step_v"].values - truth["step_v"].values)[b])
    # a given drift of zero is the uncorrected path, bit for bit
    zero = bias_series(holos, references=refs, log=log, thickness_nm=t, drift=np.zeros((holos.sizes["time"], 2)))
    np.testing.assert_array_equal(zero["step_v"].values, plain["step_v"].values)
    np.testing.assert_array_equal(zero["potential"].values, plain["potential"].values)


def test_drift_out_of_core_and_threads_match(tmp_path, drifting, drifting_auto):
    _, refs, log, truth = drifting
    holos, *_ = biased_holograms(method="fourier", seed=0, out=tmp_path / "holos.zarr", **KW, **DRIFT)
    lazy = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, drift="auto",
                       workers=2, out=tmp_path / "maps.zarr")
    np.testing.assert_allclose(lazy["drift_nm"].values, drifting_auto["drift_nm"].values, atol=1e-6)
    np.testing.assert_allclose(lazy["step_v"].values, drifting_auto["step_v"].values, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lazy["potential"].isel(time=-1).values,
                               drifting_auto["potential"].isel(time=-1).values, atol=1e-4)


def test_bad_drift_input(drifting):
    holos, refs, log, truth = drifting
    t = truth.thickness_nm.values
    n = holos.sizes["time"]
    for bad, match in (("sideways", "drift: expected 'auto'"), (3.0, "drift: expected a"),
                       (np.zeros((n, 3)), "drift: expected a"), (np.zeros((n - 1, 2)), "drift: expected a"),
                       (np.full((n, 2), np.nan), "drift: holds NaN"), ({"y": 1}, "drift: expected")):
        with pytest.raises(DataValidationError, match=match):
            bias_series(holos, references=refs, log=log, thickness_nm=t, drift=bad)
    with pytest.raises(ShapeMismatchError, match="drift"):
        bias_series(holos, references=refs, log=log, thickness_nm=t, drift=np.zeros((n, 3)))


def test_auto_on_a_specimen_without_edges_warns_and_carries_on():
    """No mean-inner-potential edges to register on (MIP and built-in steps 0): a warning, no correction."""
    from ionscope.holography._drift import SpecimenDrift

    with pytest.raises(DataValidationError, match="no edges"):
        SpecimenDrift(spacing=(1.0, 1.0), shape=(64, 64), method="fourier").set_reference(np.ones((64, 64), complex))
    holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.0, 20)], shape=(128, 128),
                                               pixel_nm=1.0, dose=1000.0, mip_v=(0.0, 0.0), builtin_v=0.0)
    with pytest.warns(RuntimeWarning, match="drift: too uncertain.*not corrected"):
        ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, drift="auto")
    assert ds.attrs["drift"] == "none" and np.all(np.isnan(ds["drift_nm"].values))


# --------------------------------------------------------------------------- pipeline
def test_pipeline_follows_the_drift_and_reports_it(tmp_path, drifting):
    import pandas as pd

    from ionscope.io import save
    from ionscope.pipeline._holography import holography_config, run_holography

    _, refs, log, truth = drifting
    holos, *_ = biased_holograms(method="fourier", seed=0, out=tmp_path / "holos.zarr", **KW, **DRIFT)
    save(refs, tmp_path / "refs.zarr")
    log.to_dataframe().reset_index().rename(columns={"time": "time (s)", "voltage": "voltage (V)",
                                                    "current": "current (A)"}).to_csv(tmp_path / "bias.csv",
                                                                                      index=False)
    (tmp_path / "run.toml").write_text('[holography]\nholograms = "holos.zarr"\nreferences = "refs.zarr"\n'
                                       'log = "bias.csv"\nthickness_nm = 60.0\noutput = "out"\n')
    opt, _ = holography_config(tmp_path / "run.toml")
    assert opt["drift"] == "auto"                                     # the pipeline's default
    res = run_holography(tmp_path / "run.toml", stages=("holo_report",))
    b = _biased(truth)
    assert _rms((res.series["step_v"].values - truth["step_v"].values)[b]) < TOL["fourier"]
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    for col in ("drift_y_nm", "drift_x_nm", "drift_y_nm_std", "drift_x_nm_std"):
        assert col in curves
    np.testing.assert_allclose(curves["drift_x_nm"], truth["drift_nm"].values[:, 1], atol=0.2)
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["drift"]["mode"] == "auto" and s["drift"]["max_nm"] == pytest.approx(6.7, abs=0.3)
    assert len(s["drift"]["x_nm"]) == truth.sizes["time"]
    # the option: "none" switches it off, nonsense is refused up front
    assert holography_config({"holography": {"thickness_nm": 60, "drift": "none"}})[0]["drift"] is None
    assert holography_config({"holography": {"thickness_nm": 60, "drift": False}})[0]["drift"] is None
    assert holography_config({"holography": {"thickness_nm": 60, "drift": [[0, 0], [0.1, 0.2]]}})[0]["drift"] == \
        [[0.0, 0.0], [0.1, 0.2]]
    for bad in ("sideways", 3, [[0, "a"]], [1, 2]):
        with pytest.raises(ConfigError, match="drift"):
            holography_config({"holography": {"thickness_nm": 60, "drift": bad}})
