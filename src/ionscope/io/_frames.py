# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame identity: which files of a folder are frames, and which frame each one is.

One rule, used by the batch reader (:func:`ionscope.operando.read_series`) and
the live follower (:class:`ionscope.live.FrameFollower`) alike:

* A file is a frame when its extension is a frame format
  (:data:`FRAME_EXTENSIONS`), its name does not start with ``.``, and its
  name without the extension matches the *frame pattern* — a regular
  expression with exactly one group, matched against the whole name
  (``re.fullmatch``). The group is the frame number.
* The default pattern, :data:`FRAME_PATTERN`, takes the **last run of
  digits** of the name: ``frame_0007.nc`` → 7, ``scan_2_frame_0012.dm4`` → 12.
  A file with a frame extension that does not match (``refs.nc``) is not a
  frame: it is ignored, and listed once (``ignored``), never analysed.
* Two files with the same number (``frame_003.nc`` beside ``frame_0003.nc``)
  are refused, naming both.
* Frame *k* starts at ``start_s + k · interval_s`` (:func:`frame_time`), for
  every *k*: a series may start at any number (``frame_0005`` is at
  5 intervals, not shifted to 0), and a missing number leaves a gap in time,
  listed as missing.
* A number far beyond the others (a date, ``backup_20250612.nc``) is refused
  with the file's name before anything is allocated: a folder may miss at
  most ``max_missing_ratio`` frames per frame file present (default 10)
  between its first and last number.

Set ``[input] frame_pattern`` (or ``frame_pattern=`` / ``--frame-pattern``)
when the names need another rule, e.g. ``"frame_(\\d+)"`` to take only files
named ``frame_<number>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataValidationError, FileFormatError

