# SPDX-License-Identifier: GPL-3.0-or-later
"""Electrochemistry / bias logs (CSV) → an xarray Dataset on a ``time`` axis in s.

One parser, two modes: :func:`read_log` reads a whole file;
:class:`~ionscope.io.LogTail` (in ``_logtail``) follows a file another program is still appending to (the live watcher's
:class:`ionscope.live.LogFollower` is one), and gives, for the bytes written
so far, exactly the Dataset :func:`read_log` gives for them.

A log is read as written, or refused with the line:

* every line must be text: a NUL or other control byte (a damaged, truncated
  or NUL-filled file) is refused with its line number;
* every row has the header's number of fields; a file that ends mid-row is
  refused (in tail mode an unfinished last line is "not yet written" and
  waits; a finished malformed line is an error);
* the time never goes back: two sessions concatenated in one file (the time
  restarting) are refused with the line, or — only when asked — one session
  is kept (``resets="first"`` / ``"last"``; ``read_log`` also ``"split"``);
* rows with one time and different values are refused with both lines, or
  merged when asked (``duplicates="first"`` / ``"last"`` / ``"mean"``); rows
  repeated exactly are merged silently;
* an empty or non-numeric time, voltage or current is refused with its line
  (or interpolated when asked: ``missing="interpolate"``);
* every unit in the header of a column that is read (time, voltage, current)
  is understood — time ``d``/``days``, ``h``, ``min``, ``s``, ``ms``,
  ``us``/``µs``, ``ns``; ``V``, ``mV``, ``µV``, ``kV``; ``A``, ``mA``,
  ``µA``, ``nA``, ``pA`` and their names (``Milliseconds``, ``Amps`` ...) —
  or refused naming the header. A header without a unit means s, V and A.
"""
from __future__ import annotations

import bisect
import csv
import datetime as _dt
import re
from pathlib import Path

import numpy as np

from ..errors import DataValidationError, FileFormatError
from ._log_columns import _Layout, _understood, time_factor, unit_factor

_MISSING = ("error", "interpolate")
_DUPLICATES = ("error", "first", "last", "mean")
_RESETS = ("error", "first", "last", "split")

