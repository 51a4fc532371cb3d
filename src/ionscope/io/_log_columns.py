# SPDX-License-Identifier: GPL-3.0-or-later
"""The header of an electrochemistry / bias log: which column holds what, and in which unit.

Part of the one log parser (:mod:`ionscope.io._logs`): every unit of a column that is read is understood or
refused naming the header (see there for the rules).
"""
from __future__ import annotations

import re

from ..errors import FileFormatError

#: time units (lower case; µ/μ written u) → seconds
_TIME_UNITS = {}
for _names, _f in ((("s", "sec", "secs", "second", "seconds"), 1.0),
                   (("ms", "msec", "msecs", "millisecond", "milliseconds"), 1e-3),
                   (("us", "usec", "usecs", "microsecond", "microseconds"), 1e-6),
                   (("ns", "nsec", "nanosecond", "nanoseconds"), 1e-9),
                   (("min", "mins", "minute", "minutes"), 60.0),
                   (("h", "hr", "hrs", "hour", "hours"), 3600.0),
                   (("d", "day", "days"), 86400.0)):
    _TIME_UNITS.update(dict.fromkeys(_names, _f))
del _names, _f
#: SI prefixes of the electrical symbols (case matters: M would be mega, refused)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "p": 1e-12}
_WORD_PREFIX = {"": 1.0, "kilo": 1e3, "milli": 1e-3, "micro": 1e-6, "nano": 1e-9, "pico": 1e-12}
_WORDS = {"V": ("volt", "volts"), "A": ("amp", "amps", "ampere", "amperes")}
_TIME_NAMES = ("time", "t", "elapsed time")
_UNIT = re.compile(r"^(?P<name>.*?)\s*(?:[\(\[]\s*(?P<u1>[^\)\]]*?)\s*[\)\]]|/\s*(?P<u2>[^/\s]+))\s*$")


def _split_unit(header: str) -> tuple[str, str | None]:
    """``'current (uA)'`` → ``('current', 'uA')``; ``'time/s'`` → ``('time', 's')``; no unit → None."""
    m = _UNIT.match(header.strip())
    if m is None or (m.group("u1") is None and m.group("u2") is None):
        return header.strip(), None
    return m.group("name").strip(), (m.group("u1") if m.group("u1") is not None else m.group("u2")).strip()


def time_factor(unit: str | None) -> float | None:
    """Seconds per unit of a time unit (``"min"`` → 60), 1 for no unit, None when not understood.

    Examples
    --------
    >>> time_factor("days"), time_factor("µs"), time_factor("Milliseconds"), time_factor("fortnights")
    (86400.0, 1e-06, 0.001, None)
    """
    if unit is None or unit == "":
        return 1.0
    return _TIME_UNITS.get(unit.strip().lower().replace("µ", "u").replace("μ", "u"))


def unit_factor(unit: str | None, base: str) -> float | None:
    """SI factor of an electrical unit with base ``"V"`` or ``"A"`` (``"mV"`` → 1e-3), None when not understood.

    Examples
    --------
    >>> unit_factor("uA", "A"), unit_factor("mV", "V"), unit_factor("Amps", "A"), unit_factor("MV", "V")
    (1e-06, 0.001, 1.0, None)
    """
    if unit is None or unit == "":
        return 1.0
    u = unit.strip()
    if u and u[-1] in (base, base.lower()) and u[:-1] in _SCALE:
        return _SCALE[u[:-1]]
    low = u.lower()
    for prefix, f in _WORD_PREFIX.items():
        if low.startswith(prefix) and low[len(prefix):] in _WORDS[base]:
            return f
    return None


def _understood(path, where: str, unit: str, kind: str) -> None:
    expected = {"time": "d, h, min, s, ms, us/µs, ns (or days, hours, ..., milliseconds)",
                "V": "V, mV, µV/uV, kV (or volts, millivolts)",
                "A": "A, mA, µA/uA, nA, pA (or amps, milliamps, ...)"}[kind]
    raise FileFormatError(f"{path}: {where}: unit {unit!r} is not understood; expected {expected}")


class _Layout:
    """Which columns hold what, from the header line."""

    def __init__(self, path, header: list[str], line: int, channel: str | None):
        self.header = [h.strip() for h in header]
        self.line = line
        names = [_split_unit(h) for h in self.header]
        lower = [n.lower() for n, _ in names]
        self.n_fields = len(self.header)
        self.time_col = next((i for i, n in enumerate(lower) if n in _TIME_NAMES), None)
        if self.time_col is None:
            raise FileFormatError(f"{path}: no 'time' column in the header (line {line}); found columns {self.header}")
        self.notes_col = next((i for i, h in enumerate(self.header) if h.lower() == "notes"), None)
        unit = names[self.time_col][1]
        self.time_factor = time_factor(unit)
        if self.time_factor is None:
            _understood(path, f"line {line}, column {self.header[self.time_col]!r}", unit, "time")
        self.time_unit_given = unit is not None
        self.candidates: dict[str, list[tuple[int, float | None]]] = {}
        for name, key, base in (("voltage", "volt", "V"), ("current", "current", "A")):
            cols = [i for i, n in enumerate(lower) if key in n and i != self.time_col]
            if channel is not None:
                cols = [i for i in cols if f"channel {channel.lower()}" in lower[i]] or cols
            found = []
            for i in cols:
                u = names[i][1]
                f = unit_factor(u, base)
                if f is None:
                    _understood(path, f"line {line}, column {self.header[i]!r}", u, base)
                found.append((i, f if u is not None else None))  # None: the notes (Protochips) may name the unit
            if found:
                self.candidates[name] = found
        if not self.candidates:
            raise FileFormatError(f"{path}: no voltage or current column in the header (line {line}); found columns "
                                  f"{self.header}")
        self.state_col = next((i for i, n in enumerate(lower) if n == "state"), None)
        self.numeric = [self.time_col] + [i for c in self.candidates.values() for i, _ in c]
