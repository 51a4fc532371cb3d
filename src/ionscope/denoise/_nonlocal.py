# SPDX-License-Identifier: GPL-3.0-or-later
"""Non-local collaborative sparse coding of image stacks (array kernel).

Similar spatio-temporal patches are grouped by block matching across space
*and* time (the frames of a Li-map movie are strongly correlated, and a search
window spanning several frames absorbs specimen drift without an explicit
registration). Each group is coded jointly: in a separable orthonormal
dictionary (patch atoms x group atoms) the simultaneous sparse code of the
group is found exactly by thresholding, which is what makes joint sparse
coding of ~10^5 groups affordable in plain numpy (Mairal et al. 2009 code the
group over a shared support; Dabov et al. 2007 and Maggioni et al. 2013 use
the same separable collaborative transform). A first pass (hard
thresholding) gives a pilot; a further pass matches on the pilot and applies
empirical Wiener shrinkage to the noisy group's coefficients, using the
pilot's as the signal energy (the caller may pass a patch dictionary learned
from the pilot). Overlapping estimates are aggregated with weights inversely
proportional to their residual noise variance, tapered by a Kaiser window.

Everything is vectorised over groups (batched matrix products, block matching
by separable box sums evaluated only on the reference grid, ``np.bincount``
aggregation); no compiled extension is needed.

References
----------
J. Mairal, F. Bach, J. Ponce, G. Sapiro, A. Zisserman, "Non-local sparse models
for image restoration", ICCV 2009, doi:10.1109/ICCV.2009.5459452.
K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, IEEE Trans. Image Process. 16
(2007) 2080, doi:10.1109/TIP.2007.901238.
M. Maggioni, G. Boracchi, A. Foi, K. Egiazarian, IEEE Trans. Image Process. 22
(2013) 119, doi:10.1109/TIP.2012.2210725.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._patches import grid

# Groups are processed in chunks of this many reference patches: bounds the
# working memory (chunk x group x patch floats) at a few tens of MB.
_CHUNK = 2048


def _workers(n_tasks: int) -> int:
    """Threads for independent work items: the process's cores, 1 inside a worker thread (dask)."""
    import os
    import threading

    if n_tasks < 2 or threading.current_thread() is not threading.main_thread():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_tasks, cores))


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows are atoms), float64."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def haar_matrix(n: int) -> np.ndarray:
    """Orthonormal Haar matrix for ``n`` a power of two (rows are atoms); DCT otherwise."""
    if n < 2 or n & (n - 1):
        return dct_matrix(n)
    h = np.array([[1.0]])
    while h.shape[0] < n:
        top = np.kron(h, [1.0, 1.0])
        bottom = np.kron(np.eye(h.shape[0]), [1.0, -1.0])
        h = np.vstack([top, bottom]) / np.sqrt(2.0)
    return h


_SQRT_HALF = np.float32(np.sqrt(0.5))


