# SPDX-License-Identifier: GPL-3.0-or-later
"""Poisson counts drawn row by row on threads, with one generator per row; the threaded block pipeline.

numpy's Poisson sampler releases the GIL (it holds only its generator's lock),
so rows drawn from *separate* generators run in parallel on the cores. Each
row's generator is spawned from the caller's seed with the row's index in its
``spawn_key``, so the counts do not depend on the block size, the number of
threads or the order of the blocks — only on the seed and the row.
"""
from __future__ import annotations

import numpy as np

__all__ = ["poisson_rows", "realistic_block", "threaded_blocks"]


def row_generator(seed: np.random.SeedSequence, row: int) -> np.random.Generator:
    """The generator of one row: ``SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (row,))``."""
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (int(row),)))


def poisson_rows(lam, seed, *, row_offset=0, workers=2, dtype=np.float32):
    """Poisson counts of ``lam`` (rows along axis 0) as ``dtype``, row ``i`` from ``row_generator(seed, row_offset + i)``.

    Parameters
    ----------
    lam : ndarray
        Expected counts, shape ``(n_rows, ...)``; negative values are clipped to 0.
    seed : numpy.random.SeedSequence
        The parent seed (e.g. a frame's).
    row_offset : int
        Index of ``lam``'s first row in the whole image (so blocks of rows draw the same counts
        as the whole image).
    workers : int
        Threads.
    dtype : numpy dtype
        Output type.

    Returns
    -------
    ndarray
        Counts, ``lam.shape``.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.full((4, 8), 50.0)
    >>> seed = np.random.SeedSequence(0)
    >>> a = poisson_rows(lam, seed)
    >>> b = np.concatenate([poisson_rows(lam[:2], seed), poisson_rows(lam[2:], seed, row_offset=2)])
    >>> bool(np.array_equal(a, b))
    True
    """
    lam = np.asarray(lam, float)
    out = np.empty(lam.shape, dtype)

    def draw(i):
        out[i] = row_generator(seed, row_offset + i).poisson(np.maximum(lam[i], 0.0))

    n = lam.shape[0]
    if workers > 1 and n > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(draw, range(n)))
    else:
        for i in range(n):
            draw(i)
    return out


def realistic_block(block, frame_seed, rows, noise):
    """Poisson counts of one block of realistic spectra (float32), one generator per image row.

    Realistic frames draw their noise row by row from generators spawned from the frame's
    seed (:func:`row_generator`), so blocks are drawn in parallel and the counts
    still do not depend on the block size. (The ideal model keeps one generator per frame.)
    """
    if not noise:
        return block.astype(np.float32)
    # the blocks themselves already run on two threads
    return poisson_rows(block, frame_seed, row_offset=rows.start, workers=1)


def threaded_blocks(order, work, workers=2):
    """Yield ``(t, sl, work(t, sl))`` in order, computing up to ``workers + 1`` blocks ahead on threads.

    The spectra (numpy ufuncs, BLAS, pocketfft) and numpy's Poisson sampler release the GIL,
    so two threads keep both cores busy; the window of pending blocks bounds the memory.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        todo = iter(order)
        for t, sl in todo:
            pending.append((t, sl, pool.submit(work, t, sl)))
            if len(pending) > workers:
                break
        while pending:
            t, sl, job = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((*nxt, pool.submit(work, *nxt)))
            yield t, sl, job.result()
