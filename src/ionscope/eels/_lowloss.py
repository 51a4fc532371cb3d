# SPDX-License-Identifier: GPL-3.0-or-later
"""Low-loss analysis: zero-loss intensity, log-ratio thickness, Fourier-log/ratio deconvolution.

Kernels here work on ``(P, n_energy)`` blocks of spectra (numpy, no I/O);
:func:`thickness` and :func:`deconvolve` map them over chunks of labelled data.

Why our own kernels: the deconvolution must also give the *noise* of what it
returns. The deconvolved spectrum is a linear filter of the recorded counts
(to first order), ``δSSD = K ⊛ δJ`` with ``K`` known per spectrum, so its
variance is ``K² ⊛ J`` (Poisson counts) and the covariance of anything fitted
to it follows exactly (:func:`fourier_log_block` returns what is needed). No
peer returns these, and without them fitted error bars on deconvolved spectra
are 3× too small (the deconvolved counts are neither Poisson nor independent).

References
----------
R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron Microscope*,
3rd ed., Springer (2011), doi:10.1007/978-1-4419-9583-4: §4.2.1 (Fourier-log),
§4.2.2 (Fourier-ratio), §5.1 (log-ratio thickness, extrapolation of the tail).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import apply_kernel
from ..errors import DataValidationError
from ..io import accepts_data
from . import _common

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


# --------------------------------------------------------------------------- kernels (numpy)

def _smooth(J, width=5):
    """Running mean along the last axis (edges by reflection) to find minima through noise."""
    pad = width // 2
    Jp = np.pad(J, [(0, 0)] * (J.ndim - 1) + [(pad, pad)], mode="reflect")
    c = np.cumsum(Jp, axis=-1, dtype=float)
    c = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c], axis=-1)
    return (c[..., width:] - c[..., :-width]) / width


def zlp_cut(J, e, *, search_ev=5.0, max_cut_ev=15.0, threshold=None):
    """(peak index, cut index) per spectrum: the zero-loss peak ends at the first minimum above it.

    The peak is the largest channel with ``|E| < search_ev``; the cut is the
    first minimum of the smoothed spectrum at least one FWHM above the peak
    (Egerton §5.1: the zero-loss intensity is integrated up to that minimum).
    With ``threshold`` (eV) the cut is instead the last channel below that
    energy for every spectrum (eXSpy's ``threshold`` convention).
    """
    near = np.flatnonzero(np.abs(e) < search_ev)
    if near.size == 0:
        raise DataValidationError(
            f"the energy axis {e[0]:g}–{e[-1]:g} eV holds no zero-loss peak (expected channels near 0 eV)")
    peak = near[0] + np.argmax(J[:, near], axis=1)
    if threshold is not None:
        # channels whose centre lies below the threshold (nearest-channel rounding, as eXSpy's isig[:threshold])
        last = int(round((float(threshold) - e[0]) / float(e[1] - e[0]))) - 1
        return peak, np.full(J.shape[0], min(max(last, 0), e.size - 1))
    sm = _smooth(J, 5)
    step = float(e[1] - e[0])
    n = e.size
    lim = min(n - 2, int(near[-1] + max_cut_ev / step))
    idx = np.arange(n)
    half = J[np.arange(J.shape[0]), peak] / 2.0
    # first channel above the peak that has fallen below half maximum: one FWHM/2 above the peak
    below = (J < half[:, None]) & (idx[None] > peak[:, None])
    start = np.where(below.any(axis=1), np.argmax(below, axis=1), peak + 1)
    rising = np.zeros_like(J, dtype=bool)
    rising[:, :-1] = sm[:, 1:] > sm[:, :-1]
    ok = rising & (idx[None] >= (start + (start - peak))[:, None]) & (idx[None] <= lim)
    cut = np.where(ok.any(axis=1), np.argmax(ok, axis=1), np.minimum(lim, start + 3 * (start - peak)))
    return peak, cut


def _tail_windows(J, e, fit_ev):
    step = float(e[1] - e[0])
    m = max(8, int(round(fit_ev / step)))
    m = min(m, e.size // 4)
    halves = m // 2
    a1 = np.clip(J[:, -m:-halves].sum(axis=1), 1e-12, None)
    a2 = np.clip(J[:, -halves:].sum(axis=1), 1e-12, None)
    emid1 = np.sqrt(e[-m] * e[-halves - 1])
    emid2 = np.sqrt(e[-halves] * e[-1])
    return a1, a2, emid1, emid2, halves


def _two_area(a1, a2, emid1, emid2, halves):
    # two-area estimate (Egerton §4.4.2, discrete form): robust at low counts
    r = np.clip(np.log(a1 / a2) / np.log(emid2 / emid1), 1.5, 7.0)
    return a2 / halves * emid2**r, r


def powerlaw_tail(J, e, *, fit_ev):
    """(A, r) of ``A·E^−r`` (counts per channel) fitted by two areas to the last ``fit_ev`` of each spectrum."""
    a1, a2, emid1, emid2, halves = _tail_windows(J, e, fit_ev)
    return _two_area(a1, a2, emid1, emid2, halves)


def tail_beyond(J, e, *, fit_ev):
    """Counts beyond the last channel (power law to infinity) and their Poisson variance."""
    step = float(e[1] - e[0])
    a1, a2, emid1, emid2, halves = _tail_windows(J, e, fit_ev)
    e_end = e[-1] + 0.5 * step

    def tail(b1, b2):
        A, r = _two_area(b1, b2, emid1, emid2, halves)
        return A * e_end ** (1.0 - r) / (r - 1.0) / step

    t = tail(a1, a2)
    # the tail is a function of the two window sums: propagate their Poisson variance
    d1 = (tail(a1 * 1.001, a2) - t) / (0.001 * a1)
    d2 = (tail(a1, a2 * 1.001) - t) / (0.001 * a2)
    return t, d1, d2, a1, a2


def zero_loss_and_total(J, e, *, extrapolate=True, tail_fit_ev=20.0, with_variance=False, threshold=None):
    """I0, I_t (tail beyond the range added), the tail, cut indices — per spectrum.

    With ``with_variance`` also the Poisson variance of ``ln(I_t/I0)``
    (linearised; the tail's dependence on the counts it is fitted to included).
    """
    peak, cut = zlp_cut(J, e, threshold=threshold)
    idx = np.arange(e.size)
    i0 = np.where(idx[None] <= cut[:, None], J, 0.0).sum(axis=1)
    total = J.sum(axis=1)
    tail = np.zeros_like(total)
    d1 = d2 = a1 = a2 = np.zeros_like(total)
    if extrapolate:
        tail, d1, d2, a1, a2 = tail_beyond(J, e, fit_ev=tail_fit_ev)
    it = total + tail
    if not with_variance:
        return i0, it, tail, peak, cut
    rest = np.clip(total - i0 - a1 - a2, 0.0, None)
    var = (i0 * (1.0 / it - 1.0 / i0) ** 2 + rest / it**2
           + a1 * ((1.0 + d1) / it) ** 2 + a2 * ((1.0 + d2) / it) ** 2)
    return i0, it, tail, peak, cut, var


def dark_offset(J, e, *, below_ev=10.0, min_channels=20):
    """Constant detector offset per spectrum: median of the channels more than ``below_ev`` below the peak.

    Nothing is scattered to negative losses beyond the zero-loss tail, so counts
    there are a dark/gain residual that sits under the whole spectrum. Left in,
    it flattens the high-energy tail (a fitted power law then decays too slowly)
    and the extrapolated tail grows without bound: on a real spectrum with a
    ~30-count offset this made t/λ 20 % high. Returns 0 where the axis holds
    fewer than ``min_channels`` such channels (e.g. spectra starting at −5 eV).
    """
    near = np.flatnonzero(np.abs(e) < 5.0)
    if near.size == 0:
        return np.zeros(J.shape[0])
    peak_e = e[near[0] + np.argmax(J[:, near], axis=1)]
    if np.all(np.diff(e) > 0) and not (np.searchsorted(e, peak_e - below_ev) >= min_channels).any():
        # no spectrum has enough channels below its peak (e.g. an axis from −5 eV): skip the
        # per-channel mask (the count of channels below each peak from the sorted axis; same result)
        return np.zeros(J.shape[0])
    mask = e[None, :] < (peak_e[:, None] - below_ev)
    out = np.zeros(J.shape[0])
    enough = mask.sum(axis=1) >= min_channels
    for i in np.flatnonzero(enough):
        out[i] = np.median(J[i, mask[i]])
    return out


def _next_pow2(n):
    return 1 << int(np.ceil(np.log2(n)))


def extend(J, e, *, n_fft, tail_fit_ev=20.0):
    """Spectra padded to ``n_fft`` channels: a power-law tail beyond the range, tapered to 0 (Egerton §4.2.1)."""
    P, n = J.shape
    step = float(e[1] - e[0])
    out = np.zeros((P, n_fft))
    out[:, :n] = J
    extra = n_fft - n
    if extra > 0:
        A, r = powerlaw_tail(J, e, fit_ev=tail_fit_ev)
        e_ext = e[-1] + step * np.arange(1, extra + 1)
        taper = np.ones(extra)
        k = extra // 2
        # cosine taper over the second half of the extension: continuous, no wrap-around step
        taper[k:] = 0.5 * (1 + np.cos(np.pi * np.arange(extra - k) / max(1, extra - k)))
        out[:, n:] = A[:, None] * e_ext[None] ** (-r[:, None]) * taper
    return out


def gaussian_ft(nu, fwhm):
    """Fourier transform of a unit-area Gaussian of the given FWHM (eV) at frequencies ``nu`` (1/eV)."""
    sigma = fwhm * _FWHM_TO_SIGMA
    return np.exp(-2.0 * (np.pi * sigma * nu) ** 2)


def fourier_log_block(J, e, *, out_energy_index, resolution_fwhm, variance=True, tail_fit_ev=20.0,
                      pad_factor=2, return_filters=False, var_scale=None, zlp_threshold=None):
    """Fourier-log deconvolution of a block of spectra that hold their zero-loss peak.

    Returns a dict with ``ssd`` (P, m) single-scattering counts per channel at
    the energies ``e[out_energy_index]`` (losses measured from each spectrum's
    own zero-loss peak, so drift and de-scan are removed), ``var`` (their
    variance from the Poisson noise of ``J``), ``i0``, ``thickness``; with
    ``return_filters`` the per-spectrum transfer functions needed to
    propagate the covariance of a fit (see :func:`sandwich_variance`).
    ``var_scale`` (n,) multiplies the Poisson variance per channel (spliced
    dual-EELS spectra: the low-loss channels were scaled up by 1/exposure).
    """
    J = np.asarray(J, float)
    # a detector offset under the whole spectrum would enter the log as if it were scattering
    # (0 where the axis holds no channels far below the zero-loss peak, e.g. from −5 eV)
    J = J - dark_offset(J, e)[:, None]
    P, n = J.shape
    step = float(e[1] - e[0])
    n_fft = _next_pow2(pad_factor * n)
    i0, total, tail, peak, cut = zero_loss_and_total(J, e, tail_fit_ev=tail_fit_ev, threshold=zlp_threshold)
    Jx = extend(J, e, n_fft=n_fft, tail_fit_ev=tail_fit_ev)
    idx = np.arange(n_fft)
    zmask = idx[None] <= cut[:, None]
    zx = np.where(zmask, Jx, 0.0)
    nu = np.fft.rfftfreq(n_fft, d=step)
    g = gaussian_ft(nu, resolution_fwhm)
    # beyond the frequency where the reconvolution Gaussian is < 1e-18 nothing survives: work only
    # below it (the inverse transforms zero-pad), which cuts the elementwise work 2-4×
    kc = max(8, int(np.count_nonzero(g > 1e-18)))
    nu, g = nu[:kc], g[:kc]
    jf = np.fft.rfft(Jx, axis=1)[:, :kc]
    zf = np.fft.rfft(zx, axis=1)[:, :kc]
    i0f = zf[:, :1].real
    # a transform can vanish at a frequency by chance (integer counts); the Gaussian g is
    # negligible wherever |z| is that small, so a floor far below the noise changes nothing else
    tiny = 1e-12 * np.abs(i0f)
    zf = np.where(np.abs(zf) > tiny, zf, tiny)
    jf = np.where(np.abs(jf) > tiny, jf, tiny)
    ratio = jf / zf
    s = np.log(ratio)
    # losses: SSD index k ↔ k·Δ. The recorded axis starts at e[0] = m0·Δ + f·Δ
    m0 = int(np.floor(e[0] / step + 1e-9))
    f = e[0] / step - m0
    phase = np.exp(2j * np.pi * f * step * nu)
    ssd_ft = i0f * g * s * phase
    grid_idx = (m0 + np.asarray(out_energy_index)) % n_fft
    ssd = np.fft.irfft(ssd_ft, n=n_fft, axis=1)[:, grid_idx]
    out = {"ssd": ssd, "i0": i0, "thickness": np.log(total / i0), "cut": cut, "peak": peak, "n_fft": n_fft,
           "grid_idx": grid_idx}
    if variance or return_filters:
        # δSSD = I0·g·(δj/j − δz/z): channels outside the zero-loss peak enter through 1/j only
        h = i0f * g * phase / jf
        hz = h - i0f * g * phase / zf
        var_j = np.zeros((P, n_fft))
        var_j[:, :n] = np.clip(J, 0.0, None)  # Poisson: variance = expected counts ≈ counts
        if var_scale is not None:
            var_j[:, :n] *= var_scale
        vz = np.where(zmask, var_j, 0.0)
        vn = var_j - vz
        if variance:
            k2 = np.fft.irfft(h, n=n_fft, axis=1) ** 2
            kz2 = np.fft.irfft(hz, n=n_fft, axis=1) ** 2
            var = np.fft.irfft(np.fft.rfft(k2, axis=1) * np.fft.rfft(vn, axis=1)
                               + np.fft.rfft(kz2, axis=1) * np.fft.rfft(vz, axis=1), n=n_fft, axis=1)
            out["var"] = np.clip(var[:, grid_idx], 0.0, None)
        if return_filters:
            out.update(h=h, hz=hz, vn=vn, vz=vz)
    return out


def sandwich_variance(rows, filters, grid_idx, n_fft):
    """Variance of linear functionals ``rows @ SSD`` (rows: (P, p, m)) propagated to the raw counts."""
    P, p, m = rows.shape
    full = np.zeros((P, p, n_fft))
    full[:, :, grid_idx] = rows
    kc = filters["h"].shape[1]
    af = np.fft.rfft(full, axis=2)[:, :, :kc]
    var = np.zeros((P, p))
    for key_h, key_v in (("h", "vn"), ("hz", "vz")):
        u = np.fft.irfft(af * np.conj(filters[key_h])[:, None, :], n=n_fft, axis=2)
        var += np.einsum("pkn,pn->pk", u**2, filters[key_v])
    return var


def fourier_ratio_block(C, e_core, L, e_low, *, resolution_fwhm, tail_fit_ev=20.0, pad_factor=2,
                        zlp_threshold=None):
    """Fourier-ratio deconvolution of core-loss spectra ``C`` by their low-loss ``L`` (same dispersion).

    ``SSD = I0·F⁻¹[g·c/l]`` (Egerton §4.2.2) with ``I0`` the zero-loss
    intensity of ``L`` and ``g`` a unit-area Gaussian; output on ``e_core``.
    Returns (ssd, i0, var) — ``var`` from the Poisson noise of ``C`` (the
    low-loss is assumed far better determined).
    """
    C = np.asarray(C, float)
    L = np.asarray(L, float)
    step = float(e_low[1] - e_low[0])
    n_fft = _next_pow2(pad_factor * (C.shape[1] + L.shape[1]))
    i0, _, _, _, _ = zero_loss_and_total(L, e_low, extrapolate=False, threshold=zlp_threshold)
    Lx = extend(L, e_low, n_fft=n_fft, tail_fit_ev=tail_fit_ev)
    Cx = extend(C, e_core, n_fft=n_fft, tail_fit_ev=tail_fit_ev)
    nu = np.fft.rfftfreq(n_fft, d=step)
    lf = np.fft.rfft(Lx, axis=1)
    g = gaussian_ft(nu, resolution_fwhm)
    # output channel i of the core axis: C = L ⊛ X with L's channel 0 at e_low[0], so
    # X[k] sits at e_core[0] − e_low[0] + kΔ; loss e_core[i] ↔ k = i + e_low[0]/Δ
    shift = e_low[0] / step
    k0 = int(np.floor(shift + 1e-9))
    f = shift - k0
    phase = np.exp(2j * np.pi * f * step * nu)
    h = i0[:, None] * g * phase / lf
    ssd_full = np.fft.irfft(np.fft.rfft(Cx, axis=1) * h, n=n_fft, axis=1)
    grid = (k0 + np.arange(C.shape[1])) % n_fft
    var_c = np.zeros((C.shape[0], n_fft))
    var_c[:, :C.shape[1]] = np.clip(C, 0.0, None)
    k2 = np.fft.irfft(h, n=n_fft, axis=1) ** 2
    var = np.fft.irfft(np.fft.rfft(k2, axis=1) * np.fft.rfft(var_c, axis=1), n=n_fft, axis=1)
    return ssd_full[:, grid], i0, np.clip(var[:, grid], 0.0, None)


def measured_fwhm(J, e):
    """FWHM (eV) of each spectrum's zero-loss peak, with linear interpolation at half maximum."""
    P = J.shape[0]
    peak, _ = zlp_cut(J, e)
    rows = np.arange(P)
    half = J[rows, peak] / 2.0
    idx = np.arange(e.size)
    above = J >= half[:, None]
    left_ok = ~above & (idx[None] < peak[:, None])
    right_ok = ~above & (idx[None] > peak[:, None])
    lft = np.where(left_ok.any(1), e.size - 1 - np.argmax(left_ok[:, ::-1], axis=1), 0)
    rgt = np.where(right_ok.any(1), np.argmax(right_ok, axis=1), e.size - 1)

    def cross(i_out, i_in):
        y0, y1 = J[rows, i_out], J[rows, i_in]
        frac = (half - y0) / np.where(y1 != y0, y1 - y0, 1.0)
        return e[i_out] + frac * (e[i_in] - e[i_out])

    return cross(rgt, np.maximum(rgt - 1, 0)) - cross(lft, np.minimum(lft + 1, e.size - 1))


# --------------------------------------------------------------------------- labelled layer

def _thickness_kernel(spectra, *, energy, extrapolate, tail_fit_ev, zlp_threshold=None, offset="auto"):
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    out = np.full(J.shape[:1] + (2,), np.nan)
    ok = np.isfinite(J).all(axis=1) & (J.sum(axis=1) > 0)
    if ok.any():
        Jok = J[ok]
        if isinstance(offset, str):
            Jok = Jok - dark_offset(Jok, energy)[:, None]
        elif offset:
            Jok = Jok - float(offset)
        i0, total, _, _, _, var = zero_loss_and_total(Jok, energy, extrapolate=extrapolate,
                                                      tail_fit_ev=tail_fit_ev, with_variance=True,
                                                      threshold=zlp_threshold)
        t = np.log(total / i0)
        out[ok, 0] = t
        out[ok, 1] = np.sqrt(var)
    return out.reshape(lead + (2,))


@accepts_data("si", "low_loss")
def thickness(si: Any, *, low_loss: Any = None, energy: Any = None, extrapolate: bool = True,
              tail_fit_ev: float = 20.0, zlp_threshold: float | None = None, dark_offset: Any = "auto",
              implausible: str = "raise"):
    """Relative thickness t/λ by the log-ratio method, per spectrum, with its σ.

    ``t/λ = ln(I_t/I0)``: ``I0`` is the zero-loss intensity (integrated up to
    the first minimum above the zero-loss peak), ``I_t`` the total intensity
    *including* the tail beyond the recorded range, extrapolated as a power law
    fitted to the last ``tail_fit_ev`` of the spectrum (leaving it out makes
    t/λ several % low). The extrapolation assumes the spectrum's end is past
    the multiple-plasmon region: record the low loss to ≥ 100 eV where t/λ
    approaches 1 (measured on simulated LiCoO2-like spectra at t/λ = 1: a range
    ending at 75 eV reads +0.05…0.08 high, at 100 eV +0.006, at 150 eV +0.0005).

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectra holding their zero-loss peak (an energy axis through 0 eV);
        ignored when ``low_loss`` is given.
    low_loss : xarray.DataArray, optional
        A separate low-loss acquisition (dual EELS) to measure instead.
    energy : array_like, optional
        Energy axis (eV) for plain arrays.
    extrapolate : bool
        Add the power-law tail beyond the last channel to ``I_t``.
    tail_fit_ev : float
        Width (eV) of the end window the tail is fitted to.
    zlp_threshold : float, optional
        Integrate ``I0`` from the start of the axis up to this energy (eV)
        instead of up to the first minimum above the peak. With
        ``extrapolate=False, dark_offset=0`` and the threshold eXSpy finds
        (``estimate_elastic_scattering_threshold``) this reproduces eXSpy's
        ``estimate_thickness(threshold=...)``.
    dark_offset : "auto" or float
        Constant detector offset subtracted from every channel before
        integrating: ``"auto"`` measures it per spectrum as the median of the
        channels more than 10 eV below the zero-loss peak (0 when the axis
        holds fewer than 20 of them); a number subtracts that; 0 subtracts
        nothing. An offset left in flattens the high-energy tail and makes the
        extrapolated tail, hence t/λ, far too large.
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`,
        applied to the counts as given, before ``dark_offset`` is subtracted):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN t/λ at those pixels and a warning. Such a spectrum used to give a
        t/λ from the corrupt channel, or NaN without a word.

    Returns
    -------
    xarray.DataArray
        ``thickness`` (t/λ) over the leading dims, with a coordinate
        ``thickness_std`` (Poisson σ of the log-ratio, including the noise of
        the extrapolated tail; not the systematic error of the power-law
        model) and attrs ``method``, ``extrapolated``.

    Raises
    ------
    DataValidationError
        No zero-loss peak on the energy axis; bad options.

    References
    ----------
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §5.1,
    doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import plural_scattering, valence_loss
    >>> e = np.arange(-5.0, 150.0, 0.1)
    >>> j = plural_scattering(e, i0=np.array([1e6]), components=[(np.array([0.6]), valence_loss, None)])
    >>> t = thickness(j, energy=e)
    >>> abs(float(t[0]) - 0.6) < 0.01
    True
    """
    from . import _plausible

    src = low_loss if low_loss is not None else si
    label = "low_loss" if low_loss is not None else "si"
    da = _common.spectra(src, energy=energy, name=label)
    # raw counts: a corrupt channel would move I_t (or make the sum ≤ 0: NaN without a word)
    da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(src, label))
    e = np.asarray(da.coords["energy"].values, float)
    _check_equal_steps(e, "energy")
    if not (e[0] < 0 < e[-1]):
        raise DataValidationError(
            f"{'low_loss' if low_loss is not None else 'si'}: the energy axis {e[0]:g}–{e[-1]:g} eV holds no "
            "zero-loss peak; thickness needs spectra recorded through 0 eV (or pass low_loss=)")
    tail_fit_ev = _positive(tail_fit_ev, "tail_fit_ev")
    zlp_threshold = _threshold(zlp_threshold, e)
    if isinstance(dark_offset, str):
        if dark_offset != "auto":
            raise DataValidationError(f"dark_offset: expected 'auto' or a number, got {dark_offset!r}")
    else:
        try:
            dark_offset = float(dark_offset)
        except (TypeError, ValueError):
            raise DataValidationError(f"dark_offset: expected 'auto' or a number, got {dark_offset!r}") from None
        if not np.isfinite(dark_offset):
            raise DataValidationError(f"dark_offset: expected a finite number, got {dark_offset!r}")
    res = apply_kernel(_thickness_kernel, da, input_core_dims=[["energy"]], output_core_dims=[["stat"]],
                       output_sizes={"stat": 2}, output_dtypes=[np.float64],
                       kwargs=dict(energy=e, extrapolate=bool(extrapolate), tail_fit_ev=tail_fit_ev,
                                   zlp_threshold=zlp_threshold, offset=dark_offset))
    t = res.isel(stat=0, drop=True).rename("thickness")
    t = t.assign_coords(thickness_std=res.isel(stat=1, drop=True))
    t.attrs = {"long_name": "t/λ (log-ratio)", "units": "1", "method": "log-ratio",
               "extrapolated": int(bool(extrapolate)), "dark_offset": str(dark_offset)}
    if zlp_threshold is not None:
        t.attrs["zlp_threshold_ev"] = zlp_threshold
    return t


def _check_equal_steps(e, name):
    if e.size < 16:
        raise DataValidationError(f"{name}: {e.size} channels; at least 16 are needed")
    d = np.diff(e)
    if not np.allclose(d, d[0], rtol=1e-4, atol=0):
        raise DataValidationError(f"{name}: channels must be equally spaced for Fourier deconvolution")


def _threshold(v, e):
    if v is None:
        return None
    f = _positive(v, "zlp_threshold")
    if not (e[0] < f < e[-1]):
        raise DataValidationError(f"zlp_threshold: {f:g} eV lies outside the energy axis {e[0]:g}–{e[-1]:g} eV")
    return f


def _positive(v, name):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name}: expected a number, got {v!r}") from None
    if not np.isfinite(f) or f <= 0:
        raise DataValidationError(f"{name}: expected a finite number > 0, got {v!r}")
    return f


