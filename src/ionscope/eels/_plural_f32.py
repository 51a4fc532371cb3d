# SPDX-License-Identifier: GPL-3.0-or-later
"""float32 pieces of the batched Fourier-log + GLS kernel (:mod:`._plural_fast`; issue 20, sixth pass).

* :func:`rfft`, :func:`irfft`: the float32 noise and σ transforms, by scipy's own pocketfft binding
  (``scipy.fft._pocketfft.pypocketfft``) where it is there and gives ``scipy.fft``'s values bit for
  bit (checked once per process on a small array), else by ``scipy.fft``. Why: the public functions'
  argument handling and backend dispatch cost 10–30 µs of a ~200 µs call on a 64 × 2048 block,
  ~2800 calls per realistic 128×128 frame (BENCHMARKS.md "limap kernel, sixth pass"). The same
  transforms, the same bits.
* :func:`weight_variance`: :func:`._ssdfit.weight_variance` (smoothed along energy, floored) with the
  smoothing's two transforms in float32. The propagated variance it smooths comes from the float32
  noise path (its values are float32 numbers, so the conversion is exact); the float32 transforms add
  ~1e-6 relative to the smoothed weights (measured ≤ 1.3e-6 on a realistic frame) — the accuracy
  budget and its effect on the maps are in BENCHMARKS.md and ``tests/test_eels_plural_f32.py``.
  ``_FLOAT32 = False`` keeps the float64 reference.

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _ssdfit

#: private switch: ``False`` smooths the GLS weights in float64 (:func:`._ssdfit.weight_variance`)
_FLOAT32 = True

#: private switch: ``False`` takes every transform through the public ``scipy.fft`` functions
_DIRECT = True


@functools.lru_cache(maxsize=1)
def _binding():
    """scipy's pocketfft binding where it gives ``scipy.fft``'s values bit for bit on a small test, else None."""
    from scipy import fft

    try:
        from scipy.fft._pocketfft import pypocketfft as pp

        x = np.linspace(-1.0, 2.0, 24, dtype=np.float32).reshape(2, 12) ** 2
        c = fft.rfft(x, axis=1)
        ok = np.array_equal(pp.r2c(x, (1,), True, 0, None, 1), c) and \
            np.array_equal(pp.c2r(c, (1,), 12, False, 2, None, 1), fft.irfft(c, n=12, axis=1))
    except Exception:  # a scipy without this private binding or with another signature: the public functions
        return None
    return pp if ok else None


def rfft(x, *, axis, workers=1):
    """``scipy.fft.rfft(x, axis=axis, workers=1)`` of a C-contiguous float32 array (``workers`` must be 1)."""
    pp = _binding() if _DIRECT else None
    if pp is None or x.dtype != np.float32 or not x.flags.c_contiguous:
        from scipy import fft

        return fft.rfft(x, axis=axis, workers=1)
    return pp.r2c(x, (axis % x.ndim,), True, 0, None, 1)


def irfft(c, *, n, axis, workers=1):
    """``scipy.fft.irfft(c, n=n, axis=axis, workers=1)`` of a C-contiguous complex64 array of ``n // 2 + 1``
    frequencies along ``axis`` (``workers`` must be 1)."""
    pp = _binding() if _DIRECT else None
    if pp is None or c.dtype != np.complex64 or not c.flags.c_contiguous or c.shape[axis] != n // 2 + 1:
        from scipy import fft

        return fft.irfft(c, n=n, axis=axis, workers=1)
    return pp.c2r(c, (axis % c.ndim,), n, False, 2, None, 1)


@functools.lru_cache(maxsize=8)
def _smoothing(n, step):
    """The padding ``r``, the fast transform length and the float32 transfer function of
    :func:`._ssdfit.gaussian_nearest` at the weights' width (as it computes them)."""
    from scipy import fft

    sigma = _ssdfit.WEIGHT_SMOOTH_EV / step
    r = int(4.0 * float(sigma) + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    size = fft.next_fast_len(n + 2 * r, real=True)
    return r, size, fft.rfft(k / k.sum(), size).astype(np.complex64)


def weight_variance(var, channels, step):
    """:func:`._ssdfit.weight_variance` of ``(P, m)`` variances with the smoothing in float32.

    Where ``channels`` are not one run (the float64 function smooths each run apart) or ``_FLOAT32`` is
    False, the float64 function itself. Returns float64.

    Parameters
    ----------
    var : ndarray (P, m)
        Propagated variance of the deconvolved counts at the fit channels.
    channels : ndarray of int (m,)
        The fit channels.
    step : float
        Channel width (eV).

    Returns
    -------
    ndarray (P, m)
        The smoothed, floored variance that weights the fit.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.linspace(1.0, 2.0, 200)[None] * np.ones((3, 1))
    >>> w = weight_variance(v, np.arange(200), 0.1)
    >>> bool(np.allclose(w, _ssdfit.weight_variance(v, np.arange(200), 0.1), rtol=1e-6))
    True
    """
    var = np.asarray(var)
    ch = np.asarray(channels)
    n = var.shape[-1]
    if not _FLOAT32 or var.ndim != 2 or n < 2 or (ch.shape == (n,) and np.any(np.diff(ch) != 1)):
        return _ssdfit.weight_variance(var, channels, step)
    r, size, kernel = _smoothing(n, float(step))
    P = var.shape[0]
    vp = np.empty((P, size), np.float32)
    vp[:, :r] = var[:, :1]
    vp[:, r:r + n] = var
    vp[:, r + n:n + 2 * r] = var[:, -1:]
    vp[:, n + 2 * r:] = 0.0
    f = rfft(vp, axis=1)
    f *= kernel
    return _ssdfit.floor_at_median(irfft(f, n=size, axis=1)[:, 2 * r:2 * r + n])
