# SPDX-License-Identifier: GPL-3.0-or-later
"""Specimen-drift registration across frames (subpixel phase correlation).

Drift is estimated on a *reference image* per frame (the spectrum image summed
over an energy window: a bright, high-S/N mass-thickness image, unlike the
noisy Li map) and then applied to every energy channel of that frame, so the
spectra stay aligned pixel to pixel through the series.
"""
from __future__ import annotations

import numpy as np

from ..data import apply_kernel, as_dataarray, like_input
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data


def _refine(ref: np.ndarray, moving: np.ndarray, shift: np.ndarray, *, iterations: int = 8,
            margin: int = 3) -> np.ndarray:
    """Gauss–Newton refinement of a translation (Lucas–Kanade for a pure shift).

    Why not phase correlation alone: on smooth, non-periodic images its
    upsampled peak is pulled toward integer shifts (measured on the simulator's
    series: 0.1 px found for a 0.63 px drift). Minimising the squared
    difference over the image interior with the analytic image gradient has no
    such bias; the phase-correlation estimate is the starting point, so large
    shifts are still found.
    """
    from scipy import ndimage

    s = np.asarray(shift, float).copy()
    for _ in range(iterations):
        m = ndimage.shift(moving, s, order=3, mode="nearest")
        pad = margin + int(np.ceil(np.abs(s).max()))
        if 2 * pad + 2 > min(m.shape):  # no interior left beyond the shift: keep the correlation estimate
            break
        inner = (slice(pad, -pad or None),) * 2
        gy, gx = np.gradient(m)
        r = (m - m[inner].mean()) - (ref - ref[inner].mean())
        g = np.stack([gy[inner].ravel(), gx[inner].ravel()], axis=1)
        gtg = g.T @ g
        if np.linalg.cond(gtg) > 1e8:  # featureless image: keep what we have
            break
        step = np.linalg.solve(gtg, g.T @ r[inner].ravel())
        s += step
        if np.abs(step).max() < 1e-3:
            break
    return s


@accepts_data("stack")
def estimate_shifts(stack: np.ndarray, *, reference: str = "first", upsample_factor: int = 20,
                    refine: bool = True) -> np.ndarray:
    """Drift (dy, dx) in pixels of every image of a (time, y, x) stack.

    Array kernel. The returned shift is the one that, applied to a frame with
    :func:`apply_shifts`, registers it onto the reference. Phase correlation
    (Hann-windowed, so the image borders do not dominate) gives the start, a
    Gauss–Newton least-squares step refines it to a small fraction of a pixel.

    Parameters
    ----------
    stack : ndarray (time, y, x)
    reference : {"first", "mean", "previous"}
        Register onto the first frame, onto the series mean (robust when the
        first frame is poor), or chain frame-to-frame shifts (robust when the
        specimen changes slowly over a long series).
    upsample_factor : int
        Subpixel precision 1/upsample_factor px of the phase correlation.
    refine : bool
        Refine by least squares (recommended; see :func:`_refine`).

    Returns
    -------
    ndarray (time, 2)

    References
    ----------
    M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, Opt. Lett. 33 (2008) 156,
    doi:10.1364/OL.33.000156 (efficient subpixel image registration).
    B. D. Lucas, T. Kanade, Proc. IJCAI 1981, 674 (Gauss–Newton image alignment).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> img = ndimage.gaussian_filter(rng.random((64, 64)), 3)
    >>> moved = ndimage.shift(img, (1.5, -2.25), mode="nearest")
    >>> np.round(estimate_shifts(np.stack([img, moved]))[1], 2)
    array([-1.5 ,  2.25])
    """
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    stack = np.asarray(stack, dtype=float)
    if stack.ndim != 3:
        raise ShapeMismatchError(f"estimate_shifts: expected a (time, y, x) stack, got shape {stack.shape}")
    if not np.all(np.isfinite(stack)):
        raise DataValidationError("estimate_shifts: the reference images hold NaN/Inf")
    if reference not in ("first", "mean", "previous"):
        raise DataValidationError(f"estimate_shifts: reference must be 'first', 'mean' or 'previous', "
                                  f"got {reference!r}")
    # Subtract each frame's mean: a global intensity change (dose drift) must
    # not bias the correlation peak.
    stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    win = window("hann", stack.shape[1:])

    def pair(ref, mov):
        s, _, _ = phase_cross_correlation(ref * win, mov * win, upsample_factor=upsample_factor,
                                          normalization=None)
        return _refine(ref, mov, s) if refine else s

    shifts = np.zeros((stack.shape[0], 2))
    ref = stack.mean(axis=0) if reference == "mean" else stack[0]
    for t in range(stack.shape[0]):
        if reference == "previous":
            if t:
                shifts[t] = shifts[t - 1] + pair(stack[t - 1], stack[t])
        elif reference == "mean" or t:
            shifts[t] = pair(ref, stack[t])
    if reference == "mean":
        shifts -= shifts[0]  # express relative to the first frame, like the other modes
    return shifts


