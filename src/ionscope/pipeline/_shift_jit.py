# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-frame bilinear specimen-drift shift in one compiled pass (issue 20, limap fourth pass).

:func:`ionscope.pipeline._eels_frame._shift_frame` moves a ``(y, x, energy)`` frame by ``(dy, dx)`` px
with numpy: two row gathers, three full-frame passes, two column gathers and three more passes — ~10
passes over a 64 MB float32 frame, 0.13 CPU s per realistic 128×128×1024 frame (measured in the
threaded limap stage, issue 20 fourth pass). :func:`bilinear_shift` does the same arithmetic in the
frame's dtype, in the same order (rows first: ``(b − a)·w_y + a``; then columns), one output row at a
time, so that each value is read once and written once: the result is identical to the bit
(``tests/test_pipeline_shift_jit.py``).

This module imports numba at the top: it is imported only inside ``_shift_frame``, so ``import
ionscope`` never loads numba.
"""
from __future__ import annotations

import numba
import numpy as np


def _jit(fn):
    """``numba.njit(cache=True, nogil=True)``, compiled in each process where no cache location is writable
    (as :mod:`ionscope.eels._plural_jit`'s kernels)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return numba.njit(nogil=True)(fn)


@_jit
def bilinear_shift(frame, y0, y1, wy, x0, x1, wx, out):
    """``out[y, x] = (r[x1] − r[x0])·w_x + r[x0]`` with ``r = (frame[y1] − frame[y0])·w_y + frame[y0]``,
    per output row ``y``, in the frame's dtype (the weights are given in it); each operation rounds as
    numpy's in-place steps do (no fused multiply-add: numba without fastmath)."""
    ny, nx, ne = frame.shape
    row = np.empty((nx, ne), frame.dtype)
    for y in range(ny):
        a = frame[y0[y]]
        b = frame[y1[y]]
        w = wy[y]
        for x in range(nx):
            ar = a[x]
            br = b[x]
            rr = row[x]
            for e in range(ne):
                d = br[e] - ar[e]
                d = d * w
                rr[e] = d + ar[e]
        o = out[y]
        for x in range(nx):
            left = row[x0[x]]
            right = row[x1[x]]
            w2 = wx[x]
            orow = o[x]
            for e in range(ne):
                d = right[e] - left[e]
                d = d * w2
                orow[e] = d + left[e]
