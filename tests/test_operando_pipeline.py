# SPDX-License-Identifier: GPL-3.0-or-later
"""The staged pipeline end to end: truth recovery, caching, resume, bad inputs, dask cluster."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import CalibrationError, DataValidationError, FileFormatError
from ionscope.operando import read_series, run
from ionscope.pipeline._stores import StageCache
from ionscope.report import operando_report_stage

REPORT = (operando_report_stage(),)

FRAME_S = 60.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A small simulated series on disk (Zarr, read lazily), its log and truth."""
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(16, 24), n_frames=8, energy_step=0.25, energy_drift_ev=0.3,
                                   specimen_drift_px=1.0, dose=400.0, seed=2)
    root = tmp_path_factory.mktemp("sim")
    iio.save(si, root / "series.zarr")
    return {"root": root, "store": root / "series.zarr", "si": si, "truth": truth, "log": log}


def _config(out, **sections):
    cfg = {"input": {"frame_interval_s": FRAME_S}, "output": {"dir": str(out)},
           "register": {"window_ev": [30.0, 50.0]}, "denoise": {"method": "gaussian"},
           "report": {"movies": [], "viewer": False, "figures": False}, "compute": {"frames_per_batch": 3}}
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


@pytest.fixture(scope="module")
def baseline(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    # the corrected 4-D spectra stored too (no longer the default since issue 20): the runs without them
    # must give the same maps
    cfg = _config(out, input={"series": str(sim["store"])}, compute={"cache_spectra": True})
    return run(cfg, log=sim["log"], truth=sim["truth"], show_progress=False)


def test_recovers_simulator_truth(sim, baseline):
    truth, res = sim["truth"], baseline
    # the series stays lazy through the 4-D stages (streamed frame by frame)
    assert res.dataset("register")["si"].chunks is not None
    e_err = np.abs(res.dataset("energy_drift").energy_shift.values - truth.energy_shift.values).max()
    assert e_err < 0.1  # eV: 0.4 channel at 0.25 eV/channel, from 384 summed low-dose spectra
    drift = res.dataset("register").drift.values
    assert np.abs(drift + np.c_[truth.drift_y.values, truth.drift_x.values]).max() < 0.2  # px
    w = truth.weights.sel(component="Li").values
    raw, den = res.li_raw.values, res.li_denoised.values
    assert np.corrcoef(den.ravel(), w.ravel())[0, 1] > np.corrcoef(raw.ravel(), w.ravel())[0, 1]
    an = res.analysis
    states = np.array([str(s) for s in res.sync.state.values])
    assert list(states) == [str(s) for s in truth.state.values]
    moving = states != "rest"
    sign_est = np.sign(an.flux_y.values.mean(axis=(1, 2)))
    sign_true = np.sign(truth.flux_y.values.mean(axis=(1, 2)))
    assert np.all(sign_est[moving] == sign_true[moving])
    # noisy 16x24 maps: through-film fraction within 0.1 of the truth's observable part
    assert abs(an.attrs["truth_through_fraction_estimate"] - an.attrs["truth_through_fraction_observable"]) < 0.1
    assert an.attrs["truth_cosine_observable"] > 0.8


def test_interrupted_run_resumes_to_identical_results(sim, baseline, tmp_path):
    cfg = _config(tmp_path, input={"series": str(sim["store"])})

    def crash_after_limap(name, record):
        if name == "limap":
            raise KeyboardInterrupt("simulated kill after stage 3")

    with pytest.raises(KeyboardInterrupt):
        run(cfg, log=sim["log"], truth=sim["truth"], on_stage=crash_after_limap, show_progress=False,
            extra_stages=REPORT)
    assert StageCache(tmp_path / "cache.zarr").stored_key("denoise") is None
    res = run(cfg, log=sim["log"], truth=sim["truth"], show_progress=False, extra_stages=REPORT)
    cached = {n: r.cached for n, r in res.stages.items()}
    assert cached == {"screen": True, "energy_drift": True, "register": True, "limap": True, "fit_check": False,
                      "fraction": False, "denoise": False, "sync": False, "analysis": False, "report": False}
    for name in ("li_raw", "li_denoised"):
        np.testing.assert_array_equal(getattr(res, name).values, getattr(baseline, name).values)
    for var in ("flux_y", "flux_x", "through_fraction"):
        np.testing.assert_array_equal(res.analysis[var].values, baseline.analysis[var].values)


def test_changed_late_stage_redoes_only_that_stage(sim, tmp_path):
    cfg = _config(tmp_path, input={"series": str(sim["store"])})
    run(cfg, log=sim["log"], show_progress=False, extra_stages=REPORT)
    again = run(cfg, log=sim["log"], show_progress=False, extra_stages=REPORT)
    assert all(r.cached for r in again.stages.values())
    changed = run({**cfg, "analysis": {"profile_bins": 5}}, log=sim["log"], show_progress=False,
                  extra_stages=REPORT)
    redone = [n for n, r in changed.stages.items() if not r.cached]
    assert redone == ["analysis", "report"]
    assert changed.analysis.sizes["position"] == 5
    changed = run({**cfg, "analysis": {"profile_bins": 5}, "denoise": {"method": "none"}}, log=sim["log"],
                  show_progress=False, extra_stages=REPORT)
    assert [n for n, r in changed.stages.items() if not r.cached] == ["denoise", "analysis", "report"]


def test_without_cached_spectra_results_are_identical(sim, baseline, tmp_path):
    cfg = _config(tmp_path, input={"series": str(sim["store"])}, compute={"cache_spectra": False})
    res = run(cfg, log=sim["log"], show_progress=False)
    assert "si" not in res.dataset("register")  # only the shifts are stored
    for stage, var in (("register", "drift"), ("limap", "li"), ("denoise", "li"), ("analysis", "flux_y")):
        np.testing.assert_array_equal(res.dataset(stage)[var].values, baseline.dataset(stage)[var].values)


def test_batched_stage_resumes_mid_stage(tmp_path):
    cache = StageCache(tmp_path / "c.zarr")
    ds = xr.Dataset({"v": (("time", "y"), np.arange(12.0).reshape(6, 2))}).chunk({"time": 1})
    seen = []

    def stop_after_two(start):
        seen.append(start)
        if len(seen) == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.save_batched("s", "k1", ds, dim="time", batch=2, on_batch=stop_after_two)
    assert not cache.has("s", "k1")
    # resume with another batch size: frames 0-3 are done, so only the batch [4, 6) is written
    written = []
    resumed = cache.save_batched("s", "k1", ds, dim="time", batch=4, on_batch=written.append)
    assert resumed == 1 and written == [4] and cache.has("s", "k1")
    np.testing.assert_array_equal(cache.load("s").v.values, ds.v.values)


@pytest.mark.slow  # a LocalCluster of worker processes (~20 s on 2 loaded cores); fast tier: test_pipeline_executors
def test_local_dask_cluster_gives_identical_results(sim, baseline, tmp_path):
    pytest.importorskip("distributed")
    cfg = _config(tmp_path, input={"series": str(sim["store"])}, compute={"scheduler": "local", "n_workers": 2,
                                                                         "cache_spectra": True})
    res = run(cfg, log=sim["log"], truth=sim["truth"], show_progress=False)
    for stage, var in (("energy_drift", "si"), ("register", "si"), ("limap", "li"), ("denoise", "li"),
                       ("analysis", "flux_y")):
        np.testing.assert_array_equal(res.dataset(stage)[var].values, baseline.dataset(stage)[var].values)


def _write_frames(sim, folder):
    import ionscope.io as iio

    folder.mkdir()
    si = sim["si"]
    for k in range(si.sizes["time"]):
        frame = si.isel(time=k).drop_vars("time")
        iio.save(frame, folder / f"frame_{k:03d}.nc")
    return folder


def test_bad_frames_are_reported_and_skipped(sim, tmp_path):
    folder = _write_frames(sim, tmp_path / "frames")
    (folder / "frame_003.nc").unlink()                                   # a missing frame
    (folder / "frame_005.nc").write_bytes(b"\x89HDF\r\n garbage")        # a corrupt file mid-series
    import ionscope.io as iio

    odd = sim["si"].isel(time=6).drop_vars("time")
    iio.save(odd.assign_coords(energy=odd.energy + 0.5), folder / "frame_006.nc")  # another energy axis
    series, bad = read_series(folder, frame_interval_s=FRAME_S)
    reasons = {b["frame"]: b["reason"] for b in bad}
    files = {b["frame"]: b["file"] for b in bad}
    assert sorted(reasons) == [3, 5, 6]
    assert reasons[3].startswith("missing")
    assert reasons[5].startswith("unreadable: not a readable NetCDF file") and files[5] == "frame_005.nc"
    assert "energy axis differs" in reasons[6]
    assert list(series.frame_index.values) == [0, 1, 2, 4, 7]
    np.testing.assert_allclose(series.time.values, (np.array([0, 1, 2, 4, 7]) + 0.5) * FRAME_S)

    res = run(_config(tmp_path / "out", input={"series": str(folder)}), log=sim["log"], show_progress=False)
    assert [b["frame"] for b in res.bad_frames] == [3, 5, 6]
    assert res.analysis.sizes["time"] == 5
    np.testing.assert_array_equal([str(s) for s in res.sync.state.values],
                                  [str(sim["truth"].state.values[k]) for k in (0, 1, 2, 4, 7)])

    with pytest.raises(FileFormatError, match=r"frame 3: missing"):
        read_series(folder, on_bad_frame="error")
    (folder / "frame_003.nc").write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"frame_003.nc: frame 3: unreadable: not a readable NetCDF file"):
        read_series(folder, on_bad_frame="error")


