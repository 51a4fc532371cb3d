# SPDX-License-Identifier: GPL-3.0-or-later
"""Interface line profiles and space-charge step fits (erf, tanh) with uncertainties."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data import as_dataarray, require_dims
from ..errors import DataValidationError
from ..io import accepts_data

# 10–90 % width of each model in units of its width parameter:
# erf: 2·Φ⁻¹(0.9)·σ; tanh: 2·atanh(0.8)·w = ln 9·w.
_WIDTH_FACTOR = {"erf": 2 * 1.2815515655446004, "tanh": math.log(9.0)}


def _axis_to_px(da, dim, value, name):
    """Coordinate (nm) → fractional pixel index on a uniform axis (pixels if uncalibrated)."""
    if dim not in da.coords:
        return float(value)
    c = np.asarray(da.coords[dim].values, float)
    step = (c[-1] - c[0]) / max(c.size - 1, 1)
    if step == 0:
        raise DataValidationError(f"{name}: axis {dim!r} has a zero step")
    return (float(value) - c[0]) / step, abs(step)


@accepts_data("image")
def line_profile(image, *, start, end, width=1.0, order=1):
    """Line profile from ``start`` to ``end``, averaged over ``width`` across the line.

    Parameters
    ----------
    image : DataArray or ndarray
        2-D map ``(y, x)`` (potential, phase, ...).
    start, end : (float, float)
        End points ``(y, x)`` in the image's coordinate units (nm for a
        calibrated DataArray, pixels for a plain array).
    width : float
        Averaging width perpendicular to the line, same units (averaging over
        the width lowers the noise by √(width in px) without blurring the
        profile along the line, i.e. across an interface).
    order : int
        Spline order of the interpolation (1: bilinear).

    Returns
    -------
    DataArray
        dims ``(position,)``, distance along the line (nm or px); non-dim
        coordinate ``sem`` (standard error of each mean across the width),
        even for plain-array input (a profile is a new object).

    References
    ----------
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.tile(np.linspace(0, 1, 64), (64, 1))
    >>> p = line_profile(img, start=(32, 0), end=(32, 63), width=9)
    >>> p.dims, round(float(p[-1]), 3)
    (('position',), 1.0)
    """
    from scipy import ndimage

    da = as_dataarray(image, kind="image", name="image")
    require_dims(da, ["y", "x"], name="image")
    if len(da.dims) != 2:
        raise DataValidationError(f"image: expected one 2-D (y, x) map, got dims {da.dims}")
    if da.dtype.kind not in "fiu":
        raise DataValidationError(f"image: expected real values (potential or phase), got dtype {da.dtype}")
    arr = np.asarray(da.transpose("y", "x").values, float)
    try:
        (y0, x0), (y1, x1) = [tuple(float(v) for v in p) for p in (start, end)]
    except (TypeError, ValueError):
        raise DataValidationError(f"start/end: expected (y, x) pairs, got {start!r}, {end!r}") from None
    calibrated = "y" in da.coords and "x" in da.coords
    if calibrated:
        py0, sy = _axis_to_px(da, "y", y0, "image")
        px0, sx = _axis_to_px(da, "x", x0, "image")
        py1, _ = _axis_to_px(da, "y", y1, "image")
        px1, _ = _axis_to_px(da, "x", x1, "image")
        if not math.isclose(sy, sx, rel_tol=1e-3):
            raise DataValidationError(f"image: non-square pixels ({sy} × {sx} nm) are not supported")
        scale = sy
    else:
        py0, px0, py1, px1, scale = y0, x0, y1, x1, 1.0
    ny, nx = arr.shape
    for v, n, nm in ((py0, ny, "start y"), (py1, ny, "end y"), (px0, nx, "start x"), (px1, nx, "end x")):
        if not -0.5 <= v <= n - 0.5:
            raise DataValidationError(f"{nm}: {v * scale:g} lies outside the image")
    length = math.hypot(py1 - py0, px1 - px0)
    if length < 2:
        raise DataValidationError("start/end: the line is shorter than 2 px")
    if not (math.isfinite(width) and width > 0):
        raise DataValidationError(f"width: expected a positive averaging width, got {width!r}")
    n_along = int(math.floor(length)) + 1
    n_across = max(1, int(round(width / scale)))
    t = np.linspace(0.0, 1.0, n_along)
    uy, ux = (py1 - py0) / length, (px1 - px0) / length
    offs = (np.arange(n_across) - (n_across - 1) / 2.0)
    yy = py0 + t[None, :] * (py1 - py0) + offs[:, None] * ux
    xx = px0 + t[None, :] * (px1 - px0) - offs[:, None] * uy
    samples = ndimage.map_coordinates(arr, [yy, xx], order=order, mode="nearest")
    mean = samples.mean(axis=0)
    if n_across < 2:
        sem = np.full(n_along, np.nan)
    elif order == 1:
        sem = _bilinear_sem(samples, yy, xx, arr.shape)
    else:
        sem = samples.std(axis=0, ddof=1) / math.sqrt(n_across)
    import xarray as xr

    position = t * length * scale
    out = xr.DataArray(mean, dims=("position",),
                       coords={"position": ("position", position, {"units": "nm" if calibrated else "px"}),
                               "sem": ("position", sem)},
                       attrs={**{k: v for k, v in da.attrs.items() if k in ("units", "beam_energy_kv")},
                              "start": [y0, x0], "end": [y1, x1], "width": float(width)},
                       name="profile")
    return out


def _bilinear_sem(samples, yy, xx, shape) -> np.ndarray:
    """Standard error of each across-width mean of bilinearly interpolated samples (white pixel noise).

    Interpolated samples that share pixels are correlated and smoother than
    the pixels (a sample half-way between two rows has √2 less noise), so
    std/√n underrates the error of their mean 1.5–2× (reduced χ² of 2–3 for a
    clean step). With each sample a weighted sum of pixels (weights c_i), for
    white noise of variance σ²: E[Σ(s_i − s̄)²] = σ²(Σ‖c_i‖² − ‖Σc_i‖²/n) and
    Var(s̄) = σ²‖Σc_i‖²/n²; σ² is estimated from the first, per position.
    """
    ny, nx = shape
    y = np.clip(yy, 0, ny - 1)     # mode="nearest": samples beyond the edge take the edge pixels
    x = np.clip(xx, 0, nx - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    y1, x1 = np.minimum(y0 + 1, ny - 1), np.minimum(x0 + 1, nx - 1)
    idx = np.stack([y0 * nx + x0, y0 * nx + x1, y1 * nx + x0, y1 * nx + x1])          # (4, across, along)
    w = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx])
    n = samples.shape[0]
    self_sq = np.sum(w * w, axis=(0, 1))                                                # Σ_i ‖c_i‖² per position
    total_sq = np.empty(samples.shape[1])
    for k in range(samples.shape[1]):     # ‖Σ_i c_i‖²: weights of one pixel from several samples add up
        _, inv = np.unique(idx[:, :, k].ravel(), return_inverse=True)
        total_sq[k] = float(np.sum(np.bincount(inv, weights=w[:, :, k].ravel()) ** 2))
    ss = np.sum((samples - samples.mean(axis=0)) ** 2, axis=0)
    denom = self_sq - total_sq / n
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(denom > 1e-12, ss / denom, np.nan)
    return np.sqrt(var * total_sq) / n


@dataclass
class StepFit:
    """Result of :func:`fit_step`: step height, 10–90 % width, centre, with 1σ uncertainties.

    Parameters
    ----------
    model : str
        The step's shape, ``"erf"`` or ``"tanh"``.
    step, step_err : float
        Step height ΔV (units of the profile) and its σ.
    width, width_err : float
        10–90 % width (units of the position) and its σ.
    center, center_err : float
        Step centre and its σ.
    offset, offset_err : float
        Level before the step and its σ.
    residual_rms : float
        RMS of the residual.
    n_points : int
        Points fitted.
    position, fitted : ndarray
        The positions fitted and the model there.
    slope, slope_err : float
        Background slope with ``background="linear"`` (else 0).
    chi2_reduced : float
        Reduced χ² against the profile's s.e.m. (NaN when it has none).
    notes : tuple of str
        What the fit itself noticed (a parameter on its bound, ...).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(-20, 20, 81)
    >>> f = fit_step(0.7 * (x > 0) + 0.01 * np.sin(x), position=x)
    >>> f.model, round(f.step, 2), f.n_points
    ('erf', 0.7, 81)
    """

    model: str
    step: float
    step_err: float
    width: float          # 10–90 % width, units of the profile's position
    width_err: float
    center: float
    center_err: float
    offset: float
    offset_err: float
    residual_rms: float
    n_points: int
    position: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)
    # background slope (units of the profile per unit position) with ``background="linear"``
    slope: float = 0.0
    slope_err: float = 0.0
    #: reduced χ² against the profile's s.e.m. (NaN when the profile has none)
    chi2_reduced: float = float("nan")
    #: what the fit itself noticed (a parameter on its bound ...)
    notes: tuple = ()

    def problems(self) -> list[str]:
        """Why this fit should not be read as a measured step (empty when it can).

        A step smaller than 3σ is no step (its width and centre then mean
        nothing: height and width trade off); a width known to worse than its
        own size is undetermined; a reduced χ² below 0.5 or above 2 says the
        s.e.m. do not describe the scatter about the model (σ too large, or a
        profile that is not a step).

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(-20, 20, 81)
        >>> flat = np.random.default_rng(0).normal(0.0, 0.1, x.size)
        >>> fit_step(flat, position=x).problems()[0].startswith("no step")
        True
        """
        out = []
        if not (np.isfinite(self.step_err) and abs(self.step) >= 3.0 * self.step_err):
            out.append(f"no step: |step| {abs(self.step):.3g} < 3σ ({3 * self.step_err:.3g}); width and centre "
                       "are undefined")
        elif not (np.isfinite(self.width_err) and self.width_err < self.width):
            out.append(f"width undetermined: σ {self.width_err:.3g} ≥ width {self.width:.3g}")
        if np.isfinite(self.chi2_reduced) and not 0.5 <= self.chi2_reduced <= 2.0:
            out.append(f"reduced χ² = {self.chi2_reduced:.3g}, far from 1: the s.e.m. do not describe the scatter "
                       "about the fitted step")
        return out + list(self.notes)

    def to_dict(self) -> dict:
        """Plain numbers (no arrays) for JSON reports, with the fit's ``warnings`` (:meth:`problems`)."""
        d = asdict(self)
        d.pop("position")
        d.pop("fitted")
        d["notes"] = list(d["notes"])
        d["warnings"] = self.problems()
        return d


