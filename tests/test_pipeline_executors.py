# SPDX-License-Identifier: GPL-3.0-or-later
"""One runner, every executor: both tables (EELS and holography) give identical outputs inline, on threads
and on a Dask LocalCluster of worker processes (LiberTEM's model: one computation, one parametrised test)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ionscope.errors import FileFormatError
from ionscope.pipeline import run

EXECUTORS = ["synchronous", "threads", "local", "remote"]
SRC = Path(__file__).resolve().parents[1] / "src"

# every stage output that carries numbers, per table: (stage, variable)
COMPARED = {
    "eels": [("energy_drift", "energy_shift"), ("register", "drift"), ("limap", "li"), ("limap", "li_std"),
             ("denoise", "li"), ("analysis", "flux_y")],
    "holography": None,  # every data variable of every stage the run records
}


@pytest.fixture(scope="module")
def eels_night(tmp_path_factory):
    """A small simulated EELS night on disk (Zarr) and its electrochemistry log."""
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(12, 16), n_frames=6, energy_step=0.25, energy_drift_ev=0.2,
                                   specimen_drift_px=0.5, dose=300.0, seed=5)
    root = tmp_path_factory.mktemp("eels")
    iio.save(si, root / "series.zarr")

    def config(out):
        return {"input": {"series": str(root / "series.zarr"), "frame_interval_s": 60.0},
                "output": {"dir": str(out)}, "register": {"window_ev": [30.0, 50.0]},
                "denoise": {"method": "gaussian"}, "compute": {"frames_per_batch": 2}}

    return config, {"log": log, "truth": truth}


@pytest.fixture(scope="module")
def holography_night(tmp_path_factory):
    """A small simulated holography night under bias on disk: holograms, references, bias log."""
    from ionscope.io import save
    from ionscope.simulate import biased_holograms

    d = tmp_path_factory.mktemp("holo")
    holos, refs, log, truth = biased_holograms(programme=[("rest", 20), ("hold", 1.0, 40)], shape=(128, 128),
                                               pixel_nm=1.0, dose=800.0, seed=3, out=d / "holos.zarr")
    save(refs, d / "refs.zarr")
    save(truth["thickness_nm"], d / "thickness.nc")
    log.to_dataframe().reset_index().rename(columns={"time": "time (s)", "voltage": "voltage (V)",
                                                    "current": "current (A)"}).to_csv(d / "bias.csv", index=False)

    def config(out):
        return {"holography": {"holograms": str(d / "holos.zarr"), "references": str(d / "refs.zarr"),
                               "log": str(d / "bias.csv"), "thickness_nm": str(d / "thickness.nc"),
                               "output": str(out), "method": "fourier"}}

    return config, {}


def _outputs(result, table):
    """Every compared array of a run, by (stage, variable)."""
    out = {}
    for stage in result.stages:
        try:
            ds = result.dataset(stage)
        except (KeyError, ValueError, TypeError, FileFormatError):
            continue  # a stage that writes files, not arrays (e.g. the report)
        if ds is None:
            continue
        wanted = COMPARED[table]
        names = [v for s, v in wanted if s == stage] if wanted else list(getattr(ds, "data_vars", ()))
        for name in names:
            out[stage, name] = np.asarray(ds[name].values)
    return out


@pytest.fixture(scope="module")
def reference(eels_night, holography_night, tmp_path_factory):
    """Each table run once inline: the reference every executor is compared with."""
    refs = {}
    for table, (config, extra) in (("eels", eels_night), ("holography", holography_night)):
        res = run(config(tmp_path_factory.mktemp(f"ref-{table}")), executor="synchronous", show_progress=False,
                  **extra)
        refs[table] = _outputs(res, table)
        assert refs[table], f"the {table} table recorded no arrays to compare"
    return refs


@pytest.fixture(scope="module")
def remote_cluster():
    """A scheduler and two one-thread worker processes on loopback (``dask scheduler`` / ``dask worker``)."""
    pytest.importorskip("distributed")
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command line is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(SRC), "IONSCOPE_PROGRESS": "0", "MPLBACKEND": "Agg"}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    procs += [subprocess.Popen([str(dask), "worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                                "--no-dashboard"], **quiet) for _ in range(2)]
    try:
        from distributed import Client

        with Client(addr, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield addr, procs[1:]
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


# every (table, executor) pair; the holography table on a LocalCluster starts its own worker processes (~27 s on 2
# loaded cores) and is in the slow tier (issue 20): the fast tier keeps the LocalCluster executor with the EELS
# table and the holography table on worker processes through the remote scheduler (which also loses a worker).
# Also in the slow tier (issue 20, second pass), as repeats of paths the fast tier runs: the EELS table through the
# remote scheduler (the EELS table on worker processes: [eels-local]; the remote scheduler: [holography-remote]),
# and each table inline (the `reference` fixture runs exactly that; [*-threads] compares a second run with it).
_SLOW_CASES = {("holography", "local"), ("eels", "remote"), ("eels", "synchronous"), ("holography", "synchronous")}
CASES = [pytest.param(t, e, marks=pytest.mark.slow) if (t, e) in _SLOW_CASES else (t, e)
         for t in ("eels", "holography") for e in EXECUTORS]


@pytest.mark.parametrize(("table", "executor"), CASES)
def test_every_executor_gives_identical_outputs(table, executor, eels_night, holography_night, reference,
                                                tmp_path, request):
    if executor == "local":
        pytest.importorskip("distributed")
    on_stage = None
    if executor == "remote":
        # a remote scheduler with worker processes on loopback; the holography night loses one of its two
        # workers after its first stage, mid-run, and must still give the same numbers
        executor, workers = request.getfixturevalue("remote_cluster")
        if table == "holography":
            def lose_a_worker(name, record):
                if name == "holo_plan" and workers[0].poll() is None:
                    os.killpg(workers[0].pid, signal.SIGKILL)
                    workers[0].wait(timeout=30)
                    time.sleep(0.5)

            on_stage = lose_a_worker
    config, extra = {"eels": eels_night, "holography": holography_night}[table]
    res = run(config(tmp_path / "out"), executor=executor, show_progress=False, on_stage=on_stage, **extra)
    if on_stage is not None:
        assert workers[0].poll() is not None, "the worker was to be killed mid-run"
    got = _outputs(res, table)
    assert set(got) == set(reference[table])
    for key, want in reference[table].items():
        np.testing.assert_array_equal(got[key], want, err_msg=f"{table} {key} on {executor}")


def test_the_comparison_covers_every_numeric_stage(reference):
    """Guard against a vacuous comparison: the per-frame maps and the analysis of both tables are compared."""
    stages = {t: {s for s, _ in reference[t]} for t in reference}
    assert {"limap", "denoise", "analysis"} <= stages["eels"]
    assert len(stages["holography"]) >= 2, stages["holography"]
