# SPDX-License-Identifier: GPL-3.0-or-later
"""Following files that another program is still writing.

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

The electrochemistry log is read incrementally: only bytes added since the
last poll are read, and a last line without its newline is kept back until it
is finished.
"""
from __future__ import annotations

import csv
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileFormatError

#: frame file extensions followed (those read_series reads, minus stores)
FRAME_EXT = (".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".nc", ".msa")
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(name: str) -> int | None:
    """The last run of digits in a file's stem (``frame_0012.nc`` → 12), as read_series numbers frames."""
    m = _NUMBER.search(Path(name).stem)
    return int(m.group(1)) if m else None


@dataclass
class FrameFile:
    """A frame released by :meth:`FrameFollower.poll`."""

    index: int            # frame number relative to the first frame
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
        First frame index to release (frames before it are already processed).

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
    _seen: dict = field(default_factory=dict)
    _next: int = 0
    _waiting_since: float | None = None
    _skipped: set = field(default_factory=set)
    _attempts: dict = field(default_factory=dict)
    _released: dict = field(default_factory=dict)

    def __post_init__(self):
        self.folder = Path(self.folder)
        self._next = int(self.start)

    @property
    def next_index(self) -> int:
        """The next frame index :meth:`poll` will release."""
        return self._next

    def _scan(self) -> dict[int, Path]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return {}
        files = {}
        for e in entries:
            if e.name.startswith(".") or not e.name.lower().endswith(FRAME_EXT) or not e.is_file():
                continue
            n = frame_number(e.name)
            if n is not None:
                files[n] = Path(e.path)
        if files and self.first_number is None:
            self.first_number = min(files)
        first = self.first_number or 0
        return {n - first: p for n, p in files.items() if n >= first}

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
                self._seen[k] = _Seen(st.st_size, st.st_mtime, mono)
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


class LogFollower:
    """Read a growing CSV electrochemistry log incrementally.

    Understands the plain layout of :func:`ionscope.io.read_log` (``time``,
    ``voltage``, ``current`` columns with units in brackets, optional
    ``state``); only new bytes are read at each :meth:`poll`, and a last line
    still being written is kept back.

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

    def __init__(self, path):
        self.path = Path(path)
        self._offset = 0
        self._rest = b""
        self._header: list[str] | None = None
        self._cols: dict | None = None
        self.time: list[float] = []
        self.values: dict[str, list] = {}

    def poll(self) -> int:
        """Read what was appended; return the number of new rows."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        if not chunk:
            return 0
        self._offset += len(chunk)
        data = self._rest + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._rest = data
            return 0
        self._rest = data[cut + 1:]
        lines = data[:cut].decode("utf-8", errors="replace").splitlines()
        if self._header is None:
            if not lines:
                return 0
            self._set_header(next(csv.reader([lines[0]])))
            lines = lines[1:]
        return self._parse(lines)

    def _set_header(self, header: list[str]) -> None:
        from ..io._logs import _TIME_UNITS, _unit_in_header

        header = [h.strip() for h in header]
        self._header = header
        lower = [h.lower() for h in header]
        t_col = next((i for i, h in enumerate(lower)
                      if h.split("(")[0].split("[")[0].strip() in ("time", "t", "elapsed time")), None)
        if t_col is None:
            raise FileFormatError(f"{self.path}: no 'time' column; found columns {header}")
        m = re.search(r"[\(\[]\s*(\w+)\s*[\)\]]", header[t_col])
        cols = {"time": (t_col, _TIME_UNITS.get(m.group(1).lower(), 1.0) if m else 1.0)}
        for name, key, unit in (("voltage", "volt", "V"), ("current", "current", "A")):
            i = next((i for i, h in enumerate(lower) if key in h), None)
            if i is not None:
                cols[name] = (i, _unit_in_header(header[i], unit))
        if "state" in lower:
            cols["state"] = (lower.index("state"), None)
        if "voltage" not in cols and "current" not in cols:
            raise FileFormatError(f"{self.path}: no voltage or current column; found columns {header}")
        self._cols = cols
        self.values = {k: [] for k in cols if k != "time"}

    def _parse(self, lines: list[str]) -> int:
        n = 0
        for row in csv.reader(io.StringIO("\n".join(lines))):
            try:
                i, f = self._cols["time"]
                t = float(row[i]) * f
            except (ValueError, IndexError):
                continue  # a header repeat or a malformed row: skipped, as read_log skips non-numeric times
            if self.time and t <= self.time[-1]:
                continue
            self.time.append(t)
            for name, (i, f) in self._cols.items():
                if name == "time":
                    continue
                v = row[i] if i < len(row) else ""
                if f is None:
                    self.values[name].append(v.strip())
                else:
                    try:
                        self.values[name].append(float(v) * f)
                    except ValueError:
                        self.values[name].append(float("nan"))
            n += 1
        return n

    @property
    def t_end(self) -> float:
        """Time (s) of the last complete row, -inf before any."""
        return self.time[-1] if self.time else float("-inf")

    def dataset(self):
        """The rows so far as a Dataset like :func:`ionscope.io.read_log` returns (or None before 2 rows)."""
        import numpy as np
        import xarray as xr

        if len(self.time) < 2:
            return None
        units = {"voltage": "V", "current": "A"}
        data = {}
        for name, vals in self.values.items():
            if name == "state":
                data[name] = ("time", np.asarray(vals, dtype=object))
            else:
                data[name] = ("time", np.asarray(vals, float), {"units": units[name]})
        return xr.Dataset(data, coords={"time": ("time", np.asarray(self.time, float), {"units": "s"})},
                          attrs={"source_file": str(self.path)})
