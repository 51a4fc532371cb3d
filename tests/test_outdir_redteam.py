# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 17, red team second pass: the output folder on the new layout (``ionscope._outdir``, ``_lock``,
``_atomic``, the run and the demos).

Each case plants something in or around OUT and checks: the user's files keep their bytes, nothing
outside OUT changes, and the refusal (if any) is one line naming the file. Findings are listed in
RELIABILITY.md ("Issue 17 — red team, second pass").
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest

from ionscope._atomic import atomic_path
from ionscope._outdir import MANIFEST, OutputFolder, file_writes, session
from ionscope.cli import main
from ionscope.errors import OutputPathError


def snapshot(root: Path, *, skip: Path | None = None) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        rel = p.relative_to(root).as_posix()
        out[rel] = ("-> " + os.readlink(p)) if p.is_symlink() else "/" if p.is_dir() else \
            hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line(code, err, *needles):
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def forge(out: Path, entries: dict, **extra) -> None:
    """A hand-written ledger (what a user, a script or a copied folder could leave)."""
    (out / MANIFEST).write_text(json.dumps({"ionscope": "output folder ledger", "version": 1, "entries": entries,
                                            "tokens": {}, **extra}))


# --------------------------------------------------------------------------- the hardening left uncommitted


def test_a_users_file_under_the_lock_name_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".ionscope.lock").write_text("my notes about the lock")
    with pytest.raises(OutputPathError, match=r"\.ionscope\.lock: holds something other than ionscope's lock"):
        with session(out):
            pass
    assert (out / ".ionscope.lock").read_text() == "my notes about the lock"
    assert sorted(p.name for p in out.iterdir()) == [".ionscope.lock"]


def test_a_symlink_under_the_lock_or_ledger_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (".ionscope.lock", MANIFEST):
        out = tmp_path / f"out-{name}"
        out.mkdir()
        (out / name).symlink_to(victim)
        with pytest.raises(OutputPathError, match=r"is a symbolic link"):
            with session(out):
                pass
        assert victim.read_text() == "precious" and (out / name).is_symlink()


@pytest.mark.parametrize("content", ["not json at all", "[1, 2, 3]", '{"entries": []}'])
def test_a_users_file_under_the_ledger_name_is_refused_and_kept(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(content)
    with pytest.raises(OutputPathError, match=r"is not an ionscope ledger"):
        with session(out):
            pass
    with pytest.raises(OutputPathError, match=r"is not an ionscope ledger"):  # single files too
        with file_writes():
            with atomic_path(out / "result.nc") as tmp:
                tmp.write_text("x")
    assert (out / MANIFEST).read_text() == content and not (out / "result.nc").exists()


def test_a_file_where_an_output_folder_must_be_is_a_clash(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").write_text("a user's file named figures")
    assert OutputFolder(out).clashes(["figures/flux_map.png"]) == ["figures"]


def test_a_users_store_put_where_ours_was_is_not_ours(tmp_path):
    import numpy as np
    import xarray as xr

    out = tmp_path / "out"
    with session(out):
        with atomic_path(out / "maps.zarr") as tmp:
            xr.Dataset({"a": ("x", np.arange(3.0))}).to_zarr(tmp)
    assert OutputFolder(out).owns("maps.zarr")
    import shutil

    shutil.rmtree(out / "maps.zarr")
    xr.Dataset({"mine": ("y", np.ones(4))}, attrs={"by": "user"}).to_zarr(out / "maps.zarr")
    assert not OutputFolder(out).owns("maps.zarr")
    assert not OutputFolder(out).remove("maps.zarr") and (out / "maps.zarr").is_dir()


def test_a_failed_command_leaves_none_of_its_new_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        with file_writes():
            with atomic_path(tmp_path / "new.nc") as tmp:
                tmp.write_text("written before the failure")
            raise RuntimeError("refused later")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]  # no output, no ledger left


def test_discard_folder_removes_only_ours_and_keeps_a_folder_with_user_files(tmp_path):
    from ionscope._outdir import discard_folder

    out = tmp_path / "out"
    with session(out):
        with atomic_path(out / "ours.txt") as tmp:
            tmp.write_text("ours")
    (out / "frame_0000.nc").write_text("arrived meanwhile")
    assert discard_folder(out) is False  # the folder stays (with its ledger and lock), and the frame in it
    assert sorted(p.name for p in out.iterdir()) == [".ionscope.lock", MANIFEST, "frame_0000.nc"]
    (out / "frame_0000.nc").unlink()
    with session(out):
        with atomic_path(out / "ours.txt") as tmp:
            tmp.write_text("ours")
    assert discard_folder(out) is True and not out.exists()


def test_ionscope_demo_refuses_a_users_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "demo", "-o", out, "--quick", "-q")
    one_line(code, err, str(out), "not empty", "notes.txt")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- (c) a hand-forged ledger


