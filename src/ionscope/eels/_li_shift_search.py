# SPDX-License-Identifier: GPL-3.0-or-later
"""The search for the Li-K shift between two regions' x on the data (:func:`estimate_delta`), made cheap.

Split from :mod:`._li_shift` (issue 20: the night's first map waited ~1 min on 2 cores for the measurement of
a 128×128 frame). What each trial shift costs, and what is done once instead:

* the Fourier-log deconvolution of the probe: once, before any trial;
* the separation of the host and Li-K shapes (:func:`._li_shift.separate`) of the references and of each of
  their jackknife replicates: one solve per trial for all of them (the shift operator, and so the system, is
  the same for every replicate), and a triangular one: ``P_δ`` moves a spectrum one way only, so
  ``h₂l₁·I − h₁l₂·P_δ`` is lower (δ > 0) or upper (δ < 0) triangular — O(n²), not O(n³);
* the grid fits (every pixel at every x of the grid) only for the pixels the χ² sums over (host signal clear,
  x within the grid, not a region pixel) and those within the Gaussian smoothing's reach of them (the
  neighbourhood's x decides each pixel's shape): the others cannot change the χ²;
* the final fit (each pixel with the shape at its neighbourhood's x) only for the pixels the χ² sums over.

The χ² values and so the shift are those of the full computation to rounding (BENCHMARKS.md, "Issue 19 item 4
/ issue 20 — the night's Li-K shift search").
"""
from __future__ import annotations

import numpy as np

from . import _li_shift as _ls
from . import _ssdfit


def _shift_is_triangular(P):
    """'lower', 'upper' or None: the triangle ``P`` (a shift operator) lies in."""
    if not np.any(np.triu(P, 1)):
        return "lower"
    if not np.any(np.tril(P, -1)):
        return "upper"
    return None


def families(e_ext, refs_stack, names, model, x_grid):
    """:func:`._li_shift.family` for a stack of references ``refs_stack`` (R, n, M) that share one shift model:
    ``(Li shapes (R, G, n), host shapes (R, n))``, the system of :func:`._li_shift.separate` solved once for all."""
    from scipy.linalg import solve_triangular

    amounts, delta, li, host = model
    i_li, i_host = names.index(li), names.index(host)
    l1, h1, l2, h2 = (float(v) for v in amounts)
    s_li, s_host = refs_stack[:, :, i_li], refs_stack[:, :, i_host]
    y1 = l1 * s_li + h1 * s_host
    y2 = l2 * s_li + h2 * s_host
    P = _ls.shift_matrix(e_ext, delta)
    A = h2 * l1 * np.eye(e_ext.size) - h1 * l2 * P
    rhs = (h2 * y1 - h1 * y2).T                                   # (n, R)
    tri = _shift_is_triangular(P)
    L1 = (np.linalg.solve(A, rhs) if tri is None else
          solve_triangular(A, rhs, lower=tri == "lower", check_finite=False)).T
    C = (y1 - l1 * L1) / h1
    x1, x2 = l1 / h1, l2 / h2
    shapes = np.stack([_ls.li_shapes(e_ext, L, x_grid, x1, x2, delta) for L in L1])
    return shapes, C


def reach(keep, lead, smooth_px, truncate=4.0):
    """(P,) bool: the pixels whose grid fits enter the neighbourhood x (:func:`._li_shift._smoothed_ratio`) of
    a ``keep`` pixel: a square dilation by the Gaussian's radius over the last two leading dims (the filter is
    separable with that radius per axis; mode "nearest" only repeats pixels within that square).

    Examples
    --------
    >>> reach(np.array([False, True, False, False, False, False]), (6,), 0.5)  # σ 0.5 px: radius 2
    array([ True,  True,  True,  True, False, False])
    """
    if not (smooth_px and smooth_px > 0 and len(lead)):
        return keep.copy()
    from scipy.ndimage import maximum_filter

    nsp = min(2, len(lead))
    r = int(truncate * float(smooth_px) + 0.5)
    size = [1] * (len(lead) - nsp) + [2 * r + 1] * nsp
    return maximum_filter(keep.reshape(lead), size=size, mode="constant", cval=False).reshape(-1)