def _resolution(J, e, resolution_fwhm):
    if resolution_fwhm is None:
        fw = measured_fwhm(J, e)
        fw = fw[np.isfinite(fw)]
        if fw.size == 0:
            raise DataValidationError("could not measure the zero-loss peak width; pass resolution_fwhm=")
        return float(np.median(fw))
    return _positive(resolution_fwhm, "resolution_fwhm")


def _deconvolve_kernel(spectra, *, energy, out_index, resolution_fwhm, tail_fit_ev, zlp_threshold=None):
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    m = out_index.size
    out = np.full((J.shape[0], m, 2), np.nan)
    extra = np.full((J.shape[0], 2), np.nan)
    ok = np.isfinite(J).all(axis=1) & (J.sum(axis=1) > 0)
    for s in range(0, J.shape[0], 256):
        sel = np.flatnonzero(ok[s:s + 256]) + s
        if sel.size == 0:
            continue
        r = fourier_log_block(J[sel], energy, out_energy_index=out_index, resolution_fwhm=resolution_fwhm,
                              tail_fit_ev=tail_fit_ev, zlp_threshold=zlp_threshold)
        out[sel, :, 0] = r["ssd"]
        out[sel, :, 1] = r["var"]
        extra[sel, 0] = r["i0"]
        extra[sel, 1] = r["thickness"]
    # pack (ssd, var) and (i0, thickness) into one array: ssd/var over energy, the rest in 2 more channels
    packed = np.concatenate([out[:, :, 0], out[:, :, 1], extra], axis=1)
    return packed.reshape(lead + (2 * m + 2,))


