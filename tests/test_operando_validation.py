# SPDX-License-Identifier: GPL-3.0-or-later
"""Up-front validation and real bad-frame skipping in the operando pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.errors import DataValidationError
from ionscope.operando import run
from ionscope.report import operando_report_stage

FRAME_S = 60.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(8, 12), n_frames=6, energy_step=0.5, energy_drift_ev=0.2,
                                   specimen_drift_px=0.5, dose=400.0, seed=4)
    root = tmp_path_factory.mktemp("sim")
    iio.save(si, root / "series.zarr")
    log.to_dataframe().to_csv(root / "log.csv", float_format="%.9g")
    return {"root": root, "si": si, "truth": truth, "log": log}


def _cfg(out, **sections):
    cfg = {"input": {"frame_interval_s": FRAME_S}, "output": {"dir": str(out)},
           "register": {"window_ev": [30.0, 50.0]}, "denoise": {"method": "gaussian"},
           "report": {"movies": [], "viewer": False, "figures": False}, "compute": {"frames_per_batch": 2}}
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


def _stages_written(out):
    cache = out / "cache.zarr"
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith(".") and p.is_dir()) \
        if cache.is_dir() else []


def test_window_outside_the_data_is_refused_before_any_stage(sim, tmp_path):
    with pytest.raises(DataValidationError, match=r"\[register\] window_ev = \[500.0, 600.0\] eV holds 0 channel"):
        run(_cfg(tmp_path, register={"window_ev": [500.0, 600.0]}), series=sim["si"], log=sim["log"],
            show_progress=False)
    assert _stages_written(tmp_path) == []


def test_missing_or_bad_inputs_are_found_before_the_first_heavy_stage(sim, tmp_path):
    cfg = _cfg(tmp_path, input={"series": str(sim["root"] / "series.zarr"), "log": "absent.csv"})
    with pytest.raises(Exception, match="no such log file"):
        run(cfg, show_progress=False)
    with pytest.raises(DataValidationError, match=r"segmentation .*shape \(3, 3\) differs"):
        run(_cfg(tmp_path), series=sim["si"], log=sim["log"], segmentation=np.ones((3, 3), int),
            show_progress=False)
    assert _stages_written(tmp_path) == []


def test_unreadable_log_value_is_refused_with_its_line_or_interpolated(sim, tmp_path):
    lines = (sim["root"] / "log.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("current")
    row = lines[7].split(",")
    row[col] = "1.2e-9x"  # a truncated / garbled value
    lines[7] = ",".join(row)
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    cfg = _cfg(tmp_path / "out", input={"series": str(sim["root"] / "series.zarr"), "log": str(tmp_path / "log.csv")})
    with pytest.raises(DataValidationError, match=r"line 8 \('1.2e-9x' in 'current'\).*log_missing"):
        run(cfg, show_progress=False)
    res = run(_cfg(tmp_path / "out", input={**cfg["input"], "log_missing": "interpolate"}), show_progress=False)
    assert np.all(np.isfinite(res.sync.soc.values)) and np.all(np.isfinite(res.sync.charge_c.values))


def test_start_s_is_honoured_for_a_store_with_a_time_axis(sim, tmp_path):
    from ionscope.operando import read_series

    s0, _ = read_series(sim["root"] / "series.zarr")
    s1, _ = read_series(sim["root"] / "series.zarr", start_s=120.0)
    np.testing.assert_allclose(s1.time.values, s0.time.values + 120.0)


def test_frames_with_corrupt_data_or_nan_are_skipped_listed_and_reported(sim, tmp_path):
    import ionscope.io as iio

    si = sim["si"].copy(deep=True)
    si[2, 3, 4, 10] = np.nan                                   # a detector dropout written as NaN
    store = tmp_path / "s.zarr"
    iio.save(si.chunk({"time": 1}), store)
    chunk = sorted((store / "si").glob("4.*"))[0]
    chunk.write_bytes(chunk.read_bytes()[:20])                 # frame 4's data chunk truncated
    res = run(_cfg(tmp_path / "out", input={"series": str(store)}), log=sim["log"], show_progress=False,
              extra_stages=(operando_report_stage(),))
    reasons = {b["frame"]: b["reason"] for b in res.bad_frames}
    assert sorted(reasons) == [2, 4]
    assert reasons[2] == "data hold 1 NaN/Inf value(s)" and reasons[4].startswith("data unreadable")
    assert res.analysis.sizes["time"] == 4
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bad_frames"] == 2 and [b["frame"] for b in summary["bad_frames_detail"]] == [2, 4]
    assert "Frames marked bad" in (tmp_path / "out" / "report.html").read_text()
    # fewer good frames than asked for: a clear refusal, and on_bad_frame="error" stops at the first
    with pytest.raises(DataValidationError, match=r"only 4 of 6 frames are usable \(67% < \[input\] "
                                                  r"min_good_fraction = 0.8\)"):
        run(_cfg(tmp_path / "out2", input={"series": str(store), "min_good_fraction": 0.8}), log=sim["log"],
            show_progress=False)
    with pytest.raises(DataValidationError, match=r"frame 2: data hold 1 NaN/Inf"):
        run(_cfg(tmp_path / "out3", input={"series": str(store), "on_bad_frame": "error"}), log=sim["log"],
            show_progress=False)


def test_folder_frame_with_corrupt_data_names_its_file(sim, tmp_path):
    import ionscope.io as iio

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(sim["si"].sizes["time"]):
        iio.save(sim["si"].isel(time=k).drop_vars("time"), folder / f"frame_{k:03d}.zarr")
    chunk = next(p for p in (folder / "frame_001.zarr" / "si").rglob("*") if p.is_file() and p.name[0].isdigit())
    chunk.write_bytes(b"\x00" * 7)
    res = run(_cfg(tmp_path / "out", input={"series": str(folder)}), log=sim["log"], show_progress=False)
    assert [(b["frame"], b["file"]) for b in res.bad_frames] == [(1, "frame_001.zarr")]
    assert res.bad_frames[0]["reason"].startswith("data unreadable")
