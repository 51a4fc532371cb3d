# SPDX-License-Identifier: GPL-3.0-or-later
"""Multivariate analysis of spectrum images: PCA (with noise-level selection) and NMF.

Spectrum images are unfolded to a (pixels × channels) matrix. Counts are
Poisson, so their variance follows the mean: PCA first divides by
sqrt(mean image ⊗ mean spectrum) (Keenan & Kotula 2004), after which every
element has unit noise variance and noise eigenvalues follow the
Marchenko–Pastur law; components above its upper edge are signal. NMF uses the
Kullback–Leibler loss, whose minimiser is the Poisson maximum-likelihood
factorisation (Lee & Seung 2001), through scikit-learn.

A dask-backed input (e.g. a lazy time series) stays lazy. PCA then uses
dask's randomised SVD (Halko et al. 2011) on the row-chunked, scaled matrix:
a few streaming passes over the data give the loadings and eigenvalues, and
scores and the denoised series are returned lazily. NMF is fitted on a random
subsample of pixels (``fit_pixels``) and every pixel is then projected chunk
by chunk onto the fixed spectra by the same KL (Poisson) updates with the
spectra held fixed, so memory is bounded by the subsample and one chunk.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import check_finite
from ..errors import DataValidationError
from ..io import accepts_data
from . import _common


def _unfold(si, energy, *, implausible=None):
    da = _common.spectra(si, energy=energy)
    if implausible is not None:
        from . import _plausible

        # raw counts: impossible values refused (or their spectra made NaN) before anything is fitted to them
        da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))
    if implausible != "mask":
        check_finite(da.data, name="si")
    lead = da.dims[:-1]
    if da.chunks is not None:
        # rows (pixels) chunked, one chunk along energy: what tall-skinny SVD and
        # chunkwise projection need
        data = da.data.rechunk({da.ndim - 1: -1}).astype(float)
        X = data.reshape(-1, data.shape[-1])
    else:
        X = np.asarray(da.values, dtype=float).reshape(-1, da.shape[-1])
    if X.shape[0] < 2:
        raise DataValidationError(f"si: multivariate analysis needs at least 2 spectra, got {X.shape[0]}")
    return da, X, lead


def _is_lazy(X):
    return not isinstance(X, np.ndarray)


def _poisson_scaling(X):
    g = X.mean(axis=1, keepdims=True)  # mean spectrum intensity of each pixel
    h = X.mean(axis=0, keepdims=True)  # mean spectrum
    if _is_lazy(X):
        import dask

        h = dask.compute(h)[0]  # (1, N): small; g stays lazy, one value per pixel
    total = float(np.mean(h))
    if total <= 0:
        raise DataValidationError("si: Poisson scaling needs positive mean counts")
    # var(X_ij) ≈ E[X_ij] ≈ g_i h_j / mean: divide by its square root. Its largest value
    # is sqrt(max g · max h / mean), so the floor needs no pass over the outer product.
    # (np.maximum / np.sqrt act lazily on dask arrays)
    scale = np.sqrt(np.maximum(g, 0) * (np.maximum(h, 0) / total))
    top = float(np.sqrt(np.max(np.maximum(g, 0)) * np.max(np.maximum(h, 0)) / total))
    return np.maximum(scale, 1e-12 * top)


@accepts_data("si")
def pca(si: Any, *, n_components: int | None = None, poisson: bool = True, max_components: int = 30,
        energy: Any = None, seed: int = 0):
    """Principal component analysis with noise-level component selection.

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectrum image (``energy`` last; plain arrays need ``energy=``).
    n_components : int, optional
        Number of components kept in ``denoised``; by default the number of
        eigenvalues above the Marchenko–Pastur noise edge.
    poisson : bool
        Scale counts to unit Poisson variance first (recommended for counts).
        Without it the noise variance is estimated from the median eigenvalue.
    max_components : int
        How many eigenvalues to compute (randomised SVD).
    energy : array_like, optional
        Energy axis for a plain-array ``si``.
    seed : int
        Seed of the randomised SVD.

    Returns
    -------
    xarray.Dataset
        ``eigenvalues`` (component), ``loadings`` (component, energy),
        ``scores`` (leading dims…, component), ``denoised`` (like ``si``,
        reconstructed from the signal components) and attrs ``n_signal``,
        ``noise_edge``. For dask-backed ``si``, ``scores`` and ``denoised``
        are lazy (dask's randomised SVD, 4 power iterations; the signal
        eigenvalues agree with the in-memory result to ~1e-3).

    References
    ----------
    .. [1] M. R. Keenan, P. G. Kotula, "Accounting for Poisson noise in the
       multivariate analysis of ToF-SIMS spectrum images", Surf. Interface Anal.
       36 (2004) 203, doi:10.1002/sia.1657.
    .. [2] V. A. Marchenko, L. A. Pastur, Math. USSR Sb. 1 (1967) 457,
       doi:10.1070/SM1967v001n04ABEH001994.
    .. [3] I. M. Johnstone, Ann. Statist. 29 (2001) 295, doi:10.1214/aos/1009210544.
    .. [4] N. Halko, P.-G. Martinsson, J. A. Tropp, "Finding structure with
       randomness", SIAM Rev. 53 (2011) 217, doi:10.1137/090771806.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spectra = rng.poisson(np.outer(rng.uniform(1, 2, 400), np.linspace(50, 10, 64)))
    >>> res = pca(spectra.reshape(20, 20, 64), energy=np.arange(64.0) + 50)
    >>> res.attrs["n_signal"]
    1
    """
    import xarray as xr
    from sklearn.utils.extmath import randomized_svd

    da, X, lead = _unfold(si, energy)
    P, N = X.shape
    lazy = _is_lazy(X)
    scale = _poisson_scaling(X) if poisson else 1.0
    Z = X / scale
    mean = Z.mean(axis=0)
    if lazy:
        mean = mean.compute()
    Zc = Z - mean
    k = int(min(max_components, P - 1, N))
    if k < 1:
        raise DataValidationError(f"max_components: expected ≥ 1, got {max_components}")
    if lazy:
        import dask
        import dask.array as dsa

        # tall-and-skinny randomised SVD: streaming passes over row chunks; the power
        # iterations make it as accurate as the in-memory randomised SVD for the leading
        # (signal) components
        U, s, Vt = dsa.linalg.svd_compressed(Zc, k, n_power_iter=4, n_oversamples=10, seed=seed)
        s, Vt = dask.compute(s, Vt)
    else:
        U, s, Vt = randomized_svd(Zc, n_components=k, random_state=seed)
    eig = s**2 / (P - 1)
    if poisson:
        sigma2 = 1.0
    else:
        # the bulk of the eigenvalues is noise: estimate σ² from the median singular value²
        sub = Zc if P * N <= 4e7 else Zc[:: max(1, P // 4000)]
        sv = np.linalg.svd(np.asarray(sub), compute_uv=False)
        sigma2 = float(np.median(sv**2 / (max(P, 2) - 1)))
    # Largest noise eigenvalue: Marchenko–Pastur edge plus 3 Tracy–Widom widths
    # (Johnstone 2001, doi:10.1214/aos/1009210544), so pure noise gives 0 components.
    a, b = np.sqrt(P - 1.0), np.sqrt(float(N))
    mu = (a + b) ** 2
    tw = (a + b) * (1.0 / a + 1.0 / b) ** (1.0 / 3.0)
    edge = sigma2 * (mu + 3.0 * tw) / (P - 1)
    n_signal = int(np.sum(eig > edge))
    n_keep = n_signal if n_components is None else int(n_components)
    if not 0 <= n_keep <= k:
        raise DataValidationError(f"n_components: expected 0..{k}, got {n_components}")
    recon = (U[:, :n_keep] * s[:n_keep]) @ Vt[:n_keep] + mean
    denoised = (recon * scale).reshape(da.shape)
    comp = np.arange(k)
    scores = (U * s).reshape(*da.shape[:-1], k)
    if lazy:
        # back to the input's chunks along the leading dims
        denoised = denoised.rechunk(da.data.rechunk({da.ndim - 1: -1}).chunks)
        scores = scores.rechunk(da.data.chunks[:-1] + ((k,),))
    coords = _common.leading_coords(da)
    ds = xr.Dataset(
        {
            "eigenvalues": (("component",), eig),
            "loadings": (("component", "energy"), Vt),
            "scores": ((*lead, "component"), scores),
            "denoised": (da.dims, denoised),
        },
        coords={**coords, "component": comp, "energy": da.coords["energy"]},
    )
    ds.attrs = {"n_signal": n_signal, "n_kept": n_keep, "noise_edge": float(edge), "poisson_scaled": int(poisson)}
    return ds


@accepts_data("si")
def nmf(si: Any, *, n_components: int, init_spectra: Any = None, max_iter: int = 400, tol: float = 1e-5,
        energy: Any = None, seed: int = 0, fit_pixels: int | None = None, implausible: str = "raise"):
    """Non-negative matrix factorisation (Poisson / KL loss) of a spectrum image.

    ``si ≈ maps · spectra`` with both factors ≥ 0. With the KL divergence as
    loss, the factorisation maximises the Poisson likelihood of the counts, so
    no variance scaling is needed. Reference-free: the spectra are found from
    the data (as in the NMF Li-mapping route of Nomura et al. 2018); pass
    ``init_spectra`` (component, energy) to start from known shapes, which also
    fixes the component order and names.

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Non-negative counts (negative values, e.g. after dark subtraction, are
        clipped to 0; values no detector can give are not: see ``implausible``).
    n_components : int
    init_spectra : xarray.DataArray or array_like, optional
        Initial spectra, shape (n_components, energy) — resampled onto ``si``'s axis.
    max_iter, tol : int, float
        scikit-learn multiplicative-update solver settings.
    energy : array_like, optional
    seed : int
    fit_pixels : int, optional
        Fit the spectra on at most this many randomly chosen pixels (seeded)
        and project every pixel onto them with the spectra fixed. Default:
        all pixels for in-memory input, 20 000 for dask-backed input (whose
        ``maps`` are then returned lazily, computed chunk by chunk).
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN maps at those pixels (left out of the fit of the spectra) and a
        warning. Before this check such a value was clipped to 0 and fitted.

    Returns
    -------
    xarray.Dataset
        ``maps`` (leading dims…, component), ``spectra`` (component, energy),
        ``reconstruction_error`` attribute (KL divergence).

    References
    ----------
    .. [1] D. D. Lee, H. S. Seung, "Algorithms for non-negative matrix
       factorization", NIPS 13 (2001) 556.
    .. [2] Y. Nomura et al., Nano Lett. 18 (2018) 5892, doi:10.1021/acs.nanolett.8b02436.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> H = np.stack([np.linspace(1, 0, 50), np.linspace(0, 1, 50)])
    >>> W = rng.uniform(0, 100, (10, 10, 2))
    >>> res = nmf(rng.poisson(W @ H), n_components=2, energy=np.arange(50.0))
    >>> res.maps.shape
    (10, 10, 2)
    """
    import xarray as xr
    from sklearn.decomposition import NMF

    from . import _plausible
    from ._solve import single_threaded_blas

    _plausible.check_mode(implausible)
    da, X, lead = _unfold(si, energy, implausible=implausible)
    if int(n_components) < 1:
        raise DataValidationError(f"n_components: expected ≥ 1, got {n_components}")
    if fit_pixels is not None and int(fit_pixels) < int(n_components):
        raise DataValidationError(f"fit_pixels: expected ≥ n_components = {n_components}, got {fit_pixels}")
    lazy = _is_lazy(X)
    P = X.shape[0]
    n_fit = P if fit_pixels is None and not lazy else min(P, int(fit_pixels or 20_000))
    Xall = X
    if n_fit < P:
        # a seeded random subsample of pixels, sorted so that a dask array reads it in order
        rows = np.sort(np.random.default_rng(seed).choice(P, n_fit, replace=False))
        X = X[rows]
    if lazy:
        X = np.asarray(X.compute())
    keep = None
    if implausible == "mask":  # masked (all-NaN) spectra take no part in the fit
        keep = np.isfinite(X).all(axis=1)
        X = X[keep]
    Xp = np.maximum(X, 0.0)
    if not Xp.any():
        raise DataValidationError("si: all counts are zero; NMF needs some signal")
    names = list(range(int(n_components)))
    kwargs = dict(n_components=int(n_components), solver="mu", beta_loss="kullback-leibler",
                  max_iter=int(max_iter), tol=tol, random_state=seed)
    # the multiplicative updates are products with only n_components columns: memory-bound,
    # and much slower with several BLAS threads on a busy machine (see single_threaded_blas)
    with single_threaded_blas():
        W, H, names, model = _nmf_fit(da, Xp, kwargs, init_spectra, names, NMF)
    W_fit = W
    if n_fit == P and not lazy and keep is not None and not keep.all():
        W = np.full((P, W_fit.shape[1]), np.nan)
        W[keep] = W_fit  # the fit's own maps, NaN at the masked pixels
    elif n_fit < P or lazy:
        # every pixel: KL updates of its maps with the fitted spectra held fixed
        # (scikit-learn's transform), block by block for dask input
        def project(block):
            dead = ~np.isfinite(block).all(axis=1)
            with single_threaded_blas():
                W = _kl_project(np.maximum(np.where(dead[:, None], 0.0, block), 0.0), H,
                                max_iter=int(max_iter), tol=float(tol))
            W[dead] = np.nan
            return W

        if lazy:
            W = Xall.map_blocks(project, dtype=float, chunks=(Xall.chunks[0], (H.shape[0],)))
        else:
            W = project(Xall)
    coords = _common.leading_coords(da)
    ds = xr.Dataset(
        {"maps": ((*lead, "component"), W.reshape(*da.shape[:-1], -1)),
         "spectra": (("component", "energy"), H)},
        coords={**coords, "component": names, "energy": da.coords["energy"]},
    )
    ds.attrs = {"reconstruction_error": float(model.reconstruction_err_), "n_iter": int(model.n_iter_),
                "loss": "kullback-leibler"}
    return ds


def _kl_project(X, H, *, max_iter=1000, tol=1e-7):
    """Maps W ≥ 0 minimising KL(X ‖ W·H) with the spectra H fixed (Poisson ML per pixel).

    Lee–Seung multiplicative updates for W only: the problem is convex in W, so
    the result does not depend on the start; we start from the clipped
    least-squares fit (close to the optimum) and iterate until no map value
    moves by more than ``tol`` of the pixel's largest value. Our own loop rather
    than scikit-learn's ``transform``, which starts from a flat W: from the
    least-squares start the same number of updates reaches a lower KL
    divergence (measured on a Co-L2,3 test image: maps 2 % of the maximum
    from the jointly fitted ones vs 6 % with ``transform``, and a lower KL
    than the joint fit's own maps).
    """
    eps = 1e-12
    W = np.maximum(np.linalg.lstsq(H.T, X.T, rcond=None)[0].T, 0.0)
    W = np.maximum(W, 1e-3 * np.maximum(W.max(axis=1, keepdims=True), eps))
    norm = H.sum(axis=1)[None, :] + eps
    for _ in range(int(max_iter)):
        ratio = X / np.maximum(W @ H, eps)
        new = W * (ratio @ H.T) / norm
        change = np.max(np.abs(new - W) / np.maximum(new.max(axis=1, keepdims=True), eps), initial=0.0)
        W = new
        if change < tol:
            break
    return W


def _nmf_fit(da, Xp, kwargs, init_spectra, names, NMF):
    if init_spectra is not None:
        e = np.asarray(da.coords["energy"].values, float)
        labels, H0 = _common.references(init_spectra, e)
        H0 = np.maximum(H0.T, 1e-9)
        if H0.shape[0] != kwargs["n_components"]:
            raise DataValidationError(
                f"init_spectra: {H0.shape[0]} spectra for n_components={kwargs['n_components']}")
        # start the maps at the non-negative least-squares fit of the initial spectra
        W0 = np.maximum(np.linalg.lstsq(H0.T, Xp.T, rcond=None)[0].T, 1e-9)
        model = NMF(init="custom", **kwargs)
        W = model.fit_transform(Xp, W=W0, H=H0.copy())
        names = labels
    else:
        model = NMF(init="nndsvda", **kwargs)
        W = model.fit_transform(Xp)
    return W, model.components_, names, model


@accepts_data("si")
def phase_map(si: Any, references: Any, *, energy: Any = None, background: bool = False, max_iter: int = 400,
              low_loss: Any = None):
    """Per-pixel phase fractions from Co-L2,3 (or any) references, e.g. LiCoO2 vs Co3O4.

    The references are per-atom spectra (same normalisation), so the MLLS /
    NMF weights of each pixel are proportional to the number of Co atoms in
    each phase; the fraction of phase i is wᵢ / Σⱼ wⱼ. Weights come from a
    Poisson-weighted non-negative MLLS with the references as given (use
    :func:`nmf` with ``init_spectra`` when the references are only
    approximate).

    With ``low_loss`` (dual EELS: the low loss of the same pixels, same
    dispersion) the references are convolved with each pixel's own low loss
    before the fit (``mlls(..., plural_scattering="convolve")``): plural
    scattering gives every Co-L line plasmon replicas whose weight grows with
    thickness, and without it the Co3O4 fraction of a realistic simulated image
    was 0.05 low with 1.25× the claimed scatter. A power-law basis (2, 3, 4)
    is then the background.

    Parameters
    ----------
    si : DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    references : DataArray or array_like
        ``(component, energy)`` per-atom reference spectra.
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.
    background : bool
        Fit a power-law background with the references.
    max_iter : int
        Iterations of the non-negative Poisson MLLS.
    low_loss : DataArray or array_like, optional
        The low loss of the same pixels (dual EELS): references are convolved with it.

    Returns
    -------
    xarray.Dataset
        ``fraction`` (component, leading dims…), ``fraction_std`` and
        ``total`` (sum of weights, ∝ Co atoms per pixel) and, without
        ``low_loss``, ``total_std`` (from the full covariance of the weights).

    References
    ----------
    .. [1] Y. Nomura et al., Nat. Commun. 11 (2020) 2824,
       doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import co_l_references
    >>> e = np.arange(765.0, 810.0, 0.25)
    >>> refs = co_l_references(e)
    >>> y = 300 * refs[0] + 100 * refs[1]
    >>> round(float(phase_map(y.values, refs, energy=e).fraction.sel(component="Co3O4")), 6)
    0.25
    """
    import xarray as xr

    from ._mlls import mlls

    da = _common.spectra(si, energy=energy)
    e = np.asarray(da.coords["energy"].values, float)
    if low_loss is not None:
        res = mlls(da, references, fit_range=(e[0], e[-1]), plural_scattering="convolve", low_loss=low_loss,
                   exponents=(2.0, 3.0, 4.0), max_iter=min(int(max_iter), 50))
    else:
        res = mlls(da, references, fit_range=(e[0], e[-1]), background="powerlaw" if background else None,
                   weights="poisson", max_iter=max_iter)
    names = res.attrs["components"]
    w = xr.concat([res[n] for n in names], dim="component").assign_coords(component=names)
    s = xr.concat([res[f"{n}_std"] for n in names], dim="component").assign_coords(component=names)
    total = w.sum("component", keep_attrs=False)  # not the first component's long_name
    safe = xr.where(total > 0, total, np.nan)
    frac = (w / safe).fillna(0.0)
    # delta method on w_i / Σw, ignoring the (small) covariance between weights
    frac_std = (np.sqrt(((1 - frac) * s) ** 2 + (frac**2 * (s**2).sum("component") - (frac * s) ** 2))
                / safe)
    out = xr.Dataset({"fraction": frac, "fraction_std": frac_std, "total": total})
    if low_loss is None:
        out["total_std"] = _total_std(da, res, w, references)
    # own names, not the first component's (concat keeps it) nor the spectra's
    for name, text in [("fraction", "share of the phases' total"), ("fraction_std", "standard error of the share"),
                       ("total", "sum of the phase weights (∝ Co atoms per pixel)"),
                       ("total_std", "standard error of the sum of the phase weights")]:
        if name in out:
            out[name].attrs = {"long_name": text}
    return out


def _total_std(da, res, w, references):
    """σ of Σwᵢ from the fit's full Cramér–Rao covariance.

    The weights of similar edge shapes are strongly anti-correlated: Σσᵢ² in quadrature overstated the σ of
    the sum 3× on the simulated Co-L image (pull spread 0.33); the covariance gives a spread of 1.0.
    """
    from ..data import apply_kernel

    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, res.attrs["fit_range_ev"], name="fit_range")
    _, S = _common.references(references, e[ch])
    bg = "background_exponent" in res
    params = [res["background_amplitude"], res["background_exponent"]] if bg else []
    return apply_kernel(_total_std_kernel, da, w, *params,
                        input_core_dims=[["energy"], ["component"]] + [[]] * len(params),
                        output_dtypes=[np.float64],
                        kwargs=dict(channels=ch, lnx=np.log(e[ch] / res.attrs["e0_ev"]), refs=S))


def _total_std_kernel(spectra, weights, amplitude=None, exponent=None, *, channels, lnx, refs):
    """σ of the sum of the reference weights per spectrum: 1ᵀ·F⁻¹·1 over the reference block of the
    inverse Poisson Fisher matrix F = Xᵀ diag(1/μ) X at the fitted model μ (X: the references and, with a
    power-law background A·x^−r, its derivatives x^−r and −A·ln x·x^−r — the kernel's own design)."""
    lead = spectra.shape[:-1]
    Y = spectra.reshape(-1, spectra.shape[-1])[:, channels].astype(np.float64)
    B = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
    M = refs.shape[1]
    out = np.full(Y.shape[0], np.nan)
    for s in range(0, Y.shape[0], 2048):  # bounded memory: (block, channels, parameters) at a time
        sl = slice(s, s + 2048)
        cols = [np.broadcast_to(refs, (B[sl].shape[0],) + refs.shape)]
        mu = B[sl] @ refs.T
        if amplitude is not None:
            A = amplitude.reshape(-1)[sl, None].astype(np.float64)
            bg = np.exp(-exponent.reshape(-1)[sl, None] * lnx)
            mu = mu + A * bg
            cols += [bg[..., None], (-lnx * bg * A)[..., None]]
        X = np.concatenate(cols, axis=-1)
        floor = 1e-3 * np.maximum(np.abs(Y[sl]).mean(-1, keepdims=True), 1e-300)  # the fit's own floor
        # a batched matrix product (a three-operand einsum runs as a plain loop, several times slower)
        G = np.swapaxes(X / np.maximum(mu, floor)[..., None], 1, 2) @ X
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(G).all((1, 2))
            cov = np.full_like(G, np.nan)
            cov[ok] = np.linalg.pinv(G[ok])
            out[sl] = np.sqrt(np.maximum(cov[:, :M, :M].sum((1, 2)), 0.0))
    return out.reshape(lead)