def test_forged_ledger_entries_never_make_a_users_file_ours(tmp_path):
    from ionscope._outdir import discard_folder

    out = tmp_path / "out"
    (out / "live").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "live" / "diary.txt").write_text("mine too")
    forge(out, {"notes.txt": {"kind": "file"}, "live": {"kind": "dir"},
                "summary.json": {"kind": "file", "token": "0123456789ab"}}, created=True)
    (out / "summary.json").write_text("{}")
    before = snapshot(tmp_path, skip=out / MANIFEST)
    folder = OutputFolder(out)
    for rel in ("notes.txt", "live", "live/diary.txt", "summary.json"):
        assert not folder.owns(rel), rel
        assert not folder.remove(rel), rel
    with session(out) as sess:
        with pytest.raises(OutputPathError, match=r"notes.txt: exists and was not written|notes.txt already exist"):
            with atomic_path(out / "notes.txt") as tmp:
                tmp.write_text("ours")
        with pytest.raises(OutputPathError, match=r"live already exist"):
            sess.claim(["live"], kind="dir", mark_dirs=True)
    assert discard_folder(out) is False
    (out / ".ionscope.lock").unlink()  # (the session's own lock)
    assert snapshot(tmp_path, skip=out / MANIFEST) == before


def test_forged_report_manifest_and_ledger_do_not_delete_a_users_file(tmp_path):
    """The old report set is removed only where the ledger's record matches the bytes."""
    from ionscope._atomic import publish_set, staging_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    (out / "report.json").write_text(json.dumps({"files": {"x": "mine.txt"}}))
    forge(out, {"mine.txt": {"kind": "file"}, "report.json": {"kind": "file"}})
    with session(out):
        st = staging_dir(out, "report")
        (st / "a.txt").write_text("new")
        with pytest.raises(OutputPathError, match=r"report.json already exists and was not written by ionscope"):
            publish_set(st, out, ["a.txt"], name="report", manifest={"files": {"a": "a.txt"}},
                        previous=["mine.txt"])
    assert (out / "mine.txt").read_text() == "precious"


