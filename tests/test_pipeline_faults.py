# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection on ``ionscope run``: every fault ends in one clean line or a correct result.

Each fault runs the real command in a child process and checks: exit status 0
or 2 (never a traceback), nothing lost or mixed in the output folder, and a
later plain run bit-identical to a clean run. The faults: two concurrent runs,
SIGKILL after every stage, in the middle of a batched stage, while the report
is written and while it is published; a corrupt data chunk; a truncated log
value; a full disk and a read-only file system (tmpfs, root only); a remote
cluster losing a worker, then all of them.

Set ``IONSCOPE_FAULT_LOG=path.jsonl`` to record every fault's outcome (the
counts in RELIABILITY.md come from it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_outdir import write_series, write_toml

pytestmark = pytest.mark.slow  # ~4 min: every fault runs `ionscope run` in child processes

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = ("screen", "energy_drift", "register", "limap", "fraction", "denoise", "sync", "analysis", "report")
DATA_STAGES = STAGES[:-1]

# The child: `ionscope run CONFIG` with an optional kill point (SIGKILL, as a power cut or the OOM killer).
CHILD = textwrap.dedent('''
    import os, signal, sys
    kill = os.environ.get("IONSCOPE_TEST_KILL", "")
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if kill.startswith("after:"):
        import ionscope.pipeline._run as p
        record = p._record
        def _record(res, on_stage, name, rec):
            record(res, on_stage, name, rec)
            if name == kill[6:]:
                die()
        p._record = _record
    elif kill.startswith("batch:"):
        import ionscope.pipeline._stores as st
        save = st.StageCache.save_batched
        def save_batched(self, name, key, ds, **kw):
            if name == kill[6:]:
                kw["on_batch"] = lambda start: die() if start > 0 else None
            return save(self, name, key, ds, **kw)
        st.StageCache.save_batched = save_batched
    elif kill == "report-written":
        import ionscope.report._run as r
        write = r.write_run_report
        def write_then_die(*a, **kw):
            write(*a, **kw)
            die()
        r.write_run_report = write_then_die
    elif kill == "report-publish":
        import ionscope._atomic as at
        def roll(dest, journal):
            import json
            plan = json.loads(journal.read_text())
            rel = plan["files"][0]
            os.replace(dest / plan["staging"] / rel, dest / rel)
            die()
        at._roll_forward = roll
    from ionscope.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def _record(fault: str, outcome: str) -> None:
    path = os.environ.get("IONSCOPE_FAULT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"fault": fault, "outcome": outcome}) + "\n")


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(SRC), "IONSCOPE_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.update(extra)
    return env


def _ionscope(tmp: Path, *args, kill: str = "", wait: bool = True, timeout: float = 300):
    script = tmp / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), "run", *map(str, args), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(IONSCOPE_TEST_KILL=kill))
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err, err[-3000:]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("faults"), shape=(12, 16), n_frames=6, energy_drift_ev=0.2,
                        specimen_drift_px=0.5, seed=5)


def _toml(path: Path, data: Path, out: Path, **extra) -> Path:
    """test_outdir's configuration with a gif movie and two-frame batches (a kill can land mid-batch)."""
    base = {"report": {"movies": ["gif"]}, "compute": {"frames_per_batch": 2}}
    for k, v in extra.items():
        base[k] = {**base.get(k, {}), **v}
    return write_toml(path, data, out, **base)


@pytest.fixture(scope="module")
def clean(data, tmp_path_factory):
    """A clean run: the reference every faulted run must reproduce bit for bit."""
    tmp = tmp_path_factory.mktemp("clean")
    rc, out, err = _ionscope(tmp, _toml(tmp / "run.toml", data, tmp / "out"))
    assert rc == 0, err
    return tmp / "out"


@pytest.fixture(scope="module")
def clean_kept(data, tmp_path_factory):
    """The clean run with the corrected 4-D spectra stored (``[compute] cache_spectra``): its energy_drift
    and register stages are then the batched 4-D writes the "batch:energy_drift" kill interrupts (since
    issue 20 they are not written by default)."""
    tmp = tmp_path_factory.mktemp("clean_kept")
    rc, out, err = _ionscope(tmp, _toml(tmp / "run.toml", data, tmp / "out", compute={"cache_spectra": True}))
    assert rc == 0, err
    return tmp / "out"


def _stage_arrays(out: Path) -> dict:
    from ionscope.pipeline._stores import StageCache

    cache = StageCache(out / "cache.zarr")
    arrays = {}
    for name in DATA_STAGES:
        ds = cache.load(name)
        for v in ds.variables:
            arrays[f"{name}/{v}"] = np.asarray(ds[v].values)
    return arrays


def _summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in ("stage_seconds", "stages_cached")}


def _assert_same_as_clean(out: Path, clean: Path) -> None:
    a, b = _stage_arrays(out), _stage_arrays(clean)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k
    assert _summary(out) == _summary(clean)
    manifest = json.loads((out / "report.json").read_text())
    assert manifest["files"] == json.loads((clean / "report.json").read_text())["files"]
    for rel in manifest["files"].values():
        if rel not in ("summary.json", "report.html"):  # these also list each stage's time and cache use
            assert (out / rel).read_bytes() == (clean / rel).read_bytes(), rel


def _assert_tidy(out: Path) -> None:
    """No temporaries, staging folders, journals or partial stages are left behind."""
    left = [p.relative_to(out).as_posix() for p in out.rglob("*")
            if ".tmp-" in p.name or ".staging-" in p.name or p.name.endswith(".publish.json")
            or ".partial-" in p.name]
    assert not left, left


def _assert_not_mixed(out: Path) -> None:
    """After a kill: the published report set is whole (every listed file exists), or no set yet."""
    manifest = out / "report.json"
    if manifest.is_file() and not (out / ".report.publish.json").exists():
        files = json.loads(manifest.read_text())["files"].values()
        assert all((out / rel).is_file() for rel in files)


# One kill per distinct code path of an interrupted run and its resume (issue 20: was every stage). A kill
# "after:X" fires once stage X is completely stored, so the next run takes the cache-hit path for X and every
# stage before it and computes the rest; what differs between kill points is only how X was stored:
# - after:screen   a whole-saved stage with a view and an after-check (the first stage: nothing else cached);
# - after:limap    a batched stage (per-frame rows, `save_batched`);
# - after:analysis the last data stage: the resumed run computes only the report;
# - after:report   everything stored: the rerun is cache hits only and republishes nothing new.
# after:energy_drift / register / fraction / denoise / sync were dropped: without `cache_spectra` each is a
# whole-saved stage (the same `store.save`, then cache-hit path as screen's, views and after-checks included),
# so they repeated after:screen. Inside a batched write: batch:limap (maps) and batch:energy_drift (the corrected 4-D spectra
# of `cache_spectra`, its own configuration path); the report's two-phase publish: report-written, -publish.
KILLS = ["after:screen", "after:limap", "after:analysis", "after:report",
         "batch:energy_drift", "batch:limap", "report-written", "report-publish"]


@pytest.mark.parametrize("kill", KILLS)
def test_sigkill_then_rerun_is_bit_identical(data, clean, tmp_path, kill, request):
    spectra = {"compute": {"cache_spectra": True}} if kill == "batch:energy_drift" else {}
    if spectra:
        clean = request.getfixturevalue("clean_kept")
    toml = _toml(tmp_path / "run.toml", data, tmp_path / "out", **spectra)
    if kill.startswith("report"):  # a re-run of the report over an older set: old and new must never mix
        rc, _, err = _ionscope(tmp_path, toml)
        assert rc == 0, err
        toml = _toml(tmp_path / "run.toml", data, tmp_path / "out", report={"fps": 3.0})
    rc, out, err = _ionscope(tmp_path, toml, kill=kill)
    assert rc == -signal.SIGKILL, (rc, err[-2000:])
    _no_traceback(err)
    _assert_not_mixed(tmp_path / "out")
    if kill.startswith("report"):
        toml = _toml(tmp_path / "run.toml", data, tmp_path / "out")  # back to the clean settings
    rc, out, err = _ionscope(tmp_path, toml)
    _no_traceback(err)
    assert rc == 0, err
    _assert_same_as_clean(tmp_path / "out", clean)
    _assert_tidy(tmp_path / "out")
    _record(f"SIGKILL {kill}", "clean")


def _wait_for_holder(out: Path, pid: int) -> None:
    """Until the run ``pid`` holds the folder's lock."""
    lock = out / ".ionscope.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            info = json.loads(lock.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("pid") == pid and info.get("state") == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"run {pid} never took the lock")


def test_two_concurrent_runs_never_share_a_folder(data, clean, tmp_path):
    toml = _toml(tmp_path / "run.toml", data, tmp_path / "out")
    first = _ionscope(tmp_path, toml, wait=False)
    _wait_for_holder(tmp_path / "out", first.pid)
    other = _toml(tmp_path / "other.toml", data, tmp_path / "out", analysis={"profile_bins": 5})
    rc2, _, err2 = _ionscope(tmp_path, other)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    _no_traceback(err2)
    assert rc2 == 2 and err2.strip().count("\n") == 0, err2
    assert f"in use by run pid {first.pid}" in err2
    _assert_same_as_clean(tmp_path / "out", clean)
    # with --wait the second run waits its turn instead, then runs on the finished cache
    first = _ionscope(tmp_path, other, wait=False)
    _wait_for_holder(tmp_path / "out", first.pid)
    rc2, out2, err2 = _ionscope(tmp_path, toml, "--wait", "--wait-max", "120")
    first.communicate(timeout=300)
    assert first.returncode == 0 and rc2 == 0, err2
    _assert_same_as_clean(tmp_path / "out", clean)
    _record("two concurrent runs (refuse, --wait)", "clean")


def test_corrupt_data_chunk_is_a_skipped_frame(data, tmp_path):
    shutil.copytree(data / "series.zarr", tmp_path / "series.zarr")
    shutil.copy(data / "log.csv", tmp_path / "log.csv")
    chunk = sorted((tmp_path / "series.zarr" / "si").glob("3.*"))[0]
    raw = bytearray(chunk.read_bytes())
    chunk.write_bytes(bytes(raw[: len(raw) // 3]))  # a frame's data cut short (header intact)
    rc, out, err = _ionscope(tmp_path, _toml(tmp_path / "run.toml", tmp_path, tmp_path / "out"))
    _no_traceback(err)
    assert rc == 0, err
    assert "bad frame 3: -: data unreadable" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_frames"] == 5 and summary["bad_frames_detail"][0]["frame"] == 3
    _record("corrupt data chunk in a frame", "clean")


def test_truncated_log_value_is_one_line_with_its_line_number(data, tmp_path):
    shutil.copy(data / "log.csv", tmp_path / "log.csv")
    lines = (tmp_path / "log.csv").read_text().splitlines()
    col = lines[0].split(",").index("current")
    row = lines[20].split(",")
    row[col] = row[col][:3] + "\x00"  # a value cut off mid-number
    lines[20] = ",".join(row)
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    toml = _toml(tmp_path / "run.toml", data, tmp_path / "out", input={"log": str(tmp_path / "log.csv")})
    rc, _, err = _ionscope(tmp_path, toml)
    _no_traceback(err)
    assert rc == 2 and "line 21 holds NUL bytes" in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "out" / "cache.zarr" / "limap").exists()  # refused before the heavy stages
    _record("truncated log value", "clean")


def _tmpfs(path: Path, size: str, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    opts = ",".join((f"size={size}",) + options)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_and_read_only_file_system(data, tmp_path):
    mnt = tmp_path / "small"
    if not _tmpfs(mnt, "3m"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount): disk-full fault not run")
    try:
        out = mnt / "out"
        # a first run that fits, keeping only shifts (no corrected spectra): its outputs must survive
        small = _toml(tmp_path / "small.toml", data, out, compute={"cache_spectra": False})
        rc, _, err = _ionscope(tmp_path, small)
        assert rc == 0, err
        before = _summary(out)
        files = json.loads((out / "report.json").read_text())["files"]
        # then a run that needs the corrected 4-D series (several MB): the disk fills
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        filler.write_bytes(b"\0" * max(0, free - 200_000))
        big = _toml(tmp_path / "big.toml", data, out, compute={"cache_spectra": True}, report={"fps": 3.0})
        rc, _, err = _ionscope(tmp_path, big)
        _no_traceback(err)
        assert rc == 2 and "disk is full" in err and err.strip().count("\n") == 0, err
        assert _summary(out) == before and all((out / rel).is_file() for rel in files.values())
        _record("disk full (tmpfs)", "clean")
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        rc, _, err = _ionscope(tmp_path, big)
        _no_traceback(err)
        assert rc == 2 and "read-only" in err and err.strip().count("\n") == 0, err
        assert _summary(out) == before
        _record("read-only file system (tmpfs)", "clean")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_cluster_losing_workers(data, clean, tmp_path):
    pytest.importorskip("distributed")
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command line is not installed")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    sched = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], **quiet)
    workers = [subprocess.Popen([str(dask), "worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                                 "--no-dashboard"], **quiet) for _ in range(2)]
    try:
        from ionscope.operando import run
        from ionscope.report import operando_report_stage

        cfg_path = _toml(tmp_path / "run.toml", data, tmp_path / "out",
                         compute={"scheduler": addr, "worker_timeout_s": 6.0})

        def lose_one(name, rec):  # a worker dies in the middle of the run
            if name == "energy_drift":
                os.killpg(workers[0].pid, signal.SIGKILL)

        run(cfg_path, show_progress=False, on_stage=lose_one, extra_stages=(operando_report_stage(),))
        _assert_same_as_clean(tmp_path / "out", clean)
        _record("remote cluster: one of two workers killed mid-run", "clean")

        shutil.rmtree(tmp_path / "out")
        os.killpg(workers[1].pid, signal.SIGKILL)  # now no worker is left at all
        t0 = time.monotonic()
        rc, _, err = _ionscope(tmp_path, cfg_path, timeout=120)
        _no_traceback(err)
        assert rc == 2 and "no worker" in err and err.strip().count("\n") == 0, err
        assert time.monotonic() - t0 < 60
        _record("remote cluster: all workers gone", "clean")
    finally:
        for p in workers + [sched]:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
