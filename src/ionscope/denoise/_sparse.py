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
from ..io import accepts_data
from ._options import SparseCodingOptions, check_sigma, resolve_options
from ._stabilise import broadcast_sigma, check_counts, choose_model, lazy_model, lazy_sigma_map
from ._windows import window_plan

__all__ = ["sparse_coding", "SparseCodingOptions"]

_GROUP1 = 32
# Frames per patch of the nonlocal method. 12 (was 6): a Li-map movie changes slowly from frame to
# frame, and longer spatio-temporal patches pool more of it. Chosen on simulator movies of seed 0
# (32x128x128; patch_t 4/6/8/10/12/16 at 20 counts/px: 35.33/35.63/35.80/35.86/35.90/35.93 dB, at
# 5 counts/px 6/8/10/12: 32.53/32.74/32.85/32.90 dB); held-out seeds 3 and 4 in BENCHMARKS.md
# (issue 20). Shorter movies use all their frames.
_PATCH_T = 12
# Wiener passes keep only the learned patch atoms whose pilot energy, pooled
# over a group (group x eigenvalue), reaches _KEEP sigma^2, i.e. whose group-DC
# Wiener gain would be >= 1/2; the others carry mostly noise. Measured on
# 32x128x128 simulator movies (seeds 0, 1): +0.07-0.14 dB at 5 and 20 counts/px
# and ~1.5x faster (18-46 of 150 atoms kept: the GEMMs and the group
# transform shrink with them). 0.5 and 2.0 gave less on one seed each.
_KEEP = 1.0
# Block-matching half-width at high signal-to-noise (where 2 passes run, >~10 counts/px): 6 px
# instead of 4. Chosen on simulator movies of seeds 0-2 only (32x128x128, 20 counts/px; search
# 4/6/8: 36.03/36.12/36.13 dB mean, 6 gained on every seed); held-out seeds 3, 4 and fresh 5, 6
# in BENCHMARKS.md (issue 20). Low SNR keeps 4: its third pass leaves no time for the ~2x
# block-matching work within half of BM4D's time.
_SEARCH_HIGH = 6


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


def _nonlocal_stack(z, *, sigma, patch, patch_t, passes, search, search_t, group, step, progress, shifts=None):
    """The non-local passes on ``z``, on its frames aligned by ``shifts`` (whole pixels) if given."""
    kw = dict(sigma=sigma, patch=patch, patch_t=patch_t, passes=passes, search=search, search_t=search_t,
              group=group, step=step, progress=progress)
    if shifts is not None and np.any(shifts):
        from ._motion import align, unalign

        canvas, margin = align(z, shifts)
        return unalign(_nonlocal_passes(canvas, **kw), shifts, margin, z.shape)
    return _nonlocal_passes(z, **kw)


def _nonlocal_passes(z, *, sigma, patch, patch_t, passes, search, search_t, group, step, progress):
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
        basis, energy = _learned_basis(est, patch=patch, patch_t=patch_t)
        basis = basis[:max(8, int(np.count_nonzero(energy * group >= _KEEP * sigma**2)))]
        # Passes after the second keep the second pass's groups (matched on the
        # first estimate): measured +0.2 dB at 5 counts/px over re-matching on
        # the smoother later estimate, and one block matching fewer.
        est, pos = collaborative_filter(z, pilot=est, progress=progress, patch_basis=basis, positions=pos,
                                        return_positions=True, **opts)
    return est


def _snr(var_z: float, sigma: float) -> float:
    """Structure std over noise std of stabilised data (2.5 is about 10 counts/px)."""
    return float(np.sqrt(max(var_z - sigma**2, 0.0)) / sigma)


def _auto_passes(snr: float) -> int:
    """3 passes at low signal-to-noise (structure std < 2.5 sigma, i.e. below ~10 counts/px), else 2.

    Measured on simulator movies: at 5 counts/px a third pass adds 0.2-0.5 dB,
    at 20 counts/px it loses ~0.3 dB (the pilot is already good; another Wiener
    round over-smooths).
    """
    return 3 if snr < 2.5 else 2


def _auto_search(options: SparseCodingOptions, snr: float) -> SparseCodingOptions:
    """``search`` chosen by signal-to-noise when not given: _SEARCH_HIGH px at high SNR, else 4."""
    if options.search is not None:
        return options
    return options.replace(search=_SEARCH_HIGH if snr >= 2.5 else 4)


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
    vals, vecs = np.linalg.eigh(X.T @ X / X.shape[0])
    return vecs[:, ::-1].T.copy(), vals[::-1]


