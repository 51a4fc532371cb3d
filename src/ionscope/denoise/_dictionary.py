# SPDX-License-Identifier: GPL-3.0-or-later
"""Dictionary learning on the data's own patches: DCT start, then K-SVD (array kernels).

The dictionary is initialised with a separable over-complete DCT (spatial x
temporal atoms) and refined by K-SVD: alternate batch-OMP sparse coding of a
sample of patches with a rank-1 update of each atom and of the coefficients of
the patches that use it. The rank-1 update is the approximate one of
Rubinstein et al. (one power iteration instead of an SVD), which gives the same
denoising quality at a fraction of the cost.

References
----------
M. Aharon, M. Elad, A. Bruckstein, IEEE Trans. Signal Process. 54 (2006) 4311,
doi:10.1109/TSP.2006.881199 (K-SVD).
R. Rubinstein, M. Zibulevsky, M. Elad, Technion CS-2008-08 (2008) (approximate K-SVD, batch OMP).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError
from ._omp import batch_omp


def _overcomplete_dct_1d(n: int, m: int) -> np.ndarray:
    """``m`` cosine atoms of length ``n`` (rows), the first constant; unit norm."""
    i = np.arange(n)[None, :]
    k = np.arange(m)[:, None]
    atoms = np.cos(np.pi * k * i / m)
    atoms[1:] -= atoms[1:].mean(axis=1, keepdims=True)
    norms = np.linalg.norm(atoms, axis=1, keepdims=True)
    return atoms / np.where(norms > 0, norms, 1.0)


def dct_dictionary(size: tuple[int, int, int], n_atoms: int) -> np.ndarray:
    """Separable over-complete DCT dictionary for ``(pt, p, p)`` patches, DC atom excluded.

    Parameters
    ----------
    size : (int, int, int)
        Patch size ``(pt, p, p)`` in frames and pixels.
    n_atoms : int
        Number of atoms (at most the number of non-DC separable DCT frequencies).

    Returns
    -------
    ndarray
        ``(n_atoms, pt*p*p)`` unit-norm, zero-mean atoms, lowest frequencies first.

    Examples
    --------
    >>> dct_dictionary((1, 4, 4), 20).shape
    (20, 16)
    """
    pt, py, px = size
    d = pt * py * px
    mt = pt
    ms = int(np.ceil(np.sqrt((n_atoms + 1) / mt)))
    ms = max(ms, py, px)
    at, ay, ax = _overcomplete_dct_1d(pt, mt), _overcomplete_dct_1d(py, ms), _overcomplete_dct_1d(px, ms)
    full = np.einsum("ai,bj,ck->abcijk", at, ay, ax).reshape(-1, d)
    freq = np.add.outer(np.add.outer(np.arange(mt), np.arange(ms)), np.arange(ms)).ravel()
    order = np.argsort(freq, kind="stable")[1:]  # drop the DC atom: the patch mean is handled separately
    full = full[order]
    full = full - full.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(full, axis=1)
    full = full[norms > 1e-8] / norms[norms > 1e-8, None]
    if full.shape[0] < n_atoms:  # tiny patches: fill with random zero-mean atoms
        rng = np.random.default_rng(0)
        extra = rng.standard_normal((n_atoms - full.shape[0], d))
        extra -= extra.mean(axis=1, keepdims=True)
        extra /= np.maximum(np.linalg.norm(extra, axis=1, keepdims=True), 1e-12)
        full = np.vstack([full, extra])
    return full[:n_atoms]


def learn_dictionary(
    patches: np.ndarray,
    *,
    n_atoms: int = 256,
    sparsity: int = 8,
    tol: float | None = None,
    n_iter: int = 10,
    init: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """K-SVD dictionary learned from zero-mean patches.

    Parameters
    ----------
    patches : ndarray (n, d)
        Training patches (their means are removed here).
    n_atoms : int
        Dictionary size.
    sparsity : int
        Maximum atoms per patch during learning.
    tol : float, optional
        Squared-residual target per patch (error-constrained coding, e.g.
        ``(1.15 sigma)^2 d`` for denoising).
    n_iter : int
        K-SVD iterations.
    init : ndarray (n_atoms, d), optional
        Starting dictionary (default: over-complete DCT).
    seed : int
        Seed for re-initialising unused atoms.

    Returns
    -------
    ndarray (n_atoms, d), unit-norm rows.

    References
    ----------
    M. Aharon, M. Elad, A. Bruckstein, IEEE Trans. Signal Process. 54 (2006) 4311,
    doi:10.1109/TSP.2006.881199.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 16))
    >>> learn_dictionary(X, n_atoms=24, sparsity=3, n_iter=2, init=dct_dictionary((1, 4, 4), 24)).shape
    (24, 16)
    """
    X = np.asarray(patches, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 1:
        raise DataValidationError(f"learn_dictionary: patches must be (n, d) with n >= 1, got shape {X.shape}")
    X = X - X.mean(axis=1, keepdims=True)
    n, d = X.shape
    D = (init if init is not None else dct_dictionary((1, 1, d), n_atoms)).astype(np.float32).copy()
    if D.shape != (n_atoms, d):
        raise DataValidationError(f"learn_dictionary: init must have shape {(n_atoms, d)}, got {D.shape}")
    rng = np.random.default_rng(seed)
    for _ in range(n_iter):
        idx, coef = batch_omp(X, D, sparsity=sparsity, tol=tol)
        gamma = np.zeros((n, n_atoms), np.float32)
        rows = np.repeat(np.arange(n), idx.shape[1])
        ok = idx.ravel() >= 0
        gamma[rows[ok], idx.ravel()[ok]] = coef.ravel()[ok]
        resid = X - gamma @ D
        for j in rng.permutation(n_atoms):
            users = np.flatnonzero(gamma[:, j])
            if users.size == 0:
                # an unused atom is replaced by the worst-represented patch (K-SVD's usual fix)
                worst = int(np.argmax(np.einsum("nd,nd->n", resid, resid)))
                atom = resid[worst] - resid[worst].mean()
                norm = np.linalg.norm(atom)
                if norm > 1e-8:
                    D[j] = atom / norm
                continue
            g = gamma[users, j]
            E = resid[users] + np.outer(g, D[j])
            atom = E.T @ g
            norm = np.linalg.norm(atom)
            if norm < 1e-12:
                continue
            atom /= norm
            g = E @ atom
            resid[users] = E - np.outer(g, atom)
            gamma[users, j] = g
            D[j] = atom
    return D
