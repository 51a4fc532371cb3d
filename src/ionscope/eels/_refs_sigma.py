# SPDX-License-Identifier: GPL-3.0-or-later
"""The references' own noise in each pixel's error bar (issue 19: "error bars are part of the result").

References made from the data's own regions (:func:`ionscope.eels.references_from_regions`) are means of
~10²–10³ noisy pixels. The fit corrects each pixel's estimate for that noise (errors in variables,
:func:`._li_shift.noise_gram`), but the maps' ``<name>_std`` is the sandwich σ of the pixel's own counts
*given* the references. The references' noise is one realisation shared by every pixel: it moves all
pixels of similar x together, so it never averages away. Measured on the 32×48×4 benchmark scene
(BENCHMARKS.md, "Issue 19 — two Li-K shapes at 100–400 counts, pinned"): the pooled x beyond the regions
scattered 2.7–4.2× the σ the pixels' ``_std`` give.

Its size per pixel, to first order: with design ``X`` (the pixel's Li-K shape at its x, the host shape,
the background basis), weights ``W`` and the estimate ``β = G⁻¹XᵀWy``, a perturbation ``E`` of the two
shapes moves the estimate by ``δβ = −G⁻¹XᵀW·Eβ`` (the part of ``Eβ`` the basis can absorb drops out by
itself). The delete-a-group jackknife replicates the references carry give ``E`` per replicate, and
``(g−1)/g·Σ_g δβ_g δβ_gᵀ`` is the references' covariance of (Li, host) per pixel (B. Efron, C. Stein,
Ann. Statist. 9 (1981) 586, doi:10.1214/aos/1176345462; K. M. Wolter, Introduction to Variance
Estimation, 2nd ed., Springer 2007, ch. 4, doi:10.1007/978-0-387-35099-8). The term ``G⁻¹EᵀW·r``
(references' noise times the pixel's residual) is left out on purpose: its mean is what the fit's
correction removes, and its spread is already in the pixel's sandwich σ (which uses the noisy shapes),
independent from pixel to pixel.

Cost: per pixel and replicate one product with the (m, K) design the fit has already formed, and the
per-channel covariances of the second-order term: 6–7 % of the fit's time (measured: median 1.5–1.6 s of
24–25 s per 32×48×4 fit over 56 draws at load 7–14, BENCHMARKS.md "Issue 19 — error bars with the
references' noise").

For a mean over pixels the references' σ does not shrink as 1/√N: over pixels of similar x (e.g. all beyond
the regions' x) it is the mean of the pixels' σ (their errors move together); over an x range that spans
the regions' x the errors change sign and that mean is an upper bound (measured on the benchmark scene over
x 0.6–1.0: 2–3× the spread).
"""
from __future__ import annotations

import numpy as np

#: ρ (largest eigenvalue of S⁻¹Ω: the share of a pixel's (Li, host) information the references' noise
#: takes) above which the references' noise correction is capped (:data:`._li_shift.MAX_CORRECTION`) and
#: biased (BENCHMARKS.md: under-correction from ρ ≈ 0.5 on the linear model with known truth)
RHO_WARN = 0.5
#: σ of x from the references alone (median over the pixels beyond the regions' x) above which x there
#: is not determined by the references
X_STD_WARN = 0.05


def extra_names(names):
    """The columns :func:`pixel_columns` adds after a fit's own (``names``: the two components, in the
    references' order)."""
    return ([f"{n}_std_references" for n in names] + [f"{n}_std_total" for n in names]
            + ["references_corr", "references_rho", "ratio_std_references"])


