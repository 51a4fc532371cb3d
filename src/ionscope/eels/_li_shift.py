# SPDX-License-Identifier: GPL-3.0-or-later
"""Two Li-K shapes beyond the regions' x: the Li-K chemical shift as a function of x.

Why two region references extrapolate badly. A pristine (x₁) and a charged
(x₂) region give two spectra ``Y_r = C + x_r·L_r`` (host shape ``C``, Li-K shape
``L_r`` at that region's shift). Unmixed into "Li" and "Co" rows they span only
those two spectra: a pixel is fitted as a mixture ``α·Y₁ + β·Y₂``. With the Li-K
shape moving linearly with x (``L(x) ≈ L₁ + t·D``, ``t = (x₁ − x)/(x₁ − x₂)``,
``D = L₂ − L₁``) the pixel's spectrum ``C + x·L(x)`` holds ``x·t·D`` while the
mixture with the right Li (``α + β = 1``, ``αx₁ + βx₂ = x``) holds ``x₂·t·D``:
the difference ``(x − x₂)·t·D`` vanishes at both regions' x and grows
quadratically beyond them. The unmixed "Co" row carries ``x₁x₂/(x₁ − x₂)·D``
(1.9·D for x 1 and 0.65) — a Li-K difference weighted by the host amount — so
at x ≈ 0.2 the fit must cancel a Li-K feature the pixel does not have, and the
host (Co) weight, the denominator of x, takes the error: +0.3 in x at the
demo's interface layer.

The fix: a rigid Li-K shift linear in x (the physics of the realistic simulator,
and the simplest assumption two regions can calibrate). Given the shift ``δ``
between the regions' Li-K shapes, the two region spectra separate exactly into
the host shape and the Li-K shape at x₁ (:func:`separate`:
``(h₂l₁·I − h₁l₂·P_δ)·L₁ = h₂Y₁ − h₁Y₂``, with ``P_δ`` the shift operator;
``‖l₂h₁P_δ‖ < l₁h₂`` when region 1 is the richer, so the system is well
conditioned), and each pixel is fitted with the Li-K shape ``L₁(E − s(x))``,
``s(x) = δ·(x₁ − x)/(x₁ − x₂)``, at the x of its neighbourhood, found
self-consistently (:func:`fourier_log_shift_kernel`). The shift is not a free
parameter per pixel (the "shift-fitting" route, unstable with noise), it is tied
to x, so the noise of x is that of a two-shape fit. With ``δ = 0`` the model is
the two rows as given.

``δ`` itself: two spectra ``C + x_r·L_r`` hold three unknown shapes, so the
regions cannot tell it; the Li-K onset below the host's edge (the one place where
the host shape is known to vanish) gave ±1–2 eV from ~1000- and ~500-pixel
regions at 1000 counts per channel (truth 0.36). The pixels whose x lies beyond
the regions' are what ``δ`` changes: :func:`estimate_delta` minimises the χ² of
the fit over whole frames of the data (noise-free: 0.31–0.34 eV for 0.36–0.37).

The references' own noise (second pass). Two region means of ~10³ pixels at
100–400 counts per 0.1 eV channel carry per-channel noise as large as the Li-K
row (their difference over Δx ≈ 0.3); fitted with them, every other pixel is an
errors-in-variables regression whose normal matrix holds that noise's energy,
and x beyond the regions' read +0.14…+0.19 high even with the true shift
(``benchmarks/bench_li_shift_dose.py``). :func:`noise_gram` estimates that
energy from delete-a-group jackknife replicates of the references and the fit
subtracts it (the moment-corrected estimator of a linear errors-in-variables
model; W. A. Fuller, Measurement Error Models, Wiley 1987, §2.2,
doi:10.1002/9780470316665), for every pixel the
references were not made from (:func:`fingerprint` recognises those: their own
noise cancels the bias exactly on average).

References
----------
R. D. Leapman, C. R. Swyt, Ultramicroscopy 26 (1988) 393,
doi:10.1016/0304-3991(88)90239-2 (MLLS with references measured on standards).
M. Saitoh et al., PCCP 20 (2018) 25052, doi:10.1039/c8cp03390k (Li-K of Li
battery materials; the fine structure moves with the Li content).
"""
from __future__ import annotations

