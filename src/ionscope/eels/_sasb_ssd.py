# SPDX-License-Identifier: GPL-3.0-or-later
"""SA/SB through plural scattering: the two windows on each spectrum's single-scattering distribution.

The classic SA/SB (:mod:`ionscope.eels._sasb`) subtracts a power law fitted
below the edges. On a real spectrum that power law has to describe the
plurally scattered valence background (double and triple plasmons near 46 and
69 eV): measured on the realistic simulator it gave Li/Co −104 % with a
correlation of −0.06 with the truth. This route instead

1. deconvolves every spectrum from its own zero-loss peak (Fourier-log,
   :func:`ionscope.eels.deconvolve`), so the windows hold single-scattering
   counts: edge + single-scattering valence tail, both ∝ I0·t/λ;
2. removes the valence tail with a background that describes it:
   ``background="fit"`` (default with references) fits a linear power-law basis
   (five exponents) *jointly* with the references over ``fit_range``, by
   generalised least squares with the propagated variance, and subtracts only
   the basis part under each window; ``background="pre-edge"`` (no references
   needed) fits the basis on ``pre_edge`` alone and extrapolates it;
3. forms SA, SB and SA/SB as before and inverts them with the window integrals
   of the references *at the deconvolution's resolution*.

SA and SB are linear functionals of the deconvolved counts, which are a linear
filter of the raw counts, so their variances and covariance are exact
sandwiches through the deconvolution (:mod:`ionscope.eels._ssdfit`), and
``li_co_std`` follows by the delta method.

References
----------
J. Kikkawa et al., J. Phys. Chem. C 119 (2015) 15823, doi:10.1021/acs.jpcc.5b02303 (SA/SB).
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2, doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

import numpy as np

from ..data import apply_kernel
from ..errors import DataValidationError
from . import _common, _lowloss, _ssdfit

#: exponents of the single-scattering valence-tail basis: as for mlls(plural_scattering=...)
EXPONENTS_FIT = (1.0, 2.0, 3.0, 4.0, 5.0)
#: a pre-edge-only fit must extrapolate: two exponents (more make the extrapolation unstable)
EXPONENTS_PRE = (2.0, 4.0)


def _kernel(spectra, **kwargs):
    from ._solve import single_threaded_blas

    with single_threaded_blas():
        return _ssdfit.functionals_kernel(spectra, **kwargs)


def calibration_from_shapes(S_li, S_co, ia, ib, *, window_a, window_b, li_co=1.0):
    """SasbCalibration from reference shapes already on the data's channels (indices ``ia``, ``ib``)."""
    from ._sasb import SasbCalibration

    sa_li, sb_li, sa_co, sb_co = (float(S_li[ia].sum()), float(S_li[ib].sum()), float(S_co[ia].sum()),
                                  float(S_co[ib].sum()))
    if sb_co <= 0 or sa_co <= 0:
        raise DataValidationError("references: the Co reference has no counts in window_a/window_b")
    ratio0 = sa_co / sb_co
    r1 = (li_co * sa_li + sa_co) / (li_co * sb_li + sb_co)
    if not r1 > ratio0:
        raise DataValidationError("window_a/window_b: SA/SB does not grow with Li; choose window_a over the Li-K peak")
    return SasbCalibration(tuple(map(float, window_a)), tuple(map(float, window_b)), float(ratio0),
                           float(li_co / (r1 - ratio0)), sa_li, sb_li, sa_co, sb_co, float(li_co))


