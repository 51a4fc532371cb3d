# SPDX-License-Identifier: GPL-3.0-or-later
"""Energy shifts (``eels/_align.py``): single precision, prime (padded) lengths, per-row shifts, bad shifts."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope import eels
from ionscope.errors import DataValidationError


@pytest.mark.parametrize("n", [1021, 1024])
def test_shift_float32_and_prime_length(n):
    e = 40.0 + 0.1 * np.arange(n)
    rng = np.random.default_rng(5)
    centre = rng.uniform(70, 100, 40)
    shift = rng.uniform(-1.5, 1.5, 40)  # eV, per spectrum

    def peak(c):
        return 50 + 1e3 * np.exp(-0.5 * ((e - c[:, None]) / 2.0) ** 2)

    y = peak(centre + shift)
    out64 = eels.shift_energy(y, shift, energy=e)
    out32 = eels.shift_energy(y.astype(np.float32), shift, energy=e)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    inner = slice(50, n - 50)  # features at the ends move out of / into the window
    np.testing.assert_allclose(out64[:, inner], peak(centre)[:, inner], atol=1e-6 * 1e3)
    np.testing.assert_allclose(out32, out64, atol=2e-6 * 1e3)


def test_shift_prime_length_keeps_noise_white():
    rng = np.random.default_rng(2)
    y = rng.poisson(400.0, (2000, 1021)).astype(np.float32)
    out = eels.shift_energy(y, 0.37, energy=np.arange(1021) * 0.1 + 30)
    r = out[:, 30:-30] - 400.0
    # band-limited: variance kept (no smoothing) and neighbours stay uncorrelated
    assert abs(r.var() / 400.0 - 1) < 0.01
    assert abs(np.mean(r[:, 1:] * r[:, :-1]) / r.var()) < 0.01


def test_shift_shapes_and_bad_shift():
    from ionscope.errors import ShapeMismatchError

    e = 40.0 + 0.1 * np.arange(200)
    y = np.exp(-0.5 * ((e - 50.0) / 1.0) ** 2)[None, None, :] * np.ones((3, 4, 1))
    per_row = np.array([[0.1], [0.2], [0.3]])  # (3, 1): one shift per row, broadcast over columns
    out = eels.shift_energy(y, per_row, energy=e)
    full = eels.shift_energy(y, np.broadcast_to(per_row, (3, 4)), energy=e)
    np.testing.assert_array_equal(out, full)
    np.testing.assert_allclose(e[np.argmax(out[2, 0])], 49.7, atol=1e-9)
    with pytest.raises(ShapeMismatchError, match="shift: shape \\(5,\\)"):
        eels.shift_energy(y, np.zeros(5), energy=e)
    with pytest.raises(DataValidationError, match="shift: NaN"):
        eels.shift_energy(y, np.nan, energy=e)
