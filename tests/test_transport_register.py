# SPDX-License-Identifier: GPL-3.0-or-later
"""Specimen-drift registration."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.operando import apply_shifts, estimate_shifts


def _textured(seed=0, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 2.5)


@pytest.mark.parametrize("reference", ["first", "mean", "previous"])
def test_recovers_known_subpixel_shifts(reference):
    img = _textured()
    true = np.array([[0, 0], [0.4, -0.7], [1.3, 0.2], [-2.6, 1.9]])
    stack = np.stack([ndimage.shift(img, s, order=3, mode="nearest") for s in true])
    est = estimate_shifts(stack, reference=reference)
    # tolerance 0.05 px (noise-free, interior-refined Gauss-Newton)
    np.testing.assert_allclose(est, -true, atol=0.05)


def test_simulator_drift_is_undone_to_a_tenth_of_a_pixel():
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=(32, 48), n_frames=6, energy_step=0.5, specimen_drift_px=1.5, seed=1)
    ref = si.sel(energy=slice(30, 50)).sum("energy").values
    est = estimate_shifts(ref)
    true = np.c_[truth.drift_y.values, truth.drift_x.values]
    assert np.abs(est + true).max() < 0.1


def test_apply_shifts_lazy_and_in_memory_agree():
    from ionscope.data import calibrated

    rng = np.random.default_rng(1)
    da = calibrated(rng.random((4, 10, 12, 5)).astype("f4"), ("time", "y", "x", "energy"),
                    scale={"energy": 1.0})
    shifts = rng.normal(size=(4, 2))
    lazy = apply_shifts(da.chunk({"time": 1}), shifts)
    assert lazy.chunks is not None  # still lazy
    eager = apply_shifts(da, shifts)
    np.testing.assert_array_equal(lazy.compute().values, eager.values)
    assert eager.dims == da.dims and eager.dtype == da.dtype
    # the vectorised bilinear kernel equals scipy's order-1 shift with repeated edges
    img = rng.random((1, 9, 11))
    for s in ([0.3, -1.7], [-2.2, 0.45], [4.0, 0.0]):
        np.testing.assert_allclose(apply_shifts(img, [s])[0], ndimage.shift(img[0], s, order=1, mode="nearest"),
                                   atol=1e-12)
    # numpy in, numpy out; an integer shift moves pixels exactly
    a = np.zeros((1, 6, 6))
    a[0, 2, 3] = 1.0
    out = apply_shifts(a, [[2.0, -1.0]])
    assert isinstance(out, np.ndarray) and out[0, 4, 2] == 1.0


def test_bad_inputs():
    with pytest.raises(ShapeMismatchError, match=r"expected a \(time, y, x\) stack"):
        estimate_shifts(np.zeros((4, 4)))
    bad = np.zeros((2, 8, 8))
    bad[1, 2, 2] = np.nan
    with pytest.raises(DataValidationError, match="NaN/Inf"):
        estimate_shifts(bad)
    with pytest.raises(DataValidationError, match="reference must be"):
        estimate_shifts(np.zeros((2, 8, 8)), reference="last")
    with pytest.raises(ShapeMismatchError, match=r"shifts must have shape \(time=3, 2\)"):
        apply_shifts(np.zeros((3, 8, 8)), np.zeros((2, 2)))
