# SPDX-License-Identifier: GPL-3.0-or-later
"""Electrochemistry / bias logs (CSV) → an xarray Dataset on a ``time`` axis in s."""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import numpy as np

from ..errors import DataValidationError, FileFormatError

_TIME_UNITS = {"milliseconds": 1e-3, "ms": 1e-3, "seconds": 1.0, "s": 1.0, "minutes": 60.0, "min": 60.0,
               "hours": 3600.0, "h": 3600.0}
_SCALE = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "k": 1e3}


def _unit_in_header(header: str, base: str) -> float:
    """Factor from a header such as 'current (uA)' or 'Voltage [mV]' to SI."""
    m = re.search(r"[\(\[]\s*([munpkµ]?)" + base + r"\s*[\)\]]", header)
    return _SCALE.get(m.group(1), 1.0) if m else 1.0


_MISSING = ("error", "interpolate")


def read_log(path, *, channel: str | None = None, missing: str = "error"):
    """Read an electrochemistry/bias log into a Dataset with ``voltage``, ``current``.

    Understands Protochips-style CSV exports (a ``Notes`` column carrying the
    start date/time and the time unit; ``Channel A Voltage`` ...) and plain CSV
    files with ``time``, ``voltage``, ``current`` (and optional ``state``)
    columns; units in brackets such as ``time (min)`` or ``current (uA)`` are
    converted to s, V and A.

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

    Returns
    -------
    xarray.Dataset
        Dimension ``time`` (s from the start of the log), variables ``voltage``
        (V), ``current`` (A) and, when present, ``state``; attrs ``timestamp``
        (ISO start time when the log gives it) and ``source_file``.

    Examples
    --------
    >>> log = read_log("../shared/data/real/protochips_electrical.csv")  # doctest: +SKIP
    >>> log.voltage.attrs["units"]  # doctest: +SKIP
    'V'
    """
    import pandas as pd
    import xarray as xr

    path = Path(path)
    if missing not in _MISSING:
        raise DataValidationError(f"missing: expected one of {list(_MISSING)}, got {missing!r}")
    if not path.is_file():
        raise FileFormatError(f"{path}: no such log file")
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except Exception as exc:  # pandas raises many types for bad CSV
        raise FileFormatError(f"{path}: not a readable CSV log ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    lower = {c.lower(): c for c in table.columns}

    time_col = next((lower[c] for c in lower if c.split("(")[0].split("[")[0].strip() in ("time", "t", "elapsed time")), None)
    if time_col is None:
        raise FileFormatError(f"{path}: no 'time' column; found columns {list(table.columns)}")
    attrs: dict = {"source_file": str(path)}
    time_factor = 1.0
    if "Notes" in table.columns:  # Protochips: notes carry date, time and time unit
        notes = table["Notes"].dropna().astype(str)
        info = dict(n.split("=", 1) for n in notes if "=" in n)
        info = {k.strip().lower(): v.strip() for k, v in info.items()}
        unit = info.get("time units", "").lower()
        time_factor = _TIME_UNITS.get(unit, 1.0)
        date = next((v for k, v in info.items() if k.startswith("date")), None)
        clock = next((v for k, v in info.items() if k.startswith("time (")), None)
        if date and clock:
            try:
                attrs["timestamp"] = _dt.datetime.strptime(f"{date} {clock}", "%Y.%m.%d %H:%M:%S.%f").isoformat()
            except ValueError:
                pass
    else:
        m = re.search(r"[\(\[]\s*(\w+)\s*[\)\]]", time_col)
        if m:
            time_factor = _TIME_UNITS.get(m.group(1).lower(), 1.0)

    def find(kind: str):
        cols = [c for c in table.columns if kind in c.lower()]
        if channel is not None:
            cols = [c for c in cols if f"channel {channel.lower()}" in c.lower()] or cols
        elif len(cols) > 1:  # prefer a channel that actually varies
            varying = [c for c in cols if pd.to_numeric(table[c], errors="coerce").nunique() > 1]
            cols = varying or cols
        return cols[0] if cols else None

    v_col, i_col = find("volt"), find("current")
    if v_col is None and i_col is None:
        raise FileFormatError(f"{path}: no voltage or current column; found columns {list(table.columns)}")
    time = pd.to_numeric(table[time_col], errors="coerce").to_numpy(float) * time_factor
    if "Notes" in table.columns:
        # Protochips repeats t = 0 on its header rows: keep the measurement rows.
        keep = ~table["Notes"].astype(str).str.contains("=").to_numpy()
    else:
        keep = np.ones(len(table), bool)
    # line in the file of each table row (header on line 1; blank lines are not counted by pandas)
    lines = np.arange(len(table)) + 2
    bad_time = keep & ~np.isfinite(time)
    if bad_time.any() and missing == "error":
        raise DataValidationError(f"{path}: {_listed(table, time_col, bad_time, lines)}: the time is empty or not "
                                  f"a number (fix the log, or ask to interpolate: [input] log_missing = "
                                  f"\"interpolate\")")
    keep &= np.isfinite(time)
    if keep.sum() < 2:
        raise DataValidationError(f"{path}: fewer than 2 rows with a numeric time in column {time_col!r}")
    data_vars = {}
    filled: set[int] = set()
    for name, col, unit in (("voltage", v_col, "V"), ("current", i_col, "A")):
        if col is None:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(float)
        bad = keep & ~np.isfinite(values)
        if bad.any():
            if missing == "error" or bad.sum() > keep.sum() - 2:
                raise DataValidationError(
                    f"{path}: {_listed(table, col, bad, lines)}: the {name} is empty or not a number (fix the "
                    f"log, or ask to interpolate: [input] log_missing = \"interpolate\")")
            good = keep & np.isfinite(values)
            values = values.copy()
            values[bad] = np.interp(time[bad], time[good], values[good])
            filled.update(int(n) for n in lines[bad])
        values = values[keep] * _unit_in_header(col, unit)
        data_vars[name] = ("time", values, {"units": unit, "column": col})
    if filled:
        attrs["interpolated_lines"] = sorted(filled)
    state_col = lower.get("state")
    if state_col:
        data_vars["state"] = ("time", table[state_col].astype(str).to_numpy()[keep])
    t = time[keep]
    order = np.argsort(t, kind="stable")
    ds = xr.Dataset(data_vars, coords={"time": ("time", t, {"units": "s"})}, attrs=attrs).isel(time=order)
    if np.any(np.diff(ds.time.values) <= 0):
        _, unique = np.unique(ds.time.values, return_index=True)
        ds = ds.isel(time=unique)
    return ds


def voltage_log(log):
    """A bias/voltage log as a Dataset: a path is read with :func:`read_log`, a Dataset is checked.

    The one place the holography analysis and the biased-hologram simulator accept a log from.
    Raises :class:`~ionscope.errors.DataValidationError` unless it has ``voltage`` (V) on ``time`` (s).
    """
    from pathlib import Path

    from ..errors import DataValidationError

    if isinstance(log, (str, Path)):
        log = read_log(log)
    if not (hasattr(log, "data_vars") and "voltage" in log.data_vars and "time" in log.coords):
        raise DataValidationError("log: expected a Dataset with a 'voltage' variable (V) on a 'time' axis (s), "
                                  "e.g. from ionscope.io.read_log, or the path of a CSV log")
    return log


def _listed(table, col: str, bad, lines) -> str:
    """'line 7 ('abc'), line 9 ('')' for the first few bad cells of a column."""
    idx = np.flatnonzero(bad)
    shown = ", ".join(f"line {lines[i]} ({str(table[col].iloc[i]).strip()!r} in {col!r})" for i in idx[:3])
    return shown + (f" and {idx.size - 3} more" if idx.size > 3 else "")
