# SPDX-License-Identifier: GPL-3.0-or-later
"""Overlapping spatio-temporal patches of image stacks: extraction and averaging.

A stack ``(T, H, W)`` is cut into patches ``(pt, p, p)`` whose origins lie on a
grid (step ``(st, s, s)``, always including the last position so every pixel
is covered); after processing, overlapping patch estimates are averaged back
(Elad & Aharon 2006) with optional per-patch weights.

References
----------
M. Elad, M. Aharon, IEEE Trans. Image Process. 15 (2006) 3736, doi:10.1109/TIP.2006.881969.
"""
from __future__ import annotations

import numpy as np


def grid(n: int, step: int) -> np.ndarray:
    """Origins ``0, step, 2 step, ...`` always including the last one, ``n - 1``."""
    g = np.arange(0, max(n, 1), max(int(step), 1))
    if g[-1] != n - 1:
        g = np.append(g, n - 1)
    return g


def patch_grids(shape: tuple[int, int, int], size: tuple[int, int, int],
                step: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin grids along (t, y, x) for patches of ``size`` in a stack of ``shape``."""
    return tuple(grid(n - s + 1, st) for n, s, st in zip(shape, size, step))


def extract_patches(stack: np.ndarray, *, size: tuple[int, int, int], step: tuple[int, int, int]):
    """Patches of a ``(T, H, W)`` stack as rows of an ``(n, pt*p*p)`` array.

    Returns
    -------
    patches : ndarray (n, pt*p*p), a copy
    grids : tuple of three int arrays (origins along t, y, x; patches in C order)

    Examples
    --------
    >>> import numpy as np
    >>> P, g = extract_patches(np.arange(2 * 4 * 4.0).reshape(2, 4, 4), size=(1, 2, 2), step=(1, 2, 2))
    >>> P.shape, P[0].tolist()
    ((8, 4), [0.0, 1.0, 4.0, 5.0])
    """
    from numpy.lib.stride_tricks import sliding_window_view

    grids = patch_grids(stack.shape, size, step)
    view = sliding_window_view(stack, size)
    sub = view[np.ix_(*grids)]
    return sub.reshape(-1, int(np.prod(size))), grids


def flat_indices(grids, size, shape) -> tuple[np.ndarray, np.ndarray]:
    """Flat index of each patch origin (n,) and of each patch element relative to it (d,)."""
    T, H, W = shape
    t, y, x = np.meshgrid(*grids, indexing="ij")
    base = ((t * H + y) * W + x).ravel()
    tt, yy, xx = np.meshgrid(*[np.arange(s) for s in size], indexing="ij")
    rel = ((tt * H + yy) * W + xx).ravel()
    return base, rel


def aggregate_patches(patches: np.ndarray, grids, *, size, shape, weights: np.ndarray | None = None,
                      out: tuple[np.ndarray, np.ndarray] | None = None, start: int = 0):
    """Accumulate (weighted) patch estimates into numerator/denominator images.

    ``patches`` may be the rows ``start:start + len(patches)`` of the full
    C-ordered patch list of ``grids`` (to aggregate chunk by chunk). Returns
    ``(num, den)`` flat float64 arrays; the average is ``num / den``.
    """
    n_pix = int(np.prod(shape))
    num, den = out if out is not None else (np.zeros(n_pix), np.zeros(n_pix))
    base, rel = flat_indices(grids, size, shape)
    idx = (base[start:start + patches.shape[0], None] + rel[None, :]).ravel()
    w = np.ones(patches.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    num += np.bincount(idx, weights=(patches * w[:, None]).ravel(), minlength=n_pix)
    den += np.bincount(idx, weights=np.repeat(w, rel.size), minlength=n_pix)
    return num, den