def pixel_columns(Ginv, X, w, d_li, d_host, beta, basis, var_pixel, rho, x_shape, order, member=None):
    """(P, 7) the columns of :func:`extra_names` for a batch of the Li-K shift fit: arguments as
    :func:`references_cov`, ``var_pixel`` (P, ≥2) the pixel-noise variances of (Li, host), ρ (P,), ``x_shape``
    (P,) the x of the pixel's neighbourhood (whose Li-K shape it was fitted with), ``order`` (index of Li,
    index of host) in the references' order, ``member`` (P,) bool: the regions' own pixels, whose references'
    part is 0 (the references reproduce them exactly on average: their own noise is in them).

    The references' part is evaluated at the weights ``(x_shape·host, host)``, not at the pixel's own: a
    pixel's Li weight is noisy (~75 % at 1000 counts per 0.1 eV channel), and the second-order term, square
    in the weights, would carry that noise's square as a bias. The last column is the references' σ of the
    Li/host ratio (x in the regions' units) at ``x_shape``.
    """
    b_eval = np.column_stack([x_shape * beta[:, 1], beta[:, 1]])
    cov = references_cov(Ginv, X, w, d_li, d_host, b_eval, basis)
    if member is not None:
        cov[member] = 0.0
    s_ref = np.sqrt(np.maximum(np.einsum("pii->pi", cov), 0.0))
    total = np.sqrt(var_pixel[:, :2] + s_ref**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.clip(cov[:, 0, 1] / (s_ref[:, 0] * s_ref[:, 1]), -1.0, 1.0))
        ratio = np.sqrt(np.maximum(cov[:, 0, 0] - 2 * x_shape * cov[:, 0, 1] + x_shape**2 * cov[:, 1, 1], 0.0)) \
            / np.abs(beta[:, 1])
    ratio = np.where(beta[:, 1] == 0, np.inf, ratio)  # no host: the ratio is undefined (as x's σ there)
    pos = np.argsort(order)  # internal (Li, host) → the references' order
    return np.column_stack([s_ref[:, pos], total[:, pos], corr, rho, ratio])


def information_ratio(Gp, om):
    """(P,) the largest eigenvalue ρ of ``S⁻¹Ω``: ``S`` the (Li, host) information of the normal matrix
    ``Gp`` (P, K, K) once the other columns are profiled out, ``om`` (P, 2, 2) the references' noise
    energy (:func:`._li_shift.noise_gram`); 0 where ``om`` is 0 (the regions' own pixels)."""
    lead, cross, rest = Gp[:, :2, :2], Gp[:, :2, 2:], Gp[:, 2:, 2:]
    info = lead - cross @ np.linalg.solve(rest, np.swapaxes(cross, 1, 2)) if Gp.shape[1] > 2 else lead
    with np.errstate(invalid="ignore", divide="ignore"):
        ev = np.linalg.eigvals(np.linalg.solve(info + 1e-300 * np.eye(2), om))
    return np.max(np.real(ev), axis=1)


