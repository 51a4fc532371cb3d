# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame times on the log's clock must agree with the clocks of the files, where both carry one.

Found (s28seams): frame *k* is put at ``start_s + k · frame_interval_s`` on the log's clock whatever the files
say. A log started 10 min before the acquisition (``start_s`` left at 0) gave every frame the voltage and
charge of 10 min earlier without a word, though the first frame's timestamp (DM tags) and the log's start
(Protochips notes) said so. Now the run is refused before any stage, with the ``start_s`` to set.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ionscope.io as iio
from ionscope.errors import DataValidationError
from ionscope.pipeline import run

LOG_START = "2014-10-08T16:26:51.738000"
FRAMES_START = "2014-10-08T16:36:51"  # 599.262 s later


def _night(tmp_path, *, frames_stamp=FRAMES_START):
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.poisson(20.0, (3, 4, 5, 24)).astype(np.float32), dims=("time", "y", "x", "energy"),
                      coords={"energy": ("energy", np.arange(24.0) + 50.0, {"units": "eV"})},
                      attrs={"timestamp": frames_stamp} if frames_stamp else {})
    store = iio.save(da, tmp_path / "night.zarr")
    refs = xr.DataArray(rng.uniform(1, 2, (2, 24)), dims=("component", "energy"),
                        coords={"component": ["Li", "Co"], "energy": da.energy})
    iio.save(refs, tmp_path / "refs.nc")
    t = np.arange(0.0, 1200.0, 5.0)
    log = xr.Dataset({"voltage": ("time", 3.7 + 1e-4 * t), "current": ("time", np.full(t.size, 1e-9))},
                     coords={"time": ("time", t, {"units": "s"})}, attrs={"timestamp": LOG_START})
    return store, log


def _cfg(tmp_path, store, **extra):
    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(tmp_path / "out")},
           "limap": {"fit_range": [52.0, 70.0], "references": str(tmp_path / "refs.nc")}}
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def test_a_log_started_before_the_frames_is_not_read_at_the_wrong_moment(tmp_path):
    store, log = _night(tmp_path)
    with pytest.raises(DataValidationError, match=r"frame 0 starts at 0 s on the log's clock .* is 599\.262 s "
                                                  r"after the log's .*set \[input\] start_s = 599\.262"):
        run(_cfg(tmp_path, store), log=log, show_progress=False, stages=("screen",))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, stamp", [
    ({"input": {"start_s": 599.262}}, FRAMES_START),   # the start the clocks say
    pytest.param({"input": {"start_s": 650.0}}, FRAMES_START, marks=pytest.mark.slow),  # within 1.5 intervals + 60 s
    ({"sync": {"check_timestamps": False}}, FRAMES_START),
    ({}, ""),                                          # no timestamp on the frames: nothing to compare
    pytest.param({}, "2014-10-08T16:36:51+02:00", marks=pytest.mark.slow),  # one clock with a zone, one without
])
def test_agreeing_or_absent_clocks_pass(tmp_path, extra, stamp):
    store, log = _night(tmp_path, frames_stamp=stamp)
    res = run(_cfg(tmp_path, store, **extra), log=log, show_progress=False, stages=("screen",))
    assert "screen" in res.stages


def _folder(tmp_path, seconds, numbers=None):
    import datetime as dt

    rng = np.random.default_rng(1)
    t0 = dt.datetime(2026, 12, 7, 22, 0, 0)
    d = tmp_path / "frames"
    d.mkdir(parents=True)
    for k, s in zip(numbers if numbers is not None else range(len(seconds)), seconds):
        da = xr.DataArray(rng.poisson(20.0, (3, 4, 16)).astype(np.float32), dims=("y", "x", "energy"),
                          coords={"energy": ("energy", np.arange(16.0) + 50.0, {"units": "eV"})},
                          attrs={"timestamp": (t0 + dt.timedelta(seconds=s)).isoformat()})
        iio.save(da, d / f"frame_{k:04d}.nc")
    return d


@pytest.mark.parametrize("seconds, numbers, match", [
    ([0, 45, 90, 135], None, r"frame 3 \(frame_0003.nc\) was acquired 135 s after frame 0 .* puts it at 180 s "
                             r"\(the timestamps' mean interval: 45 s\)"),
    ([0, 60, 180, 240], None, r"frame 2 \(frame_0002.nc\) was acquired 180 s"),   # renumbered over a gap
    pytest.param([0, 60, 120, 180], [0, 1, 2, 4], r"frame 4 \(frame_0004.nc\) was acquired 180 s .* at 240 s",
                 marks=pytest.mark.slow),
])
def test_frame_timestamps_that_disagree_with_the_numbering_are_refused(tmp_path, seconds, numbers, match):
    from ionscope.io import read_series

    with pytest.raises(DataValidationError, match=match):
        read_series(_folder(tmp_path, seconds, numbers), frame_interval_s=60.0)


def test_frame_timestamps_that_agree_pass(tmp_path):
    from ionscope.io import read_series

    d = _folder(tmp_path, [0, 61, 119, 241], numbers=[0, 1, 2, 4])  # jitter of a second or two, one missing
    series, bad = read_series(d, frame_interval_s=60.0)
    assert series.frame_index.values.tolist() == [0, 1, 2, 4] and bad[0]["frame"] == 3
    assert read_series(_folder(tmp_path / "b", [0, 45, 90]), frame_interval_s=60.0, check_timestamps=False)


def test_a_log_that_does_not_cover_the_frames_is_refused_before_any_stage(tmp_path):
    """Found: the sync stage refused it, after the screen, the drift corrections and the Li maps."""
    store, log = _night(tmp_path, frames_stamp="")
    short = log.sel(time=slice(None, 100.0))
    with pytest.raises(DataValidationError, match=r"log does not cover 2 of 3 frame\(s\): frame 1 \[60, 120\] s"):
        run(_cfg(tmp_path, store), log=short, show_progress=False)
    assert not (tmp_path / "out").exists()
    res = run(_cfg(tmp_path, store, sync={"allow_uncovered": True}), log=short, show_progress=False,
              stages=("screen",))
    assert "screen" in res.stages


def test_a_store_whose_frames_are_not_frame_interval_s_apart_is_refused(tmp_path):
    """Found: frames 10 s apart read with the default 60 s interval were synchronised over 60 s windows and their
    starts put 25 s early, silently."""
    store, log = _night(tmp_path, frames_stamp="")
    da = iio.load(store, lazy=False)
    da = da.assign_coords(time=("time", 5.0 + 10.0 * np.arange(3), {"units": "s"}))
    store = iio.save(da, tmp_path / "night10.zarr")
    with pytest.raises(DataValidationError, match=r"frames are 10 s apart .* set \[input\] frame_interval_s = 10"):
        run(_cfg(tmp_path, store), log=log, show_progress=False)
    assert "screen" in run(_cfg(tmp_path, store, input={"frame_interval_s": 10.0}), log=log, show_progress=False,
                           stages=("screen",)).stages