import numpy as np

from . import _lowloss, _refs_sigma, _ssdfit
from ._solve import nnls_batched

#: trial shifts (eV) of the coarse scan of :func:`estimate_delta`, then refined around the best. Only
#: shifts to higher loss as Li leaves (the realistic simulator's model): on noisy data (1000 counts per
#: 0.1 eV channel, regions of ~1000 and ~500 pixels) the χ² had a second, deeper minimum near −0.5 eV
#: (truth +0.36) that reads x 0.5 low at x ≈ 0.2; noise-free its minimum was at +0.335. Second pass: at 400
#: counts the minimum over −1…+1.5 eV was −0.42…−0.46 eV in 2 draws of 2 (truth +0.36), with or without the
#: references' noise correction; noise-free a scan over both signs recovers a negative shift (the
#: simulator's ``li_chemical_shift_ev=-0.6``, tests/test_eels_li_shift_pass2.py). A known shift of either
#: sign is given with ``references_from_regions(chemical_shift=δ)``
DELTA_SCAN_EV = np.round(np.arange(0.0, 1.5001, 0.25), 10)
#: the x grid on which the self-consistent x is bracketed (the shift is extrapolated linearly over it)
X_GRID = np.round(np.arange(-0.3, 1.6001, 0.05), 10)
#: attrs of a references DataArray that carry the shift model
ATTRS = ("li_k_shift_ev", "li_k_shift_amounts", "li_k_shift_components")


def shift_matrix(e, s):
    """``(n, n)`` operator ``f(E) → f(E − s)`` on the equally spaced axis ``e`` (linear interpolation;
    zero below the axis, the last value above it)."""
    e = np.asarray(e, float)
    n = e.size
    step = float(e[1] - e[0])
    p = np.arange(n) - float(s) / step
    P = np.zeros((n, n))
    rows = np.arange(n)
    j = np.floor(p).astype(int)
    f = p - j
    for jj, wt in ((j, 1.0 - f), (j + 1, f)):
        ok = jj >= 0
        P[rows[ok], np.minimum(jj[ok], n - 1)] += wt[ok]
    return P


def separate(e, s_li, s_host, amounts, delta):
    """Host shape ``C`` and the richer region's Li-K shape ``L₁`` (per unit Li) from the two unmixed rows.

    ``amounts = (l₁, h₁, l₂, h₂)`` (Li and host of the richer, then the poorer
    region): ``Y_r = l_r·s_li + h_r·s_host``; ``Y₁ = h₁C + l₁L₁``,
    ``Y₂ = h₂C + l₂L₁(E − δ)``. Returns ``(C, L1, x1, x2)``.
    """
    l1, h1, l2, h2 = (float(v) for v in amounts)
    y1 = l1 * s_li + h1 * s_host
    y2 = l2 * s_li + h2 * s_host
    P = shift_matrix(e, delta)
    A = h2 * l1 * np.eye(e.size) - h1 * l2 * P
    L1 = np.linalg.solve(A, h2 * y1 - h1 * y2)
    C = (y1 - l1 * L1) / h1
    return C, L1, l1 / h1, l2 / h2


def li_shapes(e, L1, x_grid, x1, x2, delta):
    """``(G, n)`` Li-K shapes per unit Li at each x of ``x_grid``: ``L₁(E − δ·(x₁ − x)/(x₁ − x₂))``."""
    e = np.asarray(e, float)
    out = np.empty((len(x_grid), e.size))
    for g, x in enumerate(x_grid):
        s = delta * (x1 - x) / (x1 - x2)
        out[g] = np.interp(e - s, e, L1, left=0.0, right=float(L1[-1]))
    return out