def references_cov(Ginv, X, w, d_li, d_host, beta, basis=None):
    """(P, 2, 2) covariance of the (Li, host) weights caused by the references' noise.

    ``Ginv`` (P, K, K): the inverse normal matrix the fit used (corrected); ``X`` (P, m, K) its design
    (Li-K shape, host shape, then ``basis`` (m, b)), ``w`` (P, m) its weights; ``d_li`` (groups, P, m): each
    jackknife replicate's Li-K shape at the pixel's x, ``d_host`` (groups, m): its host shape; ``beta``
    (P, ≥2): the fitted (Li, host, ...) weights.

    Two terms. First order, ``δβ = −G⁻¹XᵀW·Eβ`` per replicate. Second order, the fluctuation of the noise
    energy ``EᵀWE`` about the ``Ω`` the fit subtracts, ``(EᵀWE − Ω)β``: for noise independent between
    channels its covariance is ``Σ_m w_m²·(C_m·βᵀC_mβ + C_mβ·βᵀC_m)`` (``C_m`` the per-channel covariance of
    the two shapes' noise outside the basis), scaled by ``ν/(ν + 2)`` (ν = groups − 1: the square of a
    jackknife covariance overestimates the square of the covariance, exactly so for one component).
    Measured on the linear model of ``tests/test_eels_refs_sigma.py`` (ρ ≈ 0.3): the first term alone
    explained 0.025 of an x spread of 0.031 over draws; with the second the pull's spread was ≈ 1.
    """
    n_g = d_li.shape[0]
    P, m = w.shape
    f = (n_g - 1) / n_g
    dl = np.moveaxis(d_li - d_li.mean(axis=0), 0, 1)                              # (P, groups, m)
    dh = np.asarray(d_host, float) - np.mean(d_host, axis=0)                       # (groups, m)
    # first order: the replicate's change of the pixel's model, Eβ, through the fit (batched products)
    e_beta = dl * beta[:, None, 0, None] + dh[None] * beta[:, None, 1, None]       # (P, groups, m)
    db = (e_beta @ (X * w[:, :, None])) @ np.swapaxes(Ginv[:, :2, :], 1, 2)        # −δβ (P, groups, 2)
    cov = f * (np.swapaxes(db, 1, 2) @ db)
    # second order, on the two shapes' noise outside the basis (the fit absorbs the rest)
    D = np.concatenate([dl, np.broadcast_to(dh[None], dl.shape)], axis=1)          # (P, 2·groups, m)
    if basis is not None and basis.shape[1]:
        wb = basis[None] * w[:, :, None]                                           # (P, m, b)
        H = np.swapaxes(wb, 1, 2) @ basis
        H[~(w.sum(axis=1) > 0)] = np.eye(basis.shape[1])
        D = D - np.swapaxes(basis[None] @ np.linalg.solve(H, np.swapaxes(D @ wb, 1, 2)), 1, 2)
    d0, d1 = D[:, :n_g], D[:, n_g:]
    c00, c01, c11 = (f * np.sum(a * b, axis=1) for a, b in ((d0, d0), (d0, d1), (d1, d1)))  # (P, m) each
    b0, b1 = beta[:, None, 0], beta[:, None, 1]
    cb0, cb1 = c00 * b0 + c01 * b1, c01 * b0 + c11 * b1                            # C_m·β
    bcb = b0 * cb0 + b1 * cb1
    w2 = w**2
    V = np.empty((P, 2, 2))
    V[:, 0, 0] = np.sum(w2 * (bcb * c00 + cb0 * cb0), axis=1)
    V[:, 0, 1] = V[:, 1, 0] = np.sum(w2 * (bcb * c01 + cb0 * cb1), axis=1)
    V[:, 1, 1] = np.sum(w2 * (bcb * c11 + cb1 * cb1), axis=1)
    nu = n_g - 1
    A = Ginv[:, :2, :2]
    return cov + nu / (nu + 2) * (A @ V @ np.swapaxes(A, 1, 2))


def ratio_std(li, co, s_li, s_co, corr):
    """σ of ``li/co`` from errors ``s_li``, ``s_co`` with correlation ``corr`` (first order): for x =
    (w_Li/w_Co)/k divide by k. Works elementwise on arrays or xarray objects.

    Examples
    --------
    >>> round(float(ratio_std(0.5, 1.0, 0.01, 0.02, 0.0)), 6)
    0.014142
    """
    q = li / co
    return np.sqrt(np.maximum(s_li**2 - 2 * corr * q * s_li * s_co + q**2 * s_co**2, 0.0)) / abs(co)


def describe(ds, names, region_x):
    """Name and explain the columns of :func:`extra_names` in the :func:`~ionscope.eels.mlls` Dataset ``ds``
    and store the regions' x (``references_x_low``, ``references_x_high``: the Li/host weight ratios of
    the two regions)."""
    common = ("; the references' part is common to every pixel (one realisation of the regions' noise): "
              "averaging pixels does not shrink it")
    for n in names:
        ds[f"{n}_std_references"].attrs.update(
            long_name=f"standard error of {n} from the references' own noise (jackknife over their "
                      f"replicates){common}", units="counts per unit reference")
        ds[f"{n}_std_total"].attrs.update(
            long_name=f"standard error of {n}: the pixel's noise ({n}_std) and the references' "
                      f"({n}_std_references) in quadrature{common}", units="counts per unit reference")
    ds["references_corr"].attrs.update(
        long_name=f"correlation of the {names[0]} and {names[1]} errors from the references' noise", units="1")
    ds["ratio_std_references"].attrs.update(
        long_name=f"σ of the {names[0]}/{names[1]} weight ratio (x in the regions' units) from the references' "
                  f"noise, at the neighbourhood's x{common}", units="1")
    ds["references_rho"].attrs.update(
        long_name="share of the pixel's information the references' noise takes (largest eigenvalue of S⁻¹Ω; "
                  f"above {RHO_WARN:g} the correction is capped and x is biased); 0 for the regions' own pixels",
        units="1")
    # two numbers, not a list: the pipeline's stage store keeps scalar attrs
    ds.attrs["references_x_low"], ds.attrs["references_x_high"] = float(min(region_x)), float(max(region_x))