_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _line_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _LogParser:
    """Line-by-line CSV log parser: ``feed`` bytes, then ``build`` the Dataset (both modes share it)."""

    def __init__(self, path, *, channel=None, missing="error", duplicates="error", resets="error"):
        for name, value, allowed in (("missing", missing, _MISSING), ("duplicates", duplicates, _DUPLICATES),
                                     ("resets", resets, _RESETS)):
            if value not in allowed:
                raise DataValidationError(f"{name}: expected one of {list(allowed)}, got {value!r}")
        self.path, self.channel = Path(path), channel
        self.missing, self.duplicates, self.resets = missing, duplicates, resets
        self.layout: _Layout | None = None
        self.line = 0                 # physical lines consumed so far
        self.rest = b""               # an unfinished last line (no newline yet)
        self.notes: dict[str, tuple[str, int]] = {}
        # measurement rows, in chunks of numpy arrays (joined by ``_joined``)
        self._lines: list[np.ndarray] = []
        self._time: list[np.ndarray] = []
        self._cols: dict[int, list[np.ndarray]] = {}
        self._state: list[np.ndarray] = []
        self.n_rows = 0
        self.header_breaks: list[tuple[int, int]] = []  # (measurement row index, line) of a repeated header
        self.raw: dict[tuple[int, int], str] = {}  # (line, column) → text of a cell that is not a number
        self.prev_fields: list[str] | None = None

    # -- reading -------------------------------------------------------------------------------
    def feed(self, data: bytes, *, final: bool) -> int:
        """Parse the complete lines of ``data`` (what follows the bytes fed before); return new rows.

        ``final``: the end of the file — a last line without a newline is
        parsed too (and refused when it ends mid-row); otherwise it is kept
        back until its newline arrives.
        """
        data = self.rest + data
        if final:
            body, self.rest = data, b""
        else:
            cut = data.rfind(b"\n")
            body, self.rest = data[: cut + 1], data[cut + 1:]
        if not body:
            return 0
        unterminated = final and not body.endswith(b"\n")
        lines = self._decode(body[:-1] if body.endswith(b"\n") else body, self.line + 1)
        first = self.line + 1
        self.line += len(lines)
        nums = list(range(first, first + len(lines)))
        blank = [j for j, t in enumerate(lines) if not t or t.isspace()]
        if blank:  # skipped, their numbers kept for the messages
            drop = set(blank)
            nums = [n for j, n in enumerate(nums) if j not in drop]
            lines = [t for j, t in enumerate(lines) if j not in drop]
        if not lines:
            return 0
        if self.layout is None:
            self.layout = _Layout(self.path, self._rows([lines[0].lstrip("\ufeff")], nums[:1])[0], nums[0],
                                  self.channel)
            nums, lines = nums[1:], lines[1:]
            if not lines:
                return 0
        rows = self._rows(lines, nums)
        self._check_rows(rows, nums, end=unterminated)
        if unterminated and (len(rows) > 1 or self.prev_fields is not None):
            self._check_last(rows[-2] if len(rows) > 1 else self.prev_fields, rows[-1], nums[-1])
        self.prev_fields = rows[-1]
        lay = self.layout
        rows, nums, repeats = self._header_repeats(rows, nums)
        if lay.notes_col is not None:
            meas = []
            for n, r in zip(nums, rows):
                note = r[lay.notes_col]
                if "=" in note:
                    key, _, value = note.partition("=")
                    self.notes[key.strip().lower()] = (value.strip(), n)
                else:
                    meas.append((n, r))
            nums, rows = [n for n, _ in meas], [r for _, r in meas]
        for line in repeats:  # a new session starts at the first measurement row after the repeated header
            self.header_breaks.append((self.n_rows + bisect.bisect_left(nums, line), line))
        if not rows:
            return 0
        lines_arr = np.asarray(nums, int)
        self._lines.append(lines_arr)
        self._time.append(self._numbers(rows, lay.time_col, lines_arr))
        for i in lay.numeric[1:]:
            self._cols.setdefault(i, []).append(self._numbers(rows, i, lines_arr))
        if lay.state_col is not None:
            self._state.append(np.asarray([r[lay.state_col].strip() for r in rows], dtype=object))
        self.n_rows += len(rows)
        return len(rows)

    def _header_repeats(self, rows, nums):
        """Rows that repeat the header (a second log appended with its own header) mark a new session."""
        lay = self.layout
        head = lay.header[lay.time_col]
        hits = [j for j, r in enumerate(rows) if r[lay.time_col].strip() == head
                and [f.strip() for f in r[:lay.n_fields]] == lay.header]
        if not hits:
            return rows, nums, []
        drop = set(hits)
        return ([r for j, r in enumerate(rows) if j not in drop], [n for j, n in enumerate(nums) if j not in drop],
                [nums[j] for j in hits])

    def _decode(self, body: bytes, first: int) -> list[str]:
        """The lines of ``body`` as text; NUL and other control bytes are refused with their line."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            # legacy text (a 'µ' written by Windows software) is still text: such lines are read as Latin-1
            text = "\n".join(_line_text(b) for b in body.split(b"\n"))
        m = _BINARY.search(text)
        if m is not None:
            n = first + text.count("\n", 0, m.start())
            what = "NUL bytes" if m.group() == "\x00" else f"the binary byte 0x{ord(m.group()):02x}"
            raise FileFormatError(f"{self.path}: line {n} holds {what}, not text: the file is damaged, truncated or "
                                  f"NUL-filled (e.g. written through a crash); restore the log from its source")
        if "\r" in text:  # Windows line ends; a lone carriage return (old Mac files) ends a line too
            text = text.replace("\r\n", "\n").rstrip("\r").replace("\r", "\n")
        return text.split("\n")

    def _rows(self, lines: list[str], nums: list[int]) -> list[list[str]]:
        """One row of fields per line (a quote left open would swallow the lines after it: refused)."""
        try:
            rows = list(csv.reader(lines, skipinitialspace=True))
        except csv.Error as exc:
            rows, bad = [], str(exc)
        else:
            bad = ""
        if len(rows) == len(lines):
            return rows
        for line, n in zip(lines, nums):
            try:
                one = list(csv.reader([line], skipinitialspace=True))
            except csv.Error as exc:
                raise FileFormatError(f"{self.path}: line {n} is not a CSV row ({exc})") from None
            if line.count('"') % 2:
                raise FileFormatError(f"{self.path}: line {n} opens a quote it does not close (a damaged or "
                                      f"truncated row)")
            if len(one) != 1:
                break
        raise FileFormatError(f"{self.path}: lines {nums[0]}..{nums[-1]} are not CSV rows ({bad or 'quoting'})")

    def _check_rows(self, rows, nums, *, end: bool) -> None:
        want = self.layout.n_fields
        for r, n in zip(rows, nums):
            if len(r) != want and (len(r) < want or any(f.strip() for f in r[want:])):
                tail = " (the file ends mid-row: truncated?)" if end and n == nums[-1] else ""
                raise FileFormatError(f"{self.path}: line {n} has {len(r)} fields where the header (line "
                                      f"{self.layout.line}) has {want}{tail}")

    def _numbers(self, rows, i: int, lines) -> np.ndarray:
        cells = [r[i] for r in rows]
        try:
            v = np.asarray(cells).astype(float)  # numpy's parser: as float(), and in C
        except ValueError:
            v = np.empty(len(cells))
            for j, c in enumerate(cells):
                try:
                    v[j] = float(c)
                except ValueError:
                    v[j] = np.nan
                    self.raw[(int(lines[j]), i)] = c.strip()
            return v
        for j in np.flatnonzero(~np.isfinite(v)):
            self.raw[(int(lines[j]), i)] = cells[j].strip()
        return v

    def _check_last(self, prev, fields, n: int) -> None:
        """A last line without a newline whose cells stop where the row before had a value: cut short."""
        for i, (a, b) in enumerate(zip(prev, fields)):
            a, b = a.strip(), b.strip()
            if i == self.layout.notes_col:
                continue
            if a and (not b or (_is_number(a) and not _is_number(b))):
                raise FileFormatError(f"{self.path}: line {n} ends without a line break and its column "
                                      f"{self.layout.header[i]!r} holds {b!r} where the row before holds {a!r}: the "
                                      f"file ends mid-row (truncated?)")

    def _joined(self, chunks: list) -> np.ndarray:
        """One array of a column's chunks (kept joined, so following a log stays linear)."""
        if len(chunks) > 1:
            chunks[:] = [np.concatenate(chunks)]
        return chunks[0] if chunks else np.zeros(0)

    # -- building ------------------------------------------------------------------------------
    def _factors(self) -> tuple[float, dict]:
        """Time factor and per-column factors (Protochips notes name units the header does not)."""
        lay = self.layout
        tf = lay.time_factor
        if not lay.time_unit_given and "time units" in self.notes:
            unit, n = self.notes["time units"]
            tf = time_factor(unit)
            if tf is None:
                _understood(self.path, f"line {n} ('Time units = {unit}')", unit, "time")
        facs = {}
        for name, base in (("voltage", "V"), ("current", "A")):
            for i, f in lay.candidates.get(name, []):
                if f is None:
                    f = 1.0
                    if f"{name} units" in self.notes:
                        unit, n = self.notes[f"{name} units"]
                        f = unit_factor(unit, base)
                        if f is None:
                            _understood(self.path, f"line {n} ('{name.capitalize()} units = {unit}')", unit, base)
                facs[i] = f
        return tf, facs

    def _listed(self, idx, col: int, lines) -> str:
        """'line 7 ('abc' in 'current'), ...' for the first few bad cells of a column."""
        head = self.layout.header[col]
        shown = ", ".join(f"line {lines[i]} ({self.raw.get((int(lines[i]), col), '')!r} in {head!r})"
                          for i in idx[:3])
        return shown + (f" and {len(idx) - 3} more" if len(idx) > 3 else "")

    def build(self, *, final: bool):
        """The Dataset of the rows so far (or a list of them, one per session, with ``resets="split"``).

        Raises what :func:`read_log` raises; returns None before two rows when not ``final``.
        """
        if self.layout is None:
            if final:
                raise FileFormatError(f"{self.path}: empty log (no header line)")
            return None
        lay = self.layout
        tf, facs = self._factors()
        t = self._joined(self._time) * tf
        lines = self._joined(self._lines).astype(int)
        keep = np.ones(t.size, bool)
        bad_time = ~np.isfinite(t)
        if bad_time.any():
            if self.missing == "error":
                raise DataValidationError(
                    f"{self.path}: {self._listed(np.flatnonzero(bad_time), lay.time_col, lines)}: the time is empty "
                    f"or not a number (fix the log, or ask to interpolate: [input] log_missing = \"interpolate\")")
            keep &= ~bad_time
        sessions = self._sessions(t, lines, keep)
        if self.resets == "split" and final:
            return [self._dataset(s, t, lines, tf, facs, final=True) for s in sessions]
        if len(sessions) > 1:
            chosen = sessions[0] if self.resets == "first" else sessions[-1]
            keep = np.zeros_like(keep)
            keep[chosen] = True
        return self._dataset(np.flatnonzero(keep), t, lines, tf, facs, final=final)

    def _sessions(self, t, lines, keep) -> list[np.ndarray]:
        """Row indices of each run of non-decreasing time; the time going back is refused unless asked."""
        idx = np.flatnonzero(keep)
        back = np.flatnonzero(np.diff(t[idx]) < 0) + 1
        if self.header_breaks:
            row, line = self.header_breaks[0]
            if self.resets == "error":
                raise DataValidationError(
                    f"{self.path}: line {line} repeats the header (line {self.layout.line}) — two logs in one file"
                    + (f", {len(self.header_breaks)} such repeats in all" if len(self.header_breaks) > 1 else "")
                    + "; split the file, or keep one session: [input] log_resets = \"first\" or \"last\"")
            at = np.searchsorted(idx, [r for r, _ in self.header_breaks])
            back = np.union1d(back, at[(at > 0) & (at < idx.size)]).astype(int)
        if back.size and self.resets == "error":
            i, j = idx[back[0] - 1], idx[back[0]]
            raise DataValidationError(
                f"{self.path}: line {lines[j]}: the time goes back from {t[i]:.6g} s (line {lines[i]}) to "
                f"{t[j]:.6g} s — two sessions (or rows out of order) in one log"
                + (f", {back.size} such restarts in all" if back.size > 1 else "")
                + "; split the file, or keep one session: [input] log_resets = \"first\" or \"last\"")
        return np.split(idx, back)

    def _choose(self, name: str, rows) -> int | None:
        """The column of ``name`` to use: the channel asked for, else the first that varies."""
        cands = [i for i, _ in self.layout.candidates.get(name, [])]
        if len(cands) > 1 and self.channel is None:
            varying = [i for i in cands if np.unique(self._joined(self._cols[i])[rows]).size > 1]
            cands = varying or cands
        return cands[0] if cands else None

    def _dataset(self, rows, t, lines, tf, facs, *, final: bool):
        import xarray as xr

        rows = np.asarray(rows, int)
        if rows.size < 2:
            if not final:
                return None
            raise DataValidationError(f"{self.path}: fewer than 2 rows with a numeric time in column "
                                      f"{self.layout.header[self.layout.time_col]!r}")
        lay = self.layout
        time = t[rows]
        attrs: dict = {"source_file": str(self.path)}
        data: dict = {}
        filled: set[int] = set()
        for name, unit in (("voltage", "V"), ("current", "A")):
            col = self._choose(name, rows)
            if col is None:
                continue
            values = self._joined(self._cols[col])[rows]
            bad = ~np.isfinite(values)
            if bad.any():
                if self.missing != "error" and bad.sum() > values.size - 2 and not final:
                    return None  # following: too few values yet to interpolate between
                if self.missing == "error" or bad.sum() > values.size - 2:
                    raise DataValidationError(
                        f"{self.path}: {self._listed(np.flatnonzero(bad), col, lines[rows])}: the {name} is empty or "
                        f"not a number (fix the log, or ask to interpolate: [input] log_missing = \"interpolate\")")
                values = values.copy()
                values[bad] = np.interp(time[bad], time[~bad], values[~bad])
                filled.update(int(n) for n in lines[rows][bad])
            values = values * facs[col]
            over = np.flatnonzero(np.abs(values) > _LIMITS[name])
            if over.size:  # no holder or potentiostat gives this: a corrupt cell, or a unit the header hides
                at = ", ".join(f"line {lines[rows][i]}" for i in over[:3]) + (" ..." if over.size > 3 else "")
                raise DataValidationError(
                    f"{self.path}: {at} (column {lay.header[col]!r}): the {name} {values[over[0]]:.4g} {unit} is "
                    f"beyond any biasing holder or potentiostat (|{name}| ≤ {_LIMITS[name]:g} {unit}): a corrupt "
                    f"value, or a unit the header does not state (mV or µA read as V or A?) — write it in the "
                    f"header, e.g. '{name} (m{unit})'")
            data[name] = (values, {"units": unit, "column": lay.header[col]})
        if lay.state_col is not None:
            data["state"] = (self._joined(self._state)[rows].astype(str), {})
        time, data, merged = self._merge_duplicates(time, data, lines[rows])
        if filled:
            attrs["interpolated_lines"] = sorted(filled)
        if merged:
            attrs["merged_lines"] = merged
        self._timestamp(attrs)
        return xr.Dataset({k: ("time", v, a) for k, (v, a) in data.items()},
                          coords={"time": ("time", time, {"units": "s"})}, attrs=attrs)

    def _merge_duplicates(self, time, data, lines):
        """Rows sharing a time: one row when their values agree; else refused, or merged as asked."""
        same = np.flatnonzero(np.diff(time) == 0)
        if not same.size:
            return time, data, []
        group = np.concatenate([[0], np.cumsum(np.diff(time) != 0)])
        starts = np.flatnonzero(np.concatenate([[True], np.diff(group) != 0]))
        merged = [int(lines[i + 1]) for i in same]
        for i in same:
            differs = [name for name, (v, _) in data.items() if v[i] != v[i + 1]]
            if differs and self.duplicates == "error":
                name = differs[0]
                a, b = data[name][0][i], data[name][0][i + 1]
                raise DataValidationError(
                    f"{self.path}: lines {lines[i]} and {lines[i + 1]} share the time {time[i]:.6g} s but differ "
                    f"({name} {a!s} vs {b!s}{' ' + data[name][1]['units'] if 'units' in data[name][1] else ''}); "
                    f"fix the log, or merge such rows: [input] log_duplicates = \"first\", \"last\" or \"mean\"")
        out = {}
        for name, (v, a) in data.items():
            if self.duplicates == "mean" and v.dtype.kind == "f":
                sums = np.bincount(group, weights=v)
                out[name] = (sums / np.bincount(group), a)
            elif self.duplicates == "last":
                ends = np.concatenate([starts[1:] - 1, [v.size - 1]])
                out[name] = (v[ends], a)
            else:  # "first", or rows repeated exactly
                out[name] = (v[starts], a)
        return time[starts], out, merged

    def _timestamp(self, attrs: dict) -> None:
        date = next((v for k, (v, _) in self.notes.items() if k.startswith("date")), None)
        clock = next((v for k, (v, _) in self.notes.items() if k.startswith("time (")), None)
        if date and clock:
            try:
                attrs["timestamp"] = _dt.datetime.strptime(f"{date} {clock}", "%Y.%m.%d %H:%M:%S.%f").isoformat()
            except ValueError:
                pass


