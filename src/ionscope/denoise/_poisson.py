# SPDX-License-Identifier: GPL-3.0-or-later
"""Variance stabilisation of Poisson counts: Anscombe and its exact unbiased inverse.

The Anscombe transform ``2 sqrt(x + 3/8)`` turns Poisson counts into data of
nearly unit Gaussian noise, so that a Gaussian denoiser can work on it. The
*algebraic* inverse ``(y/2)^2 - 3/8`` is biased at low counts (a few counts per
pixel, exactly the operando regime); the exact unbiased inverse maps the
denoised value back to the Poisson mean whose *expected* Anscombe value it is
(Mäkitalo & Foi 2011). We tabulate that expectation once, exactly, by summing
the Poisson distribution, and invert it by interpolation.

References
----------
F. J. Anscombe, Biometrika 35 (1948) 246, doi:10.1093/biomet/35.3-4.246.
M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 99, doi:10.1109/TIP.2010.2056693.
M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 2697, doi:10.1109/TIP.2011.2121085.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..io import accepts_data

# Above this mean the closed-form asymptotic inverse is exact to < 1e-6 counts,
# so the table need not extend further.
_TABLE_MAX = 200.0


@accepts_data("counts")
def anscombe(counts: np.ndarray) -> np.ndarray:
    """Anscombe transform ``2 sqrt(x + 3/8)``; negative inputs are clipped at 0.

    Parameters
    ----------
    counts : ndarray
        Poisson counts (any shape).

    Returns
    -------
    ndarray (float32 for float32/integer input, else float64)

    References
    ----------
    F. J. Anscombe, Biometrika 35 (1948) 246, doi:10.1093/biomet/35.3-4.246.

    Examples
    --------
    >>> float(anscombe(np.array([0.0]))[0])  # doctest: +ELLIPSIS
    1.2247...
    """
    x = np.asarray(counts)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return (2.0 * np.sqrt(np.maximum(x.astype(dtype, copy=False), 0) + dtype(0.375))).astype(dtype, copy=False)


@lru_cache(maxsize=1)
def _expected_anscombe_table() -> tuple[np.ndarray, np.ndarray]:
    """(E[anscombe(X)] for X ~ Poisson(lam), lam) on a grid dense near zero."""
    from scipy.special import gammaln

    lam = np.concatenate([[0.0], np.geomspace(1e-4, _TABLE_MAX, 4000)])
    k = np.arange(0, int(_TABLE_MAX + 12 * np.sqrt(_TABLE_MAX) + 40))
    # log pmf for every (lam, k); lam = 0 handled separately (all mass at k = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = k[None, :] * np.log(lam[:, None]) - lam[:, None] - gammaln(k + 1.0)[None, :]
    logpmf[0] = -np.inf
    logpmf[0, 0] = 0.0
    expect = np.exp(logpmf) @ (2.0 * np.sqrt(k + 0.375))
    return expect, lam


def _closed_form_inverse(y: np.ndarray) -> np.ndarray:
    """Mäkitalo & Foi's closed-form approximation of the exact unbiased inverse (accurate for y > ~2)."""
    y = np.maximum(y, 1e-3)
    s = np.sqrt(1.5)
    return 0.25 * y**2 + 0.25 * s / y - 1.375 / y**2 + 0.625 * s / y**3 - 0.125


@accepts_data("values")
def inverse_anscombe(values: np.ndarray, *, exact: bool = True) -> np.ndarray:
    """Invert the Anscombe transform of a *denoised* estimate.

    Parameters
    ----------
    values : ndarray
        Denoised values in the Anscombe domain.
    exact : bool, default True
        Use the exact unbiased inverse (tabulated expectation of the transform
        of Poisson counts, inverted by interpolation; values below
        ``E[anscombe(0)] = 2 sqrt(3/8)`` map to 0). ``False`` gives the
        algebraic inverse, which underestimates low counts.

    Returns
    -------
    ndarray, same shape and float dtype, non-negative.

    References
    ----------
    M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 99, doi:10.1109/TIP.2010.2056693.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.poisson(2.0, 200_000)
    >>> lam = inverse_anscombe(np.array([anscombe(x).mean()]))[0]
    >>> bool(abs(lam - 2.0) < 0.02)
    True
    """
    y = np.asarray(values)
    dtype = np.float64 if y.dtype == np.float64 else np.float32
    y64 = y.astype(np.float64)
    if not exact:
        return np.maximum((y64 / 2.0) ** 2 - 0.375, 0.0).astype(dtype)
    expect, lam = _expected_anscombe_table()
    out = np.interp(y64, expect, lam, left=0.0)
    high = y64 > expect[-1]
    if np.any(high):
        out[high] = _closed_form_inverse(y64[high])
    return out.astype(dtype)


@accepts_data("counts")
def generalized_anscombe(counts: np.ndarray, *, gain: float = 1.0, read_noise: float = 0.0) -> np.ndarray:
    """Generalised Anscombe transform for Poisson-Gaussian data ``gain * Poisson + N(0, read_noise^2)``.

    In units of the gain (``x / gain``, ``s = read_noise / gain``) the transform
    is ``2 sqrt(max(x + 3/8 + s^2, 0))``; it gives nearly unit Gaussian noise
    and reduces to :func:`anscombe` for ``gain = 1, read_noise = 0``.

    Parameters
    ----------
    counts : ndarray
        Detector counts.
    gain : float
        Counts per detected electron.
    read_noise : float
        Standard deviation of the Gaussian read noise, in counts.

    Returns
    -------
    ndarray
        The stabilised values (noise standard deviation close to 1).

    References
    ----------
    F. Murtagh, J.-L. Starck, A. Bijaoui, Astron. Astrophys. Suppl. Ser. 112 (1995) 179
    (generalised Anscombe transform); M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 22
    (2013) 91, doi:10.1109/TIP.2012.2202675.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = 2.0 * rng.poisson(10.0, 100_000) + rng.normal(0, 3.0, 100_000)
    >>> round(float(generalized_anscombe(x, gain=2.0, read_noise=3.0).std()), 1)
    1.0
    """
    x = np.asarray(counts, dtype=np.float64) / gain
    s = read_noise / gain
    return 2.0 * np.sqrt(np.maximum(x + 0.375 + s * s, 0.0))


@accepts_data("values")
def inverse_generalized_anscombe(values: np.ndarray, *, gain: float = 1.0, read_noise: float = 0.0) -> np.ndarray:
    """Invert :func:`generalized_anscombe` for a denoised estimate (nearly unbiased).

    Uses the exact unbiased inverse of the Poisson case minus ``s^2`` (``s`` =
    read noise in gain units), the form of Mäkitalo & Foi's closed-form
    approximation of the exact unbiased inverse (exact for ``read_noise = 0``),
    then rescales by the gain. Non-negative.

    Parameters
    ----------
    values : ndarray
        A denoised estimate in the stabilised domain.
    gain, read_noise : float
        Those of the forward transform.

    Returns
    -------
    ndarray
        The estimated expected counts (>= 0).

    References
    ----------
    M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 22 (2013) 91, doi:10.1109/TIP.2012.2202675.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = 2.0 * rng.poisson(5.0, 400_000) + rng.normal(0, 2.0, 400_000)
    >>> y = generalized_anscombe(x, gain=2.0, read_noise=2.0).mean()
    >>> bool(abs(inverse_generalized_anscombe(np.array([y]), gain=2.0, read_noise=2.0)[0] - 10.0) < 0.2)
    True
    """
    s = read_noise / gain
    lam = inverse_anscombe(np.asarray(values, dtype=np.float64)) - s * s
    return gain * np.maximum(lam, 0.0)
