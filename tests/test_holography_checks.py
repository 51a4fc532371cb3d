# SPDX-License-Identifier: GPL-3.0-or-later
"""Hologram nights: options type-checked up front, impossible frames skipped with their reason.

Issue 17: ``thickness_nm = true`` read as 1 nm, ``model = "xyz"`` giving all-NaN
fits with exit 0, ``zero_bias = "yes"`` / ``interfaces_nm = "here"`` raising raw
errors, an all-zero hologram giving "0 ± 0 V", one NaN pixel refusing the whole
night, a frame rolled by 20 px analysed as if nothing happened. Each is a test here.
"""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from ionscope.errors import ConfigError, DataValidationError
from ionscope.holography import bias_series
from ionscope.operando import run_holography
from ionscope.simulate import biased_holograms

BAD = 6  # a biased time point (frames 0–3 are at zero bias, the bias is on from t = 40 s)


@pytest.fixture(scope="module")
def night():
    holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    clean = bias_series(holos, references=refs, log=log, thickness_nm=60.0)
    return holos, refs, log, clean


def _spoil(holos, fn, k=BAD):
    h = holos.copy(deep=True)
    h.values[k] = fn(h.values[k])
    return h


def _series(night, holos, **kw):
    _, refs, log, _ = night
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = bias_series(holos, references=refs, log=log, thickness_nm=60.0, **kw)
    return ds, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("key,value,expected", [
    ("thickness_nm", True, r"thickness_nm: expected a thickness in nm \(a number > 0\) .*got True \(bool\)"),
    ("thickness_nm", "60", r"thickness_nm: expected a thickness in nm"),
    ("model", "xyz", r"model: expected 'erf' or 'tanh' .*got 'xyz'"),
    ("zero_bias", "yes", r"zero_bias: expected time indices \(integers ≥ 0\) .*got 'yes'"),
    ("zero_bias", [0.5, 1], r"zero_bias: expected time indices"),
    ("interfaces_nm", "here", r"interfaces_nm: expected x positions in nm .*got 'here'"),
    ("interfaces_nm", [40.0, True], r"interfaces_nm: expected x positions in nm"),
    ("workers", 1.5, r"workers: expected an integer ≥ 1, got 1.5"),
    ("workers", True, r"workers: expected an integer ≥ 1, got True \(bool\)"),
    ("voltage_kv", -3, r"voltage_kv: expected the accelerating voltage in kV .*got -3"),
    ("window_nm", "x", r"window_nm: expected a positive half-width in nm, got 'x'"),
    ("window_nm", True, r"window_nm: expected a positive half-width in nm, got True"),
    ("order", 3, r"order: expected 1 or 2"),
    ("order", True, r"order: expected 1 or 2 .*got True \(bool\)"),
    ("min_good_fraction", 1.5, r"min_good_fraction: expected a fraction in \[0, 1\]"),
])
def test_bias_series_refuses_each_wrong_option_in_one_line(night, key, value, expected):
    holos, refs, log, _ = night
    kw = {"thickness_nm": 60.0, key: value}
    with pytest.raises(DataValidationError, match=expected) as info:
        bias_series(holos, references=refs, log=log, **kw)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("key,value,expected", [
    ("thickness_nm", True, r"thickness_nm: expected a thickness in nm .*got True \(bool\)"),
    ("interfaces_nm", "here", r"interfaces_nm: expected x positions"),
    ("zero_bias", "yes", r"zero_bias: expected time indices"),
    ("model", "xyz", r"model: expected 'erf' or 'tanh'"),
    ("workers", 1.5, r"workers: expected an integer ≥ 1"),
    ("voltage_kv", -3, r"voltage_kv: expected the accelerating voltage in kV"),
    ("window_nm", "x", r"window_nm: expected a positive half-width"),
    ("min_bias_v", "big", r"min_bias_v: expected a bias in V"),
    ("min_jump_v", -0.1, r"min_jump_v: expected a bias in V \(a number ≥ 0\)"),
    ("order", "1", r"order: expected 1 or 2"),
    ("frame_checks", "yes", r"frame_checks: expected true or false"),
    ("min_good_fraction", -1, r"min_good_fraction: expected a fraction"),
    ("holograms", 3, r"holograms: expected a path \(a string\)"),
    ("output", ["a"], r"output: expected a path"),
])
def test_holography_config_refuses_each_wrong_value_before_anything_runs(tmp_path, key, value, expected):
    with pytest.raises(ConfigError, match=r"^config \[holography\] " + expected) as info:
        run_holography({"holography": {"thickness_nm": 60.0, key: value}}, output=tmp_path / "out")
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


