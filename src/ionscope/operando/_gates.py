# SPDX-License-Identifier: GPL-3.0-or-later
"""Physical plausibility gates: per-frame statistics → the reasons a frame cannot be analysed.

A frame can decode fine and hold only finite numbers and still be impossible
as a measurement: a detector dropout written as zeros, a frame stored with
the wrong sign or offset, a gain set 10³⁰ too high, a spectrum that the
reference spectra cannot describe at all. Such a frame is *marked bad with
its reason* (listed with the file and frame number like an unreadable one, in
the console, ``summary.json`` and ``report.html``) and kept out of the Li
movie, the denoising, the flux and the analysis — never silently analysed.

The gates (``[screen]`` in the run configuration; every threshold a key):

=====================  ==========================================================  ======================
gate                   a frame is bad when                                         key (default)
=====================  ==========================================================  ======================
non-finite             any value is NaN/Inf (always on)                             —
all zero               every value is exactly 0                                     ``enabled``
negative signal        its total counts are ≤ 0                                     ``enabled``
negative values        more than ``max_negative_fraction`` of its values lie below  ``read_noise_counts``
                       −``negative_sigmas`` × ``read_noise_counts`` *and* that      (0), ``negative_sigmas``
                       fraction is > ``count_ratio`` × the series' median           (5),
                       fraction (a few negative values in every frame of           ``max_negative_fraction``
                       dark-subtracted data are read noise, not a fault)            (0.01)
total counts           its total counts are > ``count_ratio`` × the series'         ``count_ratio`` (10)
                       median, or < 1/``count_ratio`` of it
χ² of the fit          its mean reduced χ² (``limap``) is > ``chi2_ratio`` × the    ``chi2_ratio`` (10)
                       series' median (the references do not describe it)
=====================  ==========================================================  ======================

``[screen] enabled = false`` turns every gate but the non-finite one off;
``count_ratio = 0`` / ``chi2_ratio = 0`` turn one gate off. The series-relative
gates compare with the median of the frames that pass the absolute gates
(so one wild frame cannot move the reference) and need at least
``min_frames`` (3) of them; with fewer frames only the absolute gates run.
The defaults never flag the simulator's honest frames, ideal or realistic,
down to a dose of 5 counts per channel where most values are Poisson zeros
(tests/test_operando_gates.py), and keep dark-subtracted real spectra with a
few negative channels (``../shared/data/real/EELS_SI.dm4``: 0.2 % below 0).

Everything here is an array kernel (numpy in, reasons out: no I/O); the
``screen`` and ``fit_check`` stages of :mod:`ionscope.operando._pipeline` and
the live watcher (:mod:`ionscope.live._watch`, frame by frame, with the
median of the frames seen so far) call it.
"""
from __future__ import annotations

import numpy as np

#: Per-frame statistics :func:`frame_reasons` reads (``frame_statistics`` computes them).
STATISTICS = ("nonfinite", "total", "nonzero", "negative", "size")


def frame_statistics(part, *, negative_below: float = 0.0) -> dict:
    """Per-frame statistics of a (time, ...) block, in one read of the data.

    Parameters
    ----------
    part : xarray.DataArray (time, ...)
        A block of frames; lazy (dask) is read once (all reductions in one
        ``compute``).
    negative_below : float
        Values below ``-negative_below`` count as negative.

    Returns
    -------
    dict of ndarray (time,)
        ``nonfinite`` (NaN/Inf values), ``total`` (sum of the finite values,
        float64 so that a ×10³⁰ frame does not overflow), ``nonzero`` and
        ``negative`` (value counts), ``size`` (values per frame).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.ones((2, 3, 4)), dims=("time", "y", "energy"))
    >>> frame_statistics(a)["total"].tolist()
    [12.0, 12.0]
    """
    import xarray as xr

    dims = [d for d in part.dims if d != "time"]
    parts = {"nonzero": (part != 0).sum(dims), "negative": (part < -float(negative_below)).sum(dims)}
    if np.issubdtype(part.dtype, np.inexact):
        parts["nonfinite"] = (~np.isfinite(part)).sum(dims)
        parts["total"] = part.sum(dims, dtype="float64", skipna=True)
    else:  # integer counts are always finite
        parts["total"] = part.sum(dims, dtype="float64")
    got = xr.Dataset(parts).compute()
    n = got.sizes["time"]
    out = {k: np.asarray(got[k].values) for k in got.data_vars}
    out.setdefault("nonfinite", np.zeros(n, int))
    out["size"] = np.full(n, int(np.prod([part.sizes[d] for d in dims])))
    return out


