# SPDX-License-Identifier: GPL-3.0-or-later
"""Array kernels for EELS fitting: power-law background + reference spectra.

Model of one spectrum over the fit window (x = E / E0, E0 = start of the window)::

    μ(E) = A · x^(−r) + Σ_i B_i · S_i(E)          (background="powerlaw")
    μ(E) = Σ_j a_j · x^(−r_j) + Σ_i B_i · S_i(E)  (background="basis", fixed r_j)
    μ(E) = Σ_i B_i · S_i(E)                       (background=None)

Fits (all vectorised over pixels, see :mod:`._solve`):

* ``weights=None`` — least squares. For the linear models the solution is one
  precomputed (pseudo-)inverse applied to all pixels as a matrix product.
* ``weights="poisson"`` — Poisson maximum likelihood. For a model linear in its
  coefficients the Poisson score equations Xᵀ diag(1/μ)(y − μ) = 0 are exactly
  the normal equations of least squares weighted by 1/μ, so iteratively
  reweighted least squares with w = 1/μ (the model, not the data: weighting by
  the data biases low-count fits) converges to the ML estimate (McCullagh &
  Nelder, *Generalized Linear Models*, 1989, doi:10.1007/978-1-4899-3242-6).
  The inverse of XᵀWX at the solution is the Cramér–Rao covariance.
* ``background="powerlaw"`` — the exponent r is fitted per pixel by
  Gauss–Newton (Fisher scoring when weighted) jointly with the linear
  coefficients: at each step the model is linearised in r, which adds the
  column ∂μ/∂r = −A ln(x) x^(−r) to the design, and the linear sub-problem is
  solved exactly (non-negative where asked).

The kernels return one stacked float64 array ``(..., n_out)``; :func:`layout`
names its entries.
"""
from __future__ import annotations

import numpy as np

from ._solve import gram_weighted, nnls_batched, single_threaded_blas

# Pixels per block. Each iteration makes ~15 passes over (block × channels) float64
# arrays; at 256 × 1024 × 8 B = 2 MB they stay in cache between passes. Measured on the
# 2-core development machine (64×64×1021 SI): 256 px 0.46 s, 2048 px 0.68–0.98 s.
_BLOCK = 256
_R_LIMITS = (-2.0, 12.0)


def layout(n_refs: int, background: str | None, n_basis: int = 0) -> list[str]:
    """Names of the kernel outputs, in order (references are 'ref0'..)."""
    refs = [f"ref{i}" for i in range(n_refs)]
    if background == "powerlaw":
        lin = ["background_amplitude", "background_exponent"]
    elif background == "basis":
        lin = [f"basis{j}" for j in range(n_basis)]
    else:
        lin = []
    names = refs + lin
    out = names + [f"{n}_std" for n in names]
    if background == "powerlaw":
        out.append("amplitude_exponent_cov")
    out.append("chi2")
    return out


def powerlaw_basis(x: np.ndarray, exponents) -> np.ndarray:
    """Columns x^(−r_j) for the linear power-law basis, shape (N, L)."""
    return np.exp(-np.outer(np.log(x), np.asarray(exponents, float)))


