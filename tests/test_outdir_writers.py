# SPDX-License-Identifier: GPL-3.0-or-later
"""The same ownership rules for every writer of an output folder (issue 17): ``run --demo``,
``watch --demo`` / the fake microscope, the live watcher, the holography run and single-file ``-o``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.cli import main

from test_outdir import cli, one_line, record, snapshot


def plant(folder, files: dict) -> dict:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return files


# --------------------------------------------------------------------------- the demos


def test_run_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    d = tmp_path / "d"
    plant(d, {"run.toml": "# my config", "notes.txt": "mine"})
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", "--demo", "--quick", "--out", d, "-q")
    one_line(code, err, "not empty", "run.toml", "not made by ionscope")
    assert snapshot(tmp_path) == before
    record("run --demo --out DIR with the user's run.toml")


def test_watch_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    d = tmp_path / "d"
    plant(d, {"frames/frame_0010.nc": "my frame", "log.csv": "time (s),voltage (V)\n0,3.9\n",
              ".staging/keep.txt": "keep"})
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "watch", "--demo", "--quick", "--frames", "2", "--port", "0", "--no-serve",
                       "--exit-when-done", "-o", d, "-q")
    one_line(code, err, "not empty", "not made by ionscope")
    assert snapshot(tmp_path) == before
    record("watch --demo -o DIR with the user's frames/frame_0010.nc, log.csv, .staging/keep.txt")


def test_fake_microscope_reuses_only_its_own_folder(tmp_path):
    from ionscope.errors import OutputPathError
    from ionscope.simulate import acquire

    kw = dict(n_frames=2, shape=(8, 12), energy_step=1.0, speed=600.0)
    acq = acquire(tmp_path / "acq", **kw)
    first = snapshot(tmp_path / "acq")
    again = acquire(tmp_path / "acq", **kw)  # its own folder: its frames and log replaced, same bytes
    assert again.written == [0, 1]
    assert {k: v for k, v in snapshot(tmp_path / "acq").items() if not k.startswith(".ionscope")} == \
        {k: v for k, v in first.items() if not k.startswith(".ionscope")}
    (tmp_path / "acq" / "frames" / "my_notes.txt").write_text("mine")  # a user file put into its folder later
    acquire(tmp_path / "acq", **kw)
    assert (tmp_path / "acq" / "frames" / "my_notes.txt").read_text() == "mine"
    plant(tmp_path / "theirs", {"log.csv": "theirs"})
    with pytest.raises(OutputPathError, match="not empty .*not made by ionscope"):
        acquire(tmp_path / "theirs", **kw)
    assert (tmp_path / "theirs" / "log.csv").read_text() == "theirs"
    assert acq.written == [0, 1]
    record("fake microscope: own folder reused, a user's folder refused")


@pytest.mark.slow  # ~60 s: two demo runs
def test_run_demo_reruns_in_its_own_folder(tmp_path, capsys):
    d = tmp_path / "d"
    assert main(["run", "--demo", "--quick", "--out", str(d), "-q"]) == 0
    summary = (d / "summary.json").read_text()
    code, printed, err = cli(capsys, "run", "--demo", "--quick", "--out", d)
    assert code == 0, err
    stages = [l.split() for l in printed.splitlines() if l.split() and l.split()[1] in ("cached", "done")]
    assert stages and all(s[1] == "cached" for s in stages), printed  # same simulated bytes: every stage cached
    assert json.loads((d / "summary.json").read_text())["through_fraction"] == json.loads(summary)["through_fraction"]
    record("run --demo again into the folder it made (cached)")


# --------------------------------------------------------------------------- live


def test_watch_refuses_a_live_folder_it_did_not_make(tmp_path, capsys):
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", n_frames=2, shape=(8, 12), energy_step=1.0, speed=600.0)
    out = tmp_path / "out"
    plant(out, {"live/frames/frame_000000.npz": "not a cache of ours", "live/key.json": "{}"})
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "watch", acq.config_path, "--no-serve", "--no-final", "--settle", "0.1",
                       "--timeout", "1", "-o", out, "-q")
    one_line(code, err, "live", "not written by ionscope")
    assert snapshot(tmp_path) == {**before, **{k: v for k, v in snapshot(tmp_path).items()
                                              if k.startswith("out/.ionscope")}}
    record("watch with OUT/live/ a user's folder")


def test_live_cache_is_content_addressed(tmp_path):
    """A frame replaced by other bytes of the same size and mtime is processed again on resume."""
    import os

    from ionscope.pipeline import _live_eels_night as w
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", n_frames=3, shape=(8, 12), energy_step=1.0, speed=600.0, seed=1)
    other = acquire(tmp_path / "other", n_frames=3, shape=(8, 12), energy_step=1.0, speed=600.0, seed=2)
    f1, g1 = acq.frames_dir / "frame_0001.nc", other.frames_dir / "frame_0001.nc"
    assert f1.stat().st_size == g1.stat().st_size
    assert w.fingerprint(f1) != w.fingerprint(g1)
    st = f1.stat()
    f1.write_bytes(g1.read_bytes())
    os.utime(f1, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f1.stat().st_size == st.st_size and f1.stat().st_mtime_ns == st.st_mtime_ns
    assert w.fingerprint(f1) == w.fingerprint(g1)


# --------------------------------------------------------------------------- holography


@pytest.fixture(scope="module")
def holo(tmp_path_factory):
    from ionscope.io import save
    from ionscope.simulate import biased_holograms

    d = tmp_path_factory.mktemp("holo")
    holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], shape=(128, 128),
                                               seed=0, out=d / "holos.zarr")
    save(refs, d / "refs.zarr")
    return d


def holo_cfg(d, out):
    return {"holography": {"holograms": str(d / "holos.zarr"), "references": str(d / "refs.zarr"),
                           "thickness_nm": 60.0, "output": str(out)}}


@pytest.mark.slow  # ~30 s: two holography runs
def test_holography_run_writes_only_its_own_names(holo, tmp_path):
    from ionscope.errors import ConfigError, OutputPathError
    from ionscope.pipeline._holography import run_holography

    out = tmp_path / "out"
    plant(out, {"summary.json": "{\"mine\": 1}", "notes.txt": "mine", ".holo_maps.zarr/keep.txt": "mine"})
    before = snapshot(tmp_path)
    # (.holo_maps.zarr is no longer written: the maps live in the cache's holo_frames; the user's stays untouched)
    with pytest.raises(OutputPathError, match=r"summary.json"):
        run_holography(holo_cfg(holo, out))
    assert snapshot(tmp_path) == before  # refused before any work: no lock, ledger or cache made
    with pytest.raises(ConfigError, match="inside the input"):
        run_holography(holo_cfg(holo, holo / "holos.zarr" / "out"))
    (out / "summary.json").rename(tmp_path / "summary.json")
    first = run_holography(holo_cfg(holo, out))
    assert (out / "notes.txt").read_text() == "mine"
    # a later run from a fresh folder is the same, bit for bit
    again = run_holography(holo_cfg(holo, tmp_path / "fresh"))
    for v in ("step_v", "potential"):
        np.testing.assert_array_equal(first.series[v].values, again.series[v].values)
    assert (out / "curves.csv").read_bytes() == (tmp_path / "fresh" / "curves.csv").read_bytes()
    assert (out / ".holo_maps.zarr" / "keep.txt").read_text() == "mine"
    record("holography: user's summary.json and .holo_maps.zarr in OUT; OUT inside the input store")


def test_holography_refused_start_leaves_nothing(holo, tmp_path):
    from ionscope.errors import IonscopeError
    from ionscope.pipeline._holography import run_holography

    out = tmp_path / "a" / "out"
    cfg = holo_cfg(holo, out)
    cfg["holography"]["log"] = str(tmp_path / "missing.csv")
    with pytest.raises(IonscopeError):
        run_holography(cfg)
    assert not (tmp_path / "a").exists()
    record("holography run failing validation leaves no folder")


# --------------------------------------------------------------------------- single files


def test_single_file_output_never_replaces_a_users_file(tmp_path, capsys):
    out = tmp_path / "sim.nc"
    out.write_text("my own file")
    code, _, err = cli(capsys, "simulate", "limap-movie", "--quick", "-o", out, "-q")
    one_line(code, err, "sim.nc", "not written by ionscope", "--overwrite")
    assert out.read_text() == "my own file"
    assert main(["simulate", "limap-movie", "--quick", "-o", str(out), "-q", "--overwrite"]) == 0
    first = out.read_bytes()
    # written by ionscope now: a plain re-run replaces it (scripts that rerun a command keep working)
    assert main(["simulate", "limap-movie", "--quick", "-o", str(out), "-q", "--seed", "3"]) == 0
    assert out.read_bytes() != first
    # a user's file beside it in the same folder stays untouched by the ledger's bookkeeping
    (tmp_path / "notes.txt").write_text("n")
    assert main(["convert", str(out), str(tmp_path / "copy.zarr"), "-q"]) == 0
    assert main(["convert", str(out), str(tmp_path / "copy.zarr"), "-q"]) == 0  # ours: replaced
    (tmp_path / "foreign.zarr").mkdir()
    (tmp_path / "foreign.zarr" / "data.bin").write_text("theirs")
    code, _, err = cli(capsys, "convert", out, tmp_path / "foreign.zarr", "-q")
    one_line(code, err, "foreign.zarr", "not written by ionscope")
    assert (tmp_path / "foreign.zarr" / "data.bin").read_text() == "theirs"
    assert (tmp_path / "notes.txt").read_text() == "n"
    # a user's file in the place of a secondary output (the log beside a simulated series)
    (tmp_path / "op_log.csv").write_text("my log")
    code, _, err = cli(capsys, "simulate", "operando", "--quick", "-o", tmp_path / "op.zarr", "-q")
    one_line(code, err, "op_log.csv", "not written by ionscope")
    assert (tmp_path / "op_log.csv").read_text() == "my log"
    record("-o FILE over a user's file (refused; --overwrite replaces; ionscope's own replaced)")
