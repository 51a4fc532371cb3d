# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded-memory processing of long/large movies in overlapping windows (array kernel).

The non-local denoiser's memory grows with the movie (accumulators of the
whole stack plus ``refs x group x 3`` block-matching positions: ~2 GB for a
157x512x512 movie in one block). A movie is therefore cut into windows along
(time, y, x) that overlap by a *context* margin at least as wide as the block
matching reaches (search window + patch), each window is denoised on its own,
and the overlaps are blended with weights that ramp linearly from 0 at a
window's inner edge to 1 at ``context`` samples inside it. A pixel is thus
always dominated by estimates made with its full search neighbourhood in view,
so the blended result matches the whole-movie result to well below the noise
(tests state the tolerance), and seams are feathered rather than cut.

References
----------
P. J. Burt, E. H. Adelson, ACM Trans. Graph. 2 (1983) 217, doi:10.1145/245.247
(feathered blending of overlapping image pieces).
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import product

import numpy as np


def spans(n: int, core: int, context: int, *, align: int = 1) -> list[tuple[int, int, int, int]]:
    """Windows covering ``range(n)``: ``(start, stop, core_start, core_stop)`` per window.

    Cores of about ``core`` samples tile the axis; each window adds ``context``
    samples on both sides (clipped at the ends). One window if ``core >= n``.
    Core edges and ``context`` are multiples of ``align`` (the caller passes
    ``context`` already rounded), so that every window starts on the global
    grid of reference patches and windows share the whole-movie references.
    """
    core = max(int(core), 1)
    if core >= n:
        return [(0, n, 0, n)]
    count = -(-n // core)
    # equal cores (within ``align`` samples) rather than a short last one
    edges = (np.linspace(0, n, count + 1) / align).round().astype(int) * align
    edges[-1] = n
    edges = np.unique(edges)
    return [(max(a - context, 0), min(b + context, n), int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def ramp(start: int, stop: int, n: int, context: int) -> np.ndarray:
    """Blending weight of each sample of window ``[start, stop)`` along an axis of length ``n``.

    Linear from ``1/(context+1)`` at an inner window edge up to 1 at
    ``context`` samples inside it; 1 at the ends of the axis (nothing to blend with).
    """
    i = np.arange(start, stop)
    w = np.ones(stop - start, np.float32)
    if context > 0:
        if start > 0:
            w = np.minimum(w, (i - start + 1) / (context + 1))
        if stop < n:
            w = np.minimum(w, (stop - i) / (context + 1))
    return w.astype(np.float32)


def blend_windows(z: np.ndarray, fn: Callable[[tuple[slice, slice, slice]], np.ndarray], *,
                  core: tuple[int, int, int], context: tuple[int, int, int], align: tuple[int, int, int] = (1, 1, 1),
                  progress: Callable | None = None) -> np.ndarray:
    """Apply ``fn`` to overlapping windows of a ``(T, H, W)`` stack and blend the results.

    Parameters
    ----------
    z : ndarray (T, H, W)
        Only its shape is used; ``fn`` reads the window itself (so the caller
        may slice several aligned arrays, e.g. data and a noise map).
    fn : callable
        ``fn(window_slices) -> ndarray`` of the window's shape.
    core, context : (t, y, x) ints
        Core size and context margin of the windows along each axis.
    align : (t, y, x) ints
        Grid step of the reference patches (see :func:`spans`).

    Returns
    -------
    ndarray (T, H, W) float32
    """
    shape = z.shape
    per_axis = [spans(n, c, m, align=a) for n, c, m, a in zip(shape, core, context, align)]
    if all(len(p) == 1 for p in per_axis):
        return np.asarray(fn((slice(None),) * 3), dtype=np.float32)
    num = np.zeros(shape, np.float32)
    den = np.zeros(shape, np.float32)
    windows = list(product(*per_axis))
    if progress is not None:
        windows = progress(windows)
    for win in windows:
        sl = tuple(slice(a, b) for a, b, _, _ in win)
        w = [ramp(a, b, n, m) for (a, b, _, _), n, m in zip(win, shape, context)]
        weight = w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
        est = np.asarray(fn(sl), dtype=np.float32)
        num[sl] += est * weight
        den[sl] += weight
    return num / den


# Above this many voxels a movie is processed in overlapping windows (bounded
# memory); at or below it, as one block (no overlap overhead).
MAX_VOXELS = 1 << 22
TILE = 256


def window_plan(shape, *, patch, patch_t, search, search_t, window_t, tile, align):
    """(core, context) of the processing windows along (t, y, x); ``align``: reference-grid steps."""
    T, H, W = shape
    # context >= block-matching reach (search + patch), so that every pixel of a
    # window's core is estimated with all its candidate patches in view
    context = (search_t + patch_t, search + patch, search + patch)
    context = tuple(-(-c // a) * a for c, a in zip(context, align))  # whole reference-grid steps
    if window_t is None and tile is None and T * H * W <= MAX_VOXELS:
        return (T, H, W), context
    side = tile if tile is not None else (TILE if max(H, W) > 1.5 * TILE else max(H, W))
    ext_h, ext_w = min(side + 2 * context[1], H), min(side + 2 * context[2], W)
    if window_t is None:
        window_t = max(context[0], MAX_VOXELS // (ext_h * ext_w) - 2 * context[0])
    return (window_t, side, side), context
