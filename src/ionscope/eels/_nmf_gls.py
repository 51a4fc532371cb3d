# SPDX-License-Identifier: GPL-3.0-or-later
"""Full-covariance (correlated-noise) GLS projection of deconvolved spectra, for the NMF route to x.

Fourier-log deconvolution subtracts every order of plural scattering: the
noise of a raw channel at loss ``E`` reaches the single-scattering
distribution (SSD) at ``E`` and, through the plasmon replicas, tens of eV
away, and the reconvolution Gaussian correlates neighbouring channels. The
deconvolved counts are therefore not independent (each pair only weakly —
ρ ≈ −0.08 at 0.5 eV apart — but over the whole window). A projection weighted
only by their variance (:func:`ionscope.eels._ssdfit.functionals_kernel`) is
unbiased but not efficient: on realistic spectra at t/λ 0.4–0.9 the exact
variance of the Li functional under the generalised least-squares weight
``(C + ε·diag C)⁻¹`` (``C`` the SSD covariance over the fit window) is
0.72 / 0.83 / 0.85 / 0.87 of the variance-weighted one at ε = 10⁻³ / 10⁻² /
10⁻¹ / 1 (issue 19, fourth pass; 40 spectra of a 1000 counts/channel scene).

Computing ``C`` for every spectrum would cost a ~400×1000×400 product each.
The weight need not be exact for the estimate to stay unbiased and its σ
exact — any fixed linear estimator ``β = A·y`` has the sandwich covariance of
:func:`~ionscope.eels._lowloss.sandwich_variance`, evaluated here with every
spectrum's *own* transfer functions. So one correlation matrix ``R`` comes
from the data set's mean spectrum (the correlations are set by the zero-loss
peak and the plasmons, barely by t/λ or the count level), and a spectrum's
weight is ``D⁻¹·(R + ε·I)⁻¹·D⁻¹`` with ``D`` its own propagated standard
deviations; one matrix for all keeps the result independent of chunking.
``ε`` (relative ridge) keeps the weight away from the directions the
reconvolution Gaussian leaves almost noise-free, where a model error would
be amplified (without it the "variance" of Li fell to 0.002 of the
variance-weighted one: an artefact of those directions).

Why our own kernel: no peer propagates counting noise through Fourier-log
deconvolution, let alone its inter-channel covariance.

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2, doi:10.1007/978-1-4419-9583-4.
A. C. Aitken, Proc. R. Soc. Edinb. 55 (1936) 42 (generalised least squares).
"""
from __future__ import annotations

import numpy as np

from . import _lowloss, _ssdfit

_BATCH = 256


def ssd_covariance(filters, index, n_raw):
    """Covariance (m, m) of the SSD channels of spectrum ``index`` of a :func:`fourier_log_block` result.

    ``δSSD_i = Σ_n k(n − g_i)·δJ_n`` with ``k`` the impulse response of the
    transfer function (``h`` for channels outside the zero-loss peak, ``hz``
    inside), so ``C = U·diag(v)·Uᵀ`` summed over the two parts.
    """
    n_fft = int(filters["n_fft"])
    g = np.asarray(filters["grid_idx"])
    lag = (np.arange(n_raw)[None, :] - g[:, None]) % n_fft
    C = 0.0
    for key_h, key_v in (("h", "vn"), ("hz", "vz")):
        k = np.fft.irfft(np.conj(filters[key_h][index]), n=n_fft)
        U = k[lag]
        C = C + (U * filters[key_v][index][:n_raw]) @ U.T
    return C


def correlation_weight(mean_spectrum, energy, channels, resolution_fwhm, *, ridge=0.01, tail_fit_ev=20.0,
                       var_scale=None):
    """``(R + ε·I)⁻¹``: the inverse regularised correlation matrix of the SSD channels of ``mean_spectrum``.

    One matrix for the whole data set, from its mean raw spectrum, so that the
    result does not depend on how the data are chunked or batched. The
    correlations barely depend on t/λ: on the development data one matrix per
    256-spectrum batch, or per 4 or 16 t/λ groups of it, gave the same r(x).
    """
    r = _lowloss.fourier_log_block(np.asarray(mean_spectrum, float)[None], energy, out_energy_index=channels,
                                   resolution_fwhm=resolution_fwhm, tail_fit_ev=tail_fit_ev, return_filters=True,
                                   var_scale=var_scale)
    C = ssd_covariance(r, 0, len(energy))
    d = np.sqrt(np.maximum(np.diag(C), 1e-300))
    R = C / d[:, None] / d[None, :]
    return np.linalg.inv(R + float(ridge) * np.eye(R.shape[0]))


def functionals_kernel_fullcov(spectra, *, energy, channels, X, L2, resolution_fwhm, r_inv, tail_fit_ev=20.0,
                               var_scale=None):
    """Array kernel: ``(…, n_energy)`` raw counts → ``(…, n_outputs(p))`` like :func:`_ssdfit.functionals_kernel`.

    The functionals are ``q = L2·β`` of the coefficients ``β`` of the design
    ``X`` (m, K) fitted to each spectrum's SSD over ``channels`` with the
    weight ``D⁻¹·r_inv·D⁻¹`` (``r_inv`` from :func:`correlation_weight`, ``D``
    each spectrum's own propagated σ; see the module docstring); values, variances and
    pair covariances are exact (sandwich with each spectrum's own filters).
    ``chi2`` is the variance-weighted reduced χ² of the residual, as in the
    diagonal kernel.
    """
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    p, K = L2.shape[0], X.shape[1]
    m = len(channels)
    out = np.full((J.shape[0], _ssdfit.n_outputs(p)), np.nan)
    pairs = [(i, j) for i in range(p) for j in range(i + 1, p)]
    for sel, r, var in _ssdfit.deconvolved_batches(J, energy, channels=channels, resolution_fwhm=resolution_fwhm,
                                                   tail_fit_ev=tail_fit_ev, var_scale=var_scale,
                                                   batch=_BATCH):
        y = r["ssd"]
        dinv = 1.0 / np.sqrt(var)  # (P, m)
        Xs = dinv[:, :, None] * X[None]  # D⁻¹X per spectrum (P, m, K)
        RX = np.matmul(r_inv[None], Xs)  # R⁻¹D⁻¹X, batched BLAS (einsum would loop)
        G = np.matmul(np.transpose(Xs, (0, 2, 1)), RX)
        A = np.linalg.solve(G, np.transpose(RX * dinv[:, :, None], (0, 2, 1)))
        beta = np.einsum("pkn,pn->pk", A, y)
        rows = np.einsum("qk,pkn->pqn", L2, A)
        vals = np.einsum("pqn,pn->pq", rows, y)
        extra = [rows[:, i] + rows[:, j] for i, j in pairs]
        allrows = np.concatenate([rows] + [e[:, None] for e in extra], axis=1) if extra else rows
        v = _lowloss.sandwich_variance(allrows, r, r["grid_idx"], r["n_fft"])
        resid = y - beta @ X.T
        out[sel, :p] = vals
        out[sel, p:2 * p] = v[:, :p]
        for k, (i, j) in enumerate(pairs):
            out[sel, 2 * p + k] = 0.5 * (v[:, p + k] - v[:, i] - v[:, j])
        base = 2 * p + len(pairs)
        out[sel, base] = np.sum(resid**2 / var, axis=1) / max(1, m - K)
        out[sel, base + 1] = r["thickness"]
        out[sel, base + 2] = r["i0"]
    return out.reshape(lead + (out.shape[1],))
