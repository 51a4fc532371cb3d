# SPDX-License-Identifier: GPL-3.0-or-later
"""A series store's own frame times are checked when it is opened, before any stage.

Found (s28seams): a store whose ``time`` coordinate was out of order, repeated or decreasing ran through the
screen, energy drift, registration and Li maps before the sync stage refused it ("frame start times must
increase", naming no file); a NaN time was reported as a frame "the log does not cover"; absolute clock
times (datetime64) were read as 1.8·10¹⁸ s. Now each is one line naming the store and the frame.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ionscope.io as iio
from ionscope.errors import DataValidationError
from ionscope.io import read_series

GOOD = np.array([30.0, 90.0, 150.0, 210.0])


def _store(tmp_path, t, attrs=None):
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.poisson(20.0, (4, 3, 5, 24)).astype(np.float32), dims=("time", "y", "x", "energy"),
                      coords={"time": ("time", t, attrs if attrs is not None else {"units": "s"}),
                              "energy": ("energy", np.arange(24.0) + 50.0, {"units": "eV"})})
    return iio.save(da, tmp_path / "night.zarr")


@pytest.mark.parametrize("t, match", [
    (GOOD[[0, 2, 1, 3]], r"goes back from 150 s at frame 1 to 90 s at frame 2"),
    (GOOD[[0, 1, 1, 3]], r"repeats 90 s \(frames 1 and 2\)"),
    (GOOD[::-1].copy(), r"goes back from 210 s at frame 0 .*3 such step"),
    (np.where(np.arange(4) == 2, np.nan, GOOD), r"is nan at frame 2"),
    (np.datetime64("2026-12-07T22:00:00") + (GOOD * 1e9).astype("timedelta64[ns]"), r"holds clock times"),
])
def test_impossible_store_times_are_refused_naming_the_frame(tmp_path, t, match):
    store = _store(tmp_path, t, attrs={} if t.dtype.kind == "M" else None)
    with pytest.raises(DataValidationError, match=match) as info:
        read_series(store)
    assert str(store) in str(info.value) and "time coordinate" in str(info.value)


def test_good_store_times_are_kept_and_shifted_by_start_s(tmp_path):
    store = _store(tmp_path, GOOD)
    series, bad = read_series(store, start_s=5.0)
    assert bad == [] and series.time.values.tolist() == (GOOD + 5.0).tolist()
    ms = _store(tmp_path / "ms", GOOD * 1000.0, attrs={"units": "ms"})  # converted, then checked
    assert read_series(ms)[0].time.values.tolist() == GOOD.tolist()


@pytest.mark.parametrize("x, match", [
    (np.zeros(5), r"coordinate 'x' repeats 0 nm \(pixels 0 and 1: a pixel size of 0\)"),
    (np.array([0.0, 1.0, 2.0, 2.5, 3.0]), r"coordinate 'x' is not uniformly spaced"),
    (np.array([0.0, 1.0, np.nan, 3.0, 4.0]), r"coordinate 'x' holds 1 NaN/Inf"),
])
def test_a_run_refuses_an_impossible_pixel_axis_before_any_stage(tmp_path, x, match):
    """Found: a store with pixel size 0 ran every heavy stage and was refused by the analysis only."""
    from ionscope.pipeline import run

    store = _store(tmp_path, GOOD)
    da = iio.load(store, lazy=False).assign_coords(x=("x", x, {"units": "nm"}))
    store = iio.save(da, tmp_path / "night_x.zarr")
    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(tmp_path / "out")},
           "limap": {"fit_range": [52.0, 70.0]}, "denoise": {"method": "none"}}
    with pytest.raises(DataValidationError, match=match):
        run(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()
