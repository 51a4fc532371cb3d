# SPDX-License-Identifier: GPL-3.0-or-later
"""Whole-pixel motion compensation of a movie before non-local denoising (array kernel).

The non-local method's patches are 12 frames long (``_sparse._PATCH_T``): a
patch follows a fixed pixel through time. Specimen drift that jitters by about
a pixel from frame to frame makes every edge inside such a patch move, so the
patch no longer has a sparse code and its group matches worse. Measured on
simulator movies at 20 counts/px (issue 20): the frames where BM4D (4-frame
cubes) beat us were those after ~1 px jumps of the drift, and the scenes with
the most jitter gained least over BM4D.

The frames are therefore aligned by **whole-pixel** shifts before denoising and
shifted back after. Whole pixels keep the noise independent and identically
distributed (a sub-pixel interpolation would correlate and shrink it, which
the noise estimate and the thresholds do not model); the residual motion is at
most half a pixel. Each frame is placed on a canvas padded by the largest
shift (mirror padding as context), so no measured pixel is dropped.

The shifts come from the cross-correlation of smoothed frames with their
temporal mean, refined once against the mean of the aligned frames, with a
parabolic sub-pixel peak before rounding (Guizar-Sicairos et al. 2008 use the
same correlation with an upsampled peak).

References
----------
M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, Opt. Lett. 33 (2008) 156,
doi:10.1364/OL.33.000156.
M. Maggioni, G. Boracchi, A. Foi, K. Egiazarian, IEEE Trans. Image Process. 21
(2012) 3952, doi:10.1109/TIP.2012.2199324 (V-BM4D: spatio-temporal volumes
along motion trajectories).
"""
from __future__ import annotations

import numpy as np

# frames move by a whole pixel only where their jitter reaches 3/4 px (see frame_shifts)
_DEAD = 0.75
# smallest frame side (px) whose jitter is estimated (see frame_shifts)
_MIN_SIDE = 64


def _peak(cc: np.ndarray, max_shift: int) -> np.ndarray:
    """Sub-pixel (dy, dx) of the largest value of a centred correlation within ``max_shift`` of the centre."""
    cy, cx = cc.shape[0] // 2, cc.shape[1] // 2
    win = cc[cy - max_shift:cy + max_shift + 1, cx - max_shift:cx + max_shift + 1]
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    out = []
    for axis, i in ((0, iy), (1, ix)):
        line = win[:, ix] if axis == 0 else win[iy, :]
        frac = 0.0
        if 0 < i < len(line) - 1:  # parabola through the peak and its neighbours
            a, b, c = line[i - 1], line[i], line[i + 1]
            denom = a - 2 * b + c
            frac = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
        out.append(i - max_shift + frac)
    return np.array(out)


def frame_shifts(z: np.ndarray, *, max_shift: int = 4, smooth: float = 1.5,
                 jitter_only: float | None = 4.0) -> np.ndarray:
    """Whole-pixel shift of every frame of a ``(T, H, W)`` stack relative to the stack's mean position.

    Parameters
    ----------
    z : ndarray (T, H, W)
        Stack (e.g. Anscombe-stabilised counts).
    max_shift : int
        Largest shift looked for, in pixels, per axis.
    smooth : float
        Gaussian smoothing (pixels) of the frames before correlating (noise).
    jitter_only : float or None
        Keep only the shifts' departure from their own running Gaussian mean
        of this width (frames): the frame-to-frame jitter. None: whole shifts.

    Returns
    -------
    ndarray (T, 2) of int
        ``(dy, dx)`` by which each frame's content sits displaced from the
        common position (median shift 0); zeros for stacks too small to tell
        (fewer than 2 frames, or frames under 64 px a side).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.random((64, 64))
    >>> stack = np.stack([np.roll(scene, (0, s), axis=(0, 1)) for s in (0, 2, 1)])
    >>> frame_shifts(stack, smooth=0.0, jitter_only=None)[:, 1].tolist()
    [-1, 1, 0]
    """
    from scipy import ndimage

    z = np.asarray(z, np.float64)
    T, H, W = z.shape
    max_shift = int(min(max_shift, H // 4, W // 4))
    # Frames under _MIN_SIDE px give too few edges to tell a jitter from noise: measured on
    # simulator movies without drift, 1-3 of 8 48x48 frames at 20 counts/px got a false
    # shift, none of 64x64 ones. Such movies are left as they are.
    if T < 2 or max_shift < 1 or min(H, W) < _MIN_SIDE:
        return np.zeros((T, 2), np.int64)
    f = ndimage.gaussian_filter(z, (0, smooth, smooth)) if smooth > 0 else z.copy()
    # band-pass: the broad, slowly moving Li front is real change, not drift; grain edges are not
    f -= ndimage.gaussian_filter(z, (0, 4 * max(smooth, 1.0), 4 * max(smooth, 1.0)))
    # a Hann taper keeps the frame edges (where content enters and leaves) out of the correlation
    taper = np.outer(np.hanning(H), np.hanning(W))
    F = np.fft.rfft2(f * taper)
    shifts = np.zeros((T, 2))
    for _ in range(2):
        ref = np.fft.rfft2(_shift_mean(f, shifts) * taper)
        cc = np.fft.fftshift(np.fft.irfft2(F * np.conj(ref), s=(H, W)), axes=(1, 2))
        shifts = np.array([_peak(c, max_shift) for c in cc])
        shifts -= np.median(shifts, axis=0)
    if jitter_only and T > 2:
        # Only the frame-to-frame jitter: a slow drift is followed by the block matching
        # (its offsets), and a slowly moving front biases the correlation like a slow drift
        # would; measured on simulator movies, aligning the slow part as well moved frames by
        # up to 1 px more than the true drift and lost 1.6 dB on a smoothly drifting movie.
        shifts -= ndimage.gaussian_filter1d(shifts, jitter_only, axis=0, mode="nearest")
    # a frame moves by a whole pixel only where it is clearly off (|shift| >= 0.75 px): a
    # shift of about half a pixel either way is no better after rounding, and moving the
    # frame where the estimate errs costs more than the half pixel left in place
    return (np.sign(shifts) * np.floor(np.abs(shifts) + 1.0 - _DEAD)).astype(np.int64)


def _shift_mean(f, shifts):
    """Mean of the frames moved back by ``shifts`` (whole pixels, wrapped: only a reference)."""
    s = np.rint(shifts).astype(int)
    return np.mean([np.roll(fr, (-dy, -dx), axis=(0, 1)) for fr, (dy, dx) in zip(f, s)], axis=0)


def align(z: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, int]:
    """Frames moved back by ``shifts`` onto a canvas padded by the largest shift (mirror padding).

    Returns the ``(T, H + 2m, W + 2m)`` canvas and the margin ``m``; frame
    ``t`` of ``z`` sits at rows ``m - dy .. m - dy + H`` (columns likewise).
    """
    z = np.asarray(z)
    m = int(np.abs(shifts).max()) if len(shifts) else 0
    if m == 0:
        return z, 0
    out = np.stack([np.pad(fr, ((m - dy, m + dy), (m - dx, m + dx)), mode="symmetric")
                    for fr, (dy, dx) in zip(z, shifts)])
    return out, m


def unalign(canvas: np.ndarray, shifts: np.ndarray, margin: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The measured pixels of each frame back from a canvas made by :func:`align`."""
    if margin == 0:
        return canvas
    _, H, W = shape
    return np.stack([c[margin - dy:margin - dy + H, margin - dx:margin - dx + W]
                     for c, (dy, dx) in zip(canvas, shifts)])
