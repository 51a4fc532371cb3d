# SPDX-License-Identifier: GPL-3.0-or-later
"""Exclusive, crash-safe output folders: lock, completion markers, damaged caches, set publishing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from ionscope._atomic import atomic_path, clean_temporaries, publish_set, recover_sets, staging_dir
from ionscope.errors import OutputLockedError, OutputPathError
from ionscope._lock import LOCK_NAME, folder_lock
from ionscope.pipeline._stores import StageCache


def test_second_holder_is_refused_naming_the_first(tmp_path):
    with folder_lock(tmp_path):
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["state"] == "running"
        with pytest.raises(OutputLockedError, match=rf"in use by run pid {os.getpid()} on host .*--wait"):
            with folder_lock(tmp_path):
                pass
        with pytest.raises(OutputLockedError):
            with folder_lock(tmp_path, wait=0.3, poll_s=0.05):  # waits, then gives up
                pass
    with folder_lock(tmp_path):  # released: free again, no takeover warning
        pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = ("import os, sys; from ionscope._lock import folder_lock\n"
            f"with folder_lock({str(tmp_path)!r}):\n    os._exit(0)\n")  # exits without releasing
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": "src"})
    with pytest.warns(UserWarning, match="taking over the lock left by run pid"):
        with folder_lock(tmp_path):
            pass


def _ds(n=6):
    return xr.Dataset({"v": (("time", "y"), np.arange(n * 2.0).reshape(n, 2))})


def test_stage_without_completion_marker_is_recomputed(tmp_path):
    cache = StageCache(tmp_path / "c.zarr")
    cache.save("s", "k", _ds())
    assert cache.has("s", "k")
    (tmp_path / "c.zarr" / ".s.complete.json").unlink()  # killed between the rename and the marker
    with pytest.warns(UserWarning, match="incomplete .*recomputing"):
        assert not cache.has("s", "k")
    assert not (tmp_path / "c.zarr" / "s").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "metadata"])
def test_damaged_stage_is_discarded_with_a_warning(tmp_path, damage):
    cache = StageCache(tmp_path / "c.zarr")
    cache.save_batched("s", "k", _ds().chunk({"time": 1}), dim="time", batch=2)
    group = tmp_path / "c.zarr" / "s"
    chunk = sorted((group / "v" / "c").rglob("*"))[-1]
    if damage == "flip":
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:3])
    elif damage == "delete":
        chunk.unlink()
    else:
        (group / "zarr.json").write_text("{not json")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert not cache.has("s", "k")
    assert any("discarding it and recomputing" in str(w.message) for w in seen)
    cache.save("s", "k", _ds())
    assert cache.has("s", "k")
    np.testing.assert_array_equal(cache.load("s").v.values, _ds().v.values)


def test_atomic_writer_never_deletes_a_directory_it_did_not_create(tmp_path):
    (tmp_path / "summary.json").mkdir()
    (tmp_path / "summary.json" / "precious.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="a directory is in the way"):
        with atomic_path(tmp_path / "summary.json") as tmp:
            tmp.write_text("{}")
    (tmp_path / "store.zarr").mkdir()
    (tmp_path / "store.zarr" / "notes.txt").write_text("not a store")
    with pytest.raises(OutputPathError, match="not a data store"):
        with atomic_path(tmp_path / "store.zarr") as tmp:
            _ds().to_zarr(tmp, consolidated=False, zarr_format=3)
    assert (tmp_path / "summary.json" / "precious.txt").read_text() == "keep me"
    assert (tmp_path / "store.zarr" / "notes.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_file_in_the_way_of_the_output_folder_is_one_clean_error(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputPathError, match="a file stands where a folder is needed"):
        with folder_lock(tmp_path / "out"):
            pass


# a run killed in the middle of publishing a set: the journal is written, one file moved, then SIGKILL
_KILLED_PUBLISH = """
import json, os
from pathlib import Path
from ionscope._atomic import atomic_path, publish_set, staging_dir
import ionscope._atomic as at
from ionscope._outdir import session
out = Path({out!r})
with session(out) as folder:
    new = staging_dir(out, "report")
    for name in ("a.txt", "fig/b.png"):
        (new / name).parent.mkdir(parents=True, exist_ok=True)
        (new / name).write_text("new")
    def cut(dest, journal):
        plan = json.loads(journal.read_text())
        os.replace(dest / plan["staging"] / "a.txt", dest / "a.txt")
        staging_dir(out, "report")                      # a staging folder of another set being written
        folder.temp_name(out / "x.txt").write_text("leftover")   # an atomic_path temporary
        os._exit(0)                                     # killed: no clean-up of any kind
    at._roll_forward = cut
    publish_set(new, out, ["a.txt", "fig/b.png"], name="report", manifest={{"key": "2"}},
                previous=["a.txt", "fig/b.png", "only_old.txt"])
