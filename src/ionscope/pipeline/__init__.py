# SPDX-License-Identifier: GPL-3.0-or-later
"""The one runner: every night — EELS or holography, batch or live — on one machine.

A night is a declared *table* of stages (:class:`Stage`: inputs, parameters,
compute), walked by :func:`run_stages`; each stage's result is stored under a
key of its parameters and inputs (:class:`StageCache`, a Zarr group), so a run
that stops resumes and a changed parameter redoes exactly what depends on it.
:func:`run` opens the inputs named by a :class:`Config`, holds the output
folder, picks the table the configuration describes (``[holography]``: the
holography table; else the EELS table) and runs it on an executor (inline,
threads, or a Dask cluster); :class:`FramesExecutor` feeds the same tables
frame by frame while the microscope writes the night (``ionscope watch``),
into the same cache, which the final run then reuses frame by frame.

Science packages (:mod:`ionscope.eels`, :mod:`ionscope.holography`,
:mod:`ionscope.transport`, ...) never import this package; it never imports
:mod:`ionscope.report` (the CLI adds the report stages). Names are resolved
lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    # configuration (pipeline/_config.py)
    "Config": "_config",
    "ScreenConfig": "_config",
    "load_config": "_config",
    "from_dict": "_config",
    # the stage graph and its stores (pipeline/_graph.py, pipeline/_stores.py)
    "Stage": "_graph",
    "Context": "_graph",
    "run_stages": "_graph",
    "StageCache": "_stores",
    "StageRecord": "_stores",
    "FileSetStore": "_filesets",
    # executors: where the work runs (pipeline/_executors.py)
    "Executor": "_executors",
    "InlineExecutor": "_executors",
    "ThreadsExecutor": "_executors",
    "DaskExecutor": "_executors",
    "executor_for": "_executors",
    # one run for every night (pipeline/_run.py)
    "run": "_run",
    "RunResult": "_run",
    "Night": "_run",
    "night_of": "_run",
    # the EELS table (pipeline/_eels.py, its inputs pipeline/_eels_sources.py)
    "STAGES": "_eels",
    "TABLE": "_eels",
    "REFERENCE_MODELS": "_eels_sources",
    # the holography table (pipeline/_holography.py)
    "run_holography": "_holography",
    "HolographyResult": "_holography",
    "HOLOGRAPHY_STAGES": "_holography",
    "as_config": "_run",
    # the frames executor: a night frame by frame while it is written (pipeline/_live*.py)
    "FramesExecutor": "_live",
    "LiveSink": "_live",
    "MemorySink": "_live",
    "process_frame": "_live_eels",
    "FrameContext": "_live_eels",
    "FRAME_HOOKS": "_live_eels",
    # the references' own noise in a run (pipeline/_refs_noise.py)
    "REFERENCES_NOISE_KEYS": "_refs_noise",
    "references_noise_warning": "_refs_noise",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