def interpolated_noise_gram(w, g, a, shapes_rep, host_rep, basis):
    """:func:`._li_shift.noise_gram` of pixels fitted with the replicates' Li-K shapes interpolated between grid
    points (``(1 − a)·shapes_rep[:, g] + a·shapes_rep[:, g + 1]``, per pixel), without making them.

    ``Σ_m w·D̃_k·D̃_l`` with ``D̃ = D − B·(BᵀWB)⁻¹BᵀWD`` (the noise outside the ``basis`` B) is
    ``DᵀWD − (BᵀWD)ᵀ(BᵀWB)⁻¹(BᵀWD)``, and both terms are linear (``BᵀWD``) or quadratic (``DᵀWD``) in the
    interpolation weights: every pixel's sums come from one matrix product of the weights ``w`` (P, m) with
    products of the replicates' grid shapes, instead of (groups, P, m) arrays per pixel block (issue 20:
    the search's final fits spent half their time there). Equal to :func:`._li_shift.noise_gram` to
    rounding (tested).
    """
    n_g, G, m = shapes_rep.shape
    R = shapes_rep - shapes_rep.mean(axis=0)                         # (g, G, m)
    Hh = host_rep - host_rep.mean(axis=0)                            # (g, m)
    P = w.shape[0]
    al, be = 1.0 - a, a
    # Σ_g DᵀWD: Li·Li at (g, g), (g, g+1), (g+1, g+1); Li·host at g, g+1; host·host
    cols = [np.einsum("gim,gim->im", R, R), np.einsum("gim,gim->im", R[:, :-1], R[:, 1:]),
            np.einsum("gim,gm->im", R, Hh), np.einsum("gm,gm->m", Hh, Hh)[None]]
    b = 0 if basis is None else basis.shape[1]
    if b:
        cols += [np.moveaxis(R[..., None] * basis[None, None], 2, -1).reshape(-1, m),   # (g·G·b, m)
                 np.moveaxis(Hh[..., None] * basis[None], 1, -1).reshape(-1, m),        # (g·b, m)
                 (basis[:, :, None] * basis[:, None, :]).reshape(m, -1).T]              # (b·b, m)
    S = w @ np.concatenate(cols).T
    o = np.cumsum([0] + [c.shape[0] for c in cols])
    p = np.arange(P)
    same, nxt, lh, hh = (S[:, o[k]:o[k + 1]] for k in range(4))
    om = np.empty((P, 2, 2))
    om[:, 0, 0] = al ** 2 * same[p, g] + 2 * al * be * nxt[p, np.minimum(g, G - 2)] + be ** 2 * same[p, g + 1]
    om[:, 0, 1] = om[:, 1, 0] = al * lh[p, g] + be * lh[p, g + 1]
    om[:, 1, 1] = hh[:, 0]
    if b:
        V = S[:, o[4]:o[5]].reshape(P, n_g, G, b)
        U = np.stack([al[:, None, None] * V[p, :, g] + be[:, None, None] * V[p, :, g + 1],
                      S[:, o[5]:o[6]].reshape(P, n_g, b)], axis=-1)         # (P, g, b, 2): BᵀWD
        H = S[:, o[6]:o[7]].reshape(P, b, b)
        H[~(w.sum(axis=1) > 0)] = np.eye(b)
        HU = np.linalg.solve(H, U.transpose(0, 2, 1, 3).reshape(P, b, -1)).reshape(P, b, n_g, 2)
        om -= np.einsum("pgbk,pbgl->pkl", U, HU)
    return (n_g - 1) / n_g * om


