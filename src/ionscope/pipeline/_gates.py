# SPDX-License-Identifier: GPL-3.0-or-later
"""Physical plausibility gates: per-frame statistics → the reasons a frame cannot be analysed.

A frame can decode fine and hold only finite numbers and still be impossible
as a measurement: a detector dropout written as zeros, a frame stored with
the wrong sign or offset, a gain set 10³⁰ too high, a spectrum that the
reference spectra cannot describe at all. Such a frame is *marked bad with
its reason* (listed with the file and frame number like an unreadable one, in
the console, ``summary.json`` and ``report.html``) and kept out of the Li
movie, the denoising, the flux and the analysis — never silently analysed.

The gates (``[screen]`` in the run configuration; every threshold a key, defaults
in brackets). A frame is bad when

* **non-finite**: any value is NaN/Inf (always on);
* **all zero**: every value is exactly 0;
* **negative signal**: its total counts are ≤ 0 (a frame × −1);
* **negative values**: more than ``max_negative_fraction`` (0.01) of its values
  lie below −``negative_sigmas`` (5) × ``read_noise_counts`` (0) *and* that
  fraction is > ``count_ratio`` (10) × the series' median fraction (a few
  negative values in every frame of dark-subtracted data are read noise, not
  a fault; an offset of −50 counts is);
* **total counts**: > ``count_ratio`` (10) × the series' median, or < 1/``count_ratio``
  of it (a frame × 10³⁰);
* **χ² of the fit**: its mean reduced χ² (``limap``) is > ``chi2_ratio`` (10) × the
  series' median (the references do not describe it);
* **reversed in energy**: its summed spectrum correlates with the series' median
  spectrum reversed (r > 0.5) clearly better (by 0.2) than as stored — channels
  written in reverse order under an ascending ``energy`` coordinate
  (:func:`reversal_reasons`).

``[screen] enabled = false`` turns every gate but the non-finite one off;
``count_ratio = 0`` the two count gates relative to the series (negative
values, total counts), ``chi2_ratio = 0`` the χ² gate. The series-relative
gates compare with the median of the frames that pass the absolute gates
(so one wild frame cannot move the reference) and need at least
``min_frames`` (3) of them; with fewer frames only the absolute gates run.
The defaults never flag the simulator's honest frames, ideal or realistic,
down to a dose of 5 counts per channel where 13–23 % of the values are Poisson zeros
(tests/test_pipeline_gates.py), and keep dark-subtracted real spectra with a
few negative channels (``../shared/data/real/EELS_SI.dm4``: 0.2 % below 0).

Everything here is an array kernel (numpy in, reasons out: no I/O); the
``screen`` and ``fit_check`` stages of :mod:`ionscope.pipeline._eels` and
the live watcher (:mod:`ionscope.live._watch`, frame by frame, with the
median of the frames seen so far) call it.
"""
from __future__ import annotations

import numpy as np

#: Per-frame statistics :func:`frame_reasons` reads (``frame_statistics`` computes them).
STATISTICS = ("nonfinite", "total", "minimum", "negative", "size")


def block_statistics(block: np.ndarray, *, negative_below: float = 0.0) -> np.ndarray:
    """Per-frame statistics of a (time, ...) numpy block: ``(time, 5)`` = total, minimum, NaN/Inf count,
    negative count, values (the columns of :data:`STATISTICS`, reordered).

    Our own kernel rather than four numpy reductions because nearly every frame is fine: the total in
    the data's own precision (float32 pairwise summation, 4× faster than a float64 sum) and the
    minimum are two passes without temporaries; only a frame whose total is not finite (NaN/Inf, or a
    float32 overflow of a ×10³⁰ frame) or whose minimum lies below ``-negative_below`` is counted
    again. Measured on 4 frames of 32×48×1024 float32: 8 ms against 15 ms for the NaN/Inf count
    alone that the screen made before (2 shared cores, load 13).

    Examples
    --------
    >>> import numpy as np
    >>> b = np.ones((2, 3, 4), np.float32); b[1, 0, 0] = np.nan
    >>> block_statistics(b).tolist()
    [[12.0, 1.0, 0.0, 0.0, 12.0], [11.0, 1.0, 1.0, 0.0, 12.0]]
    """
    t = block.shape[0]
    flat = np.asarray(block).reshape(t, -1)
    out = np.zeros((t, 5))
    out[:, 4] = flat.shape[1]
    if t == 0 or flat.shape[1] == 0:
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        total = flat.sum(axis=1).astype(np.float64)
        low = flat.min(axis=1).astype(np.float64)
    out[:, 0], out[:, 1] = total, low
    for i in np.flatnonzero(~np.isfinite(total) | ~np.isfinite(low)):
        finite = np.isfinite(flat[i])
        out[i, 2] = flat.shape[1] - np.count_nonzero(finite)
        kept = flat[i][finite]
        out[i, 0] = kept.sum(dtype=np.float64)
        out[i, 1] = kept.min() if kept.size else np.nan
    for i in np.flatnonzero(out[:, 1] < -float(negative_below)):
        out[i, 3] = np.count_nonzero(flat[i] < -float(negative_below))
    return out


