# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: ``ionscope demo --quick`` runs every step and recovers the simulator's truth."""
from __future__ import annotations

import pytest


@pytest.fixture
def demo(quick_demo):
    """The session's one ``ionscope demo --quick`` (tests/conftest.py; shared read-only)."""
    status, out, summary, _ = quick_demo
    return status, out, summary


def test_every_step_ran(demo):
    status, _, summary = demo
    failed = {k: v.get("error") for k, v in summary["steps"].items() if v["status"] != "ok"}
    assert status == 0 and not failed, failed
    assert set(summary["steps"]) >= {"simulate", "eels", "linescan", "mva", "denoise", "holography",
                                     "operando", "report"}


def test_outputs_written(demo):
    _, out, summary = demo
    for name in ("report.html", "operando/viewer.html", "operando/movie.mp4", "operando/movie.gif",
                 "data/operando.zarr"):
        assert (out / name).exists(), name
        assert name in summary["files"]
    assert not [p for p in out.rglob(".*tmp-*")]  # no temporaries left behind


def test_demo_numbers_match_truth(demo):
    steps = demo[2]["steps"]
    sim = steps["simulate"]["results"]
    assert sim["li_conservation_rel_error"] < 0.01
    line = steps["linescan"]["results"]
    assert line["mlls_width_nm"] == pytest.approx(line["true_width_nm"], abs=2.0)
    mva = steps["mva"]["results"]
    assert mva["layer_width_nm"] == pytest.approx(mva["true_layer_width_nm"], abs=3.0)
    holo = steps["holography"]["results"]
    for method in ("fourier", "phase_shifting"):
        assert holo[method]["step_v"] == pytest.approx(holo["truth"]["step_v"], rel=0.1)
    den = steps["denoise"]["results"]
    assert den["psnr_denoised_db"] > den["psnr_raw_db"] + 5.0
    op = steps["operando"]["results"]
    # 8 frames: the weakest frame's true net flux (−0.017 x·nm/s) lies below the per-frame estimate's scatter
    # (RMS 0.03 over the 8 frames), so its sign is not decided by the data; measured 7/8 (0.875) with the
    # smoothed GLS weights, 8/8 before. The flux field itself: cosine with the observable truth 0.68 measured
    assert op["direction_agreement"] >= 0.75
    assert op["flux_cosine_vs_observable_truth"] > 0.5
    assert op["li_map_corr_denoised_vs_truth"] > op["li_map_corr_raw_vs_truth"]
