# SPDX-License-Identifier: GPL-3.0-or-later
"""Image drift of holograms: estimate it on fringe-free sideband waves, correct it by a Fourier shift.

In a hologram the specimen moves with the stage while the interference
fringes stay fixed to the biprism. Correlating raw frames would therefore
lock onto the fringes (the strongest periodic feature) and report no drift.
Each frame is instead reduced to its Fourier-method wave (sideband cut out
with the default aperture |q|/3 and centred: the carrier is gone; the frame
faded to its mean near the borders first, see :data:`BORDER_FRACTION`),
upsampled 2× from the aperture's small grid, and the waves are registered
by a complex least-squares fit. We first tried the centre band (a low-pass
of the intensity), as is usual for plain images: it carries little contrast
in a thin specimen and, worse, the sideband's streaks from sharp phase steps
(interfaces, the specimen edge) reach into it, so its content changes with
each frame's fringe shift — measured errors of 0.35–0.7 px at 100
counts/px/frame even without drift, against 0.06–0.08 px RMS from the
sideband wave, whose phase holds the strong mean-inner-potential contrast
(0.003–0.06 px without noise).

The frames are then moved back by an exact Fourier shift, which moves the
fringes by the same amount: a constant fringe-phase offset 2π q·d per frame,
absorbed by the fringe-shift estimation and removed again when the shifts are
reported.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError


def _align_one(ref, img, d0, margin, iterations=20):
    """Least-squares shift d (samples) with β·img(r + d) ≈ ref(r) over the interior (Gauss–Newton).

    ``ref`` and ``img`` are complex waves; β, a complex scalar re-solved each
    step, absorbs the frame's own fringe phase and intensity. Our own kernel
    rather than a windowed FFT cross-correlation: the window (or, without it,
    the periodic wrap of a field whose top is vacuum and bottom specimen) pins
    the correlation peak towards zero (measured: a 6 px drift read as 2.3 px).
    Fitting over the interior only, with spline-interpolated shifts, has no
    such bias and weights each pixel by its gradient, the maximum-likelihood
    choice for white noise.
    """
    from scipy import ndimage

    d = np.asarray(d0, float).copy()
    inner = (slice(margin, ref.shape[0] - margin), slice(margin, ref.shape[1] - margin))
    r = ref[inner].ravel()
    # spline coefficients once per image, not once per iteration (a third of the cost)
    coef = (ndimage.spline_filter(img.real, order=3, mode="nearest")
            + 1j * ndimage.spline_filter(img.imag, order=3, mode="nearest"))
    for _ in range(iterations):
        g = ndimage.shift(coef, -d, order=3, mode="nearest", prefilter=False)
        gy, gx = np.gradient(g)
        gi = g[inner].ravel()
        beta = np.vdot(gi, r) / max(np.vdot(gi, gi).real, 1e-30)
        jy, jx, e = beta * gy[inner].ravel(), beta * gx[inner].ravel(), r - beta * gi
        jtj = np.array([[np.vdot(jy, jy).real, np.vdot(jy, jx).real],
                        [np.vdot(jx, jy).real, np.vdot(jx, jx).real]])
        if not np.linalg.cond(jtj) < 1e8:
            raise DataValidationError(
                "holograms: the waves have no structure along y or x to register on; "
                "no image drift can be measured (pass register=False)")
        step = np.linalg.solve(jtj, np.array([np.vdot(jy, e).real, np.vdot(jx, e).real]))
        d += step
        # 1e-3 samples: well below the noise (≥ 0.01 px) at any realistic dose
        if np.max(np.abs(step)) < 1e-3:
            break
    # residuals, scaled back to the reference's level (for the uncertainty)
    return d, beta, (e / beta if abs(beta) > 0 else e)


#: Fraction of each side, at every border, faded out before the sideband waves are
#: computed and left out of the registration fit (besides the drift itself). The
#: specimen's phase is not periodic across the field, so the FFT rings near the
#: borders, and that ringing stays put while the specimen moves. Measured on
#: noiseless 192² series (equal MIPs, 3.9 px drift): x error 1.0 px with a
#: 3-sample margin and no fade, 0.46 px with 5 % faded, 0.06 px with 10 %,
#: 0.004 px with 15 %; at 100 counts/px the noise dominates from 10 % on.
BORDER_FRACTION = 0.1

#: Smallest structure-to-noise ratio (gradient energy of the smoothed aligned mean
#: over that of its residual noise) for which a drift is applied. Measured at
#: 100 counts/px/frame: vacuum series 1.4–1.9 (their "drifts" reached 1 px while
#: the Fisher 1σ claimed 0.2 px: noise registered onto noise), specimens 3.6–18.
MIN_STRUCTURE = 2.5

#: Largest 1σ drift uncertainty (px) for which a drift is applied; beyond it the
#: frames hold too little structure (e.g. vacuum only) and a "drift" would be noise.
MAX_DRIFT_SIGMA_PX = 0.25


def estimate_drift_array(waves, *, scale, passes=2, return_sigma=False, oversampling=1):
    """Array kernel: drift (dy, dx) in px of each frame of a stack of sideband waves, frame 0 = (0, 0).

    ``waves`` is ``(N, my, mx)`` complex (the cropped output of the Fourier
    method, carrier removed); ``scale`` the original px per sample (sy, sx).
    Each frame is registered to the mean of the aligned stack (rebuilt
    ``passes`` times, each frame's fringe phase matched), so no single noisy
    frame is the reference. Frame k holds the specimen moved by +d_k:
    frame_k(r) = frame_0(r − d_k). A coarse start (whole samples) comes from
    an FFT cross-correlation, refined by :func:`_align_one`. ``oversampling``
    (the factor of :func:`upsample`, if used) corrects the uncertainty for
    the correlated samples of an upsampled grid. With ``return_sigma`` the
    result is ``(drift, sigma, structure)``: 1σ per frame and axis (px) and
    the structure-to-noise ratio of the aligned mean (see :data:`MIN_STRUCTURE`).
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    waves = np.asarray(waves, np.complex128)
    n, my, mx = waves.shape
    scale = np.asarray(scale, float)
    if not np.all(np.isfinite(waves)):
        raise DataValidationError("holograms: non-finite values in the sideband waves; expected finite counts")
    coarse = np.array([-phase_cross_correlation(waves[0], w, normalization=None)[0] for w in waves])
    # fit only where every frame, moved back, has data: a margin as wide as the largest drift
    margin = int(np.ceil(np.max(np.abs(coarse)))) + max(3, int(round(BORDER_FRACTION * min(my, mx))))
    if 2 * margin + 8 > min(my, mx):
        raise DataValidationError(
            f"holograms: the image drift (~{np.max(np.abs(coarse * scale)):.0f} px) is too large for the field "
            "of view to register; pass register=False or crop the series")
    drift = coarse.astype(float)
    ref = waves[0]
    for _ in range(max(passes, 1)):
        fits = [_align_one(ref, w, d, margin) for w, d in zip(waves, drift)]
        drift = np.array([f[0] for f in fits])
        drift -= drift[0]
        ref = np.mean([b * ndimage.shift(w, -d, order=3, mode="nearest")
                       for w, d, (_, b, _) in zip(waves, drift, fits)], axis=0)
    # 1σ from the Fisher information of the *smoothed* reference: the gradients of
    # a noisy reference contain the noise's own gradients and would make a
    # featureless (vacuum) series look well determined
    inner = (slice(margin, my - margin), slice(margin, mx - margin))
    smooth = ndimage.gaussian_filter(ref.real, oversampling) + 1j * ndimage.gaussian_filter(ref.imag, oversampling)
    gy, gx = (g[inner].ravel() for g in np.gradient(smooth))
    # structure-to-noise: gradient energy of the smoothed reference over that of what smoothing removed
    ry, rx = (g[inner].ravel() for g in np.gradient(ref - smooth))
    structure = float((np.vdot(gy, gy).real + np.vdot(gx, gx).real)
                      / max(np.vdot(ry, ry).real + np.vdot(rx, rx).real, 1e-300))
    info = np.array([[np.vdot(gy, gy).real, np.vdot(gy, gx).real], [np.vdot(gx, gy).real, np.vdot(gx, gx).real]])
    noise = np.array([float(np.vdot(f[2], f[2]).real) / max(2 * f[2].size - 4, 1) for f in fits])
    cov = np.linalg.pinv(info)
    # an oversampled grid holds oversampling² samples per independent one
    sigma = np.sqrt(np.outer(noise, np.clip(np.diag(cov), 0, None))) * scale[None, :] * oversampling
    drift = drift * scale[None, :]
    return (drift, sigma, structure) if return_sigma else drift


def fourier_shift_kernel(block, *, shifts):
    """Array kernel: move image k of ``block`` (N, ny, nx) by ``-shifts[k]`` px (undo a drift).

    An exact Fourier shift (the fringes, sampled well above Nyquist, move
    without attenuation; spline interpolation would damp ~4 px fringes by an
    amount that depends on the subpixel fraction). The image wraps at its
    borders: a strip as wide as the drift is invalid.
    """
    from scipy import fft

    block = np.asarray(block)
    n, ny, nx = block.shape
    ky = fft.fftfreq(ny)[:, None]
    kx = fft.rfftfreq(nx)[None, :]
    out = np.empty((n, ny, nx), np.float32)
    for k in range(n):
        dy, dx = shifts[k]
        if dy == 0 and dx == 0:
            out[k] = block[k]
            continue
        spec = fft.rfft2(np.asarray(block[k], np.float32))
        # moving by −d multiplies the spectrum by exp(+2πi k·d)
        spec *= np.exp(2j * np.pi * (ky * dy + kx * dx)).astype(np.complex64)
        out[k] = fft.irfft2(spec, s=(ny, nx))
    return out


def border_taper(shape, fraction):
    """(y, x) weights rising as sin² from 0 at the borders to 1 at ``fraction`` of each side inwards."""
    def ramp(n):
        w = max(int(round(fraction * n)), 1)
        r = np.ones(n)
        edge = np.sin(0.5 * np.pi * (np.arange(w) + 0.5) / w) ** 2
        r[:w], r[n - w:] = edge, edge[::-1]
        return r

    return np.outer(ramp(shape[0]), ramp(shape[1]))


def upsample(waves, factor=2):
    """Band-limited (Fourier zero-padding) upsampling of complex images on the last two axes.

    The cropped sideband waves are sampled just at the aperture's bandwidth;
    cubic-spline shifts of such critically sampled data misplace sharp phase
    steps (measured: a 0.1–0.2 px bias in the noiseless drift of a 3 px move),
    which a 2× finer grid removes.
    """
    from scipy import fft

    w = np.asarray(waves)
    my, mx = w.shape[-2:]
    spec = fft.fftshift(fft.fft2(w, axes=(-2, -1)), axes=(-2, -1))
    py, px = (factor - 1) * my, (factor - 1) * mx
    pad = [(0, 0)] * (w.ndim - 2) + [(py // 2, py - py // 2), (px // 2, px - px // 2)]
    big = np.pad(spec, pad)
    return fft.ifft2(fft.ifftshift(big, axes=(-2, -1)), axes=(-2, -1)) * factor ** 2


def smooth_reference_phase(reference_waves, *, sigma=2.0):
    """Phase factor e^{iδ} of the distortion, from a reference series' sideband waves (N, my, mx).

    The waves are summed with their fringe phases matched and smoothed
    (Gaussian, ``sigma`` samples): dividing the object waves by a *noisy*
    reference would imprint the same noise on every frame, a fixed pattern
    that pins the registration at zero drift.
    """
    from scipy import ndimage

    rw = np.asarray(reference_waves, np.complex128)
    total = sum(w * np.exp(-1j * np.angle(np.vdot(w, rw[0]))) for w in rw)
    total = ndimage.gaussian_filter(total.real, sigma) + 1j * ndimage.gaussian_filter(total.imag, sigma)
    return np.exp(1j * np.angle(total))