def model_of(references):
    """The shift model a references DataArray carries (``(amounts, delta, li, host)``), or None."""
    attrs = getattr(references, "attrs", {}) or {}
    if not all(k in attrs for k in ATTRS):
        return None
    return _checked_model(attrs, getattr(references, "coords", {}))


#: a Li-K chemical shift between two Li contents is a fraction of an eV (Wang et al. 2012 report
#: ~0.6 eV); a stored shift beyond this is a corrupt or hand-edited reference file, not physics
MAX_SHIFT_EV = 5.0


def _checked_model(attrs, coords):
    """The stored shift model, refused in one line (naming the attribute) if it cannot be right."""
    from ..errors import DataValidationError

    def bad(key, expected):
        return DataValidationError(f"references.attrs[{key!r}] = {attrs[key]!r}: expected {expected} (a reference "
                                   "file's Li-K shift model, written by references_from_regions / `ionscope refs "
                                   "regions`)")

    comps = attrs["li_k_shift_components"]
    if isinstance(comps, str) or len(comps) != 2:
        raise bad("li_k_shift_components", "two component names (Li, host)")
    li, host = (str(c) for c in comps)
    names = [str(c) for c in np.atleast_1d(coords["component"].values)] if "component" in coords else None
    if names is not None and not (li in names and host in names and li != host):
        raise bad("li_k_shift_components", f"two different names among the components {names}")
    try:
        amounts = [float(v) for v in np.atleast_1d(attrs["li_k_shift_amounts"])]
    except (TypeError, ValueError):
        raise bad("li_k_shift_amounts", "four numbers") from None
    try:
        delta = float(attrs["li_k_shift_ev"])
    except (TypeError, ValueError):
        raise bad("li_k_shift_ev", "a number (eV) or NaN") from None
    if len(amounts) != 4 or not np.all(np.isfinite(amounts)) or amounts[1] <= 0 or amounts[3] <= 0 \
            or amounts[0] * amounts[3] == amounts[2] * amounts[1]:
        raise bad("li_k_shift_amounts", "(Li₁, host₁, Li₂, host₂) of two regions of different Li/host, hosts > 0")
    if not (np.isnan(delta) or abs(delta) <= MAX_SHIFT_EV):
        raise bad("li_k_shift_ev", f"a shift in eV within ±{MAX_SHIFT_EV:g}, or NaN (to be measured)")
    return amounts, delta, li, host



def family(e_ext, refs_ext, names, model, x_grid=X_GRID):
    """(Li shapes on ``x_grid`` (G, n_ext), host shape (n_ext,), Li index, host index, x₁, x₂)."""
    amounts, delta, li, host = model
    i_li, i_host = names.index(li), names.index(host)
    C, L1, x1, x2 = separate(e_ext, refs_ext[:, i_li], refs_ext[:, i_host], amounts, delta)
    return li_shapes(e_ext, L1, x_grid, x1, x2, delta), C, i_li, i_host, x1, x2


def replicates(references, names, e_ext):
    """The references' jackknife replicates as ``(groups, n, M)`` rows on ``e_ext`` (like ``refs_ext``) and
    the region pixels' fingerprints (:func:`ionscope.eels.references_from_regions`), or ``(None, None)``."""
    attrs = getattr(references, "attrs", {}) or {}
    if "references_jackknife" not in attrs or "region_fingerprints" not in attrs:
        return None, None
    n_g = int(attrs.get("jackknife_groups", 0))
    reps = np.asarray(attrs["references_jackknife"], float)
    if n_g < 2 or reps.size != n_g * len(names) * e_ext.size:
        return None, None
    return np.swapaxes(reps.reshape(n_g, len(names), e_ext.size), 1, 2), np.asarray(attrs["region_fingerprints"], float)


def _rep_family(e_ext, reps, names, model, inner, x_grid):
    fam = [family(e_ext, r, names, model, x_grid=x_grid) for r in reps]
    return np.stack([f[0][:, inner] for f in fam]), np.stack([f[1][inner] for f in fam])


