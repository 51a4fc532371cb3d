# SPDX-License-Identifier: GPL-3.0-or-later
"""Frames ↔ electrochemistry log: what the cell was doing while each frame was taken.

A frame is acquired over an interval ``[t0, t1)``, not at an instant, and an
operando frame (~1 min) spans many log samples, so values are *interval
means* of the piecewise-linear log (exact for a log sampled finely enough),
not samples at the frame's start.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import DataValidationError


def _cumulative(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of ``v(t)``, starting at 0 (same length as ``t``)."""
    out = np.zeros_like(t, dtype=float)
    out[1:] = np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))
    return out


def interval_means(t: np.ndarray, values: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Mean of the piecewise-linear signal ``values(t)`` over each ``[t0, t1]``.

    Array kernel: ``t`` increasing (n,), ``values`` (n,), ``t0``/``t1`` (m,).
    Zero-length intervals give the interpolated value at ``t0``.

    Parameters
    ----------
    t : ndarray
        Increasing sample times (n,).
    values : ndarray
        Samples (n,).
    t0, t1 : ndarray
        Interval starts and ends (m,).

    Returns
    -------
    ndarray
        ``(m,)`` means.

    Examples
    --------
    >>> import numpy as np
    >>> interval_means(np.array([0., 10.]), np.array([0., 10.]), np.array([0.]), np.array([10.]))
    array([5.])
    """
    t = np.asarray(t, float)
    v = np.asarray(values, float)
    t0 = np.asarray(t0, float)
    t1 = np.asarray(t1, float)
    cum = _cumulative(t, v)
    width = t1 - t0
    integral = np.interp(t1, t, cum) - np.interp(t0, t, cum)
    point = np.interp(t0, t, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(width > 0, integral / np.where(width > 0, width, 1.0), point)


def _states_from_current(current: np.ndarray) -> np.ndarray:
    """charge / discharge / rest from the sign of the current (positive = charge).

    The threshold is 1 % of the largest |current| so that noise on an
    open-circuit rest is not read as charging.
    """
    thr = 0.01 * float(np.nanmax(np.abs(current))) if current.size and np.any(current) else 0.0
    return np.where(current > thr, "charge", np.where(current < -thr, "discharge", "rest"))


def sync_frames(frame_start, log, *, duration_s=None, capacity_c: float = 0.0, allow_uncovered: bool = False):
    """Map each frame's acquisition interval onto the electrochemistry log.

    Parameters
    ----------
    frame_start : array_like or xarray.DataArray
        Start time of every frame in s, on the log's clock (a DataArray's
        ``time`` coordinate is used).
    log : xarray.Dataset
        ``time`` (s) with ``voltage`` (V) and/or ``current`` (A); optional
        ``state`` (str) and ``charge_c`` (C, charge passed). As returned by
        :func:`ionscope.io.read_log` or the simulator.
    duration_s : float or array_like, optional
        Acquisition time per frame; default the median spacing of the starts.
    capacity_c : float
        Charge of a full charge for the state of charge; 0 scales SOC to the
        log's own range of charge passed.
    allow_uncovered : bool
        Frames that the log does not cover raise (False) or get NaN values and
        ``covered = False`` (True).

    Returns
    -------
    xarray.Dataset
        On ``time`` (frame start, s): ``t_end``, ``voltage``, ``current``
        (interval means), ``state`` (most frequent state in the interval),
        ``charge_c`` (charge passed by the frame's midpoint), ``soc`` and
        ``covered``.

    Raises
    ------
    DataValidationError
        The log lacks voltage and current, times are not increasing, or the
        log does not cover some frames (they are listed) and
        ``allow_uncovered`` is False.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
    (operando frames of ~1 min read against the charge curve).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> log = xr.Dataset({"current": ("time", np.full(61, 1e-9))},
    ...                  coords={"time": np.arange(61.0) * 10})
    >>> s = sync_frames(np.array([0.0, 300.0]), log, duration_s=300.0)
    >>> [str(v) for v in s.state.values], round(float(s.charge_c[1]) * 1e9, 6)
    (['charge', 'charge'], 450.0)
    """
    import xarray as xr

    if isinstance(frame_start, xr.DataArray):
        frame_start = frame_start["time"].values if "time" in frame_start.coords else frame_start.values
    t0 = np.atleast_1d(np.asarray(frame_start, dtype=float))
    if t0.size == 0:
        raise DataValidationError("sync_frames: no frames to synchronise")
    if t0.size > 1 and np.any(np.diff(t0) <= 0):
        raise DataValidationError("sync_frames: frame start times must increase")
    if duration_s is None:
        duration_s = float(np.median(np.diff(t0))) if t0.size > 1 else 0.0
    t1 = t0 + np.broadcast_to(np.asarray(duration_s, dtype=float), t0.shape)
    if not isinstance(log, xr.Dataset) or "time" not in log.coords:
        raise DataValidationError("sync_frames: log must be an xarray.Dataset with a 'time' coordinate in s")
    if "voltage" not in log and "current" not in log:
        raise DataValidationError(f"sync_frames: log has neither 'voltage' nor 'current'; it has {list(log.data_vars)}")
    tl = np.asarray(log.time.values, dtype=float)
    if tl.size < 2 or np.any(np.diff(tl) <= 0):
        raise DataValidationError("sync_frames: log times must increase and hold at least 2 samples")

    # Half a log step of slack: a frame that starts on the first sample is covered.
    tol = 0.5 * float(np.median(np.diff(tl)))
    covered = (t0 >= tl[0] - tol) & (t1 <= tl[-1] + tol)
    if not covered.all() and not allow_uncovered:
        bad = np.flatnonzero(~covered)
        listed = ", ".join(f"#{i} [{t0[i]:.6g}, {t1[i]:.6g}] s" for i in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise DataValidationError(
            f"log does not cover {bad.size} of {t0.size} frame(s): {listed}; the log spans "
            f"[{tl[0]:.6g}, {tl[-1]:.6g}] s (set [sync] allow_uncovered = true to mark them bad and go on)")

    out = {"t_end": ("time", t1, {"units": "s"})}
    units = {"voltage": "V", "current": "A"}
    for name in ("voltage", "current"):
        if name in log:
            v = np.asarray(log[name].values, dtype=float)
            out[name] = ("time", np.where(covered, interval_means(tl, v, t0, t1), np.nan), {"units": units[name]})
    mid = 0.5 * (t0 + t1)
    if "charge_c" in log:
        charge = np.interp(mid, tl, np.asarray(log.charge_c.values, float))
        charge_log = np.asarray(log.charge_c.values, float)
    elif "current" in log:
        cum = _cumulative(tl, np.asarray(log.current.values, float))
        charge = np.interp(mid, tl, cum)
        charge_log = cum
    else:
        charge = np.full(t0.shape, np.nan)
        charge_log = np.zeros(1)
    charge = np.where(covered, charge, np.nan)
    out["charge_c"] = ("time", charge, {"units": "C", "long_name": "charge passed"})
    if capacity_c > 0:
        soc = charge / capacity_c
    else:
        span = float(np.nanmax(charge_log) - np.nanmin(charge_log)) if charge_log.size else 0.0
        soc = (charge - float(np.nanmin(charge_log))) / span if span > 0 else np.zeros_like(charge)
    out["soc"] = ("time", soc, {"units": "1", "long_name": "state of charge"})

    if "state" in log:
        states_log = np.array([str(v) for v in log.state.values])
    elif "current" in log:
        states_log = _states_from_current(np.asarray(log.current.values, float))
    else:
        states_log = np.full(tl.shape, "unknown")
    states = []
    for a, b, m, ok in zip(t0, t1, mid, covered):
        if not ok:
            states.append("uncovered")
            continue
        inside = states_log[(tl >= a) & (tl <= b)]
        if inside.size:
            states.append(Counter(inside.tolist()).most_common(1)[0][0])
        else:  # interval shorter than the log step: nearest sample
            states.append(str(states_log[int(np.argmin(np.abs(tl - m)))]))
    out["state"] = ("time", np.asarray(states, dtype=str))
    out["covered"] = ("time", covered)
    return xr.Dataset(out, coords={"time": ("time", t0, {"units": "s"})})
