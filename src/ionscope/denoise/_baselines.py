# SPDX-License-Identifier: GPL-3.0-or-later
"""Baseline denoisers to compare sparse coding against: Gaussian, total variation, PCA.

All accept numpy arrays or DataArrays and return the same type and shape.
Gaussian filtering is linear and so preserves the mean count exactly; total
variation works on Anscombe-stabilised counts (so one weight suits all doses);
PCA denoises a *spectrum image* before a Li map is extracted from it.

References
----------
A. Chambolle, J. Math. Imaging Vis. 20 (2004) 89, doi:10.1023/B:JMIV.0000011325.36760.1e (TV).
P. G. Kotula, M. R. Keenan, Microsc. Microanal. 12 (2006) 538, doi:10.1017/S1431927606060636
(Poisson-weighted PCA of spectrum images).
M. R. Keenan, P. G. Kotula, Surf. Interface Anal. 36 (2004) 203, doi:10.1002/sia.1657.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data


def _image_input(data, name: str):
    from ..data import as_dataarray

    if not hasattr(data, "dims"):
        arr = np.asarray(data)
        if arr.ndim not in (2, 3):
            raise ShapeMismatchError(f"{name}: data must be (y, x) or (time, y, x), got shape {arr.shape}")
    da = as_dataarray(data, kind="image", name=f"{name}: data")
    for dim in ("y", "x"):
        if dim not in da.dims:
            raise ShapeMismatchError(f"{name}: data need dimensions 'y' and 'x'; got {da.dims}")
    if da.dtype.kind not in "biuf":
        raise DataValidationError(f"{name}: data must be numeric, got dtype {da.dtype}")
    return da


def _finite(x: np.ndarray, name: str) -> None:
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataValidationError(f"{name}: NaN/Inf in data; expected finite counts")


def _map_core(da, kernel, name):
    from ..data import apply_kernel

    core = ["time", "y", "x"] if "time" in da.dims else ["y", "x"]
    dtype = np.float64 if da.dtype == np.float64 else np.float32
    out = apply_kernel(kernel, da, input_core_dims=[core], output_core_dims=[core], output_dtypes=[dtype])
    return out.transpose(*da.dims), core


#: Border modes of :func:`gaussian` (those of :func:`scipy.ndimage.gaussian_filter`).
BORDER_MODES = ("reflect", "nearest", "mirror", "wrap", "constant")


@accepts_data("data")
def gaussian(data, *, sigma=1.0, sigma_t: float = 0.0, mode: str = "reflect"):
    """Gaussian smoothing in (y, x), and along time if ``sigma_t > 0`` (3-D).

    The one Gaussian denoiser of ionscope: the pipeline's ``[denoise] method =
    "gaussian"`` runs it too. Linear, so the mean count is preserved exactly
    (away from a ``"constant"`` border).

    Parameters
    ----------
    data : ndarray or DataArray, (y, x) or (time, y, x)
        Maps or a movie (a DataArray may carry other, looped, dimensions).
    sigma : float or sequence of float
        Spatial standard deviation in pixels (both ``y`` and ``x``); or one value
        per axis, ``(sigma_y, sigma_x)`` for a map and ``(sigma_time, sigma_y,
        sigma_x)`` for a movie (in frames and pixels; ``sigma_t`` must then stay 0).
    sigma_t : float
        Temporal standard deviation in frames (0: each frame separately).
    mode : {"reflect", "nearest", "mirror", "wrap", "constant"}
        How the image is extended beyond its border (and the movie beyond its
        first and last frame), as in :func:`scipy.ndimage.gaussian_filter`:
        ``"reflect"`` (``d c b a | a b c d``, the default) keeps a flat edge
        flat; ``"nearest"`` (``a a a a | a b c d``) repeats the edge value.

    Returns
    -------
    ndarray or DataArray
        Same type, shape and dims as ``data``; float64 for float64 input, else float32.

    Raises
    ------
    DataValidationError
        A negative or non-finite sigma, an unknown border mode, NaN/Inf in the data.
    ShapeMismatchError
        Data without ``y``/``x``, or a sigma sequence of the wrong length.

    Examples
    --------
    >>> import numpy as np
    >>> out = gaussian(np.ones((4, 16, 16)), sigma=1.5, sigma_t=1.0)
    >>> out.shape, float(out.mean())
    ((4, 16, 16), 1.0)
    >>> edge = np.zeros((1, 5, 5)); edge[:, :, 0] = 10.0
    >>> float(gaussian(edge, sigma=(0, 1, 1), mode="nearest")[0, 2, 0]) > float(gaussian(edge, sigma=1)[0, 2, 0])
    True
    """
    from scipy.ndimage import gaussian_filter

    from ..data import like_input

    if mode not in BORDER_MODES:
        raise DataValidationError(f"gaussian: mode must be one of {BORDER_MODES}, got {mode!r}")
    per_axis = np.ndim(sigma) > 0
    values = np.asarray(sigma, dtype=float).ravel() if per_axis else np.array([sigma, sigma_t], dtype=float)
    if not (np.all(np.isfinite(values)) and np.all(values >= 0) and np.isfinite(sigma_t) and sigma_t >= 0):
        raise DataValidationError(f"gaussian: sigma and sigma_t must be finite and >= 0, got {sigma}, {sigma_t}")
    da = _image_input(data, "gaussian")
    n_core = 3 if "time" in da.dims else 2
    if per_axis and (values.size != n_core or sigma_t):
        raise ShapeMismatchError(f"gaussian: sigma must be one number or {n_core} numbers (one per axis of "
                                 f"{('time', 'y', 'x')[3 - n_core:]}, with sigma_t=0), got {sigma!r}")

    def kernel(block):
        _finite(block, "gaussian")
        dtype = np.float64 if block.dtype == np.float64 else np.float32
        if per_axis:
            sig = [0.0] * (block.ndim - n_core) + [float(v) for v in values]
        else:
            sig = [0.0] * (block.ndim - 2) + [sigma, sigma]
            if "time" in da.dims:
                sig[-3] = sigma_t
        return gaussian_filter(block.astype(np.float64), sig, mode=mode).astype(dtype)

    out, _ = _map_core(da, kernel, "gaussian")
    return like_input(out, data)


@accepts_data("data")
def total_variation(data, *, weight: float = 0.6, poisson: bool = True):
    """Total-variation denoising (Chambolle, scikit-image), 3-D for movies.

    Parameters
    ----------
    data : ndarray or DataArray, (y, x) or (time, y, x)
    weight : float
        TV weight in units of the (stabilised, unit-variance) noise.
    poisson : bool
        Denoise Anscombe-stabilised counts and invert with the exact unbiased inverse.

    Returns
    -------
    ndarray or DataArray
        Same type, shape and dims as ``data``; float64 for float64 input, else float32.

    References
    ----------
    A. Chambolle, J. Math. Imaging Vis. 20 (2004) 89, doi:10.1023/B:JMIV.0000011325.36760.1e.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> out = total_variation(rng.poisson(5.0, (4, 32, 32)))
    >>> out.shape
    (4, 32, 32)
    """
    from skimage.restoration import denoise_tv_chambolle

    from ..data import like_input
    from ._poisson import anscombe, inverse_anscombe

    if not (np.isfinite(weight) and weight > 0):
        raise DataValidationError(f"total_variation: weight must be a finite number > 0, got {weight}")
    da = _image_input(data, "total_variation")

    def kernel(block):
        _finite(block, "total_variation")
        dtype = np.float64 if block.dtype == np.float64 else np.float32
        if poisson and block.size and block.min() < 0:
            raise DataValidationError("total_variation: poisson=True needs non-negative counts")
        z = anscombe(block).astype(np.float64) if poisson else block.astype(np.float64)
        lead = z.shape[:-3] if "time" in da.dims else z.shape[:-2]
        core = z.shape[len(lead):]
        flat = z.reshape(-1, *core)
        res = np.stack([denoise_tv_chambolle(f, weight=weight) for f in flat]).reshape(z.shape)
        return (inverse_anscombe(res) if poisson else res).astype(dtype)

    out, _ = _map_core(da, kernel, "total_variation")
    return like_input(out, data)


@accepts_data("data")
def pca_spectrum(data, *, n_components: int | None = None, poisson: bool = True):
    """PCA denoising of a spectrum image before mapping (Poisson-weighted SVD).

    The matrix pixels x energy is scaled by ``1/sqrt(mean image x mean
    spectrum)`` so that Poisson noise becomes nearly homoscedastic (Keenan &
    Kotula 2004), decomposed by SVD, truncated, and un-scaled.

    Parameters
    ----------
    data : ndarray or DataArray with a last ``energy`` axis, e.g. (y, x, energy)
        or (time, y, x, energy).
    n_components : int, optional
        Components kept; default: those whose singular value exceeds the
        Marchenko-Pastur edge of unit-variance noise, ``sqrt(n_pixels) + sqrt(n_energy)``.
    poisson : bool
        Apply the Poisson weighting (needs non-negative counts).

    Returns
    -------
    ndarray or DataArray
        Same type, shape and dims as ``data``: the spectrum image rebuilt from the kept components.

    References
    ----------
    M. R. Keenan, P. G. Kotula, Surf. Interface Anal. 36 (2004) 203, doi:10.1002/sia.1657.
    V. A. Marchenko, L. A. Pastur, Math. USSR-Sbornik 1 (1967) 457, doi:10.1070/SM1967v001n04ABEH001994.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.outer(rng.random(256), np.linspace(1, 5, 40)).reshape(16, 16, 40) * 10
    >>> out = pca_spectrum(rng.poisson(truth).astype(float))
    >>> out.shape
    (16, 16, 40)
    """
    from ..data import as_dataarray, like_input

    da = as_dataarray(data, kind="spectrum", name="pca_spectrum: data")
    if "energy" not in da.dims:
        raise ShapeMismatchError(f"pca_spectrum: data need an 'energy' dimension; got {da.dims}")
    da = da.transpose(..., "energy")
    x = np.asarray(da.values, dtype=np.float64)
    if x.ndim < 2:
        raise ShapeMismatchError(f"pca_spectrum: need several spectra (..., energy), got shape {x.shape}")
    _finite(x, "pca_spectrum")
    if n_components is not None and (isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer))
                                     or n_components < 1):
        raise DataValidationError(f"pca_spectrum: n_components must be an integer >= 1, got {n_components!r}")
    m = x.reshape(-1, x.shape[-1])
    if poisson and m.min() < 0:
        raise DataValidationError("pca_spectrum: poisson=True needs non-negative counts; pass poisson=False")
    if poisson:
        g = np.sqrt(np.maximum(m.mean(axis=1), 1e-12))[:, None]
        h = np.sqrt(np.maximum(m.mean(axis=0), 1e-12))[None, :]
        # scale so the total counts are preserved: sqrt(mean image x mean spectrum / overall mean)
        scale = g * h / np.sqrt(max(m.mean(), 1e-12))
    else:
        scale = np.ones_like(m[:1, :1])
    w = m / scale
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    if n_components is None:
        # noise level of the weighted matrix from its smallest singular values
        sigma = np.median(s) / np.sqrt(max(m.shape)) if not poisson else 1.0
        edge = sigma * (np.sqrt(m.shape[0]) + np.sqrt(m.shape[1]))
        k = max(1, int(np.sum(s > edge)))
    else:
        k = min(int(n_components), s.size)
    rec = (u[:, :k] * s[:k]) @ vt[:k] * scale
    out = da.copy(data=rec.reshape(x.shape).astype(np.float64 if da.dtype == np.float64 else np.float32))
    out.attrs = dict(da.attrs, pca_components=k)
    return like_input(out, data)