def test_real_files_as_a_frame_folder(real_file, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    for k in range(3):
        (folder / f"si_{k}.dm4").symlink_to(real_file("EELS_SI.dm4"))
    (folder / "si_3.dm3").symlink_to(real_file("test_stackbuilder_imagestack.dm3"))  # not a spectrum image
    # three links to one file share one timestamp: the clocks check (tests/test_io_series_times.py) is not the point
    series, bad = read_series(folder, check_timestamps=False)
    assert series.dims == ("time", "y", "x", "energy") and series.sizes["time"] == 3
    assert series.energy.attrs.get("units") == "eV"
    assert [b["frame"] for b in bad] == [3] and "spectrum image" in bad[0]["reason"]


def test_log_that_does_not_cover_the_frames(sim, tmp_path):
    log = sim["log"]
    short = log.sel(time=slice(None, 5.2 * FRAME_S))
    cfg = _config(tmp_path, input={"series": str(sim["store"])})
    with pytest.raises(DataValidationError, match=r"log does not cover 3 of 8 frame\(s\)"):
        run(cfg, log=short, show_progress=False)
    res = run({**cfg, "sync": {"allow_uncovered": True}}, log=short, show_progress=False)
    assert res.analysis.sizes["time"] == 5
    assert [b["reason"] for b in res.bad_frames] == ["outside the electrochemistry log"] * 3


def test_bad_series_inputs(sim, tmp_path):
    with pytest.raises(FileFormatError, match="no such series"):
        read_series(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="no frame files"):
        read_series(tmp_path / "empty")
    import ionscope.io as iio

    iio.save(sim["si"].isel(time=0).drop_vars("time"), tmp_path / "one.zarr")
    with pytest.raises(Exception, match="expected a series with a 'time' or 'frame' dimension"):
        read_series(tmp_path / "one.zarr")
    with pytest.raises(DataValidationError, match="no series given"):
        run(_config(tmp_path / "o"), show_progress=False)
    with pytest.raises(DataValidationError, match="unknown stage"):
        run(_config(tmp_path / "o", input={"series": str(sim["store"])}), stages=("fly",), show_progress=False)
    # a frame whose energy axis is not calibrated
    frames = _write_frames(sim, tmp_path / "f2")
    bare = sim["si"].isel(time=0).drop_vars(["time", "energy"])
    (frames / "frame_001.nc").unlink()
    iio.save(bare, frames / "frame_001.nc")
    with pytest.raises(CalibrationError, match=r"frame_001.nc: frame 1: not a calibrated spectrum image"):
        read_series(frames, on_bad_frame="error")
    shutil.rmtree(frames)
