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
    ({"input": {"start_s": 650.0}}, FRAMES_START),     # within 1.5 intervals + 60 s
    ({"sync": {"check_timestamps": False}}, FRAMES_START),
    ({}, ""),                                          # no timestamp on the frames: nothing to compare
    ({}, "2014-10-08T16:36:51+02:00"),                 # one clock with a time zone, one without
])
def test_agreeing_or_absent_clocks_pass(tmp_path, extra, stamp):
    store, log = _night(tmp_path, frames_stamp=stamp)
    res = run(_cfg(tmp_path, store, **extra), log=log, show_progress=False, stages=("screen",))
    assert "screen" in res.stages
