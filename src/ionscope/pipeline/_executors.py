# SPDX-License-Identifier: GPL-3.0-or-later
"""Executors: where a table's work runs — inline, on threads, or on a Dask cluster.

Every stage of a table is a dask graph built from plain array kernels (the
science functions) and written batch by batch by its store; an executor only
decides which dask scheduler computes those graphs. So one table runs
unchanged on every executor, and the executor-parametrised tests check that
the outputs are identical (LiberTEM's executors are the model: one
user-defined function, run inline, on threads or on a cluster).

* :class:`InlineExecutor` — dask's synchronous scheduler: one task at a time
  in this thread (debugging; the reference the others are compared with);
* :class:`ThreadsExecutor` — dask's threaded scheduler (the default);
* :class:`DaskExecutor` — a ``distributed`` cluster: a LocalCluster of
  worker processes, or a remote scheduler (``tcp://HOST:PORT``) whose address
  is probed first with a bounded handshake. A watchdog stops the run with one
  line when the cluster has had no worker for ``worker_timeout_s``.

Every task runs with one BLAS thread (:func:`one_blas_thread`): dask already
runs one task per core, and it makes float sums independent of the executor,
which is what makes a cluster run bit-identical to the threaded one.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from ..errors import ConfigError, StageFailedError
from ._probe import probe_scheduler


class Executor:
    """Base class: a context manager that makes this executor dask's current scheduler.

    Subclasses set :attr:`kind` and implement :meth:`_enter`; ``with
    executor:`` may be entered once at a time.

    Examples
    --------
    >>> import dask
    >>> class Synchronous(Executor):
    ...     kind = "sync"
    ...     def _enter(self, stack):
    ...         stack.enter_context(dask.config.set(scheduler="synchronous"))
    >>> with Synchronous():
    ...     dask.config.get("scheduler")
    'synchronous'
    """

    kind = "abstract"

    def __init__(self):
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "Executor":
        if self._stack is not None:
            raise RuntimeError(f"{self!r} is already in use")
        self._stack = contextlib.ExitStack()
        try:
            self._enter(self._stack)
        except BaseException:
            self._stack.close()
            self._stack = None
            raise
        return self

    def __exit__(self, *exc) -> bool:
        stack, self._stack = self._stack, None
        if stack is not None:
            return bool(stack.__exit__(*exc))
        return False

    def _enter(self, stack: contextlib.ExitStack) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InlineExecutor(Executor):
    """Every task in the calling thread, one after the other (dask "synchronous").

    Examples
    --------
    >>> import dask.array as da
    >>> with InlineExecutor():
    ...     int(da.ones(10, chunks=5).sum().compute())
    10
    """

    kind = "inline"

    def _enter(self, stack):
        import dask

        stack.enter_context(dask.config.set(scheduler="synchronous"))


class ThreadsExecutor(Executor):
    """dask's threaded scheduler with ``workers`` threads (default: one per core).

    Parameters
    ----------
    workers : int, optional
        Threads (≥ 1); default dask's, one per core.

    Examples
    --------
    >>> import dask.array as da
    >>> with ThreadsExecutor(workers=2):
    ...     int(da.ones(10, chunks=5).sum().compute())
    10
    """

    kind = "threads"

    def __init__(self, workers: int | None = None):
        super().__init__()
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"executor workers: expected an integer >= 1, got {workers!r}")
        self.workers = workers

    def _enter(self, stack):
        import dask

        settings = {"scheduler": "threads"}
        if self.workers is not None:
            settings["num_workers"] = self.workers
        stack.enter_context(dask.config.set(settings))

    def __repr__(self) -> str:
        return f"ThreadsExecutor(workers={self.workers})"


class DaskExecutor(Executor):
    """A ``distributed`` cluster: a LocalCluster of ``n_workers`` processes, or a remote scheduler.

    Parameters
    ----------
    address : str, optional
        ``tcp://HOST:PORT`` of a running scheduler; None starts a LocalCluster.
    n_workers : int
        Worker processes of the LocalCluster: one thread each, or with fewer workers than cores, the
        cores shared out among them (1 worker on 2 cores: 2 threads).
    worker_timeout_s : float
        Fail with one line when no worker has joined (or all have gone) for this long.

    Examples
    --------
    Nothing starts before the executor is entered (``with DaskExecutor(...):``):

    >>> DaskExecutor(n_workers=2), DaskExecutor("tcp://127.0.0.1:8786").kind
    (DaskExecutor(LocalCluster(n_workers=2)), 'dask')
    """

    kind = "dask"

    def __init__(self, address: str | None = None, *, n_workers: int = 2, worker_timeout_s: float = 60.0):
        super().__init__()
        self.address, self.n_workers, self.worker_timeout_s = address, int(n_workers), float(worker_timeout_s)
        self.client = None

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster(n_workers={self.n_workers})"
        return f"DaskExecutor({where})"

    def _enter(self, stack):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(f"config [compute] scheduler = {self.address or 'local'!r} needs dask.distributed: "
                              f"pip install 'ionscope[cluster]'") from None
        where = self.address or "local"
        timeout = self.worker_timeout_s
        try:
            if self.address is None:
                # processes, one thread each (the GIL-bound parts of the kernels scale); fewer workers than
                # cores: the cores left share out as threads (one frame per thread; the numbers do not change)
                # no dashboard, so no statistical profiler either: its 100 samples a second per worker take
                # the GIL from the task (measured: limap CPU 1.17 → 1.10 × the threaded run's, loaded cores)
                with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ(),
                                      "distributed.worker.multiprocessing-method": _start_method(),
                                      "distributed.worker.profile.enabled": False}):
                    cluster = stack.enter_context(_closing(LocalCluster(
                        n_workers=self.n_workers, threads_per_worker=_threads_per_worker(self.n_workers),
                        processes=True, dashboard_address=None)))
                client = Client(cluster)
                # a fork server keeps the environment it was started with (perhaps by an earlier cluster
                # of this process, with other settings): each worker applies the heap settings itself
                from ._heap_plugin import HeapSettings

                client.register_plugin(HeapSettings(_worker_environ()))
            else:
                # a bounded handshake first: a non-dask server or a dead address fails here in one line,
                # within seconds, instead of hanging in (or overflowing) distributed's own connect
                connect_s = max(5.0, min(timeout, 20.0))  # as long as distributed would retry (a scheduler starting)
                probe_scheduler(self.address, timeout_s=min(5.0, timeout), connect_s=connect_s)
                client = Client(self.address, timeout=f"{connect_s}s")
        except (OSError, TimeoutError) as exc:
            raise StageFailedError(f"config [compute] scheduler: cannot reach {where!r} ({exc}); start the scheduler "
                                   f"or use scheduler = 'threads'") from None
        except (MemoryError, ValueError, TypeError) as exc:  # what distributed raises for a server that is not dask
            raise StageFailedError(f"config [compute] scheduler: {where!r} does not answer like a dask scheduler "
                                   f"({type(exc).__name__}); start the scheduler or use scheduler = 'threads'") from None
        stack.enter_context(_closing(client))
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise StageFailedError(f"config [compute] scheduler {where!r}: no worker joined within {timeout:g} s; "
                                   f"start workers (dask worker {where}) or raise [compute] worker_timeout_s") from None
        stack.enter_context(_Watchdog(client, timeout).guard(where))
        stack.enter_context(client.as_current())
        self.client = client
        stack.callback(setattr, self, "client", None)


@contextlib.contextmanager
def _closing(thing):
    """Close a client or cluster on the way out, whatever it says while closing."""
    try:
        yield thing
    finally:
        _quietly(thing.close)


def _quietly(fn, *args) -> None:
    with contextlib.suppress(Exception):
        fn(*args)


class _Watchdog:
    """Closes the client when the scheduler has had no worker for ``timeout`` s."""

    def __init__(self, client, timeout: float, poll_s: float = 1.0):
        self.client, self.timeout, self.poll = client, float(timeout), poll_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ionscope-worker-watchdog", daemon=True)

    @contextlib.contextmanager
    def guard(self, where: str) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        except Exception:
            if self.lost:
                raise StageFailedError(
                    f"config [compute] scheduler {where!r}: the cluster has had no worker for {self.timeout:g} s (all "
                    f"workers died or were stopped); the stages finished so far are cached: start workers and run "
                    f"again") from None
            raise
        finally:
            self._stop.set()
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        empty_since = None
        while not self._stop.wait(self.poll):
            try:
                n = len(self.client.nthreads())
            except Exception:  # noqa: BLE001 - a scheduler that cannot answer counts as no workers
                n = 0
            now = time.monotonic()
            if n:
                empty_since = None
                continue
            empty_since = empty_since or now
            if now - empty_since >= self.timeout:
                self.lost = True
                # closing the client makes the computation waiting on it raise in the run's thread
                _quietly(self.client.close, 5)
                return


def executor_for(spec=None, *, n_workers: int = 2, worker_timeout_s: float = 60.0) -> Executor:
    """An executor from a spec: an :class:`Executor`, or ``"synchronous"``/``"inline"``, ``"threads"``,
    ``"local"`` (LocalCluster) or ``"tcp://HOST:PORT"`` (``[compute] scheduler``).

    Parameters
    ----------
    spec : Executor or str, optional
        The executor, or its name (default ``"threads"``).
    n_workers : int
        Worker processes of a ``"local"`` cluster.
    worker_timeout_s : float
        How long a cluster may be without workers before the run fails.

    Returns
    -------
    Executor
        ``spec`` itself when it is one; nothing is started yet.

    Examples
    --------
    >>> executor_for("threads")
    ThreadsExecutor(workers=None)
    >>> executor_for("tcp://127.0.0.1:8786")
    DaskExecutor(tcp://127.0.0.1:8786)
    """
    if isinstance(spec, Executor):
        return spec
    if spec in (None, "threads"):
        return ThreadsExecutor()
    if spec in ("synchronous", "inline"):
        return InlineExecutor()
    if spec == "local":
        return DaskExecutor(n_workers=n_workers, worker_timeout_s=worker_timeout_s)
    if isinstance(spec, str) and spec.startswith("tcp://"):
        return DaskExecutor(spec, n_workers=n_workers, worker_timeout_s=worker_timeout_s)
    raise ConfigError(f"config [compute] scheduler: expected 'threads', 'synchronous', 'local', 'tcp://HOST:PORT' "
                      f"or an Executor, got {spec!r}")


def executor_from_config(compute) -> Executor:
    """The executor ``[compute]`` asks for (``scheduler``, ``n_workers``, ``worker_timeout_s``)."""
    return executor_for(compute.scheduler, n_workers=compute.n_workers, worker_timeout_s=compute.worker_timeout_s)


def _worker_environ() -> dict:
    """The environment of the LocalCluster's worker processes: distributed's, with glibc's heap kept.

    distributed sets ``MALLOC_TRIM_THRESHOLD_`` = 64 KiB for its workers (to hand freed memory back to
    the system at once); glibc then also stops raising its mmap threshold. The Li-map kernel makes ~60
    numpy temporaries of 0.5–2 MB per 64-pixel block, so each one was either mapped and unmapped (above the
    128 KiB mmap threshold) or, below it, returned to the system by a heap trim and faulted in again by
    the next block. Measured on realistic 128×128×1024 frames, one thread, CPU s per frame
    (``frame_columns``, load 3–4): 2.3–2.9 with glibc's defaults (what the threaded run gets),
    6.1–7.1 with distributed's trim threshold, 3.9–5.0 with only the mmap threshold raised to 64 MiB, and
    2.3–2.9 with both thresholds raised (64 MiB mmap, 128 MiB trim): the workers compute as the threads do.
    The maps are identical (only the allocation strategy changes); a worker then keeps up to 128 MiB of
    freed heap per arena instead of returning it. A user's own setting wins: the variables exported in
    the shell (:func:`_shell_environ`), or a ``distributed.nanny.pre-spawn-environ`` trim threshold other than
    distributed's default.
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    shell = _shell_environ()
    for name, value in (("MALLOC_MMAP_THRESHOLD_", 64 * 2**20), ("MALLOC_TRIM_THRESHOLD_", 128 * 2**20)):
        if name in shell:
            env[name] = shell[name]
        elif name == "MALLOC_TRIM_THRESHOLD_" and str(env.get(name, _DISTRIBUTED_TRIM)) == _DISTRIBUTED_TRIM:
            env[name] = value
        else:
            env.setdefault(name, value)
    return env


def _shell_environ() -> dict:
    """The environment this process started with (Linux: ``/proc/self/environ``; elsewhere ``os.environ``).

    Why not ``os.environ``: distributed's nanny copies its pre-spawn environment into the *parent's*
    ``os.environ`` when it starts a worker and leaves it there, so after any LocalCluster of this process
    (ours, or a plain one with distributed's 64 KiB trim threshold) ``os.environ`` holds the last cluster's
    settings, which would then pass for the user's own.
    """
    import os

    try:
        with open("/proc/self/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _threads_per_worker(n_workers: int) -> int:
    """Threads per LocalCluster worker: the cores this process may use, shared out (at least one).

    Examples
    --------
    >>> _threads_per_worker(10**6)
    1
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(n_workers)))


def _start_method() -> str:
    """How the LocalCluster starts its workers: ``forkserver`` where the platform has it, unless set otherwise.

    distributed's default, ``spawn``, starts each worker as a fresh interpreter that imports
    distributed, numpy, ... again (~0.5 CPU s each) and tears them down at the end (~1.2 s of wall
    time at every run's close, measured on 2 loaded cores); a fork server imports them once and forks
    every worker from it (close 0.1 s). The workers still run in their own processes, with the same
    heap settings (:func:`_worker_environ`, applied in each worker by :class:`._heap_plugin.HeapSettings`:
    a fork server keeps the environment it started with). A ``distributed.worker.multiprocessing-method`` other than
    distributed's default wins.
    """
    import multiprocessing

    import dask

    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method == "spawn" and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return method


#: distributed's own ``MALLOC_TRIM_THRESHOLD_`` for its workers (distributed.yaml)
_DISTRIBUTED_TRIM = "65536"
