# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a bias series is measured: the profile rows, the interfaces and their tilt, the thickness map.

Everything here is decided once per night, on the zero-bias state ψ₀, by
:func:`~ionscope.holography.plan_bias_series` (:mod:`ionscope.holography._plan`),
and then applied to every time point by the per-frame kernel.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ._inputs import _resample_map


def _interface_tilt(ph0, region_rows, interfaces_px, half_px):
    """Common slope dx/dy (px/px) of the interfaces, from the zero-bias phase, and its σ.

    The mean-inner-potential step of each interface (a large phase step in
    ψ₀) is located in ~8 blocks of rows (the peak of the phase gradient,
    sub-pixel by a parabola), and one line per interface with a shared slope
    is fitted through the positions. Returns (0, inf) when there is too little
    to go on.
    """
    from scipy import ndimage

    rows = np.flatnonzero(region_rows)
    nb = min(8, rows.size // 8)
    if nb < 3:
        return 0.0, math.inf
    ys, xs, which = [], [], []
    for i, c in enumerate(interfaces_px):
        c = int(round(c))
        lo, hi = c - half_px, c + half_px + 1
        if lo < 1 or hi > ph0.shape[1] - 1:
            continue
        for b in range(nb):
            blk = rows[b * rows.size // nb:(b + 1) * rows.size // nb]
            g = np.abs(np.gradient(ndimage.gaussian_filter1d(np.mean(ph0[blk], axis=0), 1.0)))[lo:hi]
            j = int(np.argmax(g))
            if j == 0 or j == g.size - 1:
                continue
            den = g[j - 1] - 2 * g[j] + g[j + 1]
            d = 0.5 * (g[j - 1] - g[j + 1]) / den if den < 0 else 0.0
            ys.append(float(np.mean(blk)))
            xs.append(lo + j + float(np.clip(d, -0.5, 0.5)))
            which.append(i)
    ys, xs, which = np.asarray(ys), np.asarray(xs), np.asarray(which)
    n_if = len(set(which.tolist()))
    if ys.size < n_if + 3:
        return 0.0, math.inf
    a = np.zeros((ys.size, n_if + 1))
    for k, i in enumerate(sorted(set(which.tolist()))):
        a[which == i, k] = 1.0
    a[:, -1] = ys - ys.mean()
    coef, *_ = np.linalg.lstsq(a, xs, rcond=None)
    resid = xs - a @ coef
    dof = max(ys.size - a.shape[1], 1)
    cov = np.linalg.pinv(a.T @ a) * max(float(np.sum(resid ** 2)) / dof, 1e-4)
    return float(coef[-1]), float(math.sqrt(cov[-1, -1]))


def _with_other_boundaries(g, x_nm, interfaces, *, min_gap_px):
    """The interfaces plus any other clear mean-inner-potential boundary of the zero-bias profile.

    ``g`` is |d/dx| of the smoothed zero-bias phase profile (its ends zeroed).
    Returns the sorted positions (nm) and, for each, whether it is one of
    ``interfaces`` (reported) or another boundary (a nuisance step).
    """
    from scipy.signal import find_peaks

    pitch = float(x_nm[1] - x_nm[0]) if x_nm.size > 1 else 1.0
    at = np.clip(np.round((interfaces - x_nm[0]) / pitch).astype(int), 0, g.size - 1)
    weakest = min(float(np.max(g[max(0, i - 2):i + 3])) for i in at)
    noise = 1.4826 * float(np.median(np.abs(g[g > 0] - np.median(g[g > 0])))) if np.any(g > 0) else 0.0
    peaks, _ = find_peaks(g, height=max(0.3 * weakest, 5 * noise), distance=max(1, min_gap_px // 2))
    extra = [p for p in peaks if np.min(np.abs(p - at)) >= min_gap_px]
    extra = sorted(extra, key=lambda p: -g[p])[:4]
    pos = np.concatenate([interfaces, x_nm[extra]])
    flag = np.concatenate([np.ones(interfaces.size, bool), np.zeros(len(extra), bool)])
    order = np.argsort(pos)
    return pos[order], flag[order]


def _shear_plan(region_rows, nx, slope):
    """Gather indices that average each region row along a line of slope dx/dy through its centre row."""
    rows = np.flatnonzero(region_rows)
    d = slope * (rows - rows.mean())
    fl = np.floor(d)
    frac = (d - fl).astype(np.float32)[:, None]
    j0 = np.arange(nx)[None, :] + fl.astype(int)[:, None]
    valid = (j0 >= 0) & (j0 + 1 < nx)
    return rows, np.clip(j0, 0, nx - 2), frac, valid


def _region_rows(pot, region_rows, shear):
    """The profile region's rows, sheared along the interfaces when they are tilted."""
    if shear is None:
        return pot[region_rows]
    rows, j0, frac, valid = shear
    r = rows[:, None]
    out = (1 - frac) * pot[r, j0] + frac * pot[r, j0 + 1]
    return np.where(valid, out, np.nan)


def thickness_map(thickness_nm, grid):
    """The thickness (nm) on the wave grid: a scalar filled in, a hologram-grid map resampled.

    ``grid`` is ``(y_holo, x_holo, y_w, x_w)``. Returns ``(t_map, is_map)``.
    """
    y_holo, x_holo, y_w, x_w = grid
    ny, nx = y_holo.size, x_holo.size
    t_in = np.asarray(getattr(thickness_nm, "values", thickness_nm), float)
    if t_in.ndim == 0:
        if not (math.isfinite(float(t_in)) and t_in > 0):
            raise DataValidationError(f"thickness_nm: expected a positive thickness in nm, got {thickness_nm!r}")
        return np.full((y_w.size, x_w.size), float(t_in)), False
    if t_in.shape != (ny, nx) or not np.all(np.isfinite(t_in)):
        raise ShapeMismatchError(f"thickness_nm: expected a finite (y, x) = {(ny, nx)} map, got {t_in.shape}")
    return _resample_map(t_in, y_holo, x_holo, y_w, x_w), True


def profile_rows(region, *, t_map, t_is_map, psi0, vac, grid):
    """Rows of the wave grid averaged into the profile across the interfaces (specimen of full thickness)."""
    y_holo, x_holo, y_w, x_w = grid
    ny, nx = y_holo.size, x_holo.size
    if region is None:
        if t_is_map:
            rowt = np.median(t_map, axis=1)
            region_rows = rowt >= 0.95 * np.max(rowt)
        else:
            amp = np.abs(psi0) / np.median(np.abs(psi0)[vac])
            rowt = np.median(-2 * np.log(np.clip(amp, 1e-6, None)), axis=1)   # t/λ per row (SCIENCE.md §4)
            # a noisy estimate: compare with a robust plateau level, not the maximum
            spec_rows = ~vac.any(axis=1)
            plateau = np.percentile(rowt[spec_rows], 90) if spec_rows.any() else np.max(rowt)
            region_rows = rowt >= 0.85 * plateau
    elif np.ndim(region) == 1 and len(region) == 2:
        region_rows = (y_w >= float(region[0])) & (y_w <= float(region[1]))
    else:
        rm = np.asarray(getattr(region, "values", region))
        if rm.shape != (ny, nx) or rm.dtype != bool:
            raise ShapeMismatchError(f"region: expected a boolean (y, x) = {(ny, nx)} mask or a (y0, y1) range")
        region_rows = _resample_map(rm.astype(float), y_holo, x_holo, y_w, x_w).mean(axis=1) > 0.99
    # rows that are partly vacuum are not of full thickness (a few stray pixels are tolerated)
    region_rows &= vac.mean(axis=1) <= 0.02
    if np.count_nonzero(region_rows) < 2:
        raise DataValidationError("region: fewer than 2 specimen rows of full thickness to average; pass region")
    return region_rows


def locate_interfaces(ph0, region_rows, x_w, interfaces_nm):
    """The interfaces (nm, sorted) with any other clear boundary of the zero-bias phase, and which are asked for.

    Returns ``(interfaces, reported_indices, gaps)``: ``gaps`` is, per
    interface, the distance to the nearest other one or the field's edge.
    """
    from scipy import ndimage

    ox = x_w.size
    g = np.abs(np.gradient(ndimage.gaussian_filter1d(np.mean(ph0[region_rows], axis=0), 1.0)))
    edge = max(3, ox // 20)
    g[:edge], g[-edge:] = 0, 0
    if interfaces_nm is None:
        i1 = int(np.argmax(g))
        g2 = g.copy()
        g2[max(0, i1 - ox // 10):i1 + ox // 10 + 1] = 0
        i2 = int(np.argmax(g2))
        interfaces = np.sort(x_w[[i1, i2]])
    else:
        interfaces = np.sort(np.atleast_1d(np.asarray(interfaces_nm, float)))
        if interfaces.size == 0 or np.any(interfaces < x_w[0]) or np.any(interfaces > x_w[-1]):
            raise DataValidationError(f"interfaces_nm: expected x positions inside {x_w[0]:g}–{x_w[-1]:g} nm, "
                                      f"got {interfaces_nm!r}")
    # Other material boundaries in the field (a third layer, an interface not asked for) may
    # carry a bias-induced step too; the whole-profile fit would read it as background and
    # bias the steps asked for. Each clear one (a phase-gradient peak ≥ 30 % of the weakest
    # interface's and ≥ 5× the gradient's noise) gets a step of its own, fitted, not reported.
    interfaces, reported = _with_other_boundaries(g, x_w, interfaces, min_gap_px=max(8, ox // 20))
    stops = np.concatenate([[x_w[0]], interfaces, [x_w[-1]]])
    gaps = np.minimum(np.diff(stops)[:-1], np.diff(stops)[1:])
    return interfaces, np.flatnonzero(reported), gaps


def interface_slope(ph0, region_rows, interfaces, gaps, x_w, given_slope):
    """Slope dx/dy of the interfaces used to average along them, its σ in degrees.

    ``given_slope`` (from ``interface_tilt_deg``) is used as given; otherwise
    the slope measured on the zero-bias phase is used when it matters (≥ ½ px
    across the region) and is measured (≥ 3σ), else 0.
    """
    if given_slope is not None:
        return given_slope, 0.0
    pitch = abs(float(x_w[1] - x_w[0])) if x_w.size > 1 else 1.0
    half = max(3, int(0.25 * float(np.min(gaps)) / pitch))
    slope, slope_sd = _interface_tilt(ph0, region_rows, (interfaces - x_w[0]) / pitch, half)
    rows_span = float(np.ptp(np.flatnonzero(region_rows)))
    # only when it matters (≥ ½ px across the region) and is measured (≥ 3σ)
    if not (abs(slope) * rows_span >= 0.5 and abs(slope) >= 3 * slope_sd):
        slope = 0.0
    tilt_sd = math.degrees(slope_sd) if math.isfinite(slope_sd) else float("nan")
    return slope, tilt_sd
