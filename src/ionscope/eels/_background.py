# SPDX-License-Identifier: GPL-3.0-or-later
"""Power-law background: fit in a pre-edge window, extrapolate, subtract."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import apply_kernel, check_finite, like_input
from ..errors import DataValidationError
from ..io import accepts_data
from . import _common
from ._kernels import background_kernel, powerlaw_basis

_METHODS = ("poisson", "lsq", "loglinear", "two_area")
_MODELS = ("powerlaw", "basis")


@accepts_data("si")
def fit_background(
    si: Any,
    *,
    fit_range: tuple[float, float],
    method: str = "poisson",
    energy: Any = None,
    max_iter: int = 30,
    tol: float = 1e-6,
):
    """Fit ``I(E) = A·(E/E0)^(−r)`` in ``fit_range`` for every spectrum.

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    fit_range : (float, float)
        Pre-edge window in eV; ``E0 = fit_range[0]`` (first channel inside).
    method : {"poisson", "lsq", "loglinear", "two_area"}
        ``"poisson"``: Poisson maximum likelihood (Fisher scoring, exact for
        noise-free data, unbiased at low counts). ``"lsq"``: non-linear
        unweighted least squares. ``"loglinear"``: count-weighted linear fit of
        ln I against ln E (closed form; biased at low counts). ``"two_area"``:
        Egerton's two-area estimate solved exactly on the sampled channels
        (no half-channel bias; see :mod:`ionscope.eels._twoarea`).
    energy : array_like, optional
        Energy axis (eV) for a plain-array ``si``.

    Returns
    -------
    xarray.Dataset
        ``amplitude`` (counts/channel at E0), ``exponent``, ``amplitude_std``,
        ``exponent_std``, ``amplitude_exponent_cov`` and ``chi2`` over the
        leading dims; ``attrs['e0_ev']``.

    References
    ----------
    .. [1] R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron
       Microscope*, 3rd ed. (2011), §4.4, doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.eels import fit_background
    >>> e = np.arange(40.0, 60.0, 0.1)
    >>> fit = fit_background(2e3 * (e / 40) ** -3.2, fit_range=(40, 55), energy=e)
    >>> round(float(fit.exponent), 8), round(float(fit.amplitude), 6)
    (3.2, 2000.0)
    """
    import xarray as xr

    if method not in _METHODS:
        raise DataValidationError(f"method: expected one of {_METHODS}, got {method!r}")
    da = _common.spectra(si, energy=energy)
    check_finite(da.data, name="si")
    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, fit_range, name="fit_range", min_channels=4)
    e0 = float(e[ch[0]])
    if e0 <= 0:
        raise DataValidationError(f"fit_range: must start above 0 eV for a power law, got {e0:g}")
    lnx = np.log(e[ch] / e0)
    kwargs = dict(channels=ch, lnx=lnx, method=method,
                  weights="poisson" if method == "poisson" else None, n_iter=int(max_iter), tol=float(tol))
    stacked = apply_kernel(background_kernel, da, input_core_dims=[["energy"]],
                           output_core_dims=[["component"]], output_sizes={"component": 6},
                           output_dtypes=[np.float64], kwargs=kwargs)
    names = ["amplitude", "exponent", "amplitude_std", "exponent_std", "amplitude_exponent_cov", "chi2"]
    ds = xr.Dataset({n: stacked.isel(component=i, drop=True) for i, n in enumerate(names)})
    for n in names:
        ds[n].attrs = {}
    ds["amplitude"].attrs["units"] = f"counts per channel at E0 = {e0:g} eV"
    ds.attrs = {"e0_ev": e0, "fit_range_ev": [float(e[ch[0]]), float(e[ch[-1]])], "method": method}
    return ds


def powerlaw(energy: Any, fit) -> Any:
    """Evaluate a fitted background ``A·(E/E0)^(−r)`` on ``energy`` (eV) for every pixel.

    Parameters
    ----------
    energy : array_like
        Energy axis (eV).
    fit : Dataset
        A fit of :func:`fit_background` (``amplitude``, ``exponent`` and ``attrs["e0_ev"]``).

    Returns
    -------
    xarray.DataArray
        The background on ``energy`` for every fitted pixel (the fit's dims, then ``energy``).

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(40.0, 50.0, 0.5)
    >>> fit = fit_background(1e3 * (e / 40) ** -3, fit_range=(40, 49), energy=e)
    >>> round(float(powerlaw(e, fit)[0]), 3)
    1000.0
    """
    import xarray as xr

    e = xr.DataArray(np.asarray(energy, float), dims="energy", coords={"energy": np.asarray(energy, float)})
    return fit["amplitude"] * (e / fit.attrs["e0_ev"]) ** (-fit["exponent"])


@accepts_data("si")
def remove_background(
    si: Any,
    *,
    fit_range: tuple[float, float],
    model: str = "powerlaw",
    method: str = "poisson",
    exponents: tuple[float, ...] = (2.0, 3.0, 4.0),
    energy: Any = None,
    return_fit: bool = False,
):
    """Subtract a power-law background fitted in a pre-edge window.

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    fit_range : (float, float)
        Pre-edge window (eV).
    model : {"powerlaw", "basis"}
        ``"powerlaw"``: ``A·(E/E0)^(−r)`` per pixel, fitted by ``method``
        (see :func:`fit_background`). ``"basis"``: a linear combination of
        fixed power laws ``(E/E0)^(−r_j)`` (``exponents``), fitted by least
        squares; it is linear, hence fast, but extrapolates less safely far
        above the window — prefer fitting it jointly with the edges
        (:func:`mlls` with ``background="basis"``).
    method : {"poisson", "lsq", "loglinear", "two_area"}
        Estimator for ``model="powerlaw"``.
    exponents : tuple of float
        Exponents for ``model="basis"``.
    energy : array_like, optional
        Energy axis (eV) for a plain-array ``si``.
    return_fit : bool
        Also return the fit (a Dataset with per-pixel parameters and
        standard errors; see :func:`fit_background`).

    Returns
    -------
    same type as ``si`` (or ``(signal, fit)`` with ``return_fit=True``)
        Background-subtracted spectra over the whole energy axis.

    References
    ----------
    .. [1] R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron
       Microscope*, 3rd ed. (2011), §4.4, doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.eels import remove_background
    >>> e = np.arange(40.0, 80.0, 0.1)
    >>> y = 1e3 * (e / 40) ** -3 + 20.0 * (e > 55)
    >>> s = remove_background(y, fit_range=(40, 54), energy=e)
    >>> round(float(s[e > 60].mean()), 6)
    20.0
    """
    if model not in _MODELS:
        raise DataValidationError(f"model: expected one of {_MODELS}, got {model!r}")
    da = _common.spectra(si, energy=energy)
    if model == "powerlaw":
        fit = fit_background(da, fit_range=fit_range, method=method)
        bg = powerlaw(da.coords["energy"].values, fit).transpose(*da.dims)
    else:
        check_finite(da.data, name="si")
        e = np.asarray(da.coords["energy"].values, float)
        ch = _common.window(e, fit_range, name="fit_range", min_channels=len(exponents) + 1)
        e0 = float(e[ch[0]])
        X = powerlaw_basis(e[ch] / e0, exponents)
        Xfull = powerlaw_basis(e / e0, exponents)
        proj = np.linalg.pinv(X)  # (L, n_fit): one GEMM for all pixels
        op = (Xfull @ proj)  # (n_energy, n_fit)
        bg = apply_kernel(_basis_kernel, da, input_core_dims=[["energy"]], output_core_dims=[["energy"]],
                          output_dtypes=[np.float64], kwargs={"op": op, "channels": ch})
        fit = None
    out = (da - bg).astype(np.float64)
    out.attrs = dict(da.attrs)
    out.name = da.name
    result = like_input(out, si)
    return (result, fit) if return_fit else result


def _basis_kernel(spectra, *, op, channels):
    # background on the full axis = (basis on full axis) · pinv(basis on window) · data on window
    return np.asarray(spectra, float)[..., channels] @ op.T