def sasb_ssd(da, *, calibration, references, pre_edge, window_a, window_b, method, background, fit_range,
             exponents, resolution_fwhm, low_loss, li="Li", co="Co", shift_li=True):
    """The SA/SB route on the single-scattering distribution (see :func:`ionscope.eels.sasb`)."""
    import xarray as xr

    e = np.asarray(da.coords["energy"].values, float)
    var_scale = None
    if low_loss is not None:
        from ._mlls import _splice

        da, e, var_scale = _splice(da, e, low_loss)
    background = _check_inputs(e, background=background, references=references, calibration=calibration)
    wa = calibration.window_a if calibration is not None else tuple(window_a)
    wb = calibration.window_b if calibration is not None else tuple(window_b)
    ia_full = _common.window(e, wa, name="window_a")
    ib_full = _common.window(e, wb, name="window_b")
    pre = _common.window(e, pre_edge, name="pre_edge", min_channels=4)
    if e[pre[-1]] >= e[ia_full[0]]:
        raise DataValidationError(f"pre_edge={tuple(pre_edge)} must end below window_a={wa}")
    if e[pre[0]] <= 0:
        raise DataValidationError("pre_edge: must start above 0 eV for a power law")
    fw = _lowloss._resolution(_lowloss._probe(da), e, resolution_fwhm)
    if background == "fit":
        if fit_range is None:
            fit_range = (float(e[pre[0]]), min(float(e[-1]), float(max(e[ib_full[-1]], e[ia_full[-1]])) + 5.0))
        fit = _common.window(e, fit_range, name="fit_range", min_channels=8)
        if e[fit[0]] <= 0:
            raise DataValidationError("fit_range: must start above 0 eV for a power-law basis")
        exps = EXPONENTS_FIT if exponents is None else tuple(exponents)
        ch = np.union1d(fit, np.union1d(ia_full, ib_full))
    else:
        exps = EXPONENTS_PRE if exponents is None else tuple(exponents)
        fit = pre
        ch = np.union1d(pre, np.union1d(ia_full, ib_full))
    fit_mask = np.isin(ch, fit)
    ia = np.isin(ch, ia_full)
    ib = np.isin(ch, ib_full)
    from ._kernels import powerlaw_basis

    basis = powerlaw_basis(e[ch] / e[fit[0]], exps) if len(exps) else np.zeros((ch.size, 0))
    names, S = ([], np.zeros((ch.size, 0)))
    if references is not None:
        names, S, _ = _ssdfit.references_blurred(references, e, ch, fw)
    if calibration is None:
        for want in (li, co):
            if want not in names:
                raise DataValidationError(f"references: component {want!r} missing; it has {names}")
        calibration = calibration_from_shapes(S[:, names.index(li)], S[:, names.index(co)], ia, ib,
                                              window_a=wa, window_b=wb)
    M = S.shape[1] if background == "fit" else 0
    extra = np.zeros((ch.size, 0))
    if background == "fit" and shift_li and li in names:
        # the Li-K fine structure moves with x (chemical shift): its first-order term w·δ·S'(E) is a
        # nuisance column, so that a shifted Li-K edge is not read as background under the windows
        step = float(e[1] - e[0])
        extra = np.gradient(S[:, names.index(li)], step)[:, None]
    X = np.column_stack([S[:, :M], extra, basis]) if background == "fit" else basis
    M = M + extra.shape[1]
    if X.shape[1] == 0:
        raise DataValidationError("exponents: at least one power-law exponent is needed for the background")
    if fit_mask.sum() <= X.shape[1]:
        raise DataValidationError(f"the background window holds {int(fit_mask.sum())} channels for "
                                  f"{X.shape[1]} parameters; widen fit_range/pre_edge")
    from ._solve import check_design

    check_design(X[fit_mask], names=names + ["dLi/dE"] * extra.shape[1] + ["background"] * basis.shape[1])
    L1 = np.stack([ia, ib]).astype(float)
    L2 = np.zeros((2, X.shape[1]))
    L2[0, M:] = -basis[ia].sum(axis=0)
    L2[1, M:] = -basis[ib].sum(axis=0)
    kw = dict(energy=e, channels=ch, fit_mask=fit_mask, X=X, L1=L1, L2=L2, resolution_fwhm=fw, var_scale=var_scale)
    stacked = apply_kernel(_kernel, da, input_core_dims=[["energy"]], output_core_dims=[["component"]],
                           output_sizes={"component": _ssdfit.n_outputs(2)}, output_dtypes=[np.float64], kwargs=kw)
    data = stacked.data
    vals, var, cov, chi2, thick, i0 = _ssdfit.unpack(data, 2)
    sa, sb = vals[..., 0], vals[..., 1]
    ok = sb != 0
    sbs = np.where(ok, sb, 1.0)
    R = np.where(ok, sa / sbs, np.nan)
    var_R = (var[..., 0] + R**2 * var[..., 1] - 2 * R * cov[..., 0]) / sbs**2
    li_co, dli = _invert(R, calibration, method)
    li_std = np.abs(dli) * np.sqrt(np.maximum(var_R, 0))
    if method == "linear" and (calibration.k_std > 0 or calibration.ratio0_std > 0):
        # a calibration measured on the data carries its own error (common to all pixels)
        dR = R - calibration.ratio0
        li_std = np.sqrt(li_std**2 + (dR * calibration.k_std) ** 2 + (calibration.k * calibration.ratio0_std) ** 2)
    lead = stacked.dims[:-1]
    coords = {k: v for k, v in stacked.coords.items() if "component" not in v.dims}
    units = "Li/Co in reference units (single-scattering weights)"
    ds = xr.Dataset({"li_co": (lead, li_co, {"long_name": "Li/Co (SA/SB)", "units": units}),
                     "li_co_std": (lead, li_std, {"long_name": "standard error of Li/Co (propagated through the "
                                                              "deconvolution)", "units": units}),
                     "ratio": (lead, R, {"long_name": "SA/SB"}),
                     "ratio_std": (lead, np.sqrt(np.maximum(var_R, 0)), {"long_name": "standard error of SA/SB"}),
                     "sa": (lead, sa, {"long_name": "window A, background removed", "units": "single-scattering "
                                                                                           "counts"}),
                     "sb": (lead, sb, {"long_name": "window B, background removed", "units": "single-scattering "
                                                                                          "counts"}),
                     "sa_std": (lead, np.sqrt(np.maximum(var[..., 0], 0)), {"long_name": "standard error of sa"}),
                     "sb_std": (lead, np.sqrt(np.maximum(var[..., 1], 0)), {"long_name": "standard error of sb"}),
                     "sa_sb_cov": (lead, cov[..., 0], {"long_name": "covariance of sa and sb"}),
                     "chi2": (lead, chi2, {"long_name": "reduced chi-squared of the background fit"}),
                     "thickness": (lead, thick, {"long_name": "t/λ (log-ratio)", "units": "1"}),
                     "zero_loss": (lead, i0, {"long_name": "zero-loss intensity I0", "units": "counts"})},
                    coords=coords)
    ds.attrs = {"method": f"sasb-{method}", "plural_scattering": "fourier-log", "background": background,
                "exponents": [float(x) for x in exps], "resolution_fwhm_ev": fw,
                "fit_range_ev": [float(e[fit[0]]), float(e[fit[-1]])],
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in calibration.as_dict().items()},
                "pre_edge_ev": [float(e[pre[0]]), float(e[pre[-1]])]}
    return ds


