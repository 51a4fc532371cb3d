# SPDX-License-Identifier: GPL-3.0-or-later
"""Live operando: follow an acquisition while the microscope writes it.

* :func:`acquire` — a fake microscope writing an operando series frame by
  frame in real time (partial files, a growing CSV log, a stop file);
* :class:`FrameFollower` / :class:`LogFollower` — which frames are complete,
  which are corrupt or late, and the log rows written so far;
* :func:`watch` — the pipeline's frames executor (:class:`ionscope.pipeline.FramesExecutor`:
  an EELS night's own per-frame stages, written into the run's stage cache)
  with the dashboard as its sink, then the batch pipeline, which reuses what
  was computed live;
* :class:`Dashboard` — the live page served on 127.0.0.1.

Names are resolved lazily so importing this package is cheap.
"""
from __future__ import annotations

from .._lazy import attach

_EXPORTS = {
    "acquire": "ionscope.simulate",
    "Acquisition": "ionscope.simulate",
    "FrameFollower": "ionscope.io",
    "LogFollower": "ionscope.io",
    "watch": "_watch",
    "process_frame": "ionscope.pipeline",
    "FRAME_HOOKS": "ionscope.pipeline",
    "WatchResult": "_watch",
    "LiveState": "_state",
    "Dashboard": "_server",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
