# SPDX-License-Identifier: GPL-3.0-or-later
"""The Li-map kernel's sixth pass (issue 20): ``eels._plural_f32`` and the compiled kernels' error model.

* the float32 noise/σ transforms through scipy's pocketfft binding give ``scipy.fft``'s values bit for bit,
  and the kernel's outputs do not change at all with them (``_DIRECT`` on and off);
* the compiled kernels with ``error_model="numpy"`` give the numpy-error-model build's bits (:func:`log_parts`,
  the kernel whose loops it changes);
* the GLS weights smoothed in float32 equal the float64 weights to ~1e-6 relative, and the kernel with them keeps
  Li and Co within 1e-5 of the map's RMS and their σ within 1e-5 relative of the float64 weights' kernel, on
  seeded realistic frames (dose 200 and 30, with drift).
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import fft

from ionscope.eels import _plural_f32, _ssdfit


def test_direct_transforms_equal_scipy_fft_bit_for_bit():
    rng = np.random.default_rng(3)
    assert _plural_f32._binding() is not None  # scipy's binding is there on the supported scipy versions
    for shape, axis in (((64, 2048), 1), ((5, 2, 2048), 2), ((3, 600), 1), ((4, 12), -1)):
        x = rng.standard_normal(shape).astype(np.float32)
        c = fft.rfft(x, axis=axis, workers=1)
        np.testing.assert_array_equal(_plural_f32.rfft(x, axis=axis), c)
        n = shape[axis]
        np.testing.assert_array_equal(_plural_f32.irfft(c, n=n, axis=axis), fft.irfft(c, n=n, axis=axis, workers=1))
    # what the binding does not take goes through scipy.fft: float64, non-contiguous, other lengths
    x = rng.standard_normal((4, 64))
    np.testing.assert_array_equal(_plural_f32.rfft(x, axis=1), fft.rfft(x, axis=1))
    xs = rng.standard_normal((4, 128)).astype(np.float32)[:, ::2]
    np.testing.assert_array_equal(_plural_f32.rfft(xs, axis=1), fft.rfft(xs, axis=1))
    c = fft.rfft(rng.standard_normal((4, 64)).astype(np.float32), axis=1)
    np.testing.assert_array_equal(_plural_f32.irfft(c, n=100, axis=1), fft.irfft(c, n=100, axis=1))


@pytest.mark.parametrize("n", [2, 60, 351, 401])
def test_float32_weights_equal_the_float64_weights_to_1e6(n):
    rng = np.random.default_rng(n)
    e = np.linspace(45.0, 85.0, n)
    # as the kernel sees them: a power law with Poisson-like scatter, float32 values
    var = ((3e3 * (e / 45.0) ** -3)[None] * rng.gamma(20.0, 1 / 20.0, (8, n))).astype(np.float32).astype(float)
    channels = np.arange(500, 500 + n)
    want = _ssdfit.weight_variance(var, channels, 0.1)
    got = _plural_f32.weight_variance(var, channels, 0.1)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.max(np.abs(got / want - 1)) < 3e-6
    # channels in two runs: the float64 function itself (each run smoothed apart)
    split = np.r_[np.arange(n // 2), np.arange(n // 2, n) + 30]
    np.testing.assert_array_equal(_plural_f32.weight_variance(var, split, 0.1),
                                  _ssdfit.weight_variance(var, split, 0.1))


def test_float32_weights_floor_and_switch(monkeypatch):
    v = np.full((3, 351), 5.0)
    v[1, 10] = 0.0  # below 1e-6·median: floored as the float64 function floors it
    got = _plural_f32.weight_variance(v, np.arange(351), 0.1)
    assert np.all(got >= 1e-6 * 5.0 * (1 - 1e-6))
    monkeypatch.setattr(_plural_f32, "_FLOAT32", False)
    np.testing.assert_array_equal(_plural_f32.weight_variance(v, np.arange(351), 0.1),
                                  _ssdfit.weight_variance(v, np.arange(351), 0.1))


def test_log_parts_error_model_numpy_is_bit_for_bit():
    from ionscope.eels import _plural_jit

    rng = np.random.default_rng(1)
    P, nf, kc = 6, 129, 100
    jf = rng.standard_normal((P, nf)) + 1j * rng.standard_normal((P, nf))
    zf = rng.standard_normal((P, nf)) + 1j * rng.standard_normal((P, nf))
    jf[:, 0] = zf[:, 0] = 50.0
    jf[1, 5] = 0.0  # floored transforms
    zf[2, 7] = 0.0
    g = np.exp(-np.linspace(0, 3, kc)) * np.exp(0.3j * np.arange(kc))

    def run(fn):
        q = [np.empty((P, kc)) for _ in range(3)]
        h, hz = np.zeros((P, nf), np.complex64), np.zeros((P, nf), np.complex64)
        fn(jf, zf, kc, g, *q, h, hz)
        return q + [h, hz]

    python_model = numba.njit(nogil=True, error_model="python")(_plural_jit.log_parts.py_func)
    for a, b in zip(run(_plural_jit.log_parts), run(python_model)):
        np.testing.assert_array_equal(a, b)


def test_kernel_unchanged_by_the_direct_transforms(monkeypatch):
    from test_eels_plural_fast import realistic_frame

    from ionscope.pipeline._eels_frame import frame_columns

    x, plan, _ = realistic_frame(5, 200.0)
    new = frame_columns(x, plan=plan, drift=(0.3, -0.2))
    monkeypatch.setattr(_plural_f32, "_DIRECT", False)
    old = frame_columns(x, plan=plan, drift=(0.3, -0.2))
    np.testing.assert_array_equal(new, old)


def test_kernel_with_float32_weights_keeps_the_maps(monkeypatch):
    """Li, Co within 1e-5 of RMS and σ within 1e-5 relative of the float64 weights' kernel (the pulls against the
    truth: ``test_eels_plural_fast``, which runs the default path, float32 weights included)."""
    from test_eels_plural_fast import _col, assert_same_maps, realistic_frame

    from ionscope.pipeline._eels_frame import frame_columns

    for seed, dose in ((5, 200.0), (7, 30.0)):
        x, plan, _ = realistic_frame(seed, dose)
        new = frame_columns(x, plan=plan, drift=(0.3, -0.2))
        with monkeypatch.context() as m:
            m.setattr(_plural_f32, "_FLOAT32", False)
            old = frame_columns(x, plan=plan, drift=(0.3, -0.2))
        assert_same_maps(plan, new, old)
        np.testing.assert_allclose(_col(plan, new, "chi2"), _col(plan, old, "chi2"), rtol=1e-5)
        assert not np.array_equal(new, old)  # the float32 path did run


def test_zero_loss_sandwich_equals_the_float64_sums_on_a_strided_window():
    """The sixth pass's dot products (reassociated, float32) against the plain float64 sums, ``A`` a strided window
    of padded rows as the kernel passes it."""
    from ionscope.eels import _plural_jit

    rng = np.random.default_rng(2)
    P, M, m, n_fft, g0 = 5, 2, 351, 2048, 450
    full = np.zeros((P, M, n_fft), np.float32)
    full[:, :, g0:g0 + m] = rng.standard_normal((P, M, m))
    A = full[:, :, g0:g0 + m]
    kz = rng.standard_normal((P, n_fft)).astype(np.float32)
    vz = rng.gamma(5.0, 100.0, (P, n_fft)).astype(np.float32)
    cut = np.array([0, 60, 72, 75, 80])
    vb = np.ones((P, M))
    _plural_jit.zero_loss_sandwich(A, kz, vz, cut, g0, vb)
    want = np.ones((P, M))
    for p in range(P):
        for i in range(cut[p] + 1):
            u = A[p].astype(float) @ kz[p, g0 - i:g0 - i + m].astype(float)
            want[p] += vz[p, i] * u**2
    np.testing.assert_allclose(vb, want, rtol=2e-5)