def replicate_shapes(references, names, e_ext, inner, model, x_grid=X_GRID):
    """Options of :func:`fourier_log_shift_kernel` for the references' noise correction: the Li-K and host
    shapes of each jackknife replicate the references carry, at the fit's channels ``inner``, and the region
    pixels' fingerprints; empty without them."""
    reps, fps = replicates(references, names, e_ext)
    if reps is None:
        return {}
    shapes_rep, host_rep = _rep_family(e_ext, reps, names, model, inner, x_grid)
    return {"shapes_rep": shapes_rep, "host_rep": host_rep, "fingerprints": fps}


def _self_consistent(f, x_grid):
    """Per pixel the x where ``f = x̂(x) − x`` (P, G) crosses zero from above (linear interpolation);
    the grid's end where it does not cross: (grid index g, fraction a in [0, 1])."""
    P, G = f.shape
    cross = (f[:, :-1] > 0) & (f[:, 1:] <= 0)
    has = cross.any(axis=1)
    g = np.where(has, np.argmax(cross, axis=1), np.where(np.nan_to_num(f[:, 0]) <= 0, 0, G - 2))
    f0 = f[np.arange(P), g]
    f1 = f[np.arange(P), g + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(has, f0 / (f0 - f1), np.where(np.nan_to_num(f[:, 0]) <= 0, 0.0, 1.0))
    return g, np.clip(np.nan_to_num(a), 0.0, 1.0)


def fourier_log_shift_kernel(spectra, *, energy, channels, shapes_li, shape_host, inner, i_li, i_host, basis,
                             constrained, resolution_fwhm, tail_fit_ev, shift_of_x, var_scale=None, x_grid=X_GRID,
                             smooth_px=2.0, shapes_rep=None, host_rep=None, fingerprints=None):
    """Fourier-log deconvolution + GLS fit with the Li-K shape at each pixel's own x (self-consistent).

    Outputs as :func:`._plural.fourier_log_kernel` for the two components (in the
    references' order ``i_li``, ``i_host``), then the Li-K shift (eV) of the shape
    used, ``δ·(x₁ − x)/(x₁ − x₂)`` with ``shift_of_x = (δ, x₁, x₂)``.
    For every x of ``x_grid`` the pixel is fitted with that x's Li-K shape (shared
    design: one small solve per pixel and grid point), the crossing of
    ``x̂(x) = x`` is interpolated, and the final fit uses the shape interpolated
    there; its standard errors are the sandwich of that linear fit (the shape's
    dependence on the pixel's own x is second order).

    The x that picks the shape is that of the neighbourhood: the grid fits' Li and
    host weights are summed with Gaussian weights of ``smooth_px`` (σ, pixels) over
    the block's last two leading dims (y, x) before their ratio is taken. A
    pixel's own x is too noisy (at 1000 counts per 0.1 eV channel its Li weight has
    ~75 % relative σ): a shape shifted by noise reads less Li (the mismatch is
    second order but always of one sign). The maps themselves stay per pixel.

    ``shapes_rep``/``host_rep`` (the shapes of the references' jackknife replicates,
    (groups, G, n) and (groups, n)) and ``fingerprints`` (of the region pixels,
    :func:`fingerprint`): the fit of every pixel the references were not made from
    is corrected for the references' noise (:func:`noise_gram`).
    """
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1]).astype(float)
    nb = 0 if basis is None else basis.shape[1]
    M = 2
    n_out = 2 * M + 3 + 1 + nb
    n_ref = 0 if shapes_rep is None else len(_refs_sigma.extra_names(("li", "host")))  # after the basis
    n_out += n_ref
    out = np.full((J.shape[0], n_out), np.nan)
    Lg = shapes_li[:, inner]                       # (G, m)
    Z = np.column_stack([shape_host[inner]] + ([basis] if basis is not None else []))  # (m, 1 + nb)
    K = 1 + Z.shape[1]
    cons = np.zeros(K, bool)
    cons[0], cons[1] = constrained[i_li], constrained[i_host]
    xg = np.asarray(x_grid, float)
    G = xg.size
    def batches():
        # run twice rather than kept: the deconvolution filters of a whole chunk would not fit in memory
        return _ssdfit.deconvolved_batches(J, energy, channels=channels, resolution_fwhm=resolution_fwhm,
                                           tail_fit_ev=tail_fit_ev, var_scale=var_scale, batch=256)

    # pass 1: every pixel fitted with every grid x's Li-K shape (Li and host weights)
    bg = np.zeros((J.shape[0], G, 2))
    member = None if shapes_rep is None else is_member(fingerprint(J), fingerprints)
    for sel, r, var in batches():
        cov = None if shapes_rep is None else channel_cov(shapes_rep, host_rep, Z[:, 1:], np.mean(1.0 / var, axis=0))
        bg[sel] = _grid_fits(r["ssd"], 1.0 / var, Lg, Z, cov=cov, member=None if member is None else member[sel])
    g, a = _self_consistent(_smoothed_ratio(bg, lead, smooth_px) - xg[None], xg)
    # pass 2: each pixel with the Li-K shape at its neighbourhood's x
    for sel, r, var in batches():
        y = r["ssd"]
        w = 1.0 / var
        wy = w * y
        P_ = sel.size
        Lp = (1 - a[sel])[:, None] * Lg[g[sel]] + a[sel][:, None] * Lg[g[sel] + 1]   # (P, m)
        X = np.concatenate([Lp[:, :, None], np.broadcast_to(Z, (P_,) + Z.shape)], axis=2)  # (P, m, K)
        Gp = _weighted_gram(w, X)
        bp = (wy[:, None, :] @ X)[:, 0]
        if shapes_rep is not None:
            Lr = (1 - a[sel])[None, :, None] * shapes_rep[:, g[sel]] + a[sel][None, :, None] * shapes_rep[:, g[sel] + 1]
            om = noise_gram(w, Lr, host_rep, Z[:, 1:])
            om[member[sel]] = 0.0
            rho = _refs_sigma.information_ratio(Gp, om)
            Gp = corrected_gram(Gp, om)
        beta = nnls_batched(Gp, bp, cons)
        Ginv = np.linalg.inv(Gp + 1e-12 * np.einsum("pii->pi", Gp)[:, :, None] * np.eye(K))
        A = (Ginv[:, :2, :] @ np.swapaxes(X, 1, 2)) * w[:, None, :]
        vb = _lowloss.sandwich_variance(A, r, r["grid_idx"], r["n_fft"])
        resid = y - (X @ beta[..., None])[..., 0]
        dof = max(1, channels.size - K)
        out[sel, i_li], out[sel, i_host] = beta[:, 0], beta[:, 1]
        out[sel, M + i_li], out[sel, M + i_host] = np.sqrt(vb[:, 0]), np.sqrt(vb[:, 1])
        out[sel, 2 * M] = np.sum(w * resid**2, axis=1) / dof
        out[sel, 2 * M + 1] = r["thickness"]
        out[sel, 2 * M + 2] = r["i0"]
        delta, x1, x2 = shift_of_x
        xs = (1 - a[sel]) * xg[g[sel]] + a[sel] * xg[g[sel] + 1]
        out[sel, 2 * M + 3] = delta * (x1 - xs) / (x1 - x2)
        out[sel, 2 * M + 4:n_out - n_ref] = beta[:, 2:]
        if n_ref:  # the references' noise in each pixel's σ (issue 19), components in the references' order
            out[sel, n_out - n_ref:] = _refs_sigma.pixel_columns(Ginv, X, w, Lr, host_rep, beta, Z[:, 1:], vb, rho,
                                                                 xs, (i_li, i_host), member=member[sel])
    return out.reshape(lead + (n_out,))