def loglinear_exponent(y: np.ndarray, lnx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted log-linear power-law fit ``ln y = ln A − r ln x`` per pixel.

    Weights are the counts (var(ln y) ≈ 1/y for Poisson counts); channels with
    y ≤ 0 get zero weight. Closed-form 2×2 solution, vectorised. Used as the
    starting point of the exact fits; it is biased at low counts (E[ln y] ≠
    ln E[y]), which is why it is not the final answer.

    Returns ``(A, r)``, with A the amplitude at x = 1.
    """
    w = np.where(y > 0, y, 0.0)
    lny = np.log(np.where(y > 0, y, 1.0))
    s0 = w.sum(-1)
    m = w @ np.column_stack([lnx, lnx * lnx])
    s1, s2 = m[:, 0], m[:, 1]
    wl = w * lny
    t0 = wl.sum(-1)
    t1 = wl @ lnx
    det = s0 * s2 - s1 * s1
    ok = (det > 1e-12 * np.maximum(s0 * s2, 1e-300)) & (s0 > 0)
    safe = np.where(ok, det, 1.0)
    slope = np.where(ok, (s0 * t1 - s1 * t0) / safe, -3.0)
    intercept = np.where(ok, (t0 - slope * s1) / np.where(s0 > 0, s0, 1.0), 0.0)
    return np.exp(intercept), np.clip(-slope, *_R_LIMITS)


def _floor(mu: np.ndarray, y: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    # Poisson variance is μ; a relative floor keeps 1/μ finite where the model
    # touches zero (e.g. far above the edges at very low dose).
    if scale is None:
        scale = np.maximum(np.abs(y).mean(-1, keepdims=True), 1e-300)
    return np.maximum(mu, 1e-3 * scale)


def _pearson_chi2(y, mu, dof):
    var = np.maximum(mu, 1e-3 * np.maximum(np.abs(y).mean(-1, keepdims=True), 1e-300))
    return ((y - mu) ** 2 / var).sum(-1) / max(dof, 1)


def fit_linear_poisson_block(Y, X, constrained, *, n_iter, tol, G0=None):
    """Poisson ML fit of a fixed design X (N, K) to spectra Y (P, N) by IRLS. Returns (coef, var, chi2).

    Starts from the unweighted solution; ``G0`` (XᵀX) may be passed when already known.
    The unweighted fit of a fixed design is :func:`fit_linear_unweighted`.
    """
    P, N = Y.shape
    K = X.shape[1]
    if G0 is None:
        G0 = X.T @ X
    coef = nnls_batched(G0, Y @ X, constrained)
    for _ in range(n_iter):
        w = 1.0 / _floor(coef @ X.T, Y)
        G = gram_weighted(X, w)
        new = nnls_batched(G, (w * Y) @ X, constrained)
        step = np.max(np.abs(new - coef)) / max(np.max(np.abs(new)), 1e-300)
        coef = new
        if step < tol:
            break
    w = 1.0 / _floor(coef @ X.T, Y)
    cov = np.linalg.inv(_regular(gram_weighted(X, w)))
    var = np.einsum("pkk->pk", cov)
    mu = coef @ X.T
    return coef, var, _pearson_chi2(Y, mu, N - K)


# Pixels per block of the unweighted linear path: the float64 copy of a block (8 MB) and its
# float32 model / residual (4 MB each) stay in the 32 MB L3 cache between passes. Measured on
# 128×128×1024 float32 (one thread): 256 px 39 ms per frame (Python overhead of 64 blocks),
# 1024 px fastest, 4096 px slower again (out of cache).
_BLOCK_LINEAR = 1024


def fit_linear_unweighted(flat, X, constrained):
    """Least squares of a fixed design X (N, K) for all spectra ``flat`` (P, N) in a few passes.

    The fast path of :func:`mlls` (``weights=None`` with a linear background). Per block of
    pixels: one float64 GEMM ``Y·[X, 1]`` gives the right-hand sides Xᵀy *and* the row sums
    (the column of ones), the coefficients are one small product with (XᵀX)⁻¹, and the
    residual statistics come from one more pass with the block still in cache. Pixels with a
    negative constrained weight are re-solved exactly (:func:`._solve._nnls_enumerate`) before
    that pass; with 1024-pixel blocks this costs 16 small enumerations per 128×128 frame.

    Returns ``(coef, var, chi2, rowsum)``; ``rowsum`` (Σ over channels) lets the caller
    find empty and non-finite spectra without another pass.
    """
    from ._solve import _nnls_enumerate, _ridge

    P, N = flat.shape
    K = X.shape[1]
    XA = np.column_stack([X, np.ones(N)])
    G0 = X.T @ X
    # the same inverse as nnls_batched's unconstrained shared-design solve, so that the
    # coefficients equal those of the general path to rounding
    Ginv_T = np.linalg.inv(_ridge(G0)).T
    G0inv_diag = np.diag(np.linalg.pinv(G0))
    single = flat.dtype == np.float32
    # Residual statistics only need ~4 significant digits: for float32 data they run in
    # float32 (half the bytes, twice the SIMD width); the coefficients are solved in float64.
    rdt = np.float32 if single else np.float64
    XT_r = np.ascontiguousarray(X.T, dtype=rdt)
    prod = np.empty((P, K + 1))
    coef = np.empty((P, K))
    rss = np.empty(P)
    chi2 = np.empty(P)
    B = min(_BLOCK_LINEAR, P)
    # buffers reused across blocks instead of new multi-MB temporaries per block
    buf64 = np.empty((B, N))
    mu_buf = np.empty((B, N), rdt)
    r_buf = np.empty((B, N), rdt)

    def stats(raw, c, rows_sum, out_rss, out_chi2):
        n = raw.shape[0]
        mu = np.matmul(c.astype(rdt), XT_r, out=mu_buf[:n])
        r = np.subtract(raw, mu, out=r_buf[:n], casting="unsafe")
        if single:
            # |mean y| = mean |y| for counts: the floor from the row sums at hand, no extra pass
            level = np.abs(rows_sum) / N
        else:
            level = np.abs(raw).mean(-1)
        vfloor = (1e-3 * np.maximum(level, np.finfo(rdt).tiny)).astype(rdt)[:, None]
        # the floor rarely binds: one read-only min (0.7 ms per 128×128 frame) usually
        # saves the read-write pass of the maximum (2.3 ms)
        if not mu.min() >= vfloor.max():
            np.maximum(mu, vfloor, out=mu)
        np.multiply(r, r, out=r)
        out_rss[:] = r.sum(-1)
        out_chi2[:] = np.divide(r, mu, out=r).sum(-1)

    idx = np.flatnonzero(constrained)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN/Inf rows: flagged by the caller
        for start in range(0, P, B):
            rows = slice(start, min(P, start + B))
            raw = flat[rows]
            n = raw.shape[0]
            Yb = buf64[:n]
            np.copyto(Yb, raw)  # float64 conversion while the block is in cache
            np.matmul(Yb, XA, out=prod[rows])
            c = np.matmul(prod[rows, :K], Ginv_T, out=coef[rows])
            if idx.size:
                # the unconstrained optimum is the NNLS optimum wherever it is feasible; exact
                # enumeration of active sets for the rest (13 % of the pixels at dose 200), in
                # the block, so that the residual pass below runs once per pixel (re-fitting the
                # clipped pixels afterwards, over all blocks at once: 33 vs 29-30 ms per frame)
                bad = np.flatnonzero(np.any(c[:, idx] < 0, axis=1))
                if bad.size:
                    c[bad] = _nnls_enumerate(G0, prod[start + bad, :K], idx, True)
            stats(raw, c, prod[rows, K], rss[rows], chi2[rows])
    dof = max(N - K, 1)
    var = G0inv_diag[None, :] * (rss / dof)[:, None]
    return coef, var, chi2 / dof, prod[:, K]


def _powerlaw_step(Y, w, r, lnx, S, SS, moments, constrained, bg=None):
    """One linearised solve at exponent r: returns the (P, 2 + M) solution and the normal matrix.

    The design columns are x^(−r) and its r-derivative −ln(x)·x^(−r); every
    weighted cross product is written as one GEMM of a (P, N) array with a
    small (N, k) table (``moments`` = [1, −ln x, ln²x]) instead of separate
    passes over the data, which halves the memory traffic.
    """
    P = Y.shape[0]
    M = S.shape[1]
    K = M + 2
    if bg is None:
        bg = np.exp(-r[:, None] * lnx[None, :])
    wbg = w * bg
    q = (wbg * bg) @ moments  # Σw·bg², Σw·bg·d, Σw·d²
    G = np.empty((P, K, K))
    G[:, 0, 0] = q[:, 0]
    G[:, 0, 1] = G[:, 1, 0] = q[:, 1]
    G[:, 1, 1] = q[:, 2]
    wy = w * Y
    t = (wy * bg) @ moments[:, :2]
    rhs = np.empty((P, K))
    rhs[:, :2] = t
    if M:
        cross = wbg @ np.column_stack([S, -lnx[:, None] * S])  # (P, 2M)
        G[:, 0, 2:] = G[:, 2:, 0] = cross[:, :M]
        G[:, 1, 2:] = G[:, 2:, 1] = cross[:, M:]
        G[:, 2:, 2:] = (w @ SS).reshape(P, M, M)
        rhs[:, 2:] = wy @ S
    return nnls_batched(G, rhs, constrained), G, bg


def fit_powerlaw_block(Y, lnx, S, *, nonnegative, weights, n_iter, tol, r0=None, a0=None):
    """Fit A·x^(−r) + S·B per pixel, r non-linear. Returns (A, r, B, var_A, var_r, var_B, cov_Ar, chi2).

    Pixels leave the iteration as soon as their own exponent step and
    relative coefficient change fall below ``tol``, so the cost follows the
    slowest pixels only where they are.
    """
    P, N = Y.shape
    M = S.shape[1]
    K = M + 2
    constrained = np.zeros(K, bool)
    constrained[2:] = nonnegative
    if r0 is None:
        a_init, r = loglinear_exponent(Y, lnx)
    else:
        r = np.broadcast_to(np.asarray(r0, float), (P,)).copy()
        a_init = None if a0 is None else np.broadcast_to(np.asarray(a0, float), (P,))
    moments = np.column_stack([np.ones_like(lnx), -lnx, lnx * lnx])
    SS = (S[:, :, None] * S[:, None, :]).reshape(N, M * M)
    poisson = weights == "poisson"
    if poisson and a_init is not None:
        w = 1.0 / _floor(a_init[:, None] * np.exp(-r[:, None] * lnx[None, :]), Y)
    elif poisson:
        # start from data weights (1/max(y, 1)): close to the final 1/μ, so fewer
        # reweightings are needed; the iterations then weight by the model only
        w = 1.0 / np.maximum(Y, np.maximum(1.0, 1e-3 * np.abs(Y).mean(-1, keepdims=True)))
    else:
        w = np.ones((P, N))
    sol = np.zeros((P, K))
    prev = sol.copy()
    active = np.arange(P)
    yscale = np.maximum(np.abs(Y).mean(-1, keepdims=True), 1e-300)
    bg_cur = None  # x^(−r) at the current r, reused by the next step while all pixels are active
    for it in range(n_iter):
        if active.size == 0:
            break
        full = active.size == P  # avoid copying the whole block while every pixel is still moving
        Ya, wa, ra = (Y, w, r) if full else (Y[active], w[active], r[active])
        new, G, _ = _powerlaw_step(Ya, wa, ra, lnx, S, SS, moments, constrained, bg=bg_cur if full else None)
        bg_cur = None
        A = new[:, 0]
        ok = np.abs(A) > 1e-12 * (yscale[:, 0] if full else yscale[active, 0])
        dr = np.clip(np.where(ok, new[:, 1] / np.where(ok, A, 1.0), 0.0), -1.0, 1.0)
        ra = np.clip(ra + dr, *_R_LIMITS)
        scale = np.maximum(np.abs(new).max(-1), 1e-300)
        change = np.maximum(np.abs(dr), np.abs(new - (sol if full else sol[active])).max(-1) / scale)
        if full:
            r, sol = ra, new
        else:
            r[active], sol[active] = ra, new
        done = change < tol
        if poisson:
            bg_new = np.exp(-ra[:, None] * lnx[None, :])
            mu = A[:, None] * bg_new + (new[:, 2:] @ S.T if M else 0.0)
            w_new = 1.0 / _floor(mu, Ya, yscale if full else yscale[active])
            if full:
                bg_cur = bg_new
                w = w_new
            else:
                w[active] = w_new
            # Statistical stop: every parameter moved by < 1 % of its own standard error
            # (Cramér–Rao, scaled by the fit's χ²). Iterating further changes nothing
            # measurable; on noise-free data χ² → 0 and the relative tolerance rules.
            if it >= 1:
                chi2 = ((Ya - mu) ** 2 * w_new).sum(-1) / max(N - K, 1)
                sd = np.sqrt(np.maximum(np.einsum("pkk->pk", np.linalg.inv(_regular(G))), 0) * chi2[:, None])
                step = np.abs(new - (prev if full else prev[active]))
                step[:, 1] = np.abs(new[:, 1])  # the exponent column's coefficient is itself the step A·δr
                done |= np.all(step <= 1e-2 * sd, axis=1)
        prev = sol.copy() if full else prev
        if not full:
            prev[active] = sol[active]
        active = active[~done]
    # Final solve at the converged exponent and weights: coefficients and covariance.
    sol, G, bg = _powerlaw_step(Y, w, r, lnx, S, SS, moments, constrained)
    A = sol[:, 0]
    B = sol[:, 2:]
    mu = A[:, None] * bg + (B @ S.T if M else 0.0)
    # the final linearised solve is itself one more Gauss–Newton step: A and B are already
    # the updated values, so the exponent takes its update too
    nzA = np.abs(A) > 1e-12 * yscale[:, 0]
    r = np.clip(r + np.where(nzA, np.clip(sol[:, 1] / np.where(nzA, A, 1.0), -1.0, 1.0), 0.0), *_R_LIMITS)
    dof = N - K
    cov = np.linalg.inv(_regular(G))
    if not poisson:
        s2 = ((Y - mu) ** 2).sum(-1) / max(dof, 1)
        cov = cov * s2[:, None, None]
    nz = np.abs(A) > 0
    safeA = np.where(nz, A, 1.0)
    # the r-column coefficient is c = A·δr, so var(r) = var(c)/A², cov(A, r) = cov(A, c)/A
    var_A = cov[:, 0, 0]
    var_r = np.where(nz, cov[:, 1, 1] / safeA**2, np.inf)
    cov_Ar = np.where(nz, cov[:, 0, 1] / safeA, 0.0)
    var_B = np.einsum("pkk->pk", cov)[:, 2:]
    return A, r, B, var_A, var_r, var_B, cov_Ar, _pearson_chi2(Y, mu, dof)


def _regular(G):
    k = G.shape[-1]
    diag = np.einsum("...ii->...i", G)
    return G + (1e-12 * np.maximum(diag, 1e-300))[..., :, None] * np.eye(k)


def fit_kernel(spectra, **kwargs):
    """Kernel: fit every spectrum of ``spectra`` (..., energy); see :func:`_fit_kernel`."""
    with single_threaded_blas():
        return _fit_kernel(spectra, **kwargs)


def _fit_kernel(spectra, *, channels, lnx, refs, background, basis, nonnegative, weights,
                n_iter, tol, r0=None, check_finite=False):
    """Kernel: fit every spectrum of ``spectra`` (..., energy). See :func:`layout`.

    Parameters
    ----------
    spectra : ndarray (..., n_energy)
    channels : ndarray of int
        Indices of the fit-window channels.
    lnx : ndarray (n_fit,)
        ln(E/E0) on the fit window.
    refs : ndarray (n_fit, M)
        References on the fit window.
    background : {"powerlaw", "basis", None}
    nonnegative : bool or ndarray of bool, shape (M,)
        Which reference weights are constrained to ≥ 0.
    basis : ndarray (n_fit, L) or None
        Fixed power-law columns for ``background="basis"``.
    check_finite : bool
        Raise :class:`~ionscope.errors.DataValidationError` on NaN/Inf in the fit window
        (found from the row sums the fit computes anyway, instead of a separate pass);
        otherwise such spectra give NaN outputs.
    """
    lead = spectra.shape[:-1]
    flat = np.asarray(spectra).reshape(-1, spectra.shape[-1])
    # a contiguous window is a view (no copy); conversion to float64 happens per block,
    # while the block is in cache
    if channels.size and np.all(np.diff(channels) == 1):
        flat = flat[:, channels[0]:channels[-1] + 1]
    else:
        flat = flat[:, channels]
    M = refs.shape[1]
    L = 0 if basis is None else basis.shape[1]
    n_out = len(layout(M, background, L))
    P = flat.shape[0]
    out = np.zeros((P, n_out))
    empty = np.zeros(P, bool)
    finite = np.ones(P, bool)
    X = refs if basis is None else np.column_stack([refs, basis])
    constrained = np.zeros(X.shape[1], bool)
    constrained[:M] = nonnegative
    G0 = None
    if background != "powerlaw" and weights is None:
        coef, var, chi2, rowsum = fit_linear_unweighted(flat, X, constrained)
        finite = np.isfinite(rowsum)
        empty = rowsum == 0
        if empty.any():  # only rows summing to 0 can be all-zero
            empty[empty] = ~np.any(flat[empty] != 0, axis=1)
        out = np.column_stack([coef, np.sqrt(np.maximum(var, 0)), chi2])
        return _finish(out, empty, finite, lead, M, background, L, check_finite, spectra)
    if background != "powerlaw":
        G0 = X.T @ X  # once per kernel call, not per block

    def block(start):
        rows = slice(start, min(P, start + _BLOCK))
        raw = flat[rows]
        Yb = raw.astype(np.float64)
        rowsum = raw.sum(1)
        # NaN/Inf propagate into the row sum; only rows summing to 0 can be all-zero
        fin = np.isfinite(rowsum)
        if check_finite and not fin.all():
            _raise_nonfinite(spectra)
        emp = rowsum == 0
        if emp.any():
            emp[emp] = ~np.any(Yb[emp] != 0, axis=1)
        finite[rows], empty[rows] = fin, emp
        ok = fin & ~emp
        if not ok.all():
            Yb = Yb[ok]
        if Yb.shape[0] == 0:
            return
        if background == "powerlaw":
            A, r, B, vA, vr, vB, cAr, chi2 = fit_powerlaw_block(
                Yb, lnx, refs, nonnegative=nonnegative, weights=weights, n_iter=n_iter, tol=tol, r0=r0)
            coef = np.column_stack([B, A, r])
            var = np.column_stack([vB, vA, vr])
            res = np.column_stack([coef, np.sqrt(np.maximum(var, 0)), cAr, chi2])
        else:
            coef, var, chi2 = fit_linear_poisson_block(Yb, X, constrained, n_iter=n_iter, tol=tol, G0=G0)
            res = np.column_stack([coef, np.sqrt(np.maximum(var, 0)), chi2])
        if ok.all():
            out[rows] = res
        else:
            out[np.flatnonzero(ok) + start] = res

    starts = range(0, P, _BLOCK)
    workers = block_workers(len(starts))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        # blocks are independent and write disjoint rows; numpy ufuncs and (single-threaded) BLAS
        # release the GIL, so two blocks run on two cores (issue 20: the Poisson path ~1.9× faster)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    else:
        for start in starts:
            block(start)
    return _finish(out, empty, finite, lead, M, background, L, check_finite, spectra)


def block_workers(n_blocks: int, workers: int | None = None) -> int:
    """Threads for a kernel's independent pixel blocks: the cores this process may use, but 1 inside
    a worker thread (a dask task already runs on one of the scheduler's threads, one per core)."""
    import os
    import threading

    if workers is not None:
        return max(1, int(workers))
    if n_blocks < 2 or threading.current_thread() is not threading.main_thread():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_blocks, cores))


