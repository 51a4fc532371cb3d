# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 17: a frame whose spectra are stored reversed in energy (coordinate still ascending) is flagged, never
analysed; honest frames, ideal or realistic (zero-loss peak), are never flagged by that gate."""
from __future__ import annotations

import pytest

from ionscope.pipeline import run
from ionscope.pipeline._gates import reversal_reasons


def _config(out, store):
    return {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(out)},
            "register": {"window_ev": [30.0, 50.0]}, "denoise": {"method": "gaussian"}}


@pytest.mark.parametrize("physics", ["ideal", "realistic"])
def test_a_frame_reversed_in_energy_is_flagged_and_left_out(physics, tmp_path):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    kw = {"physics": "realistic", "dose": 300.0, "energy_step": 0.2} if physics == "realistic" else \
        {"dose": 300.0, "energy_step": 0.25}
    si, truth, log = operando_eels(shape=(10, 12), n_frames=6, seed=7, **kw)
    bad = si.copy(data=si.values.copy())
    bad.values[3] = bad.values[3][..., ::-1]  # the channels of frame 3 reversed, its energy axis as it was
    iio.save(bad, tmp_path / "series.zarr")
    refs = truth.references if physics == "ideal" else None
    res = run(_config(tmp_path / "out", tmp_path / "series.zarr"), log=log, references=refs, show_progress=False)
    reasons = {b["frame"]: b["reason"] for b in res.bad_frames}
    assert list(reasons) == [3], res.bad_frames
    assert "reversed in energy" in reasons[3]
    assert res.dataset("limap").sizes["time"] == 5  # the reversed frame is not fitted


def test_honest_frames_are_never_flagged_down_to_low_dose():
    from ionscope.simulate import operando_eels

    for physics, dose in (("ideal", 5.0), ("realistic", 20.0)):
        si, _, _ = operando_eels(shape=(8, 8), n_frames=8, dose=dose, physics=physics, seed=11)
        spectra = si.sum(("y", "x")).values
        assert reversal_reasons(spectra) == [""] * 8, (physics, dose)


def test_live_gates_flag_a_reversed_frame_once_they_judge():
    from ionscope.pipeline import from_dict
    from ionscope.pipeline._live_gates import LiveGates
    from ionscope.simulate import operando_eels

    si, _, _ = operando_eels(shape=(8, 8), n_frames=6, dose=50.0, seed=3)
    gates = LiveGates(from_dict({}).screen)
    for k in range(4):  # honest frames: accepted (the first min_frames ones unjudged, then reviewed)
        stats, reason = gates.counts(si.values[k])
        assert reason == ""
        gates.accept({"frame": k, **stats}, judged=gates.judging)
        assert gates.review() == []
    _, reason = gates.counts(si.values[4][..., ::-1])
    assert "reversed in energy" in reason
