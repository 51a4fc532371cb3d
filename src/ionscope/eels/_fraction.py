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
from ..io import accepts_data


def _calibration_from_region(wl, wc, sl, sc, region, known_x):
    """k from a region of known x: the ratio of the *summed* weights (a ratio of per-pixel ratios
    is biased at low counts, where w_Co is noisy), with its delta-method σ."""
    import xarray as xr

    mask = region if isinstance(region, xr.DataArray) else xr.DataArray(np.asarray(region, bool),
                                                                         dims=wl.dims[-np.ndim(region):])
    if mask.dtype != bool:
        raise DataValidationError("calibration region: expected a boolean mask")
    if not set(mask.dims) <= set(wl.dims):
        raise DataValidationError(f"calibration region: dims {mask.dims} are not among the maps' dims {wl.dims}")
    ok = mask & np.isfinite(wl) & np.isfinite(wc)
    n = int(ok.sum())
    if n == 0:
        raise DataValidationError("calibration region: holds no finite pixel of the maps")
    sum_l, sum_c = float(wl.where(ok).sum()), float(wc.where(ok).sum())
    if sum_c <= 0:
        raise DataValidationError("calibration region: the Co weights sum to ≤ 0 there; not a Co-bearing region")
    var_l, var_c = float((sl**2).where(ok).sum()), float((sc**2).where(ok).sum())
    ratio = sum_l / sum_c
    ratio_std = np.sqrt(var_l / sum_c**2 + ratio**2 * var_c / sum_c**2)
    return ratio / known_x, ratio_std / known_x, n


