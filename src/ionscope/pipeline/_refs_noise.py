# SPDX-License-Identifier: GPL-3.0-or-later
"""Does the references' own noise decide x? The run's plain-words answer (issue 19, "never mislead").

References made from the data's own regions (``ionscope refs regions``) carry one realisation of noise,
common to every pixel: averaging pixels does not shrink it. The Li-K shift fit of ``eels.mlls`` gives its
part of each pixel's σ (``<name>_std_references``, :mod:`ionscope.eels._refs_sigma`) and ρ, the share of a
pixel's information the references' noise takes. The fraction stage keeps the references' σ of x as the map
``li_std_references`` and, from the pixels whose Li/Co lies beyond the regions' (where x is extrapolated),
``references_x_std_beyond`` (median σ of x from the references alone) and ``references_rho`` (median ρ);
``references_noise_warning`` is set when either passes its limit
(:data:`~ionscope.eels._refs_sigma.X_STD_WARN`, :data:`~ionscope.eels._refs_sigma.RHO_WARN`), and
``references_noise_note`` says what it means and what to do. ``summary.json``, ``report.html`` and the
``ionscope run`` / ``ionscope watch`` output carry them.
"""
from __future__ import annotations

import numpy as np

#: the fraction stage's attrs this module sets (summary.json keys)
KEYS = ("references_x_std_beyond", "references_rho", "references_beyond_pixels", "references_noise_warning",
        "references_noise_note")


def x_std_references(ds_l, k: float = 1.0):
    """The references' σ of x = (w_Li/w_Co)/k per pixel from the Li-map stage's maps, or None when the fit
    gave none (references without jackknife replicates, another route)."""
    if "ratio_std_references" not in ds_l:
        return None
    return ds_l["ratio_std_references"] / k


def assess(ds_l, x_std_ref, *, k: float = 1.0) -> dict:
    """The attrs of :data:`KEYS` from the Li-map stage's maps ``ds_l`` and the map ``x_std_ref``.

    "Beyond the regions": film pixels (Co weight above a tenth of its 90th percentile) whose neighbourhood's
    Li/Co weight ratio (Gaussian σ 2 px over the last two dims, y and x; none for 1-D data) lies outside the regions' (``references_x_low`` … ``references_x_high``, in the references' units); none → the pixels
    themselves are the regions' x range, and the numbers are taken over all film pixels.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"li": ("p", [0.2, 0.3, 0.9]), "co": ("p", [1.0, 1.0, 1.0]),
    ...                  "references_rho": ("p", [0.7, 0.8, 0.0])}, attrs={"references_x_low": 0.6, "references_x_high": 1.0})
    >>> out = assess(ds, xr.DataArray([0.2, 0.3, 0.01], dims="p"))
    >>> out["references_noise_warning"], out["references_x_std_beyond"], out["references_beyond_pixels"]
    (1, 0.25, 2)
    """
    from ..eels import RHO_WARN, X_STD_WARN

    co = np.asarray(ds_l["co"].values, float)
    li = np.asarray(ds_l["li"].values, float)
    sx = np.asarray(x_std_ref.values if hasattr(x_std_ref, "values") else x_std_ref, float)
    rho = np.asarray(ds_l["references_rho"].values, float) if "references_rho" in ds_l else np.full(co.shape, np.nan)
    ok = np.isfinite(co) & np.isfinite(li) & np.isfinite(sx)
    top = np.nanpercentile(co[ok], 90) if ok.any() else 0.0
    film = ok & (co > 0.1 * top) & (top > 0)
    lo, hi = float(ds_l.attrs.get("references_x_low", -np.inf)), float(ds_l.attrs.get("references_x_high", np.inf))
    # the neighbourhood's Li/Co (Gaussian σ 2 px over y, x, as the fit picks each pixel's Li-K shape): a
    # pixel's own ratio is too noisy (~75 % at 1000 counts per 0.1 eV channel) to tell where it lies
    from scipy.ndimage import gaussian_filter

    sigma = [0.0] * (li.ndim - 2) + [2.0, 2.0] if li.ndim >= 2 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = gaussian_filter(np.where(ok, li, 0.0), sigma) / gaussian_filter(np.where(ok, co, 0.0), sigma)
    beyond = film & ((ratio < lo) | (ratio > hi))
    where = beyond if beyond.any() else film
    if not where.any():
        return {}
    s = float(np.median(sx[where]))
    r = rho[where]
    r = float(np.median(r[np.isfinite(r)])) if np.isfinite(r).any() else float("nan")
    warn = bool(s > X_STD_WARN or (np.isfinite(r) and r > RHO_WARN))
    place = "x beyond the regions" if beyond.any() else "x"
    if warn:
        note = (f"{place} is not determined by these references: make them from more pixels (or a higher dose). "
                f"Their own noise alone gives σ(x) ≈ {s:.2g} per pixel there (limit {X_STD_WARN:g}), the same for "
                f"every pixel: averaging pixels or frames does not shrink it; its energy is ρ ≈ {r:.2f} times a pixel's "
                f"information (above {RHO_WARN:g} the fit's correction for it is capped and x reads biased).")
    else:
        note = (f"the references' own noise gives σ(x) ≈ {s:.2g} for {place} (ρ ≈ {r:.2f}), common to every "
                "pixel: averaging pixels or frames does not shrink it (li_std_references)")
    return {"references_x_std_beyond": s, "references_rho": r, "references_beyond_pixels": int(beyond.sum()),
            "references_noise_warning": int(warn), "references_noise_note": note}


def warning_line(attrs) -> str | None:
    """The line ``ionscope run`` / ``watch`` print when the references' noise decides x, else None.

    Parameters
    ----------
    attrs : mapping
        The fraction stage's attributes (:data:`KEYS`).

    Returns
    -------
    str or None
        ``"WARNING: ..."`` with the run's note when ``references_noise_warning`` is set.

    Examples
    --------
    >>> warning_line({"references_noise_warning": False}) is None
    True
    >>> warning_line({"references_noise_warning": True, "references_noise_note": "make them from more pixels"})
    'WARNING: make them from more pixels'
    """
    if not attrs.get("references_noise_warning"):
        return None
    return f"WARNING: {attrs.get('references_noise_note', 'the references noise decides x')}"


#: public names (``ionscope.pipeline``) of the summary keys and the one-line warning
REFERENCES_NOISE_KEYS = KEYS
references_noise_warning = warning_line
