# SPDX-License-Identifier: GPL-3.0-or-later
"""Linear functionals of a fit to Fourier-log-deconvolved spectra, with their exact covariance.

Shared machinery of the routes that work on the single-scattering distribution
(SSD) of raw spectra recorded with their zero-loss peak: SA/SB through plural
scattering (:func:`ionscope.eels.sasb` with ``plural_scattering=``) and the NMF
route to x (:func:`ionscope.eels.nmf_li`).

Per spectrum: the SSD ``y`` over a set of channels comes from
:func:`~ionscope.eels._lowloss.fourier_log_block`; a generalised least-squares
fit ``β = A·y`` with ``A = (XᵀWX)⁻¹XᵀW`` (``W`` the inverse propagated variance,
zero outside the fit channels) gives the coefficients of a design ``X``. Every
quantity returned is a linear functional ``q = (L1 + L2·A)·y`` — e.g. a window
sum of the SSD minus the fitted background under it (SA/SB), or a combination
of fitted component weights (NMF → Li amount). Because ``y`` is itself a linear
filter of the raw counts, the covariance of ``q`` is the exact (linearised)
sandwich through the deconvolution (:func:`~ionscope.eels._lowloss.sandwich_variance`),
which is what makes the σ of these routes honest: the deconvolved counts are
neither Poisson nor independent between channels.

Why our own kernel: no peer propagates the counts' noise through Fourier-log
deconvolution into fitted quantities (see :mod:`ionscope.eels._lowloss`).

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

import numpy as np

from . import _lowloss

_BATCH = 256


def deconvolved_batches(J, energy, *, channels, resolution_fwhm, tail_fit_ev, var_scale, batch=_BATCH):
    """Fourier-log deconvolution of the usable rows of ``J`` (finite, positive sum), ``batch`` rows at a time.

    Yields ``(sel, r, var)``: the rows' indices, :func:`._lowloss.fourier_log_block`'s result at ``channels``
    with its filters (for :func:`._lowloss.sandwich_variance`), and the variance that weights a fit
    (:func:`weight_variance`: the propagated variance smoothed along energy and floored). Rows left out
    stay for the caller to mark (NaN). Shared by the reference kernel, the SSD fits and the NMF projection.
    """
    ok = np.isfinite(J).all(axis=1) & (J.sum(axis=1) > 0)
    for s in range(0, J.shape[0], batch):
        sel = np.flatnonzero(ok[s:s + batch]) + s
        if sel.size == 0:
            continue
        r = _lowloss.fourier_log_block(J[sel], energy, out_energy_index=channels, resolution_fwhm=resolution_fwhm,
                                       tail_fit_ev=tail_fit_ev, return_filters=True, var_scale=var_scale)
        yield sel, r, weight_variance(r["var"], channels, float(energy[1] - energy[0]))


#: width (eV, Gaussian σ) over which the propagated variance is smoothed before it weights a fit
WEIGHT_SMOOTH_EV = 3.0


def weight_variance(var, channels, step, *, smooth_ev=None):
    """The variance that weights a GLS fit of deconvolved counts: smoothed along energy, then floored.

    The propagated variance is computed from the observed counts, whose noise it shares with the
    deconvolved counts ``y`` within the resolution: a channel that fluctuated low gets a larger weight,
    and the fitted background comes out low by ~var/y per channel (a Neyman-χ² bias ∝ 1/dose). Under
    SA/SB's windows the edges are ~10 % of that background, so it grew to +15 % in SA and SB and −12 % in
    Li/Co at 100 counts per 0.1 eV (issue 19, ``benchmarks/bench_dose_bias.py``). The expected variance
    varies over eV, the noise over the resolution: averaging over ``smooth_ev`` (separately over each
    contiguous run of ``channels``) decorrelates the weights from the noise (measured: as good as the
    variance of the noise-free spectra) and moves noise-free results by < 1e-4. Then floored at 1e-6 of
    each spectrum's median, so that no channel can dominate. Shared by every SSD fit (SA/SB, NMF, MLLS).
    ``smooth_ev`` None: :data:`WEIGHT_SMOOTH_EV` (0 gives the raw variance: the benchmark's "before").
    """
    var = np.asarray(var, float)
    smooth_ev = WEIGHT_SMOOTH_EV if smooth_ev is None else smooth_ev
    sig = smooth_ev / step if smooth_ev else 0.0
    if sig > 0 and var.shape[-1] > 1:
        ch = np.asarray(channels)
        cuts = np.flatnonzero(np.diff(ch) != 1) + 1 if ch.ndim == 1 and ch.size == var.shape[-1] else []
        if len(cuts) == 0:
            var = gaussian_nearest(var, sig)  # one run (the usual window): no split, no concatenated copy
        else:
            var = np.concatenate([gaussian_nearest(v, sig) for v in np.split(var, cuts, axis=-1)], axis=-1)
    return floor_at_median(var)


def floor_at_median(var, *, rel=1e-6, eps=1e-12):
    """``np.maximum(var, rel · median(var, axis=-1) + eps)``, the median computed only for the rows it can change.

    Where a row's minimum is ≥ ``rel · max + eps`` no value lies below the floor (the median is ≤ the maximum),
    so the row is returned as it is: the same result, without the per-row median (0.03 CPU-s per 128×128 frame
    of the Li-map kernel) on the usual rows, whose variance spans far less than 10⁶. Returns a new array.
    """
    var = np.array(var, float)
    if var.size == 0:
        return var
    lo, hi = var.min(axis=-1), var.max(axis=-1)
    need = ~(lo >= rel * hi + eps)  # NaN rows too: they take np.median's path, as before
    if need.any():
        sub = var[need]
        var[need] = np.maximum(sub, rel * np.median(sub, axis=-1, keepdims=True) + eps)
    return var


def gaussian_nearest(v, sigma, *, truncate=4.0):
    """``scipy.ndimage.gaussian_filter1d(v, sigma, axis=-1, mode="nearest")`` by FFT convolution.

    The same discrete kernel (truncated at ``truncate``·σ, normalised) and the same edge padding, so the
    result equals scipy's to ~1e-14 relative (tested). Our own because at the weights' σ (30 channels, a
    241-tap kernel) the direct filter cost 0.55–0.65 CPU-s per 128×128×400 block of the Li-map kernel, the
    transform 0.15 s (measured 2026-12-07): a circular transform of at least the padded row's length
    suffices, since its wrap-around lands only in the 2r leading outputs, which are dropped. The length is
    rounded up to a fast one (``scipy.fft.next_fast_len``; the zeros beyond the padded row change nothing
    else): the Li-map window's 351 + 240 = 591 = 3·197 channels made both transforms 3× slower than 600
    (issue 20, fifth pass: 0.52 → 0.15 CPU-s per frame, BENCHMARKS.md).
    """
    import scipy.fft as sf

    v = np.asarray(v, float)
    r = int(truncate * float(sigma) + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    n = v.shape[-1]
    size = sf.next_fast_len(n + 2 * r, real=True)
    vp = np.zeros(v.shape[:-1] + (size,))
    vp[..., :r] = v[..., :1]
    vp[..., r:r + n] = v
    vp[..., r + n:n + 2 * r] = v[..., -1:]
    kernel = sf.rfft(k / k.sum(), size)
    f = sf.rfft(vp, axis=-1, workers=1)
    f *= kernel
    return sf.irfft(f, size, axis=-1, workers=1)[..., 2 * r:2 * r + n]


def n_outputs(p: int) -> int:
    """Length of the kernel's output vector for ``p`` functionals."""
    return p + p + p * (p - 1) // 2 + 3


def unpack(out: np.ndarray, p: int):
    """(values, variances, covariances of the pairs i < j, chi2, thickness, zero_loss) from the output."""
    vals = out[..., :p]
    var = out[..., p:2 * p]
    npair = p * (p - 1) // 2
    cov = out[..., 2 * p:2 * p + npair]
    rest = out[..., 2 * p + npair:]
    return vals, var, cov, rest[..., 0], rest[..., 1], rest[..., 2]


def functionals_kernel(spectra, *, energy, channels, fit_mask, X, L1, L2, resolution_fwhm, tail_fit_ev=20.0,
                       var_scale=None):
    """Array kernel: ``(…, n_energy)`` raw counts → ``(…, n_outputs(p))``.

    Parameters
    ----------
    spectra : ndarray
        Raw counts with the zero-loss peak, energy last.
    energy : ndarray
        Equally spaced energy axis (eV).
    channels : ndarray of int
        Channels (indices into ``energy``) on which the SSD is evaluated; the
        rows of ``X``, ``L1`` refer to these.
    fit_mask : ndarray of bool
        Which of ``channels`` enter the fit (the others only enter ``L1``).
    X : ndarray (m, K)
        Design of the fit.
    L1 : ndarray (p, m), L2 : ndarray (p, K)
        The functionals ``q = L1·y + L2·β``.
    """
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    p = L1.shape[0]
    K = X.shape[1]
    out = np.full((J.shape[0], n_outputs(p)), np.nan)
    pairs = [(i, j) for i in range(p) for j in range(i + 1, p)]
    n_fit = int(np.count_nonzero(fit_mask))
    for sel, r, var in deconvolved_batches(J, energy, channels=channels, resolution_fwhm=resolution_fwhm,
                                           tail_fit_ev=tail_fit_ev, var_scale=var_scale):
        y = r["ssd"]
        w = np.where(fit_mask[None, :], 1.0 / var, 0.0)
        # one matrix product each (a three-operand einsum runs as a plain loop, several times slower)
        G = (w @ (X[:, :, None] * X[:, None, :]).reshape(X.shape[0], K * K)).reshape(-1, K, K)
        G = G + 1e-12 * np.einsum("pii->pi", G)[:, :, None] * np.eye(K)
        Ginv = np.linalg.inv(G)
        A = (Ginv @ X.T) * w[:, None, :]  # β = A·y
        beta = np.einsum("pkn,pn->pk", A, y)
        rows = L1[None] + np.einsum("qk,pkn->pqn", L2, A)  # (P, p, m)
        vals = np.einsum("pqn,pn->pq", rows, y)
        extra = [rows[:, i] + rows[:, j] for i, j in pairs]
        allrows = np.concatenate([rows] + [e[:, None] for e in extra], axis=1) if extra else rows
        v = _lowloss.sandwich_variance(allrows, r, r["grid_idx"], r["n_fft"])
        resid = (y - beta @ X.T) * fit_mask[None, :]
        out[sel, :p] = vals
        out[sel, p:2 * p] = v[:, :p]
        for k, (i, j) in enumerate(pairs):
            out[sel, 2 * p + k] = 0.5 * (v[:, p + k] - v[:, i] - v[:, j])
        base = 2 * p + len(pairs)
        out[sel, base] = np.sum(w * resid**2, axis=1) / max(1, n_fit - K)
        out[sel, base + 1] = r["thickness"]
        out[sel, base + 2] = r["i0"]
    return out.reshape(lead + (out.shape[1],))


def references_blurred(references, e, ch, fwhm):
    """References on channels ``ch`` of ``e`` at the deconvolution's Gaussian resolution ``fwhm``.

    References measured on deconvolved data (``attrs["resolution_fwhm_ev"]``, e.g.
    from :func:`ionscope.eels.references_from_regions`) already have it and are
    only resampled; model references are blurred on a margin around the window so
    that the blur sees their real neighbourhood. Returns (names, (m, M), measured).
    """
    from scipy.ndimage import gaussian_filter1d

    from ..errors import CalibrationError
    from . import _common

    step = float(e[1] - e[0])
    measured = hasattr(references, "attrs") and "resolution_fwhm_ev" in references.attrs
    names, _ = _common.references(references, e[ch])
    if measured:
        return names, _common.references(references, e[ch])[1], True
    pad = int(np.ceil(3 * fwhm / step))
    lo, hi = max(0, ch[0] - pad), min(e.size, ch[-1] + 1 + pad)
    ext = np.arange(lo, hi)
    try:
        _, refs_ext = _common.references(references, e[ext])
    except CalibrationError:  # references given on the window only
        return names, _common.references(references, e[ch])[1], False
    refs_ext = np.where(e[ext][:, None] > 0, refs_ext, 0.0)
    blurred = gaussian_filter1d(refs_ext, fwhm * _lowloss._FWHM_TO_SIGMA / step, axis=0, mode="nearest")
    return names, blurred[np.searchsorted(ext, ch)], False