def _ratio_kernel(core, low, *, e_core, e_low, resolution_fwhm, tail_fit_ev, zlp_threshold=None):
    lead = core.shape[:-1]
    C = core.reshape(-1, core.shape[-1]).astype(float)
    L = low.reshape(-1, low.shape[-1]).astype(float)
    m = C.shape[1]
    out = np.full((C.shape[0], 2 * m + 2), np.nan)
    ok = np.isfinite(C).all(1) & np.isfinite(L).all(1) & (L.sum(1) > 0)
    if ok.any():
        ssd, i0, var = fourier_ratio_block(C[ok], e_core, L[ok], e_low, resolution_fwhm=resolution_fwhm,
                                           tail_fit_ev=tail_fit_ev, zlp_threshold=zlp_threshold)
        _, total, _, _, _ = zero_loss_and_total(L[ok], e_low, tail_fit_ev=tail_fit_ev, threshold=zlp_threshold)
        out[ok, :m] = ssd
        out[ok, m:2 * m] = var
        out[ok, 2 * m] = i0
        out[ok, 2 * m + 1] = np.log(total / i0)
    return out.reshape(lead + (2 * m + 2,))


@accepts_data("si", "low_loss")
def deconvolve(si: Any, *, method: str = "fourier-log", low_loss: Any = None, energy: Any = None,
               resolution_fwhm: float | None = None, tail_fit_ev: float = 20.0, energy_range=None,
               zlp_threshold: float | None = None, implausible: str = "raise"):
    """Single-scattering distribution ``I0·S(E)`` in counts, with its propagated variance.

    ``"fourier-log"`` (Egerton §4.2.1): each spectrum must hold its zero-loss
    peak; ``SSD = I0·F⁻¹[g·ln(j/z)]`` with ``z`` the zero-loss peak cut at its
    first minimum, the tail beyond the range extrapolated as a power law and
    tapered, and ``g`` a unit-area Gaussian of FWHM ``resolution_fwhm``
    (default: the measured zero-loss FWHM) that keeps the noise bounded.
    Losses are measured from each spectrum's own zero-loss peak, so energy
    drift and de-scan are removed on the way. ``"fourier-ratio"`` (§4.2.2,
    dual EELS): the core-loss ``si`` divided by its separately recorded
    ``low_loss`` in Fourier space (same dispersion; the output is on
    ``si``'s energy axis, which must be calibrated like the low loss).

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Raw counts, energy last.
    method : {"fourier-log", "fourier-ratio"}
        Deconvolution route.
    low_loss : xarray.DataArray, optional
        Low-loss spectra with the same leading dims (required for ``"fourier-ratio"``).
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.
    resolution_fwhm : float, optional
        FWHM (eV) of the Gaussian the result is reconvolved with.
    tail_fit_ev : float
        End window (eV) for the power-law extrapolation.
    energy_range : (float, float), optional
        Return only this part of the energy axis (eV); default all of it.
    zlp_threshold : float, optional
        End (eV) of the zero-loss integration for ``I0`` (and, for
        fourier-log, of the zero-loss peak ``z``), the same for all spectra,
        instead of each spectrum's first minimum above its peak (eXSpy's
        ``threshold``). Note: eXSpy's ``fourier_ratio_deconvolution`` returns
        ``1/Δ`` times this output (its reconvolution Gaussian sums to ``1/Δ``
        over channels of width Δ eV), i.e. counts per eV, not per channel.
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN results at those pixels and a warning.

    Returns
    -------
    xarray.Dataset
        ``ssd`` (counts per channel in single scattering, same dims as ``si``),
        ``ssd_var`` (its variance from the Poisson noise of the input; channels
        are correlated, see :func:`ionscope.eels.mlls` for fits that account for
        it), ``zero_loss`` (I0, counts) and ``thickness`` (t/λ) over the leading
        dims; attrs ``method``, ``resolution_fwhm_ev``.

    Raises
    ------
    DataValidationError
        No zero-loss peak (fourier-log), missing or mismatched ``low_loss``,
        unequal channel spacing.

    References
    ----------
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
    doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import plural_scattering, valence_loss
    >>> e = np.arange(-5.0, 200.0, 0.1)
    >>> j = plural_scattering(e, i0=np.array([1e6]), components=[(np.array([0.8]), valence_loss, None)])
    >>> d = deconvolve(j, energy=e)
    >>> round(float(d.ssd[0].sum() / d.zero_loss[0]), 2)   # single scattering per zero-loss electron
    0.8
    >>> round(float(d.thickness[0]), 2)                     # log-ratio, tail beyond 200 eV included
    0.8
    """
    import xarray as xr

    if method not in ("fourier-log", "fourier-ratio"):
        raise DataValidationError(f"method: expected 'fourier-log' or 'fourier-ratio', got {method!r}")
    from . import _plausible

    da = _common.spectra(si, energy=energy)
    da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))  # raw counts
    e = np.asarray(da.coords["energy"].values, float)
    _check_equal_steps(e, "si energy")
    tail_fit_ev = _positive(tail_fit_ev, "tail_fit_ev")
    out_index = (np.arange(e.size) if energy_range is None
                 else _common.window(e, energy_range, name="energy_range", min_channels=2))
    if method == "fourier-log":
        if low_loss is not None:
            raise DataValidationError("low_loss= is for method='fourier-ratio'; fourier-log uses si's own "
                                      "zero-loss peak")
        if not (e[0] < 0 < e[-1]):
            raise DataValidationError(
                f"si: the energy axis {e[0]:g}–{e[-1]:g} eV holds no zero-loss peak; fourier-log needs spectra "
                "recorded through 0 eV (use method='fourier-ratio' with low_loss= for dual EELS)")
        # the probe (a read of 64 spectra) only when the width is to be measured: a lazy input stays unread
        fw = _resolution(None if resolution_fwhm is not None else _probe(da), e, resolution_fwhm)
        packed = apply_kernel(_deconvolve_kernel, da, input_core_dims=[["energy"]],
                              output_core_dims=[["packed"]], output_sizes={"packed": 2 * out_index.size + 2},
                              output_dtypes=[np.float64],
                              kwargs=dict(energy=e, out_index=out_index, resolution_fwhm=fw,
                                          tail_fit_ev=tail_fit_ev, zlp_threshold=_threshold(zlp_threshold, e)))
    else:
        if low_loss is None:
            raise DataValidationError("method='fourier-ratio' needs low_loss= (the low-loss spectra of the same "
                                      "pixels, dual EELS)")
        ll = _plausible.check_counts(_common.spectra(low_loss, name="low_loss"), implausible=implausible,
                                 name=_plausible.input_name(low_loss, "low_loss"))
        e_low = np.asarray(ll.coords["energy"].values, float)
        _check_equal_steps(e_low, "low_loss energy")
        if not np.isclose(e_low[1] - e_low[0], e[1] - e[0], rtol=1e-4):
            raise DataValidationError(
                f"low_loss: dispersion {e_low[1] - e_low[0]:g} eV differs from si's {e[1] - e[0]:g} eV; "
                "resample one of them first")
        if not (e_low[0] < 0 < e_low[-1]):
            raise DataValidationError("low_loss: its energy axis holds no zero-loss peak")
        if tuple(ll.shape[:-1]) != tuple(da.shape[:-1]):
            raise DataValidationError(
                f"low_loss: leading shape {tuple(ll.shape[:-1])} differs from si's {tuple(da.shape[:-1])}")
        ll = xr.DataArray(ll.data, dims=tuple(da.dims[:-1]) + ("energy_low",),
                          coords={k: v for k, v in da.coords.items() if "energy" not in v.dims})
        fw = _resolution(_probe(ll), e_low, resolution_fwhm)
        packed = apply_kernel(_ratio_kernel, da, ll, input_core_dims=[["energy"], ["energy_low"]],
                              output_core_dims=[["packed"]], output_sizes={"packed": 2 * e.size + 2},
                              output_dtypes=[np.float64],
                              kwargs=dict(e_core=e, e_low=e_low, resolution_fwhm=fw, tail_fit_ev=tail_fit_ev,
                                          zlp_threshold=_threshold(zlp_threshold, e_low)))
        out_index = np.arange(e.size)
    m = out_index.size
    e_out = e[out_index]
    coords = {k: v for k, v in da.coords.items() if "energy" not in v.dims}
    coords["energy"] = ("energy", e_out, {"units": "eV"})
    lead = da.dims[:-1]
    pk = packed.data
    ds = xr.Dataset(
        {"ssd": (lead + ("energy",), pk[..., :m], {"long_name": "single-scattering distribution I0·S(E)",
                                                     "units": "counts"}),
         "ssd_var": (lead + ("energy",), pk[..., m:2 * m], {"long_name": "variance of ssd (Poisson, propagated)",
                                                             "units": "counts²"}),
         "zero_loss": (lead, pk[..., 2 * m], {"long_name": "zero-loss intensity I0", "units": "counts"}),
         "thickness": (lead, pk[..., 2 * m + 1], {"long_name": "t/λ (log-ratio)", "units": "1"})},
        coords=coords,
        attrs={"method": method, "resolution_fwhm_ev": fw, "tail_fit_ev": tail_fit_ev,
               "units": "counts (single scattering)"})
    return ds


def _probe(da, n=64):
    """A few spectra (numpy) to measure the zero-loss width from, without loading a lazy array."""
    flat = da.data.reshape(-1, da.shape[-1])
    step = max(1, flat.shape[0] // n)
    sample = flat[::step][:n]
    sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample, float)
    good = np.isfinite(sample).all(axis=1) & (sample.sum(axis=1) > 0)
    if not good.any():
        raise DataValidationError("no finite, non-empty spectrum to measure the zero-loss peak from")
    return sample[good]