def test_paths_that_do_not_exist_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"holograms = 'absent.zarr': .*absent.zarr does not exist"):
        run_holography({"holography": {"thickness_nm": 60.0, "holograms": "absent.zarr"}}, output=tmp_path / "o")
    holos, refs, log, _ = biased_holograms(programme=[("rest", 20), ("hold", 1.0, 20)], shape=(64, 64))
    with pytest.raises(ConfigError, match=r"thickness_nm = 'map.nc': .*map.nc does not exist"):
        run_holography({"holography": {"thickness_nm": "map.nc"}}, holograms=holos, output=tmp_path / "o2")


def test_cli_exits_2_with_one_line_under_quiet(tmp_path, capsys):
    from ionscope.cli import main

    toml = tmp_path / "h.toml"
    toml.write_text('[holography]\nholograms = "h.zarr"\nthickness_nm = 60.0\nmodel = "xyz"\n')
    assert main(["run", str(toml), "-q"]) == 2
    err = capsys.readouterr().err
    assert "config [holography] model: expected 'erf' or 'tanh'" in err and "Traceback" not in err


# --------------------------------------------------------------------------- frames

FRAMES = {
    "all_zero": (lambda a: a * 0, r"^all pixels are zero \(no signal\)$"),
    "one_nan_pixel": (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 777, np.nan, a),
                      r"^holds 1 NaN/Inf pixel\(s\)$"),
    "times_1e30": (lambda a: a * 1e30, r"^mean intensity [\d.e+]+ is 1e\+30 × the zero-bias frames' "),
    "inverted": (lambda a: -a, r"^mean intensity -[\d.]+ ≤ 0 \(inverted or offset data\)$"),
    "rolled_20px": (lambda a: np.roll(a, 20, axis=1),
                    r"^the step fit's χ² [\d.e+]+ is [\d.e+]+ × the median of the last frames .* \(frame shifted"),
}


@pytest.mark.parametrize("case", list(FRAMES))
def test_impossible_frame_is_skipped_with_its_reason(night, case):
    holos, _, _, clean = night
    fn, pattern = FRAMES[case]
    ds, caught = _series(night, _spoil(holos, fn))
    reasons = [str(r) for r in ds.frame_reason.values]
    assert [k for k, r in enumerate(reasons) if r] == [BAD] and re.search(pattern, reasons[BAD]), reasons[BAD]
    assert not bool(ds.frame_good[BAD]) and int(ds.frame_good.sum()) == holos.sizes["time"] - 1
    # NaN for that time point, and the listing says why
    for v in ("step_v", "step_v_std", "width_nm"):
        assert np.all(np.isnan(ds[v].values[BAD]))
    assert np.all(np.isnan(ds.potential.values[BAD]))
    assert any(f"1 of {holos.sizes['time']} time points skipped" in m and f"{BAD} (t = 60 s)" in m for m in caught)
    # the other time points are what the clean night gives (each step is measured on its own frame)
    others = [k for k in range(holos.sizes["time"]) if k != BAD]
    np.testing.assert_array_equal(ds.step_v.values[others], clean.step_v.values[others])
    np.testing.assert_array_equal(ds.potential.values[others], clean.potential.values[others])


