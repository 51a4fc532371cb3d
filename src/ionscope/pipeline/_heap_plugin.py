# SPDX-License-Identifier: GPL-3.0-or-later
"""The LocalCluster workers' heap settings, applied inside each worker (imported only with distributed).

glibc reads its ``MALLOC_*_`` variables once, when a process starts. A worker forked from a fork server
inherits the server's heap settings, not the environment the nanny prepares for it, and a fork server
started earlier in the process (by another cluster, with other settings) is reused. ``mallopt`` sets the
same parameters at run time (and, like the variables, turns off glibc's dynamic mmap threshold), so every
worker gets its cluster's settings (:func:`._executors._worker_environ`) whatever started it.
"""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

#: glibc's mallopt parameter numbers (malloc.h)
MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}

#: what :class:`HeapSettings` applied in this (worker) process: {variable: value} where mallopt accepted it
HEAP_APPLIED: dict = {}


class HeapSettings(WorkerPlugin):
    """Set glibc's heap thresholds with ``mallopt`` when a worker starts (no-op where there is no glibc).

    Parameters
    ----------
    env : dict
        ``{"MALLOC_TRIM_THRESHOLD_": bytes, "MALLOC_MMAP_THRESHOLD_": bytes}`` (other keys are ignored).
    """

    name = "ionscope-heap-settings"
    idempotent = True

    def __init__(self, env: dict):
        self.values = {k: int(env[k]) for k in MALLOPT if k in env}

    def setup(self, worker=None):
        import ctypes
        import ctypes.util

        try:
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        except (OSError, AttributeError):
            return
        for name, value in self.values.items():
            if mallopt(MALLOPT[name], int(value)) == 1:
                HEAP_APPLIED[name] = str(value)