def fingerprint(J):
    """(P,) a number per raw spectrum (rows of ``J``) that tells identical spectra apart from all others: a
    weighted sum of the counts with fixed, incommensurate weights. The references keep those of their
    regions' pixels (``region_fingerprints``) so that a fit can recognise them in whatever chunks it sees."""
    J = np.asarray(J, float)
    u = 1.0 + np.modf(np.arange(J.shape[-1]) * 0.6180339887498949)[0]
    return J @ u


def is_member(fp, fingerprints, rtol=1e-9):
    """(P,) bool: ``fp`` among the sorted ``fingerprints`` (to ``rtol``: summation order may differ)."""
    fp = np.asarray(fp, float)
    if fingerprints is None or len(fingerprints) == 0:
        return np.zeros(fp.shape, bool)
    F = np.asarray(fingerprints, float)
    i = np.clip(np.searchsorted(F, fp), 1, F.size - 1) if F.size > 1 else np.zeros(fp.shape, int)
    tol = rtol * np.maximum(np.abs(fp), 1e-300)
    return (np.abs(F[i] - fp) <= tol) | (np.abs(F[np.maximum(i - 1, 0)] - fp) <= tol)


def noise_gram(w, d_li, d_host, basis):
    """(P, 2, 2) expected contribution of the references' noise to the (Li, host) block of each pixel's
    GLS normal matrix, from delete-a-group jackknife replicates of the two shapes (``d_li`` (groups, P, m)
    or (groups, m), ``d_host`` (groups, m)), orthogonal (weights ``w`` (P, m)) to the ``basis`` (m, b).

    Why (issue 19, second pass): references made from ~10³ noisy pixels carry per-channel noise as large
    as the Li-K row itself at 100–400 counts per 0.1 eV channel (the Li row is the difference of two
    region spectra ~0.3 apart in x). A pixel fitted with them is an errors-in-variables regression: the
    normal matrix holds ``XᵀWX + Ω`` (``Ω = Σ w·Cov(X̂)``, the noise's energy), which biases the Li and
    host weights of every pixel that is not one of the regions' (measured at 400 counts: +0.27…+0.31 in x
    at x 0.1–0.4, −0.02…−0.03 in the regions' range). Subtracting ``Ω`` (the corrected-score estimator of
    a linear errors-in-variables model) removes it; only the part of the noise outside the background
    basis counts (the fit absorbs the rest; subtracting all of it made the fit unstable). The region pixels
    themselves need no correction: their own noise is in the references and cancels it exactly on average.
    """
    d_li = np.asarray(d_li, float)
    if d_li.ndim == 2:
        d_li = np.broadcast_to(d_li[:, None], (d_li.shape[0], w.shape[0], d_li.shape[1]))
    n_g = d_li.shape[0]
    D = np.stack([d_li, np.broadcast_to(np.asarray(d_host, float)[:, None], d_li.shape)], axis=-1)  # (g, P, m, 2)
    D = D - D.mean(axis=0)
    if basis is not None and basis.shape[1]:
        BW = w[:, None, :] * basis.T[None]                                   # (P, b, m)
        H = BW @ basis
        H[~(w.sum(axis=1) > 0)] = np.eye(H.shape[-1])  # an unusable spectrum (no weights) adds nothing
        coef = np.linalg.solve(H[None], BW[None] @ D)  # (g, P, b, 2)
        D = D - basis @ coef
    # Σ_g Σ_m w·D_k·D_l as one batched product over (g, m) per pixel
    P = w.shape[0]
    WD = np.moveaxis(D * w[None, :, :, None], 0, 1).reshape(P, -1, 2)
    return (n_g - 1) / n_g * (np.swapaxes(WD, 1, 2) @ np.moveaxis(D, 0, 1).reshape(P, -1, 2))


