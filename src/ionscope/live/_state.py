# SPDX-License-Identifier: GPL-3.0-or-later
"""What the dashboard shows: one thread-safe object the watcher writes and the server reads.

Per-frame numbers are small records kept for the whole night; maps are kept
in memory only for the newest frames (a bounded LRU) and otherwise read back
from the per-frame cache on disk, so memory stays bounded however long the
acquisition runs.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: maps kept in memory (frames); older ones are read from the cache on request
MAPS_IN_MEMORY = 48
#: log samples sent to the page at most (the curve is decimated beyond this)
MAX_LOG_POINTS = 2000


class LiveState:
    """Shared state of a live session (watcher → dashboard).

    Parameters
    ----------
    title : str
        Shown at the top of the page.
    map_loader : callable(k) → dict of (y, x) arrays, optional
        Reads a frame's maps back from the cache when they left memory.

    Examples
    --------
    >>> st = LiveState("night 3")
    >>> st.put_frame({"frame": 0, "time_s": 30.0, "li_mean": 1.0}, {"li": np.ones((2, 3))})
    >>> st.status()["frames"], st.maps(0)["li"].shape
    (1, (2, 3))
    """

    def __init__(self, title: str = "ionscope live", *, map_loader=None):
        self._lock = threading.Lock()
        self.version = 0
        self.title = title
        self.meta: dict = {}
        self.frames: list[dict] = []
        self.bad: list[dict] = []
        self.warnings: dict[str, str] = {}
        self.phase = "starting"
        self.started = time.time()
        self._maps: OrderedDict[int, dict] = OrderedDict()
        self._loader = map_loader
        self._log = None  # a LogFollower (read-only use here)
        self.final: dict = {}

    # -- writer side ----------------------------------------------------------------
    def _bump(self):
        self.version += 1

    def set_meta(self, **meta) -> None:
        with self._lock:
            self.meta.update(meta)
            self._bump()

    def set_log(self, follower) -> None:
        with self._lock:
            self._log = follower
            self._bump()

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            self._bump()

    def warn(self, key: str, message: str | None) -> None:
        """Set (or clear, with None) one named warning."""
        with self._lock:
            if message is None:
                if self.warnings.pop(key, None) is not None:
                    self._bump()
            elif self.warnings.get(key) != message:
                self.warnings[key] = message
                self._bump()

    def set_bad(self, bad: list[dict]) -> None:
        with self._lock:
            if bad != self.bad:
                self.bad = [dict(b) for b in bad]
                self._bump()

    def put_frame(self, record: dict, maps: dict) -> None:
        """Add or update frame ``record["frame"]`` (its maps replace/extend the stored ones)."""
        k = int(record["frame"])
        with self._lock:
            for i, r in enumerate(self.frames):
                if r["frame"] == k:
                    self.frames[i] = {**r, **record}
                    break
            else:
                self.frames.append(dict(record))
                self.frames.sort(key=lambda r: r["frame"])
            old = self._maps.pop(k, {})
            self._maps[k] = {**old, **{n: np.asarray(v, np.float32) for n, v in maps.items()}}
            while len(self._maps) > MAPS_IN_MEMORY:
                self._maps.popitem(last=False)
            self._bump()

    def set_final(self, **info) -> None:
        with self._lock:
            self.final.update(info)
            self._bump()

    # -- reader side ------------------------------------------------------------------
    def maps(self, k: int) -> dict | None:
        with self._lock:
            m = self._maps.get(k)
            if m is not None:
                return dict(m)
        return self._loader(k) if self._loader is not None else None

    def status(self) -> dict:
        """Small JSON-able status, polled by the page every second."""
        with self._lock:
            frames = self.frames
            lat = [r["latency_s"] for r in frames[-50:] if r.get("latency_s") is not None]
            recent = [r["published_at"] for r in frames[-11:] if "published_at" in r]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) * 60.0 if len(recent) > 1 and recent[-1] > recent[0] \
                else None
            return {
                "version": self.version, "title": self.title, "phase": self.phase,
                "frames": len(frames), "newest": frames[-1]["frame"] if frames else None,
                "rate_per_min": rate,
                "latency_s": lat[-1] if lat else None,
                "latency_median_s": float(np.median(lat)) if lat else None,
                "bad": list(self.bad), "warnings": dict(self.warnings),
                "uptime_s": time.time() - self.started, "meta": dict(self.meta), "final": dict(self.final),
            }

    def series(self) -> dict:
        """Per-frame records plus the (decimated) electrochemistry log."""
        with self._lock:
            frames = [dict(r) for r in self.frames]
            log = self._log
        out = {"frames": frames, "log": None}
        # one consistent (time, values) pair while the watcher's thread may be reading more rows
        times, values = log.snapshot() if hasattr(log, "snapshot") else (log.time, log.values) if log else ([], {})
        if log is not None and len(times) >= 2:
            n = len(times)
            step = max(1, -(-n // MAX_LOG_POINTS))
            idx = list(range(0, n, step))
            if idx[-1] != n - 1:
                idx.append(n - 1)
            out["log"] = {"time": [times[i] for i in idx]}
            for name in ("voltage", "current"):
                if name in values:
                    vals = values[name]
                    out["log"][name] = [None if not np.isfinite(vals[i]) else vals[i] for i in idx]
        return out


def load_npz_maps(path: Path) -> dict | None:
    """Maps of one cached frame (arrays whose name starts with ``map_``)."""
    try:
        with np.load(path) as z:
            return {n[4:]: z[n] for n in z.files if n.startswith("map_")}
    except (OSError, ValueError):
        return None