def _median_ratio(values: np.ndarray, ok: np.ndarray, min_frames: int, reference=None):
    """values / median(values[ok]) (NaN where undefined), or None when too few frames to judge."""
    ref = np.asarray(values, float)[ok] if reference is None else np.asarray(reference, float)
    ref = ref[np.isfinite(ref)]
    if ref.size < min_frames:
        return None, np.nan
    med = float(np.median(ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(values, float) / med, med


def frame_reasons(*, nonfinite, total, nonzero, negative, size, enabled: bool = True, count_ratio: float = 10.0,
                  max_negative_fraction: float = 0.01, negative_below: float = 0.0, min_frames: int = 3,
                  reference: dict | None = None) -> list[str]:
    """Why each frame is implausible ("" where it is fine), from :func:`frame_statistics`.

    Parameters
    ----------
    nonfinite, total, nonzero, negative, size : array_like (time,)
        Per-frame statistics (see :func:`frame_statistics`).
    enabled : bool
        False: only the non-finite gate.
    count_ratio : float
        Total counts beyond ``count_ratio``× (or below 1/``count_ratio`` of)
        the series' median, or a negative fraction > ``count_ratio``× its
        median, mark a frame bad; 0 turns these series-relative gates off.
    max_negative_fraction : float
        Fraction of negative values a frame may hold regardless of the series.
    negative_below : float
        The threshold the ``negative`` counts were made with (for the message).
    min_frames : int
        Fewest frames passing the absolute gates for a median to judge by.
    reference : dict, optional
        ``{"total": ..., "negative_fraction": ...}`` arrays of *other* frames
        (e.g. those seen so far, live) to take the medians from instead of
        this series' own frames.

    Returns
    -------
    list of str
        One reason per frame; several reasons are joined with "; ".

    Examples
    --------
    >>> tot = np.array([1e6, 1.1e6, 1e36, 0.0, -5e5, 0.9e6])
    >>> r = frame_reasons(nonfinite=np.zeros(6), total=tot, nonzero=np.array([9, 9, 9, 0, 9, 9]),
    ...                   negative=np.array([0, 0, 0, 0, 9, 0]), size=np.full(6, 10))
    >>> [bool(x) for x in r]
    [False, False, True, True, True, False]
    >>> r[3]
    'all values are zero (no signal)'
    """
    nonfinite, total = np.asarray(nonfinite), np.asarray(total, float)
    nonzero, negative = np.asarray(nonzero), np.asarray(negative)
    size = np.maximum(np.asarray(size, float), 1.0)
    n = total.size
    reasons = [[] for _ in range(n)]
    for i in np.flatnonzero(nonfinite > 0):
        reasons[i].append(f"data hold {int(nonfinite[i])} NaN/Inf value(s)")
    if not enabled:
        return ["; ".join(r) for r in reasons]
    for i in range(n):
        if nonfinite[i]:
            continue
        if nonzero[i] == 0:
            reasons[i].append("all values are zero (no signal)")
        elif total[i] <= 0:
            reasons[i].append(f"total counts {total[i]:.3g} ≤ 0 (negative signal: inverted or offset data)")
    absolute_ok = np.array([not r for r in reasons], bool)
    frac = negative / size
    below = f"< {-negative_below:g} counts" if negative_below else "< 0"
    if count_ratio > 0:
        ref = reference or {}
        ratio, med = _median_ratio(frac, absolute_ok, min_frames, ref.get("negative_fraction"))
        if ratio is not None:
            for i in np.flatnonzero(absolute_ok & (frac > max_negative_fraction) & (frac > count_ratio * med)):
                reasons[i].append(f"{100 * frac[i]:.3g} % of the values are negative ({below}; the series' median "
                                  f"{100 * med:.2g} %, limit {100 * max_negative_fraction:g} %): negative beyond "
                                  f"read noise")
        ratio, med = _median_ratio(total, absolute_ok, min_frames, ref.get("total"))
        if ratio is not None and med > 0:
            for i in np.flatnonzero(absolute_ok & np.isfinite(ratio)):
                if ratio[i] > count_ratio:
                    reasons[i].append(f"total counts {total[i]:.3g} are {ratio[i]:.3g} × the series' median "
                                      f"{med:.3g} (limit {count_ratio:g} ×)")
                elif ratio[i] < 1 / count_ratio:
                    reasons[i].append(f"total counts {total[i]:.3g} are 1/{1 / ratio[i]:.3g} of the series' median "
                                      f"{med:.3g} (limit 1/{count_ratio:g})")
    return ["; ".join(r) for r in reasons]


def chi2_reasons(chi2_mean, *, ratio: float = 10.0, min_frames: int = 3, reference=None) -> list[str]:
    """Frames whose mean reduced χ² is > ``ratio`` × the series' median ("" where fine).

    Parameters
    ----------
    chi2_mean : array_like (time,)
        Mean reduced χ² of each frame's fit.
    ratio : float
        Limit relative to the median; 0 turns the gate off.
    min_frames : int
        Fewest finite values for a median to judge by.
    reference : array_like, optional
        Mean χ² of *other* frames to take the median from (live: those seen so far).

    Returns
    -------
    list of str

    Examples
    --------
    >>> chi2_reasons([0.8, 0.82, 1355.0, 0.79])[2]
    "mean χ² 1.36e+03 is 1.68e+03 × the series' median 0.806 (limit 10 ×): the references do not describe this frame"
    """
    chi2 = np.asarray(chi2_mean, float)
    out = [""] * chi2.size
    if ratio <= 0:
        return out
    finite = np.isfinite(chi2)
    r, med = _median_ratio(chi2, finite, min_frames, reference)
    if r is None or not med > 0:
        return out
    for i in np.flatnonzero(finite & (r > ratio)):
        out[i] = (f"mean χ² {chi2[i]:.3g} is {r[i]:.3g} × the series' median {med:.3g} (limit {ratio:g} ×): "
                  f"the references do not describe this frame")
    for i in np.flatnonzero(~finite):
        out[i] = "the fit's χ² is NaN/Inf"
    return out