def _model(kind, linear=False, pivot=0.0):
    from scipy.special import erf

    if kind == "erf":
        step = lambda x, b, d, x0, s: b + 0.5 * d * (1 + erf((x - x0) / (math.sqrt(2) * s)))  # noqa: E731
    else:
        step = lambda x, b, d, x0, w: b + 0.5 * d * (1 + np.tanh((x - x0) / w))  # noqa: E731
    if not linear:
        return step
    # the slope pivots about a fixed point (the initial centre) so that it is not
    # correlated with the offset through the position's origin
    return lambda x, b, d, x0, w, s: step(x, b, d, x0, w) + s * (x - pivot)


def _jacobian(kind, linear=False, pivot=0.0):
    """Analytic Jacobian of :func:`_model` (3–4× fewer model evaluations than finite differences)."""
    from scipy.special import erf

    def jac(x, b, d, x0, w, *slope):
        if kind == "erf":
            u = (x - x0) / (math.sqrt(2) * w)
            shape = 0.5 * (1 + erf(u))
            bump = 0.5 * d * (2 / math.sqrt(math.pi)) * np.exp(-u * u)
            d_x0, d_w = -bump / (math.sqrt(2) * w), -bump * u / w
        else:
            v = (x - x0) / w
            t = np.tanh(v)
            shape = 0.5 * (1 + t)
            sech2 = 0.5 * d * (1 - t * t)
            d_x0, d_w = -sech2 / w, -sech2 * v / w
        cols = [np.ones_like(x), shape, d_x0, d_w]
        if linear:
            cols.append(x - pivot)
        return np.stack(cols, axis=-1)

    return jac


