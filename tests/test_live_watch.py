# SPDX-License-Identifier: GPL-3.0-or-later
"""``operando.watch`` end to end on the fake microscope: live maps, resume, bad frames, final = batch."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError
from ionscope.operando import load_config, run, watch
from ionscope.simulate import acquire

SIM = dict(frame_interval_s=60.0, n_frames=6, shape=(16, 24), energy_step=0.25, dose=400.0, energy_drift_ev=0.3,
           specimen_drift_px=1.0, seed=2)
FAST = dict(serve=False, settle_s=0.15, poll_s=0.03, late_s=0.5)


def _cfg(acq, out=None, **sections):
    cfg = load_config(acq.config_path).replace(
        denoise={"method": "gaussian"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [30.0, 50.0]}, **sections)
    return cfg.replace(output={"dir": str(out)}) if out is not None else cfg


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One live session followed while the fake microscope writes, and an independent batch run."""
    root = tmp_path_factory.mktemp("live")
    acq = acquire(root / "acq", speed=150.0, block=False, **SIM)
    cfg = _cfg(acq)
    seen = []
    res = watch(cfg, on_frame=seen.append, **FAST)
    acq.wait(30)
    batch = run(_cfg(acq, root / "batch"), show_progress=False)
    return {"acq": acq, "res": res, "batch": batch, "seen": seen, "cfg": cfg}


