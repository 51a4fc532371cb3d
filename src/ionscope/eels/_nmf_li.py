# SPDX-License-Identifier: GPL-3.0-or-later
"""The NMF route to the Li amount and x: reference-light multivariate analysis of deconvolved spectra.

Nomura et al. (Nano Lett. 2018) mapped Li by non-negative matrix factorisation
(NMF) of Li-K/Co-M spectrum images: the data find their own component
spectra. That gives maps of components, not Li amounts. This route turns it
into a quantitative, error-barred Li map:

1. every spectrum is deconvolved from its own zero-loss peak (Fourier-log):
   the single-scattering distribution (SSD) of a film of one material is
   ``I0·(τ·v(E) + a_Li·L(E) + a_Co·C(E))`` — a sum of a few fixed shapes
   whatever the thickness, so the SSDs span a low-dimensional, non-negative
   space (rank 3; one more component absorbs a Li-K fine structure that moves
   with x);
2. NMF (alternating exact non-negative least squares, :func:`nmf_anls`) on a
   seeded subsample of the deconvolved spectra over ``fit_range`` finds that
   space's non-negative spectra ``H``;
3. each component spectrum is decomposed against the Li and Co references
   (reconvolved to the deconvolution's resolution, with a power-law basis for
   its valence tail and the Li-K energy derivative as a nuisance term): ``lₖ``
   and ``cₖ``, the Li and Co content of component k. The Li-bearing component
   is the one with the largest ``lₖ`` (reported in ``attrs``);
4. every pixel's SSD is projected onto ``H`` by generalised least squares with
   its propagated variance; Li = Σ lₖWₖ and Co = Σ cₖWₖ are linear functionals
   of the raw counts, so their σ and covariance are the exact sandwich through
   the deconvolution (:mod:`ionscope.eels._ssdfit`). ``H`` itself, fitted on
   thousands of spectra, is treated as known. The weight holds the deconvolved
   channels' correlations, not only their variances (:mod:`ionscope.eels._nmf_gls`):
   Li's variance −15…−20 %;
5. in a series (``co_pooling="time"``, the default) Co per zero-loss electron
   and unit t/λ is one number per pixel over the frames — the Co framework does
   not move — so it is pooled over them. Of the x error per 4×4 block at
   1000 counts/channel, 0.08 came from Li and 0.03 from Co, and the two add
   (the edges overlap: ρ(Li, Co) ≈ −0.48 per pixel); with Co known exactly
   r(x) would reach 0.96–0.97; Co pooled over 4 frames: r(x) 0.940 → 0.952.
   ``condition_li=True`` also conditions Li on the pooled Co (less x noise,
   a less honest σ where the NMF spectra are learned from few spectra).

The x noise of this route is near what the counts allow: the Cramér–Rao
bound of Li for the same three-spectrum model fitted to the raw Poisson
counts is 0.93 of the route's σ (issue 19's fifth pass, BENCHMARKS.md), so
r(x) on 4×4 blocks at 1000 counts/channel is set by the scene's true x
spread against that σ (r ≈ spread/√(spread² + σ²)), not by the algorithm.

Why it can beat MLLS: each pixel is fitted with ``n_components`` (3)
parameters instead of MLLS's references plus five background exponents — the
background shape is learned once from all pixels. The Li weight comes out in
the references' units (single-scattering counts, as :func:`mlls`), so x follows
with the same calibrations as :func:`li_fraction`.

References
----------
Y. Nomura et al., Nano Lett. 18 (2018) 5892, doi:10.1021/acs.nanolett.8b02436.
D. D. Lee, H. S. Seung, NIPS 13 (2001) 556 (NMF).
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2, doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import apply_kernel
from ..errors import DataValidationError
from ..io import accepts_data
from . import _common, _lowloss, _ssdfit


def _kernel(spectra, **kwargs):
    from ._solve import single_threaded_blas

    with single_threaded_blas():
        return _ssdfit.functionals_kernel(spectra, **kwargs)


def _kernel_fullcov(spectra, **kwargs):
    from ._nmf_gls import functionals_kernel_fullcov
    from ._solve import single_threaded_blas

    with single_threaded_blas():
        return functionals_kernel_fullcov(spectra, **kwargs)


def _mean_spectrum(da):
    """Mean raw spectrum over every finite pixel (a streaming reduction for dask-backed data)."""
    space = [d for d in da.dims if d != "energy"]
    ok = np.isfinite(da).all("energy")
    mean = da.where(ok).mean(space)
    return np.asarray(mean.compute() if hasattr(mean.data, "dask") else mean, float)


def nmf_anls(X, n_components, *, max_iter=300, tol=1e-7, seed=0):
    """Non-negative factorisation ``X ≈ W·H`` (Frobenius) by alternating exact non-negative least squares.

    The deconvolved spectra are nearly collinear (the valence tail is ~99 % of
    every spectrum, the edges ~1 %), and there multiplicative updates crawl:
    after 400 Lee–Seung (KL) iterations the rank-3 reconstruction still missed
    by 0.7 % of the signal — as much as the edges themselves — where the
    optimum misses by 0.014 %. Alternating exact NNLS (every step solves its
    convex sub-problem exactly, batched over pixels or channels,
    :func:`~ionscope.eels._solve.nnls_batched`) reaches the optimum in ~100
    iterations. Started from scikit-learn's NNDSVDa initialisation.

    References: H. Kim, H. Park, SIAM J. Matrix Anal. Appl. 30 (2008) 713,
    doi:10.1137/07069239X (NMF by alternating non-negativity-constrained least squares).
    """
    from sklearn.decomposition._nmf import _initialize_nmf

    from ._solve import nnls_batched

    K = int(n_components)
    W, H = _initialize_nmf(X, K, init="nndsvda", random_state=seed)
    cons = np.ones(K, bool)
    prev = None
    n = 0
    for n in range(1, int(max_iter) + 1):
        W = nnls_batched(H @ H.T, X @ H.T, cons)
        H = nnls_batched(W.T @ W, X.T @ W, cons).T
        err = float(np.linalg.norm(X - W @ H))
        if prev is not None and abs(prev - err) <= tol * max(err, 1e-300):
            break
        prev = err
    return W, H, n


def _training_spectra(da, e, ch, fw, var_scale, *, binning, fit_pixels, seed):
    """Deconvolved spectra to learn the NMF spectra from: sums over binning×binning pixels of ``y``/``x``
    (when the data have them), a seeded random subsample of at most ``fit_pixels`` of those."""
    if binning > 1 and {"y", "x"} <= set(da.dims) and da.sizes["y"] >= binning and da.sizes["x"] >= binning:
        dec = _lowloss.deconvolve(da, energy_range=(float(e[ch[0]]), float(e[ch[-1]])), resolution_fwhm=fw).ssd
        dec = dec.coarsen(y=binning, x=binning, boundary="trim").sum()
        flat = dec.transpose(..., "energy").data.reshape(-1, ch.size)
        flat = np.asarray(flat.compute() if hasattr(flat, "compute") else flat, float)
    else:
        flat = None
    if flat is None:
        data = da.data.reshape(-1, e.size)
        P = data.shape[0]
        rows = np.sort(np.random.default_rng(seed).choice(P, min(P, fit_pixels), replace=False))
        sample = data[rows]
        sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample, float)
        sample = sample[np.isfinite(sample).all(axis=1) & (sample.sum(axis=1) > 0)]
        if sample.shape[0] == 0:
            return np.zeros((0, ch.size))
        return _lowloss.fourier_log_block(sample, e, out_energy_index=ch, resolution_fwhm=fw, variance=False,
                                          var_scale=var_scale)["ssd"]
    flat = flat[np.isfinite(flat).all(axis=1)]
    if flat.shape[0] > fit_pixels:
        flat = flat[np.sort(np.random.default_rng(seed).choice(flat.shape[0], fit_pixels, replace=False))]
    return flat


def component_content(H, S, names, e_fit, *, li, co, exponents=(1.0, 2.0, 3.0, 4.0, 5.0), shift_li=True):
    """(l, c): Li and Co content of each component spectrum ``H`` (K, m) by least squares on the references."""
    from ._kernels import powerlaw_basis

    cols = [S]
    if shift_li:
        cols.append(np.gradient(S[:, names.index(li)], float(e_fit[1] - e_fit[0]))[:, None])
    cols.append(powerlaw_basis(e_fit / e_fit[0], exponents))
    X = np.column_stack(cols)
    scale = np.linalg.norm(X, axis=0)
    coef = np.linalg.lstsq(X / scale, H.T, rcond=None)[0] / scale[:, None]
    return coef[names.index(li)], coef[names.index(co)]


def _pool_co_over_time(ds, *, li="Li", co="Co", time_dim="time", condition=False, n_iter=3):
    """Co from all frames of a pixel (its areal density per unit t/λ is fixed); Li as fitted.

    In an operando series the Co framework does not move: a pixel's Co amount
    per zero-loss electron and unit t/λ, ``ρ = Co/(I0·t/λ)``, is the same in
    every frame (thinning changes t/λ, not ρ; I0 and t/λ are measured per frame
    from the zero-loss peak, with negligible noise). So ``ρ`` is the
    inverse-variance mean over the frames, and each frame's Co becomes
    ``Ĉ = g·ρ̂·I0·t/λ`` with ``n_frames`` times less variance. ``g`` is one factor
    per frame (mean 1, from the sums over all pixels, so without noise of its
    own): the learned component spectra carry a small calibration error that
    moves Li and Co of a whole frame together as its x changes (measured ±2 % on
    a 24×32 scene learned from 192 training spectra), which cancels in a frame's
    own Li/Co but not against a Co pooled over frames of other x.

    ``cov(Li, Ĉ) = cov(Li, Co)·var(Ĉ)/var(Co)``; ``g``'s own error is neglected.

    ``condition=True`` (``nmf_li(condition_li=True)``, issue 19's fifth pass;
    not the default): Li and Co of one spectrum are anticorrelated (their
    edges overlap; ρ(Li, Co) ≈ −0.48 per pixel at dose 1000), so Li can be
    conditioned on the better Co by the regression adjustment
    ``Li − b·(Co − Ĉ)``, ``b = cov(Li, Co)/var(Co)`` (variance
    ``var(Li) − b·cov(Li, Co) + b²·var(Ĉ)``, exact for noise) — the
    generalised least-squares Li of the pooled model itself (Li free per
    frame, Co per unit t/λ fixed). It lowers the x noise (RMS on 4×4 blocks
    −5…−12 % on 48×64×4 scenes at 1000 counts/channel), but any error of Co
    that changes from frame to frame and is not in its σ is moved into Li,
    amplified by ``b``: without noise that part is small (x on 4×4 blocks
    0.010 RMS, as without the adjustment), but the NMF spectra learned from
    the noisy data themselves carry noise that no σ includes — x pull on 4×4
    blocks 1.24 (against 1.10) on a 24×32 scene learned from 192 training
    spectra, 1.09 (1.06) with spectra learned from noise-free data; on 48×64
    (768 training spectra) 1.04–1.09 (third pass, diagonal weight: 1.16 and
    1.48).

    Spatial smoothing of ``ρ`` instead was rejected: grains of different Co
    density made the Co pull 1.2–2.6. The pooled Co's own σ misses the
    per-pixel systematic errors of each spectrum's fit (de-scan, chemical
    shift), which do not average over frames: Co pull 1.03–1.33 (1.01–1.11 per
    frame); x, whose error is dominated by Li, keeps pull 1.0–1.05. Frames
    must be registered; ``co_time_chi2`` (χ²/dof of ``ρ`` across the frames, ~1
    when ``ρ`` is constant) tests it, and a mean above 1.15 over the pixels with
    clear Co warns (measured 0.95–1.06 on registered realistic series; 1.22
    with two of four 24×32 frames mirrored; a smooth 3-pixel drift: 1.03 — the
    t/λ normalisation absorbs thickness, so only Co-density contrast shows).
    """
    import warnings

    import xarray as xr

    norm0 = ds["zero_loss"] * ds["thickness"]
    s_co = ds[f"{co}_std"]
    good = np.isfinite(norm0) & (norm0 > 0) & np.isfinite(ds[co]) & np.isfinite(s_co) & (s_co > 0)
    co_obs = ds[co].where(good, 0.0)
    space = [d for d in ds[co].dims if d != time_dim]
    g = xr.ones_like(norm0.isel({d: 0 for d in space}, drop=True))
    for _ in range(int(n_iter)):
        norm = norm0 * g
        w = ((norm / s_co) ** 2).where(good, 0.0)  # 1/var(ρ)
        wsum = w.sum(time_dim)
        rho_hat = ((co_obs / norm).where(good, 0.0) * w).sum(time_dim) / wsum
        fitted = (rho_hat * norm).where(good, 0.0)
        g = g * co_obs.sum(space) / fitted.sum(space)
        g = g / g.mean()
    norm = norm0 * g
    w = ((norm / s_co) ** 2).where(good, 0.0)
    wsum = w.sum(time_dim)
    rho = (co_obs / norm).where(good)
    rho_hat = (rho.fillna(0.0) * w).sum(time_dim) / wsum
    n_good = good.sum(time_dim)
    chi2 = ((rho - rho_hat) ** 2 * w).sum(time_dim) / np.maximum(n_good - 1, 1)
    co_hat = rho_hat * norm
    var_hat = norm**2 / wsum
    cov = ds[f"{li}_{co}_cov"]
    out = ds.copy()
    dims = ds[li].dims
    if condition:
        b = (cov / s_co**2).where(good, 0.0)
        out[li] = (ds[li] - b * (ds[co] - co_hat)).transpose(*dims).assign_attrs(ds[li].attrs)
        out[f"{li}_std"] = np.sqrt(np.maximum(ds[f"{li}_std"] ** 2 - b * cov + b**2 * var_hat, 0.0)).transpose(
            *dims).assign_attrs(ds[f"{li}_std"].attrs)
        new_cov = b * var_hat
    else:
        new_cov = cov * var_hat / s_co**2  # cov(Li, Ĉ) = cov(Li, Co)·w_t/Σw
    out[co] = co_hat.transpose(*dims).assign_attrs(ds[co].attrs)
    out[f"{co}_std"] = np.sqrt(var_hat).transpose(*dims).assign_attrs(ds[f"{co}_std"].attrs)
    out[f"{li}_{co}_cov"] = new_cov.transpose(*dims).assign_attrs(ds[f"{li}_{co}_cov"].attrs)
    out["co_time_chi2"] = chi2.where(n_good > 1).assign_attrs(
        long_name=f"χ²/dof of {co} per unit t/λ across the frames (~1: constant, as pooled)")
    out["co_frame_factor"] = g.assign_attrs(long_name=f"frame factor g of the pooled {co}")
    if not hasattr(chi2.data, "dask"):
        sig = (rho_hat * np.sqrt(wsum) > 5.0) & (n_good > 1)  # pixels with a clearly non-zero Co
        level = float(chi2.where(sig).mean()) if bool(sig.any()) else float("nan")
        out.attrs["co_time_chi2"] = level
        if level > 1.15:
            warnings.warn(f"nmf_li: {co} per unit t/λ changes between frames (χ²/dof {level:.2f} across "
                          f"{time_dim}, ~1 expected): are the frames registered? Pass co_pooling='none' to "
                          "fit every frame on its own", RuntimeWarning, stacklevel=3)
    return out

@accepts_data("si")
def nmf_li(si: Any, references: Any, *, n_components: int = 3, fit_range=(45.0, 85.0), calibration: Any = None,
           li: str = "Li", co: str = "Co", binning: int = 4, fit_pixels: int = 4000, seed: int = 0, max_iter: int = 400,
           resolution_fwhm: float | None = None, low_loss: Any = None, energy: Any = None,
           co_pooling: str = "time", projection: str = "full-covariance", projection_ridge: float = 0.01,
           condition_li: bool = False, implausible: str = "raise"):
    """Li and Co amounts (and x) per pixel by NMF of the deconvolved spectra, with σ.

    Parameters
    ----------
    si : xarray.DataArray
        Raw spectra recorded with their zero-loss peak (``energy`` last), or a
        core loss with ``low_loss=`` (dual EELS).
    references : xarray.DataArray
        ``(component, energy)`` with ``li`` and ``co`` (model shapes, or
        :func:`references_from_regions`'s, measured on the data); used only to
        read the Li and Co content of the NMF component spectra.
    n_components : int
        NMF components (3: valence tail, Li-K, Co-M; 4 also absorbs a Li-K
        chemical shift, at more noise).
    fit_range : (float, float)
        Energy window (eV) of the NMF and the projection.
    calibration : float or dict, optional
        As for :func:`li_fraction` (``k``, ``{"region": mask, "x": 1.0}`` or
        ``{"k": …, "k_std": …}``); when given, ``li_fraction`` and
        ``li_fraction_std`` are added.
    li, co : str
        Names of the Li and Co references.
    binning : int
        The NMF spectra are learned from the deconvolved spectra summed over
        ``binning``×``binning`` pixels (data with ``y`` and ``x``; 1: single pixels).
        The single-scattering spectra are linear in a few fixed shapes, so the
        sums lie in the same space with ``binning²`` times less relative noise:
        learned from single noisy pixels the spectra carry their noise into
        every pixel's Li (measured at dose 1000: Li pull 1.2–1.7, x −0.07).
    fit_pixels : int
        The NMF spectra are learned on at most this many (seeded, random)
        training spectra (binned sums); every pixel is then projected.
    seed, max_iter : int
        NMF seed (initialisation, subsample) and iteration limit.
    resolution_fwhm : float, optional
        Gaussian FWHM (eV) of the deconvolution; default the measured zero-loss FWHM.
    low_loss : xarray.DataArray, optional
        Dual EELS low loss of the same pixels (spliced below ``si``).
    energy : array_like, optional
        Energy axis of a plain-array ``si``.
    co_pooling : {"time", "none"}
        ``"time"`` (default): Co per unit t/λ is taken as fixed per pixel over the
        frames (the Co framework does not move) and pooled over them, Li as
        fitted per spectrum (``_pool_co_over_time``; r(x) on 4×4 blocks 0.940 →
        0.952 at 1000 counts/channel over 4 frames, x pull 1.0). Needs
        registered frames (``co_time_chi2`` tests it; a warning above 1.15); a
        no-op without a ``time`` dimension of ≥ 2 frames. ``"none"``: every
        spectrum fitted on its own (the route before issue 19's third pass).
    projection : {"diagonal", "full-covariance"}
        Weight of each pixel's projection onto the NMF spectra.
        ``"full-covariance"`` (default since issue 19's fourth pass): the
        deconvolved channels' correlations too (plural-scattering subtraction,
        reconvolution; :mod:`ionscope.eels._nmf_gls`): an unbiased estimate with
        a smaller, still exact σ — r(x) on 4×4 blocks 0.960 / 0.956 / 0.944 →
        0.966 / 0.962 / 0.951 on the development seeds at 1000 counts/channel,
        pulls unchanged. ``"diagonal"``: the inverse propagated variance of each
        deconvolved channel only (the route before).
    projection_ridge : float
        ``"full-covariance"`` only: relative ridge ε added to the correlation
        matrix (``(R + ε·I)⁻¹``); smaller is more efficient and more sensitive
        to a component model that misses the data.
    condition_li : bool
        With Co pooled over time only: Li of each spectrum is also conditioned
        on the pooled Co, ``Li − b·(Co − Ĉ)`` with ``b = cov(Li, Co)/var(Co)``
        — the maximum-likelihood Li under the same model as the pooling (Co
        per unit t/λ fixed over the frames; Li and Co of one spectrum are
        anticorrelated, ρ ≈ −0.5, because their edges overlap). Less x noise
        (RMS of x on 4×4 blocks −5…−12 % at 1000 counts/channel, issue 19's
        fifth pass), but Co's frame-to-frame systematic errors move into Li:
        x pull on 4×4 blocks 1.04–1.09 instead of 1.00–1.04, and the areal Li
        map's systematic grows (see BENCHMARKS.md). Default False.
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN results at those pixels and a warning.

    Returns
    -------
    xarray.Dataset
        ``Li``, ``Li_std``, ``Co``, ``Co_std`` (single-scattering counts per
        unit reference, like :func:`mlls` with ``plural_scattering``),
        ``Li_Co_cov``, ``chi2``, ``thickness`` (t/λ), ``zero_loss`` (I0),
        ``spectra`` (``nmf_component``, energy: the NMF spectra),
        ``component_li`` and ``component_co`` (their Li and Co content); with
        Co pooled over time also ``co_time_chi2`` (χ²/dof of Co per unit t/λ
        across the frames) and ``co_frame_factor`` (the frames' factor g); with ``calibration`` also ``li_fraction`` and
        ``li_fraction_std``; attrs ``li_component`` (index of the Li-bearing
        component), ``co_pooling`` (what was done), ``method``.

    References
    ----------
    .. [1] Y. Nomura et al., Nano Lett. 18 (2018) 5892, doi:10.1021/acs.nanolett.8b02436.
    .. [2] D. D. Lee, H. S. Seung, NIPS 13 (2001) 556.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import operando_eels
    >>> si, truth, _ = operando_eels(shape=(16, 16), n_frames=1, physics="realistic", noise=False,
    ...                              li_chemical_shift_ev=0.0, seed=1)
    >>> res = nmf_li(si, truth.references)
    >>> li_true = truth.weights.sel(component="Li").values
    >>> bool(abs(float(res.Li.mean()) / li_true.mean() - 1) < 0.02)
    True
    """
    import xarray as xr

    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 2:
        raise DataValidationError(f"n_components: expected an integer ≥ 2, got {n_components!r}")
    if not isinstance(condition_li, (bool, np.bool_)):
        raise DataValidationError(f"condition_li: expected True or False, got {condition_li!r}")
    if co_pooling not in ("time", "none"):
        raise DataValidationError(f"co_pooling: expected 'time' or 'none', got {co_pooling!r}")
    if projection not in ("diagonal", "full-covariance"):
        raise DataValidationError(f"projection: expected 'diagonal' or 'full-covariance', got {projection!r}")
    if not (np.isfinite(projection_ridge) and projection_ridge > 0):
        raise DataValidationError(f"projection_ridge: expected a number > 0, got {projection_ridge!r}")
    if int(fit_pixels) < n_components:
        raise DataValidationError(f"fit_pixels: expected ≥ n_components = {n_components}, got {fit_pixels}")
    from . import _plausible

    da = _common.spectra(si, energy=energy)
    da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))  # raw counts
    e = np.asarray(da.coords["energy"].values, float)
    var_scale = None
    if low_loss is not None:
        from ._mlls import _splice

        low_loss = _plausible.check_counts(_common.spectra(low_loss, name="low_loss"), implausible=implausible,
                                       name=_plausible.input_name(low_loss, "low_loss"))

        da, e, var_scale = _splice(da, e, low_loss)
    if not (e[0] < 0 < e[-1]):
        raise DataValidationError(
            f"si: the energy axis {e[0]:g}–{e[-1]:g} eV holds no zero-loss peak; nmf_li deconvolves each spectrum "
            "from its own zero-loss peak (record from below 0 eV, or pass low_loss=)")
    _lowloss._check_equal_steps(e, "si energy")
    ch = _common.window(e, fit_range, name="fit_range", min_channels=16)
    if e[ch[0]] <= 0:
        raise DataValidationError(f"fit_range must lie above 0 eV, got start {e[ch[0]]:g} eV")
    fw = _lowloss._resolution(_lowloss._probe(da), e, resolution_fwhm)
    names, S, _ = _ssdfit.references_blurred(references, e, ch, fw)
    for want in (li, co):
        if want not in names:
            raise DataValidationError(f"references: component {want!r} missing; it has {names}")
    # 1–2. NMF spectra from deconvolved spectra. The SSDs are linear in a few fixed shapes, so sums of
    # neighbouring pixels' SSDs lie in the same space with far less noise: learn it from binning×binning sums
    dec = _training_spectra(da, e, ch, fw, var_scale, binning=int(binning), fit_pixels=int(fit_pixels), seed=seed)
    if dec.shape[0] < n_components:
        raise DataValidationError("si: too few finite, non-empty spectra for the NMF")
    Xn = np.maximum(dec, 0.0)
    # channels scaled to roughly unit noise (the SSD's variance follows its level, as for counts)
    scale = np.sqrt(np.maximum(Xn.mean(axis=0), 1e-12 * max(float(Xn.mean()), 1e-300)))
    from ._solve import single_threaded_blas

    with single_threaded_blas():
        _, Hs, n_iter = nmf_anls(Xn / scale, int(n_components), max_iter=int(max_iter), seed=seed)
    H = Hs * scale  # (K, m)
    if not np.all(np.isfinite(H)) or np.linalg.matrix_rank(H) < H.shape[0]:
        raise DataValidationError(f"n_components={n_components}: the NMF found fewer independent spectra; "
                                  "use fewer components")
    # 3. Li and Co content of each component
    l_k, c_k = component_content(H, S, names, e[ch], li=li, co=co)
    # 4. every pixel projected onto H (GLS, propagated variance), Li and Co as functionals
    X = H.T
    L2 = np.stack([l_k, c_k])
    if projection == "full-covariance":
        from ._nmf_gls import correlation_weight

        r_inv = correlation_weight(_mean_spectrum(da), e, ch, fw, ridge=float(projection_ridge), var_scale=var_scale)
        kernel, kw = _kernel_fullcov, dict(energy=e, channels=ch, X=X, L2=L2, resolution_fwhm=fw,
                                           var_scale=var_scale, r_inv=r_inv)
    else:
        kernel, kw = _kernel, dict(energy=e, channels=ch, fit_mask=np.ones(ch.size, bool), X=X,
                                   L1=np.zeros((2, ch.size)), L2=L2, resolution_fwhm=fw, var_scale=var_scale)
    stacked = apply_kernel(kernel, da, input_core_dims=[["energy"]], output_core_dims=[["component"]],
                           output_sizes={"component": _ssdfit.n_outputs(2)}, output_dtypes=[np.float64], kwargs=kw)
    vals, var, cov, chi2, thick, i0 = _ssdfit.unpack(stacked.data, 2)
    lead = stacked.dims[:-1]
    coords = {k: v for k, v in stacked.coords.items() if "component" not in v.dims}
    unit = "single-scattering counts per unit reference"
    ds = xr.Dataset(
        {li: (lead, vals[..., 0], {"long_name": f"{li} amount (NMF, single scattering)", "units": unit}),
         f"{li}_std": (lead, np.sqrt(np.maximum(var[..., 0], 0)), {"long_name": f"standard error of {li}",
                                                                   "units": unit}),
         co: (lead, vals[..., 1], {"long_name": f"{co} amount (NMF, single scattering)", "units": unit}),
         f"{co}_std": (lead, np.sqrt(np.maximum(var[..., 1], 0)), {"long_name": f"standard error of {co}",
                                                                   "units": unit}),
         f"{li}_{co}_cov": (lead, cov[..., 0], {"long_name": f"covariance of {li} and {co}"}),
         "chi2": (lead, chi2, {"long_name": "reduced chi-squared of the projection (propagated variance)"}),
         "thickness": (lead, thick, {"long_name": "t/λ (log-ratio)", "units": "1"}),
         "zero_loss": (lead, i0, {"long_name": "zero-loss intensity I0", "units": "counts"}),
         "spectra": (("nmf_component", "energy_fit"), H, {"long_name": "NMF component spectra (deconvolved)"}),
         "component_li": ("nmf_component", l_k, {"long_name": f"{li} content of each NMF component"}),
         "component_co": ("nmf_component", c_k, {"long_name": f"{co} content of each NMF component"})},
        coords={**coords, "nmf_component": np.arange(H.shape[0]),
                "energy_fit": ("energy_fit", e[ch], {"units": "eV"})})
    ds.attrs = {"method": "nmf-fourier-log", "n_components": int(n_components), "training_spectra": int(dec.shape[0]), "binning": int(binning),
                "nmf_iterations": int(n_iter),
                "li_component": int(np.argmax(l_k)), "resolution_fwhm_ev": fw,
                "fit_range_ev": [float(e[ch[0]]), float(e[ch[-1]])], "components": [li, co],
                "projection": projection,
                "weights_unit": "single-scattering counts"}
    pooled = co_pooling == "time" and "time" in ds[li].dims and ds.sizes["time"] > 1
    if pooled:
        ds = _pool_co_over_time(ds, li=li, co=co, condition=bool(condition_li))
    ds.attrs["co_pooling"] = "time" if pooled else "none"
    ds.attrs["li_conditioned_on_co"] = int(bool(condition_li) and pooled)
    if calibration is not None:
        from ._fraction import li_fraction

        frac = li_fraction(ds[[li, f"{li}_std", co, f"{co}_std"]], calibration=calibration, li=li, co=co)
        ds["li_fraction"] = frac.li_fraction
        ds["li_fraction_std"] = frac.li_fraction_std
        ds.attrs.update(k=frac.attrs["k"], k_std=frac.attrs["k_std"], calibration=frac.attrs["calibration"])
    return ds
