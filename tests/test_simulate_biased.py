# SPDX-License-Identifier: GPL-3.0-or-later
"""The biased-holography simulator: bias programme, relaxation, asymmetry, leakage, acquisition, out of core."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ionscope.errors import DataValidationError
from ionscope.simulate import biased_holograms

SMALL = dict(shape=(64, 64), pixel_nm=2.0)


def test_shapes_coords_and_references():
    holos, refs, log, truth = biased_holograms(programme=[("rest", 20), ("hold", 1.0, 40)], reference_every=3,
                                               **SMALL)
    assert holos.dims == ("time", "y", "x") and holos.sizes["time"] == 7 and holos.dtype == np.float32
    np.testing.assert_allclose(holos["time"].values, np.arange(7) * 10.0)
    np.testing.assert_allclose(refs["time"].values, [0.0, 30.0, 60.0])
    assert holos.attrs["beam_energy_kv"] == 200.0
    np.testing.assert_allclose(holos["bias_v"].values, truth["bias_v"].values)
    assert list(truth["interface"].values) == ["left", "right"]
    # the log is on a 1 s grid and agrees with the per-frame bias
    np.testing.assert_allclose(log["voltage"].interp(time=holos["time"].values).values, truth["bias_v"].values)
    # vacuum counts: dose per time point
    assert float(holos.isel(time=0).values[truth.vacuum.values].mean()) == pytest.approx(100.0, rel=0.05)


def test_relaxation_and_asymmetry_follow_the_model():
    tau, a = 30.0, 0.4
    _, _, _, truth = biased_holograms(programme=[("rest", 10), ("hold", 2.0, 300), ("hold", -2.0, 300)],
                                      relaxation_s=tau, asymmetry=a, frame_interval_s=5.0, **SMALL)
    t = truth["time"].values
    d = truth["step_v"].values                      # (time, [left, right])
    # positive bias: the right interface is positive and takes (1 + a)/2 of the bias at equilibrium
    hold = (t > 250) & (t <= 310)
    np.testing.assert_allclose(d[hold, 1], (1 + a) / 2 * 2.0, rtol=1e-3)
    np.testing.assert_allclose(d[hold, 0], (1 - a) / 2 * 2.0, rtol=1e-3)
    np.testing.assert_allclose(truth["asymmetry"].values[hold], a, atol=1e-3)
    # first-order relaxation after the step at t = 10 s
    k = (t > 10) & (t < 100)
    expected = (1 + a) / 2 * 2.0 * (1 - np.exp(-(t[k] - 10.0) / tau))
    np.testing.assert_allclose(d[k, 1], expected, atol=2e-3)
    # negative bias: the left interface becomes the positive one
    neg = t > 550
    np.testing.assert_allclose(d[neg, 0], (1 + a) / 2 * -2.0, rtol=1e-3)
    assert np.all(truth["positive_interface"].values[neg] == 0)
    np.testing.assert_allclose(truth["asymmetry"].values[neg], a, atol=1e-3)
    # the drops add up to the bias once relaxed; widths grow with |ΔV|
    np.testing.assert_allclose(d[neg].sum(axis=1), -2.0, rtol=1e-3)
    w = truth["width_nm"].values
    np.testing.assert_allclose(w, truth.attrs["width0_nm"] + truth.attrs["width_per_v_nm"] * np.abs(d))
    # the change of potential inside the specimen is the sum of the two layers
    dp = truth["delta_potential"].values
    assert dp[-1, -1] - dp[-1, 0] == pytest.approx(d[-1].sum(), abs=1e-6)


def test_shield_removes_the_leakage():
    kw = dict(programme=[("rest", 10), ("hold", 1.0, 20)], **SMALL)
    *_, shielded = biased_holograms(shield=True, **kw)
    *_, bare = biased_holograms(shield=False, **kw)
    ratio = shielded["leakage_scale_rad"].values[-1] / bare["leakage_scale_rad"].values[-1]
    assert ratio == pytest.approx(0.01)
    # shielded remainder is a plane; unshielded is not
    def plane_residual(m):
        yy, xx = np.indices(m.shape)
        a = np.stack([np.ones(m.size), xx.ravel(), yy.ravel()], axis=1)
        coef, *_ = np.linalg.lstsq(a, m.ravel(), rcond=None)
        return float(np.std(m.ravel() - a @ coef))
    assert plane_residual(shielded["leakage_shape"].values) < 1e-9
    assert plane_residual(bare["leakage_shape"].values) > 0.01


def test_phase_shifting_groups_and_contrast_loss():
    holos, refs, _, truth = biased_holograms(programme=[("rest", 3600)], frame_interval_s=1800.0, method="phase-shifting",
                                             n_shifts=4, dose=200.0, contrast_loss_per_h=0.5, **SMALL)
    assert holos.dims == ("time", "frame", "y", "x") and holos.sizes["frame"] == 4
    assert refs.dims == ("time", "frame", "y", "x")
    # the total dose of a time point is split over the group
    assert float(holos.isel(time=0).values[:, truth.vacuum.values].mean()) == pytest.approx(50.0, rel=0.05)
    np.testing.assert_allclose(truth["contrast"].values, 0.3 * np.exp(-0.5 * np.array([0.0, 0.5, 1.0])))


def test_log_input_and_csv(tmp_path):
    import xarray as xr

    log = xr.Dataset({"voltage": ("time", [0.0, 0.0, 1.0, 1.0])}, coords={"time": [0.0, 20.0, 30.0, 60.0]})
    _, _, _, truth = biased_holograms(log=log, **SMALL)
    np.testing.assert_allclose(truth["bias_v"].values, [0, 0, 0, 1, 1, 1, 1])
    csv = tmp_path / "bias.csv"
    csv.write_text("time,voltage,current\n0,0,0\n20,0,0\n30,1,0\n60,1,0\n")
    _, _, _, truth_csv = biased_holograms(log=csv, **SMALL)
    np.testing.assert_allclose(truth_csv["bias_v"].values, truth["bias_v"].values)


def test_out_of_core_equals_in_memory(tmp_path):
    kw = dict(programme=[("rest", 10), ("hold", 1.0, 20)], seed=3, **SMALL)
    mem, *_ = biased_holograms(**kw)
    lazy, *_ = biased_holograms(out=tmp_path / "holos.zarr", **kw)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, mem.values)
    np.testing.assert_allclose(lazy["bias_v"].values, mem["bias_v"].values)


@pytest.mark.parametrize("kw, match", [
    (dict(programme=[("hold", 1.0)]), "programme"),
    (dict(programme=[("jump", 1.0, 5)]), "programme"),
    (dict(programme=[("rest", 5)]), "shorter than two"),
    (dict(asymmetry=1.5), "asymmetry"),
    (dict(method="inline"), "method"),
    (dict(reference_every=0), "reference_every"),
    (dict(log={"voltage": [1]}), "log"),
    (dict(shield_efficiency=2), "shield_efficiency"),
])
def test_bad_input(kw, match):
    with pytest.raises(DataValidationError, match=match):
        biased_holograms(**{**SMALL, **kw})


def test_interaction_constant_matches_analysis():
    from ionscope.holography import interaction_constant

    *_, truth = biased_holograms(programme=[("rest", 20)], voltage_kv=300.0, **SMALL)
    assert math.isclose(truth.attrs["interaction_constant_rad_per_v_nm"], interaction_constant(300.0), rel_tol=1e-9)
