# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame identity (issue 17, item 2): one numbering rule for the batch reader, the run and the live follower.

A frame is numbered from its file name by one pattern; files that do not
match are ignored and listed once; two files of one number are refused with
both names; the time of frame k is always ``start + k·interval`` (a series may
start at any number, a missing frame leaves a gap that is listed); an absurd
number (a date in a backup's name) is refused with the file's name before
anything is read.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import ionscope.io as iio
from ionscope.errors import ConfigError, DataValidationError, FileFormatError
from ionscope.io import frame_number, frame_time, number_frames
from ionscope.live import FrameFollower
from ionscope.operando import read_series, run

FRAME_S = 60.0


@pytest.fixture(scope="module")
def sim():
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(12, 16), n_frames=8, energy_step=0.5, energy_drift_ev=0.2,
                                   specimen_drift_px=0.5, dose=400.0, seed=4)
    return {"si": si, "truth": truth, "log": log}


def _folder(sim, path, numbers, *, name="frame_{:04d}.nc", extra=()):
    path.mkdir(parents=True)
    for k in numbers:
        iio.save(sim["si"].isel(time=k % sim["si"].sizes["time"]).drop_vars("time"), path / name.format(k))
    for e in extra:
        (path / e).write_bytes(b"not a frame")
    return path


def _times(numbers, anchor="mid"):
    return [FRAME_S * k + (0.5 * FRAME_S if anchor == "mid" else 0.0) for k in numbers]


# --------------------------------------------------------------------------- the rule itself


def test_default_pattern_takes_the_last_run_of_digits():
    assert frame_number("frame_0007.nc") == 7
    assert frame_number("scan_2_frame_0012.dm4") == 12
    assert frame_number("0003.hspy") == 3
    assert frame_number("refs.nc") is None
    assert frame_number("frame_0007.nc", pattern=r"frame_(\d+)") == 7
    assert frame_number("scan_0007.nc", pattern=r"frame_(\d+)") is None
    # a pattern whose group takes more than digits numbers nothing
    assert frame_number("frame_x7.nc", pattern=r"frame_(.+)") is None


@pytest.mark.parametrize("pattern, message", [(r"frame_\d+", "exactly one group"),
                                              (r"(frame)_(\d+)", "exactly one group"),
                                              (r"frame_(\d+", "not a regular expression")])
def test_a_pattern_without_one_group_is_refused(pattern, message):
    with pytest.raises(DataValidationError, match=message):
        number_frames(["frame_0001.nc"], pattern=pattern)
    with pytest.raises(ConfigError, match=r"\[input\] frame_pattern"):
        from ionscope.operando import from_dict

        from_dict({"input": {"frame_pattern": pattern}})


def test_numbering_gaps_ignored_files_and_hidden_files():
    fr = number_frames(["frame_0005.nc", "frame_0007.dm4", "refs.nc", ".frame_0006.nc", "notes.txt", "log.csv"])
    assert fr.numbers == [5, 7]
    assert fr.missing() == [6]          # from the first frame: a series starting at 5 misses nothing before it
    assert fr.ignored == ["refs.nc"]    # a frame extension, no number: ignored, listed once
    assert frame_time(np.array([5, 6, 7]), interval_s=FRAME_S).tolist() == [330.0, 390.0, 450.0]
    assert frame_time(5, interval_s=FRAME_S, anchor="start", start_s=10.0) == 310.0


def test_duplicate_numbers_are_refused_with_both_names(tmp_path):
    with pytest.raises(FileFormatError, match=r"frame_0003.nc and frame_003.nc are both frame 3"):
        number_frames(["frame_0002.nc", "frame_0003.nc", "frame_003.nc"], where=tmp_path)


def test_an_absurd_number_is_refused_with_the_file_name():
    names = [f"frame_{k:04d}.nc" for k in range(10)] + ["backup_20250612.nc"]
    with pytest.raises(FileFormatError, match=r"backup_20250612.nc: frame number 20250612 .* max_missing_ratio"):
        number_frames(names)
    # the bound is configurable and stated per frame present: 10 files may miss up to 10 × 11 numbers
    assert number_frames(names[:10] + ["frame_0100.nc"]).missing()[:2] == [10, 11]
    with pytest.raises(FileFormatError, match="frame_0100.nc"):
        number_frames(names[:10] + ["frame_0100.nc"], max_missing_ratio=5.0)
    # a date on the *low* side (the frames numbered far above it) names that file too
    with pytest.raises(FileFormatError, match=r"old_1.nc"):
        number_frames([f"f_{k}.nc" for k in range(5000, 5010)] + ["old_1.nc"])


