# SPDX-License-Identifier: GPL-3.0-or-later
"""The screen: read every frame of a series once and find the ones that cannot be analysed.

Headers can be fine while a frame's data are not (a damaged chunk, a detector
dropout written as NaN), and a frame can decode and still be impossible (all
zero, negative, a thousand times too bright): :func:`screen_statistics` reads
every frame once (bounded memory) and :func:`screen_reasons` turns the
statistics into one reason per frame with the plausibility gates of
:mod:`ionscope.pipeline._gates`.
"""
from __future__ import annotations

import numpy as np

from ..errors import IonscopeError


def screen_statistics(series, *, batch: int = 4, bar=lambda items: items, negative_below: float = 0.0):
    """Read every frame once: per-frame statistics, and the frames whose data cannot be decoded.

    Frames are read ``batch`` at a time (bounded memory; every statistic of a
    batch comes from one read); a batch that fails to read is retried frame by
    frame so one bad frame does not take its neighbours with it.

    Parameters
    ----------
    series : xarray.DataArray (time, ...)
        Lazy (dask) is expected; every chunk is read once.
    negative_below : float
        Values below minus this count as negative.

    Returns
    -------
    (stats, unreadable) : (dict of ndarray (time,), dict)
        ``stats`` as :func:`ionscope.pipeline._gates.frame_statistics` (NaN /
        0 for an unreadable frame); ``unreadable`` maps a frame's position to
        its reason.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = np.ones((3, 2, 2, 4)); a[1] = 0
    >>> stats, unreadable = screen_statistics(xr.DataArray(a, dims=("time", "y", "x", "energy")))
    >>> stats["total"].tolist(), unreadable
    ([16.0, 0.0, 16.0], {})
    """
    from ._gates import STATISTICS, frame_statistics

    n = series.sizes["time"]
    stats = {k: np.zeros(n, float if k in ("total", "minimum") else np.int64) for k in STATISTICS}
    unreadable: dict[int, str] = {}

    def put(start, got):
        for k in STATISTICS:
            stats[k][start:start + got[k].size] = got[k]

    for start in bar(list(range(0, n, batch))):
        stop = min(start + batch, n)
        try:
            put(start, frame_statistics(series.isel(time=slice(start, stop)), negative_below=negative_below))
        except Exception:  # noqa: BLE001 - decoders raise many types; retried frame by frame below
            for i in range(start, stop):
                try:
                    put(i, frame_statistics(series.isel(time=slice(i, i + 1)), negative_below=negative_below))
                except IonscopeError as exc:  # e.g. a damaged Zarr chunk: the message names the store and chunk
                    stats["total"][i] = stats["minimum"][i] = np.nan
                    unreadable[i] = f"data unreadable: {exc}"
                except Exception as exc:  # noqa: BLE001
                    stats["total"][i] = stats["minimum"][i] = np.nan
                    unreadable[i] = (f"data unreadable ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:160] if str(exc) else ''})")
    return stats, unreadable


def screen_frames(series, *, batch: int = 4, bar=lambda items: items, gates=None) -> list[dict]:
    """Read every frame once; list those whose data cannot be decoded, hold NaN/Inf, or are implausible.

    Headers can be fine while a frame's data are not (a damaged chunk, a
    detector dropout written as NaN). With ``gates`` the physical plausibility
    gates of :mod:`ionscope.pipeline._gates` run too (all zero, negative
    signal, negative values beyond read noise, total counts far outside the
    series' own range).

    Parameters
    ----------
    series : xarray.DataArray (time, y, x, energy)
        Lazy (dask) is expected; every chunk is read once.
    batch : int
        Frames read at once.
    gates : ScreenConfig, optional
        ``[screen]`` of the run configuration (:class:`ionscope.operando.Config`);
        default: only undecodable and NaN/Inf frames are listed.

    Returns
    -------
    list of dict
        ``{"index": i (position along time), "reason": text}`` per bad frame.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = np.ones((3, 2, 2, 4)); a[1, 0, 0, 0] = np.nan
    >>> screen_frames(xr.DataArray(a, dims=("time", "y", "x", "energy")).chunk({"time": 1}))
    [{'index': 1, 'reason': 'data hold 1 NaN/Inf value(s)'}]
    """
    below = float(getattr(gates, "negative_below", 0.0)) if gates is not None else 0.0
    stats, unreadable = screen_statistics(series, batch=batch, bar=bar, negative_below=below)
    reasons = screen_reasons(stats, unreadable, gates)
    return [{"index": i, "reason": r} for i, r in enumerate(reasons) if r]


def screen_reasons(stats: dict, unreadable: dict, gates=None) -> list[str]:
    """One reason per frame ("" where fine) from :func:`screen_statistics` and ``[screen]`` (None: no gates)."""
    from ._gates import frame_reasons

    n = stats["total"].size
    readable = np.array([i not in unreadable for i in range(n)], bool)
    options = {"enabled": False} if gates is None else {
        "enabled": gates.enabled, "count_ratio": gates.count_ratio, "min_frames": gates.min_frames,
        "max_negative_fraction": gates.max_negative_fraction, "negative_below": gates.negative_below}
    got = frame_reasons(**{k: v[readable] for k, v in stats.items()}, **options)
    reasons = [""] * n
    for i, r in zip(np.flatnonzero(readable), got):
        reasons[i] = r
    for i, r in unreadable.items():
        reasons[i] = r
    return reasons