def _default_patch_t(method):
    """Frames of temporal context a method's windows need (its patch length; 6 for ksvd, as before)."""
    return _PATCH_T if method == "nonlocal" else 6


def _grid_steps(method, patch_t, step):
    """Reference-grid steps (t, y, x) of a method's patches, for aligning windows to them."""
    if method == "nonlocal":
        return (max(1, (patch_t or _PATCH_T) // 3), step or 4, step or 4)
    return (max(1, (patch_t or 4) // 2), step or 2, step or 2)


def _plan(shape, options: SparseCodingOptions):
    """(core, context, align) of the processing windows of a movie of ``shape``."""
    o = options
    align = _grid_steps(o.method, o.patch_t, o.step)
    core, context = window_plan(shape, patch=o.patch or 5, patch_t=o.patch_t or _default_patch_t(o.method),
                                search=o.search, search_t=o.search_t, window_t=o.window_t, tile=o.tile, align=align)
    return core, context, align


def _denoise_stabilised(z, *, s, passes, options: SparseCodingOptions, progress, shifts=None):
    """Denoise one window ``z`` of stabilised data (noise level ``s``) with the method of ``options``."""
    o = options
    if o.method == "nonlocal":
        return _nonlocal_stack(z, sigma=s, patch=o.patch or 5, patch_t=o.patch_t or _PATCH_T, passes=passes,
                               search=o.search, search_t=o.search_t, group=o.group, step=o.step or 4,
                               progress=progress, shifts=shifts)
    return _ksvd_stack(z, sigma=s, patch=o.patch or 6, patch_t=o.patch_t or 4, n_atoms=o.n_atoms,
                       sparsity=o.sparsity or 8, step=o.step or 2, seed=o.seed, progress=progress)


def sparse_coding_kernel(
    values: np.ndarray,
    *,
    method: str = "nonlocal",
    noise: str = "auto",
    sigma: Any = None,
    patch: int | None = None,
    patch_t: int | None = None,
    n_atoms: int = 256,
    sparsity: int | None = None,
    passes: int | None = None,
    search: int | None = None,
    search_t: int = 5,
    group: int = 64,
    step: int | None = None,
    seed: int = 0,
    window_t: int | None = None,
    tile: int | None = None,
    gain: float = 1.0,
    read_noise: float = 0.0,
    motion: bool = True,
    progress: Any = None,
    record: dict | None = None,
    options: SparseCodingOptions | None = None,
) -> np.ndarray:
    """Array kernel of :func:`sparse_coding` on ``(..., T, H, W)`` (leading axes looped).

    ``sigma`` may be a scalar or a per-pixel noise map broadcastable to ``values``.
    ``record``, if given, receives the automatic choices (noise model, noise
    level, passes, window plan). The options come as keywords or as one
    :class:`SparseCodingOptions` (``options``; keywords beside it override it).
    """
    options = resolve_options(options, dict(
        method=method, noise=noise, patch=patch, patch_t=patch_t, n_atoms=n_atoms, sparsity=sparsity, passes=passes,
        search=search, search_t=search_t, group=group, step=step, seed=seed, window_t=window_t, tile=tile,
        gain=gain, read_noise=read_noise, motion=motion))
    return _kernel(values, options=options, sigma=sigma, progress=progress, record=record)


def _kernel(values, *, options: SparseCodingOptions, sigma, progress, record):
    x = np.asarray(values)
    if x.ndim < 3:
        raise ShapeMismatchError(f"sparse_coding: kernel expects (..., time, y, x), got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise DataValidationError(f"sparse_coding: data must be numeric counts, got dtype {x.dtype}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    smap = broadcast_sigma(sigma, x.shape)
    if x.ndim > 3:
        flat = x.reshape(-1, *x.shape[-3:])
        sflat = [sigma] * len(flat) if smap is None else list(smap.reshape(-1, *x.shape[-3:]))
        parts = [_kernel(f, options=options, sigma=sg, progress=progress, record=record)
                 for f, sg in zip(flat, sflat)]
        return np.stack(parts).reshape(x.shape)
    xf = x.astype(np.float64)
    check_counts(xf, noise=options.noise, smap=smap)
    T, H, W = x.shape
    # Defined results for degenerate input: nothing to pool, or nothing to remove.
    if x.size == 0 or H < 2 or W < 2 or np.ptp(xf) == 0:
        _note(record, unchanged="constant or too small input")
        return xf.astype(dtype)
    model, z, s = choose_model(xf, noise=options.noise, sigma=sigma, smap=smap, gain=options.gain,
                               read_noise=options.read_noise)
    _note(record, noise_model=model.kind, sigma=float(s))
    # A noise level below 1 % of the signal's spread: the data are (nearly)
    # noise-free; return them unchanged instead of smoothing real structure.
    if s <= 1e-2 * float(np.std(z)) or s == 0:
        _note(record, unchanged="noise below 1 % of the signal")
        return xf.astype(dtype)
    # Global decisions (noise level, number of passes) are taken on the whole
    # movie, so that windows agree with each other and with one-block processing.
    snr = _snr(float(np.var(z)), s)
    n_pass = options.passes or _auto_passes(snr)
    options = _auto_search(options, snr)
    # The frames' jitter, like the noise level, is decided on the whole movie (windows then agree)
    shifts = _movie_shifts(z, options, record, snr=snr)
    core, context, align = _plan(z.shape, options)
    _note(record, passes=int(n_pass), search=int(options.search), window_core=list(core),
          window_context=list(context))
    from ._windows import blend_windows

    def one(sl):
        return _denoise_stabilised(z[sl], s=s, passes=n_pass, options=options, progress=progress,
                                   shifts=None if shifts is None else shifts[sl[0]])

    est = blend_windows(z, one, core=core, context=context, align=align)
    return np.asarray(model.inverse(est, smap), dtype=dtype)


def _movie_shifts(z, options: SparseCodingOptions, record, *, snr):
    """Whole-pixel jitter of the frames of ``z`` (non-local method with ``motion``, high SNR), else None.

    Only at high signal-to-noise (>= 2.5, the test that picks 2 passes and search 6, >~10 counts/px):
    at 5 counts/px the estimated shifts were wrong more often (RMS error 0.40-0.52 px against
    0.31-0.45 px at 20 counts/px on 128x128 movies; 0-4 false 1-px shifts in 16 64x64 frames),
    and on two 5-counts/px movies aligning cost 0.08-0.11 dB (BENCHMARKS.md, issue 20, second pass).
    """
    if options.method != "nonlocal" or not options.motion or snr < 2.5:
        return None
    from ._motion import frame_shifts

    shifts = frame_shifts(z)
    _note(record, aligned_frames=int(np.count_nonzero(shifts.any(axis=1))))
    return shifts


def _note(record: dict | None, **choices) -> None:
    """Record automatic choices (for the result's attrs); a no-op without a record."""
    if record is not None:
        record.update(choices)


def _lazy_movie(da, *, options: SparseCodingOptions, sigma, out_dtype, record=None):
    """Dask-backed (time, y, x) movie: global noise decisions in one streaming pass, then
    ``map_overlap`` over windows (cores = chunks, context = overlap depth), so at most a
    few windows are in memory at once and the result stays lazy."""
    import dask.array as dsa

    x = da.data.astype(np.float64)
    smap = lazy_sigma_map(da, sigma, x.shape)
    model, s, var_z, std_z, ptp = lazy_model(x, smap, noise=options.noise, gain=options.gain,
                                             read_noise=options.read_noise)
    if model is None:
        return da.data.astype(out_dtype)
    if sigma is not None and smap is None:
        s = float(sigma)
    _note(record, noise_model=model.kind, sigma=float(s))
    if s <= 1e-2 * std_z or s == 0:
        _note(record, unchanged="noise below 1 % of the signal")
        return da.data.astype(out_dtype)
    snr = _snr(var_z, s)
    n_pass = options.passes or _auto_passes(snr)
    options = _auto_search(options, snr)
    core, context, align = _plan(x.shape, options)
    _note(record, passes=int(n_pass), search=int(options.search), window_core=list(core),
          window_context=list(context))
    from ._windows import spans

    chunks = tuple(tuple(c1 - c0 for _, _, c0, c1 in spans(n, c, m, align=a))
                   for n, c, m, a in zip(x.shape, core, context, align))
    # map_overlap needs every chunk at least as deep as the overlap
    depth = {i: min(m, min(ch)) for i, (m, ch) in enumerate(zip(context, chunks))}

    def block(b, sm=None):
        z = model.forward(b, sm)
        est = _denoise_stabilised(z, s=s, passes=n_pass, options=options, progress=None)
        return np.asarray(model.inverse(est, sm), dtype=out_dtype)

    args = [x.rechunk(chunks)] + ([smap.rechunk(chunks)] if smap is not None else [])
    return dsa.map_overlap(block, *args, depth=depth, boundary="none", trim=True, dtype=out_dtype,
                           meta=np.empty((0, 0, 0), out_dtype))


@accepts_data("data")
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
    search: int | None = None,
    search_t: int = 5,
    group: int = 64,
    step: int | None = None,
    seed: int = 0,
    progress: bool = False,
    window_t: int | None = None,
    tile: int | None = None,
    gain: float = 1.0,
    read_noise: float = 0.0,
    options: SparseCodingOptions | None = None,
    motion: bool = True,
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
        other, looped, dimensions). Dask-backed ``(time, y, x)`` input stays
        lazy and is processed window by window (``dask.array.map_overlap``)
        after one streaming pass for the whole-movie noise statistics.
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
        Frames per patch (default 12 non-local — 6 before issue 20, measured +0.2–0.4 dB at
        5–20 counts/px on simulator movies —, 4 K-SVD); capped at the movie length.
    noise : {"auto", "poisson", "gaussian", "poisson-gaussian"}
        ``"auto"``: Poisson (Anscombe + exact unbiased inverse) when all values
        are >= 0 and the estimated noise after the Anscombe transform is
        that of Poisson counts (0.6-1.5), else additive Gaussian (e.g. for
        background-subtracted or scaled maps, and for noise-free input).
        ``"poisson-gaussian"``: ``gain * Poisson + N(0, read_noise^2)``
        (detector counts), stabilised by the generalised Anscombe transform.
    sigma : float or array_like, optional
        A number: the noise standard deviation in the stabilised domain;
        default: estimated from the data (Immerkær); 0 returns the input.
        An array (or DataArray) broadcastable to ``data``: a per-pixel noise
        map (e.g. the MLLS standard errors ``Li_std``, or their mean over
        time); the data are divided by it (unit noise), denoised and
        multiplied back. The map's overall scale is re-estimated, so only its
        shape matters. Not combinable with the Poisson noise models.
    passes : int, optional
        Non-local passes (1 = hard thresholding only; each further pass
        re-matches on, and Wiener-shrinks against, the previous estimate, with
        a patch dictionary learned from it). Default: 3 at low signal-to-noise
        (below ~10 counts/px), else 2.
    search : int, optional
        Block-matching window half-width in pixels. Default: 4 at low
        signal-to-noise (below ~10 counts/px), else 6 (measured +0.1 dB at
        20 counts/px; issue 20).
    search_t : int
        Block-matching window half-width in frames.
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
    window_t, tile : int, optional
        Process the movie in overlapping windows of ``window_t`` frames and
        ``tile`` x ``tile`` pixels (cores; each window adds ``search_t +
        patch_t`` frames and ``search + patch`` pixels of context, rounded to
        the reference grid, and overlaps are blended with linear ramps).
        Bounds the memory to a few windows. Default: one block up to 4 Mvoxels
        (e.g. 64x256x256), beyond that 256-px tiles and ~4-Mvoxel windows.
        The windowed result matches one-block processing to < 2 % of the
        noise (PSNR within 0.1 dB).
    gain, read_noise : float
        Detector gain (counts per electron) and Gaussian read noise (counts)
        for ``noise="poisson-gaussian"``.
    motion : bool, default True
        Non-local method: align the frames by their whole-pixel jitter (the
        frame-to-frame part of the specimen drift, where it reaches 3/4 px)
        before denoising and shift them back after, so that the 12-frame
        patches follow the specimen (measured +0.3 dB at 20 counts/px on a
        jittery simulator movie; movies without jitter, frames under 64 px a
        side and low signal-to-noise, below ~10 counts/px, are unchanged). Decided on the whole movie; in-memory input
        only (dask-backed input is not aligned).
    options : SparseCodingOptions, optional
        All of the above in one validated object (e.g. to reuse a setting);
        keywords given beside it override its fields.

    Returns
    -------
    Same type and shape as ``data`` (float32, or float64 for float64 input):
    the estimated expected counts. A DataArray result records in ``attrs``
    what was asked (``denoise_options``: the non-default options) and what
    was chosen automatically: ``denoise_noise_model`` (poisson, pg, gaussian
    or map), ``denoise_sigma`` (noise level in the stabilised domain),
    ``denoise_passes``, ``denoise_search``, ``denoise_aligned_frames`` (frames moved by
    ``motion``; in-memory input), ``denoise_window_core``/``denoise_window_context``
    (frames, px, px), or ``denoise_unchanged`` with the reason.

    Raises
    ------
    DataValidationError
        Non-finite values, negative counts with ``noise="poisson"``, a bad option,
        a noise map with values <= 0.
    ShapeMismatchError
        Data without ``y``/``x`` axes or of the wrong number of dimensions; a
        noise map that does not broadcast to the data.

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
    options = resolve_options(options, dict(
        method=method, noise=noise, patch=patch, patch_t=patch_t, n_atoms=n_atoms, sparsity=sparsity, passes=passes,
        search=search, search_t=search_t, group=group, step=step, seed=seed, window_t=window_t, tile=tile,
        gain=gain, read_noise=read_noise, motion=motion))
    check_sigma(sigma)
    return _sparse_coding(data, options=options, sigma=sigma, progress=progress)


def _sparse_coding(data, *, options: SparseCodingOptions, sigma, progress):
    """:func:`sparse_coding` with its options resolved into one object."""
    from ..data import apply_kernel, like_input

    da = _movie_input(data)
    core = ["time", "y", "x"] if "time" in da.dims else ["y", "x"]
    bar = _progress_bar() if progress else None
    record: dict = {}
    out_dtype = np.float64 if da.dtype == np.float64 else np.float32
    if da.chunks is not None and da.dims == ("time", "y", "x"):
        # out of core: window by window through dask.array.map_overlap
        result = da.copy(data=_lazy_movie(da, options=options, sigma=sigma, out_dtype=out_dtype, record=record))
        result.name = da.name
        _record_attrs(result, options, record, sigma)
        return like_input(result, data)
    arrays = (da, _sigma_like(da, sigma)) if sigma is not None and np.ndim(sigma) > 0 else (da,)

    def kernel(block, sig=sigma):
        if len(core) == 2:
            sg = sig[..., None, :, :] if np.ndim(sig) > 0 else sig
            return _kernel(block[..., None, :, :], options=options, sigma=sg, progress=bar,
                           record=record)[..., 0, :, :]
        return _kernel(block, options=options, sigma=sig, progress=bar, record=record)

    result = apply_kernel(kernel, *arrays, input_core_dims=[core] * len(arrays), output_core_dims=[core],
                          output_dtypes=[out_dtype])
    result = result.transpose(*da.dims)
    result.name = da.name
    _record_attrs(result, options, record, sigma)
    return like_input(result, data)


def _movie_input(data):
    """``data`` as a DataArray with ``y`` and ``x`` (and maybe ``time``) of numeric counts, or a clear error."""
    import xarray as xr

    from ..data import as_dataarray, check_dims

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
    return da


def _progress_bar():
    from .._progress import progress as _bar

    def bar(it):
        # shown on a terminal (or with IONSCOPE_PROGRESS=1), hidden in logs and tests
        return _bar(it, desc="sparse coding", unit="chunk")

    return bar


def _sigma_like(da, sigma):
    """A noise map as a DataArray on ``da``'s dims and chunks: it travels with the data through apply_kernel."""
    import xarray as xr

    if isinstance(sigma, xr.DataArray):
        sig = sigma.broadcast_like(da).transpose(*da.dims)
    else:
        sig = da.copy(data=broadcast_sigma(sigma, da.shape))
    if da.chunks is not None and sig.chunks is None:
        sig = sig.chunk(dict(zip(da.dims, da.chunks)))
    return sig


def _record_attrs(result, options: SparseCodingOptions, record: dict, sigma) -> None:
    """The options asked for and the automatic choices made, in ``result.attrs`` (``denoise_*``)."""
    result.attrs["denoise_method"] = options.method
    result.attrs["denoise_options"] = options.explicit()
    if sigma is not None and np.ndim(sigma) > 0:
        result.attrs["denoise_sigma_map"] = 1
    for key, value in record.items():
        result.attrs[f"denoise_{key}"] = value
