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
from ionscope.operando._lock import LOCK_NAME, folder_lock
from ionscope.operando._stages import StageCache


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
    code = ("import os, sys; from ionscope.operando._lock import folder_lock\n"
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


def test_set_is_published_whole_and_an_interrupted_publication_is_finished(tmp_path):
    out = tmp_path / "out"
    old = staging_dir(out, "report")
    for name in ("a.txt", "fig/b.png", "only_old.txt"):
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_text("old")
    publish_set(old, out, ["a.txt", "fig/b.png", "only_old.txt"], name="report", manifest={"key": "1"})
    new = staging_dir(out, "report")
    for name in ("a.txt", "fig/b.png"):
        (new / name).parent.mkdir(parents=True, exist_ok=True)
        (new / name).write_text("new")
    # a kill after the journal and the first move: simulate by moving one file by hand
    journal = {"staging": new.name, "files": ["a.txt", "fig/b.png"], "remove": ["only_old.txt"],
               "manifest": {"key": "2"}}
    (out / ".report.publish.json").write_text(json.dumps(journal))
    os.replace(new / "a.txt", out / "a.txt")
    unfinished = staging_dir(out, "report")  # a staging folder of a run killed while writing
    (out / ".x.txt.tmp-0123abcd").write_text("leftover")
    recover_sets(out, "report")
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        "a.txt", "fig/b.png", "report.json", LOCK_NAME} - {LOCK_NAME}
    assert (out / "a.txt").read_text() == (out / "fig" / "b.png").read_text() == "new"
    assert json.loads((out / "report.json").read_text())["key"] == "2"
    assert not unfinished.exists()
    assert clean_temporaries(out) == []