def test_live_frames_are_the_batch_stages(watched):
    res, batch, acq = watched["res"], watched["batch"], watched["acq"]
    assert res.ended_by == "stop file" and res.bad_frames == []
    assert [r["frame"] for r in res.frames] == list(range(6)) == [r["frame"] for r in watched["seen"]]
    causal = xr.open_dataset(res.live_dir / "causal.nc").load()
    # energy drift, registration and Li map of each frame: the batch run's, bit for bit
    # ([register] reference = "first" and a per-frame energy model are causal computations)
    np.testing.assert_array_equal(causal.li.values, batch.li_raw.values)
    # (the energy model is fitted to all frames' spectra at once in batch, one by one live: last-bit
    # differences of the vectorised solver, far below what changes a float32 spectrum)
    np.testing.assert_allclose([r["energy_shift"] for r in res.frames],
                               batch.dataset("energy_drift").energy_shift.values, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal([[r["dy"], r["dx"]] for r in res.frames], batch.dataset("register").drift.values)
    # and they recover the simulator's truth (same tolerances as the batch pipeline's test)
    truth = acq.truth
    assert np.abs(np.array([r["energy_shift"] for r in res.frames]) - truth.energy_shift.values).max() < 0.1
    drift = np.array([[r["dy"], r["dx"]] for r in res.frames])
    assert np.abs(drift + np.c_[truth.drift_y.values, truth.drift_x.values]).max() < 0.2
    # sync with the log read while it grew = the batch sync on the finished log
    np.testing.assert_allclose([r["voltage"] for r in res.frames], batch.sync.voltage.values, rtol=1e-9)
    assert [r["state"] for r in res.frames] == [str(s) for s in batch.sync.state.values]
    # the causal movie is kept apart; the denoised one is closer to the truth than the raw one
    w = truth.weights.sel(component="Li").values
    assert np.corrcoef(causal.li_causal.values.ravel(), w.ravel())[0, 1] > \
        np.corrcoef(causal.li.values.ravel(), w.ravel())[0, 1]
    assert np.isfinite(res.psnr_causal_vs_batch) and res.psnr_causal_vs_batch > 15.0


def test_final_outputs_equal_ionscope_run(watched):
    res, batch = watched["res"], watched["batch"]
    assert res.run is not None
    for stage, var in (("energy_drift", "energy_shift"), ("register", "drift"), ("limap", "li"),
                       ("denoise", "li"), ("sync", "voltage"), ("analysis", "flux_y"), ("analysis", "flux_x")):
        np.testing.assert_array_equal(res.run.dataset(stage)[var].values, batch.dataset(stage)[var].values)


def test_restart_resumes_from_the_cache(watched, tmp_path):
    acq, full = watched["acq"], watched["res"]
    cfg = _cfg(acq, tmp_path / "out")

    def crash_after_three(record):
        if record["frame"] == 2:
            raise KeyboardInterrupt  # what Ctrl-C or a crash does mid-acquisition

    first = watch(cfg, on_frame=crash_after_three, final=False, **FAST)
    assert first.ended_by == "interrupted" and len(first.frames) == 3
    again = watch(cfg, final=False, **FAST)
    assert again.resumed_frames == 3 and [r["frame"] for r in again.frames] == list(range(6))
    live = xr.open_dataset(again.live_dir / "causal.nc").load()
    ref = xr.open_dataset(full.live_dir / "causal.nc").load()
    # the running reference and the causal window were restored: same maps as the uninterrupted session
    np.testing.assert_array_equal(live.li.values, ref.li.values)
    np.testing.assert_array_equal(live.li_causal.values, ref.li_causal.values)
    # a changed configuration does not reuse the cache
    other = watch(cfg.replace(denoise={"method": "none"}), final=False, **FAST)
    assert other.resumed_frames == 0


def test_bad_frames_live_and_in_the_final_run(tmp_path):
    acq = acquire(tmp_path / "acq", speed=150.0, corrupt=(2,), missing=(4,), block=False,
                  **{**SIM, "shape": (16, 24), "energy_step": 0.5})
    res = watch(_cfg(acq, tmp_path / "out"), **FAST)
    acq.wait(30)
    reasons = {b["frame"]: b["reason"] for b in res.bad_frames}
    assert sorted(reasons) == [2, 4]
    assert reasons[2].startswith("corrupt") and reasons[4].startswith("missing")
    assert [r["frame"] for r in res.frames] == [0, 1, 3, 5]
    assert sorted(b["frame"] for b in res.run.bad_frames) == [2, 4]  # the batch run skips the same frames
    assert list(res.run.li_raw.frame_index.values) == [0, 1, 3, 5]


def test_disk_space_is_warned_early(tmp_path, monkeypatch):
    import ionscope.pipeline._live as lw  # the frames executor checks the disk space

    acq = acquire(tmp_path / "acq", speed=300.0, **{**SIM, "n_frames": 2, "shape": (16, 24), "energy_step": 0.5})
    monkeypatch.setattr(lw, "_free_bytes", lambda path: 10 * 2**20)  # 10 MiB left
    res = watch(_cfg(acq, tmp_path / "out"), expected_frames=500, final=False, **FAST)
    assert "disk" in res.warnings and "500" not in res.warnings["disk"]  # frames still to come: 498
    assert "498 frames still expected" in res.warnings["disk"]
    monkeypatch.setattr(lw, "_free_bytes", lambda path: 10**13)
    res = watch(_cfg(acq, tmp_path / "out2"), expected_frames=500, final=False, **FAST)
    assert "disk" not in res.warnings


def test_watch_refuses_a_store(tmp_path):
    acq = acquire(tmp_path / "acq", speed=600.0, **{**SIM, "n_frames": 1, "shape": (16, 24), "energy_step": 0.5})
    (tmp_path / "s.zarr").write_text("not a folder")
    with pytest.raises(DataValidationError, match="follows a folder of frame files"):
        watch(_cfg(acq).replace(input={"series": str(tmp_path / "s.zarr")}), **FAST)
    with pytest.raises(DataValidationError, match="window must be >= 1"):
        watch(_cfg(acq), window=0, **FAST)


def test_frame_hooks_add_maps_trends_and_the_thinning_warning(tmp_path):
    from ionscope.live import FRAME_HOOKS

    def fake_physics(ctx):
        # stands in for eels.li_fraction / eels.thickness: a map and a falling t/λ
        li = np.asarray(ctx.fit.li.values).reshape(ctx.frame.shape[:2])
        return {"maps": {"x": li / 20.0}, "scalars": {"x_mean": float(li.mean() / 20.0),
                                                     "t_over_lambda_mean": 0.5 - 0.1 * ctx.index}}

    acq = acquire(tmp_path / "acq", speed=300.0, **{**SIM, "n_frames": 3, "energy_step": 0.5})
    res = watch(_cfg(acq, tmp_path / "out"), hooks={**FRAME_HOOKS, "physics": fake_physics}, final=False, **FAST)
    assert [round(r["t_over_lambda_mean"], 6) for r in res.frames] == [0.5, 0.4, 0.3]
    assert "pre_edge_counts" in res.frames[0]  # the default hook still runs
    assert res.warnings["thinning"].startswith("mean t/λ down 25 %")  # vs the median of the first frames
    causal = xr.open_dataset(res.live_dir / "causal.nc").load()
    np.testing.assert_allclose(causal.x.values, causal.li.values / 20.0, rtol=1e-6)


def test_live_flux_follows_the_cell_state(watched):
    """The flux from the causal window has the sign of the truth's through-film flux while Li moves.

    The window holds only the past, so ∂c/∂t at the newest frame is a backward difference: on the
    first frame after a change of cell state it still mixes the two states (measured here: the
    first discharge frame comes out with the wrong sign), so only frames in the same state as the
    frame before are compared; the batch run, with the future too, has no such lag.
    """
    res, truth = watched["res"], watched["acq"].truth
    live = np.array([r.get("flux_toward_electrolyte", np.nan) for r in res.frames])
    assert np.isnan(live[0]) and np.isfinite(live[1:]).all()  # needs two frames
    states = [r["state"] for r in res.frames]
    moving = np.array([k > 0 and s != "rest" and s == states[k - 1] for k, s in enumerate(states)])
    assert moving.sum() >= 2
    # the truth's mean through-film flux, signed toward the electrolyte (row 0): −J_y
    sign_true = np.sign(-truth.flux_y.values.mean(axis=(1, 2)))
    assert np.all(np.sign(live[moving]) == sign_true[moving])


def _has_fraction_stage():
    from ionscope.pipeline import TABLE

    return "fraction" in {st.name for st in TABLE}


@pytest.mark.parametrize("form", ["k", pytest.param("region", marks=pytest.mark.slow)])  # the region calibration: slow tier
def test_live_x_and_thickness_through_the_zero_loss_peak(tmp_path, form):
    """With the EELS-physics pipeline (zero-loss peak, plural scattering, x calibration): live x and t/λ."""
    if not _has_fraction_stage():
        pytest.skip("the pipeline has no fraction stage (x, t/λ) yet: EELS-physics issue not merged")
    acq = acquire(tmp_path / "acq", frame_interval_s=60.0, n_frames=4, shape=(16, 24), physics="realistic",
                  dose=1000.0, energy_drift_ev=0.3, specimen_drift_px=0.0, li_chemical_shift_ev=0.0, seed=5,
                  speed=300.0)
    truth = acq.truth
    if form == "k":
        cal = {"k": float(truth.attrs["k_li_co"])}
    else:  # calibrated on frame 0's Li-rich rows (as tests/test_operando_realistic.py does)
        x0 = truth.x_li.isel(time=0)
        y0 = int(np.argmax(x0.mean("x").values > 0.9)) + 1
        cal = {"region": [y0, 16, 0, 24], "x": float(x0.isel(y=slice(y0, 16)).mean()), "frame": 0}
    cfg = _cfg(acq, tmp_path / "out").replace(limap={"fit_range": [45.0, 85.0], "calibration": cal})
    res = watch(cfg, **FAST)
    causal = xr.open_dataset(res.live_dir / "causal.nc").load()
    # t/λ of every frame: the batch limap stage's, bit for bit; x: the batch fraction stage's to far below
    # its error bar (through the zero-loss peak the batch MLLS is not frame-by-frame independent:
    # measured ≤ 0.001 σ)
    np.testing.assert_array_equal(causal.t_over_lambda.values, res.run.dataset("limap").thickness.values)
    frac = res.run.dataset("fraction")
    assert np.nanmax(np.abs(causal.x.values - frac.li.values) / frac.li_std.values) < 0.01
    if form == "region":  # k from frame 0, then used for every later frame, as in the batch run
        fa = res.run.dataset("fraction").attrs
        assert abs(res.frames[-1]["x_k"] - fa["k"]) < 0.01 * fa["k_std"]
    # the t/λ trend is the truth's (the batch pipeline's tolerance)
    np.testing.assert_allclose([r["t_over_lambda_mean"] for r in res.frames],
                               truth.thickness.mean(("y", "x")).values, rtol=0.03)
    assert res.psnr_causal_vs_batch is not None and res.psnr_causal_vs_batch > 15.0