def _profile_arrays(profile, position):
    """(position, values, sem or None) of a 1-D profile: a DataArray (its coordinate and ``sem``) or an array."""
    import xarray as xr

    sem = None
    if isinstance(profile, xr.DataArray):
        if profile.ndim != 1:
            raise DataValidationError(f"profile: expected a 1-D profile, got dims {profile.dims}")
        y = np.asarray(profile.values, float)
        dim = profile.dims[0]
        x = np.asarray(profile.coords[dim].values, float) if dim in profile.coords else np.arange(y.size, dtype=float)
        if "sem" in profile.coords:
            sem = np.asarray(profile.coords["sem"].values, float)
    else:
        y = np.asarray(profile, float)
        if y.ndim != 1:
            raise DataValidationError(f"profile: expected a 1-D profile, got shape {y.shape}")
        x = np.arange(y.size, dtype=float) if position is None else np.asarray(position, float)
    if x.shape != y.shape:
        raise DataValidationError(f"position: {x.shape} values for a profile of {y.shape}")
    return x, y, sem


@accepts_data("profile")
def fit_step(profile, *, position=None, model="erf", center=None, window=None, background="constant",
             max_width=None):
    """Fit a step (error function or tanh) to a profile: ΔV, width and centre with uncertainties.

    erf: y = b + Δ/2·(1 + erf((x − x₀)/(√2 σ))); tanh: y = b + Δ/2·(1 + tanh((x − x₀)/w))
    (a Gouy–Chapman/Debye-like screened step). The reported ``width`` is the
    10–90 % rise distance of the fitted model, comparable between models.

    Parameters
    ----------
    profile : DataArray or ndarray
        1-D profile (e.g. from :func:`line_profile`); its ``sem`` coordinate,
        when present, weights the fit.
    position : array_like, optional
        Positions for a plain-array profile (default: indices).
    model : {"erf", "tanh"}
    center : float, optional
        Initial guess for the step position.
    window : float, optional
        Fit only within ±window of ``center`` (isolates one interface).
    background : {"constant", "linear"}
        ``"linear"`` adds a background slope s·(x − centre) (returned as
        ``slope``): a smooth field across the interface, e.g. the residue of a
        leakage field, would otherwise bias the step.
    max_width : float, optional
        Upper bound of the 10–90 % width (default: the fitted span). Where
        there is (almost) no step, a step as wide as the window is a slope,
        and step and slope become degenerate; a bound keeps the fit local.

    Returns
    -------
    StepFit
        Uncertainties are 1σ from the covariance, scaled by the residuals;
        ``chi2_reduced`` against the s.e.m. when the profile has them;
        :meth:`StepFit.problems` says when the fit found no step, did not
        settle (a parameter on its bound) or has χ² far from 1.

    References
    ----------
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> x = np.linspace(-20, 20, 81)
    >>> fit = fit_step(1.3 * 0.5 * (1 + erf(x / (np.sqrt(2) * 2.0))), position=x)
    >>> round(fit.step, 3), round(fit.width, 2)
    (1.3, 5.13)
    """
    from scipy.optimize import curve_fit

    if model not in _WIDTH_FACTOR:
        raise DataValidationError(f"model: expected 'erf' or 'tanh', got {model!r}")
    if background not in ("constant", "linear"):
        raise DataValidationError(f"background: expected 'constant' or 'linear', got {background!r}")
    x, y, sem = _profile_arrays(profile, position)
    keep = np.isfinite(y) & np.isfinite(x)
    if center is not None and window is not None:
        keep &= np.abs(x - center) <= window
    if sem is not None and np.all(np.isfinite(sem[keep])) and np.all(sem[keep] > 0):
        sigma = sem[keep]
    else:
        sigma = None
    x, y = x[keep], y[keep]
    if x.size < 6:
        raise DataValidationError(f"profile: {x.size} usable points; a step fit needs at least 6")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if sigma is not None:
        sigma = sigma[order]
    n_edge = max(2, x.size // 8)
    b0, top = float(np.mean(y[:n_edge])), float(np.mean(y[-n_edge:]))
    if center is None:
        smooth = np.convolve(y, np.ones(3) / 3, mode="same")
        center = float(x[n_edge + np.argmin(np.abs(smooth[n_edge:-n_edge] - 0.5 * (b0 + top)))])
    span = float(x[-1] - x[0])
    step_px = float(np.median(np.diff(x)))
    p0 = [b0, top - b0, center, max(span / 20, step_px)]
    k = _WIDTH_FACTOR[model]
    wmax = span if max_width is None else float(max_width) / k
    if not (math.isfinite(wmax) and wmax > 1e-3 * step_px):
        raise DataValidationError(f"max_width: expected a positive width, got {max_width!r}")
    p0[3] = min(p0[3], 0.5 * wmax)
    lower, upper = [-np.inf, -np.inf, x[0], 1e-3 * step_px], [np.inf, np.inf, x[-1], wmax]
    linear = background == "linear"
    if linear:
        p0, lower, upper = p0 + [0.0], lower + [-np.inf], upper + [np.inf]
        if x.size < 7:
            raise DataValidationError(f"profile: {x.size} usable points; a step fit with a slope needs at least 7")
    f = _model(model, linear, float(center))
    jac = _jacobian(model, linear, float(center))
    popt = None
    try:
        # Levenberg–Marquardt (MINPACK) first: ~10× less overhead than the bounded
        # trust-region solver; its optimum is kept when it lies inside the bounds
        # (then both solvers find the same minimum), else the bounded fit decides.
        import warnings

        from scipy.optimize import OptimizeWarning

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(f, x, y, p0=p0, sigma=sigma, absolute_sigma=False, maxfev=2000, jac=jac)
        popt[3] = abs(popt[3])      # the model is even in its width parameter
        if not (np.all(np.isfinite(popt)) and np.all(np.isfinite(pcov)) and np.all(popt >= np.asarray(lower))
                and np.all(popt <= np.asarray(upper))):
            popt = None
    except (RuntimeError, ValueError):
        popt = None
    try:
        if popt is None:
            popt, pcov = curve_fit(f, x, y, p0=p0, sigma=sigma, absolute_sigma=False, maxfev=5000,
                                   bounds=(lower, upper), jac=jac)
    except (RuntimeError, ValueError) as exc:
        raise DataValidationError(f"profile: no step could be fitted ({exc}); check the line crosses an interface")
    err = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) else np.full(len(popt), np.nan)
    fitted = f(x, *popt)
    dof = x.size - len(popt)
    chi2 = float(np.sum(((y - fitted) / sigma) ** 2) / dof) if sigma is not None and dof > 0 else float("nan")
    notes = []
    if popt[3] >= 0.98 * wmax:
        notes.append(f"the width sits on its upper bound ({k * wmax:.3g}): a slope, not a step")
    if min(popt[2] - x[0], x[-1] - popt[2]) < step_px:
        notes.append("the centre sits at an end of the profile: the line may miss the interface")
    return StepFit(model=model, step=float(popt[1]), step_err=float(err[1]), width=float(k * popt[3]),
                   width_err=float(k * err[3]), center=float(popt[2]), center_err=float(err[2]),
                   offset=float(popt[0]), offset_err=float(err[0]),
                   residual_rms=float(np.sqrt(np.mean((y - fitted) ** 2))), n_points=int(x.size),
                   position=x, fitted=fitted, slope=float(popt[4]) if linear else 0.0,
                   slope_err=float(err[4]) if linear else 0.0, chi2_reduced=chi2, notes=tuple(notes))