"""


def test_set_is_published_whole_and_an_interrupted_publication_is_finished(tmp_path):
    from ionscope._outdir import session

    out = tmp_path / "out"
    with session(out):
        old = staging_dir(out, "report")
        for name in ("a.txt", "fig/b.png", "only_old.txt"):
            (old / name).parent.mkdir(parents=True, exist_ok=True)
            (old / name).write_text("old")
        publish_set(old, out, ["a.txt", "fig/b.png", "only_old.txt"], name="report", manifest={"key": "1"})
    # a user's files that merely look like ionscope's temporaries
    (out / ".notes.tmp-deadbeef").write_text("mine")
    (out / ".report.staging-folder").mkdir()
    (out / ".report.staging-folder" / "important.txt").write_text("mine")
    subprocess.run([sys.executable, "-c", _KILLED_PUBLISH.format(out=str(out))], check=True,
                   env={**os.environ, "PYTHONPATH": "src"})
    assert (out / ".report.publish.json").is_file() and (out / "a.txt").read_text() == "new"
    with session(out):  # the next run: finishes the set, drops the killed run's leftovers
        recover_sets(out, "report")
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {"a.txt", "fig/b.png", "report.json", LOCK_NAME, ".ionscope.manifest.json",
                     ".notes.tmp-deadbeef", ".report.staging-folder/important.txt"}
    assert (out / "a.txt").read_text() == (out / "fig" / "b.png").read_text() == "new"
    assert json.loads((out / "report.json").read_text())["key"] == "2"
    assert (out / ".notes.tmp-deadbeef").read_text() == "mine"
    assert clean_temporaries(out) == []


def test_report_never_replaces_a_folder_named_like_an_output(tmp_path):
    from ionscope.operando import run
    from ionscope.report import operando_report_stage
    from ionscope.simulate import operando_eels

    si, _, log = operando_eels(shape=(16, 24), n_frames=4, energy_step=0.5, seed=3)
    (tmp_path / "summary.json").mkdir(parents=True)
    (tmp_path / "summary.json" / "notes.txt").write_text("mine")
    cfg = {"output": {"dir": str(tmp_path)}, "denoise": {"method": "none"}, "register": {"window_ev": [30.0, 50.0]},
           "report": {"movies": [], "viewer": False, "figures": False}}
    # refused before any stage runs (the report's names are checked first), and nothing is left behind
    with pytest.raises(OutputPathError, match=r": summary.json already exists and was not written by ionscope"):
        run(cfg, series=si, log=log, show_progress=False, extra_stages=(operando_report_stage(),))
    assert (tmp_path / "summary.json" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    # moving the folder away is all it takes
    (tmp_path / "summary.json").rename(tmp_path / "moved")
    res = run(cfg, series=si, log=log, show_progress=False, extra_stages=(operando_report_stage(),))
    assert not [n for n, r in res.stages.items() if r.cached]
    assert (tmp_path / "moved" / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    # the same for a re-run whose report is redone: refused, the folder kept
    from ionscope.pipeline._stores import StageCache

    StageCache(tmp_path / "cache.zarr").discard("analysis")
    (tmp_path / "summary.json").unlink()
    (tmp_path / "summary.json").mkdir()
    (tmp_path / "summary.json" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"summary.json(: a directory is in the way| already exists)"):
        run(cfg, series=si, log=log, show_progress=False, extra_stages=(operando_report_stage(),))
    assert (tmp_path / "summary.json" / "notes.txt").read_text() == "mine"