#: |value| no in-situ biasing holder or potentiostat reaches (s28seams): beyond, a log value is refused. A
#: battery log in mV without the unit in its header (3900 "V") and corrupt cells (1e30) were read as given.
_LIMITS = {"voltage": 1000.0, "current": 10.0}


def read_log(path, *, channel: str | None = None, missing: str = "error", duplicates: str = "error",
             resets: str = "error"):
    """Read an electrochemistry/bias log into a Dataset with ``voltage``, ``current``.

    Understands Protochips-style CSV exports (a ``Notes`` column carrying the
    start date/time and the units; ``Channel A Voltage`` ...) and plain CSV
    files with ``time``, ``voltage``, ``current`` (and optional ``state``)
    columns; units in the header such as ``time (min)``, ``time [days]``,
    ``current (uA)`` or ``Voltage/mV`` are converted to s, V and A (a unit not
    understood is refused naming the header). The rules a log must follow
    (text only, whole rows, time never going back, no conflicting duplicate
    times) are listed in :mod:`ionscope.io._logs`; :class:`~ionscope.io.LogTail`
    reads a growing file the same way.

    Parameters
    ----------
    path : str or Path
    channel : str, optional
        Which channel of a multi-channel log (e.g. ``"A"``); default the first
        channel whose voltage or current is not constant.
    missing : {"error", "interpolate"}
        A measurement row whose time, voltage or current is empty or not a
        number is refused with its line number (``"error"``: an unreadable
        current would otherwise turn every later charge and state of charge
        into NaN), or — only when asked — filled by linear interpolation in
        time (rows without a time are dropped); ``attrs["interpolated_lines"]``
        then lists the lines filled.
    duplicates : {"error", "first", "last", "mean"}
        Rows with one time and different values: refused with both lines, or
        merged into one row (the first, the last, or the mean of the numbers).
        Rows repeated exactly are merged in every mode (``attrs["merged_lines"]``).
    resets : {"error", "first", "last", "split"}
        The time going back (two sessions in one file): refused with the line,
        or keep the first or the last session, or return one Dataset per
        session (a list).

    Returns
    -------
    xarray.Dataset
        Dimension ``time`` (s from the start of the log), variables ``voltage``
        (V), ``current`` (A) and, when present, ``state``; attrs ``timestamp``
        (ISO start time when the log gives it) and ``source_file``.

    Raises
    ------
    FileFormatError
        No such file; binary/NUL bytes, a row with the wrong number of fields,
        a file ending mid-row, a unit not understood (each with its line).
    DataValidationError
        Missing values, the time going back, conflicting duplicate times (with their lines).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("time (days),voltage (mV)\\n0,3900\\n0.5,3950\\n")
    >>> log = read_log(p)
    >>> log.time.values.tolist(), log.voltage.values.tolist()
    ([0.0, 43200.0], [3.9, 3.95])
    """
    path = Path(path)
    parser = _LogParser(path, channel=channel, missing=missing, duplicates=duplicates, resets=resets)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such log file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the log ({exc.strerror or exc})") from None
    parser.feed(data, final=True)
    return parser.build(final=True)


def voltage_log(log):
    """A bias/voltage log as a Dataset: a path is read with :func:`read_log`, a Dataset is checked.

    The one place the holography analysis and the biased-hologram simulator accept a log from.

    Parameters
    ----------
    log : str, Path or Dataset
        A CSV log, or a Dataset with ``voltage`` (V) on ``time`` (s).

    Returns
    -------
    xarray.Dataset
        The log, with at least ``voltage`` on ``time``.

    Raises
    ------
    DataValidationError
        No ``voltage`` on ``time``.

    Examples
    --------
    >>> import xarray as xr
    >>> log = xr.Dataset({"voltage": ("time", [0.0, 1.5])}, coords={"time": [0.0, 10.0]})
    >>> voltage_log(log).voltage.values.tolist()
    [0.0, 1.5]
    """
    if isinstance(log, (str, Path)):
        log = read_log(log)
    if not (hasattr(log, "data_vars") and "voltage" in log.data_vars and "time" in log.coords):
        raise DataValidationError("log: expected a Dataset with a 'voltage' variable (V) on a 'time' axis (s), "
                                  "e.g. from ionscope.io.read_log, or the path of a CSV log")
    return log