def _check_inputs(e, *, background, references, calibration) -> str:
    """Refuse an energy axis without a zero-loss peak and inconsistent options; the background to use."""
    if not (e[0] < 0 < e[-1]):
        raise DataValidationError(
            f"si: the energy axis {e[0]:g}–{e[-1]:g} eV holds no zero-loss peak, which plural_scattering="
            "'fourier-log' needs; record the spectra from below 0 eV or pass low_loss= (dual EELS)")
    _lowloss._check_equal_steps(e, "si energy")
    if background is None:
        background = "fit" if references is not None else "pre-edge"
    if background not in ("fit", "pre-edge"):
        raise DataValidationError(f"background: expected 'fit' or 'pre-edge', got {background!r}")
    if background == "fit" and references is None:
        raise DataValidationError("background='fit' needs references= (the edges are fitted with the background)")
    if calibration is None and references is None:
        raise DataValidationError("sasb: pass calibration= or references= (Li and Co spectra)")
    return background


def _invert(R, cal, method):
    """Li/Co and d(Li/Co)/dR from SA/SB (lazy-safe: plain array arithmetic)."""
    if method == "linear":
        return cal.k * (R - cal.ratio0), cal.k
    den = cal.sa_li - R * cal.sb_li
    dens = np.where(den != 0, den, np.nan)
    li_co = (R * cal.sb_co - cal.sa_co) / dens
    return li_co, (cal.sb_co * cal.sa_li - cal.sa_co * cal.sb_li) / dens**2