def test_forged_ledger_naming_paths_outside_touches_nothing(tmp_path):
    from ionscope._outdir import discard_folder

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    forge(out, {str(victim / "file"): {"kind": "file"}, "../victim": {"kind": "dir"}, "../victim/file": {}},
          tokens={"0123456789ab": [str(victim), "../victim"]})
    (victim / ".file.tmp-0123456789ab-0000abcd").write_text("looks like ours, outside")
    before = snapshot(victim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with session(out):
            pass
        discard_folder(out)
    assert snapshot(victim) == before


def test_a_kill_between_rename_and_record_still_leaves_our_file_ours(tmp_path, monkeypatch):
    """The checksum of the temporary is recorded before the rename (``expect``): a later run replaces it."""
    from ionscope import _outdir

    out = tmp_path / "out"
    with session(out):
        monkeypatch.setattr(_outdir.OutputFolder, "record", lambda self, rels: None)  # the kill: no record
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text('{"a": 1}')
    monkeypatch.undo()
    entry = json.loads((out / MANIFEST).read_text())["entries"]["summary.json"]
    assert "sha256" not in entry and entry["expect"]["size"] == 8
    assert OutputFolder(out).owns("summary.json")
    with session(out):
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text('{"a": 2}')
    assert json.loads((out / "summary.json").read_text()) == {"a": 2}


def test_a_folder_claimed_as_ours_is_marked_and_recognised_by_a_later_session(tmp_path):
    out = tmp_path / "out"
    with session(out) as sess:
        sess.claim(["live"], kind="dir", mark_dirs=True)
        (out / "live" / "key.json").write_text("{}")
    assert OutputFolder(out).owns("live") and OutputFolder(out).owns("live/key.json")
    with session(out) as sess:  # a restarted watch claims it again
        sess.claim(["live"], kind="dir", mark_dirs=True)
    # the same entry copied beside a user's folder of that name proves nothing
    other = tmp_path / "other"
    (other / "live").mkdir(parents=True)
    (other / "live" / "mine.txt").write_text("mine")
    (other / MANIFEST).write_bytes((out / MANIFEST).read_bytes())
    assert not OutputFolder(other).owns("live")


# --------------------------------------------------------------------------- (d) attacks on a run's folders


@pytest.fixture(scope="module")
def sim():
    from ionscope.simulate import operando_eels

    si, _, log = operando_eels(shape=(12, 16), n_frames=5, energy_step=0.5, dose=400.0, seed=5)
    return si, log


def frames_at(sim, folder: Path, names=None) -> Path:
    import ionscope.io as iio

    si, _ = sim
    folder.mkdir(parents=True)
    for k in range(si.sizes["time"]):
        iio.save(si.isel(time=k).drop_vars("time"), folder / f"frame_{k:04d}.nc")
    return folder


def run_toml(tmp_path: Path, sim, series: Path, out: Path, *, figures=False, cache=None) -> Path:
    _, log = sim
    log_path = tmp_path / "log.csv"
    if not log_path.exists():
        log.to_dataframe().to_csv(log_path, float_format="%.9g")
    p = tmp_path / "run.toml"
    p.write_text(f'[input]\nseries = "{series}"\nlog = "{log_path}"\nframe_interval_s = 60.0\n'
                 f'[output]\ndir = "{out}"\n' + (f'cache = "{cache}"\n' if cache else "")
                 + '[register]\nwindow_ev = [30.0, 50.0]\n[denoise]\nmethod = "gaussian"\n'
                 f'[report]\nmovies = []\nviewer = false\nfigures = {"true" if figures else "false"}\n')
    return p


def test_an_input_folder_named_like_an_output_folder_receives_nothing(sim, tmp_path, capsys):
    """OUT may hold the input, but an input at ``OUT/figures`` would have received the figures."""
    out = tmp_path / "out"
    series = frames_at(sim, out / "figures")
    before = snapshot(series)
    code, _, err = cli(capsys, "run", run_toml(tmp_path, sim, series, out, figures=True), "-q")
    one_line(code, err, "figures/", "would be written into the input [input] series", str(series))
    assert snapshot(series) == before
    assert sorted(p.name for p in out.iterdir()) == ["figures"]  # refused before anything was made


@pytest.mark.parametrize("where", ["file", "input", "inside_input", "cache_inside_input"])
def test_out_a_file_the_input_or_inside_it_is_refused_in_one_line(sim, tmp_path, capsys, where):
    series = frames_at(sim, tmp_path / "frames")
    out, cache, needle = tmp_path / "out", None, ""
    if where == "file":
        out.write_text("mine")
        needle = "a file stands where the output folder must be"
    elif where == "input":
        out, needle = series, "is the input [input] series"
    elif where == "inside_input":
        out, needle = series / "results", "is inside the input [input] series"
    else:
        cache, needle = series / "cache.zarr", "config [output] cache"
    before = snapshot(tmp_path, skip=tmp_path / "run.toml")
    code, _, err = cli(capsys, "run", run_toml(tmp_path, sim, series, out, cache=cache), "-q")
    one_line(code, err, needle)
    after = snapshot(tmp_path, skip=tmp_path / "run.toml")
    after.pop("log.csv", None)
    before.pop("log.csv", None)
    assert after == before


@pytest.mark.parametrize("name", ["summary.json", "cache.zarr"])
def test_a_symlink_inside_out_pointing_outside_is_refused(sim, tmp_path, capsys, name):
    series = frames_at(sim, tmp_path / "frames")
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "s.json").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim / "s.json" if name == "summary.json" else victim, target_is_directory=True)
    before = snapshot(victim)
    code, _, err = cli(capsys, "run", run_toml(tmp_path, sim, series, out), "-q")
    one_line(code, err, "symbolic link")
    assert snapshot(victim) == before and (out / name).is_symlink()