# --------------------------------------------------------------------------- the batch reader


def test_missing_frame_leaves_a_gap_and_a_stray_file_is_ignored(sim, tmp_path):
    folder = _folder(sim, tmp_path / "f", [0, 1, 2, 3, 5, 6, 7], extra=["refs.nc"])
    series, bad = read_series(folder, frame_interval_s=FRAME_S)
    assert series.frame_index.values.tolist() == [0, 1, 2, 3, 5, 6, 7]
    # frames 5–7 at 330/390/450 s (not shifted to 270/330/390 by the missing frame 4 or by refs.nc)
    np.testing.assert_allclose(series.time.values, _times([0, 1, 2, 3, 5, 6, 7]))
    assert [(b["frame"], b["file"], b["reason"]) for b in bad] == [(4, "", "missing (no file numbered 4)")]
    assert series.attrs["ignored_files"] == ["refs.nc"]
    assert series.attrs["frame_files"] == [f"frame_{k:04d}.nc" for k in (0, 1, 2, 3, 5, 6, 7)]
    np.testing.assert_array_equal(series.isel(time=4).values, sim["si"].isel(time=5).values)


def test_a_series_starting_at_frame_5_is_not_shifted(sim, tmp_path):
    folder = _folder(sim, tmp_path / "f", [5, 6, 7])
    series, bad = read_series(folder, frame_interval_s=FRAME_S)
    np.testing.assert_allclose(series.time.values, [330.0, 390.0, 450.0])
    assert bad == []  # frames before the first file are not "missing"
    series, _ = read_series(folder, frame_interval_s=FRAME_S, time_anchor="start", start_s=-5 * FRAME_S)
    np.testing.assert_allclose(series.time.values, [0.0, 60.0, 120.0])


def test_duplicates_and_dates_are_refused_before_any_frame_is_read(sim, tmp_path, monkeypatch):
    dup = _folder(sim, tmp_path / "dup", [0, 1, 2, 3], name="frame_{:03d}.nc")
    iio.save(sim["si"].isel(time=3).drop_vars("time"), dup / "frame_0003.nc")
    date = _folder(sim, tmp_path / "date", [0, 1, 2])
    (date / "backup_20250612.nc").write_bytes(b"whatever")

    def no_read(*a, **k):
        raise AssertionError("a frame was read before the folder's numbering was checked")

    monkeypatch.setattr(iio, "load", no_read)
    with pytest.raises(FileFormatError, match=r"frame_0003.nc and frame_003.nc are both frame 3"):
        read_series(dup)
    with pytest.raises(FileFormatError, match=r"date/backup_20250612.nc: frame number 20250612"):
        read_series(date)


def test_frame_pattern_selects_the_frames(sim, tmp_path):
    folder = _folder(sim, tmp_path / "f", [0, 1, 2])
    iio.save(sim["si"].isel(time=3).drop_vars("time"), folder / "refs_v2.nc")  # would be "frame 2" by digits
    with pytest.raises(FileFormatError, match="frame_0002.nc and refs_v2.nc are both frame 2"):
        read_series(folder)
    series, bad = read_series(folder, frame_pattern=r"frame_(\d+)")
    assert series.frame_index.values.tolist() == [0, 1, 2] and bad == []
    assert series.attrs["ignored_files"] == ["refs_v2.nc"]
    with pytest.raises(FileFormatError, match=r"no frame files .* do not match the frame pattern"):
        read_series(folder, frame_pattern=r"scan_(\d+)")


# --------------------------------------------------------------------------- the run and its listing


def _toml(path, folder, out, **input_):
    inp = {"series": str(folder), "frame_interval_s": FRAME_S, **input_}
    text = "[input]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in inp.items())
    text += (f"[output]\ndir = {json.dumps(str(out))}\n[register]\nwindow_ev = [30.0, 50.0]\n"
             "[denoise]\nmethod = \"gaussian\"\n[report]\nmovies = []\nviewer = false\nfigures = false\n")
    path.write_text(text)
    return path