def _group_transform(x: np.ndarray, matrix: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """Orthonormal transform along axis 1 of (n, k, d): fast Haar for k = 2^j, else ``matrix``.

    Coefficient order matches :func:`haar_matrix` up to a permutation within
    each scale; the group mean (DC) is always first.
    """
    k = x.shape[1]
    if k & (k - 1) or k < 2:
        xt = np.ascontiguousarray(x.transpose(0, 2, 1))
        y = xt.reshape(-1, k) @ (matrix if inverse else matrix.T)
        return np.ascontiguousarray(y.reshape(x.shape[0], x.shape[2], k).transpose(0, 2, 1))
    if not inverse:
        details = []
        a = x
        while a.shape[1] > 1:
            even, odd = a[:, 0::2], a[:, 1::2]
            details.append((even - odd) * _SQRT_HALF)
            a = (even + odd) * _SQRT_HALF
        return np.concatenate([a, *details[::-1]], axis=1)
    a = x[:, :1]
    pos = 1
    while pos < k:
        det = x[:, pos:2 * pos]
        nxt = np.empty((x.shape[0], 2 * pos, x.shape[2]), x.dtype)
        nxt[:, 0::2] = (a + det) * _SQRT_HALF
        nxt[:, 1::2] = (a - det) * _SQRT_HALF
        a = nxt
        pos *= 2
    return a


def _box_at(cs: np.ndarray, axis: int, start: np.ndarray, width: int) -> np.ndarray:
    """Sums of ``width`` consecutive samples starting at ``start``, from a cumulative sum along ``axis``."""
    hi = np.take(cs, start + width - 1, axis=axis)
    lo = np.take(cs, np.maximum(start - 1, 0), axis=axis)
    if start.size and start[0] == 0:  # the window starting at 0 has nothing to subtract
        sl = [slice(None)] * cs.ndim
        sl[axis] = 0
        lo[tuple(sl)] = 0
    return hi - lo


def _offset_distances(zf, off, grids, size):
    """Patch distances between every grid reference and its candidate at offset ``off`` (inf outside)."""
    shape_g = tuple(len(g) for g in grids)
    lo = np.maximum(0, -off)
    hi = np.array(zf.shape) - np.maximum(0, off)
    if np.any(hi - lo < np.array(size)):
        return None
    # references whose candidate patch lies inside the stack form a sub-box of the grid
    keep = [np.flatnonzero((g - l >= 0) & (g - l + s <= h - l)) for g, l, h, s in zip(grids, lo, hi, size)]
    if any(kk.size == 0 for kk in keep):
        return None
    a = zf[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    b = zf[lo[0] + off[0]:hi[0] + off[0], lo[1] + off[1]:hi[1] + off[1], lo[2] + off[2]:hi[2] + off[2]]
    box = (a - b) ** 2
    # Separable box sums evaluated only on the reference grid: the first
    # cumulative sum runs over the whole volume, the next two over data
    # already sub-sampled by the grid step -- about 3x cheaper than a full
    # 3-D integral volume, and block matching dominates the run time.
    for axis in (1, 2, 0):
        starts = grids[axis][keep[axis]] - lo[axis]
        box = _box_at(np.cumsum(box, axis=axis), axis, starts, size[axis])
    d = np.full(shape_g, np.inf, np.float32)
    d[keep[0][0]:keep[0][-1] + 1, keep[1][0]:keep[1][-1] + 1, keep[2][0]:keep[2][-1] + 1] = box
    return d


def block_match(z: np.ndarray, grids: tuple[np.ndarray, np.ndarray, np.ndarray], *, size: tuple[int, int, int],
                radius: tuple[int, int, int], k: int) -> np.ndarray:
    """For each reference patch on a grid, the ``k`` most similar patches in a search window.

    Parameters
    ----------
    z : ndarray (T, H, W)
        Image stack to match on.
    grids : (gt, gy, gx)
        Sorted patch-origin coordinates of the references along each axis; the
        references are their Cartesian product (C order).
    size : (pt, p, p)
        Patch size.
    radius : (rt, ry, rx)
        Search-window half-widths.
    k : int
        Group size.

    Returns
    -------
    ndarray (n_refs, k, 3) of int
        Origins of the matched patches, most similar first (the reference
        itself, at distance 0, always first). Where a window holds fewer than
        ``k`` candidates the reference is repeated.
    """
    shape_g = tuple(len(g) for g in grids)
    n = int(np.prod(shape_g))
    refs = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in radius], indexing="ij"), -1).reshape(-1, 3)
    # zero offset first, so that ties never push a reference out of its own group
    offsets = offsets[np.argsort(np.abs(offsets).sum(1), kind="stable")]
    zf = z.astype(np.float32, copy=False)

    def keep_best(d, o):
        if d.shape[1] > k:
            sel = np.argpartition(d, k - 1, axis=1)[:, :k]
            d = np.take_along_axis(d, sel, 1)
            o = np.take_along_axis(o, sel, 1)
        return d, o

    def scan(js):
        """The k best among the offsets ``js`` for every reference (distances, offset indices)."""
        best_d = np.full((n, 0), np.inf, np.float32)
        best_o = np.zeros((n, 0), np.int32)
        batch_d, batch_o = [], []
        for j in js:
            d = _offset_distances(zf, offsets[j], grids, size)
            if d is None:
                continue
            batch_d.append(d.reshape(n, 1))
            batch_o.append(np.full((n, 1), j, np.int32))
            if len(batch_d) >= 64:
                best_d, best_o = keep_best(np.concatenate([best_d, *batch_d], axis=1),
                                           np.concatenate([best_o, *batch_o], axis=1))
                batch_d, batch_o = [], []
        return keep_best(np.concatenate([best_d, *batch_d], axis=1), np.concatenate([best_o, *batch_o], axis=1))

    workers = _workers(len(offsets) // 64)
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        # offsets interleaved over the threads (the cumulative sums release the GIL), the k best
        # of each share merged after (issue 20)
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(scan, [range(i, len(offsets), workers) for i in range(workers)]))
        best_d, best_o = keep_best(np.concatenate([q[0] for q in parts], axis=1),
                                   np.concatenate([q[1] for q in parts], axis=1))
    else:
        best_d, best_o = scan(range(len(offsets)))
    # most similar first; equal distances by offset index (the zero offset, index 0, first), so the
    # order does not depend on how the offsets were shared among threads
    order = np.lexsort((best_o, best_d), axis=1)
    best_d = np.take_along_axis(best_d, order, 1)
    best_o = np.take_along_axis(best_o, order, 1)
    pos = refs[:, None, :] + offsets[best_o]
    missing = ~np.isfinite(best_d)
    pos = np.where(missing[..., None], refs[:, None, :], pos)
    if pos.shape[1] < k:  # tiny stacks: fewer candidates than k in total
        pad = np.repeat(refs[:, None, :], k - pos.shape[1], axis=1)
        pos = np.concatenate([pos, pad], axis=1)
    return pos.astype(np.int64)