def calibration_from_regions(res, regions, x, *, mask_for):
    """Linear SA/SB calibration ``x = k·(SA/SB − (SA/SB)₀)`` from regions of known x (see the public wrapper)."""
    from ._sasb import SasbCalibration

    names = list(regions)
    if len(names) < 2:
        raise DataValidationError(f"regions: at least two regions of different known x are needed, got {names}")
    missing = [r for r in names if r not in x]
    if missing:
        raise DataValidationError(f"x: no known value for region(s) {missing}")
    sa = res["sa"].data
    R, vR, xs = [], [], []
    for r in names:
        m = mask_for(res["sa"].expand_dims(energy=1).transpose(..., "energy"), regions[r], r)
        if not m.any():
            raise DataValidationError(f"regions[{r!r}]: the mask selects no pixel")
        sums = []
        for key in ("sa", "sb", "sa_std", "sb_std", "sa_sb_cov"):
            v = np.asarray(res[key].values if key != "sa" else sa, float)
            v = np.asarray(v.compute() if hasattr(v, "compute") else v, float)
            ok = m & np.isfinite(v)
            sums.append(float(np.sum(np.where(ok, v if not key.endswith("_std") else v**2, 0.0))))
        SA, SB, vA, vB, cAB = sums
        if not SB > 0:
            raise DataValidationError(f"regions[{r!r}]: window B holds no signal there (SB ≤ 0)")
        ratio = SA / SB
        R.append(ratio)
        vR.append((vA + ratio**2 * vB - 2 * ratio * cAB) / SB**2)
        xv = float(x[r])
        if not np.isfinite(xv) or xv < 0:
            raise DataValidationError(f"x[{r!r}]: expected a known Li fraction ≥ 0, got {x[r]!r}")
        xs.append(xv)
    R, vR, xs = np.array(R), np.maximum(np.array(vR), 1e-300), np.array(xs)
    if np.ptp(xs) <= 0:
        raise DataValidationError("x: the regions must differ in their known x to calibrate SA/SB")
    # x_r = a + b·R_r, weighted by the regions' SA/SB errors (propagated to x through b)
    Amat = np.column_stack([np.ones_like(R), R])
    b_guess = np.ptp(xs) / max(np.ptp(R), 1e-300) if np.ptp(R) > 0 else 1.0
    w = 1.0 / (b_guess**2 * vR)
    G = Amat.T @ (Amat * w[:, None])
    coef = np.linalg.solve(G, Amat.T @ (w * xs))
    cov = np.linalg.inv(G)
    a, b = float(coef[0]), float(coef[1])
    if not b > 0:
        raise DataValidationError(f"regions: SA/SB does not grow with the known x (measured {R.tolist()} for "
                                  f"x = {xs.tolist()}); check the regions and the windows")
    ratio0 = -a / b
    # delta method for ratio0 = −a/b
    g = np.array([-1.0 / b, a / b**2])
    r0_std = float(np.sqrt(max(g @ cov @ g, 0.0)))
    return SasbCalibration(tuple(res.attrs["window_a"]), tuple(res.attrs["window_b"]), float(ratio0), b,
                           float("nan"), float("nan"), float("nan"), float("nan"), 1.0,
                           k_std=float(np.sqrt(max(cov[1, 1], 0.0))), ratio0_std=r0_std, source="regions")
