# SPDX-License-Identifier: GPL-3.0-or-later
"""``sparse_coding``: denoise Li-map movies (or single maps) by sparse coding.

Two methods share one entry point:

``"nonlocal"`` (default, the best measured here)
    Variance-stabilise the counts (Anscombe), estimate the noise level from the
    data, group similar spatio-temporal patches by block matching across space
    and time, code every group jointly over an orthonormal dictionary (patch
    atoms x group atoms; hard thresholding = the exact simultaneous sparse
    code), then one or two further passes that match on the previous estimate,
    learn the patch dictionary from it (its principal patches) and apply
    empirical Wiener shrinkage; map back with the exact unbiased inverse
    Anscombe transform.
``"ksvd"``
    The classic patch method: a K-SVD dictionary learned on the data's own
    spatio-temporal patches, error-constrained batch OMP for every patch, and
    averaging of overlapping patches (Elad & Aharon 2006).

References
----------
M. Elad, M. Aharon, IEEE Trans. Image Process. 15 (2006) 3736, doi:10.1109/TIP.2006.881969.
J. Mairal, F. Bach, J. Ponce, G. Sapiro, A. Zisserman, ICCV 2009, doi:10.1109/ICCV.2009.5459452.
M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 99, doi:10.1109/TIP.2010.2056693.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError

_METHODS = ("nonlocal", "ksvd")
_GROUP1 = 32
_NOISES = ("auto", "poisson", "gaussian")


def _check_options(method, noise, patch, patch_t, n_atoms, sparsity, passes, sigma, search, search_t, group, step):
    if method not in _METHODS:
        raise DataValidationError(f"sparse_coding: method must be one of {_METHODS}, got {method!r}")
    if noise not in _NOISES:
        raise DataValidationError(f"sparse_coding: noise must be one of {_NOISES}, got {noise!r}")
    for name, value, low in (("patch", patch, 2), ("patch_t", patch_t, 1), ("n_atoms", n_atoms, 2),
                             ("sparsity", sparsity, 1), ("passes", passes, 1), ("search", search, 0),
                             ("search_t", search_t, 0), ("group", group, 1), ("step", step, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataValidationError(f"sparse_coding: {name} must be an integer >= {low}, got {value!r}")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number))
                              or not np.isfinite(sigma) or sigma < 0):
        raise DataValidationError(f"sparse_coding: sigma must be a finite number >= 0, got {sigma!r}")


def _ksvd_stack(z, *, sigma, patch, patch_t, n_atoms, sparsity, step, seed, progress):
    """Elad-Aharon denoising of one (T, H, W) stack in the (already stabilised) Gaussian domain."""
    from ._dictionary import dct_dictionary, learn_dictionary
    from ._omp import batch_omp, omp_reconstruct
    from ._patches import aggregate_patches, extract_patches

    T, H, W = z.shape
    size = (min(patch_t, T), min(patch, H), min(patch, W))
    d = int(np.prod(size))
    X, grids = extract_patches(z, size=size, step=(max(1, size[0] // 2), step, step))
    means = X.mean(axis=1, keepdims=True)
    X = X - means
    # error target per patch: (C sigma)^2 d with Elad & Aharon's C = 1.15
    tol = (1.15 * sigma) ** 2 * d
    n_atoms = min(n_atoms, 4 * d)
    rng = np.random.default_rng(seed)
    train = X[rng.choice(X.shape[0], size=min(X.shape[0], 20000), replace=False)]
    D = learn_dictionary(train, n_atoms=n_atoms, sparsity=sparsity, tol=tol, n_iter=8,
                         init=dct_dictionary(size, n_atoms), seed=seed)
    out = None
    chunk = 16384
    starts = range(0, X.shape[0], chunk)
    if progress is not None:
        starts = progress(starts)
    for s in starts:
        idx, coef = batch_omp(X[s:s + chunk], D, sparsity=sparsity, tol=tol)
        rec = omp_reconstruct(idx, coef, D) + means[s:s + chunk]
        out = aggregate_patches(rec, grids, size=size, shape=z.shape, out=out, start=s)
    num, den = out
    return (num / np.maximum(den, 1e-12)).reshape(z.shape)


def _nonlocal_stack(z, *, sigma, patch, patch_t, passes, search, search_t, group, step, progress):
    from ._nonlocal import collaborative_filter

    opts = dict(sigma=sigma, patch=patch, patch_t=patch_t, search=search, search_t=search_t,
                step=step, step_t=max(1, min(patch_t, z.shape[0]) // 3))
    # Hard thresholding gains little from groups larger than 32 (BM3D/BM4D use
    # 16); the Wiener passes, whose shrinkage is only as good as the pilot
    # statistics pooled, gain from ``group`` (measured +0.5 dB at 5 counts/px
    # for 64 vs 32).
    est = collaborative_filter(z, threshold=2.7, progress=progress, group=min(group, _GROUP1), **opts)
    opts["group"] = group
    pos = None
    for _ in range(passes - 1):
        # the patch dictionary of each Wiener pass is learned from the previous
        # estimate (its principal patches): +0.4-0.5 dB over the DCT measured at 5 counts/px
        basis = _learned_basis(est, patch=patch, patch_t=patch_t)
        # Passes after the second keep the second pass's groups (matched on the
        # first estimate): measured +0.2 dB at 5 counts/px over re-matching on
        # the smoother later estimate, and one block matching fewer.
        est, pos = collaborative_filter(z, pilot=est, progress=progress, patch_basis=basis, positions=pos,
                                        return_positions=True, **opts)
    return est


def _auto_passes(z: np.ndarray, sigma: float) -> int:
    """3 passes at low signal-to-noise (structure std < 2.5 sigma, i.e. below ~10 counts/px), else 2.

    Measured on simulator movies: at 5 counts/px a third pass adds 0.2-0.5 dB,
    at 20 counts/px it loses ~0.3 dB (the pilot is already good; another Wiener
    round over-smooths).
    """
    snr = np.sqrt(max(float(np.var(z)) - sigma**2, 0.0)) / sigma
    return 3 if snr < 2.5 else 2


def _learned_basis(pilot, *, patch, patch_t, n_sample=20000, seed=0):
    """Orthonormal patch dictionary: eigenvectors of the pilot patches' second-moment matrix.

    The uncentred second moment keeps a near-constant leading atom (the
    patch mean), so the group DC stays in one coefficient.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    T, H, W = pilot.shape
    size = (min(patch_t, T), min(patch, H), min(patch, W))
    view = sliding_window_view(np.asarray(pilot, dtype=np.float64), size)
    rng = np.random.default_rng(seed)
    # a random sample of patch positions is enough for a d x d second moment (d <= ~200)
    where = [rng.integers(0, n, size=n_sample) for n in view.shape[:3]]
    X = view[where[0], where[1], where[2]].reshape(n_sample, -1)
    _, vecs = np.linalg.eigh(X.T @ X / X.shape[0])
    return vecs[:, ::-1].T.copy()


