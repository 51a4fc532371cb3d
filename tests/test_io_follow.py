# SPDX-License-Identifier: GPL-3.0-or-later
"""FrameFollower's settle time counted from a file's last write, and its next due time (issue 20: latency)."""
from __future__ import annotations

import os
import time

from ionscope.io._follow import FrameFollower


def _write(path, *, age_s: float = 0.0) -> None:
    path.write_bytes(b"x" * 64)
    t = time.time() - age_s
    os.utime(path, (t, t))


def test_settle_counts_from_the_last_write_not_from_the_poll(tmp_path):
    f = FrameFollower(tmp_path, settle_s=0.3)
    assert f.poll() == [] and f.due() is None  # the folder seen once: nothing waits
    time.sleep(0.4)
    _write(tmp_path / "frame_0000.nc", age_s=0.35)  # written 0.35 s ago, after that poll
    assert f.poll() == []  # first seen: a change at this poll, not complete yet
    # still since its write for longer than settle_s: complete at the next poll, without a further wait
    assert [ff.index for ff in f.poll()] == [0]


def test_a_write_is_never_dated_before_the_previous_poll(tmp_path):
    f = FrameFollower(tmp_path, settle_s=0.3)
    f.poll()
    # a clock that disagrees (a file time an hour old, on a share): counted from the previous poll at most
    _write(tmp_path / "frame_0000.nc", age_s=3600.0)
    assert f.poll() == [] and f.poll() == []
    due = f.due()
    assert due is not None and 0.0 < due <= 0.3
    time.sleep(due + 0.01)
    assert [ff.index for ff in f.poll()] == [0]
    assert f.due() is None


def test_a_file_time_in_the_future_waits_the_full_settle_time(tmp_path):
    f = FrameFollower(tmp_path, settle_s=0.3)
    f.poll()
    _write(tmp_path / "frame_0000.nc", age_s=-60.0)  # the writer's clock is ahead of ours
    t0 = time.monotonic()
    assert f.poll() == []
    while not (got := f.poll()) and time.monotonic() - t0 < 10.0:
        time.sleep(0.02)
    assert [ff.index for ff in got] == [0] and time.monotonic() - t0 >= 0.3


def test_first_look_at_a_folder_waits_as_before(tmp_path):
    _write(tmp_path / "frame_0000.nc", age_s=3600.0)  # already there when the session starts
    f = FrameFollower(tmp_path, settle_s=0.3)
    assert f.poll() == [] and f.poll() == []  # settle_s from the first look (nothing known before it)
    time.sleep(0.35)
    assert [ff.index for ff in f.poll()] == [0]
