# SPDX-License-Identifier: GPL-3.0-or-later
"""The LocalCluster's worker processes (issue 20, a cluster that pays): the allocator settings they start
with, and who wins when a user sets them. The outputs being identical on every executor is
``tests/test_pipeline_executors.py``'s business."""
from __future__ import annotations

import dask
import pytest

from ionscope.pipeline._executors import _worker_environ

# importing distributed loads its configuration (the pre-spawn environment its workers start with)
pytest.importorskip("distributed")

MIB = 2**20


def test_workers_keep_their_heap_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    env = _worker_environ()
    # distributed's 64 KiB trim threshold is replaced; its thread settings are kept
    assert int(env["MALLOC_TRIM_THRESHOLD_"]) == 128 * MIB
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) == 64 * MIB
    assert str(env["OMP_NUM_THREADS"]) == "1"


def test_a_users_own_allocator_settings_win(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    from ionscope.pipeline import _executors

    shell = _executors._shell_environ()
    monkeypatch.setattr(_executors, "_shell_environ", lambda: {**shell, "MALLOC_TRIM_THRESHOLD_": "4096"})
    assert _worker_environ()["MALLOC_TRIM_THRESHOLD_"] == "4096"  # exported in the shell
    monkeypatch.setattr(_executors, "_shell_environ", lambda: shell)
    # what an earlier cluster's nanny left in os.environ (distributed copies it there) is not the user's
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert int(_worker_environ()["MALLOC_TRIM_THRESHOLD_"]) == 128 * MIB
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1000,
                          "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2000}):
        env = _worker_environ()  # in dask's configuration
    assert (int(env["MALLOC_TRIM_THRESHOLD_"]), int(env["MALLOC_MMAP_THRESHOLD_"])) == (1000, 2000)


def test_cluster_workers_start_with_these_settings(monkeypatch):
    """What a worker process of ``DaskExecutor`` actually sees (glibc reads the variables at its start)."""
    import os

    from ionscope.pipeline._executors import DaskExecutor

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)

    def seen():
        # what mallopt set in the worker: glibc's variables are read only when a process starts, and a worker
        # forked from a fork server that an earlier cluster of this process started has that cluster's
        from ionscope.pipeline._heap_plugin import HEAP_APPLIED

        return dict(HEAP_APPLIED)

    # an earlier cluster of this process with other settings (it may start the fork server the next reuses)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1000,
                          "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2000}):
        with DaskExecutor(n_workers=1, worker_timeout_s=60) as ex:
            assert list(ex.client.run(seen).values()) == [{"MALLOC_TRIM_THRESHOLD_": "1000",
                                                           "MALLOC_MMAP_THRESHOLD_": "2000"}]
    with DaskExecutor(n_workers=1, worker_timeout_s=60) as ex:
        got = list(ex.client.run(seen).values())
        threads = list(ex.client.nthreads().values())
        profiling = list(ex.client.run(lambda: dask.config.get("distributed.worker.profile.enabled")).values())
    assert profiling == [False]  # the LocalCluster has no dashboard to show the samples
    assert got == [{"MALLOC_TRIM_THRESHOLD_": str(128 * MIB), "MALLOC_MMAP_THRESHOLD_": str(64 * MIB)}]
    # one worker on this machine's cores: a thread per core, not one busy core and the others idle
    assert threads == [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()]


@pytest.mark.parametrize("n_workers", [1, 2, 3, 64])
def test_threads_per_worker_share_out_the_cores(n_workers):
    import os

    from ionscope.pipeline._executors import _threads_per_worker

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t = _threads_per_worker(n_workers)
    assert t >= 1 and (n_workers * t <= cores or t == 1)
    assert t == max(1, cores // n_workers)


def test_workers_come_from_a_fork_server_unless_told_otherwise():
    import multiprocessing

    from ionscope.pipeline._executors import _start_method

    if "forkserver" in multiprocessing.get_all_start_methods():
        assert _start_method() == "forkserver"  # distributed's default, spawn, replaced
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        assert _start_method() == "fork"  # a user's own choice
