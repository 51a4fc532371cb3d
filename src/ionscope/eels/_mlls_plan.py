# SPDX-License-Identifier: GPL-3.0-or-later
"""The fit of :func:`~ionscope.eels.mlls` prepared once: :func:`mlls_plan` → :class:`MllsPlan`.

:func:`~ionscope.eels.mlls` builds a plan (design, references on the energy
axis, windows, constraints, the zero-loss width of plural-scattering routes)
and maps its kernel over the chunks of a series; a per-frame pipeline builds
the plan once and applies it to each frame it reads (issue 20), with the same
arithmetic.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CalibrationError, DataValidationError
from . import _common
from ._kernels import fit_kernel, layout, powerlaw_basis
from ._solve import check_design

_BACKGROUNDS = ("powerlaw", "basis", None)
_WEIGHTS = ("poisson", None)


@dataclass(frozen=True)
class MllsPlan:
    """Everything :func:`mlls` needs besides the spectra, built once by :func:`mlls_plan`.

    Calling the plan on a numpy block of spectra ``(..., energy)`` (on the
    plan's energy axis) gives ``(..., len(columns))`` float64: the array
    kernel :func:`mlls` maps over a series' chunks, so a block fitted through
    the plan gives exactly the numbers :func:`mlls` gives for it. Use it to fit
    frame after frame (or block after block) without redoing the design,
    the reference interpolation and the zero-loss width every time.

    Parameters
    ----------
    kernel : callable
        ``kernel(spectra, **kwargs) -> ndarray``.
    kwargs : dict
        The kernel's options (design, windows, constraints).
    columns : tuple of str
        The kernel's output columns (components, their ``_std``, ``chi2``, ...).
    energy : ndarray
        The energy axis (eV) the spectra must be on.

    Examples
    --------
    >>> import numpy as np
    >>> plan = MllsPlan(kernel=lambda s, scale: scale * s.sum(-1, keepdims=True), kwargs={"scale": 2.0},
    ...                 columns=("total",), energy=np.arange(3.0))
    >>> plan(np.ones((2, 3)))[:, 0]
    array([6., 6.])

    :func:`mlls_plan` builds the real one (see its example).
    """

    kernel: Callable
    kwargs: dict
    columns: tuple
    energy: np.ndarray
    _finish: Callable = field(repr=False, default=None)
    #: what the plan measured on data while it was built (e.g. ``li_k_shift_scan``: the Li-K shifts tried, eV,
    #: and the probe's χ² at each, when ``shift_probe`` was measured); empty otherwise
    info: dict = field(repr=False, default_factory=dict)

    def __call__(self, spectra) -> np.ndarray:
        """Fit a numpy block ``(..., energy)``: ``(..., len(columns))`` float64."""
        return self.kernel(spectra, **self.kwargs)

    def dataset(self, stacked):
        """The :func:`mlls` Dataset from the plan's output as a DataArray with a last ``component`` dim."""
        return self._finish(stacked)


def mlls_plan(references: Any, *, energy: Any, fit_range: tuple[float, float], background: str | None = "powerlaw",
              weights: str | None = "poisson", nonnegative: bool | Sequence[str] = True,
              exponents: tuple[float, ...] | None = None, max_iter: int = 30, tol: float = 1e-6,
              plural_scattering: str | None = None, resolution_fwhm: float | None = None,
              shift_components: Sequence[str] = (), probe: Any = None, chemical_shift: str = "auto",
              shift_probe: Any = None) -> MllsPlan:
    """The fit of :func:`mlls` prepared once, to be applied to many blocks of spectra.

    Same options as :func:`mlls` (without ``si``, ``low_loss``): the design,
    the reference spectra on the energy axis, the windows and the
    constraints are made and checked here; the returned :class:`MllsPlan` fits
    a numpy block of spectra with exactly the arithmetic :func:`mlls` applies
    to each chunk of a lazy series (no NaN/Inf or negative-count refusal of
    in-memory input: such spectra give NaN maps, as for a lazy series).

    Parameters
    ----------
    references : xarray.DataArray (component, energy)
    energy : array_like
        The spectra's energy axis (eV).
    fit_range, background, weights, nonnegative, exponents, max_iter, tol, plural_scattering, resolution_fwhm,
    shift_components, chemical_shift
        As for :func:`mlls`.
    probe : array_like (n, energy), optional
        With ``plural_scattering`` and no ``resolution_fwhm``: spectra to measure the zero-loss
        width from (:func:`mlls` takes 64 spectra spread evenly over its input).
    shift_probe : array_like (frames, y, x, energy) or (n, energy), or callable, optional
        With references from :func:`references_from_regions` that leave their
        Li-K shift to be measured (``li_k_shift_ev`` NaN): whole frames on
        ``energy`` (or a callable returning them, called only then) on which
        the shift is measured, as :func:`mlls` does on its own input. Without
        them the plan warns and fits the two rows as given (``ionscope refs
        regions`` stores a measured shift in the references instead, and the
        operando pipeline measures an open one on the night's first usable
        frame: :mod:`ionscope.pipeline._li_shift_night`). The measurement's
        trial shifts and χ² are in the plan's ``info["li_k_shift_scan"]``.

    Returns
    -------
    MllsPlan

    Raises
    ------
    DataValidationError, CalibrationError
        As :func:`mlls`; with ``plural_scattering`` and neither ``resolution_fwhm`` nor ``probe``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> e = np.arange(40.0, 100.0, 0.5)
    >>> refs = xr.DataArray(np.stack([np.clip(e - 55, 0, None) * np.exp(-(e - 55) / 10),
    ...                               np.clip(e - 60, 0, None) * np.exp(-(e - 60) / 20)]),
    ...                     dims=("component", "energy"), coords={"component": ["Li", "Co"], "energy": e})
    >>> plan = mlls_plan(refs, energy=e, fit_range=(40, 99))
    >>> y = (1e4 * (e / 40) ** -3 + 50 * refs[0] + 80 * refs[1]).values
    >>> out = plan(np.stack([y, 2 * y]))
    >>> np.round(out[:, plan.columns.index("Li")], 6)
    array([ 50., 100.])
    """
    _check_options(background, weights, nonnegative, max_iter)
    e = np.asarray(energy, float).ravel()
    ch = _common.window(e, fit_range, name="fit_range", min_channels=4)
    if plural_scattering is not None:
        exponents = (1.0, 2.0, 3.0, 4.0, 5.0) if exponents is None else tuple(exponents)

        def measured():
            if probe is None:
                raise DataValidationError("mlls_plan: plural_scattering needs resolution_fwhm= or probe= spectra "
                                          "to measure the zero-loss width from")
            p = np.asarray(probe, float)
            # the spectra mlls itself would keep (finite and not empty)
            good = np.isfinite(p).all(axis=1) & (p.sum(axis=1) > 0)
            if not good.any():
                raise DataValidationError("no finite, non-empty spectrum to measure the zero-loss peak from")
            return p[good]

        return _plural_plan(e, ch, references, plural_scattering=plural_scattering, nonnegative=nonnegative,
                            exponents=exponents, resolution_fwhm=resolution_fwhm, background=background,
                            max_iter=max_iter, tol=tol, shift_components=shift_components, var_scale=None,
                            probe=measured, chemical_shift=chemical_shift,
                            shift_probe=None if shift_probe is None else _frames_getter(shift_probe, e.size))
    exponents = (2.0, 3.0, 4.0) if exponents is None else tuple(exponents)
    if shift_components:
        raise DataValidationError("shift_components needs plural_scattering='fourier-log'")
    return _plain_plan(e, ch, references, background=background, weights=weights, nonnegative=nonnegative,
                       exponents=exponents, max_iter=max_iter, tol=tol, check_finite=False)


def _frames_getter(shift_probe, n_energy):
    """``shift_probe`` of :func:`mlls_plan` as the callable :func:`._li_shift.estimate_delta`'s caller wants,
    checked: numpy float64 spectra on the plan's energy axis."""
    def get():
        p = np.asarray(shift_probe() if callable(shift_probe) else shift_probe, float)
        if p.ndim not in (2, 4) or p.shape[-1] != n_energy:
            raise DataValidationError(f"shift_probe: expected (frames, y, x, energy) or (n, energy) spectra with "
                                      f"{n_energy} energy channels, got shape {p.shape}")
        return p

    return get


def _check_options(background, weights, nonnegative, max_iter) -> None:
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


def _plain_plan(e, ch, references, *, background, weights, nonnegative, exponents, max_iter, tol, check_finite):
    """The plan of MLLS without plural scattering (power-law background or basis)."""
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
    constrained = _constrained(nonnegative, names)
    kwargs = dict(channels=ch, lnx=lnx, refs=S, background=background, basis=basis,
                  nonnegative=constrained, weights=weights, n_iter=int(max_iter), tol=float(tol),
                  check_finite=check_finite)
    rename = {f"ref{i}": n for i, n in enumerate(names)}
    columns = tuple(rename.get(k[:-4] if k.endswith("_std") else k, k[:-4] if k.endswith("_std") else k)
                    + ("_std" if k.endswith("_std") else "") for k in out_names)

    def finish(stacked):
        import xarray as xr

        variables = {}
        # plain Variables on the shared coordinates: no per-map alignment (DataArrays cost ~2 ms
        # of alignment per call, 5 % of the fast path)
        lead_dims = stacked.dims[:-1]
        coords = {k: v for k, v in stacked.coords.items() if "component" not in v.dims}
        for i, label in enumerate(columns):
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
        if weights == "poisson":
            _warn_mismatch(ds)
        return ds

    return MllsPlan(fit_kernel, kwargs, columns, e, finish)


_PLURAL = ("fourier-log", "convolve")


def _constrained(nonnegative, names):
    if isinstance(nonnegative, (bool, np.bool_)):
        return np.full(len(names), bool(nonnegative))
    unknown = [str(c) for c in nonnegative if str(c) not in names]
    if unknown:
        raise DataValidationError(
            f"nonnegative: components {unknown} are not among the references' components {names}")
    return np.array([n in {str(c) for c in nonnegative} for n in names])


def _plural_plan(e, ch, references, *, plural_scattering, nonnegative, exponents, resolution_fwhm, background,
                 max_iter, tol, shift_components=(), var_scale=None, probe, chemical_shift="auto", shift_probe=None):
    """The plan of MLLS with plural scattering (see ``mlls``'s ``plural_scattering``); ``probe()`` gives the
    spectra the zero-loss width is measured from (called only without ``resolution_fwhm``)."""
    from . import _lowloss, _plural

    if plural_scattering not in _PLURAL:
        raise DataValidationError(f"plural_scattering: expected None or one of {_PLURAL}, got {plural_scattering!r}")
    if background not in ("powerlaw", "basis"):
        raise DataValidationError(
            f"background={background!r}: with plural_scattering the background is the power-law basis; "
            "use background='basis'")
    if not (e[0] < 0 < e[-1]):
        raise DataValidationError(
            f"si: the energy axis {e[0]:g}–{e[-1]:g} eV holds no zero-loss peak, which plural_scattering="
            f"{plural_scattering!r} needs; record the spectra from below 0 eV (or deconvolve dual-EELS data first)")
    _lowloss._check_equal_steps(e, "si energy")
    e_fit = e[ch]
    if e_fit[0] <= 0:
        raise DataValidationError(f"fit_range must lie above 0 eV, got start {e_fit[0]:g} eV")
    step = float(e[1] - e[0])
    fw = _lowloss._resolution(probe() if resolution_fwhm is None else None, e, resolution_fwhm)
    names, _ = _common.references(references, e_fit)
    constrained = _constrained(nonnegative, names)
    if isinstance(shift_components, str):
        shift_components = [shift_components]
    unknown = [c for c in shift_components if c not in names]
    if unknown:
        raise DataValidationError(f"shift_components: {unknown} are not among the references' components {names}")
    if shift_components and plural_scattering != "fourier-log":
        raise DataValidationError("shift_components needs plural_scattering='fourier-log'")
    shift_idx = [names.index(c) for c in shift_components]
    basis = powerlaw_basis(e_fit / e_fit[0], exponents) if len(exponents) else None
    shifted = None
    if plural_scattering == "fourier-log":
        measured = hasattr(references, "attrs") and "resolution_fwhm_ev" in references.attrs
        # references on a margin around the window so the reconvolution sees their real neighbourhood
        pad = int(np.ceil(3 * fw / step))
        lo, hi = max(0, ch[0] - pad), min(e.size, ch[-1] + 1 + pad)
        ext = np.arange(lo, hi)
        try:
            _, refs_ext = _common.references(references, e[ext])
        except CalibrationError:  # references measured on the fit window only
            ext = ch
            _, refs_ext = _common.references(references, e_fit)
        inner = np.searchsorted(ext, ch)
        check_design(_plural.design(refs_ext, inner, basis, step=step, fwhm=fw, blur=not measured,
                                    shift_idx=shift_idx),
                     names=names + [f"d{names[i]}/dE" for i in shift_idx]
                     + ["background"] * (0 if basis is None else basis.shape[1]))
        # the batched kernel (issue 20); _plural.fourier_log_kernel is its slow reference
        from ._plural_fast import fourier_log_kernel

        kernel = fourier_log_kernel
        kwargs = dict(energy=e, channels=ch, refs_ext=refs_ext, inner=inner, basis=basis, constrained=constrained,
                      resolution_fwhm=fw, blur_refs=not measured, tail_fit_ev=20.0, var_scale=var_scale,
                      shift_idx=shift_idx)
        shifted = _shift_family(references, names, e, ch, ext, inner, refs_ext, basis, chemical_shift=chemical_shift,
                                shift_idx=shift_idx, fw=fw, measured=measured, shift_probe=shift_probe)
        if shifted is not None:
            kernel, extra, shift_idx = shifted[:3]
            kwargs = dict(energy=e, channels=ch, inner=inner, basis=basis, constrained=constrained,
                          resolution_fwhm=fw, tail_fit_ev=20.0, var_scale=var_scale, **extra)
    else:
        _, refs_full = _refs_on_axis(references, e, ch, positive=True)
        kernel = _plural.convolve_kernel
        kwargs = dict(energy=e, channels=ch, refs_full=refs_full, basis=basis, constrained=constrained,
                      low_end=float(e_fit[0]), n_iter=int(max_iter), tol=float(tol))
    nb = 0 if basis is None else basis.shape[1]
    out_names = _plural.output_names(names, nb, [names[i] for i in shift_idx])
    with_ref_sigma = shifted is not None and "shapes_rep" in kwargs
    if with_ref_sigma:  # the references' noise in each pixel's σ (eels._refs_sigma), after the basis
        from . import _refs_sigma

        out_names = out_names + _refs_sigma.extra_names(names)

    def finish(stacked):
        ds = _plural_dataset(stacked, out_names, names, shift_idx, plural_scattering, e_fit, exponents, fw,
                             constrained)
        if with_ref_sigma:
            _refs_sigma.describe(ds, names, kwargs["shift_of_x"][1:])
        if shifted is not None:
            name = names[shift_idx[0]]
            ds[f"{name}_shift"].attrs["long_name"] = (f"Li-K chemical shift of the {name} shape fitted "
                                                      "(linear in the pixel's own x, from the references' regions)")
            ds.attrs["chemical_shift"] = "li-k shift linear in x (references' regions), self-consistent x"
            ds.attrs["li_k_shift_ev"] = float(shifted[3])
            ds.attrs["li_k_shift_source"] = shifted[4]
        return ds

    info = {"li_k_shift_scan": shifted[5]} if shifted is not None and shifted[5] is not None else {}
    return MllsPlan(kernel, kwargs, tuple(out_names), e, finish, info)


def _shift_family(references, names, e, ch, ext, inner, refs_ext, basis, *, chemical_shift, shift_idx, fw,
                  measured, shift_probe):
    """With ``chemical_shift="auto"`` and references carrying a Li-K shift model (two regions,
    :func:`references_from_regions`): (the self-consistent kernel, its options, [index of Li], the shift
    in eV, where it came from); otherwise None (the references are fitted as given). A shift the
    references leave open (NaN) is measured on ``shift_probe()`` spectra (:func:`._li_shift.estimate_delta`)."""
    from . import _li_shift

    if chemical_shift not in ("auto", "off", None, False):
        raise DataValidationError(f"chemical_shift: expected 'auto' or 'off', got {chemical_shift!r}")
    model = _li_shift.model_of(references)
    if chemical_shift != "auto" or model is None or shift_idx or len(names) != 2:
        return None
    if model[2] not in names or model[3] not in names:
        return None
    step = float(e[1] - e[0])
    e_ext = e[ext]
    source, scan = "references", None
    if not np.isfinite(model[1]):
        if shift_probe is None:
            import warnings

            warnings.warn("mlls_plan: the references leave the Li-K shift to be measured on the data "
                          "(li_k_shift_ev is NaN) and a plan has no data: the rows are fitted as given; set "
                          "references.attrs['li_k_shift_ev'] (mlls reports the measured one in its attrs; "
                          "`ionscope refs regions` measures and stores it by default), or give shift_probe=",
                          RuntimeWarning, stacklevel=4)
            return None
        delta, tried, chis = _li_shift.estimate_delta(shift_probe(), energy=e, channels=ch, e_ext=e_ext,
                                               refs_ext=refs_ext, names=names, model=model, inner=inner,
                                               basis=basis, resolution_fwhm=fw, blur=not measured,
                                               scan=_li_shift.DELTA_SCAN_EV,
                                               **dict(zip(("reps", "fingerprints"),
                                                          _li_shift.replicates(references, names, e_ext))))
        model = (model[0], delta, model[2], model[3])
        source, scan = "data", (np.asarray(tried, float), np.asarray(chis, float))
    shapes, host, i_li, i_host, x1, x2 = _li_shift.family(e_ext, refs_ext, names, model)
    if not measured:
        from ._plural import _gauss_blur

        shapes = _gauss_blur(shapes.T, step, fw).T
        host = _gauss_blur(host[:, None], step, fw)[:, 0]
    extra = dict(shapes_li=shapes, shape_host=host, i_li=i_li, i_host=i_host, shift_of_x=(model[1], x1, x2))
    if measured:
        extra.update(_li_shift.replicate_shapes(references, names, e_ext, inner, model))
    return _li_shift.fourier_log_shift_kernel, extra, [i_li], model[1], source, scan


def _refs_on_axis(references, e, ch, *, positive=False):
    """References on the whole axis ``e`` (names, (n_e, M)); where they cover only the fit window
    ``ch`` (e.g. measured by references_from_regions), zero outside it. ``positive``: zero at E ≤ 0 too."""
    sel = np.flatnonzero(e > 0) if positive else np.arange(e.size)
    out_names, out = None, np.zeros((e.size, 0))
    try:
        out_names, values = _common.references(references, e[sel])
        out = np.zeros((e.size, len(out_names)))
        out[sel] = values
    except CalibrationError:
        out_names, values = _common.references(references, e[ch])
        out = np.zeros((e.size, len(out_names)))
        out[ch] = values
    return out_names, out


def _plural_dataset(stacked, out_names, names, shift_idx, plural_scattering, e_fit, exponents, fw, constrained):
    import xarray as xr

    lead_dims = stacked.dims[:-1]
    coords = {k: v for k, v in stacked.coords.items() if "component" not in v.dims}
    variables = {}
    for i, key in enumerate(out_names):
        if key.startswith("basis"):
            continue
        variables[key] = xr.Variable(lead_dims, stacked.data[..., i], attrs={"long_name": key})
    ds = xr.Dataset(variables, coords=coords)
    for n in names:
        ds[n].attrs.update(long_name=f"{n} weight in single-scattering counts", units="counts per unit reference")
        ds[f"{n}_std"].attrs.update(long_name=f"standard error of {n} (propagated through the deconvolution)"
                                    if plural_scattering == "fourier-log" else f"standard error of {n}",
                                    units="counts per unit reference")
    ds["chi2"].attrs["long_name"] = "reduced chi-squared (propagated variance)" if plural_scattering == \
        "fourier-log" else "reduced Pearson chi-squared (Poisson variance)"
    ds["thickness"].attrs.update(long_name="t/λ (log-ratio)", units="1")
    for i in shift_idx:
        ds[f"{names[i]}_shift"].attrs.update(long_name=f"energy shift of the {names[i]} reference (first order)",
                                             units="eV")
    ds["zero_loss"].attrs.update(long_name="zero-loss intensity I0", units="counts")
    ds.attrs = {"method": "mlls", "plural_scattering": plural_scattering,
                "fit_range_ev": [float(e_fit[0]), float(e_fit[-1])], "background": "basis",
                "exponents": [float(x) for x in exponents],
                "nonnegative_components": ",".join(n for n, c in zip(names, constrained) if c),
                "components": names, "weights_unit": "single-scattering counts"}
    if fw is not None:
        ds.attrs["resolution_fwhm_ev"] = fw
    _warn_mismatch(ds)
    return ds


#: mean reduced χ² above which the references clearly do not describe the spectra
CHI2_WARN = 2.0


def _warn_mismatch(ds):
    """Warn when the (in-memory) fit's mean χ² says the references do not match the data."""
    chi2 = ds["chi2"].data
    if hasattr(chi2, "compute"):
        return  # lazy: computing it here would read the whole series; the χ² map is in the output
    finite = np.asarray(chi2)[np.isfinite(chi2)]
    if finite.size and float(np.mean(finite)) > CHI2_WARN:
        import warnings

        warnings.warn(
            f"mlls: mean reduced χ² = {float(np.mean(finite)):.2f} (≫ 1): the references do not describe these "
            "spectra (reference mismatch, a missing component, or plural scattering not accounted for); "
            "inspect the `chi2` map", stacklevel=3)