def _raise_nonfinite(spectra):
    from ..data import check_finite

    check_finite(spectra, name="si")  # raises, counting NaN/Inf over the whole input


def _finish(out, empty, finite, lead, M, background, L, check_finite, spectra):
    # An all-zero spectrum carries no information: coefficients and χ² are 0 and
    # the standard errors NaN ("undefined"), rather than a failed solve.
    if check_finite and not finite.all():
        _raise_nonfinite(spectra)
    names = layout(M, background, L)
    std_cols = [i for i, n in enumerate(names) if n.endswith("_std")]
    out[np.ix_(empty, std_cols)] = np.nan
    out[~finite] = np.nan
    return out.reshape(*lead, out.shape[-1])


def background_kernel(spectra, *, channels, lnx, method, weights, n_iter, tol):
    """Kernel for :func:`remove_background` parameters: (..., 6) = A, r, σA, σr, cov(A, r), χ²."""
    with single_threaded_blas():
        return _background_kernel(spectra, channels=channels, lnx=lnx, method=method, weights=weights,
                                  n_iter=n_iter, tol=tol)


def _background_kernel(spectra, *, channels, lnx, method, weights, n_iter, tol):
    from ._twoarea import two_area_block

    lead = spectra.shape[:-1]
    Y = np.asarray(spectra, dtype=np.float64).reshape(-1, spectra.shape[-1])[:, channels]
    out = np.zeros((Y.shape[0], 6))
    for start in range(0, Y.shape[0], _BLOCK):
        Yb = Y[start:start + _BLOCK]
        if method == "two_area":
            A, r, vA, vr, cAr = two_area_block(Yb, lnx)
            chi2 = _pearson_chi2(Yb, A[:, None] * np.exp(-r[:, None] * lnx), Yb.shape[1] - 2)
        elif method == "loglinear":
            A0, r0 = loglinear_exponent(Yb, lnx)
            # keep the log-linear estimate; the Poisson Fisher matrix at it gives the standard errors
            _, _, _, vA, vr, _, cAr, chi2 = fit_powerlaw_block(
                Yb, lnx, np.zeros((lnx.size, 0)), nonnegative=False, weights="poisson", n_iter=0, tol=tol,
                r0=r0, a0=A0)
            A, r = A0, r0
        else:
            A, r, _, vA, vr, _, cAr, chi2 = fit_powerlaw_block(
                Yb, lnx, np.zeros((lnx.size, 0)), nonnegative=False, weights=weights, n_iter=n_iter, tol=tol)
        out[start:start + _BLOCK] = np.column_stack(
            [A, r, np.sqrt(np.maximum(vA, 0)), np.sqrt(np.maximum(vr, 0)), cAr, chi2])
    return out.reshape(*lead, 6)


__all__ = ["fit_kernel", "background_kernel", "layout", "powerlaw_basis", "loglinear_exponent"]
