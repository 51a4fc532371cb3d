# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope run`` on a night with one corrupt pixel: the night goes on, the pixel is NaN in the maps, the
run says which frame and how many — and on clean data nothing changes.

Before: a −10⁶ count in one channel of one pixel passed the screen (one negative value of 10⁵ is far below
``[screen] max_negative_fraction``) and was fitted like any spectrum.
"""
from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pytest

from ionscope.pipeline import run

T, Y, X, CH = 2, 6, 9, 300


@functools.lru_cache(maxsize=None)
def _si():
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(16, 24), n_frames=4, physics="realistic", dose=500.0,
                                   energy_drift_ev=0.3, specimen_drift_px=1.5, seed=11)
    return si, log


def _night(root, *, corrupt):
    import ionscope.io as iio

    si, log = _si()
    if corrupt:
        si = si.copy(data=si.values.copy())
        si.values[T, Y, X, CH] = -1e6
    iio.save(si, root / "series.zarr")
    return root / "series.zarr", log


def _run(root, *, corrupt, corrections, fused=True, stages=("limap",)):
    store, log = _night(root, corrupt=corrupt)
    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(root / "out")},
           "limap": {"fit_range": [45.0, 85.0]}, "register": {"window_ev": [40.0, 60.0], "enabled": corrections},
           "energy_drift": {"enabled": corrections}, "denoise": {"method": "none"},
           "report": {"movies": [], "viewer": False, "figures": False},
           "compute": {"frames_per_batch": 2, "fused": fused}}
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        if stages:
            res = run(cfg, log=log, show_progress=False, stages=stages)
        else:  # the whole run, with the report `ionscope run` writes
            from ionscope.report import operando_report_stage

            res = run(cfg, log=log, show_progress=False, extra_stages=(operando_report_stage(),))
    return res, res.dataset("limap").load(), [str(w.message) for w in got]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("clean"), corrupt=False, corrections=False)


@pytest.mark.parametrize("fused", [True, False])
def test_one_corrupt_pixel_is_nan_in_the_maps_and_reported(clean, tmp_path, fused):
    res0, maps0, _ = clean
    res, maps, msgs = _run(tmp_path, corrupt=True, corrections=False, fused=fused)
    # the night is not stopped and the frame is kept
    assert res.bad_frames == [] and maps.sizes["time"] == 4
    assert res.flagged_pixels == [{"frame": T, "file": "", "pixels": 1, "reason": res.flagged_pixels[0]["reason"]}]
    assert any("1 spectra in 1 frame(s) hold impossible raw counts" in m and f"frame {T}: 1" in m
               and "NaN in the maps there" in m for m in msgs)
    assert np.asarray(res.dataset("screen").implausible_pixels.values).tolist() == [0, 0, 1, 0]
    # NaN at that pixel only; every other value the clean run's: to 1e-6, as the deconvolution's batches of
    # spectra round a little differently around a NaN spectrum (2e-9 measured, one pixel of its batch)
    for name in ("li", "li_std", "chi2", "thickness"):
        a, b = maps[name].values.copy(), maps0[name].values.copy()
        assert np.isnan(a[T, Y, X]) and np.isfinite(b[T, Y, X]), name
        a[T, Y, X] = b[T, Y, X] = 0.0
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(b).max(), err_msg=name)
        assert np.array_equal(a[[t for t in range(4) if t != T]], b[[t for t in range(4) if t != T]]), name


def test_clean_nights_are_unchanged_and_report_nothing(clean):
    res0, maps0, msgs = clean
    assert res0.flagged_pixels == []
    assert not any("impossible raw counts" in m for m in msgs)
    assert np.isfinite(maps0.li.values).all()


def test_with_drift_corrections_the_night_goes_on_and_says_so(tmp_path):
    """Energy drift and registration on: the corrupt spectrum enters neither the frame's summed spectrum nor its
    registration image; the bilinear registration spreads its NaN to the pixels it is mixed into, no further."""
    res, maps, msgs = _run(tmp_path, corrupt=True, corrections=True, stages=None)  # the whole run
    nan = np.isnan(maps.li.values)
    assert nan[T, Y, X] and nan.sum() <= 4 and not nan[[t for t in range(4) if t != T]].any()
    assert res.bad_frames == [] and res.flagged_pixels[0]["frame"] == T and res.flagged_pixels[0]["pixels"] == 1
    assert res.summary()["implausible_pixels"] == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["implausible_pixels"] == 1 and summary["implausible_pixels_detail"][0]["frame"] == T
    assert "impossible raw counts" in (tmp_path / "out" / "report.html").read_text()
    # the denoised movie and the flux need every pixel: the NaN ones filled from their neighbours, and counted
    assert res.dataset("denoise").attrs["filled_pixels"] == int(nan.sum())
    assert np.isfinite(res.dataset("denoise").li.values).all()


def test_watch_says_so_live_and_in_the_final_run(tmp_path):
    """``ionscope watch``: a frame with one corrupt pixel is mapped (NaN there), a live warning stays for the
    night, and the final run lists it."""
    import xarray as xr

    from ionscope.operando import load_config, watch
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", speed=600.0, block=True, frame_interval_s=60.0, n_frames=3, shape=(16, 24),
                  energy_step=0.5, dose=400.0, seed=2)
    path = tmp_path / "acq" / "frames" / "frame_0001.nc"
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    name = next(iter(ds.data_vars))
    values = ds[name].transpose("y", "x", "energy").values.copy()
    values[4, 5, 60] = -1e6
    ds[name] = ds[name].transpose("y", "x", "energy").copy(data=values)
    ds.to_netcdf(tmp_path / "frame.tmp.nc")
    (tmp_path / "frame.tmp.nc").replace(path)
    cfg = load_config(acq.config_path).replace(
        denoise={"method": "gaussian"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [30.0, 50.0], "enabled": False}, output={"dir": str(tmp_path / "out")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = watch(cfg, serve=False, settle_s=0.15, poll_s=0.03, late_s=0.5)
    assert "implausible" in res.warnings and "frame 1: 1" in res.warnings["implausible"]
    assert [r["frame"] for r in res.frames] == [0, 1, 2]
    assert [f["frame"] for f in res.run.flagged_pixels] == [1]
    li = res.run.li_raw.values
    assert np.isnan(li[1, 4, 5]) and np.isfinite(np.delete(li.ravel(), np.ravel_multi_index((1, 4, 5), li.shape))).all()
