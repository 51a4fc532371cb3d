# SPDX-License-Identifier: GPL-3.0-or-later
"""MLLS on spectra with plural scattering: the ``plural_scattering=`` routes of :func:`~ionscope.eels.mlls`.

``"fourier-log"``: each spectrum is deconvolved from its own zero-loss peak
(:func:`~ionscope.eels._lowloss.fourier_log_block`), then the single-scattering
counts over ``fit_range`` are fitted by generalised least squares with the
references reconvolved to the same Gaussian resolution and a linear power-law
basis for the single-scattering valence tail. Channels are weighted by the
inverse of their propagated variance, and the standard errors are the exact
(linearised) sandwich ``A·K·diag(J)·Kᵀ·Aᵀ``: the fit operator ``A`` composed with
the deconvolution filter ``K`` acting on the Poisson counts ``J``. That is what
makes ``<name>_std`` honest on deconvolved data, whose noise is neither Poisson
nor independent between channels.

``"convolve"``: the raw counts are fitted (Poisson maximum likelihood) with the
references convolved with the pixel's own measured low loss ``J(E)/I0`` below
the fit window (Verbeeck & Van Aert 2004), plus the power-law basis for the
multiply scattered valence background.

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
doi:10.1007/978-1-4419-9583-4.
J. Verbeeck, S. Van Aert, Ultramicroscopy 101 (2004) 207,
doi:10.1016/j.ultramic.2004.06.004 (model-based fits with the low loss as kernel).
"""
from __future__ import annotations

import numpy as np

from . import _lowloss, _ssdfit
from ._solve import nnls_batched

_BATCH = 256


def output_names(names, n_basis, shifted=()):
    ref = list(names)
    return (ref + [f"{n}_std" for n in ref] + ["chi2", "thickness", "zero_loss"] + [f"{n}_shift" for n in shifted]
            + [f"basis{j}" for j in range(n_basis)])


def _gauss_blur(refs_ext, step, fwhm):
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(refs_ext, fwhm * _lowloss._FWHM_TO_SIGMA / step, axis=0, mode="nearest")


def design(refs_ext, inner, basis, *, step, fwhm, blur, shift_idx=()):
    """(m, K) design: references (optionally reconvolved), their energy derivatives for the components
    allowed to shift (``w·S(E − δ) ≈ w·S − w·δ·S'``), then the background basis, on the fit window."""
    S = _gauss_blur(refs_ext, step, fwhm) if blur else refs_ext
    cols = [S[inner]]
    if len(shift_idx):
        cols.append(np.gradient(S[:, list(shift_idx)], step, axis=0)[inner])
    if basis is not None:
        cols.append(basis)
    return np.column_stack(cols)


def fourier_log_kernel(spectra, *, energy, channels, refs_ext, inner, basis, constrained, resolution_fwhm,
                       blur_refs, tail_fit_ev, var_scale=None, shift_idx=()):
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    M = refs_ext.shape[1]
    D = len(shift_idx)
    nb = 0 if basis is None else basis.shape[1]
    n_out = 2 * M + 3 + D + nb
    out = np.full((J.shape[0], n_out), np.nan)
    step = float(energy[1] - energy[0])
    X = design(refs_ext, inner, basis, step=step, fwhm=resolution_fwhm, blur=blur_refs, shift_idx=shift_idx)
    K = X.shape[1]
    cons = np.concatenate([constrained, np.zeros(D + nb, bool)])
    for sel, r, var in _ssdfit.deconvolved_batches(J, energy, channels=channels, resolution_fwhm=resolution_fwhm,
                                                   tail_fit_ev=tail_fit_ev, var_scale=var_scale, batch=_BATCH):
        y = r["ssd"]
        w = 1.0 / var
        G = np.einsum("pn,nk,nl->pkl", w, X, X)
        b = np.einsum("pn,nk,pn->pk", w, X, y)
        beta = nnls_batched(G, b, cons)
        # A = G⁻¹XᵀW: coefficients as linear functionals of the deconvolved counts
        Ginv = np.linalg.inv(G + 1e-12 * np.einsum("pii->pi", G)[:, :, None] * np.eye(K))
        A = np.einsum("pkl,nl,pn->pkn", Ginv[:, :M, :], X, w)
        vb = _lowloss.sandwich_variance(A, r, r["grid_idx"], r["n_fft"])
        resid = y - beta @ X.T
        dof = max(1, channels.size - K)
        out[sel, :M] = beta[:, :M]
        out[sel, M:2 * M] = np.sqrt(vb)
        out[sel, 2 * M] = np.sum(w * resid**2, axis=1) / dof
        out[sel, 2 * M + 1] = r["thickness"]
        out[sel, 2 * M + 2] = r["i0"]
        for j, i in enumerate(shift_idx):
            with np.errstate(divide="ignore", invalid="ignore"):
                out[sel, 2 * M + 3 + j] = -beta[:, M + j] / beta[:, i]
        out[sel, 2 * M + 3 + D:] = beta[:, M + D:]
    return out.reshape(lead + (n_out,))