#: the most of the (Li, host) block's information the references' noise correction may take away
MAX_CORRECTION = 0.5


def corrected_gram(Gp, om):
    """``Gp`` (P, K, K) with ``om`` (P, 2, 2) taken from its leading block, scaled down where it would take
    more than :data:`MAX_CORRECTION` of that block's information (Schur complement over the other columns):
    at very low counts the estimated correction is itself noisy and could make the matrix indefinite."""
    A, Bm, Dm = Gp[:, :2, :2], Gp[:, :2, 2:], Gp[:, 2:, 2:]
    S = A - Bm @ np.linalg.solve(Dm, np.swapaxes(Bm, 1, 2)) if Gp.shape[1] > 2 else A
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.max(np.real(np.linalg.eigvals(np.linalg.solve(S + 1e-300 * np.eye(2), om))), axis=1)
    scale = np.where(np.isfinite(rho) & (rho > MAX_CORRECTION), MAX_CORRECTION / np.where(rho > 0, rho, 1), 1.0)
    scale = np.where(np.isfinite(rho), scale, 0.0)
    out = Gp.copy()
    out[:, :2, :2] -= scale[:, None, None] * om
    return out


def channel_cov(shapes_rep, host_rep, basis, wbar):
    """(G, m, 2, 2) per channel the jackknife covariance of the (Li at each grid x, host) shapes' noise, the
    part outside the background ``basis`` (projected with the mean weights ``wbar``: the weights of one
    data set differ little in shape); ``Σ_m w·cov`` is then :func:`noise_gram` for every grid x at once."""
    n_g = shapes_rep.shape[0]
    D = np.stack([shapes_rep, np.broadcast_to(host_rep[:, None], shapes_rep.shape)], axis=-1)  # (g, G, m, 2)
    D = D - D.mean(axis=0)
    if basis is not None and basis.shape[1]:
        Bw = basis * wbar[:, None]
        D = D - np.einsum("mb,gGbk->gGmk", basis, np.linalg.solve(Bw.T @ basis, np.einsum("mb,gGmk->gGbk", Bw, D)))
    return (n_g - 1) / n_g * np.einsum("gGmk,gGml->Gmkl", D, D)


