# SPDX-License-Identifier: GPL-3.0-or-later
"""Does the Li-K edge move with the Li content? A check that needs no knowledge of the chemical shift.

The Li-K edge of LixCoO2 shifts by a few tenths of an eV as x changes. With a
single Li-K reference shape MLLS reads the shifted edge partly as Co and
background, so Li-poor pixels read low (x −0.02 noise-free on the realistic
simulator, 0.6 eV between x = 1 and 0.5). A user with a pristine and a charged
region fixes that with :func:`references_from_regions` (both Li-K shapes), or
fits the shift per pixel (``mlls(..., shift_components=["Li"])``) — but only
if they know the shift is there. This check finds out from the data: the
spectra are summed over blocks (enough counts for a first-order shift fit),
the Li-K shift of each block is fitted against the given reference
(``shift_components``) on one checkerboard half of its pixels, and regressed
on the block's Li/Co read on the other half (independent noise). A
slope that is significant (> 3 s.e. of the regression) and moves the edge by
more than ``threshold_ev`` across the data's Li/Co range (10th–90th
percentile) is a chemical shift the single shape cannot follow.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataValidationError
from ..io import accepts_data


@accepts_data("si")
def li_shift_check(si: Any, references: Any, *, fit_range=(45.0, 85.0), li: str = "Li", co: str = "Co",
                   block: int = 8, threshold_ev: float = 0.1, warn: bool = True, energy: Any = None) -> dict:
    """Detect a Li-K chemical shift that varies with the Li content (one Li-K reference is then biased).

    Parameters
    ----------
    si : xarray.DataArray
        Raw spectra with their zero-loss peak, dims ``(..., y, x, energy)``.
    references : xarray.DataArray
        ``(component, energy)`` with ``li`` and ``co`` (one Li-K shape).
    fit_range : (float, float)
        MLLS window (eV).
    li, co : str
        Names of the Li and Co references.
    block : int
        Spectra are summed over ``block``×``block`` pixels before the shift fit.
    threshold_ev : float
        Smallest shift across the data's Li/Co range (10th–90th percentile) worth reporting.
    warn : bool
        Issue a ``RuntimeWarning`` with the advice when a shift is detected.
    energy : array_like, optional
        The energy axis in eV, for a plain array (its last axis is energy).

    Returns
    -------
    dict
        ``detected`` (bool), ``shift_per_li_co_ev`` (slope of the Li-K shift
        against Li/Co, eV per unit Li/Co) and its ``_std``, ``shift_spread_ev``
        (shift across the 10th–90th percentile of Li/Co), ``n_blocks``,
        ``block_shift_ev`` and ``block_li_co`` (the blocks' values), ``advice``.

    Examples
    --------
    >>> from ionscope.simulate import operando_eels
    >>> si, truth, _ = operando_eels(shape=(16, 24), n_frames=3, physics="realistic", noise=False,
    ...                              dose=1000.0, seed=1)
    >>> li_shift_check(si, truth.references, block=4, warn=False)["detected"]
    True
    """
    import warnings

    from ._common import spectra
    from ._mlls import mlls

    si = spectra(si, energy=energy)  # a plain (y, x, energy) array needs energy= (eV), as mlls does
    if not {"y", "x"} <= set(si.dims):
        raise DataValidationError(f"si: li_shift_check needs dims y and x to sum blocks, got {si.dims}")
    b = int(block)
    if si.sizes["y"] < b or si.sizes["x"] < b:
        raise DataValidationError(f"block={block}: expected 1 ≤ block ≤ the image size {si.sizes['y']}×{si.sizes['x']}")
    if b < 2:
        raise DataValidationError(f"block={block}: expected ≥ 2 (the block is split in two halves)")
    import xarray as xr

    # The shift is fitted on one checkerboard half of each block and Li/Co read on the other: fitted on the
    # same counts, their noise is correlated (Li enters both), and at 100 counts/channel that alone gave a
    # significant slope of the wrong sign
    iy, ix = np.arange(si.sizes["y"]), np.arange(si.sizes["x"])
    half = xr.DataArray((iy[:, None] + ix[None, :]) % 2 == 0, dims=("y", "x"))

    def fit(mask):
        sums = (si * mask).coarsen(y=b, x=b, boundary="trim").sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mlls(sums, references, fit_range=fit_range, plural_scattering="fourier-log", nonnegative=False,
                        shift_components=[li])

    res, other = fit(half), fit(~half)
    if co not in res:
        raise DataValidationError(f"references: component {co!r} missing; it has {res.attrs['components']}")
    ratio = np.asarray((other[li] / other[co]).values, float).ravel()
    shift = np.asarray(res[f"{li}_shift"].values, float).ravel()
    # blocks with a meaningful ratio: positive Co, and a Li signal of at least 3σ (the shift of a block
    # without Li-K is undefined)
    sig = np.asarray((res[li] / res[f"{li}_std"]).values, float).ravel()
    ok = np.isfinite(ratio) & np.isfinite(shift) & (np.asarray(other[co].values).ravel() > 0) & (sig > 3)
    out = {"n_blocks": int(ok.sum()), "block_shift_ev": shift[ok], "block_li_co": ratio[ok], "detected": False,
           "shift_per_li_co_ev": float("nan"), "shift_per_li_co_ev_std": float("nan"), "shift_spread_ev": 0.0,
           "advice": ""}
    if ok.sum() < 4 or np.ptp(ratio[ok]) == 0:
        out["advice"] = "too few blocks with Li to test for a chemical shift (use a smaller block)"
        return out
    # weighted by the Li signal-to-noise squared: a block's shift is −(derivative weight)/Li, its σ ∝ σ_Li/Li
    r, s, wt = ratio[ok], shift[ok], sig[ok] ** 2
    rc = r - np.average(r, weights=wt)
    sc = s - np.average(s, weights=wt)
    slope = float((wt * rc * sc).sum() / (wt * rc**2).sum())
    resid = sc - slope * rc
    se = float(np.sqrt((wt * resid**2).sum() / max(r.size - 2, 1) / (wt * rc**2).sum()))
    spread = slope * float(np.percentile(r, 90) - np.percentile(r, 10))
    detected = abs(slope) > 3 * se and abs(spread) > threshold_ev
    out.update(shift_per_li_co_ev=slope, shift_per_li_co_ev_std=se, shift_spread_ev=spread, detected=bool(detected))
    if detected:
        out["advice"] = (f"the Li-K edge moves by {spread:+.2f} eV across the data's Li/Co range ({abs(slope) / se:.0f} "
                         "s.e.): one Li-K reference reads the Li-poor pixels low. Build references from a pristine "
                         "and a charged region (eels.references_from_regions), or fit the shift per pixel "
                         "(mlls(..., shift_components=['Li']))")
        if warn:
            warnings.warn(f"li_shift_check: {out['advice']}", RuntimeWarning, stacklevel=2)
    return out