def sparse_coding_kernel(
    values: np.ndarray,
    *,
    method: str = "nonlocal",
    noise: str = "auto",
    sigma: float | None = None,
    patch: int | None = None,
    patch_t: int | None = None,
    n_atoms: int = 256,
    sparsity: int | None = None,
    passes: int | None = None,
    search: int = 4,
    search_t: int = 5,
    group: int = 64,
    step: int | None = None,
    seed: int = 0,
    progress: Any = None,
) -> np.ndarray:
    """Array kernel of :func:`sparse_coding` on ``(..., T, H, W)`` (leading axes looped)."""
    x = np.asarray(values)
    if x.ndim < 3:
        raise ShapeMismatchError(f"sparse_coding: kernel expects (..., time, y, x), got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise DataValidationError(f"sparse_coding: data must be numeric counts, got dtype {x.dtype}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    if x.ndim > 3:
        flat = x.reshape(-1, *x.shape[-3:])
        parts = [sparse_coding_kernel(f, method=method, noise=noise, sigma=sigma, patch=patch, patch_t=patch_t,
                                      n_atoms=n_atoms, sparsity=sparsity, passes=passes, search=search,
                                      search_t=search_t, group=group, step=step, seed=seed, progress=progress)
                 for f in flat]
        return np.stack(parts).reshape(x.shape)
    xf = x.astype(np.float64)
    if xf.size and not np.all(np.isfinite(xf)):
        n_bad = int(xf.size - np.count_nonzero(np.isfinite(xf)))
        raise DataValidationError(f"sparse_coding: data hold {n_bad} NaN/Inf value(s); expected finite counts")
    if noise == "poisson" and xf.size and xf.min() < 0:
        raise DataValidationError(
            f"sparse_coding: noise='poisson' needs non-negative counts, found minimum {xf.min():.3g}; "
            "use noise='gaussian' for background-subtracted maps"
        )
    T, H, W = x.shape
    # Defined results for degenerate input: nothing to pool, or nothing to remove.
    if x.size == 0 or H < 2 or W < 2 or np.ptp(xf) == 0:
        return xf.astype(dtype)
    from ._metrics import noise_level_kernel
    from ._poisson import anscombe, inverse_anscombe

    poisson = noise == "poisson"
    if noise == "auto" and xf.min() >= 0:
        # Raw Poisson counts have unit noise after the Anscombe transform (0.65-1
        # even below 1 count/px). Far from that, the data are not raw counts
        # (noise-free, scaled or already smoothed) and the Poisson-specific
        # unbiased inverse would bias them: treat them as Gaussian instead.
        poisson = 0.6 <= noise_level_kernel(anscombe(xf)) <= 1.5
    z = anscombe(xf) if poisson else xf.astype(np.float32)
    s = noise_level_kernel(z) if sigma is None else float(sigma)
    # A noise level below 1 % of the signal's spread: the data are (nearly)
    # noise-free; return them unchanged instead of smoothing real structure.
    if s <= 1e-2 * float(np.std(z)) or s == 0:
        return xf.astype(dtype)
    if method == "nonlocal":
        est = _nonlocal_stack(z, sigma=s, patch=patch or 5, patch_t=patch_t or 6,
                              passes=passes or _auto_passes(z, s), search=search, search_t=search_t,
                              group=group, step=step or 4, progress=progress)
    else:
        est = _ksvd_stack(z, sigma=s, patch=patch or 6, patch_t=patch_t or 4, n_atoms=n_atoms,
                          sparsity=sparsity or 8, step=step or 2, seed=seed, progress=progress)
    out = inverse_anscombe(est.astype(np.float64)) if poisson else est
    return np.asarray(out, dtype=dtype)


def sparse_coding(
    data,
    *,
    patch: int | None = None,
    n_atoms: int = 256,
    sparsity: int | None = None,
    method: str = "nonlocal",
    patch_t: int | None = None,
    noise: str = "auto",
    sigma: float | None = None,
    passes: int | None = None,
    search: int = 4,
    search_t: int = 5,
    group: int = 64,
    step: int | None = None,
    seed: int = 0,
    progress: bool = False,
):
    """Denoise a Li-map movie ``(time, y, x)`` or a single map ``(y, x)`` by sparse coding.

    Called with no options it runs the best method measured here (see
    BENCHMARKS.md): non-local joint sparse coding of spatio-temporal patch
    groups, 2-3 passes with dictionaries learned from the previous estimate,
    on Anscombe-stabilised counts with the noise level estimated from the data.

    Parameters
    ----------
    data : ndarray or xarray.DataArray
        Counts shaped ``(time, y, x)`` or ``(y, x)`` (a DataArray may carry
        other, looped, dimensions). Dask-backed input stays lazy; the whole
        movie of each loop index is processed as one block.
    patch : int, optional
        Spatial patch side in pixels (default 5 for ``"nonlocal"``, 6 for
        ``"ksvd"``); capped at the image size.
    n_atoms : int, default 256
        Dictionary size learned by K-SVD (``"ksvd"``; the non-local method uses
        a complete separable dictionary of ``patch^2 * patch_t`` atoms).
    sparsity : int, optional
        Maximum atoms per patch for batch OMP (``"ksvd"``; default 8). Coding
        stops earlier once the residual reaches the noise level.
    method : {"nonlocal", "ksvd"}
        See the module notes.
    patch_t : int, optional
        Frames per patch (default 6 non-local, 4 K-SVD); capped at the movie length.
    noise : {"auto", "poisson", "gaussian"}
        ``"auto"``: Poisson (Anscombe + exact unbiased inverse) when all values
        are >= 0 and the estimated noise after the Anscombe transform is
        that of Poisson counts (0.6-1.5), else additive Gaussian (e.g. for
        background-subtracted or scaled maps, and for noise-free input).
    sigma : float, optional
        Noise standard deviation in the stabilised domain; default: estimated
        from the data (Immerkær). 0 returns the input.
    passes : int, optional
        Non-local passes (1 = hard thresholding only; each further pass
        re-matches on, and Wiener-shrinks against, the previous estimate, with
        a patch dictionary learned from it). Default: 3 at low signal-to-noise
        (below ~10 counts/px), else 2.
    search, search_t : int
        Block-matching window half-widths in pixels and frames.
    group : int, default 64
        Patches per group in the Wiener passes (the first pass uses at most 32);
        a power of two gets a fast Haar group transform.
    step : int, optional
        Spacing of reference patches in pixels (default 4); for ``"ksvd"`` the
        spacing of the coded patches (default 2).
    seed : int
        Seed of the K-SVD training sample.
    progress : bool
        Show a progress bar (one per pass) when running on a terminal.

    Returns
    -------
    Same type and shape as ``data`` (float32, or float64 for float64 input):
    the estimated expected counts.

    Raises
    ------
    DataValidationError
        Non-finite values, negative counts with ``noise="poisson"``, a bad option.
    ShapeMismatchError
        Data without ``y``/``x`` axes or of the wrong number of dimensions.

    References
    ----------
    J. Mairal et al., "Non-local sparse models for image restoration", ICCV 2009,
    doi:10.1109/ICCV.2009.5459452.
    M. Elad, M. Aharon, IEEE Trans. Image Process. 15 (2006) 3736, doi:10.1109/TIP.2006.881969.
    M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 99, doi:10.1109/TIP.2010.2056693.

    Examples
    --------
    >>> from ionscope.simulate import limap_movie
    >>> from ionscope.denoise import sparse_coding, psnr
    >>> noisy, clean = limap_movie(shape=(48, 48), n_frames=8, counts=5.0)
    >>> den = sparse_coding(noisy)
    >>> psnr(den, clean) > psnr(noisy, clean) + 8
    True
    """
    from ..data import apply_kernel, as_dataarray, check_dims, like_input

    _check_options(method, noise, patch, patch_t, n_atoms, sparsity, passes, sigma, search, search_t, group, step)
    import xarray as xr

    if not isinstance(data, xr.DataArray):
        arr = np.asarray(data) if not hasattr(data, "chunks") else data
        if arr.ndim not in (2, 3):
            raise ShapeMismatchError(
                f"sparse_coding: data must be a (y, x) map or a (time, y, x) movie, got shape {arr.shape}"
            )
    da = as_dataarray(data, kind="image", name="sparse_coding: data")
    check_dims(da.dims)
    missing = [d for d in ("y", "x") if d not in da.dims]
    if missing:
        raise ShapeMismatchError(f"sparse_coding: data need dimensions 'y' and 'x'; missing {missing} in {da.dims}")
    if da.dtype.kind not in "biuf":
        raise DataValidationError(f"sparse_coding: data must be numeric counts, got dtype {da.dtype}")
    core = ["time", "y", "x"] if "time" in da.dims else ["y", "x"]
    bar = None
    if progress:
        from .._progress import progress as _bar

        def bar(it):
            # shown on a terminal (or with IONSCOPE_PROGRESS=1), hidden in logs and tests
            return _bar(it, desc="sparse coding", unit="chunk")

    opts = dict(method=method, noise=noise, sigma=sigma, patch=patch, patch_t=patch_t, n_atoms=n_atoms,
                sparsity=sparsity, passes=passes, search=search, search_t=search_t, group=group, step=step,
                seed=seed, progress=bar)

    def kernel(block):
        if len(core) == 2:
            return sparse_coding_kernel(block[..., None, :, :], **opts)[..., 0, :, :]
        return sparse_coding_kernel(block, **opts)

    out_dtype = np.float64 if da.dtype == np.float64 else np.float32
    result = apply_kernel(kernel, da, input_core_dims=[core], output_core_dims=[core],
                          output_dtypes=[out_dtype])
    result = result.transpose(*da.dims)
    result.name = da.name
    return like_input(result, data)