def frame_statistics(part, *, negative_below: float = 0.0) -> dict:
    """Per-frame statistics of a (time, ...) block of frames, in one read of the data.

    Parameters
    ----------
    part : xarray.DataArray (time, ...)
        A block of frames; lazy (dask) is read once (:func:`block_statistics`
        on every chunk, combined over a frame's chunks).
    negative_below : float
        Values below ``-negative_below`` count as negative.

    Returns
    -------
    dict of ndarray (time,)
        ``nonfinite`` (NaN/Inf values), ``total`` (sum of the finite values),
        ``minimum`` (of the finite values), ``negative`` (values below
        ``-negative_below``), ``size`` (values per frame).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.ones((2, 3, 4)), dims=("time", "y", "energy"))
    >>> frame_statistics(a)["total"].tolist()
    [12.0, 12.0]
    """
    data = part.transpose("time", ...).data
    if not hasattr(data, "map_blocks"):
        got = block_statistics(np.asarray(data), negative_below=negative_below)
    else:
        # one task per chunk; a frame split over several chunks is combined below
        extra = tuple((1,) * len(c) for c in data.chunks[1:])
        parts = data.map_blocks(lambda b: block_statistics(b, negative_below=negative_below).reshape(
            (b.shape[0],) + (1,) * (b.ndim - 1) + (5,)), chunks=(data.chunks[0],) + extra + ((5,),),
            new_axis=data.ndim, dtype=np.float64).compute()
        parts = parts.reshape(parts.shape[0], -1, 5)
        got = np.stack([parts[..., 0].sum(1), parts[..., 1].min(1) if parts.shape[1] > 1 else parts[:, 0, 1],
                        parts[..., 2].sum(1), parts[..., 3].sum(1), parts[..., 4].sum(1)], axis=1)
    return {"total": got[:, 0], "minimum": got[:, 1], "nonfinite": got[:, 2].astype(np.int64),
            "negative": got[:, 3].astype(np.int64), "size": got[:, 4].astype(np.int64)}


def _median_ratio(values: np.ndarray, ok: np.ndarray, min_frames: int, reference=None):
    """values / median(values[ok]) (NaN where undefined), or None when too few frames to judge."""
    ref = np.asarray(values, float)[ok] if reference is None else np.asarray(reference, float)
    ref = ref[np.isfinite(ref)]
    if ref.size < min_frames:
        return None, np.nan
    med = float(np.median(ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(values, float) / med, med


def frame_reasons(*, nonfinite, total, minimum, negative, size, enabled: bool = True, count_ratio: float = 10.0,
                  max_negative_fraction: float = 0.01, negative_below: float = 0.0, min_frames: int = 3,
                  reference: dict | None = None) -> list[str]:
    """Why each frame is implausible ("" where it is fine), from :func:`frame_statistics`.

    Parameters
    ----------
    nonfinite, total, minimum, negative, size : array_like (time,)
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
    >>> r = frame_reasons(nonfinite=np.zeros(6), total=tot, minimum=np.array([1, 1, 1, 0, -9, 1]),
    ...                   negative=np.array([0, 0, 0, 0, 9, 0]), size=np.full(6, 10))
    >>> [bool(x) for x in r]
    [False, False, True, True, True, False]
    >>> r[3]
    'all values are zero (no signal)'
    """
    nonfinite, total = np.asarray(nonfinite), np.asarray(total, float)
    minimum, negative = np.asarray(minimum, float), np.asarray(negative)
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
        if minimum[i] == 0 and total[i] == 0:  # no value below 0 and a sum of 0: every value is 0
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
    "mean χ² 1.36e+03 is 1.67e+03 × the series' median 0.81 (limit 10 ×): the references do not describe this frame"
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


def reversal_reasons(spectra, ok=None, *, min_frames: int = 3, reference=None) -> list[str]:
    """Frames whose summed spectrum is the series' spectrum reversed in energy ("" where fine).

    A frame whose channels were stored in reverse order while its ``energy``
    coordinate still ascends passes every count gate (same total, no negative
    values) and would be fitted with the edges at the wrong energies. Its
    summed spectrum then correlates with the series' median spectrum *reversed*
    better than forward; an honest frame correlates forward at r ≈ 1 (summed
    over its pixels even 5 counts per channel are a smooth spectrum) and, for
    a spectrum that falls with energy as every EELS spectrum does, negatively
    reversed.

    Parameters
    ----------
    spectra : array_like (time, energy)
        Each frame summed over its pixels.
    ok : array_like of bool (time,), optional
        Frames that passed the other gates: the median is taken over them.
    min_frames : int
        Fewest such frames for a median to judge by (fewer: nothing judged).
    reference : array_like (energy,), optional
        The spectrum to compare with instead of this series' median (live: the
        median of the frames seen so far).

    Returns
    -------
    list of str

    Examples
    --------
    >>> e = np.linspace(40.0, 120.0, 200)
    >>> good = 1e4 * (e / 40.0) ** -3 + 300.0 * (e > 55)
    >>> spectra = np.stack([good, 1.02 * good, 0.98 * good, good[::-1]])
    >>> [bool(r) for r in reversal_reasons(spectra)]
    [False, False, False, True]
    """
    s = np.asarray(spectra, float)
    n = s.shape[0]
    out = [""] * n
    ok = np.ones(n, bool) if ok is None else np.asarray(ok, bool)
    finite = np.all(np.isfinite(s), axis=1)
    if reference is None:
        use = ok & finite
        if use.sum() < max(int(min_frames), 1):
            return out
        reference = np.median(s[use], axis=0)
    ref = np.asarray(reference, float)
    if ref.size < 3 or not np.all(np.isfinite(ref)) or np.ptp(ref) == 0:
        return out

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        return float((a * b).sum() / den) if den > 0 else np.nan

    for i in np.flatnonzero(finite & ok):
        forward, backward = corr(s[i], ref), corr(s[i][::-1], ref)
        # judged only when reversal explains the frame clearly better than the frame as stored
        if np.isfinite(backward) and backward > 0.5 and backward > (forward if np.isfinite(forward) else -1) + 0.2:
            out[i] = (f"its summed spectrum matches the series' spectrum reversed in energy (r = {backward:.2f}; "
                      f"as stored r = {forward:.2f}): channels stored in reverse order?")
    return out