def _weighted_gram(w, X):
    """(P, K, K) ``Σ_n w·X_k·X_l`` per pixel of ``w`` (P, n) and ``X`` (P, n, K), as batched matrix products.
    Why not ``einsum("pn,pnk,pnl->pkl")``: a three-operand einsum runs as a plain loop, 5–10× slower here."""
    return np.swapaxes(X * w[:, :, None], 1, 2) @ X


def _grid_fits(y, w, Lg, Z, cov=None, member=None):
    """(P, G, 2): Li and host weights of every pixel fitted with each of the ``G`` Li-K shapes ``Lg``
    beside the fixed columns ``Z`` (host, background); the normal equations share Z's block. ``cov``
    (:func:`channel_cov`): corrected for the references' noise, except the ``member`` pixels."""
    wy = w * y
    bZ = wy @ Z
    bL = wy @ Lg.T
    P, G = w.shape[0], Lg.shape[0]
    K = 1 + Z.shape[1]
    # every weighted inner product of the normal equations as one matrix product (P, m) @ (m, N): the
    # (P, G, m) array of w·L it replaces cost ~2× the whole product in memory traffic (issue 20)
    m = Lg.shape[1]
    S = w @ np.concatenate([Lg * Lg, (Lg[:, None, :] * Z.T[None]).reshape(-1, m),
                            (Z.T[:, None, :] * Z.T[None]).reshape(-1, m)]).T
    d = S[:, :G]                                   # (P, G)   Σ w·L_g²
    u = S[:, G:G * K].reshape(P, G, K - 1)         # (P, G, K-1)   Σ w·L_g·Z
    H = S[:, G * K:].reshape(P, K - 1, K - 1)      # (P, K-1, K-1)   Σ w·Z·Z
    Gm = np.empty((P, G, K, K))
    Gm[:, :, 0, 0] = d
    Gm[:, :, 0, 1:] = u
    Gm[:, :, 1:, 0] = u
    Gm[:, :, 1:, 1:] = H[:, None]
    rhs = np.concatenate([bL[..., None], np.broadcast_to(bZ[:, None, :], (P, G, K - 1))], axis=2)
    # a spectrum the deconvolution could not use (NaN, empty) has no weights: NaN for it (read as 0 by
    # _smoothed_ratio), not a singular system that fails the whole batch
    empty = ~(w.sum(axis=1) > 0)
    Gm[empty] = np.eye(K)
    rhs[empty] = np.nan
    if cov is not None:
        om = np.tensordot(w, cov, axes=([1], [1]))  # (P, G, 2, 2)
        if member is not None:
            om[member] = 0.0
        Gm = corrected_gram(Gm.reshape((P * G, K, K)), om.reshape((P * G, 2, 2))).reshape(Gm.shape)
    ridge = 1e-12 * np.einsum("pgii->pgi", Gm)[..., None] * np.eye(K)
    return np.linalg.solve(Gm + ridge, rhs[..., None])[..., :2, 0]


