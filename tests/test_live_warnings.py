# SPDX-License-Identifier: GPL-3.0-or-later
"""The dashboard warns when the fit's reduced χ² drifts away from 1 (the issue: 0.9 → 0.37 without a word)."""
from __future__ import annotations

from types import SimpleNamespace

from ionscope.live._state import LiveState
from ionscope.pipeline._live_eels_night import EelsNight as _Session


def _session(chi2s):
    recs = [{"frame": k, "chi2_mean": c} for k, c in enumerate(chi2s)]
    st = LiveState("t")
    return SimpleNamespace(sink=st, state=st, records=recs, check_disk=lambda: None), recs[-1]


def test_chi2_drifting_down_is_warned_about():
    # slowly: each frame within 2× of the running median, so the spike warning alone never fires
    s, rec = _session([0.9, 0.85, 0.8, 0.7, 0.62, 0.55, 0.48, 0.42, 0.37])
    _Session._warnings(s, rec)
    w = s.state.status()["warnings"]
    assert "chi2_level" in w and "0.42" in w["chi2_level"] and "overestimated" in w["chi2_level"]
    assert "chi2" not in w


def test_chi2_near_one_is_quiet_and_the_warning_clears():
    s, rec = _session([1.0, 0.95, 1.05, 0.98])
    _Session._warnings(s, rec)
    assert s.state.status()["warnings"] == {}
    s.state.warn("chi2_level", "old")
    _Session._warnings(s, rec)
    assert "chi2_level" not in s.state.status()["warnings"]


def test_frame_clocks_that_disagree_with_the_interval_are_warned_about_live():
    """s28seams: the batch reader refuses frames whose own timestamps contradict their numbers × the interval;
    live, the dashboard says so as the frames arrive (the final run refuses)."""
    cfg = SimpleNamespace(input=SimpleNamespace(frame_interval_s=60.0))
    s, rec = _session([1.0, 1.0, 1.0])
    s.cfg = cfg
    s.clocks = {k: (f"frame_{k:04d}.dm4", f"2026-12-07T22:{40 * k // 60:02d}:{40 * k % 60:02d}") for k in range(3)}
    _Session._warnings(s, rec)
    w = s.state.status()["warnings"]
    assert "frame 2 (frame_0002.dm4) was acquired 80 s after frame 0" in w["clock"] and "mean interval: 40 s" in \
        w["clock"] and "final run will refuse" in w["clock"]
    s.clocks = {k: (f"frame_{k:04d}.dm4", f"2026-12-07T22:0{k}:00") for k in range(3)}
    _Session._warnings(s, rec)
    assert "clock" not in s.state.status()["warnings"]