def test_frame_names_with_newlines_cannot_forge_console_lines(sim, tmp_path, capsys):
    import shutil

    series = frames_at(sim, tmp_path / "frames")
    shutil.copy(series / "frame_0001.nc", series / "evil\nname: ionscope run done.nc")
    shutil.copy(series / "frame_0001.nc", series / "\x1b[Kclear.nc")
    code, out_text, err = cli(capsys, "run", run_toml(tmp_path, sim, series, tmp_path / "out"), "--no-progress")
    assert code == 0, err
    lines = out_text.splitlines()
    assert not any(line.startswith("name: ionscope") for line in lines)
    assert "\x1b" not in out_text
    listing = [line for line in lines if line.startswith("ignored 2 file(s)")]
    assert len(listing) == 1 and "evil\\nname: ionscope run done.nc" in listing[0] and "\\x1b[Kclear.nc" in listing[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "evil\nname: ionscope run done.nc" in summary["ignored_files"]  # the real name (JSON escapes it)
    # a duplicate frame number named with a newline: the refusal stays one line
    shutil.copy(series / "frame_0002.nc", series / "frame_002\nx.nc")
    code, _, err = cli(capsys, "run", run_toml(tmp_path, sim, series, tmp_path / "out"), "-q")
    one_line(code, err, "frame_002\\nx.nc", "frame_0002.nc")


def test_overwrite_never_deletes_a_users_files_put_into_a_store(sim, tmp_path, capsys):
    import ionscope.io as iio

    si, _ = sim
    store = tmp_path / "store.zarr"
    iio.save(si.isel(time=0), store)
    (store / "my_notes.txt").write_text("mine")
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine too")
    before = snapshot(tmp_path)
    for target, needle in ((store, "holds my_notes.txt, not part of a data store"),
                           (plain, "not part of a data store")):
        code, _, err = cli(capsys, "simulate", "operando", "-o", target, "--quick", "-q", "--overwrite")
        one_line(code, err, str(target), needle)
    assert snapshot(tmp_path) == before  # refused before any work: no log, no ledger beside
    (store / "my_notes.txt").unlink()
    code, _, err = cli(capsys, "simulate", "operando", "-o", store, "--quick", "-q", "--overwrite")
    assert code == 0, err  # a store alone: --overwrite replaces it, as asked


@pytest.mark.parametrize("command", [["demo", "--quick"], ["run", "--demo"]])
def test_demos_refuse_a_folder_they_did_not_create(tmp_path, capsys, command):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "run.toml").write_text("# my own config")
    before = snapshot(tmp_path)
    flag = "-o" if command[0] == "demo" else "--out"
    code, _, err = cli(capsys, *command, flag, d, "-q")
    one_line(code, err, str(d), "not empty")
    assert snapshot(tmp_path) == before


def test_watch_never_echoes_the_token(tmp_path, capsys):
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", n_frames=2, shape=(16, 24), energy_step=0.5, speed=600.0)
    acq.stop_path.unlink()
    code = main(["watch", str(acq.config_path), "--token", "SECRET-7f3a", "--port", "0", "--no-final",
                 "--exit-when-done", "--timeout", "1", "--settle", "0.1", "--out", str(tmp_path / "out")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "live dashboard: http" in cap.out
    assert "SECRET-7f3a" not in cap.out + cap.err
    assert "SECRET-7f3a" not in "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*")
                                        if p.is_file() and p.stat().st_size < 1 << 20)