#: the default frame pattern: the last run of digits of the name (extension excluded)
FRAME_PATTERN = r".*?(\d+)\D*"
#: extensions of files that can be frames (a ``.zarr`` store is a folder)
FRAME_EXTENSIONS = (".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".nc", ".zarr", ".msa")
#: default bound on the missing frames of a folder, per frame file present
MAX_MISSING_RATIO = 10.0

_COMPILED: dict[str, re.Pattern] = {}
_DIGITS = re.compile(r"[0-9]+")


def frame_pattern(pattern: str | None = None, *, where: str = "frame_pattern") -> re.Pattern:
    """The compiled frame pattern (default :data:`FRAME_PATTERN`); checked to have one group.

    Parameters
    ----------
    pattern : str, optional
        A regular expression with exactly one group (the frame number), matched against a
        file's whole name without its extension.
    where : str
        Where the pattern came from, for messages (e.g. ``"config [input] frame_pattern"``).

    Returns
    -------
    re.Pattern

    Raises
    ------
    DataValidationError
        A pattern that does not compile or does not have exactly one group (names ``where``).

    Examples
    --------
    >>> frame_pattern(r"frame_(\\d+)").pattern
    'frame_(\\\\d+)'
    """
    text = FRAME_PATTERN if pattern in (None, "") else pattern
    if text in _COMPILED:
        return _COMPILED[text]
    if not isinstance(text, str):
        raise DataValidationError(f"{where}: expected a regular expression (a string), got {text!r}")
    try:
        rx = re.compile(text)
    except re.error as exc:
        raise DataValidationError(f"{where}: {text!r} is not a regular expression ({exc})") from None
    if rx.groups != 1:
        raise DataValidationError(f"{where}: {text!r} must have exactly one group (the frame number), "
                                  f"e.g. 'frame_(\\d+)'; it has {rx.groups}")
    _COMPILED[text] = rx
    return rx


def is_frame_file(name: str) -> bool:
    """Whether a name has a frame extension and is not hidden (the pattern is not applied here)."""
    return not name.startswith(".") and name.lower().endswith(FRAME_EXTENSIONS)


def frame_number(name, *, pattern: str | None = None) -> int | None:
    """The frame number of a file name by the frame pattern, or None when it does not match.

    The pattern is matched against the whole name without its extension.

    Parameters
    ----------
    name : str or Path
        A file name (or path: only the name counts).
    pattern : str, optional
        The frame pattern (default :data:`FRAME_PATTERN`: the last run of digits).

    Returns
    -------
    int or None

    Examples
    --------
    >>> frame_number("frame_0012.nc"), frame_number("refs.nc"), frame_number("a_7_b.dm4")
    (12, None, 7)
    >>> frame_number("frame_0012.nc", pattern=r"scan_(\\d+)") is None
    True
    """
    rx = frame_pattern(pattern)
    m = rx.fullmatch(Path(str(name)).stem)
    if m is None or m.group(1) is None:
        return None
    digits = m.group(1)
    if not _DIGITS.fullmatch(digits):  # a pattern whose group took more than digits: not a frame number
        return None
    return int(digits)


def frame_time(k, *, start_s: float = 0.0, interval_s: float = 60.0, anchor: str = "mid"):
    """Time (s) of frame number ``k``: ``start_s + k · interval_s`` (+ half an interval for ``"mid"``).

    Parameters
    ----------
    k : int or array_like of int
        Frame number(s).
    start_s : float
        Time of frame 0's start (s).
    interval_s : float
        Frame interval (s).
    anchor : {"mid", "start"}
        Whether a frame's time marks its middle or its start.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> [frame_time(k, interval_s=60.0) for k in (5, 6, 7)]
    [330.0, 390.0, 450.0]
    >>> frame_time(5, interval_s=60.0, anchor="start")
    300.0
    """
    if anchor not in ("mid", "start"):
        raise DataValidationError(f"time_anchor: expected 'mid' or 'start', got {anchor!r}")
    offset = 0.5 * interval_s if anchor == "mid" else 0.0
    return start_s + k * interval_s + offset


@dataclass
class FrameNumbers:
    """The frames of a folder: ``{number: path}`` in order, and the files that are not frames."""

    frames: dict = field(default_factory=dict)   # frame number → Path, ascending
    ignored: list = field(default_factory=list)  # names with a frame extension the pattern does not match
    pattern: str = FRAME_PATTERN

    @property
    def numbers(self) -> list[int]:
        return list(self.frames)

    def missing(self, *, start: int | None = None) -> list[int]:
        """Numbers between the first (or ``start``) and the last frame with no file."""
        if not self.frames:
            return []
        first = min(self.frames) if start is None else int(start)
        return [k for k in range(first, max(self.frames) + 1) if k not in self.frames]


#: the configuration keys a numbering error names (an EELS night's; a holography night passes its own)
INPUT_KEYS = ("[input] frame_pattern", "[input] max_missing_ratio")


def number_frames(paths, *, pattern: str | None = None, max_missing_ratio: float = MAX_MISSING_RATIO,
                  where=None, keys: tuple = INPUT_KEYS) -> FrameNumbers:
    """Number frame files by the frame pattern (see the module docstring for the rule).

    Parameters
    ----------
    paths : iterable of str or Path
        Candidate files (those without a frame extension or hidden are skipped).
    pattern : str, optional
        Regular expression with one group (default :data:`FRAME_PATTERN`).
    max_missing_ratio : float
        Most missing numbers between the first and the last frame, per frame
        file present; a folder beyond it is refused naming the outlying file(s).
    where : str or Path, optional
        The folder, for messages.
    keys : (str, str)
        The configuration keys the messages name for the frame pattern and the missing-frame bound
        (default: an EELS night's ``[input]`` keys).

    Returns
    -------
    FrameNumbers

    Raises
    ------
    FileFormatError
        Two files with one number (both named), or an absurd number (the file named).

    Examples
    --------
    >>> fr = number_frames(["frame_0005.nc", "frame_0007.nc", "refs.nc", "notes.txt"])
    >>> fr.numbers, fr.missing(), fr.ignored
    ([5, 7], [6], ['refs.nc'])
    """
    rx = frame_pattern(pattern)
    found: dict[int, Path] = {}
    ignored: list[str] = []
    for p in paths:
        p = Path(p)
        if not is_frame_file(p.name):
            continue
        k = frame_number(p.name, pattern=rx.pattern)
        if k is None:
            ignored.append(p.name)
            continue
        if k in found:
            a, b = sorted((found[k].name, p.name))
            place = f"{where}: " if where is not None else ""
            raise FileFormatError(
                f"{place}{a} and {b} are both frame {k} (by the frame pattern {rx.pattern!r}); remove or rename one, "
                f"or set {keys[0]} so only one of them matches")
        found[k] = p
    numbers = sorted(found)
    if len(numbers) > 1:
        span = numbers[-1] - numbers[0] + 1
        n_missing = span - len(numbers)
        if n_missing > max_missing_ratio * len(numbers):
            raise FileFormatError(_absurd(numbers, found, n_missing, rx.pattern, max_missing_ratio, where, keys))
    return FrameNumbers(frames={k: found[k] for k in numbers}, ignored=sorted(ignored), pattern=rx.pattern)


def _absurd(numbers, found, n_missing, pattern, ratio, where, keys=INPUT_KEYS) -> str:
    """The message naming the file(s) beyond the widest gap (the smaller side of it)."""
    gaps = [b - a for a, b in zip(numbers, numbers[1:])]
    i = max(range(len(gaps)), key=gaps.__getitem__)
    low, high = numbers[: i + 1], numbers[i + 1:]
    odd, rest = (high, low) if len(high) <= len(low) else (low, high)
    names = ", ".join(found[k].name for k in odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
    place = f"{Path(where) / found[odd[0]].name}" if where is not None else found[odd[0]].name
    what = f"frame number{'s' if len(odd) > 1 else ''} {', '.join(map(str, odd[:3]))}"
    verb = "lie" if len(odd) > 1 else "lies"
    return (f"{place}: {what} ({names}, by the frame pattern {pattern!r}) {verb} far from the other "
            f"{len(rest)} frame file(s), numbered {rest[0]}..{rest[-1]}: the series would miss {n_missing} frames "
            f"(more than {keys[1]} = {ratio:g} per frame file); move the file out of the folder or "
            f"set {keys[0]} so that only frames match")
