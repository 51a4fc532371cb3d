# SPDX-License-Identifier: GPL-3.0-or-later
"""The tail mode of :func:`ionscope.io.read_log`: a CSV log followed while another program appends to it."""
from __future__ import annotations

from pathlib import Path

from ..errors import DataValidationError, FileFormatError
from ._logs import _LogParser


class LogTail:
    """Follow a CSV log that is still being written (the tail mode of :func:`read_log`).

    Each :meth:`poll` reads only the bytes appended since the last one; a last
    line without its newline is "not yet written" and kept back, a finished
    line that is malformed is an error. :meth:`dataset` is what
    :func:`read_log` returns for the finished lines so far (same parser, same
    rules, same options), or None before two rows.

    Parameters
    ----------
    path : str or Path
    channel, missing, duplicates : optional
        As for :func:`read_log`.
    resets : {"error", "first", "last"}
        As for :func:`read_log` (no ``"split"``: one Dataset is followed).

    Raises
    ------
    FileFormatError, DataValidationError
        From :meth:`poll`, with the line, as :func:`read_log` would; also when
        the file shrinks (rewritten under the follower).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("time (min),voltage (V)\\n0,3.9\\n1,3.95\\n2,4.")
    >>> f = LogTail(p); f.poll()
    2
    >>> f.dataset().time.values.tolist()
    [0.0, 60.0]
    """

    def __init__(self, path, *, channel: str | None = None, missing: str = "error", duplicates: str = "error",
                 resets: str = "error"):
        if resets == "split":
            raise DataValidationError("resets: 'split' is for read_log; a followed log is one Dataset "
                                      "(expected 'error', 'first' or 'last')")
        self.path = Path(path)
        self._parser = _LogParser(self.path, channel=channel, missing=missing, duplicates=duplicates, resets=resets)
        self._offset = 0
        self._error: Exception | None = None  # a refused line stays refused (the bytes after it are not read)
        self._ds = None
        self._snapshot: tuple[list, dict] = ([], {})

    def poll(self) -> int:
        """Read what was appended; return the number of new rows (raises on a malformed finished line)."""
        if self._error is not None:
            raise self._error
        try:
            return self._poll()
        except (FileFormatError, DataValidationError) as exc:
            self._error = exc
            raise

    def _poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if size < self._offset:
                    raise FileFormatError(f"{self.path}: the log shrank from {self._offset} to {size} bytes while "
                                          f"followed (rewritten?); restart the watch on the new file")
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        if not chunk:
            return 0
        self._offset += len(chunk)
        new = self._parser.feed(chunk, final=False)
        if new or (self._ds is None and self._parser.layout is not None):
            self._ds = self._parser.build(final=False)
            self._snap()
        return new

    def _snap(self) -> None:
        ds = self._ds
        if ds is None:
            self._snapshot = ([], {})
            return
        values = {n: (ds[n].values.tolist()) for n in ds.data_vars}
        self._snapshot = (ds.time.values.tolist(), values)  # one rebinding: readers see a consistent pair

    def dataset(self):
        """The rows so far as :func:`read_log` returns them (None before 2 rows)."""
        return self._ds

    def snapshot(self) -> tuple[list, dict]:
        """``(time, {name: values})`` of the rows so far, as lists (a consistent pair for another thread)."""
        return self._snapshot

    @property
    def time(self) -> list:
        """Times (s) of the rows so far."""
        return self._snapshot[0]

    @property
    def values(self) -> dict:
        """``{name: list}`` of the rows so far (V, A, state)."""
        return self._snapshot[1]

    @property
    def t_end(self) -> float:
        """Time (s) of the last complete row, -inf before any."""
        t = self._snapshot[0]
        return t[-1] if t else float("-inf")
