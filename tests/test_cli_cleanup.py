# SPDX-License-Identifier: GPL-3.0-or-later
"""Clean failures leave nothing: a stopped simulator leaves no temporary, ``watch`` says what it waits
for and fails cleanly when nothing comes, a frameless demo leaves no folder, and a large output says
how large before it is written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from ionscope.cli import main
from ionscope.errors import LargeOutputWarning

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _temporaries(folder: Path):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["SIGINT", "SIGTERM"])  # one signal path fast, the other in the slow tier
def test_a_stopped_simulator_leaves_no_temporary(tmp_path, sig):
    env = {**os.environ, "PYTHONPATH": SRC, "IONSCOPE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "ionscope", "simulate", "operando", "-o",
                             str(tmp_path / "s.zarr")], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not _temporaries(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the simulator finished before its output was being written (no temporary seen)")
    time.sleep(0.15)  # writing chunks from several threads
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    if proc.returncode == 0:
        pytest.skip("the write ended before the signal arrived")
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert _temporaries(tmp_path) == [] and not (tmp_path / "s.zarr").exists()
    assert err.strip().splitlines()[-1].startswith("ionscope simulate: ")  # one line, no asyncio noise
    assert "Task was destroyed" not in err and "Traceback" not in err


def test_watch_demo_without_frames_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["watch", "--demo", "--frames", "0", "--no-serve"]) == 2
    assert "--frames 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_watch_says_what_it_waits_for_and_times_out(tmp_path, capsys):
    (tmp_path / "frames").mkdir()
    cfg = tmp_path / "w.toml"
    cfg.write_text('[input]\nseries = "frames"\nlog = "frames/log.csv"\n[output]\ndir = "out"\n')
    from ionscope.live import watch

    lines = []
    res = watch(cfg, serve=False, idle_timeout_s=1.2, poll_s=0.05, final=False, on_wait=lines.append,
                wait_every_s=0.5)
    assert res.ended_by == "timeout" and not res.frames
    assert len(lines) >= 2  # repeated until the first frame (here: until the timeout)
    for text in (str(tmp_path / "frames"), "*{.dm3,.dm4", "log.csv (not there yet)", "STOP"):
        assert text in lines[-1], text
    assert "waiting" in res.warnings  # the dashboard shows the same line
    capsys.readouterr()
    assert main(["watch", str(cfg), "--timeout", "1", "--no-serve", "-o", str(tmp_path / "o2")]) == 2
    out, err = capsys.readouterr()
    assert "waiting for frame files" in out
    assert err.count("\n") == 1 and "--timeout 1 s passed with no usable frame: waiting for frame files" in err
    assert not (tmp_path / "o2").exists()


def test_large_outputs_say_their_size_before_writing(tmp_path, monkeypatch):
    from ionscope.io import save
    from ionscope.simulate import limap_movie, operando_eels

    monkeypatch.setenv("IONSCOPE_LARGE_OUTPUT_GB", "1e-5")  # 10 kB
    movie, _ = limap_movie(shape=(32, 32), n_frames=4)
    seen = []

    def record(message, category, filename, lineno, file=None, line=None):
        seen.append((category, str(message), (tmp_path / "m.zarr").exists(), filename))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", record)
        save(movie, tmp_path / "m.zarr")
        operando_eels(shape=(16, 24), n_frames=2, out=tmp_path / "s.zarr")
    large = [s for s in seen if s[0] is LargeOutputWarning]
    assert len(large) == 2
    assert "writing 16.4 kB (uncompressed) to" in large[0][1] and large[0][2] is False  # before the file
    assert large[0][3] == __file__  # points at the caller's line
    assert "2 frames × 16×24 px × " in large[1][1]
    monkeypatch.setenv("IONSCOPE_LARGE_OUTPUT_GB", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LargeOutputWarning)
        save(movie, tmp_path / "m2.zarr")  # below the threshold: silent
    env = {**os.environ, "PYTHONPATH": SRC, "IONSCOPE_PROGRESS": "0", "IONSCOPE_LARGE_OUTPUT_GB": "1e-6"}
    run = subprocess.run([sys.executable, "-m", "ionscope", "simulate", "limap-movie", "--quick", "-o",
                          str(tmp_path / "q.zarr")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("ionscope simulate: warning: writing ") and run.stderr.count("\n") == 1
    np.testing.assert_equal((tmp_path / "q.zarr").exists(), True)