def _sum_chunks(run, chunks):
    """``run(chunks)`` -> ``(num, wsum)``, on threads when there are enough chunks and cores."""
    workers = _workers(len(chunks))
    if workers <= 1:
        return run(chunks)
    from concurrent.futures import ThreadPoolExecutor

    # chunks of groups are independent until aggregation: each thread sums its own chunks
    # (interleaved, so both get the same mix of borders and interior), the sums are added
    # after; GEMMs, the Haar transform and the shrinkage release the GIL (issue 20)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(run, [chunks[i::workers] for i in range(workers)]))
    num, wsum = parts[0]
    for a, b in parts[1:]:
        num += a
        wsum += b
    return num, wsum


def _spread_window(wsum, shape, npos, windows):
    """The aggregation's denominator (flat): each patch origin's weight spread over its window.

    den = sum over patch elements e of win[e] * wsum shifted by e, far cheaper
    than scattering d values per patch. The window is separable (Kaiser along
    t, y, x), so the d = pt p p shifted adds factor into pt + 2 p shifted adds
    along one axis at a time (measured ~1 s saved per 32x128x128 movie).
    """
    den = np.zeros(shape, np.float64)
    den[:npos[0], :npos[1], :npos[2]] = wsum.reshape(shape)[:npos[0], :npos[1], :npos[2]]
    for axis, w1 in enumerate(windows):
        src = den.copy()
        den[...] = 0
        n_ax = den.shape[axis] - len(w1) + 1
        for e, we in enumerate(w1):
            dst = [slice(None)] * 3
            sl = [slice(None)] * 3
            dst[axis], sl[axis] = slice(e, e + n_ax), slice(0, n_ax)
            den[tuple(dst)] += we * src[tuple(sl)]
    return den.ravel()


