# SPDX-License-Identifier: GPL-3.0-or-later
"""Position-resolved TEM-EELS: Li-K profile along a line with error bars, and layer widths.

A position-resolved TEM-EELS image (Shimoyamada, Yamamoto et al. 2015) has
one axis of energy loss and one of position along a line across an interface.
Each position is a spectrum, so the Li-K weight per position comes from the
same Poisson MLLS as a spectrum image (:func:`ionscope.eels.mlls`), or,
without references, from the background-subtracted counts in a Li-K window.
The width of a Li-rich layer is then fitted with error-function edges (the
interface roughness and probe blur make the edges Gaussian-smoothed steps),
weighted by the profile's standard errors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataValidationError
from ..io._inputs import accepts_data
from . import _common

LI_WINDOW = (54.0, 70.0)
PRE_EDGE = (40.0, 52.0)


@accepts_data("linescan")
def li_profile(linescan: Any, *, references: Any = None, component: str = "Li", fit_range=None,
               window=LI_WINDOW, pre_edge=PRE_EDGE, energy: Any = None, plural_scattering: str | None = None):
    """Li-K intensity along the line, with standard errors.

    Parameters
    ----------
    linescan : xarray.DataArray or array_like
        ``(position, energy)`` counts (plain arrays: energy last, need ``energy=``).
    references : xarray.DataArray, optional
        Edge references (component, energy). With them the Li weight is the
        Poisson MLLS weight of ``component`` with a per-position power-law
        background over ``fit_range`` (default: the whole axis).
    component : str
        Which reference is Li.
    window, pre_edge : (float, float)
        Without references: Li-K integration window and power-law background
        window (eV); counts are summed after background subtraction and the
        error propagates the Poisson counts and the background fit covariance.
    energy : array_like, optional
    plural_scattering : {None, "fourier-log", "convolve"}
        With ``references``: for line scans recorded with their zero-loss peak,
        passed to :func:`mlls` (weights in single-scattering counts, not
        mirroring thickness; unclipped so that profiles average correctly).

    Returns
    -------
    xarray.Dataset
        ``Li`` and ``Li_std`` over ``position`` (and any other leading dims),
        the names ``mlls``/``limap`` give the Li map; also under the older
        names ``li`` and ``li_std`` (the same arrays), which scripts read.

    References
    ----------
    .. [1] A. Shimoyamada, K. Yamamoto et al., Microscopy 64 (2015) 401,
       doi:10.1093/jmicro/dfv045.
    .. [2] Y. Nomura et al., Angew. Chem. Int. Ed. 58 (2019) 5292,
       doi:10.1002/anie.201814669.

    Examples
    --------
    >>> from ionscope.simulate import tem_eels_linescan
    >>> data, truth = tem_eels_linescan(n_positions=40, energy_step=0.5)
    >>> prof = li_profile(data, references=truth.references)
    >>> prof.li.dims
    ('position',)
    """
    import xarray as xr

    da = _common.spectra(linescan, energy=energy, name="linescan")
    e = np.asarray(da.coords["energy"].values, float)
    if references is not None:
        from ._mlls import mlls

        rng = fit_range if fit_range is not None else (max(e[0], 45.0) if plural_scattering else e[0], e[-1])
        if plural_scattering is None:
            res = mlls(da, references, fit_range=rng)
        else:
            res = mlls(da, references, fit_range=rng, plural_scattering=plural_scattering, nonnegative=False)
        if component not in res:
            raise DataValidationError(f"component={component!r} is not among the references {res.attrs['components']}")
        out = xr.Dataset({"li": res[component], "li_std": res[f"{component}_std"], "chi2": res["chi2"]})
        out.attrs = {"method": "mlls", "component": component, "plural_scattering": str(plural_scattering)}
        return _with_li_names(out)
    from ._background import fit_background

    ia = _common.window(e, window, name="window")
    fit = fit_background(da, fit_range=pre_edge)
    if e[_common.window(e, pre_edge, name="pre_edge")[-1]] >= e[ia[0]]:
        raise DataValidationError(f"pre_edge={tuple(pre_edge)} must end below window={tuple(window)}")
    lnx = xr.DataArray(np.log(e[ia] / fit.attrs["e0_ev"]), dims="energy")
    g = np.exp(-fit.exponent * lnx)
    counts = da.isel(energy=ia)
    s = counts.sum("energy") - fit.amplitude * g.sum("energy")
    # delta method: ∂bg/∂A = Σg, ∂bg/∂r = −A Σ g·ln x
    dA = g.sum("energy")
    dr = -fit.amplitude * (g * lnx).sum("energy")
    var_bg = dA**2 * fit.amplitude_std**2 + dr**2 * fit.exponent_std**2 + 2 * dA * dr * fit.amplitude_exponent_cov
    var = counts.sum("energy").clip(min=0) + var_bg
    out = xr.Dataset({"li": s, "li_std": np.sqrt(var)})
    out.attrs = {"method": "window", "window_ev": list(map(float, window))}
    return _with_li_names(out)


def _with_li_names(out):
    """``Li``/``Li_std`` (the Li map's name everywhere else) beside ``li``/``li_std`` (kept: scripts read them)."""
    out["Li"] = out["li"].copy(deep=False)
    out["Li_std"] = out["li_std"].copy(deep=False)
    for old, new in (("li", "Li"), ("li_std", "Li_std")):
        out[old].attrs = {**out[old].attrs, "alias_of": new}
    return out


def _edge(x, centre, sigma):
    from scipy.special import erf

    return 0.5 * (1.0 + erf((x - centre) / (np.sqrt(2.0) * np.maximum(np.abs(sigma), 1e-6))))


@accepts_data("profile", keep_dataset=("profile",))
def layer_width(profile: Any, *, std: Any = None, kind: str = "enhancement", position: Any = None,
                interface: float | None = None):
    """Width of a layer in a profile, with its standard error.

    Parameters
    ----------
    profile : xarray.DataArray, xarray.Dataset or array_like
        1-D profile over ``position`` (or ``y``/``x``); a Dataset from
        :func:`li_profile` supplies ``li`` and ``li_std``.
    std : array_like, optional
        Standard errors of the profile (weights of the fit); default uniform.
    kind : {"enhancement", "step"}
        ``"enhancement"``: a layer of raised intensity just beyond an
        interface, ``c·E(x)·(1 + a·L(x))`` with ``E`` a rising edge at the
        interface ``x0`` and ``L`` a falling edge at ``x0 + width`` (Li-rich
        space-charge layer). ``"step"``: ``c + a·½·erfc((x − x0 − width)/(√2 s))``,
        a layer that starts at the interface ``x0`` (default the first position
        minus half a step, i.e. the image edge) — e.g. a Co3O4 fraction profile.
    position : array_like, optional
        Positions (nm) for a plain-array profile.
    interface : float, optional
        Fixed interface position for ``kind="step"``.

    Returns
    -------
    dict
        ``width_nm``, ``width_std_nm``, ``interface_nm`` (and its std),
        ``amplitude`` (enhancement ``a`` or step height), ``baseline``, ``fit`` (the model curve),
        ``reduced_chi2``, and ``problems``: why the width should not be read as a
        measured layer (empty when it can) — no enhancement found (``a`` ≤ 0, on
        its bound −1: a Li-poor layer), an amplitude within 2σ of zero, a width
        on a bound of the fit, or a reduced χ² far from 1 (with ``std`` given).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erfc
    >>> x = np.arange(0.0, 60.0, 0.5)
    >>> f = 0.1 + 0.5 * 0.5 * erfc((x - 20.0) / (np.sqrt(2) * 1.0))
    >>> round(layer_width(f, position=x, kind="step", interface=0.0)["width_nm"], 6)
    20.0
    """
    import xarray as xr
    from scipy.optimize import curve_fit

    if isinstance(profile, xr.Dataset):
        main = "Li" if "Li" in profile else "li"
        if std is None and f"{main}_std" in profile:
            std = profile[f"{main}_std"]
        profile = profile[main]
    if isinstance(profile, xr.DataArray):
        if profile.ndim != 1:
            raise DataValidationError(f"profile: expected 1-D, got dims {profile.dims}")
        dim = profile.dims[0]
        x = np.asarray(profile.coords[dim].values if dim in profile.coords else np.arange(profile.size), float)
        y = np.asarray(profile.values, float)
    else:
        y = np.asarray(profile, float).ravel()
        x = np.arange(y.size, dtype=float) if position is None else np.asarray(position, float).ravel()
    if x.size != y.size or y.size < 8:
        raise DataValidationError(f"profile: needs ≥ 8 points with matching positions, got {y.size}/{x.size}")
    s = np.ones_like(y) if std is None else np.asarray(std, float).ravel()
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    x, y, s = x[ok], y[ok], s[ok]
    step = float(np.median(np.diff(x)))
    span = float(x[-1] - x[0])
    # starting values from a median-smoothed copy, so that single noisy points do not mislead them
    from scipy.ndimage import median_filter

    ys = median_filter(y, size=min(9, max(3, y.size // 20) | 1), mode="nearest")
    bounds = (-np.inf, np.inf)
    if kind == "enhancement":
        far = np.median(y[-max(3, y.size // 4):])
        if far <= 0:
            raise DataValidationError("profile: the far (bulk) end must be positive for kind='enhancement'")
        x0 = float(x[np.argmax(ys > 0.5 * far)])
        a0 = max(float(ys.max() / far - 1.0), 0.05)
        above = np.flatnonzero((x > x0) & (ys < far * (1 + 0.5 * a0)))
        w0 = float(x[above[0]] - x0) if above.size else 5 * step
        bounds = ([-np.inf, -1.0, x[0], 0.0, 1e-3 * step, 1e-3 * step],
                  [np.inf, np.inf, x[-1], span, span, span])

        def model(xx, c, a, xi, w, s1, s2):
            return c * _edge(xx, xi, s1) * (1.0 + a * _edge(-xx, -(xi + w), s2))

        p0 = [far, a0, x0, max(w0, 2 * step), step, step]
    elif kind == "step":
        xi = (x[0] - 0.5 * step) if interface is None else float(interface)
        base = float(np.median(y[-max(3, y.size // 4):]))
        top = float(np.median(y[: max(2, y.size // 10)]))
        half = np.flatnonzero(np.abs(ys - base) < 0.5 * abs(top - base))
        w0 = float(x[half[0]] - xi) if half.size else float(x[y.size // 2] - xi)

        def model(xx, c, a, w, s1):
            return c + a * (1.0 - _edge(xx, xi + w, s1))

        p0 = [base, top - base, max(w0, step), step]
        bounds = ([-np.inf, -np.inf, 0.0, 1e-3 * step], [np.inf, np.inf, span + step, span])
    else:
        raise DataValidationError(f"kind: expected 'enhancement' or 'step', got {kind!r}")
    try:
        p0 = np.clip(p0, np.asarray(bounds[0], float) + 1e-9, np.asarray(bounds[1], float) - 1e-9)
        popt, pcov = curve_fit(model, x, y, p0=p0, sigma=s, absolute_sigma=std is not None, bounds=bounds,
                               max_nfev=20000)
    except RuntimeError as exc:
        raise DataValidationError(f"profile: the layer model did not converge ({exc}); is there a layer?") from None
    perr = np.sqrt(np.maximum(np.diag(pcov), 0))
    n_main = 4 if kind == "enhancement" else 3
    if not np.all(np.isfinite(perr[:n_main])) or np.any(perr[:n_main] > 10 * span):
        # An edge sharper than the sampling makes its own width unidentifiable and the
        # joint covariance singular; the errors of the other parameters are then
        # taken with the edge widths held at their fitted values.
        fixed = popt[n_main:]

        def sub(xx, *p):
            return model(xx, *p, *fixed)

        _, pc = curve_fit(sub, x, y, p0=popt[:n_main], sigma=s, absolute_sigma=std is not None,
                          bounds=(np.asarray(bounds[0][:n_main]), np.asarray(bounds[1][:n_main])), max_nfev=20000)
        perr[:n_main] = np.sqrt(np.maximum(np.diag(pc), 0))
    # a zero or undefined error means the parameter sat on a bound: say "unknown", not "exact"
    perr = np.where(np.isfinite(perr) & (perr > 0), perr, np.nan)
    fit = model(x, *popt)
    chi2 = float(np.sum(((y - fit) / s) ** 2) / max(y.size - len(popt), 1))
    if kind == "enhancement":
        c, a, xi, w = popt[:4]
        out = {"width_nm": float(w), "width_std_nm": float(perr[3]), "interface_nm": float(xi),
               "interface_std_nm": float(perr[2]), "amplitude": float(a), "amplitude_std": float(perr[1]),
               "baseline": float(c), "fit": fit, "reduced_chi2": chi2}
    else:
        c, a, w = popt[:3]
        out = {"width_nm": float(w), "width_std_nm": float(perr[2]), "interface_nm": float(xi),
               "interface_std_nm": 0.0, "amplitude": float(a), "amplitude_std": float(perr[1]),
               "baseline": float(c), "fit": fit, "reduced_chi2": chi2}
    out["problems"] = _layer_problems(out, kind, weighted=std is not None)
    return out


def _layer_problems(r: dict, kind: str, *, weighted: bool) -> list[str]:
    """Why a layer fit's width should not be read as a measured layer (empty when it can)."""
    a, sa, sw = r["amplitude"], r["amplitude_std"], r["width_std_nm"]
    out = []
    if kind == "enhancement" and not a > 0:
        out.append(f"no Li-rich layer found: the fitted enhancement is {a:+.2f} (a Li-poor layer); width undefined")
    elif not (np.isfinite(sa) and abs(a) > 2 * sa):
        out.append(f"no significant layer: amplitude {a:.3g} ± {sa:.2g} (< 2σ); width undefined")
    elif not (np.isfinite(sw) and sw > 0):
        out.append("the layer width sits on a bound of the fit (no σ); width undefined")
    if weighted and np.isfinite(r["reduced_chi2"]) and not 0.5 <= r["reduced_chi2"] <= 2.0:
        out.append(f"reduced χ² = {r['reduced_chi2']:.3g}, far from 1: the σ given do not describe the scatter")
    return out