def interface_asymmetry(fit_a: StepFit, fit_b: StepFit) -> dict:
    """Asymmetry between the steps at two interfaces (e.g. the two electrodes of a biased cell).

    Returns a dict with ``asymmetry`` = (|ΔV_a| − |ΔV_b|)/(|ΔV_a| + |ΔV_b|),
    ``step_difference`` = |ΔV_a| − |ΔV_b|, ``width_difference`` = w_a − w_b and
    ``center_distance``, each with a propagated 1σ ``*_err`` (independent fits).

    Parameters
    ----------
    fit_a, fit_b : StepFit
        :func:`fit_step` results at the two interfaces.

    Returns
    -------
    dict of str to float
        ``asymmetry``, ``step_difference``, ``width_difference``, ``center_distance`` with their ``*_err``,
        and ``step_a``, ``step_b``.

    References
    ----------
    Y. Aizawa et al., Ultramicroscopy 178 (2017) 20, doi:10.1016/j.ultramic.2016.07.014.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(-20, 20, 81)
    >>> a = fit_step(1.0 * (x > 0) + 0.01 * np.sin(x), position=x)
    >>> b = fit_step(-0.5 * (x > 0) + 0.01 * np.cos(x), position=x)
    >>> round(interface_asymmetry(a, b)["asymmetry"], 2)
    0.33
    """
    for name, f in (("fit_a", fit_a), ("fit_b", fit_b)):
        if not isinstance(f, StepFit):
            raise DataValidationError(f"{name}: expected a StepFit from fit_step, got {type(f).__name__}")
    a, b = abs(fit_a.step), abs(fit_b.step)
    ea, eb = fit_a.step_err, fit_b.step_err
    total = a + b
    if total == 0:
        raise DataValidationError("fit_a/fit_b: both steps are zero; asymmetry undefined")
    asym = (a - b) / total
    # d/da = 2b/(a+b)², d/db = −2a/(a+b)²
    asym_err = math.hypot(2 * b * ea, 2 * a * eb) / total ** 2
    return {"asymmetry": asym, "asymmetry_err": asym_err,
            "step_a": fit_a.step, "step_b": fit_b.step,
            "step_difference": a - b, "step_difference_err": math.hypot(ea, eb),
            "width_difference": fit_a.width - fit_b.width,
            "width_difference_err": math.hypot(fit_a.width_err, fit_b.width_err),
            "center_distance": fit_b.center - fit_a.center,
            "center_distance_err": math.hypot(fit_a.center_err, fit_b.center_err)}