def test_a_zero_bias_frame_that_does_not_match_is_left_out_of_the_reference(night):
    holos, _, _, clean = night
    ds, _ = _series(night, _spoil(holos, lambda a: np.roll(a, 20, axis=1), k=1))
    assert [int(k) for k in np.flatnonzero(~ds.frame_good.values)] == [1]
    assert str(ds.frame_reason.values[1]).startswith("does not match the other zero-bias frames (incoherence")
    assert ds.attrs["zero_bias_frames"] == [0, 2, 3]
    # the steps are still measured on the remaining zero-bias state (within 3σ of the clean night's)
    d = ds.step_v.values[4:] - clean.step_v.values[4:]
    assert np.all(np.abs(d) < 3 * np.hypot(ds.step_v_std.values[4:], clean.step_v_std.values[4:]))


def test_with_drift_correction_a_rolled_frame_is_a_measured_displacement(night):
    """drift="auto" (the pipeline's default) follows the 10 nm jump: the frame is measured, not skipped."""
    holos, _, _, _ = night
    ds, _ = _series(night, _spoil(holos, lambda a: np.roll(a, 20, axis=1)), drift="auto")
    assert bool(ds.frame_good.all())
    assert abs(float(ds.drift_nm.values[BAD, 1]) - 10.0) < 0.5  # 20 px of 0.5 nm, wrapped round: the specimen moved


def test_a_step_without_signal_is_nan_never_zero_plus_minus_zero(night):
    """With one zero-bias frame, that frame is the reference itself: ΔV ≡ 0 with σ ~ 1e-9 V → NaN, warned."""
    holos, _, _, _ = night
    ds, caught = _series(night, holos, zero_bias=[0])
    assert np.all(np.isnan(ds.step_v.values[0])) and np.all(np.isnan(ds.step_v_std.values[0]))
    assert "not measured: the fit's σ is 0" in str(ds.frame_reason.values[0])
    assert bool(ds.frame_good[0])  # the frame was used; its step was not measured
    assert any("σ = 0, NaN or ~0 (no signal), reported as NaN" in m for m in caught)
    assert np.all(np.isfinite(ds.step_v.values[1:])) and np.all(ds.step_v_std.values[1:] > 1e-3)


def test_too_many_bad_frames_stop_the_night_and_checks_can_be_turned_off(night):
    holos, refs, log, _ = night
    h = holos.copy(deep=True)
    h.values[4:9] = 0.0
    with pytest.raises(DataValidationError, match=r"holograms: 5 of 10 time points are unusable, fewer than "
                                                  r"min_good_fraction = 0.6 remain: 4 \(t = 40 s\): all pixels"):
        bias_series(h, references=refs, log=log, thickness_nm=60.0, min_good_fraction=0.6)
    ds, _ = _series(night, h, min_good_fraction=0.5)
    assert int(ds.frame_good.sum()) == 5
    nan = _spoil(holos, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 777, np.nan, a))
    with pytest.raises(DataValidationError, match="NaN"):  # off: the NaN frame refuses the night, as before
        bias_series(nan, references=refs, log=log, thickness_nm=60.0, frame_checks=False)


def test_holography_run_lists_skipped_frames_in_summary_and_console(night, tmp_path, capsys):
    import ionscope.io as iio
    from ionscope.cli import main

    holos, refs, log, _ = night
    h = _spoil(_spoil(holos, lambda a: a * 0), lambda a: np.where(np.arange(a.size).reshape(a.shape) == 5, np.nan, a),
               k=8)
    iio.save(h, tmp_path / "h.zarr")
    iio.save(refs, tmp_path / "r.zarr")
    log.to_dataframe().to_csv(tmp_path / "bias.csv", float_format="%.9g")
    (tmp_path / "h.toml").write_text('[holography]\nholograms = "h.zarr"\nreferences = "r.zarr"\nlog = "bias.csv"\n'
                                     'thickness_nm = 60.0\noutput = "out"\n')
    assert main(["run", str(tmp_path / "h.toml"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"bad time point {BAD} (t = 60 s): all pixels are zero (no signal)" in out
    assert "bad time point 8 (t = 80 s): holds 1 NaN/Inf pixel(s)" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(b["time_index"], b["skipped"]) for b in summary["bad_frames"]] == [(BAD, True), (8, True)]
    csv = (tmp_path / "out" / "curves.csv").read_text().splitlines()
    assert csv[1 + BAD].startswith("60,") and ",," in csv[1 + BAD]  # NaN (empty) for that time point
