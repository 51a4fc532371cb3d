# SPDX-License-Identifier: GPL-3.0-or-later
"""The GLS weights' fifth-pass trims (issue 20): a fast FFT length for the smoothing, the median floor only where
it can act, float32 smoothing inside the Li-map kernel.

Each must give the weights of the previous implementation — ``scipy.ndimage.gaussian_filter1d(mode="nearest")``
over each contiguous run of channels, then ``np.maximum(var, 1e-6·median + 1e-12)`` — to rounding, and leave
the Li-map kernel's Li and Co within 1e-5 of the map's RMS and their σ within 1e-5 relative on seeded realistic
frames (the kernel run with the previous weight function as the reference).
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.eels import _plural_f32, _ssdfit


def previous_weight_variance(var, channels, step, *, smooth_ev=None):
    """The weights as computed before the fifth pass (scipy's direct filter, the median of every row)."""
    from scipy.ndimage import gaussian_filter1d

    var = np.asarray(var, float)
    smooth_ev = _ssdfit.WEIGHT_SMOOTH_EV if smooth_ev is None else smooth_ev
    sig = smooth_ev / step if smooth_ev else 0.0
    if sig > 0 and var.shape[-1] > 1:
        ch = np.asarray(channels)
        cuts = np.flatnonzero(np.diff(ch) != 1) + 1 if ch.ndim == 1 and ch.size == var.shape[-1] else []
        var = np.concatenate([gaussian_filter1d(v, sig, axis=-1, mode="nearest")
                              for v in np.split(var, cuts, axis=-1)], axis=-1)
    return np.maximum(var, 1e-6 * np.median(var, axis=-1, keepdims=True) + 1e-12)


def test_floor_equals_the_median_floor_on_every_kind_of_row():
    rng = np.random.default_rng(0)
    v = rng.gamma(2.0, 5.0, (40, 351))
    v[1, 7] = 0.0  # below the floor
    v[2, :5] = -3.0  # negative values (float rounding of a clipped variance)
    v[3] = 1e-20  # a row at the floor's eps
    v[4, 100] = 1e-9 * v[4].max()  # one tiny value, above 1e-6·median only by chance of the data: below it here
    v[5, 3] = np.nan
    v[6] = 0.0
    v[7] = rng.gamma(2.0, 5.0, 351) * 1e7  # large values
    v[7, 8] = 1.0  # a value just above 1e-6 of the maximum but compared with the median
    want = np.maximum(v, 1e-6 * np.median(v, axis=-1, keepdims=True) + 1e-12)
    got = _ssdfit.floor_at_median(v)
    np.testing.assert_array_equal(got, want)  # bit for bit, NaN rows included
    assert got is not v and np.shares_memory(got, v) is False
    for shape in ((0, 5), (3, 1), (7,)):
        x = rng.gamma(2.0, 1.0, shape)
        np.testing.assert_array_equal(_ssdfit.floor_at_median(x),
                                      np.maximum(x, 1e-6 * np.median(x, axis=-1, keepdims=True) + 1e-12)
                                      if x.size else x)


@pytest.mark.parametrize("n", [1, 2, 60, 351, 401, 600])
def test_weights_equal_the_previous_implementation(n):
    rng = np.random.default_rng(n)
    # a propagated variance as the kernel sees it: smooth over eV with Poisson-like scatter
    e = np.linspace(45.0, 85.0, n)
    var = (3e3 * (e / 45.0) ** -3)[None] * rng.gamma(20.0, 1 / 20.0, (8, n))
    for channels in (np.arange(500, 500 + n), np.r_[np.arange(n // 2), np.arange(n // 2, n) + 30]):
        want = previous_weight_variance(var, channels, 0.1)
        got = _ssdfit.weight_variance(var, channels, 0.1)
        assert np.max(np.abs(got / want - 1)) < 1e-12


def test_li_map_kernel_with_the_previous_weights(monkeypatch):
    """The Li-map kernel on seeded realistic frames, the previous weight function as the reference."""
    from test_eels_plural_fast import _col, assert_same_maps, realistic_frame

    from ionscope.pipeline._eels_frame import frame_columns

    for seed, dose in ((5, 200.0), (7, 30.0)):
        x, plan, _ = realistic_frame(seed, dose)
        new = frame_columns(x, plan=plan, drift=(0.3, -0.2))
        with monkeypatch.context() as m:
            m.setattr(_ssdfit, "weight_variance", previous_weight_variance)
            m.setattr(_plural_f32, "_FLOAT32", False)  # the kernel's float32 smoothing (sixth pass) calls it otherwise
            old = frame_columns(x, plan=plan, drift=(0.3, -0.2))
        assert_same_maps(plan, new, old)
        np.testing.assert_allclose(_col(plan, new, "chi2"), _col(plan, old, "chi2"), rtol=1e-5)
