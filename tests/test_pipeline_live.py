# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope.pipeline.FramesExecutor``: the live rows are the batch rows, and the final run reuses them."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from ionscope.errors import DataValidationError
from ionscope.pipeline import FramesExecutor, MemorySink, StageCache, from_dict, load_config, run
from ionscope.simulate import acquire

SIM = dict(frame_interval_s=60.0, n_frames=4, shape=(16, 24), energy_step=0.25, dose=400.0, energy_drift_ev=0.3,
           specimen_drift_px=1.0, seed=5)
# the stages that store one row per frame under the default [compute] (fused = true, cache_spectra = false):
# energy drift and registration then read no spectra (the screen's read gives them) and store only the
# small per-frame shifts, recomputed whole in a moment; the Li maps are the per-frame work worth reusing
PER_FRAME = ("limap",)


def _cfg(acq, out):
    return load_config(acq.config_path).replace(
        denoise={"method": "gaussian"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [30.0, 50.0]}, output={"dir": str(out)})


def _follow(cfg):
    from ionscope._outdir import session

    sink = MemorySink()
    ex = FramesExecutor(cfg, sink=sink, settle_s=0.1, poll_s=0.03, late_s=0.5)
    with session(cfg.out_dir):  # the output folder held as `ionscope watch` holds it
        ended = ex.run()
    return ex, sink, ended


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A finished acquisition; the live session sees frames 0-2 (frame 3 is written after it ended)."""
    root = tmp_path_factory.mktemp("night")
    acq = acquire(root / "acq", speed=600.0, **SIM)
    late = root / "late.nc"
    shutil.move(acq.frames_dir / "frame_0003.nc", late)
    cfg = _cfg(acq, root / "out")
    ex, sink, ended = _follow(cfg)
    shutil.move(late, acq.frames_dir / "frame_0003.nc")
    final = run(cfg, show_progress=False)
    batch = run(_cfg(acq, root / "batch"), show_progress=False)  # an independent batch run, nothing live
    return {"acq": acq, "cfg": cfg, "ex": ex, "sink": sink, "ended": ended, "final": final, "batch": batch}


def test_live_rows_go_into_the_stage_cache(night):
    ex, sink = night["ex"], night["sink"]
    assert night["ended"] == "stop file"
    assert [r["frame"] for r in ex.records] == [0, 1, 2] == [r["frame"] for r in sink.frames]
    cache = StageCache(night["cfg"].cache_path)
    keys = [r["key"] for r in ex.records]
    for name in PER_FRAME:  # the cache held, before the final run, one row per frame seen, under its key
        assert cache.rows(name) is not None
    # (the final run rewrote the groups with frame 3 added: its rows carry the live frames' keys first)
    assert list(cache.rows("limap").frames[:3]) == keys


def test_final_run_computes_only_the_missing_frame(night):
    final = night["final"]
    for name in PER_FRAME:
        info = final.stages[name].info
        assert info == {"rows_reused": 3, "rows_computed": 1}, (name, info)
    # the whole-movie stages had nothing live to reuse: computed by the final run
    for name in ("denoise", "sync", "analysis"):
        assert not final.stages[name].cached


def test_live_results_equal_the_batch_results(night):
    ex, sink, final, batch = night["ex"], night["sink"], night["final"], night["batch"]
    li = batch.dataset("limap").li.values
    for r in ex.records:  # each live map is the independent batch run's row, bit for bit
        k = r["frame"]
        np.testing.assert_array_equal(sink.maps[k]["li"].ravel(), li[k].ravel())
        np.testing.assert_array_equal([r["dy"], r["dx"]], batch.dataset("register").drift.values[k])
        assert r["energy_shift"] == pytest.approx(float(batch.dataset("energy_drift").energy_shift.values[k]),
                                                  rel=1e-10, abs=1e-12)
    # and a final run made of reused rows is the batch run, every stage
    for stage, var in (("energy_drift", "energy_shift"), ("register", "drift"), ("limap", "li"),
                       ("limap", "li_std"), ("denoise", "li"), ("sync", "voltage"), ("analysis", "flux_y")):
        np.testing.assert_array_equal(final.dataset(stage)[var].values, batch.dataset(stage)[var].values)


def test_a_causal_registration_keeps_its_rows_out_of_the_cache(tmp_path):
    """``[register] reference = "previous"`` is not the batch computation live: nothing is reused."""
    acq = acquire(tmp_path / "acq", speed=600.0, **{**SIM, "n_frames": 3})
    cfg = _cfg(acq, tmp_path / "out").replace(register={"reference": "previous"})
    ex, _, _ = _follow(cfg)
    assert len(ex.records) == 3
    assert StageCache(cfg.cache_path).rows("limap") is None
    final = run(cfg, show_progress=False)
    assert final.stages["limap"].info.get("rows_reused", 0) == 0


def test_a_holography_config_is_followed_or_refused_clearly(tmp_path):
    # followed live (tests/test_pipeline_live_holography.py) when it names a folder and its interval
    cfg = from_dict({"holography": {"holograms": "holos", "thickness_nm": 50.0}}, base_dir=tmp_path)
    with pytest.raises(DataValidationError, match=r"\[holography\] frame_interval_s: required"):
        FramesExecutor(cfg)
    (tmp_path / "night.zarr").mkdir()
    cfg = from_dict({"holography": {"holograms": "night.zarr", "thickness_nm": 50.0}}, base_dir=tmp_path)
    with pytest.raises(DataValidationError, match=r"folder of hologram files.*ionscope run"):
        FramesExecutor(cfg)


def test_rows_are_written_while_frames_keep_coming(tmp_path, monkeypatch):
    """A watcher never idle (frames queue) still writes its rows to the cache: memory stays bounded."""
    from ionscope.pipeline._live import LiveStore
    from ionscope.pipeline._live_eels_night import EelsNight

    monkeypatch.setattr(LiveStore, "max_waiting", 1)
    monkeypatch.setattr(EelsNight, "idle", lambda self: False)    # never idle
    monkeypatch.setattr(EelsNight, "finish", lambda self: None)   # and no flush at the end
    acq = acquire(tmp_path / "acq", speed=600.0, **{**SIM, "n_frames": 3})
    cfg = _cfg(acq, tmp_path / "out")
    ex, _, _ = _follow(cfg)
    assert len(ex.records) == 3 and ex.night.store.waiting() <= 1
    rows = StageCache(cfg.cache_path).rows("limap")
    assert rows is not None and set(rows.keys) >= set(ex.night.store.rows("limap").keys)
    assert len(rows.frames) == 3