def collaborative_filter(
    z: np.ndarray,
    *,
    sigma: float,
    patch: int = 8,
    patch_t: int = 1,
    step: int = 3,
    step_t: int = 1,
    search: int = 7,
    search_t: int = 2,
    group: int = 16,
    threshold: float = 2.7,
    pilot: np.ndarray | None = None,
    patch_basis: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    return_positions: bool = False,
    progress: Callable | None = None,
):
    """One collaborative pass over a (T, H, W) stack with Gaussian noise ``sigma``.

    Without ``pilot``: joint sparse coding of each group by hard thresholding
    of its coefficients at ``threshold * sigma``. With ``pilot``: block matching
    on the pilot and empirical Wiener shrinkage. ``patch_basis`` (d x d,
    orthonormal rows) replaces the separable DCT patch dictionary.
    ``positions`` (from an earlier call with ``return_positions=True`` and
    the same geometry) skips block matching.

    Returns
    -------
    ndarray (T, H, W) float32, and the group positions if ``return_positions``.
    """
    z = np.asarray(z, dtype=np.float32)
    T, H, W = z.shape
    pt, p = min(patch_t, T), min(patch, H, W)
    size = (pt, p, p)
    d = pt * p * p
    npos = (T - pt + 1, H - p + 1, W - p + 1)
    gt, gy, gx = grid(npos[0], step_t), grid(npos[1], step), grid(npos[2], step)
    k = max(1, group)
    radius = (min(search_t, T - pt), search, search)
    match_on = z if pilot is None else np.asarray(pilot, dtype=np.float32)
    if positions is not None and positions.shape[1] >= k:
        pos = positions[:, :k]
    else:
        pos = block_match(match_on, (gt, gy, gx), size=size, radius=radius, k=k)

    gbasis = haar_matrix(k).astype(np.float32)
    if patch_basis is None:
        basis = np.kron(dct_matrix(pt), np.kron(dct_matrix(p), dct_matrix(p))).astype(np.float32)
    else:
        basis = np.asarray(patch_basis, dtype=np.float32)
    # a learned basis may keep only its leading m <= d atoms (the rest would be shrunk to ~0)
    m = basis.shape[0]
    group_shape = (k, d)

    def transform(x, inverse=False):
        # Patch transform: one (n k, d) x (d, d) GEMM. Group transform: a fast
        # Haar (log2 k levels of pairwise sums/differences) when k is a power
        # of two, else a GEMM on the transposed group. numpy's broadcast
        # matmul / einsum over many small matrices were measured 3-10x slower.
        n_ = x.shape[0]
        if inverse:
            x = _group_transform(x, gbasis, inverse=True)
            return (x.reshape(-1, m) @ basis).reshape(n_, k, d)
        x = (x.reshape(-1, d) @ basis.T).reshape(n_, k, m)
        return _group_transform(x, gbasis)

    win_t = (np.kaiser(pt, 2.0) if pt > 2 else np.ones(pt)).astype(np.float32)
    win_s = np.kaiser(p, 2.0).astype(np.float32)
    win = np.kron(win_t, np.kron(win_s, win_s))

    from numpy.lib.stride_tricks import sliding_window_view

    views = [sliding_window_view(z, size)]
    if pilot is not None:
        views.append(sliding_window_view(match_on, size))
    # flat pixel index of every element of a patch relative to its origin
    tt, yy, xx = np.meshgrid(np.arange(pt), np.arange(p), np.arange(p), indexing="ij")
    rel = (tt * H * W + yy * W + xx).ravel()
    thr = np.float32(threshold * sigma)
    s2 = np.float32(sigma**2)
    chunks = list(range(0, pos.shape[0], _CHUNK))
    if progress is not None:
        chunks = list(progress(chunks))

    def run(starts):
        num = np.zeros(T * H * W, np.float64)
        wsum = np.zeros(T * H * W, np.float64)
        for start in starts:
            _filter_chunk(start, num, wsum)
        return num, wsum

    def _filter_chunk(start, num, wsum):
        pp = pos[start:start + _CHUNK]
        n = pp.shape[0]
        ti, yi, xi = pp[..., 0], pp[..., 1], pp[..., 2]
        coef = transform(views[0][ti, yi, xi].reshape(n, *group_shape))
        if pilot is None:
            keep = np.abs(coef) > thr
            keep.reshape(n, -1)[:, 0] = True  # the group's mean (DC) is never thresholded away
            coef *= keep
            weight = 1.0 / (s2 * np.maximum(keep.reshape(n, -1).sum(1), 1))
        else:
            cp = transform(views[1][ti, yi, xi].reshape(n, *group_shape))
            cp *= cp
            shrink = cp / (cp + s2)
            coef *= shrink
            weight = 1.0 / (s2 * np.maximum((shrink * shrink).reshape(n, -1).sum(1), 1e-6))
        est = transform(coef, inverse=True).reshape(n, k, d)
        est *= win * weight[:, None, None]
        origin = ((ti * H + yi) * W + xi).ravel()
        num += np.bincount((origin[:, None] + rel).ravel(), weights=est.ravel(), minlength=num.size)
        # the denominator only needs each origin's total weight: the window is spread afterwards
        wsum += np.bincount(origin, weights=np.repeat(weight, k), minlength=wsum.size)

    num, wsum = _sum_chunks(run, chunks)
    den = _spread_window(wsum, (T, H, W), npos, (win_t, win_s, win_s))
    out = np.where(den > 0, num / np.maximum(den, 1e-30), z.ravel())
    out = out.reshape(T, H, W).astype(np.float32)
    return (out, pos) if return_positions else out
