# SPDX-License-Identifier: GPL-3.0-or-later
"""The compiled bilinear specimen-drift shift (issue 20, limap fourth pass) gives the numpy steps' frame bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.pipeline import _eels_frame


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dy, dx", [(0.3, -0.2), (0.0, 0.0), (-1.75, 2.5), (7.2, -0.01)])
def test_compiled_shift_equals_numpy_bit_for_bit(dtype, dy, dx, monkeypatch):
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    frame = (rng.poisson(50.0, (12, 9, 40)) * rng.random((12, 9, 40)) * 3.7).astype(dtype)
    fast = _eels_frame._shift_frame(frame, dy, dx)
    with monkeypatch.context() as m:
        m.setattr(_eels_frame, "_COMPILED_SHIFT", False)
        ref = _eels_frame._shift_frame(frame, dy, dx)
    assert fast.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(fast, ref)
    # the shift itself: an interior pixel moves with the drift (a whole-pixel shift copies spectra)
    if (dy, dx) == (0.0, 0.0):
        np.testing.assert_array_equal(fast, frame)


def test_whole_pixel_shift_moves_spectra():
    pytest.importorskip("numba")
    frame = np.arange(6 * 5 * 3, dtype=np.float32).reshape(6, 5, 3)
    out = _eels_frame._shift_frame(frame, 1.0, -1.0)
    np.testing.assert_array_equal(out[1:, :-1], frame[:-1, 1:])