def _smoothed_ratio(bg, lead, smooth_px, host=False):
    """(P, G) Li/host of the neighbourhood: both weights summed with Gaussian weights (σ ``smooth_px``)
    over the last two leading dims (the last one for 1-D data), NaN (unusable pixels) as 0."""
    from scipy.ndimage import gaussian_filter

    v = np.nan_to_num(bg).reshape(tuple(lead) + bg.shape[1:])
    if smooth_px and smooth_px > 0 and len(lead):
        nsp = min(2, len(lead))
        sigma = [0.0] * (len(lead) - nsp) + [float(smooth_px)] * nsp + [0.0, 0.0]
        v = gaussian_filter(v, sigma, mode="nearest")
    v = v.reshape(bg.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = v[..., 0] / v[..., 1]
    # (and the smoothed host weight of the grid's middle x, for estimate_delta's choice of pixels)
    return (ratio, v[:, v.shape[1] // 2, 1]) if host else ratio


def probe_frame_index(n_frames, pixels_per_frame, *, max_pixels=4096):
    """Indices of the whole frames, evenly spread, of at most ``max_pixels`` pixels in all (at least one)."""
    keep = max(1, min(n_frames, max_pixels // max(pixels_per_frame, 1)))
    return np.unique(np.linspace(0, n_frames - 1, keep).round().astype(int))


def probe_frames(da, *, max_pixels=4096):
    """Whole (y, x) frames, evenly spread, of at most ``max_pixels`` pixels in all (at least one frame),
    numpy ``(frames, y, x, energy)`` (or the data itself, up to ``max_pixels`` spectra, without y and x):
    the data :func:`estimate_delta` fits. Only those frames of a lazy series are read."""
    lead = da.dims[:-1]
    if {"y", "x"} <= set(lead):
        sub = da.transpose(..., "y", "x", "energy")
        per = sub.sizes["y"] * sub.sizes["x"]
        flat = sub.data.reshape((-1, sub.sizes["y"], sub.sizes["x"], sub.shape[-1]))
        flat = flat[probe_frame_index(flat.shape[0], per, max_pixels=max_pixels)]
    else:
        flat = da.data.reshape(-1, da.shape[-1])
        flat = flat[::max(1, flat.shape[0] // max_pixels)][:max_pixels]
    return np.asarray(flat.compute() if hasattr(flat, "compute") else flat, float)


def estimate_delta(probe, **kwargs):
    """The Li-K shift between the regions' x that best describes the data: :func:`._li_shift_search.estimate_delta`
    (the search lives in its own module since it was made cheap, issue 20; its name stays here).

    Examples
    --------
    >>> from ionscope.eels import _li_shift_search
    >>> estimate_delta.__module__ == __name__ and callable(_li_shift_search.estimate_delta)
    True
    """
    from ._li_shift_search import estimate_delta as search

    return search(probe, **kwargs)
