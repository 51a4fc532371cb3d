# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch orthogonal matching pursuit, vectorised over signals (array kernel).

Batch-OMP (Rubinstein, Zibulevsky & Elad 2008) works only with the Gram matrix
``G = D^T D`` and the projections ``D^T x``, and updates a Cholesky factor of
the selected atoms' Gram sub-matrix by one row per iteration. Here every step
is done for *all* signals at once with numpy array operations (the sparsity is
small, so the per-iteration loops over the support size are short), which is
what makes it tens of times faster than a per-signal OMP such as
scikit-learn's ``orthogonal_mp_gram`` on many small patches.

References
----------
R. Rubinstein, M. Zibulevsky, M. Elad, "Efficient implementation of the K-SVD
algorithm using batch orthogonal matching pursuit", Technion CS-2008-08 (2008).
Y. C. Pati, R. Rezaiifar, P. S. Krishnaprasad, Proc. 27th Asilomar Conf. (1993) 40,
doi:10.1109/ACSSC.1993.342465.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError


def _forward(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve L y = b for a batch of lower-triangular L (n, m, m), b (n, m)."""
    m = b.shape[1]
    y = np.empty_like(b)
    for i in range(m):
        y[:, i] = (b[:, i] - np.einsum("nj,nj->n", L[:, i, :i], y[:, :i])) / L[:, i, i]
    return y


def _backward(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve L^T y = b for a batch of lower-triangular L."""
    m = b.shape[1]
    y = np.empty_like(b)
    for i in range(m - 1, -1, -1):
        y[:, i] = (b[:, i] - np.einsum("nj,nj->n", L[:, i + 1:, i], y[:, i + 1:])) / L[:, i, i]
    return y


def batch_omp(
    signals: np.ndarray,
    dictionary: np.ndarray,
    *,
    sparsity: int,
    tol: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse codes of many signals over one dictionary by batch OMP.

    Parameters
    ----------
    signals : ndarray (n_signals, n_features)
    dictionary : ndarray (n_atoms, n_features)
        Atoms as rows, each of unit l2 norm.
    sparsity : int
        Maximum number of atoms per signal.
    tol : float, optional
        Stop a signal early once its squared residual norm is ``<= tol``
        (error-constrained OMP, used for denoising with ``tol`` ~ C^2 sigma^2 n_features).

    Returns
    -------
    indices : ndarray (n_signals, sparsity) of int
        Selected atoms, in selection order; -1 where a signal stopped early.
    coefs : ndarray (n_signals, sparsity)
        Their coefficients (0 where unused).

    References
    ----------
    R. Rubinstein, M. Zibulevsky, M. Elad, Technion CS-2008-08 (2008).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> D = rng.normal(size=(32, 16)); D /= np.linalg.norm(D, axis=1, keepdims=True)
    >>> x = 2.0 * D[3] - 1.5 * D[7]
    >>> idx, c = batch_omp(x[None], D, sparsity=2)
    >>> sorted(idx[0].tolist()), np.allclose(sorted(c[0]), [-1.5, 2.0])
    ([3, 7], True)
    """
    X = np.asarray(signals)
    D = np.asarray(dictionary)
    if X.ndim != 2 or D.ndim != 2 or X.shape[1] != D.shape[1]:
        raise DataValidationError(
            f"batch_omp: signals (n, f) and dictionary (atoms, f) must share f; got {X.shape} and {D.shape}"
        )
    if sparsity < 1:
        raise DataValidationError(f"batch_omp: sparsity must be >= 1, got {sparsity}")
    dtype = np.result_type(X.dtype, D.dtype, np.float32)
    X = X.astype(dtype, copy=False)
    D = D.astype(dtype, copy=False)
    n = X.shape[0]
    m = min(int(sparsity), D.shape[0], D.shape[1])
    G = D @ D.T
    alpha0 = X @ D.T  # (n, atoms): correlations with the original signal
    alpha = alpha0.copy()
    idx = np.full((n, m), -1, np.int64)
    coef = np.zeros((n, m), dtype)
    L = np.zeros((n, m, m), dtype)
    L[:, 0, 0] = 1.0
    active = np.arange(n)
    err = np.einsum("nf,nf->n", X, X) if tol is not None else None
    delta_prev = np.zeros(n, dtype)
    rows = np.arange(n)
    for i in range(m):
        if tol is not None:
            active = active[err[active] > tol]
        if active.size == 0:
            break
        a = active
        corr = np.abs(alpha[a])
        if i:
            # a selected atom can reappear only through round-off; forbid it
            corr[np.arange(a.size)[:, None], idx[a, :i]] = -1.0
        j = np.argmax(corr, axis=1)
        if i:
            # Cholesky update: new row w solves L w = G[I, j]
            gIj = G[idx[a, :i], j[:, None]]
            w = _forward(L[a, :i, :i], gIj)
            diag = 1.0 - np.einsum("ni,ni->n", w, w)
            # a (numerically) dependent atom ends that signal's pursuit
            ok = diag > 1e-6
            a, j, w, diag = a[ok], j[ok], w[ok], diag[ok]
            active = a
            if a.size == 0:
                break
            L[a, i, :i] = w
            L[a, i, i] = np.sqrt(diag)
        idx[a, i] = j
        sel = idx[a, :i + 1]
        rhs = alpha0[a[:, None], sel]
        gamma = _backward(L[a, :i + 1, :i + 1], _forward(L[a, :i + 1, :i + 1], rhs))
        coef[a, :i + 1] = gamma
        beta = np.einsum("nk,nka->na", gamma, G[sel])
        alpha[a] = alpha0[a] - beta
        if tol is not None:
            delta = np.einsum("nk,nk->n", gamma, beta[np.arange(a.size)[:, None], sel])
            err[a] = err[a] - delta + delta_prev[a]
            delta_prev[a] = delta
    del rows
    return idx, coef


def omp_reconstruct(indices: np.ndarray, coefs: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
    """Signals ``sum_k coefs[:, k] * dictionary[indices[:, k]]`` (ignores index -1)."""
    D = np.asarray(dictionary)
    safe = np.where(indices < 0, 0, indices)
    c = np.where(indices < 0, 0, coefs)
    return np.einsum("nk,nkf->nf", c, D[safe])
