# SPDX-License-Identifier: GPL-3.0-or-later
"""Joint fit of the steps at several interfaces of one profile, with a shared background and honest errors.

Why a joint fit: a step fitted in a window around each interface uses only
the points in that window to fix the levels on either side, and its free
slope makes it worse (the level at the interface is an extrapolation). The
levels of the bulk on either side are what define the drop, and they are
best measured over the whole bulk: between two interfaces the electrolyte is
shared by both steps, beyond them the electrodes reach the field edge. On a
simulated 1024² phase-shifting series at 100 counts/px this cut the ΔV error
from 0.048 V (±40 nm windows) to ~0.015 V (benchmarks/bench_holography_series.py).

Why a noise realisation: the profile is a mean over rows of a 2-D noise
field whose noise is correlated along the profile over tens of points
(reference smoothing, the Fourier aperture, the zero-bias state shared by
every frame, unwrapping). Errors that assume independent points are then
too small by a factor ~1.3–2. A signal-free realisation of the same noise
(the difference of the means of alternating blocks of rows) gives its
autocovariance, and the parameter covariance follows by the sandwich
formula of the linearised least-squares fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataValidationError
from ..io import accepts_data
from ._profiles import _WIDTH_FACTOR, StepFit, _profile_arrays

_SQRT2 = math.sqrt(2.0)
_BACKGROUNDS = ("constant", "linear", "piecewise")


@dataclass
class StepsFit:
    """Result of :func:`fit_steps`: one :class:`StepFit` per interface and the steps' covariance.

    Parameters
    ----------
    fits : list of StepFit
        One per interface, in the order of ``centers``.
    step_cov : ndarray
        ``(n_interfaces, n_interfaces)`` covariance of the step heights (their σ² on the diagonal).
    background : str
        The background model fitted (``"piecewise"``, ``"linear"``, ``"constant"``).
    chi2_reduced : float
        Reduced χ² against the noise model (NaN without one).
    correlation_length : float
        Correlation length of the residual noise, in units of the position.
    noise_gamma : ndarray, optional
        The standardised noise autocovariance γ(k) used.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 200, 401)
    >>> r = fit_steps(0.5 * (x > 60) - 0.3 * (x > 140) + 0.001 * np.sin(x), position=x, centers=[60, 140])
    >>> len(r.fits), r.step_cov.shape, r.background
    (2, (2, 2), 'piecewise')
    """

    fits: list
    step_cov: np.ndarray
    background: str
    chi2_reduced: float
    correlation_length: float = float("nan")
    #: the standardised noise autocovariance γ(k) used (None without ``noise``): pool it over
    #: profiles and put it back with :func:`recompute_errors` / :func:`apply_errors`
    noise_gamma: np.ndarray = None
    # for recomputing the covariance with a better noise model (bias_series pools it over frames)
    _g: np.ndarray = field(default=None, repr=False)
    _m: np.ndarray = field(default=None, repr=False)
    _n_lin: int = field(default=0, repr=False)


def _shape(model, u):
    from scipy.special import erf

    if model == "erf":
        return 0.5 * (1 + erf(u / _SQRT2)), np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    t = np.tanh(u)
    return 0.5 * (1 + t), 0.5 * (1 - t * t)


def _step_cols(x, centers, widths, model, psf=None):
    """Step shapes S_i and their derivatives by centre and width, (n, n_if) each, blurred by ``psf``.

    The blur is applied on the full, uniform grid ``x`` (edges: the nearest value
    repeated), so a step near a masked point is still blurred correctly.
    """
    s, dc, dw = [], [], []
    for x0, w in zip(centers, widths):
        u = (x - x0) / w
        sh, ds = _shape(model, u)
        s.append(sh)
        dc.append(-ds / w)
        dw.append(-ds * u / w)
    out = [np.stack(c, axis=1) for c in (s, dc, dw)]
    if psf is not None:
        from scipy.ndimage import convolve1d

        out = [convolve1d(c, psf, axis=0, mode="nearest") for c in out]
    return out


def noise_correlation(noise, variance, *, max_lag):
    """Autocovariance of a standardised noise realisation, Bartlett-tapered (positive semi-definite).

    ``noise`` is a signal-free realisation of the profile's noise (NaN where
    missing) and ``variance`` the profile's per-point variance; returns
    γ(k), k = 0 … max_lag, of noise/√variance (γ(0) ≈ 1 if the variance is right).
    """
    u = np.asarray(noise, float) / np.sqrt(np.asarray(variance, float))
    ok = np.isfinite(u)
    u = np.where(ok, u, 0.0)
    n = int(ok.sum())
    if n < 8:
        return np.array([1.0])
    u = np.where(ok, u - u[ok].mean(), 0.0)
    gam = np.empty(max_lag + 1)
    for k in range(max_lag + 1):
        pairs = np.count_nonzero(ok[k:] & ok[:u.size - k]) if k else n
        gam[k] = float(np.dot(u[k:], u[:u.size - k])) / max(pairs, 1)
    return gam * (1 - np.arange(max_lag + 1) / (max_lag + 1))


def _sandwich(g, m, gamma):
    """M·(Σ_k γ(k)·(G_{j}ᵀG_{j+k} + transposed))·M: the covariance for a stationary standardised noise."""
    mid = gamma[0] * (g.T @ g)
    for k in range(1, gamma.size):
        if gamma[k] == 0:
            continue
        c = g[:-k].T @ g[k:]
        mid += gamma[k] * (c + c.T)
    return m @ mid @ m


@accepts_data("profile")
def fit_steps(profile, *, centers, position=None, model="erf", background="piecewise", window=None,
              max_width=None, margin=0.0, noise=None, max_lag=None, psf=None):
    """Fit steps at several interfaces of one profile jointly: ΔV, width and centre of each, with σ.

    y(x) = B(x) + Σ_i ΔV_i·S((x − x_i)/w_i), S an error function or tanh step,
    with one background B over the whole profile:

    * ``"piecewise"`` (default): continuous, linear between the interfaces with
      its own slope in each region (a bulk field in the electrolyte, the residue
      of a leakage field, differ from region to region); ΔV_i is then the jump
      between the two bulk lines extrapolated to the interface;
    * ``"linear"``: one slope over the whole profile; ``"constant"``: flat.

    Every point of the profile fixes the levels on either side of each step,
    not just those in a window (see the module notes for why this matters).

    Parameters
    ----------
    profile : DataArray or ndarray
        1-D profile; a ``sem`` coordinate (standard error of each point) weights the fit.
    centers : sequence of float
        Initial positions of the interfaces (same units as the position); also
        where the piecewise background may bend.
    position : array_like, optional
        Positions of a plain-array profile (default: indices).
    model : {"erf", "tanh"}
    background : {"piecewise", "linear", "constant"}
    window : float, optional
        Use only points within ±window of an interface (default: all).
    max_width : float, optional
        Largest 10–90 % width (default: ½ of the smallest distance between
        neighbouring interfaces or to the profile's ends).
    margin : float
        Points closer than this to either end of the profile are left out
        (e.g. the ringing edge of a Fourier reconstruction).
    noise : array_like, optional
        A signal-free realisation of the profile's noise (same shape), e.g. the
        difference of two independent half-averages scaled to one, or several
        (``(m, n)``; their autocovariances are averaged: one realisation gives a
        noisy correlation, and the errors a heavy tail); its autocovariance
        makes the errors honest for correlated noise. Without it the points are
        taken as independent and the errors are scaled by √χ²ᵣ.
    max_lag : int, optional
        Longest correlation lag used (default min(64, n/8) points).
    psf : array_like, optional
        Line spread of the imaging along the profile, on its grid (odd length,
        summing to 1; the positions must then be uniform): the steps are fitted
        blurred by it, so ``width`` is the specimen's, not the image's (e.g.
        the aperture of a Fourier reconstruction, as :func:`bias_series` does).

    Returns
    -------
    StepsFit
        ``fits``: a :class:`StepFit` per interface (``step``, ``width``,
        ``center`` with 1σ; ``offset`` and ``slope`` are the background's
        level and slope at the interface, from the left); ``step_cov``: the
        covariance of the steps (n × n; steps that share a bulk region are
        correlated); ``chi2_reduced``; ``correlation_length`` (points, the
        integrated autocorrelation when ``noise`` is given).

    Raises
    ------
    DataValidationError
        Bad options, too few points, or no fit.

    References
    ----------
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.
    H. White, Econometrica 48 (1980) 817, doi:10.2307/1912934 (the sandwich covariance).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> x = np.linspace(0, 200, 401)
    >>> y = 0.8 * 0.5 * (1 + erf((x - 60) / 4)) - 0.4 * 0.5 * (1 + erf((x - 140) / 6)) + 0.002 * x
    >>> r = fit_steps(y, position=x, centers=[58, 143])
    >>> [round(f.step, 3) for f in r.fits], [round(f.center, 1) for f in r.fits]
    ([0.8, -0.4], [60.0, 140.0])
    """
    from scipy.optimize import least_squares

    x_all, y_all, sem, c0, noise, psf = _fit_inputs(profile, position=position, centers=centers, model=model,
                                                     background=background, noise=noise, psf=psf)
    n_all = y_all.size
    keep = np.isfinite(y_all)
    if margin > 0:
        keep &= (x_all >= x_all[0] + margin) & (x_all <= x_all[-1] - margin)
    if window is not None:
        keep &= np.min(np.abs(x_all[:, None] - c0[None, :]), axis=1) <= float(window)
    var_all, keep = _smoothed_variance(sem, keep)
    step_px = float(np.median(np.diff(x_all))) if n_all > 1 else 1.0
    x, y = x_all[keep], y_all[keep]
    n_if = c0.size
    stops = np.concatenate([[x_all[0]], c0, [x_all[-1]]])
    gaps = np.diff(stops)
    wk = _WIDTH_FACTOR[model]
    wmax10 = 0.5 * float(np.min(gaps)) if max_width is None else float(max_width)
    if not (math.isfinite(wmax10) and wmax10 > 0):
        raise DataValidationError(f"max_width: expected a positive width, got {max_width!r}")
    wmax = wmax10 / wk

    # background columns (fixed kinks at the initial centres: the background is continuous,
    # so where exactly it bends does not change the jump, only the background's shape)
    span = max(float(x_all[-1] - x_all[0]), step_px)
    xm = 0.5 * (x_all[0] + x_all[-1])
    kinks = _kinks(x, c0) if background == "piecewise" else []
    bg = _bg_cols(x, xm, span, kinks, background)
    n_bg = bg.shape[1]
    n_lin = n_bg + n_if
    if x.size < n_lin + 2 * n_if + 4:
        raise DataValidationError(f"profile: {x.size} usable points; too few for {n_if} step(s) and the background")
    w_sd = np.sqrt(var_all[keep]) if var_all is not None else np.ones_like(x)

    last = {}

    def design(cen, wid):
        # the solver asks for the residuals and then the Jacobian at the same point:
        # the step columns are computed once for both (bitwise the same; ~1 ms of 5 per fit)
        key = (cen.tobytes(), wid.tobytes())
        if last.get("key") != key:
            sc, dc, dw = _step_cols(x_all, cen, wid, model, psf)
            last["key"], last["value"] = key, (np.concatenate([bg, sc[keep]], axis=1), dc[keep], dw[keep])
        return last["value"]

    def linear_solve(cen, wid):
        a = design(cen, wid)[0]
        coef, *_ = np.linalg.lstsq(a / w_sd[:, None], y / w_sd, rcond=None)
        return coef

    w0 = np.full(n_if, min(0.5 * wmax, max(2.0 * step_px, 0.02 * float(np.min(gaps)))))
    lin0 = linear_solve(c0, w0)
    p0 = np.concatenate([lin0, c0, w0])
    shift = np.minimum(0.45 * gaps[:-1], 0.45 * gaps[1:])   # a centre stays between its neighbours
    lower = np.concatenate([np.full(n_lin, -np.inf), c0 - shift, np.full(n_if, 1e-3 * step_px)])
    upper = np.concatenate([np.full(n_lin, np.inf), c0 + shift, np.full(n_if, wmax)])
    nl = slice(n_lin, None)
    p0[nl] = np.clip(p0[nl], lower[nl] + 1e-9 * step_px, upper[nl] - 1e-9 * step_px)

    def unpack(p):
        return p[:n_lin], p[n_lin:n_lin + n_if], p[n_lin + n_if:]

    def resid(p):
        lin, cen, wid = unpack(p)
        return (design(cen, wid)[0] @ lin - y) / w_sd

    def jac(p):
        lin, cen, wid = unpack(p)
        a, dc, dw = design(cen, wid)
        d = lin[n_bg:]
        return np.concatenate([a, dc * d, dw * d], axis=1) / w_sd[:, None]

    try:
        with np.errstate(all="ignore"):
            sol = least_squares(resid, p0, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac",
                                max_nfev=200)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise DataValidationError(f"profile: no steps could be fitted ({exc})") from None
    p = sol.x
    if not np.all(np.isfinite(p)):
        raise DataValidationError("profile: the step fit did not converge")
    lin, cen, wid = unpack(p)
    r = resid(p)
    dof = max(x.size - p.size, 1)
    chi2 = float(np.sum(r * r)) / dof
    j = jac(p)
    try:
        m = np.linalg.pinv(j.T @ j)
    except np.linalg.LinAlgError:
        raise DataValidationError("profile: the step fit is degenerate (no curvature)") from None

    g, cov, gamma, corr_len = _covariance(j, m, keep, chi2=chi2, noise=noise, var_all=var_all, max_lag=max_lag)
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    a_all = np.concatenate([_bg_cols(x_all, xm, span, kinks, background),
                            _step_cols(x_all, cen, wid, model, psf)[0]], axis=1)
    fitted_full = a_all @ lin
    fits = []
    for i in range(n_if):
        k_d, k_c, k_w = n_bg + i, n_lin + i, n_lin + n_if + i
        level, slope = _bg_at(lin[:n_bg], cen[i], xm, span, kinks, background)
        fits.append(StepFit(model=model, step=float(lin[k_d]), step_err=float(err[k_d]),
                            width=float(wk * wid[i]), width_err=float(wk * err[k_w]),
                            center=float(cen[i]), center_err=float(err[k_c]), offset=level, offset_err=float("nan"),
                            residual_rms=float(np.sqrt(np.mean((y - a_all[keep] @ lin) ** 2))),
                            n_points=int(x.size), position=x_all, fitted=fitted_full, slope=slope,
                            slope_err=float("nan")))
    idx = np.arange(n_bg, n_lin)
    return StepsFit(fits=fits, step_cov=cov[np.ix_(idx, idx)], background=background, chi2_reduced=chi2,
                    correlation_length=corr_len, noise_gamma=gamma, _g=g, _m=m, _n_lin=n_lin)


def _fit_inputs(profile, *, position, centers, model, background, noise, psf):
    """Checked inputs of :func:`fit_steps`: ``(x, y, sem or None, sorted centres, noise (m, n) or None, psf)``."""
    if model not in _WIDTH_FACTOR:
        raise DataValidationError(f"model: expected 'erf' or 'tanh', got {model!r}")
    if background not in _BACKGROUNDS:
        raise DataValidationError(f"background: expected one of {_BACKGROUNDS}, got {background!r}")
    x_all, y_all, sem = _profile_arrays(profile, position)
    n_all = y_all.size
    if n_all > 1 and not np.all(np.diff(x_all) > 0):
        raise DataValidationError("position: expected strictly increasing positions")
    try:
        c0 = np.sort(np.atleast_1d(np.asarray(centers, float)))
    except (TypeError, ValueError):
        raise DataValidationError(f"centers: expected interface positions, got {centers!r}") from None
    if c0.size == 0 or not np.all(np.isfinite(c0)) or c0[0] <= x_all[0] or c0[-1] >= x_all[-1]:
        raise DataValidationError(f"centers: expected positions inside {x_all[0]:g}–{x_all[-1]:g}, got {centers!r}")
    if noise is not None:
        noise = np.asarray(noise, float)
        if noise.shape[-1:] != y_all.shape or noise.ndim > 2:
            raise DataValidationError(f"noise: expected the profile's shape {y_all.shape} (or (m, {y_all.size})), "
                                      f"got {noise.shape}")
        noise = noise.reshape(-1, n_all)
    if psf is not None:
        psf = np.asarray(psf, float)
        if psf.ndim != 1 or psf.size % 2 != 1 or not np.all(np.isfinite(psf)) or abs(psf.sum() - 1) > 1e-6:
            raise DataValidationError("psf: expected a 1-D kernel of odd length summing to 1")
        d = np.diff(x_all)
        if n_all > 2 and np.ptp(d) > 1e-6 * abs(d[0]):
            raise DataValidationError("position: a psf needs uniformly spaced positions")
    return x_all, y_all, sem, c0, noise, psf


def _smoothed_variance(sem, keep):
    """``(variance per point or None, keep)``: the profile's sem², smoothed along it, where ≥ 90 % is usable."""
    if sem is None:
        return None, keep
    v = sem ** 2
    good = keep & np.isfinite(v) & (v > 0)
    if np.count_nonzero(good) < 0.9 * np.count_nonzero(keep):
        return None, keep
    # the sem of each point is itself noisy (a few % from the rows); smooth it
    # along the profile so the weights do not follow its noise
    from scipy.ndimage import uniform_filter1d

    fill = np.where(good, v, np.nan)
    med = float(np.nanmedian(fill))
    num = uniform_filter1d(np.where(good, fill, 0.0), 9, mode="nearest")
    den = uniform_filter1d(good.astype(float), 9, mode="nearest")
    return np.where(den > 0, num / np.maximum(den, 1e-12), med), keep & good


def _covariance(j, m, keep, *, chi2, noise, var_all, max_lag):
    """``(g, cov, γ, correlation length)`` of a step fit: the sandwich with the noise's autocovariance
    when noise realisations are given, else the inverse curvature scaled by χ²."""
    n_all = keep.size
    # scaled Jacobian on the full grid (zeros where a point is not used) so lags are in points
    g = np.zeros((n_all, j.shape[1]))
    g[keep] = j
    corr_len, gamma = float("nan"), None
    if noise is not None and var_all is not None:
        lag = int(min(64, max(2, n_all // 8))) if max_lag is None else int(max_lag)
        gamma = np.mean([noise_correlation(np.where(keep, e, np.nan), np.where(keep, var_all, np.nan), max_lag=lag)
                         for e in noise], axis=0)
        cov = _sandwich(g, m, gamma)
        corr_len = float(1 + 2 * np.sum(gamma[1:]) / gamma[0]) if gamma[0] > 0 else float("nan")
    else:
        cov = m * max(chi2, 1.0) if var_all is not None else m * chi2
    return g, cov, gamma, corr_len


def _kinks(x_used, c0):
    """Where the piecewise background may bend: interfaces with ≥ 8 used points on either side."""
    return [k for k in c0 if np.count_nonzero(x_used < k) >= 8 and np.count_nonzero(x_used > k) >= 8]


def _bg_cols(xv, xm, span, kinks, background):
    """Background basis on positions xv: 1, (x − xm)/span, and a hinge max(x − k, 0)/span per kink."""
    cols = [np.ones_like(xv)]
    if background in ("linear", "piecewise"):
        cols.append((xv - xm) / span)
    cols += [np.maximum(xv - k, 0.0) / span for k in kinks]
    return np.stack(cols, axis=1)


def _bg_at(coef, x0, xm, span, kinks, background):
    """Background level at x0 and its slope just left of x0."""
    level, slope = float(coef[0]), 0.0
    if background in ("linear", "piecewise"):
        level += float(coef[1]) * (x0 - xm) / span
        slope += float(coef[1]) / span
    for c, k in zip(coef[2:], kinks):
        level += float(c) * max(x0 - k, 0.0) / span
        if x0 > k:
            slope += float(c) / span
    return level, slope


def recompute_errors(fit, gamma):
    """Covariance of a :class:`StepsFit` for another standardised noise autocovariance γ(k) (e.g. pooled).

    Returns the full parameter covariance; the steps are its
    ``[n_background : n_linear]`` block (see :func:`apply_errors`).
    """
    return _sandwich(fit._g, fit._m, np.asarray(gamma, float))


def apply_errors(fit, cov):
    """Put the 1σ of ``cov`` (from :func:`recompute_errors`) into ``fit.fits`` and ``fit.step_cov``."""
    n_if = len(fit.fits)
    n_lin = fit._n_lin
    n_bg = n_lin - n_if
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    wk = _WIDTH_FACTOR[fit.fits[0].model]
    for i, f in enumerate(fit.fits):
        f.step_err = float(err[n_bg + i])
        f.center_err = float(err[n_lin + i])
        f.width_err = float(wk * err[n_lin + n_if + i])
    idx = np.arange(n_bg, n_lin)
    fit.step_cov = cov[np.ix_(idx, idx)]
    return fit
