# SPDX-License-Identifier: GPL-3.0-or-later
"""Multiple linear least squares (MLLS) of edge references over a power-law background."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import apply_kernel, check_finite
from ..errors import DataValidationError
from ..io import accepts_data
from . import _common, _plausible
from ._kernels import powerlaw_basis
from ._mlls_plan import _check_options, _constrained, _plain_plan, _plural_dataset, _plural_plan, _refs_on_axis


@accepts_data("si", "low_loss")
def mlls(
    si: Any,
    references: Any,
    *,
    fit_range: tuple[float, float],
    background: str | None = "powerlaw",
    weights: str | None = "poisson",
    nonnegative: bool | Sequence[str] = True,
    energy: Any = None,
    exponents: tuple[float, ...] | None = None,
    max_iter: int = 30,
    tol: float = 1e-6,
    plural_scattering: str | None = None,
    low_loss: Any = None,
    resolution_fwhm: float | None = None,
    shift_components: Sequence[str] = (),
    chemical_shift: str = "auto",
    implausible: str = "raise",
):
    """Fit edge references (and a power-law background) to every spectrum.

    Per spectrum the model over ``fit_range`` is
    ``μ(E) = A·(E/E0)^(−r) + Σᵢ Bᵢ·Sᵢ(E)`` with ``E0 = fit_range[0]``; the
    weights Bᵢ of the references Sᵢ are the maps. All pixels are solved at
    once (batched normal equations; no per-pixel Python loop), and a
    dask-backed ``si`` stays lazy (chunks along the leading dims are processed
    independently, so a series larger than memory streams through).

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectra with an ``energy`` dimension (eV coordinates) and any leading
        dims (``time, y, x`` ...). A plain array has energy on its last axis
        and needs ``energy=``.
    references : xarray.DataArray
        Dims ``(component, energy)``; linearly resampled to ``si``'s energy
        axis when they differ. They must cover ``fit_range``.
    fit_range : (float, float)
        Fit window in eV (inclusive).
    background : {"powerlaw", "basis", None}
        ``"powerlaw"``: amplitude and exponent fitted per pixel, jointly with
        the references (Gauss–Newton / Fisher scoring; exact for power-law
        data). ``"basis"``: a fixed linear basis ``(E/E0)^(−r_j)`` for
        ``exponents``, fitted linearly with the references (fastest; the
        unweighted case is one pseudo-inverse applied to all pixels).
        ``None``: references only (background already removed).
    weights : {"poisson", None}
        ``"poisson"``: maximum likelihood for Poisson counts (iteratively
        reweighted by 1/model); standard errors are the Cramér–Rao bound.
        ``None``: ordinary least squares; standard errors from the residual
        variance.
    nonnegative : bool or sequence of str
        Constrain reference weights to ≥ 0 (exact NNLS per pixel): ``True``
        all of them, ``False`` none, or the names of the components to
        constrain (e.g. ``["Co"]``: the host is certainly present and well
        determined, while Li stays unconstrained and mean-unbiased).

        *Clipping bias.* A non-negative estimate of a weight that is within
        noise of zero is ``E[max(0, N(μ, σ))] > μ``: where many pixels hold
        little Li compared to their per-pixel noise, the constrained map has a
        positive *mean* bias, although its median is unbiased and its RMSE is
        lower. On ``simulate.operando_eels`` at dose 200 (σ ≈ 28 % of the
        mean Li weight, 13 % of the pixels clipped) the Li map is +2.4…3.0 %
        high in the mean, and the Gaussian clipping formula evaluated at the
        true weights predicts +2.9 %: the whole bias is this clipping, not a
        flaw of the fit (the unconstrained fit is unbiased, −0.4…+0.1 %).
        For quantities that are averaged over pixels or frames (Li content,
        flux) use ``nonnegative=False`` or ``nonnegative=["Co"]``; for maps to
        look at, the default.
    energy : array_like, optional
        Energy axis (eV) for a plain-array ``si``.
    exponents : tuple of float, optional
        Exponents of the ``"basis"`` background; default (2, 3, 4), and
        (1, 2, 3, 4, 5) with ``plural_scattering`` (the single-scattering valence
        tail near a plasmon is not a pure power law: three exponents left a
        +8 % Co bias on the realistic simulator, five none measurable).
    max_iter, tol : int, float
        Iteration limit and relative convergence tolerance of the
        reweighting / exponent updates.
    plural_scattering : {None, "fourier-log", "convolve"}
        For spectra recorded with their zero-loss peak (real spectra: plural
        scattering makes a plain fit read thickness, not Li).
        ``"fourier-log"`` (the documented route): each spectrum is aligned on
        and deconvolved by its own zero-loss peak (:func:`deconvolve`), and the
        single-scattering counts are fitted with the references reconvolved to
        the same Gaussian resolution (unless ``references.attrs`` hold
        ``resolution_fwhm_ev``: references measured on deconvolved data already
        have it) and a linear power-law basis ``exponents`` for the valence
        tail; channels are weighted by their propagated variance and
        ``<name>_std`` is the exact sandwich error through the deconvolution.
        ``"convolve"``: raw counts fitted (Poisson ML) with the references
        convolved with each pixel's own low loss ``J(E)/I0`` below
        ``fit_range`` and the power-law basis as background. Both return weights
        in single-scattering counts and add ``thickness`` (t/λ) and
        ``zero_loss`` (I0) maps. ``background`` must be ``"basis"`` or the
        default (treated as ``"basis"``); ``weights`` is not used.
    low_loss : xarray.DataArray, optional
        Dual EELS: the separately recorded low loss of the same pixels (same
        dispersion, its range touching or overlapping ``si``'s). Each pixel's
        low loss, scaled to the core-loss exposure (``low_loss.attrs
        ["exposure_ratio"]``, or measured on the overlap), is spliced below its
        core loss and the result goes through ``plural_scattering`` (default
        ``"fourier-log"``); the low-loss channels' larger relative noise is
        propagated.
    resolution_fwhm : float, optional
        Gaussian FWHM (eV) of the deconvolved spectra; default the measured zero-loss FWHM.
    shift_components : sequence of str
        With ``plural_scattering="fourier-log"``: components whose shape may
        move by a small per-pixel energy shift (e.g. ``["Li"]``: the Li-K
        fine structure moves with x). The derivative of each such reference
        is fitted too (first order in the shift), which removes the bias a
        shifted edge causes at a cost in noise (measured in BENCHMARKS.md);
        ``<name>_shift`` (eV) is returned.
    chemical_shift : {"auto", "off"}
        With ``plural_scattering="fourier-log"`` and references from two
        regions (:func:`references_from_regions`, which attaches a Li-K shift
        model): ``"auto"`` fits every pixel with the Li-K shape at the x of its
        neighbourhood (Gaussian σ 2 pixels over y, x), the shape moving rigidly
        and linearly in x through the two regions' shapes, x found
        self-consistently — so that x holds beyond the regions' x range. The
        shift between the regions' shapes is the references'
        ``attrs["li_k_shift_ev"]``, or, where that is NaN (the default), measured
        on the data: the χ² over whole frames (up to 4096 pixels) minimised over
        shifts of 0–1.5 eV to higher loss as Li leaves (the simulator's model;
        give the shift for the opposite sign). Returns ``<Li>_shift`` (eV) and
        ``attrs["li_k_shift_ev"]``, ``attrs["li_k_shift_source"]``; costs about
        ten fits of the probe frames plus a second deconvolution pass (measured
        14–21 s against 1–2 s for 6144 spectra, BENCHMARKS.md). ``"off"``: the
        two rows fitted as given (exact at the regions' x only: +0.06 in x at
        x 0.1–0.4 with regions at 0.95 and 0.65, noise-free). Other references
        are always fitted as given. References measured on noisy regions carry
        their noise (jackknife replicates, ``references_from_regions``): every
        pixel outside the regions is then fitted with that noise subtracted
        from its normal matrix (errors in variables; x beyond the regions' x
        +0.05…+0.24 → within ±0.02 at 100–1000 counts per 0.1 eV, about 2–3×
        the time). The ``_std`` maps hold the pixel noise only;
        ``<name>_std_references`` the references' noise (from their jackknife
        replicates, first and second order), ``ratio_std_references`` that
        of the Li/host ratio (x in the regions' units), ``<name>_std_total``
        both in quadrature, ``references_corr`` the Li–host correlation of
        the references' part and ``references_rho`` ρ, the share of a pixel's
        information the references' noise takes (above 0.5 the correction is
        capped and x biased; 0 for the regions' own pixels). The references'
        part is one realisation common to every pixel: averaging pixels does
        not shrink it (measured over 56 draws: pooled x beyond the regions
        scattered 2.4–3.8× its pixel σ and 0.93–0.95× the total, BENCHMARKS.md
        "Issue 19 — error bars with the references' noise"). Cost: ~6–7 % of
        the fit.
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN results at those pixels and a warning.

    Returns
    -------
    xarray.Dataset
        Over ``si``'s leading dims: one map per component named by the
        ``component`` coordinate, ``<name>_std`` (standard error), ``chi2``
        (reduced Pearson χ² with Poisson variance, ≈ 1 for a good fit of
        counts); with ``background="powerlaw"`` also
        ``background_amplitude`` (counts per channel at E0),
        ``background_exponent`` and their ``_std``. Spectra that are all zero
        give zero weights, χ² = 0 and NaN standard errors (no information).

    Raises
    ------
    DataValidationError
        Bad option, fit window outside the data, linearly dependent references,
        NaN/Inf in an in-memory ``si`` (a dask-backed ``si`` gives NaN maps for such
        spectra instead: its chunks are only seen when computed).
    CalibrationError
        References do not cover the fit window; uncalibrated energy axis.

    References
    ----------
    .. [1] R. D. Leapman, C. R. Swyt, "Separation of overlapping core edges in
       electron energy loss spectra by multiple-least-squares fitting",
       Ultramicroscopy 26 (1988) 393, doi:10.1016/0304-3991(88)90239-2.
    .. [2] P. McCullagh, J. A. Nelder, *Generalized Linear Models*, 2nd ed.
       (1989), doi:10.1007/978-1-4899-3242-6 (IRLS = Poisson ML).
    .. [3] C. L. Lawson, R. J. Hanson, *Solving Least Squares Problems* (1995),
       doi:10.1137/1.9781611971217 (NNLS).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from ionscope.eels import mlls
    >>> e = np.arange(40.0, 100.0, 0.5)
    >>> refs = xr.DataArray(np.stack([np.clip(e - 55, 0, None) * np.exp(-(e - 55) / 10),
    ...                               np.clip(e - 60, 0, None) * np.exp(-(e - 60) / 20)]),
    ...                     dims=("component", "energy"),
    ...                     coords={"component": ["Li", "Co"], "energy": e})
    >>> y = 1e4 * (e / 40) ** -3 + 50 * refs[0] + 80 * refs[1]
    >>> res = mlls(y.expand_dims(x=3).transpose("x", "energy"), refs, fit_range=(40, 99))
    >>> np.round(res["Li"].values, 6)
    array([50., 50., 50.])
    """
    _check_options(background, weights, nonnegative, max_iter)
    da = _common.spectra(si, energy=energy)
    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, fit_range, name="fit_range", min_channels=4)
    _plausible.check_mode(implausible)
    if plural_scattering is not None or low_loss is not None:
        # raw counts with their zero-loss peak: the plausibility rule, before any probe or shift search reads them
        da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))
        if low_loss is not None:
            low_loss = _plausible.check_counts(_common.spectra(low_loss, name="low_loss"), implausible=implausible,
                                           name=_plausible.input_name(low_loss, "low_loss"))
        exponents = (1.0, 2.0, 3.0, 4.0, 5.0) if exponents is None else tuple(exponents)
        if low_loss is not None and plural_scattering == "convolve":
            return _mlls_dual_convolve(da, e, ch, references, low_loss, nonnegative=nonnegative,
                                       exponents=exponents, max_iter=max_iter, tol=tol)
        var_scale = None
        if low_loss is not None:
            if plural_scattering is None:
                plural_scattering = "fourier-log"
            window = (float(e[ch[0]]), float(e[ch[-1]]))
            da, e, var_scale = _splice(da, e, low_loss)
            ch = _common.window(e, window, name="fit_range", min_channels=4)
        from . import _li_shift, _lowloss

        plan = _plural_plan(e, ch, references, plural_scattering=plural_scattering, nonnegative=nonnegative,
                            exponents=exponents, resolution_fwhm=resolution_fwhm, background=background,
                            max_iter=max_iter, tol=tol, shift_components=shift_components, var_scale=var_scale,
                            probe=lambda: _lowloss._probe(da), chemical_shift=chemical_shift,
                            shift_probe=lambda: _li_shift.probe_frames(da))
    else:
        exponents = (2.0, 3.0, 4.0) if exponents is None else tuple(exponents)
        if shift_components:
            raise DataValidationError("shift_components needs plural_scattering='fourier-log'")
        if e[0] < 0 < e[-1]:
            import warnings

            warnings.warn(
                "mlls: the energy axis holds a zero-loss peak but plural_scattering=None; on real spectra plural "
                "scattering biases the weights with thickness — pass plural_scattering='fourier-log'",
                stacklevel=2)
        in_memory = da.chunks is None
        if weights == "poisson" and (implausible == "mask" or not in_memory):
            # raw counts (weights=None declares signed data: no rule). In memory, "raise" keeps this route's
            # stricter refusals below (any NaN/Inf, anything below -1); masked spectra are NaN, and the kernel
            # gives NaN there instead of refusing the input
            checked = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))
            in_memory, da = in_memory and checked is da, checked
        _check_in_memory(da, ch, weights, in_memory)
        plan = _plain_plan(e, ch, references, background=background, weights=weights, nonnegative=nonnegative,
                           exponents=exponents, max_iter=max_iter, tol=tol, check_finite=in_memory)
    stacked = apply_kernel(plan.kernel, da, input_core_dims=[["energy"]], output_core_dims=[["component"]],
                           output_sizes={"component": len(plan.columns)}, output_dtypes=[np.float64],
                           kwargs=plan.kwargs)
    return plan.dataset(stacked)


def _check_in_memory(da, ch, weights, in_memory) -> None:
    """The refusals of in-memory spectra (a lazy series gives NaN maps for such spectra instead)."""
    e_size = da.sizes["energy"]
    if in_memory and ch.size < e_size:
        # NaN/Inf inside the fit window are found by the kernel from the row sums it computes
        # anyway (a separate isfinite pass cost ~10 % of the fast path); outside it, here
        outside = np.ones(e_size, bool)
        outside[ch] = False
        check_finite(np.asarray(da.data)[..., outside], name="si")
    if in_memory and weights == "poisson":
        # Poisson weights are the likelihood of counts: negative "counts" (dark-subtracted or
        # inverted data) make the fit meaningless (all-negative spectra gave Li = 0, chi2 ~ 0).
        # Resampling a count spectrum can leave near-empty channels a little below 0: tolerated.
        win = np.asarray(da.data)[..., ch]
        low = float(np.nanmin(win)) if ch.size else 0.0
        if low < -1.0:
            at = np.unravel_index(int(np.nanargmin(win)), win.shape)
            where = ", ".join(f"{d}={int(i)}" for d, i in zip(da.dims[:-1], at[:-1]))
            raise DataValidationError(
                f"si: holds negative counts (down to {low:.4g}, pixel ({where}) channel {int(ch[at[-1]])}) in the "
                f"fit window; weights='poisson' needs counts >= 0: pass weights=None for dark-subtracted or "
                f"otherwise signed data")


def _mlls_dual_convolve(da, e, ch, references, low_loss, *, nonnegative, exponents, max_iter, tol):
    """Dual EELS, any ranges: raw core-loss counts fitted with references ⊛ each pixel's low loss."""
    import xarray as xr

    from . import _lowloss, _plural

    ll = _common.spectra(low_loss, name="low_loss")
    e_low = np.asarray(ll.coords["energy"].values, float)
    _lowloss._check_equal_steps(e_low, "low_loss energy")
    _lowloss._check_equal_steps(e, "si energy")
    if not np.isclose(float(e[1] - e[0]), float(e_low[1] - e_low[0]), rtol=1e-4):
        raise DataValidationError("low_loss: its dispersion differs from si's; resample one of them first")
    if not (e_low[0] < 0 < e_low[-1]):
        raise DataValidationError("low_loss: its energy axis holds no zero-loss peak")
    if tuple(ll.shape[:-1]) != tuple(da.shape[:-1]):
        raise DataValidationError(
            f"low_loss: leading shape {tuple(ll.shape[:-1])} differs from si's {tuple(da.shape[:-1])}")
    e_fit = e[ch]
    names, refs_core = _refs_on_axis(references, e, ch)
    constrained = _constrained(nonnegative, names)
    basis = powerlaw_basis(e_fit / e_fit[0], exponents) if len(exponents) else None
    llx = xr.DataArray(ll.data, dims=tuple(da.dims[:-1]) + ("energy_low",),
                       coords={k: v for k, v in da.coords.items() if "energy" not in v.dims})
    nb = 0 if basis is None else basis.shape[1]
    out_names = _plural.output_names(names, nb)
    stacked = apply_kernel(_plural.convolve_dual_kernel, da, llx, input_core_dims=[["energy"], ["energy_low"]],
                           output_core_dims=[["component"]], output_sizes={"component": len(out_names)},
                           output_dtypes=[np.float64],
                           kwargs=dict(e_core=e, e_low=e_low, channels=ch, refs_core=refs_core, basis=basis,
                                       constrained=constrained, n_iter=int(max_iter), tol=float(tol)))
    return _plural_dataset(stacked, out_names, names, [], "convolve", e_fit, exponents, None, constrained)


def _splice(da, e, low_loss):
    """Dual EELS → one spliced spectrum per pixel (lazy when the inputs are), with its variance scale."""
    import xarray as xr

    from ._lowloss import _check_equal_steps

    ll = _common.spectra(low_loss, name="low_loss")
    e_low = np.asarray(ll.coords["energy"].values, float)
    _check_equal_steps(e_low, "low_loss energy")
    if tuple(ll.shape[:-1]) != tuple(da.shape[:-1]):
        raise DataValidationError(
            f"low_loss: leading shape {tuple(ll.shape[:-1])} differs from si's {tuple(da.shape[:-1])}")
    step = float(e_low[1] - e_low[0])
    if not np.isclose(float(e[1] - e[0]), step, rtol=1e-4):
        raise DataValidationError(f"low_loss: dispersion {step:g} eV differs from si's {float(e[1] - e[0]):g} eV")
    k = int(round((e[0] - e_low[0]) / step))
    if abs((e[0] - e_low[0]) / step - k) > 1e-3 or k <= 0 or k > e_low.size:
        raise DataValidationError(
            f"low_loss ({e_low[0]:g}–{e_low[-1]:g} eV) and si ({e[0]:g}–{e[-1]:g} eV) must be on one channel grid, "
            "the low loss starting lower and reaching si's first channel")
    ratio = ll.attrs.get("exposure_ratio", low_loss.attrs.get("exposure_ratio") if hasattr(low_loss, "attrs")
                         else None)
    if ratio is None:
        overlap = e_low.size - k
        if overlap < 8:
            raise DataValidationError("low_loss: overlaps si by fewer than 8 channels; set "
                                      "low_loss.attrs['exposure_ratio'] (low-loss exposure / core-loss exposure)")
        num = ll.isel(energy=slice(k, k + overlap)).sum()
        den = da.isel(energy=slice(0, overlap)).sum()
        ratio = float(num) / float(den)
    ratio = float(ratio)
    if not np.isfinite(ratio) or ratio <= 0:
        raise DataValidationError(f"low_loss: exposure_ratio must be a number > 0, got {ratio!r}")
    lead = {d: da.coords[d] for d in da.dims[:-1] if d in da.coords}
    low_part = xr.DataArray(ll.data[..., :k] / ratio, dims=da.dims,
                            coords={**lead, "energy": ("energy", e_low[:k], {"units": "eV"})})
    spliced = xr.concat([low_part, da.astype(low_part.dtype)], dim="energy", coords="minimal",
                        compat="override", join="override")
    if spliced.chunks is not None:
        spliced = spliced.chunk({"energy": -1})
    e_all = np.concatenate([e_low[:k], e])
    var_scale = np.concatenate([np.full(k, 1.0 / ratio), np.ones(e.size)])
    return spliced, e_all, var_scale
