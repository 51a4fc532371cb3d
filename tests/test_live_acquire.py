# SPDX-License-Identifier: GPL-3.0-or-later
"""The fake microscope and the followers of its partial files and growing log."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ionscope.errors import DataValidationError, FileFormatError
from ionscope.live import FrameFollower, LogFollower
from ionscope.simulate import acquire

SMALL = dict(frame_interval_s=60.0, shape=(8, 12), energy_step=0.5, seed=3)


def _follow(acq, *, settle_s=0.15, late_s=0.3, poll_s=0.01, timeout=30.0):
    """Poll the acquisition like the watcher does; return what was released and seen."""
    import ionscope.io as iio

    frames, log = FrameFollower(acq.frames_dir, settle_s=settle_s, late_s=late_s), LogFollower(acq.log_path)
    released, partial_seen, t0 = [], 0, time.monotonic()
    sizes: dict = {}
    while time.monotonic() - t0 < timeout:
        ended = acq.stop_path.exists()
        for p in acq.frames_dir.glob("frame_*.nc"):
            sizes.setdefault(p.name, set()).add(p.stat().st_size)
        log.poll()
        batch = frames.finish() if ended else frames.poll()
        for ff in batch:
            try:
                da = iio.load(ff.path)
            except FileFormatError as exc:
                if not frames.failed(ff, str(exc), attempts=1 if ended else 3):
                    break
                continue
            released.append((ff, da))
        if ended:
            log.poll()
            break
        time.sleep(poll_s)
    partial_seen = sum(len(s) > 1 for s in sizes.values())
    return released, frames, log, partial_seen


def test_acquire_writes_the_simulated_series_in_real_time(tmp_path):
    from ionscope.simulate import operando_eels

    t0 = time.monotonic()
    acq = acquire(tmp_path, n_frames=4, speed=240.0, pieces=6, write_fraction=0.3, block=False, **SMALL)
    released, frames, log, partial_seen = _follow(acq)
    acq.wait(10)
    wall = time.monotonic() - t0
    # 4 frames of 60 s at 240x: >= 1 s of wall time (the clock is real, not a loop)
    assert wall >= 4 * 60.0 / 240.0
    assert partial_seen >= 1  # a reader did meet files still being written
    assert [ff.index for ff, _ in released] == [0, 1, 2, 3] and frames.bad == []
    si, truth, full_log = operando_eels(n_frames=4, shape=SMALL["shape"], energy_step=0.5, seed=3,
                                        energy_drift_ev=0.3, specimen_drift_px=1.0, frame_time_s=60.0)
    for ff, da in released:
        # every released frame is whole: its size is final and its counts are the simulator's
        assert ff.size == ff.path.stat().st_size
        np.testing.assert_array_equal(da.values, si.isel(time=ff.index).values)
    # the log read while it grew equals the simulator's log, with no half line misread
    ds = log.dataset()
    np.testing.assert_allclose(ds.time.values, full_log.time.values, rtol=1e-8)
    np.testing.assert_allclose(ds.voltage.values, full_log.voltage.values, rtol=1e-8)
    np.testing.assert_allclose(ds.current.values, full_log.current.values, rtol=1e-8)
    assert [str(s) for s in ds.state.values] == [str(s) for s in full_log.state.values]
    import ionscope.io as iio

    batch_log = iio.read_log(acq.log_path)  # the batch reader agrees with the incremental one
    np.testing.assert_array_equal(batch_log.voltage.values, ds.voltage.values)
    assert (acq.frames_dir / "STOP").exists() and not (tmp_path / ".staging").exists()


def test_corrupt_missing_and_late_frames_are_listed(tmp_path):
    # frame 5 comes 4 intervals late: well after frame 7 made its absence count (late_s)
    acq = acquire(tmp_path, n_frames=9, speed=150.0, corrupt=(1,), missing=(3,), late={5: 4.0}, block=False,
                  **SMALL)
    released, frames, _, _ = _follow(acq, late_s=0.1)
    acq.wait(10)
    assert [ff.index for ff, _ in released] == [0, 2, 4, 6, 7, 8]
    reasons = {b["frame"]: b["reason"] for b in frames.bad}
    assert sorted(reasons) == [1, 3, 5]
    assert reasons[1].startswith("corrupt: ") and "frame_0001.nc" in reasons[1]
    assert reasons[3].startswith("missing")
    assert reasons[5].startswith("late: arrived after frame")


def test_log_follower_keeps_back_a_half_written_line(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("time (min),voltage (mV),current (uA),state\n0,3900,1,charge\n1,39")
    f = LogFollower(p)
    assert f.poll() == 1 and f.dataset() is None  # one complete row so far
    with open(p, "a") as fh:
        fh.write("50,1,charge\n2,4000,0,rest\n")
    assert f.poll() == 2
    ds = f.dataset()
    np.testing.assert_allclose(ds.voltage.values, [3.9, 3.95, 4.0])
    np.testing.assert_allclose(ds.current.values, [1e-6, 1e-6, 0.0])
    np.testing.assert_allclose(ds.time.values, [0.0, 60.0, 120.0])
    assert f.poll() == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match=r"bad.csv: no 'time' column"):
        LogFollower(bad).poll()


def test_acquire_refuses_bad_timing(tmp_path):
    with pytest.raises(DataValidationError, match="speed must be > 0"):
        acquire(tmp_path, speed=0.0)
    with pytest.raises(DataValidationError, match="frame_interval_s must be > 0"):
        acquire(tmp_path, frame_interval_s=-1.0)