@accepts_data("maps", keep_dataset=("maps",))
def li_fraction(maps: Any, *, calibration: Any = 1.0, li: str = "Li", co: str = "Co", smooth_co: float = 0.0):
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
        ``{"region": mask, "x": 1.0}``: ``k`` from the ratio of the summed Li
        and Co weights in a region of known x (e.g. pristine LiCoO2, ``x = 1``;
        summed, because a mean of noisy per-pixel ratios is biased), or
        ``{"k": value, "k_std": σ}`` (e.g. :func:`calibration_from_charge`'s result).
    li, co : str
        Names of the Li and Co variables.
    smooth_co : float
        Gaussian σ (pixels, over ``y`` and ``x``) applied to the Co map before
        dividing. The Co map is the host's column density (thickness × density)
        and varies slowly, but a noisy per-pixel ``w_Co`` makes the per-pixel
        ratio heavy-tailed (and undefined where it falls to ≤ 0) at operando
        doses; a smoothed denominator keeps ``x`` finite and its noise that of
        ``w_Li``. 0: none (the exact per-pixel ratio).

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
    if smooth_co and float(smooth_co) > 0:
        if not {"y", "x"} <= set(wc.dims):
            raise DataValidationError("smooth_co: the maps need 'y' and 'x' dimensions")
        from scipy.ndimage import gaussian_filter

        sig = [float(smooth_co) if d in ("y", "x") else 0.0 for d in wc.dims]
        v = np.asarray(wc.values, float)
        fin = np.isfinite(v)
        sm = gaussian_filter(np.where(fin, v, 0.0), sig, mode="nearest")
        if not fin.all():  # a NaN pixel (an unusable spectrum) is left out of its neighbours' mean, not read as 0
            with np.errstate(invalid="ignore", divide="ignore"):
                sm = np.where(fin, sm / gaussian_filter(fin.astype(float), sig, mode="nearest"), np.nan)
        wc = wc.copy(data=sm)
        # the smoothed Co averages ~2π σ² pixels: its own noise becomes negligible next to Li's
        sc = sc / (2.0 * np.sqrt(np.pi) * float(smooth_co))
    ratio = wl / wc.where(wc > 0)
    ratio_var = (sl / wc) ** 2 + (wl * sc / wc**2) ** 2
    if isinstance(calibration, dict):
        if "region" in calibration:
            known = float(calibration.get("x", 1.0))
            if not 0 < known <= 2:
                raise DataValidationError(f"calibration x: expected 0 < x ≤ 2, got {known}")
            k, k_std, n = _calibration_from_region(wl, wc, sl, sc, calibration["region"], known)
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


FARADAY = 96485.33212  # C/mol


@accepts_data("maps", keep_dataset=("maps",))
def calibration_from_charge(maps: Any, charge_c: Any, *, co_mol: float, li: str = "Li", co: str = "Co",
                            region: Any = None):
    """``k`` of :func:`li_fraction` from the electrochemistry: a cross-check independent of any standard.

    The mean Li fraction of the imaged cathode changes by ``Δx = −ΔQ/(F·n_Co)``
    (``Q`` the charge passed, + on charge, ``n_Co`` the moles of Co in the
    imaged volume). The pixel mean of ``w_Li/w_Co`` equals ``k·x̄``, so ``k``
    is the slope of that mean against ``−Q/(F·n_Co)`` over the frames
    (weighted least squares with the maps' errors).

    Parameters
    ----------
    maps : xarray.Dataset
        Li and Co weight maps with a ``time`` dimension (≥ 3 frames) and ideally ``_std``.
    charge_c : array_like or xarray.DataArray
        Charge passed (C) at each frame (e.g. the synchronised log), + on charge.
    co_mol : float
        Moles of Co in the imaged volume (area × thickness × Co density).
    li, co : str
        Variable names.
    region : mask, optional
        Pixels of the cathode to average (default all with finite, positive Co).

    Returns
    -------
    dict
        ``{"k": …, "k_std": …, "x0": x̄ at Q = 0, "frames": n}`` — pass it as
        ``li_fraction(maps, calibration=result)``.

    References
    ----------
    M. Faraday's law; for the use with operando EELS: Y. Nomura et al., Nat.
    Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> q = np.array([0.0, 1e-12, 2e-12, 3e-12])
    >>> x = 1.0 - q / (96485.33212 * 1e-17)            # 1e-17 mol of Co
    >>> maps = xr.Dataset({"Li": ("time", 0.7 * x * 5), "Co": ("time", np.full(4, 5.0))})
    >>> round(calibration_from_charge(maps, q, co_mol=1e-17)["k"], 6)
    0.7
    """
    import xarray as xr

    for name in (li, co):
        if not isinstance(maps, xr.Dataset) or name not in maps:
            raise DataValidationError(f"maps: expected a Dataset with {li!r} and {co!r} weights")
    if "time" not in maps.dims or maps.sizes["time"] < 3:
        raise DataValidationError("maps: need a 'time' dimension with at least 3 frames")
    q = np.asarray(getattr(charge_c, "values", charge_c), float).ravel()
    if q.size != maps.sizes["time"] or not np.all(np.isfinite(q)):
        raise DataValidationError(f"charge_c: expected {maps.sizes['time']} finite values (one per frame)")
    co_mol = float(co_mol)
    if not np.isfinite(co_mol) or co_mol <= 0:
        raise DataValidationError(f"co_mol: expected a number of moles > 0, got {co_mol!r}")
    ratio = maps[li] / maps[co].where(maps[co] > 0)
    if region is not None:
        mask = region if isinstance(region, xr.DataArray) else xr.DataArray(np.asarray(region, bool),
                                                                            dims=ratio.dims[-np.ndim(region):])
        ratio = ratio.where(mask)
    other = [d for d in ratio.dims if d != "time"]
    mean = ratio.mean(other).values
    n = (np.isfinite(ratio)).sum(other).values
    if f"{li}_std" in maps and f"{co}_std" in maps:
        var = ((maps[f"{li}_std"] / maps[co]) ** 2 + (maps[li] * maps[f"{co}_std"] / maps[co] ** 2) ** 2)
        var = (var.where(np.isfinite(ratio)).sum(other) / np.maximum(n, 1) ** 2).values
    else:
        var = np.full(mean.shape, np.nanvar(mean) + 1e-30)
    dx = -q / (FARADAY * co_mol)
    if np.ptp(dx) <= 0:
        raise DataValidationError("charge_c: no charge passed over the frames; k cannot be calibrated from it")
    w = 1.0 / np.maximum(var, 1e-300)
    A = np.column_stack([np.ones_like(dx), dx])
    G = A.T @ (A * w[:, None])
    coef = np.linalg.solve(G, A.T @ (w * mean))
    cov = np.linalg.inv(G)
    resid = mean - A @ coef
    # scale the covariance by the reduced χ² when the frames scatter more than their errors say
    chi2 = float(np.sum(w * resid**2) / max(1, mean.size - 2))
    k, k_std = float(coef[1]), float(np.sqrt(cov[1, 1] * max(1.0, chi2)))
    if k <= 0:
        raise DataValidationError(f"calibration from charge gave k = {k:g} ≤ 0: the Li/Co ratio does not follow "
                                  "the charge passed (check the sign of the current and the region)")
    return {"k": k, "k_std": k_std, "x0": float(coef[0] / k), "frames": int(mean.size)}