class _Trials:
    """The χ² of the probe's fit at a trial shift (:func:`estimate_delta`); the deconvolution done once."""

    def __init__(self, probe, *, energy, channels, e_ext, refs_ext, names, model, inner, basis, resolution_fwhm,
                 blur, x_grid, smooth_px, reps, fingerprints):
        self.lead = probe.shape[:-1]
        J = probe.reshape(-1, probe.shape[-1])
        m = np.asarray(channels).size
        self.y = np.zeros((J.shape[0], m))
        self.w = np.zeros((J.shape[0], m))
        for sel, r, var in _ssdfit.deconvolved_batches(J, energy, channels=channels,
                                                       resolution_fwhm=resolution_fwhm, tail_fit_ev=20.0,
                                                       var_scale=None, batch=256):
            self.y[sel], self.w[sel] = r["ssd"], 1.0 / var
        self.usable = self.w.sum(axis=1) > 0
        self.xg = np.asarray(x_grid, float)
        self.e_ext, self.names, self.model, self.inner, self.basis = e_ext, names, model, inner, basis
        self.fw, self.blur, self.smooth_px = resolution_fwhm, blur, smooth_px
        self.correct = reps is not None and not blur
        self.stack = np.concatenate([refs_ext[None], reps], axis=0) if self.correct else refs_ext[None]
        self.member = _ls.is_member(_ls.fingerprint(J), fingerprints) if self.correct \
            else np.zeros(J.shape[0], bool)
        self.wbar = self.w[self.usable].mean(axis=0) if self.usable.any() else np.ones(m)
        self.keep = None      # the pixels the χ² sums over, once known (:meth:`choose`)
        self.need = None      # and those whose grid fits their neighbourhood x needs

    def _shapes(self, d):
        from ._plural import _gauss_blur

        amounts, _, li, host = self.model
        shapes, hshape = families(self.e_ext, self.stack, self.names, (amounts, d, li, host), self.xg)
        if self.blur:
            step = float(self.e_ext[1] - self.e_ext[0])
            shapes = _gauss_blur(shapes[0].T, step, self.fw).T[None]
            hshape = _gauss_blur(hshape[0][:, None], step, self.fw)[:, 0][None]
        return shapes[..., self.inner], hshape[:, self.inner]

    def fit(self, d):
        """(χ² per pixel (NaN outside the kept pixels once chosen), smoothed host weight, neighbourhood x)."""
        shapes, hshapes = self._shapes(d)
        Lg = shapes[0]
        Z = np.column_stack([hshapes[0]] + ([self.basis] if self.basis is not None else []))
        n = self.y.shape[0]
        need = np.arange(n) if self.need is None else np.flatnonzero(self.need)
        rep = cov = None
        if self.correct:
            rep = (shapes[1:], hshapes[1:])
            cov = _ls.channel_cov(rep[0], rep[1], Z[:, 1:], self.wbar)
        bg = np.zeros((n, self.xg.size, 2))
        # in slices: the (pixels, grid, channels) products of all pixels at once would take ~GBs
        for s in range(0, need.size, 256):
            i = need[s:s + 256]
            bg[i] = _ls._grid_fits(self.y[i], self.w[i], Lg, Z, cov=cov, member=self.member[i])
        ratio, host_s = _ls._smoothed_ratio(bg, self.lead, self.smooth_px, host=True)
        g, a = _ls._self_consistent(ratio - self.xg[None], self.xg)
        x_nb = ratio[np.arange(n), g]
        fin = np.arange(n) if self.keep is None else np.flatnonzero(self.keep)
        chi = np.full(n, np.nan)
        for s in range(0, fin.size, 256):
            i = fin[s:s + 256]
            chi[i] = self._final(i, g[i], a[i], Lg, Z, rep)
        return chi, host_s, x_nb

    def _final(self, i, g, a, Lg, Z, rep):
        """χ² of pixels ``i`` fitted with the Li-K shape at their neighbourhood's x (grid index g, fraction a)."""
        w, y = self.w[i], self.y[i]
        Lp = (1 - a)[:, None] * Lg[g] + a[:, None] * Lg[g + 1]
        X = np.concatenate([Lp[:, :, None], np.broadcast_to(Z, (Lp.shape[0],) + Z.shape)], axis=2)
        G = _ls._weighted_gram(w, X)
        G = G + 1e-12 * np.einsum("pii->pi", G)[:, :, None] * np.eye(X.shape[-1]) + 1e-300 * np.eye(X.shape[-1])
        if self.correct:
            om = interpolated_noise_gram(w, g, a, rep[0], rep[1], Z[:, 1:])
            om[self.member[i]] = 0.0
            G = _ls.corrected_gram(G, om)
        beta = np.linalg.solve(G, np.swapaxes((w * y)[:, None, :] @ X, 1, 2))[..., 0]
        return np.sum(w * (y - (X @ beta[..., None])[..., 0]) ** 2, axis=1)

    def choose(self, host0, x0):
        """Keep the pixels with a clear host signal, x within the grid, usable, not a region pixel; False if
        fewer than 4."""
        top = np.nanpercentile(host0, 90) if np.isfinite(host0).any() else 0.0
        keep = (host0 > 0.1 * top) & (x0 > self.xg[0]) & (x0 < self.xg[-1]) & self.usable & ~self.member
        if top <= 0 or keep.sum() < 4:
            return False
        self.keep = keep
        self.need = reach(keep, self.lead, self.smooth_px)
        return True


