# SPDX-License-Identifier: GPL-3.0-or-later
"""Image-quality metrics and a noise-level estimate (array kernels + thin wrappers).

PSNR and SSIM are computed against a known truth (the simulator's clean movie);
the noise-level estimate needs no truth and is what :func:`sparse_coding` uses
to set its thresholds.

References
----------
Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, IEEE Trans. Image Process.
13 (2004) 600, doi:10.1109/TIP.2003.819861 (SSIM).
J. Immerkær, Comput. Vis. Image Underst. 64 (1996) 300, doi:10.1006/cviu.1996.0060
(fast noise-variance estimation).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data


def _pair(estimate, truth, name: str):
    est = np.asarray(getattr(estimate, "values", estimate), dtype=np.float64)
    ref = np.asarray(getattr(truth, "values", truth), dtype=np.float64)
    if est.shape != ref.shape:
        raise ShapeMismatchError(f"{name}: estimate shape {est.shape} differs from truth shape {ref.shape}")
    if est.size == 0:
        raise DataValidationError(f"{name}: empty arrays")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(ref))):
        raise DataValidationError(f"{name}: NaN/Inf in estimate or truth; expected finite values")
    return est, ref


@accepts_data("estimate", "truth")
def psnr(estimate, truth, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``.

    Parameters
    ----------
    estimate, truth : array_like or DataArray, same shape
    data_range : float, optional
        Peak-to-peak range of the truth (default: ``truth.max() - truth.min()``,
        or ``truth.max()`` if that is 0).

    Returns
    -------
    float (``inf`` for a perfect estimate)

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.array([1.0, 2.0]), np.array([1.0, 2.1]), data_range=1.0), 1)
    23.0
    """
    est, ref = _pair(estimate, truth, "psnr")
    rng = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if rng <= 0:
        rng = float(abs(ref.max())) or 1.0
    mse = float(np.mean((est - ref) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(rng**2 / mse))


@accepts_data("estimate", "truth")
def ssim(estimate, truth, *, data_range: float | None = None) -> float:
    """Mean structural similarity (scikit-image), averaged over frames for stacks.

    Parameters
    ----------
    estimate, truth : array_like or DataArray, (y, x) or (time, y, x)
    data_range : float, optional
        As in :func:`psnr`.

    Returns
    -------
    float
        Mean SSIM, 1 for identical images.

    References
    ----------
    Z. Wang et al., IEEE Trans. Image Process. 13 (2004) 600, doi:10.1109/TIP.2003.819861.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).random((32, 32))
    >>> ssim(a, a)
    1.0
    """
    from skimage.metrics import structural_similarity

    est, ref = _pair(estimate, truth, "ssim")
    if est.ndim not in (2, 3):
        raise ShapeMismatchError(f"ssim: expected (y, x) or (time, y, x) arrays, got shape {est.shape}")
    rng = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    rng = rng if rng > 0 else 1.0
    frames = [(est, ref)] if est.ndim == 2 else list(zip(est, ref))
    win = min(7, *est.shape[-2:])
    win -= 1 - win % 2  # odd window no larger than the image
    if win < 3:
        raise ShapeMismatchError(f"ssim: images of shape {est.shape[-2:]} are smaller than the 3x3 minimum")
    return float(np.mean([structural_similarity(e, r, data_range=rng, win_size=win) for e, r in frames]))


def noise_level_kernel(values: np.ndarray) -> float:
    """Standard deviation of additive white noise in ``(..., y, x)`` images (Immerkær 1996).

    The image is filtered with the difference of two Laplacians, which cancels
    smooth structure up to second order; the mean absolute response, scaled by
    ``sqrt(pi/2)/6``, estimates sigma. Mean-absolute (rather than median) keeps
    the estimate unbiased for the discrete values of low-count data.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 3 or x.shape[-2] < 3:
        return 0.0
    x = x.reshape(-1, *x.shape[-2:])
    resp = (x[:, :-2, :-2] - 2 * x[:, :-2, 1:-1] + x[:, :-2, 2:]
            - 2 * x[:, 1:-1, :-2] + 4 * x[:, 1:-1, 1:-1] - 2 * x[:, 1:-1, 2:]
            + x[:, 2:, :-2] - 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:])
    return float(np.sqrt(np.pi / 2.0) * np.mean(np.abs(resp)) / 6.0)


@accepts_data("data")
def noise_level(data, *, poisson: bool = False) -> float:
    """Estimate the noise standard deviation of an image or movie from the data alone.

    Parameters
    ----------
    data : array_like or DataArray, (y, x) or (time, y, x)
    poisson : bool, default False
        Estimate in the Anscombe domain (for counts; the result is then ~1
        for pure Poisson noise and ~0 for noise-free data).

    Returns
    -------
    float
        The noise standard deviation, in the data's units (Anscombe units with ``poisson=True``).

    References
    ----------
    J. Immerkær, Comput. Vis. Image Underst. 64 (1996) 300, doi:10.1006/cviu.1996.0060.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(noise_level(rng.normal(0, 2.0, (64, 64))), 1)
    2.0
    """
    x = np.asarray(getattr(data, "values", data))
    if x.ndim not in (2, 3):
        raise ShapeMismatchError(f"noise_level: expected (y, x) or (time, y, x) data, got shape {x.shape}")
    if poisson:
        from ._poisson import anscombe

        x = anscombe(x)
    return noise_level_kernel(x)
