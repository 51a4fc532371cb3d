# SPDX-License-Identifier: GPL-3.0-or-later
"""The frames executor: a night fed to its table frame by frame while the microscope writes it.

:class:`FramesExecutor` follows the folder a configuration names
(:class:`ionscope.io.FrameFollower`: complete frames in frame order, late,
missing and corrupt ones listed; :class:`ionscope.io.LogFollower`: the log as
it grows) and hands each complete frame to the night's per-frame work:

* an EELS night (:mod:`ionscope.pipeline._live_eels_night`): the EELS table's
  own per-frame stages (energy drift, registration, Li map; x where
  ``[limap] calibration`` gives it) on the frame, written into the run's stage
  cache under the frame's content key, so the final batch run
  (:func:`ionscope.pipeline.run`) reuses them; plausibility gates, causal
  denoising, the log synchronised as it grows;
* a holography night (:mod:`ionscope.pipeline._live_holo_night`): a folder of
  hologram files (``[holography] holograms``), the plan made once the
  zero-bias holograms are in, then the holography table's per-frame kernel
  (:func:`ionscope.holography.bias_frame`) on each hologram as it arrives:
  ΔV per interface and the potential map, equal to the batch run's.

What happens is reported to a *sink* (:class:`LiveSink`): the live dashboard's
state (:class:`ionscope.live.LiveState`) is one, :class:`MemorySink` another.
Every frame's record and maps are cached in ``<output>/live/frames/`` so a
restarted session resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from .._atomic import atomic_path
from ..errors import DataValidationError
from ._live_store import LiveStore  # noqa: F401 - its old home (callers import it from here)


class LiveSink(Protocol):
    """Where the frames executor reports; every method returns at once (the executor does not wait).

    Methods
    -------
    set_meta(**info)
        Facts of the session: folder, log, frame size, pixel size, what is shown.
    set_log(follower)
        The growing log (an object with ``snapshot() -> (times, {name: values})``).
    set_phase(phase)
        ``"watching"``, ``"final batch run"``, ``"done"``.
    warn(key, message)
        Set one named warning (``message=None`` clears it).
    set_bad(frames)
        The list of bad frames so far (``{"frame", "file", "reason"}``).
    put_frame(record, maps)
        A frame done, or updated: its record (``"frame"``, ``"time_s"``, numbers) and maps ((y, x) arrays).
    set_final(**info)
        What the final batch run produced.

    Any object with these methods is a sink: :class:`MemorySink` keeps everything in memory, the
    dashboard's state (:mod:`ionscope.live`) serves it.

    Parameters
    ----------
    *args, **kwargs
        None: a protocol is not made itself; each implementation has its own constructor.

    Examples
    --------
    >>> sink = MemorySink()
    >>> all(callable(getattr(sink, m)) for m in ("set_meta", "set_log", "set_phase", "warn", "set_bad",
    ...                                          "put_frame", "set_final"))
    True
    """

    def set_meta(self, **info) -> None: ...

    def set_log(self, follower) -> None: ...

    def set_phase(self, phase: str) -> None: ...

    def warn(self, key: str, message: str | None) -> None: ...

    def set_bad(self, frames: list) -> None: ...

    def put_frame(self, record: dict, maps: dict) -> None: ...

    def set_final(self, **info) -> None: ...


class MemorySink:
    """A :class:`LiveSink` that keeps what it is told (no dashboard).

    Examples
    --------
    >>> s = MemorySink()
    >>> s.put_frame({"frame": 3, "time_s": 210.0}, {"li": np.zeros((2, 2))}); s.warn("disk", "low")
    >>> [r["frame"] for r in s.frames], s.warnings
    ([3], {'disk': 'low'})
    """

    def __init__(self):
        self.meta: dict = {}
        self.log = None
        self.phase = "starting"
        self.warnings: dict = {}
        self.bad: list = []
        self.frames: list = []
        self.maps: dict = {}
        self.final: dict = {}

    def set_meta(self, **info) -> None:
        self.meta.update(info)

    def set_log(self, follower) -> None:
        self.log = follower

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    def warn(self, key: str, message: str | None) -> None:
        if message is None:
            self.warnings.pop(key, None)
        else:
            self.warnings[key] = message

    def set_bad(self, frames: list) -> None:
        self.bad = [dict(b) for b in frames]

    def put_frame(self, record: dict, maps: dict) -> None:
        k = int(record["frame"])
        old = next((r for r in self.frames if r["frame"] == k), None)
        if old is None:
            self.frames.append(dict(record))
        else:
            old.update(record)
        self.maps[k] = {**self.maps.get(k, {}), **maps}

    def set_final(self, **info) -> None:
        self.final.update(info)


# --------------------------------------------------------------------------- the per-frame cache


class FrameCache:
    """Each processed frame as one ``.npz`` (its record as JSON, arrays, maps named ``map_*``) in a folder.

    Parameters
    ----------
    folder : Path
        ``<output>/live/frames``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> c = FrameCache(pathlib.Path(tempfile.mkdtemp()) / "frames")
    >>> c.save({"frame": 2, "time_s": 150.0}, {"li": np.ones((2, 3))})
    >>> c.record(2)["time_s"], c.maps(2)["li"].shape
    (150.0, (2, 3))
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, k: int) -> Path:
        return self.folder / f"frame_{k:06d}.npz"

    def save(self, rec: dict, maps: dict | None = None, **arrays) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(int(rec["frame"]))) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, record=np.array(json.dumps(rec, default=_jsonable)), **arrays,
                         **{f"map_{n}": v for n, v in (maps or {}).items()})

    def load(self, k: int) -> tuple[dict, dict] | None:
        """``(record, {name: array})`` of frame ``k`` (maps keep their ``map_`` prefix), None if unreadable."""
        try:
            with np.load(self.path(k)) as z:
                return json.loads(str(z["record"])), {n: z[n] for n in z.files if n != "record"}
        except (OSError, ValueError, KeyError):
            return None

    def record(self, k: int) -> dict | None:
        got = self.load(k)
        return None if got is None else got[0]

    def maps(self, k: int) -> dict | None:
        got = self.load(k)
        return None if got is None else {n[4:]: v for n, v in got[1].items() if n.startswith("map_")}

    def update(self, rec: dict, maps: dict | None = None) -> None:
        """Rewrite frame ``rec["frame"]`` with this record, its cached arrays and its maps updated by ``maps``."""
        got = self.load(int(rec["frame"]))
        arrays = {} if got is None else dict(got[1])
        arrays.update({f"map_{n}": v for n, v in (maps or {}).items()})
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(int(rec["frame"]))) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, record=np.array(json.dumps(rec, default=_jsonable)), **arrays)

    def reset(self, key: str, key_file: Path) -> None:
        """Start afresh when the cache was made under another configuration ``key``."""
        if key_file.exists():
            try:
                old = json.loads(key_file.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                old = None
            if old != key:
                for stale in self.folder.glob("frame_*.npz"):
                    stale.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(key_file) as tmp:
            tmp.write_text(json.dumps({"key": key}))

    def prune(self, keep) -> None:
        """Remove the cached frames whose number ``keep(k)`` refuses (only names :meth:`path` makes)."""
        for stale in self.folder.glob("frame_*.npz"):
            number = stale.stem.split("_")[1]
            if number.isdigit() and len(number) == 6 and not keep(int(number)):
                stale.unlink()


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def fingerprint(path) -> str:
    """A frame file's identity by content (name, size, SHA-256): other bytes of the same size and
    modification time are processed again, never taken from the live cache."""
    from ._framekeys import file_digest

    path = Path(path)
    return f"{path.name}|{file_digest(path)}"


# --------------------------------------------------------------------------- what every live night shares


class LiveNight:
    """What every live night shares: the followers, the stop file, the cache, the waiting line, disk space.

    A night subclass implements :meth:`handle` (one complete frame; False:
    retry it at a later poll), :meth:`resume` (reload the cache) and may
    implement :meth:`idle` (work done while no frame waits; True when it did
    some) and :meth:`resync` (the log grew).
    """

    #: what the frames are, for the waiting line
    frame_kind = "frame files"
    #: the configuration keys a frame-numbering error names
    config_keys = ("[input] frame_pattern", "[input] max_missing_ratio")

    def __init__(self, cfg, *, folder: Path, log_path: Path | None, sink, poll_s: float, settle_s: float,
                 late_s: float, stop_file: str, sidecar: str | None, pattern: str | None, max_missing_ratio: float,
                 expected_frames: int | None, log_options: dict | None = None):
        from ..io import FrameFollower, LogFollower

        self.cfg = cfg
        self.sink = sink
        self.poll_s = poll_s
        self.expected = expected_frames
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DataValidationError(f"{self.folder}: watch follows a folder of frame files; "
                                      f"for a finished store use ionscope run")
        self.stop_path = Path(stop_file) if stop_file and Path(stop_file).is_absolute() else \
            self.folder / (stop_file or "STOP")
        # the batch run's frame-numbering rule and log parser (ionscope.io): live and final runs read alike
        self.frames = FrameFollower(self.folder, settle_s=settle_s, late_s=late_s, sidecar=sidecar,
                                    pattern=pattern or None, max_missing_ratio=max_missing_ratio,
                                    keys=self.config_keys)
        self.log = LogFollower(log_path, **(log_options or {})) if log_path is not None else None
        if self.log is not None:
            sink.set_log(self.log)
        self.live = cfg.out_dir / "live"
        self.cache = FrameCache(self.live / "frames")
        self.records: list[dict] = []
        self.resumed = 0
        self.frame_bytes = 0
        self.ignored_seen = 0
        self.last_new = time.monotonic()

    # -- what a night implements ------------------------------------------------------
    def handle(self, ff, *, final_attempt: bool) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def resume(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def idle(self) -> bool:
        return False

    def resync(self) -> None:
        pass

    def loader(self, k: int):
        """Frame ``k``'s maps from the cache (for the dashboard, once they left its memory)."""
        return self.cache.maps(k)

    # -- shared --------------------------------------------------------------------------
    def resume_cached(self, key: str, load, take) -> int:
        """Walk the cache from the first frame, in order, while it holds frame *k* for an unchanged file.

        ``load(k)`` gives the cached entry: the frame's record, or a tuple whose first item is the record
        (None: not cached); ``take(k, path, entry)`` puts it back into the session (False: stop here,
        frame *k* is processed again). Frames from the first gap on are dropped from the cache and
        followed afresh. Returns the first frame not reused.
        """
        self.cache.reset(key, self.live / "key.json")
        self.frames.poll()  # learn the first frame number
        files = self.frames._scan()
        first = self.frames.first_number if self.frames.first_number is not None else 0
        k = first
        while True:
            got, f = load(k), files.get(k)
            rec = got[0] if isinstance(got, tuple) else got
            if rec is None or f is None or rec.get("fingerprint") != fingerprint(f) or not take(k, f, got):
                break
            k += 1
        self.cache.prune(lambda n: first <= n < k)
        self.frames.start = self.frames._next = k
        self.resumed = len(self.records)
        return k

    def list_ignored(self, what: str = "[input] frame_pattern") -> None:
        """Files in the folder that are not frames: listed once (never analysed)."""
        ignored = self.frames.ignored
        if len(ignored) > self.ignored_seen:
            self.ignored_seen = len(ignored)
            pattern = self.frames.pattern or "the last run of digits"
            self.sink.warn("ignored", f"{len(ignored)} file(s) in the series folder are not named like frames "
                                      f"({what}: {pattern}) and are ignored: "
                           + ", ".join(ignored[:10]) + (" ..." if len(ignored) > 10 else ""))

    def waiting_text(self, waited_s: float | None = None) -> str:
        """What the session waits for: the folder, the frame-file pattern, the log and how to stop."""
        from ..io import FRAME_EXTENSIONS

        pattern = "*{" + ",".join(FRAME_EXTENSIONS) + "}" + (
            f" with a {self.frames.sidecar} sidecar" if self.frames.sidecar else "")
        log = (f"log {self.log.path}" + ("" if self.log.path.exists() else " (not there yet)")) \
            if self.log is not None else "no log"
        since = f" after {waited_s:.0f} s" if waited_s is not None else ""
        if self.frames.bad:
            since += f" ({len(self.frames.bad)} bad, see the bad-frame list)"
        folder = self.folder if self.folder.exists() else f"{self.folder} (not there yet)"
        text = (f"waiting for {self.frame_kind} {pattern} in {folder}; {log}; stop with a file {self.stop_path} "
                f"or Ctrl-C")
        return f"no usable frame yet{since}: {text}" if since or self.frames.bad else text

    def check_disk_space(self, *, per_frame_bytes: float, final_bytes_per_frame: float = 0.0) -> None:
        """Warn early: free space against the frames still to come and what the final run will write."""
        if not per_frame_bytes:
            return
        n_done = len(self.records)
        if self.expected:
            to_come = max(0, int(self.expected) - n_done)
            horizon = f"the {to_come} frames still expected"
        else:
            to_come = int(np.ceil(3600.0 / max(self.frame_interval_s, 1e-3)))
            horizon = f"one more hour ({to_come} frames)"
        need = to_come * per_frame_bytes + (n_done + to_come) * final_bytes_per_frame
        try:
            free = _free_bytes(self.folder)
        except OSError:
            return
        self.sink.set_meta(disk_free_gb=free / 1e9)
        self.sink.warn("disk", None if free >= need else
                       f"disk space: {free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed for {horizon} "
                       f"and the final run's cache")

    frame_interval_s = 60.0

    def record_of(self, k: int) -> dict | None:
        return next((r for r in reversed(self.records) if r["frame"] == k), None)


# --------------------------------------------------------------------------- the loop


def follow(night: LiveNight, stop_event: threading.Event, *, idle_timeout_s=None, on_frame=None, on_wait=None,
           wait_every_s: float = 5.0) -> str:
    """Feed ``night`` every complete frame until the acquisition ends; returns how it ended.

    Ends with ``"stop file"`` (the acquisition wrote it: every frame still on
    disk is taken), ``"timeout"`` (no new frame for ``idle_timeout_s``),
    ``"stopped"`` (``stop_event`` set) or ``"interrupted"`` (Ctrl-C). Until the
    first frame arrives the night's waiting line is reported every
    ``wait_every_s`` (``on_wait`` and the sink's ``"waiting"`` warning).
    """
    ended = None
    started, last_wait = time.monotonic(), None
    sink = night.sink
    try:
        while ended is None:
            if not night.records:  # say what is awaited until the first frame arrives (an empty page says nothing)
                now = time.monotonic()
                if last_wait is None or now - last_wait >= wait_every_s:
                    last_wait = now
                    text = night.waiting_text(now - started if now - started >= 1.0 else None)
                    sink.warn("waiting", text)
                    if on_wait is not None:
                        on_wait(text)
            elif last_wait is not None:
                last_wait = None
                sink.warn("waiting", None)
            if stop_event.is_set():
                ended = "stopped"
            elif night.stop_path.exists():
                ended = "stop file"
            elif idle_timeout_s is not None and time.monotonic() - night.last_new > idle_timeout_s:
                ended = "timeout"
            if night.log is not None:
                night.log.poll()
                night.resync()
            batch = night.frames.finish() if ended == "stop file" else night.frames.poll()
            for ff in batch:
                n0 = len(night.records)
                if not night.handle(ff, final_attempt=ended is not None):
                    break  # re-offered at a later poll, with the frames after it
                if on_frame is not None and night.records:
                    # several at once: the frames that waited for this one (a holography night's plan)
                    added = night.records[n0:] if len(night.records) > n0 + 1 else night.records[-1:]
                    for rec in added:
                        if len(added) > 1 or rec["frame"] == ff.index:
                            on_frame(dict(rec))
            sink.set_bad(night.frames.bad)
            night.list_ignored()
            if ended is None and not batch and not night.idle():
                # poll again when the next frame has settled if that comes first (no idle wait past it)
                due = night.frames.due()
                time.sleep(night.poll_s if due is None else min(night.poll_s, max(0.01, due + 0.005)))
    except KeyboardInterrupt:
        ended = "interrupted"
    if night.records:
        sink.warn("waiting", None)  # frames came in the last round
    if night.log is not None:
        night.log.poll()
        night.resync()
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C skips the remaining idle work
        while night.idle():
            pass
    return ended


class FramesExecutor:
    """The live executor: a configuration's night fed frame by frame from the folder it names.

    Parameters
    ----------
    config : Config, dict or path
        An EELS configuration (``[input] series`` the folder frames are
        written into, ``[input] log`` the growing CSV log), or a holography
        one (``[holography] holograms`` the folder hologram files are written
        into, ``frame_interval_s``, ``log`` the growing bias log).
    sink : LiveSink
        Where progress is reported (default: a :class:`MemorySink`).
    references : optional
        Reference spectra instead of ``[limap] references`` (EELS).
    window : int
        Frames in the causal denoising window.
    poll_s, settle_s, late_s, stop_file, sidecar, expected_frames
        As for :func:`ionscope.live.watch`.
    hooks : dict, optional
        EELS frame hooks (default :data:`ionscope.pipeline.FRAME_HOOKS`).

    Examples
    --------
    >>> import tempfile, threading
    >>> from ionscope.simulate import acquire
    >>> acq = acquire(tempfile.mkdtemp(), n_frames=2, shape=(8, 12), energy_step=1.0, speed=600.0)
    >>> ex = FramesExecutor(acq.config_path, settle_s=0.05, poll_s=0.02)
    >>> ex.run(threading.Event()), [r["frame"] for r in ex.records]
    ('stop file', [0, 1])
    """

    def __init__(self, config, *, sink=None, references=None, window: int = 6, poll_s: float = 0.25,
                 settle_s: float = 1.0, late_s: float | None = None, stop_file: str = "STOP",
                 sidecar: str | None = None, expected_frames: int | None = None, hooks: dict | None = None):
        from ._run import as_config

        cfg = as_config(config)
        self.config = cfg
        self.sink = MemorySink() if sink is None else sink
        common = dict(sink=self.sink, poll_s=poll_s, settle_s=settle_s, stop_file=stop_file, sidecar=sidecar,
                      expected_frames=expected_frames)
        if cfg.table == "holography":
            from ._live_holo_night import HoloNight

            self.night = HoloNight(cfg, late_s=late_s, **common)
        else:
            from ._live_eels_night import EelsNight

            if int(window) < 1:
                raise DataValidationError(f"watch: window must be >= 1 frame, got {window!r}")
            if late_s is None:
                late_s = max(10.0, 3.0 * cfg.input.frame_interval_s)
            self.night = EelsNight(cfg, references=references, window=int(window), late_s=late_s, hooks=hooks,
                                   **common)

    @property
    def records(self) -> list[dict]:
        """One record per frame processed (resumed ones included)."""
        return self.night.records

    @property
    def live_dir(self) -> Path:
        return self.night.live

    def loader(self, k: int):
        return self.night.loader(k)

    def run(self, stop_event: threading.Event | None = None, *, idle_timeout_s=None, on_frame=None, on_wait=None,
            wait_every_s: float = 5.0) -> str:
        """Resume from the cache, then follow the folder until the acquisition ends (see :func:`follow`)."""
        night = self.night
        night.resume()
        self.sink.set_phase("watching")
        ended = follow(night, stop_event or threading.Event(), idle_timeout_s=idle_timeout_s, on_frame=on_frame,
                       on_wait=on_wait, wait_every_s=wait_every_s)
        night.finish()
        return ended