def test_run_lists_the_gap_and_the_ignored_file(sim, tmp_path, capsys):
    from ionscope.cli import main

    folder = _folder(sim, tmp_path / "frames", [0, 1, 2, 3, 5, 6, 7], extra=["refs.nc"])
    toml = _toml(tmp_path / "run.toml", folder, tmp_path / "out")
    assert main(["run", str(toml), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "bad frame 4: -: missing (no file numbered 4)" in out
    assert "ignored 1 file(s) not named like frames ([input] frame_pattern): refs.nc" in out
    assert "refs.nc" not in out.split("ignored 1 file(s)")[0]  # never a "bad frame"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["missing_frames"] == [4] and summary["ignored_files"] == ["refs.nc"]
    assert summary["n_frames"] == 7
    times = run(_toml(tmp_path / "run.toml", folder, tmp_path / "out"), show_progress=False).sync.time.values
    np.testing.assert_allclose(times, _times([0, 1, 2, 3, 5, 6, 7]))  # the run keeps the gap in time


def test_frame_pattern_from_the_config_and_the_command_line(sim, tmp_path, capsys):
    from ionscope.cli import main

    folder = _folder(sim, tmp_path / "frames", [0, 1, 2, 3])
    iio.save(sim["si"].isel(time=4).drop_vars("time"), folder / "refs_v2.nc")
    toml = _toml(tmp_path / "run.toml", folder, tmp_path / "out")
    assert main(["run", str(toml), "--no-progress"]) == 2
    assert "frame_0002.nc and refs_v2.nc are both frame 2" in capsys.readouterr().err
    assert main(["run", str(toml), "--no-progress", "--frame-pattern", r"frame_(\d+)"]) == 0
    assert "ignored 1 file(s) not named like frames" in capsys.readouterr().out
    toml = _toml(tmp_path / "run2.toml", folder, tmp_path / "out2", frame_pattern=r"frame_(\d+)")
    res = run(toml, show_progress=False)
    assert res.ignored_files == ["refs_v2.nc"] and res.bad_frames == []


# --------------------------------------------------------------------------- live mode, same rule


def _drain(follower, *, late=True):
    released = []
    for _ in range(3):  # new files settle (settle_s = 0) at the second poll
        released += follower.poll(now=1e9 if late else None)
    return released


def test_the_follower_numbers_frames_as_the_reader_does(sim, tmp_path):
    folder = _folder(sim, tmp_path / "f", [5, 6, 8, 9], extra=["refs.nc"])
    series, bad = read_series(folder, frame_interval_s=FRAME_S)
    f = FrameFollower(folder, settle_s=0.0, late_s=0.0)
    released = _drain(f)
    assert [ff.index for ff in released] == series.frame_index.values.tolist() == [5, 6, 8, 9]
    assert [b["frame"] for b in f.bad] == [b["frame"] for b in bad] == [7]
    assert f.ignored == ["refs.nc"]
    np.testing.assert_allclose([frame_time(ff.index, interval_s=FRAME_S) for ff in released], series.time.values)

    (folder / "frame_0009.nc").rename(folder / "frame_00009.nc")
    iio.save(sim["si"].isel(time=1).drop_vars("time"), folder / "frame_0009.nc")
    with pytest.raises(FileFormatError, match=r"frame_00009.nc and frame_0009.nc are both frame 9"):
        FrameFollower(folder, settle_s=0.0).poll()
    (folder / "frame_00009.nc").unlink()
    (folder / "backup_20250612.nc").write_bytes(b"x")
    with pytest.raises(FileFormatError, match=r"backup_20250612.nc: frame number 20250612"):
        FrameFollower(folder, settle_s=0.0).poll()
    (folder / "backup_20250612.nc").unlink()
    f = FrameFollower(folder, settle_s=0.0, late_s=0.0, pattern=r"frame_(\d+)")
    assert [ff.index for ff in _drain(f)] == [5, 6, 8, 9] and f.ignored == ["refs.nc"]


def test_watch_times_frames_like_the_batch_run(sim, tmp_path):
    from ionscope.live import watch

    folder = _folder(sim, tmp_path / "frames", [2, 3, 5], extra=["refs.nc"])
    (folder / "STOP").write_text("")
    toml = _toml(tmp_path / "run.toml", folder, tmp_path / "out")
    res = watch(toml, serve=False, settle_s=0.0, poll_s=0.01, late_s=0.0, final=False)
    series, bad = read_series(folder, frame_interval_s=FRAME_S)
    assert [r["frame"] for r in res.frames] == series.frame_index.values.tolist() == [2, 3, 5]
    np.testing.assert_allclose([r["time_s"] for r in res.frames], series.time.values)
    assert [b["frame"] for b in res.bad_frames] == [b["frame"] for b in bad] == [4]
    assert res.ignored_files == ["refs.nc"]
    # a restart resumes from the cache under the same frame numbers
    again = watch(toml, serve=False, settle_s=0.0, poll_s=0.01, late_s=0.0, final=False)
    assert again.resumed_frames == 2 and [r["frame"] for r in again.frames] == [2, 3, 5]
