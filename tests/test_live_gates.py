# SPDX-License-Identifier: GPL-3.0-or-later
"""``watch`` applies the pipeline's plausibility gates frame by frame (ionscope.live._gates)."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from ionscope.live import acquire
from ionscope.operando import load_config, watch

SIM = dict(frame_interval_s=60.0, n_frames=6, shape=(12, 16), energy_step=0.5, dose=400.0, energy_drift_ev=0.2,
           specimen_drift_px=0.5, seed=7)
LARGE = r"total counts [\d.e+]+ are (9\.\d+e\+29|1e\+30) × the series' median [\d.e+]+ \(limit 10 ×\)"
FAST = dict(serve=False, settle_s=0.05, poll_s=0.02, late_s=0.5)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A finished acquisition folder (frames, log, STOP), copied per test and spoiled there."""
    root = tmp_path_factory.mktemp("acq")
    acq = acquire(root / "acq", speed=1e6, block=True, **SIM)
    return acq


def _copy(acq, tmp_path, spoil: dict):
    """The acquisition in tmp_path, with frame k replaced by fn(frame) for each k, fn in ``spoil``."""
    import shutil

    import ionscope.io as iio

    dst = tmp_path / "acq"
    shutil.copytree(acq.out_dir, dst)
    for k, fn in spoil.items():
        path = dst / "frames" / f"frame_{k:04d}.nc"
        da = iio.load(path).load()
        da = da.copy(data=fn(np.asarray(da.values)))
        tmp = path.with_name(f".tmp-{path.name}")
        iio.save(da, tmp)
        os.replace(tmp, path)
    cfg = load_config(dst / "watch.toml").replace(
        denoise={"method": "gaussian"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [30.0, 50.0]}, output={"dir": str(tmp_path / "out")})
    return cfg


def test_an_impossible_frame_is_refused_live_with_its_reason_and_skipped_on_resume(written, tmp_path):
    cfg = _copy(written, tmp_path, {4: lambda a: a * 1e30})
    res = watch(cfg, **FAST)
    assert [b["frame"] for b in res.bad_frames] == [4]
    assert res.bad_frames[0]["file"] == "frame_0004.nc"
    assert re.match(LARGE, res.bad_frames[0]["reason"]), res.bad_frames[0]["reason"]
    assert [r["frame"] for r in res.frames] == [0, 1, 2, 3, 5]
    # the final batch run refuses the same frame, by the same gate
    assert [b["frame"] for b in res.run.bad_frames] == [4]
    assert re.match(LARGE, res.run.bad_frames[0]["reason"])
    # a restarted watch resumes past it from the cache and lists it again
    again = watch(cfg, final=False, **FAST)
    assert again.resumed_frames == 5 and again.bad_frames == res.bad_frames
    assert [r["frame"] for r in again.frames] == [0, 1, 2, 3, 5]


def test_first_frames_are_reviewed_once_a_median_exists(written, tmp_path):
    """Frame 0 ×1e30 passes the absolute gates; it is refused once three frames give a median."""
    cfg = _copy(written, tmp_path, {0: lambda a: a * 1e30})
    res = watch(cfg, final=False, **FAST)
    assert [b["frame"] for b in res.bad_frames] == [0] and re.match(LARGE, res.bad_frames[0]["reason"])
    assert [r["frame"] for r in res.frames] == [1, 2, 3, 4, 5]
    again = watch(cfg, final=False, **FAST)
    assert again.bad_frames == res.bad_frames and [r["frame"] for r in again.frames] == [1, 2, 3, 4, 5]


@pytest.mark.filterwarnings("ignore:Could not determine RMS error")  # gates off: the all-zero frame is registered
def test_all_zero_first_frame_and_the_chi2_gate_live(written, tmp_path):
    cfg = _copy(written, tmp_path, {0: lambda a: a * 0, 4: lambda a: a * 1e30})
    cfg = cfg.replace(screen={"count_ratio": 0})  # only the χ² of the fit can find frame 4 now
    res = watch(cfg, final=False, **FAST)
    reasons = {b["frame"]: b["reason"] for b in res.bad_frames}
    assert sorted(reasons) == [0, 4]
    assert reasons[0] == "all values are zero (no signal)"
    assert reasons[4].startswith("mean χ²") and "the references do not describe this frame" in reasons[4]
    assert [r["frame"] for r in res.frames] == [1, 2, 3, 5]
    # off switch: nothing refused (the frames are analysed as before the gates existed)
    off = watch(cfg.replace(screen={"enabled": False}, output={"dir": str(tmp_path / "off")}), final=False,
                **FAST)
    assert [b["frame"] for b in off.bad_frames if "zero" in b["reason"] or "χ²" in b["reason"]] == []
