# SPDX-License-Identifier: GPL-3.0-or-later
"""Li fraction x in LixCoO2 from Li-K and Co-M weights, with its error.

``x = (w_Li / w_Co) / k``: both weights are proportional to the atoms in the
column (single-scattering intensities), so their ratio is ``x`` times the ratio
of the two edges' cross sections ``k``, which cancels thickness and density.
``k`` comes from a region of known ``x`` (pristine LiCoO2: x = 1), or from the
references' cross sections when the user knows them.

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.5 (ratios of
edge intensities and cross sections), doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataValidationError


def _calibration_from_region(ratio, ratio_var, region, known_x):
    import xarray as xr

    mask = region if isinstance(region, xr.DataArray) else xr.DataArray(np.asarray(region, bool),
                                                                         dims=ratio.dims[-np.ndim(region):])
    if mask.dtype != bool:
        raise DataValidationError("calibration region: expected a boolean mask")
    if not set(mask.dims) <= set(ratio.dims):
        raise DataValidationError(f"calibration region: dims {mask.dims} are not among the maps' dims {ratio.dims}")
    sel_r = ratio.where(mask)
    sel_v = ratio_var.where(mask)
    n = int(np.isfinite(sel_r.values).sum())
    if n == 0:
        raise DataValidationError("calibration region: holds no finite pixel of the maps")
    # inverse-variance weighted mean of the ratio in the region: k = <ratio>/x_known
    w = 1.0 / sel_v
    k_ratio = float((sel_r * w).sum() / w.sum())
    k_var = float(1.0 / w.sum())
    return k_ratio / known_x, np.sqrt(k_var) / known_x, n


def li_fraction(maps: Any, *, calibration: Any = 1.0, li: str = "Li", co: str = "Co"):
    """Li fraction ``x = (w_Li/w_Co)/k`` per pixel, with σ.

    Parameters
    ----------
    maps : xarray.Dataset
        Output of :func:`ionscope.eels.mlls` (or any Dataset with ``Li``, ``Co``
        and ideally ``Li_std``, ``Co_std``). Weights must be in the same units
        (single-scattering counts: use ``plural_scattering=`` on real spectra).
    calibration : float, or dict
        ``k`` itself (a number: the ratio ``w_Li/w_Co`` of the references for
        x = 1, e.g. from known cross sections), or
        ``{"region": mask, "x": 1.0}``: ``k`` from the inverse-variance mean
        ratio in a region of known x (e.g. pristine LiCoO2, ``x = 1``), or
        ``{"k": value, "k_std": σ}``.
    li, co : str
        Names of the Li and Co variables.

    Returns
    -------
    xarray.Dataset
        ``li_fraction`` (x) and ``li_fraction_std`` over the maps' dims (named
        so because ``x`` is an image dimension; σ from the weights' errors,
        their covariance neglected, and the error of ``k``); attrs ``k``,
        ``k_std``, ``calibration``.

    Raises
    ------
    DataValidationError
        Missing variables, a bad calibration.

    References
    ----------
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.5,
    doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> maps = xr.Dataset({"Li": ("x", [2.0, 1.0]), "Co": ("x", [4.0, 4.0]),
    ...                    "Li_std": ("x", [0.1, 0.1]), "Co_std": ("x", [0.1, 0.1])})
    >>> li_fraction(maps, calibration=0.5).li_fraction.values
    array([1. , 0.5])
    """
    import xarray as xr

    if not isinstance(maps, xr.Dataset):
        raise DataValidationError("maps: expected a Dataset with Li and Co weights (the output of eels.mlls)")
    for name in (li, co):
        if name not in maps:
            raise DataValidationError(f"maps: no variable {name!r}; it has {list(maps.data_vars)}")
    wl, wc = maps[li].astype(float), maps[co].astype(float)
    sl = maps[f"{li}_std"].astype(float) if f"{li}_std" in maps else xr.zeros_like(wl)
    sc = maps[f"{co}_std"].astype(float) if f"{co}_std" in maps else xr.zeros_like(wc)
    ratio = wl / wc.where(wc > 0)
    ratio_var = (sl / wc) ** 2 + (wl * sc / wc**2) ** 2
    if isinstance(calibration, dict):
        if "region" in calibration:
            known = float(calibration.get("x", 1.0))
            if not 0 < known <= 2:
                raise DataValidationError(f"calibration x: expected 0 < x ≤ 2, got {known}")
            k, k_std, n = _calibration_from_region(ratio, ratio_var.where(ratio_var > 0),
                                                   calibration["region"], known)
            how = f"region of known x = {known:g} ({n} pixels)"
        elif "k" in calibration:
            k, k_std = float(calibration["k"]), float(calibration.get("k_std", 0.0))
            how = "given k"
        else:
            raise DataValidationError("calibration: a dict needs 'region' (with 'x') or 'k' (with 'k_std')")
    else:
        try:
            k, k_std = float(calibration), 0.0
        except (TypeError, ValueError):
            raise DataValidationError(f"calibration: expected a number or a dict, got {calibration!r}") from None
        how = "given k"
    if not np.isfinite(k) or k <= 0:
        raise DataValidationError(f"calibration: k must be a finite number > 0, got {k}")
    x = ratio / k
    x_std = np.sqrt(ratio_var / k**2 + (x * k_std / k) ** 2)
    # named li_fraction, not x: "x" is the horizontal image dimension
    ds = xr.Dataset({"li_fraction": x.assign_attrs(long_name="Li fraction x in LixCoO2", units="1"),
                     "li_fraction_std": x_std.assign_attrs(long_name="standard error of x", units="1")})
    ds.attrs = {"k": k, "k_std": k_std, "calibration": how}
    return ds