def _linear_index(n: int, shift: float):
    """Source indices and weights of a linear-interpolation shift, edges clamped."""
    src = np.clip(np.arange(n) - shift, 0, n - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, src - i0


def _bilinear(frame: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift the last two axes of ``frame`` by (dy, dx), bilinear, edges repeated.

    Why not ``scipy.ndimage.shift``: it works on one image at a time, so a
    spectrum image needs one call per energy channel (1024 per frame); four
    gathers of the whole (energy, y, x) block do the same arithmetic at once
    (measured, two 64×64×1024 frames: 0.52 s → 0.16 s). Same result as
    ``ndimage.shift(order=1, mode="nearest")`` to rounding.
    """
    y0, y1, wy = _linear_index(frame.shape[-2], dy)
    x0, x1, wx = _linear_index(frame.shape[-1], dx)
    wy = wy[:, None].astype(frame.dtype, copy=False)
    wx = wx[None, :].astype(frame.dtype, copy=False)
    top = np.take(frame, y0, axis=-2)
    bot = np.take(frame, y1, axis=-2)
    rows = top + wy * (bot - top)
    left = np.take(rows, x0, axis=-1)
    right = np.take(rows, x1, axis=-1)
    return left + wx * (right - left)


def _shift_block(block: np.ndarray, shifts: np.ndarray, *, order: int) -> np.ndarray:
    """Kernel: block (time, ..., y, x), shifts (time, 2) → every (y, x) image shifted."""
    from scipy import ndimage

    out = np.empty_like(block)
    for t in range(block.shape[0]):
        dy, dx = shifts[t]
        if order == 1:
            out[t] = _bilinear(block[t], dy, dx)
        else:
            for idx in np.ndindex(*block.shape[1:-2]):
                out[(t, *idx)] = ndimage.shift(block[(t, *idx)], (dy, dx), order=order, mode="nearest")
    return out


@accepts_data("data")
def apply_shifts(data, shifts, *, order: int = 1):
    """Shift every frame of a (time, y, x[, energy]) series by its (dy, dx) pixels.

    Linear interpolation (``order=1``) by default: unlike Fourier or spline
    shifts it cannot ring or create negative counts next to a sharp edge, and
    its smoothing of noise is below one pixel. Edges repeat the nearest pixel.
    Dask-backed input stays lazy (one task per time chunk).

    Parameters
    ----------
    data : xarray.DataArray or ndarray
        ``(time, y, x)`` images or ``(time, y, x, energy)`` spectrum images.
    shifts : array_like (time, 2)
        From :func:`estimate_shifts`.
    order : int
        Interpolation order (0 nearest, 1 linear, 3 cubic spline).

    Returns
    -------
    Same type and dims as ``data``.

    References
    ----------
    M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, Opt. Lett. 33 (2008) 156,
    doi:10.1364/OL.33.000156.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 5, 5)); a[0, 2, 2] = 1
    >>> float(apply_shifts(a, [[1, 0]])[0, 3, 2])
    1.0
    """
    import xarray as xr

    kind = "spectrum" if np.ndim(data) == 4 else "image"
    da = as_dataarray(data, kind=kind, name="data")
    shifts = np.asarray(shifts, dtype=float)
    if "time" not in da.dims or shifts.shape != (da.sizes["time"], 2):
        raise ShapeMismatchError(f"apply_shifts: shifts must have shape (time={da.sizes.get('time')}, 2), "
                                 f"got {shifts.shape}")
    if not np.all(np.isfinite(shifts)):
        raise DataValidationError("apply_shifts: shifts hold NaN/Inf")
    other = [d for d in da.dims if d not in ("time", "y", "x")]
    sh = xr.DataArray(shifts, dims=("time", "component"))
    if da.chunks is not None:
        # time is a loop dimension: each block gets the shifts of its own frames
        sh = sh.chunk({"time": da.chunksizes["time"]})
    out = apply_kernel(
        lambda block, s: _shift_block(block, s, order=order),
        da, sh,
        input_core_dims=[[*other, "y", "x"], ["component"]],
        output_core_dims=[[*other, "y", "x"]],
        output_dtypes=[da.dtype],
    )
    return like_input(out.transpose(*da.dims), data)
