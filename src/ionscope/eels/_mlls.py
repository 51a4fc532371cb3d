# SPDX-License-Identifier: GPL-3.0-or-later
"""Multiple linear least squares (MLLS) of edge references over a power-law background."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import apply_kernel, check_finite
from ..errors import DataValidationError
from . import _common
from ._kernels import fit_kernel, layout, powerlaw_basis
from ._solve import check_design

_BACKGROUNDS = ("powerlaw", "basis", None)
_WEIGHTS = ("poisson", None)


def mlls(
    si: Any,
    references: Any,
    *,
    fit_range: tuple[float, float],
    background: str | None = "powerlaw",
    weights: str | None = "poisson",
    nonnegative: bool | Sequence[str] = True,
    energy: Any = None,
    exponents: tuple[float, ...] = (2.0, 3.0, 4.0),
    max_iter: int = 30,
    tol: float = 1e-6,
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
    exponents : tuple of float
        Exponents of the ``"basis"`` background.
    max_iter, tol : int, float
        Iteration limit and relative convergence tolerance of the
        reweighting / exponent updates.

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
    if background not in _BACKGROUNDS:
        raise DataValidationError(f"background: expected one of {_BACKGROUNDS}, got {background!r}")
    if weights not in _WEIGHTS:
        raise DataValidationError(f"weights: expected one of {_WEIGHTS}, got {weights!r}")
    if isinstance(nonnegative, (bool, np.bool_)):
        pass
    elif isinstance(nonnegative, str) or not isinstance(nonnegative, Sequence):
        raise DataValidationError(
            f"nonnegative: expected True, False or a list of component names, got {nonnegative!r}")
    if int(max_iter) < 0:
        raise DataValidationError(f"max_iter: expected ≥ 0, got {max_iter}")
    import xarray as xr

    da = _common.spectra(si, energy=energy)
    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, fit_range, name="fit_range", min_channels=4)
    in_memory = da.chunks is None
    if in_memory and ch.size < e.size:
        # NaN/Inf inside the fit window are found by the kernel from the row sums it computes
        # anyway (a separate isfinite pass cost ~10 % of the fast path); outside it, here
        outside = np.ones(e.size, bool)
        outside[ch] = False
        check_finite(np.asarray(da.data)[..., outside], name="si")
    if in_memory and weights == "poisson":
        # Poisson weights are the likelihood of counts: negative "counts" (dark-subtracted or
        # inverted data) make the fit meaningless (all-negative spectra gave Li = 0, chi2 ~ 0).
        # Resampling a count spectrum can leave near-empty channels a little below 0: tolerated.
        low = float(np.nanmin(np.asarray(da.data)[..., ch])) if ch.size else 0.0
        if low < -1.0:
            raise DataValidationError(
                f"si: holds negative counts (down to {low:.4g}) in the fit window; weights='poisson' needs "
                f"counts >= 0: pass weights=None for dark-subtracted or otherwise signed data")
    e_fit = e[ch]
    names, S = _common.references(references, e_fit)
    if any(n.endswith("_std") or n in ("chi2", "background_amplitude", "background_exponent") for n in names):
        raise DataValidationError(f"references: component names {names} clash with output names")
    e0 = float(e_fit[0])
    if e0 <= 0:
        raise DataValidationError(f"fit_range: must start above 0 eV for a power-law background, got {e0:g}")
    lnx = np.log(e_fit / e0)
    basis = powerlaw_basis(e_fit / e0, exponents) if background == "basis" else None
    n_par = S.shape[1] + (2 if background == "powerlaw" else (basis.shape[1] if basis is not None else 0))
    if ch.size <= n_par:
        raise DataValidationError(
            f"fit_range holds {ch.size} channels but the model has {n_par} parameters; widen fit_range")
    design = S if basis is None else np.column_stack([S, basis])
    if background == "powerlaw":
        design = np.column_stack([S, np.exp(-3.0 * lnx), -lnx * np.exp(-3.0 * lnx)])
    if design.shape[1]:
        check_design(design, names=names + (["background"] * (design.shape[1] - len(names))))
    out_names = layout(S.shape[1], background, 0 if basis is None else basis.shape[1])
    if isinstance(nonnegative, (bool, np.bool_)):
        constrained = np.full(len(names), bool(nonnegative))
    else:
        unknown = [str(c) for c in nonnegative if str(c) not in names]
        if unknown:
            raise DataValidationError(
                f"nonnegative: components {unknown} are not among the references' components {names}")
        constrained = np.array([n in {str(c) for c in nonnegative} for n in names])
    kwargs = dict(channels=ch, lnx=lnx, refs=S, background=background, basis=basis,
                  nonnegative=constrained, weights=weights, n_iter=int(max_iter), tol=float(tol),
                  check_finite=in_memory)
    stacked = apply_kernel(
        fit_kernel, da, input_core_dims=[["energy"]], output_core_dims=[["component"]],
        output_sizes={"component": len(out_names)}, output_dtypes=[np.float64], kwargs=kwargs)
    rename = {f"ref{i}": n for i, n in enumerate(names)}
    variables = {}
    # plain Variables on the shared coordinates: no per-map alignment (DataArrays cost ~2 ms
    # of alignment per call, 5 % of the fast path)
    lead_dims = stacked.dims[:-1]
    coords = {k: v for k, v in stacked.coords.items() if "component" not in v.dims}
    for i, key in enumerate(out_names):
        base = key[:-4] if key.endswith("_std") else key
        label = rename.get(base, base) + ("_std" if key.endswith("_std") else "")
        if label.startswith("basis") or label == "amplitude_exponent_cov":
            continue  # nuisance parameters of the background
        variables[label] = xr.Variable(lead_dims, stacked.data[..., i], attrs={"long_name": label})
    ds = xr.Dataset(variables, coords=coords)
    ds["chi2"].attrs["long_name"] = "reduced Pearson chi-squared (Poisson variance)"
    if "background_exponent" in ds:
        ds["background_amplitude"].attrs["units"] = f"counts per channel at E0 = {e0:g} eV"
    ds.attrs = {"method": "mlls", "fit_range_ev": [float(e_fit[0]), float(e_fit[-1])],
                "background": str(background), "weights": str(weights), "nonnegative": int(constrained.all()),
                "nonnegative_components": ",".join(n for n, c in zip(names, constrained) if c),
                "components": names, "e0_ev": e0}
    return ds
