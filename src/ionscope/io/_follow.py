# SPDX-License-Identifier: GPL-3.0-or-later
"""Following files that another program is still writing.

Frames are numbered from their file names by the one rule of
:mod:`ionscope.io._frames` (the batch reader's): a configurable pattern
(default: the last run of digits of the name), files that do not match
ignored and listed once (:attr:`FrameFollower.ignored`), two files with one
number or a number far beyond the others refused with the files' names.
Frame *k* is released as index *k* (its number, not its rank), so its time
is ``start_s + k · interval`` as in the batch run, and the series may start
at any number.

A frame file is *complete* when one of these holds (first match wins):

1. a sidecar ``<name><sidecar>`` exists (software that writes one when done);
2. a later frame's file exists and this file's size did not change between
   two polls (acquisition software writes frames in order);
3. its size and modification time did not change for ``settle_s`` seconds.

Complete frames are released strictly in frame order. A frame number that is
still absent ``late_s`` seconds after a later frame became complete is
released as *missing* (listed, skipped); if it shows up afterwards it is
listed again as *late*. A complete file that cannot be read is retried a few
times (the writer may have paused) and then listed as *corrupt*.

The electrochemistry log is read incrementally by the tail mode of
:func:`ionscope.io.read_log` (one parser): only bytes added since the last
poll are read, and a last line without its newline is kept back until it is
finished.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._frames import INPUT_KEYS, MAX_MISSING_RATIO, frame_number as _io_frame_number, number_frames
from ._logtail import LogTail

#: frame file extensions followed (those read_series reads, minus stores: a store's completeness cannot be seen)
FRAME_EXT = (".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".nc", ".msa")


def frame_number(name: str, *, pattern: str | None = None) -> int | None:
    """A file's frame number by the frame pattern (:func:`ionscope.io._frames.frame_number`), as read_series.

    Examples
    --------
    >>> frame_number("frame_0012.nc"), frame_number("refs.nc")
    (12, None)
    """
    return _io_frame_number(name, pattern=pattern)


@dataclass
class FrameFile:
    """A frame released by :meth:`FrameFollower.poll`."""

    index: int            # the frame number (from the file name)
    path: Path
    size: int
    mtime: float          # st_mtime: when the writer last touched it (s since the epoch)
    complete_at: float    # time.time() when it was judged complete
    how: str              # "sidecar" | "next frame" | "settled"

    @property
    def fingerprint(self) -> str:
        return f"{self.path.name}|{self.size}|{int(self.mtime * 1e9)}"


@dataclass
class _Seen:
    size: int
    mtime: float
    changed_at: float     # monotonic time of the last size/mtime change
    polls_stable: int = 0


@dataclass
class FrameFollower:
    """Poll a folder for complete frame files, in frame order.

    Parameters
    ----------
    folder : Path
        The series folder.
    settle_s : float
        Size-stable time after which a file is complete without other evidence.
    late_s : float
        How long a frame number may be absent while later frames are complete
        before it is listed as missing and skipped.
    sidecar : str, optional
        Suffix of a "done" sidecar file (e.g. ``".done"``), if the acquisition writes one.
    start : int
        First frame number to release (frames before it are already
        processed); the release starts at the folder's first frame number when
        that is higher.
    pattern : str, optional
        The frame pattern (``[input] frame_pattern``; default the last run of digits of the name).
    max_missing_ratio : float
        Most missing numbers per frame file present (``[input] max_missing_ratio``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "frame_0000.nc").write_bytes(b"x" * 10)
    >>> f = FrameFollower(d, settle_s=0.0)
    >>> _ = f.poll(); [x.index for x in f.poll()]
    [0]
    """

    folder: Path
    settle_s: float = 2.0
    late_s: float = 60.0
    sidecar: str | None = None
    start: int = 0
    first_number: int | None = None
    bad: list = field(default_factory=list)
    pattern: str | None = None
    max_missing_ratio: float = MAX_MISSING_RATIO
    keys: tuple = INPUT_KEYS  # the configuration keys a numbering error names
    ignored: list = field(default_factory=list)  # names with a frame extension that are not frames (listed once)
    _seen: dict = field(default_factory=dict)
    _next: int = 0
    _waiting_since: float | None = None
    _skipped: set = field(default_factory=set)
    _attempts: dict = field(default_factory=dict)
    _released: dict = field(default_factory=dict)
    _early: set = field(default_factory=set)
    _last_poll: float | None = None  # monotonic time of the last poll on the real clock

    def __post_init__(self):
        self.folder = Path(self.folder)
        self._next = int(self.start)

    @property
    def next_index(self) -> int:
        """The next frame index :meth:`poll` will release."""
        return self._next

    def _scan(self) -> dict[int, Path]:
        """``{frame number: path}`` of the frame files present (numbers from the file names)."""
        try:
            entries = [e for e in os.scandir(self.folder) if e.name.lower().endswith(FRAME_EXT) and e.is_file()]
        except FileNotFoundError:
            return {}
        # the batch reader's rule: duplicates and absurd numbers raise FileFormatError naming the files
        numbered = number_frames([e.path for e in entries], pattern=self.pattern,
                                 max_missing_ratio=self.max_missing_ratio, where=self.folder, keys=self.keys)
        for name in numbered.ignored:
            if name not in self.ignored:
                self.ignored.append(name)
        files = numbered.frames
        if files and self.first_number is None:
            self.first_number = min(files)
            if not self._released and self._next < self.first_number:
                self._next = self.first_number  # the series starts at its first number, not at 0
        first = self.first_number if self.first_number is not None else 0
        for n in sorted(set(files) - self._early):
            if n < first:  # written after a later frame started the series: left to the final batch run
                self._early.add(n)
                self.bad.append({"frame": n, "file": files[n].name,
                                 "reason": f"late: arrived after frame {first} started the series; "
                                           f"left to the final batch run"})
        return {n: p for n, p in files.items() if n >= first}

    def poll(self, now: float | None = None) -> list[FrameFile]:
        """Frames that became complete since the last poll (in order); updates :attr:`bad`."""
        mono = time.monotonic() if now is None else now
        files = self._scan()
        complete: dict[int, FrameFile] = {}
        for k, p in files.items():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            seen = self._seen.get(k)
            if seen is None or (st.st_size, st.st_mtime) != (seen.size, seen.mtime):
                self._seen[k] = _Seen(st.st_size, st.st_mtime, self._changed_at(st.st_mtime, mono, now))
                seen = self._seen[k]
                changed = True
            else:
                seen.polls_stable += 1
                changed = False
            if st.st_size == 0:
                continue
            how = None
            if self.sidecar and p.with_name(p.name + self.sidecar).exists():
                how = "sidecar"
            elif not changed and any(j > k for j in files):
                how = "next frame"
            elif not changed and mono - seen.changed_at >= self.settle_s:
                how = "settled"
            if how:
                complete[k] = FrameFile(k, p, st.st_size, st.st_mtime, time.time(), how)
        self._last_poll = mono if now is None else None
        # late arrivals of frames already skipped
        for k in sorted(self._skipped & set(complete)):
            self._mark_late(k, complete[k].path.name)
        out = []
        while True:
            k = self._next
            if k in complete:
                out.append(complete[k])
                self._released[k] = complete[k]
                self._next += 1
                self._waiting_since = None
                continue
            later = [j for j in complete if j > k]
            if k not in files and later:
                # a gap: wait late_s for it, then skip it
                if self._waiting_since is None:
                    self._waiting_since = mono
                if mono - self._waiting_since >= self.late_s:
                    self.bad.append({"frame": k, "file": "", "reason": f"missing (not written {self.late_s:g} s "
                                                                         f"after a later frame)"})
                    self._skipped.add(k)
                    self._next += 1
                    self._waiting_since = None
                    continue
            break
        return out

    def _changed_at(self, mtime: float, mono: float, now: float | None) -> float:
        """When a file seen changed at this poll last changed (monotonic): its modification time, but never
        before the previous poll (it was different then) nor after now. Counting the settle time from the
        last write rather than from this poll saves the wait for the poll (issue 20: latency); a clock that
        disagrees with the file's time only shortens the wait by up to one poll interval, never below it."""
        if now is not None or self._last_poll is None:
            return mono  # a test's clock, or the first look at the folder: from now, as before
        age = max(0.0, time.time() - float(mtime))
        return max(self._last_poll, mono - age)

    def due(self) -> float | None:
        """Seconds until the next frame file waiting to settle has been still for ``settle_s`` (None: none
        waits), so that a follower can poll then rather than up to one poll interval later."""
        if self._last_poll is None:
            return None
        now = time.monotonic()
        waits = [s.changed_at + self.settle_s - now for k, s in self._seen.items() if k >= self._next and s.size > 0]
        waits = [w for w in waits if w > 0]  # (one already due waits for something else: the next poll)
        return min(waits) if waits else None

    def _mark_late(self, k: int, name: str) -> None:
        self._skipped.discard(k)
        for b in self.bad:  # the "missing" entry becomes a "late" one
            if b["frame"] == k:
                b.update(file=name, reason=f"late: arrived after frame {self._next - 1} was processed; "
                                           f"left to the final batch run")

    def failed(self, frame: FrameFile, reason: str, *, attempts: int = 3) -> bool:
        """A released frame could not be read: re-offer it up to ``attempts`` times, then list it.

        Returns True when the frame is given up (listed in :attr:`bad`).
        """
        n = self._attempts.get(frame.index, 0) + 1
        self._attempts[frame.index] = n
        if n >= attempts:
            self.bad.append({"frame": frame.index, "file": frame.path.name, "reason": f"corrupt: {reason}"})
            return True
        # step back: the frame (and the ones after it) are offered again at a later poll
        self._next = frame.index
        self._seen.pop(frame.index, None)
        return False

    def finish(self, *, now: float | None = None) -> list[FrameFile]:
        """At the end of the acquisition: release what is complete, list the rest as missing/incomplete."""
        out = self.poll(now)
        files = self._scan()
        for k in sorted(self._skipped & set(files)):
            self._mark_late(k, files[k].name)
        last = max(files) if files else self._next - 1
        while self._next <= last:
            k = self._next
            p = files.get(k)
            if p is not None and p.stat().st_size > 0:
                st = p.stat()
                ff = FrameFile(k, p, st.st_size, st.st_mtime, time.time(), "acquisition ended")
                out.append(ff)
                self._released[k] = ff
            else:
                self.bad.append({"frame": k, "file": p.name if p else "",
                                 "reason": "missing (absent when the acquisition ended)"})
            self._next += 1
        return out


class LogFollower(LogTail):
    """Read a growing CSV electrochemistry log incrementally.

    The tail mode of :func:`ionscope.io.read_log` (:class:`ionscope.io.LogTail`):
    the same parser, rules and options, so the rows followed live are the rows
    the batch run reads. Only new bytes are read at each :meth:`poll`; a last
    line still being written is kept back; a finished line that is malformed,
    a time going back or a missing value raise with the line number (as
    :func:`~ionscope.io.read_log` does).

    Parameters
    ----------
    path : str or Path
    channel, missing, duplicates, resets : optional
        As for :func:`ionscope.io.read_log` (``[input] log_missing``,
        ``log_duplicates``, ``log_resets``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("time (min),voltage (V)\\n0,3.9\\n1,3.95\\n2,4.")
    >>> f = LogFollower(p); f.poll()
    2
    >>> f.dataset().time.values.tolist()
    [0.0, 60.0]
    """