def _poisson_fit(X, y, cons, n_iter, tol):
    """Batched Poisson ML (IRLS) of y (P, m) with per-pixel designs X (P, m, K): (β, μ, var(β))."""
    mu = np.maximum(y, 1.0)
    beta = None
    for _ in range(max(1, n_iter)):
        w = 1.0 / np.maximum(mu, 1.0)
        G = np.einsum("pn,pnk,pnl->pkl", w, X, X)
        b = np.einsum("pn,pnk,pn->pk", w, X, y)
        new = nnls_batched(G, b, cons)
        mu = np.einsum("pnk,pk->pn", X, new)
        done = beta is not None and np.max(np.abs(new - beta) / (np.abs(beta) + 1e-9)) < tol
        beta = new
        if done:
            break
    w = 1.0 / np.maximum(mu, 1.0)
    G = np.einsum("pn,pnk,pnl->pkl", w, X, X)
    cov_diag = np.einsum("pii->pi", np.linalg.inv(G + 1e-12 * np.einsum("pii->pi", G)[:, :, None]
                                                  * np.eye(G.shape[-1])))
    return beta, mu, np.clip(cov_diag, 0.0, None)


def _store(out, sel, M, beta, mu, var, y, thickness, i0, n_par):
    dof = max(1, y.shape[1] - n_par)
    out[sel, :M] = beta[:, :M]
    out[sel, M:2 * M] = np.sqrt(var[:, :M])
    out[sel, 2 * M] = np.sum((y - mu) ** 2 / np.maximum(mu, 1.0), axis=1) / dof
    out[sel, 2 * M + 1] = thickness
    out[sel, 2 * M + 2] = i0
    out[sel, 2 * M + 3:] = beta[:, M:]


def _with_basis(Xr, basis):
    return np.concatenate([Xr, np.broadcast_to(basis, (Xr.shape[0],) + basis.shape)], axis=2) if basis is not None \
        else Xr