def estimate_delta(probe, *, energy, channels, e_ext, refs_ext, names, model, inner, basis, resolution_fwhm,
                   blur, x_grid=_ls.X_GRID[::2], scan=_ls.DELTA_SCAN_EV, smooth_px=2.0, reps=None,
                   fingerprints=None):
    """The Li-K shift between the regions' x (eV) that best describes the data: the total χ² of the fit
    of :func:`._li_shift.fourier_log_shift_kernel` (shape at the neighbourhood's x) over the ``probe`` frames
    (:func:`._li_shift.probe_frames`), minimised over the shift (coarse scan, then a parabola through the best
    points).

    The regions alone cannot tell: two spectra ``C + x_r·L_r`` hold three unknown
    shapes, and the Li-K onset below the host's edge, the one place where the host
    shape is known to vanish, is too noisy (measured: ±1–2 eV from ~1000- and
    ~300-pixel regions at 1000 counts per channel; truth 0.36). Pixels whose x lies
    beyond the regions' are what the shift changes, and they decide it. Only pixels
    with a clear host signal count (vacuum and electrolyte would fit noise with a
    Li-K shape at the grid's end). Returns ``(δ, δ values tried, their χ²)``.

    ``reps``/``fingerprints`` (:func:`._li_shift.replicates`): every fit corrected for the
    references' noise (:func:`._li_shift.noise_gram`), the region pixels left out (they are
    fitted exactly at any δ, and their noise is in the references). The χ² itself
    is not corrected: the references' noise adds ``βᵀΩβ`` to it, which depends on δ
    through the noise amplification of :func:`._li_shift.separate`, but the correction
    estimated from 8 jackknife groups is too noisy to subtract (measured at 400
    counts per 0.1 eV channel: the δ-dependent part of the noise-free χ² is ~400
    over the probe, the noisy one varies by thousands; subtracting ``βᵀΩβ`` put
    the minimum at δ = 0 for a true 0.36). With noise the δ found is unreliable at
    ≤ 400 counts (BENCHMARKS.md, "Li-K shift, second pass"); give it when known.

    Cost (issue 20): the deconvolution once; per trial one triangular solve for the shapes of the references
    and all their replicates, the grid fits of the pixels within the smoothing's reach of those the χ² sums
    over, and the final fit of those only (module :mod:`._li_shift_search`).

    References
    ----------
    R. D. Leapman, C. R. Swyt, Ultramicroscopy 26 (1988) 393, doi:10.1016/0304-3991(88)90239-2.

    """
    from ._solve import single_threaded_blas

    # many small products: one BLAS thread (spinning OpenBLAS threads made them several times slower on a
    # loaded 2-core machine; the limap stage itself runs its frames one per core)
    with single_threaded_blas():
        return _search(probe, energy=energy, channels=channels, e_ext=e_ext, refs_ext=refs_ext, names=names,
                       model=model, inner=inner, basis=basis, resolution_fwhm=resolution_fwhm, blur=blur,
                       x_grid=x_grid, scan=scan, smooth_px=smooth_px, reps=reps, fingerprints=fingerprints)


def _search(probe, *, scan, **kw):
    trials = _Trials(probe, **kw)
    chi0, host0, x0 = trials.fit(0.0)
    if not trials.choose(host0, x0):
        return 0.0, np.zeros(0), np.zeros(0)
    done = {0.0: float(chi0[trials.keep].sum())}  # the first fit is the scan's δ = 0 (all pixels; the same χ²)

    def chi2(d):
        d = float(d)
        if d not in done:
            done[d] = float(np.sum(trials.fit(d)[0][trials.keep]))
        return done[d]

    tried = [float(d) for d in scan]
    chis = [chi2(d) for d in tried]
    best = tried[int(np.argmin(chis))]
    lo, hi = float(min(scan)), float(max(scan))
    for d in (best - 0.15, best - 0.075, best + 0.075, best + 0.15):
        if lo <= d <= hi:
            tried.append(float(d))
            chis.append(chi2(d))
    t, c = np.array(tried), np.array(chis)
    near = np.abs(t - best) <= 0.2
    a2, a1, _ = np.polyfit(t[near] - best, c[near], 2)
    delta = float(np.clip(best + (float(np.clip(-a1 / (2 * a2), -0.2, 0.2)) if a2 > 0 else 0.0), lo, hi))
    return float(delta), t, c
