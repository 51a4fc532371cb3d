# SPDX-License-Identifier: GPL-3.0-or-later
"""Batched small least-squares solvers: many pixels, a few unknowns each.

Every spectrum of a spectrum image is an independent fit with K ≈ 2–6
unknowns. Looping over pixels in Python (what general curve fitters do) costs
~1 ms per spectrum; here all pixels are solved at once as a stack of K×K
normal-equation systems (``numpy.linalg.solve`` on an (P, K, K) stack), so the
cost is a few BLAS passes over the data.

Non-negativity is exact: for m constrained unknowns the NNLS solution is the
unconstrained solution on the support of the optimum, so we solve the
2**m sub-problems that fix a subset of the constrained unknowns at zero,
keep the feasible ones and pick the lowest objective (the problem is convex,
so the best feasible candidate is the global optimum; Lawson & Hanson,
*Solving Least Squares Problems*, SIAM 1995, doi:10.1137/1.9781611971217,
ch. 23). With m ≤ 6 this enumeration is faster than an iterative active set
because every candidate is one batched solve with no data-dependent branching.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import DataValidationError

#: Above this many constrained unknowns, enumeration (2**m solves) is replaced by
#: projected coordinate descent.
MAX_ENUMERATED = 6


def single_threaded_blas():
    """Context manager: one BLAS thread inside a kernel.

    The products here are tall and narrow ((pixels × channels)·(channels × few)),
    i.e. memory-bound: extra BLAS threads add nothing, and on a loaded machine
    OpenBLAS's spinning threads made them 10–50× slower (measured: 8–16 ms
    instead of 0.3–1.5 ms for a (2048×1021)·(1021×k) product at load 6 on
    2 cores). Parallelism comes from dask instead, one chunk per thread.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController  # installed with scikit-learn
        except ImportError:  # pragma: no cover
            import contextlib

            return contextlib.nullcontext()
        # one controller per process: finding the loaded BLAS libraries costs ~0.2 ms, which
        # per dask chunk and per call of the ~33 ms fast path is not negligible; the cached
        # controller's limit() costs ~6 µs
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


def _ridge(G: np.ndarray) -> np.ndarray:
    """Add a relative 1e-12 ridge so that an empty pixel (zero column) stays solvable.

    The ridge changes a well-posed solution by ~1e-12 relative, far below any
    tolerance; it only matters where a column is identically zero.
    """
    k = G.shape[-1]
    diag = np.einsum("...ii->...i", G)
    scale = np.maximum(diag, 1e-300)
    return G + (1e-12 * scale)[..., :, None] * np.eye(k)


def solve_batched(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``G[p] x[p] = b[p]`` for a stack (..., K, K) of SPD systems."""
    return np.linalg.solve(_ridge(G), b[..., None])[..., 0]


def nnls_batched(G: np.ndarray, b: np.ndarray, constrained: np.ndarray) -> np.ndarray:
    """Minimise ``xᵀGx − 2bᵀx`` with ``x[constrained] ≥ 0``, for every pixel.

    Parameters
    ----------
    G : ndarray, shape (P, K, K) or (K, K)
        Normal matrices (``XᵀWX``); a single (K, K) matrix is shared by all pixels.
    b : ndarray, shape (P, K)
        Right-hand sides (``XᵀWy``).
    constrained : ndarray of bool, shape (K,)
        Which unknowns must be non-negative.

    Returns
    -------
    ndarray, shape (P, K)
    """
    constrained = np.asarray(constrained, bool)
    idx = np.flatnonzero(constrained)
    m = idx.size
    P, K = b.shape
    shared = G.ndim == 2
    if m == 0:
        if shared:
            return b @ np.linalg.inv(_ridge(G)).T
        return solve_batched(G, b)
    if m > MAX_ENUMERATED:
        return _nnls_coordinate_descent(G, b, constrained)
    # Most pixels' unconstrained optimum is already feasible, and then it is the NNLS
    # optimum: solve that first and enumerate active sets only for the rest.
    full = nnls_batched(G, b, np.zeros(K, bool))
    bad = np.flatnonzero(np.any(full[:, idx] < 0, axis=1))
    if bad.size == 0:
        return full
    full[bad] = _nnls_enumerate(G if shared else G[bad], b[bad], idx, shared)
    return full


def _nnls_enumerate(G, b, idx, shared):
    """Exact NNLS by enumerating which constrained unknowns sit at zero (see module docstring)."""
    P, K = b.shape
    m = idx.size
    best = np.zeros((P, K))
    best_obj = np.full(P, np.inf)
    for zeroed in itertools.product((False, True), repeat=m):
        free = np.ones(K, bool)
        free[idx[list(zeroed)]] = False
        x = np.zeros((P, K))
        if free.any():
            fi = np.flatnonzero(free)
            if shared:
                x[:, fi] = b[:, fi] @ np.linalg.inv(_ridge(G[np.ix_(fi, fi)])).T
            else:
                x[:, fi] = solve_batched(G[:, fi[:, None], fi[None, :]], b[:, fi])
        # At a sub-problem optimum xᵀGx = bᵀx, so the objective is −bᵀx.
        obj = -np.einsum("pk,pk->p", b, x)
        feasible = np.all(x[:, idx] >= 0, axis=1)
        better = feasible & (obj < best_obj)
        best[better] = x[better]
        best_obj[better] = obj[better]
    return best


def _nnls_coordinate_descent(G, b, constrained, n_sweeps: int = 200):
    """Projected coordinate descent (vectorised over pixels) for many constraints."""
    P, K = b.shape
    Gp = np.broadcast_to(G, (P, K, K)) if G.ndim == 2 else G
    x = np.zeros((P, K))
    diag = np.maximum(np.einsum("pii->pi", Gp), 1e-300)
    for _ in range(n_sweeps):
        for k in range(K):
            grad = np.einsum("pj,pj->p", Gp[:, k, :], x) - b[:, k]
            xk = x[:, k] - grad / diag[:, k]
            x[:, k] = np.maximum(xk, 0.0) if constrained[k] else xk
    return x


def gram_weighted(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``XᵀWX`` for a shared design X (N, K) and per-pixel weights w (P, N) → (P, K, K).

    One BLAS product of the weights with the N×K² table of column products;
    faster than ``einsum('pn,nk,nl->pkl')`` by an order of magnitude.
    """
    N, K = X.shape
    XX = (X[:, :, None] * X[:, None, :]).reshape(N, K * K)
    return (w @ XX).reshape(w.shape[0], K, K)


def check_design(X: np.ndarray, *, names) -> None:
    """Refuse a rank-deficient design (e.g. two identical references)."""
    s = np.linalg.svd(X / np.maximum(np.linalg.norm(X, axis=0), 1e-300), compute_uv=False)
    if s.size and s[-1] < 1e-10 * s[0]:
        raise DataValidationError(
            f"references: the fit columns {list(names)} are linearly dependent over fit_range "
            "(identical or zero references?); expected independent spectra"
        )