def convolve_kernel(spectra, *, energy, channels, refs_full, basis, constrained, low_end, n_iter, tol):
    """Poisson ML fit of raw counts with references ⊛ (the pixel's low loss / I0)."""
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    M = refs_full.shape[1]
    nb = 0 if basis is None else basis.shape[1]
    out = np.full((J.shape[0], 2 * M + 3 + nb), np.nan)
    n = energy.size
    step = float(energy[1] - energy[0])
    n_fft = _lowloss._next_pow2(2 * n)
    cons = np.concatenate([constrained, np.zeros(nb, bool)])
    # reference spectra as losses from 0 eV on the FFT grid: index k ↔ k·Δ
    m0 = int(np.floor(energy[0] / step + 1e-9))
    grid_of_channel = (m0 + np.arange(n)) % n_fft
    ref_grid = np.zeros((M, n_fft))
    pos = energy > 0
    ref_grid[:, grid_of_channel[pos]] = refs_full[pos].T
    rf = np.fft.rfft(ref_grid, axis=1)
    ok = np.isfinite(J).all(axis=1) & (J.sum(axis=1) > 0)
    for s in range(0, J.shape[0], _BATCH):
        sel = np.flatnonzero(ok[s:s + _BATCH]) + s
        if sel.size == 0:
            continue
        Jb = J[sel]
        i0, total, _, _, _ = _lowloss.zero_loss_and_total(Jb, energy)
        low = np.where(energy[None] < low_end, Jb, 0.0) / i0[:, None]
        lowg = np.zeros((sel.size, n_fft))
        lowg[:, grid_of_channel] = low
        # (ref ⊛ low)(E): ref at loss ε plus the low loss at its recorded energy (ZLP near 0)
        conv = np.fft.irfft(rf[None] * np.fft.rfft(lowg, axis=1)[:, None, :], n=n_fft, axis=2)
        X = _with_basis(conv[:, :, grid_of_channel[channels]].transpose(0, 2, 1), basis)  # (P, m, K)
        y = Jb[:, channels]
        beta, mu, var = _poisson_fit(X, y, cons, n_iter, tol)
        _store(out, sel, M, beta, mu, var, y, np.log(total / i0), i0, X.shape[2])
    return out.reshape(lead + (out.shape[1],))


def convolve_dual_kernel(core, low, *, e_core, e_low, channels, refs_core, basis, constrained, n_iter, tol):
    """Poisson ML fit of core-loss counts with references ⊛ (the separately recorded low loss / I0).

    For dual EELS whose ranges need not touch (e.g. Co-L at 780 eV with a low
    loss to 100 eV): each edge gets the pixel's own plasmon replicas.
    """
    lead = core.shape[:-1]
    C = core.reshape(-1, core.shape[-1]).astype(float)
    L = low.reshape(-1, low.shape[-1]).astype(float)
    M = refs_core.shape[1]
    nb = 0 if basis is None else basis.shape[1]
    out = np.full((C.shape[0], 2 * M + 3 + nb), np.nan)
    step = float(e_low[1] - e_low[0])
    n = e_core.size
    keep = e_low > -3 * step  # the zero-loss peak from just below 0 on: losses index k ↔ k·Δ
    kpos = np.round(e_low[keep] / step).astype(int)
    n_fft = _lowloss._next_pow2(n + int(kpos.max()) + 16)
    cons = np.concatenate([constrained, np.zeros(nb, bool)])
    # references on the core axis (index i ↔ e_core[0] + iΔ); ⊛ low moves them up by its losses
    rf = np.fft.rfft(np.vstack([refs_core.T, np.zeros((0, n))]), n=n_fft, axis=1)
    ok = np.isfinite(C).all(1) & np.isfinite(L).all(1) & (L.sum(1) > 0)
    for s in range(0, C.shape[0], _BATCH):
        sel = np.flatnonzero(ok[s:s + _BATCH]) + s
        if sel.size == 0:
            continue
        Lb = L[sel]
        i0, total, _, _, _ = _lowloss.zero_loss_and_total(Lb, e_low)
        lowg = np.zeros((sel.size, n_fft))
        lowg[:, kpos % n_fft] = Lb[:, keep] / i0[:, None]
        conv = np.fft.irfft(rf[None] * np.fft.rfft(lowg, axis=1)[:, None, :], n=n_fft, axis=2)
        X = _with_basis(conv[:, :, channels].transpose(0, 2, 1), basis)
        y = C[sel][:, channels]
        beta, mu, var = _poisson_fit(X, y, cons, n_iter, tol)
        _store(out, sel, M, beta, mu, var, y, np.log(total / i0), i0, X.shape[2])
    return out.reshape(lead + (out.shape[1],))
