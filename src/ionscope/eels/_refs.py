# SPDX-License-Identifier: GPL-3.0-or-later
"""References a user can actually get: edge shapes measured on the data itself.

Regions of known composition (e.g. a thin pristine LiCoO2 grain, x = 1, and a
charged one, x ≈ 0.5; or a Li-free Co oxide) are averaged, deconvolved to
single scattering (so that the references do not carry the thickness of the
region they came from), normalised per unit inelastic scattering ``I0·t/λ``
(so regions of different thickness compare), background-subtracted with a
power-law basis fitted below the first edge, and unmixed channel by channel
into per-component shapes by least squares over the regions:
``Y_r(E) = Σ_c n_rc · S_c(E)``, ``n_rc`` the known amounts.

The Li-K chemical shift (the fine structure moves with x) is handled by the
ordinary two-component choice ``{"pristine": {"Li": 1, "Co": 1}, "charged":
{"Li": 0.5, "Co": 1}}``: the unmixed Co reference then holds the difference of
the two regions' Li-K shapes, so the fit is exact at both regions' x and nearly
so in between. Measured on the realistic simulator (0.6 eV shift, noise-free):
x −0.004 (4×4 blocks, k from the pristine region) where one model Li-K shape
gives −0.023; areal Li leak +0.15 %/unit t/λ (``tests/test_eels_chemical_shift.py``).
More Li-K shapes are just more components (``Li_rich``, ``Li_poor``; needs as
many regions, and the Li content is their sum), at a cost in noise.

Beyond the regions' x the two rows extrapolate badly (+0.06 in x at x 0.1–0.4
with regions at 0.95 and 0.65, noise-free; +0.3 in the demo's interface layer):
with two regions and components ``Li`` and one host the references carry a Li-K
shift model (``chemical_shift="auto"``, see :mod:`._li_shift`), and
:func:`mlls` fits each pixel with the Li-K shape at its own x (noise-free
≤ 0.003 there). References measured on ~10³ noisy pixels are themselves noisy
(per channel as large as the Li-K row at 100–400 counts per 0.1 eV): they carry
jackknife replicates so that the fit can correct for that noise (see
:func:`._li_shift.noise_gram`).

References
----------
R. D. Leapman, C. R. Swyt, Ultramicroscopy 26 (1988) 393,
doi:10.1016/0304-3991(88)90239-2 (MLLS with references measured on standards).
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import DataValidationError
from ..io import accepts_data
from . import _common


def _mask_for(da, mask, name):
    import xarray as xr

    lead = da.dims[:-1]
    if isinstance(mask, xr.DataArray):
        if mask.dtype != bool:
            raise DataValidationError(f"regions[{name!r}]: expected a boolean mask, got dtype {mask.dtype}")
        if not set(mask.dims) <= set(lead):
            raise DataValidationError(f"regions[{name!r}]: dims {mask.dims} are not among the data's {lead}")
        m = mask.broadcast_like(da.isel(energy=0, drop=True)).transpose(*lead)
        return np.asarray(m.values, bool)
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise DataValidationError(f"regions[{name!r}]: expected a boolean mask, got dtype {arr.dtype}")
    shape = tuple(da.shape[:-1])
    if arr.shape != shape[-arr.ndim:] if arr.ndim else True:
        raise DataValidationError(
            f"regions[{name!r}]: mask shape {arr.shape} does not match the data's leading shape {shape}")
    return np.broadcast_to(arr, shape)


@accepts_data("si")
def references_from_regions(si: Any, regions: Mapping[str, Any], composition: Mapping[str, Mapping[str, float]], *,
                            fit_range, background_range=None, plural_scattering: str | None = "fourier-log",
                            exponents=(2.0, 3.0), resolution_fwhm: float | None = None, energy: Any = None,
                            chemical_shift: str | float | None = "auto", implausible: str = "raise"):
    """Per-component reference spectra measured on regions of known composition.

    Parameters
    ----------
    si : xarray.DataArray
        Spectra (raw counts with their zero-loss peak for
        ``plural_scattering="fourier-log"``; background-containing
        single-scattering-like spectra for ``None``).
    regions : mapping of str to mask
        Boolean masks over the leading dims (or a trailing subset, e.g. (y, x)),
        one per region. Thin regions give the cleanest references.
    composition : mapping of str to mapping of str to float
        For each region the amount of each component per formula unit, e.g.
        ``{"pristine": {"Li": 1.0, "Co": 1.0}, "charged": {"Li": 0.5, "Co": 1.0}}``.
        There must be at least as many regions as components, and the
        composition matrix must have full rank.
    fit_range : (float, float)
        Energy range (eV) of the returned references (the MLLS window).
    background_range : (float, float), optional
        Pre-edge window (eV) where the power-law basis is fitted; default from
        ``fit_range[0]`` to 1 eV below ``fit_range[0] + 9``.
    plural_scattering : {"fourier-log", None}
        Deconvolve every spectrum from its own zero-loss peak first (recommended;
        the returned references then carry ``attrs["resolution_fwhm_ev"]`` and
        :func:`mlls` does not blur them again).
    exponents : tuple of float
        Power-law basis of the background.
    resolution_fwhm : float, optional
        Reconvolution FWHM (eV) of the deconvolution.
    energy : array_like, optional
        Energy axis for a plain-array ``si``.
    chemical_shift : {"auto", "off"} or float
        Two regions with components ``Li`` and one host (e.g. ``Co``): the
        references carry a Li-K shift model in ``attrs`` (``li_k_shift_ev``,
        ``li_k_shift_amounts``, ``li_k_shift_components``,
        ``li_k_shift_regions``), and :func:`mlls` then fits every pixel with
        the Li-K shape at its own x, the shape moving rigidly and linearly in x
        through the two regions' shapes — which holds beyond the regions' x
        range, where the two fixed rows extrapolate badly (+0.06…+0.3 in x at
        x ≈ 0.2 with regions at x ≈ 1 and 0.65). ``"auto"``: the shift between
        the regions' Li-K shapes is left to :func:`mlls` to measure on the
        data (``li_k_shift_ev`` NaN); a number (eV, the poorer region's Li-K
        relative to the richer's, positive to higher loss) gives it.
        ``"off"``: no shift model (the rows are fitted as given).
    implausible : {"raise", "mask"}
        Raw counts that cannot occur (the rule of :func:`~ionscope.eels.check_counts`):
        ``"raise"`` (default) an error naming the pixel and channel, ``"mask"``
        NaN results at those pixels and a warning.

    Returns
    -------
    xarray.DataArray
        ``(component, energy)`` over ``fit_range``, in single-scattering counts
        per unit amount per unit ``I0·t/λ``, with a coordinate ``references_std``
        (the propagated noise; the background extrapolation's model error is not
        included) and attrs ``regions``, ``pixels``, ``resolution_fwhm_ev``,
        ``condition_number`` of the composition matrix. With a Li-K shift
        model (two regions, ``Li`` and one host, fourier-log) also
        ``references_jackknife`` (the rows with each of ``jackknife_groups``
        groups of the region pixels left out, flattened (group, component,
        energy)) and ``region_fingerprints`` (one number per region pixel's
        raw spectrum): :func:`mlls` uses them to correct every other pixel's
        fit for the references' own noise (without it, x beyond the regions'
        x read +0.14…+0.19 high at 100–400 counts per 0.1 eV channel).

    Raises
    ------
    DataValidationError
        Unknown/empty regions, too few regions, a rank-deficient composition,
        windows outside the data.

    References
    ----------
    R. D. Leapman, C. R. Swyt, Ultramicroscopy 26 (1988) 393,
    doi:10.1016/0304-3991(88)90239-2.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import operando_eels
    >>> si, truth, _ = operando_eels(shape=(24, 16), n_frames=1, physics="realistic", noise=False)
    >>> x = truth.x_li.isel(time=0)
    >>> refs = references_from_regions(
    ...     si.isel(time=0), {"rich": (x > 0.9).values, "poor": (x < 0.7).values},
    ...     {"rich": {"Li": float(x.where(x > 0.9).mean()), "Co": 1.0},
    ...      "poor": {"Li": float(x.where(x < 0.7).mean()), "Co": 1.0}}, fit_range=(45, 85))
    >>> refs.component.values.tolist()
    ['Li', 'Co']
    """
    import xarray as xr

    from . import _lowloss, _plausible

    da = _common.spectra(si, energy=energy)
    if plural_scattering is not None:  # raw counts with their zero-loss peak: the plausibility rule
        da = _plausible.check_counts(da, implausible=implausible, name=_plausible.input_name(si, "si"))
    else:
        _plausible.check_mode(implausible)
    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, fit_range, name="fit_range", min_channels=8)
    if background_range is None:
        background_range = (float(e[ch[0]]), float(e[ch[0]]) + 8.0)
    bg = _common.window(e, background_range, name="background_range", min_channels=len(exponents) + 2)
    if not isinstance(regions, Mapping) or not regions:
        raise DataValidationError("regions: expected a mapping of region name → boolean mask")
    if not isinstance(composition, Mapping):
        raise DataValidationError("composition: expected a mapping of region name → {component: amount}")
    missing = [r for r in regions if r not in composition]
    if missing:
        raise DataValidationError(f"composition: no entry for region(s) {missing}")
    components: list[str] = []
    for r in regions:
        for c, v in composition[r].items():
            if not np.isfinite(float(v)) or float(v) < 0:
                raise DataValidationError(f"composition[{r!r}][{c!r}]: expected an amount ≥ 0, got {v!r}")
            if c not in components:
                components.append(str(c))
    if len(regions) < len(components):
        raise DataValidationError(
            f"references_from_regions: {len(components)} components {components} need at least as many regions; "
            f"got {len(regions)}")
    C = np.array([[float(composition[r].get(c, 0.0)) for c in components] for r in regions])
    sv = np.linalg.svd(C, compute_uv=False)
    if sv[-1] < 1e-8 * sv[0]:
        raise DataValidationError(f"composition: the matrix {C.tolist()} is rank deficient; the regions cannot "
                                  "separate the components")
    if plural_scattering not in ("fourier-log", None):
        raise DataValidationError(f"plural_scattering: expected 'fourier-log' or None, got {plural_scattering!r}")
    masks = {}
    for r, mask in regions.items():
        m = _mask_for(da, mask, r)
        if not m.any():
            raise DataValidationError(f"regions[{r!r}]: the mask selects no pixel")
        masks[r] = np.asarray(m, bool).ravel()
    # only the regions' pixels are read and deconvolved (the rest of a large or lazy series is never
    # touched: deconvolving the whole 128×128×2048 SI four times took 5 of the 7 minutes of a fit)
    union = np.flatnonzero(np.any(np.stack(list(masks.values())), axis=0))
    flat = da.data.reshape(-1, da.shape[-1])[union]
    flat = np.asarray(flat.compute() if hasattr(flat, "compute") else flat)
    sub = xr.DataArray(flat, dims=("position", "energy"), coords={"energy": ("energy", e, {"units": "eV"})})
    if plural_scattering == "fourier-log":
        fw = _lowloss._resolution(_lowloss._probe(da), e, resolution_fwhm)
        dec = _lowloss.deconvolve(sub, resolution_fwhm=fw)
        spec, var = np.asarray(dec.ssd.values, float), np.asarray(dec.ssd_var.values, float)
        norm = np.asarray((dec.zero_loss * dec.thickness).values, float)
    else:
        spec = flat.astype(float)
        var = np.clip(spec, 0, None)
        norm = np.ones(flat.shape[0])
        fw = None
    Y, V, npix = [], [], []
    for r, m in masks.items():
        sel = m[union]
        y, v, w = _region_mean(spec, var, norm, sel)
        if not np.isfinite(w) or w <= 0 or not np.all(np.isfinite(y)):
            raise DataValidationError(f"regions[{r!r}]: no usable spectrum (zero or non-finite intensity)")
        Y.append(y)
        V.append(v)
        npix.append(int(sel.sum()))
    S, S_var = _unmix(np.array(Y), np.array(V), e, ch, bg, exponents, C)
    out = xr.DataArray(S, dims=("component", "energy"),
                       coords={"component": components, "energy": ("energy", e[ch], {"units": "eV"}),
                               "references_std": (("component", "energy"), np.sqrt(S_var))},
                       name="references",
                       attrs={"signal_type": "EELS", "title": "references measured on regions of known composition",
                              "regions": list(regions), "pixels": npix, "condition_number": float(sv[0] / sv[-1]),
                              "units": "single-scattering counts per unit amount per unit I0·t/λ"
                              if fw is not None else "counts per unit amount",
                              "background_range_ev": [float(e[bg[0]]), float(e[bg[-1]])],
                              "exponents": [float(x) for x in exponents]})
    if fw is not None:
        out.attrs["resolution_fwhm_ev"] = fw
    out.attrs.update(_shift_model(chemical_shift, list(regions), components, C))
    if out.attrs.get("li_k_shift_components") and fw is not None:
        out.attrs.update(_jackknife(spec, var, norm, [m[union] for m in masks.values()], flat, e, ch, bg,
                                    exponents, C))
    return out


def _region_mean(spec, var, norm, sel):
    """The spectra ``sel`` summed, and their variance, per unit of their summed ``norm`` (I0·t/λ), and that sum."""
    w = float(np.nansum(norm[sel]))
    with np.errstate(divide="ignore", invalid="ignore"):  # w ≤ 0 or NaN: the caller refuses the region
        return spec[sel].sum(axis=0) / w, var[sel].sum(axis=0) / w**2, w


def _unmix(Y, V, e, ch, bg, exponents, C):
    """The per-component rows (and their variance) from the regions' mean spectra ``Y`` (variance ``V``):
    power-law background fitted below the edges and removed, then least squares over the regions."""
    Yb = Y[:, ch].copy()
    if len(exponents):
        used = np.union1d(bg, ch)
        B = np.zeros((e.size, len(exponents)))
        B[used] = np.exp(-np.outer(np.log(e[used] / e[ch[0]]), np.asarray(exponents, float)))
        for i in range(len(Y)):
            wts = 1.0 / np.maximum(V[i, bg], 1e-30)
            coef = np.linalg.lstsq(B[bg] * np.sqrt(wts)[:, None], Y[i, bg] * np.sqrt(wts), rcond=None)[0]
            Yb[i] -= B[ch] @ coef
    pinv = np.linalg.pinv(C)
    return pinv @ Yb, (pinv**2) @ V[:, ch]


#: delete-a-group jackknife groups of the region pixels (the references' noise, :mod:`._li_shift`)
JACKKNIFE_GROUPS = 8


def _jackknife(spec, var, norm, sels, flat, e, ch, bg, exponents, C, groups=JACKKNIFE_GROUPS):
    """attrs that let :func:`mlls` correct the fit for the references' own noise (issue 19, see
    :func:`._li_shift.noise_gram`): the rows recomputed with each of ``groups`` groups of the region
    pixels left out (``references_jackknife``, flattened (group, component, energy)), and a fingerprint
    of every region pixel's raw spectrum (``region_fingerprints``, sorted), by which a fit recognises
    the pixels the references were made from (their noise is in the references: they need no correction)."""
    from . import _li_shift

    rng = np.random.default_rng(0)
    gid = [rng.integers(0, groups, int(m.sum())) for m in sels]
    reps = []
    for g in range(groups):
        Y, V = [], []
        for m, gi in zip(sels, gid):
            keep = np.flatnonzero(m)[gi != g]
            if keep.size == 0:
                return {}
            y, v, _ = _region_mean(spec, var, norm, keep)
            Y.append(y)
            V.append(v)
        reps.append(_unmix(np.array(Y), np.array(V), e, ch, bg, exponents, C)[0])
    inside = np.any(np.stack(sels), axis=0)
    fp = np.sort(_li_shift.fingerprint(np.asarray(flat, float)[inside]))
    return {"references_jackknife": np.asarray(reps, float).ravel(), "jackknife_groups": int(groups),
            "region_fingerprints": fp}


def _shift_model(chemical_shift, regions, components, C):
    """attrs of the Li-K shift model (see :mod:`._li_shift`): empty where it does not apply."""
    if isinstance(chemical_shift, bool) or (isinstance(chemical_shift, str) and chemical_shift not in ("auto", "off")):
        raise DataValidationError(f"chemical_shift: expected 'auto', 'off' or a shift in eV, got {chemical_shift!r}")
    if chemical_shift is None or chemical_shift == "off":
        return {}
    if chemical_shift == "auto":
        delta = float("nan")
    else:
        try:
            delta = float(chemical_shift)
        except (TypeError, ValueError):
            delta = float("nan")
        if not np.isfinite(delta):
            raise DataValidationError(f"chemical_shift: expected a finite shift in eV, got {chemical_shift!r}")
    if len(regions) != 2 or len(components) != 2 or "Li" not in components:
        return {}
    i_li = components.index("Li")
    li, h = C[:, i_li], C[:, 1 - i_li]
    if np.any(h <= 0) or np.any(li <= 0):
        return {}
    x = li / h
    if abs(x[0] - x[1]) < 0.02 * max(x):
        return {}
    rich, poor = (0, 1) if x[0] > x[1] else (1, 0)
    return {"li_k_shift_ev": delta, "li_k_shift_components": ["Li", components[1 - i_li]],
            "li_k_shift_amounts": [float(v) for v in (li[rich], h[rich], li[poor], h[poor])],
            "li_k_shift_regions": [regions[rich], regions[poor]]}
