# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference: ``holography.bias_series`` as it was before issue 18 split it (branch h18, 6c1a600), verbatim
but for the imports, kept to check that the split gives the same numbers (tests/test_holography_bias_split.py)."""
# flake8: noqa
from __future__ import annotations

import math
import warnings

import numpy as np

from ionscope.data import as_dataarray, require_dims
from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.io import accepts_data
from ionscope.io import acquisition_value
from ionscope.holography import _checks, _drift, _fourier
from ionscope.holography._fourier import canonical_carrier, estimate_carrier_array
from ionscope.holography._potential import _plane_design, _unwrap_kernel, interaction_constant
from ionscope.holography._steps import apply_errors, fit_steps, recompute_errors

_RAMP_TERMS = {1: ["offset", "x", "y"], 2: ["offset", "x", "y", "xx", "xy", "yy"]}


# --------------------------------------------------------------------------- masks
@accepts_data("wave")
def vacuum_mask(wave, *, smooth_px=2.0, border_px=3, erode_px=None):
    """Vacuum pixels of a reconstructed wave, from its amplitude.

    The amplitude (Gaussian-smoothed by ``smooth_px``) is split into a bright
    (vacuum) and a dark (specimen: inelastic and high-angle scattering) class
    by Otsu's threshold; pixels within 30 % of the vacuum level (of the gap
    between the class medians) are vacuum, so the thin end of a wedge is not;
    small isolated patches are dropped and the vacuum is eroded by ``erode_px`` (the
    transition region and the ringing of a Fourier reconstruction at edges
    are not field-free vacuum) and a ``border_px`` frame is left out.

    Parameters
    ----------
    wave : DataArray or ndarray
        Complex wave ``(y, x)`` (ideally reference-normalised) or its amplitude.
    smooth_px, border_px, erode_px : float, int, int
        Smoothing, excluded border and erosion in pixels; the erosion
        defaults to 2 % of the image side (≥ 2 px): the amplitude of a wedge's
        first few nanometres is within the noise of vacuum, but its phase
        already carries the specimen's potential.

    Returns
    -------
    ndarray of bool (y, x)

    Raises
    ------
    DataValidationError
        No contrast between vacuum and specimen (e.g. an all-vacuum image).

    References
    ----------
    N. Otsu, IEEE Trans. Syst. Man Cybern. 9 (1979) 62, doi:10.1109/TSMC.1979.4310076.

    Examples
    --------
    >>> import numpy as np
    >>> amp = np.ones((64, 64)); amp[40:] = 0.7
    >>> m = vacuum_mask(amp)
    >>> bool(m[10, 30]), bool(m[50, 30])
    (True, False)
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    da = as_dataarray(wave, kind="image", name="wave")
    require_dims(da, ["y", "x"], name="wave")
    if len(da.dims) != 2:
        raise DataValidationError(f"wave: expected one (y, x) wave, got dims {da.dims}")
    arr = np.asarray(da.transpose("y", "x").values)
    amp = np.abs(arr).astype(float)
    if not np.all(np.isfinite(amp)):
        raise DataValidationError("wave: holds NaN/Inf values")
    amp = ndimage.gaussian_filter(amp, smooth_px) if smooth_px > 0 else amp
    # the threshold comes from the interior, clipped: a Fourier reconstruction
    # rings at the field's border (the image is not periodic) with outliers
    b = max(int(border_px), 0)
    inner = amp[b:amp.shape[0] - b, b:amp.shape[1] - b] if b else amp
    lo, hi = np.percentile(inner, [1, 99])
    if not hi > 1.05 * lo:
        raise DataValidationError("wave: the amplitude has no vacuum/specimen contrast; pass a vacuum mask")
    clipped = np.clip(inner, lo, hi)
    split = threshold_otsu(clipped)
    vac_level, spec_level = np.median(clipped[clipped > split]), np.median(clipped[clipped <= split])
    # close to the vacuum level, not midway: the thin end of a wedge is specimen
    # (its bias-induced phase is not leakage), midway would call ~1/3 of it vacuum
    mask = amp > vac_level - 0.3 * (vac_level - spec_level)
    # isolated noise pixels inside the specimen are not vacuum: keep large components only
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        mask = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))
    if erode_px is None:
        erode_px = max(2, int(round(0.02 * min(amp.shape))))
    if erode_px > 0:
        mask = ndimage.binary_erosion(mask, iterations=int(erode_px), border_value=1)
    if b > 0:
        mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = False, False, False, False
    if np.count_nonzero(mask) < 64:
        raise DataValidationError("wave: fewer than 64 vacuum pixels found; pass a vacuum mask")
    return mask


# --------------------------------------------------------------------------- inputs
def _series_da(obj, method):
    da = as_dataarray(obj, kind="image", name="holograms")
    require_dims(da, ["time", "y", "x"], name="holograms")
    want = ("time", "y", "x") if method == "fourier" else ("time", "frame", "y", "x")
    if set(da.dims) != set(want):
        raise ShapeMismatchError(f"holograms: method {method!r} expects dims {want}, got {da.dims}")
    if da.dtype.kind not in "uif":
        raise DataValidationError(f"holograms: expected real intensities, got dtype {da.dtype}")
    return da.transpose(*want)


def _bias_per_frame(da, bias_v, log, times):
    n = da.sizes["time"]
    if bias_v is not None:
        b = np.asarray(getattr(bias_v, "values", bias_v), float)
        if b.shape != (n,):
            raise ShapeMismatchError(f"bias_v: expected {n} values (one per time point), got shape {b.shape}")
    elif log is not None:
        from ionscope.io import voltage_log

        log = voltage_log(log)
        lt = np.asarray(log["time"].values, float)
        if np.any(times < lt[0] - 1e-9) or np.any(times > lt[-1] + 1e-9):
            raise DataValidationError(f"log: covers {lt[0]:g}–{lt[-1]:g} s, the holograms "
                                      f"{times[0]:g}–{times[-1]:g} s; expected the log to span the series")
        b = np.interp(times, lt, np.asarray(log["voltage"].values, float))
    elif "bias_v" in da.coords:
        b = np.asarray(da.coords["bias_v"].values, float)
    else:
        raise DataValidationError("bias_v/log: give the bias per time point (bias_v), a bias log (log), "
                                  "or holograms with a 'bias_v' coordinate")
    if not np.all(np.isfinite(b)):
        raise DataValidationError("bias_v: holds NaN/Inf; expected the bias in V for every time point")
    return b


def _references(references, method, shape):
    """References as (n_ref, [frame,] y, x) numpy-readable DataArray and their times (or None)."""
    if references is None:
        return None, None
    da = as_dataarray(references, kind="image", name="references")
    require_dims(da, ["y", "x"], name="references")
    if (da.sizes["y"], da.sizes["x"]) != shape:
        raise ShapeMismatchError(f"references: (y, x) = ({da.sizes['y']}, {da.sizes['x']}) does not match the "
                                 f"holograms' {shape}")
    lead = [d for d in da.dims if d not in ("y", "x", "frame")]
    if method == "phase-shifting" and "frame" not in da.dims:
        raise ShapeMismatchError("references: phase shifting needs reference groups with a 'frame' dim")
    if method == "fourier" and "frame" in da.dims:
        raise ShapeMismatchError("references: the Fourier method takes single references, not 'frame' groups")
    if len(lead) > 1:
        raise ShapeMismatchError(f"references: expected ([time,] {'frame, ' if method != 'fourier' else ''}y, x), "
                                 f"got dims {da.dims}")
    if not lead:
        da = da.expand_dims(time=[0.0])
        times = None
    else:
        if lead[0] != "time":
            da = da.rename({lead[0]: "time"})
        times = np.asarray(da["time"].values, float) if "time" in da.coords else None
    core = ("frame", "y", "x") if method != "fourier" else ("y", "x")
    return da.transpose("time", *core), times


def _resample_map(m, src_y, src_x, dst_y, dst_x, order=1):
    """A (y, x) map on the hologram grid → the wave grid (Fourier: coarser, same field)."""
    from scipy import ndimage

    if m.shape == (dst_y.size, dst_x.size):
        return m
    fy = np.interp(dst_y, src_y, np.arange(src_y.size))
    fx = np.interp(dst_x, src_x, np.arange(src_x.size))
    gy, gx = np.meshgrid(fy, fx, indexing="ij")
    return ndimage.map_coordinates(np.asarray(m, float), [gy, gx], order=order, mode="nearest")


# --------------------------------------------------------------------------- waves
#: Order of the polynomial describing how a reference changes from the base reference.
_REF_CHANGE_ORDER = 3


def _smooth_change(wave, base, order=_REF_CHANGE_ORDER):
    """exp(P) with P a polynomial (log-amplitude + i·phase) fitted to log(wave/base) on a coarse grid."""
    ny, nx = wave.shape
    f = max(1, min(ny, nx) // 64)
    ratio = _block_mean(wave * np.conj(base), f)
    mag = np.abs(_block_mean(base, f)) ** 2
    ok = mag > 0.05 * np.median(mag)
    ratio = np.where(ok, ratio / np.where(ok, mag, 1.0), 1.0)
    phase = _unwrap_kernel(ratio[None])[0]
    logamp = np.log(np.clip(np.abs(ratio), 1e-6, None))
    cy, cx = ratio.shape
    yy = np.linspace(-1.0, 1.0, cy)[:, None] * np.ones((1, cx))
    xx = np.ones((cy, 1)) * np.linspace(-1.0, 1.0, cx)[None, :]
    terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    a = np.stack([(yy ** i * xx ** j)[ok] for i, j in terms], axis=1)
    coef_p, *_ = np.linalg.lstsq(a, phase[ok], rcond=None)
    coef_a, *_ = np.linalg.lstsq(a, logamp[ok], rcond=None)
    # evaluated at the block centres' coordinates, extended to the full grid
    fy = (np.arange(ny) + 0.5) / f - 0.5
    fx = (np.arange(nx) + 0.5) / f - 0.5
    ty = (fy / max(cy - 1, 1) * 2 - 1)[:, None]
    tx = (fx / max(cx - 1, 1) * 2 - 1)[None, :]
    p = sum(c * ty ** i * tx ** j for c, (i, j) in zip(coef_p, terms))
    la = sum(c * ty ** i * tx ** j for c, (i, j) in zip(coef_a, terms))
    return np.exp(la + 1j * p)


class _Waves:
    """Reconstruct the wave of any time point with the nearest reference (Fourier or phase shifting)."""

    def __init__(self, holo, refs, ref_times, times, method, q, aperture, fft_workers, base_time=0.0):
        self.holo, self.method, self.q, self.w = holo, method, q, fft_workers
        ny, nx = holo.sizes["y"], holo.sizes["x"]
        if method == "fourier":
            radius, edge = _fourier._resolve_aperture(q, aperture, None)
            self.kw = dict(q=q, radius=radius, edge=edge, full_size=False, workers=fft_workers)
            self.out_shape = _fourier._plan((ny, nx), q, radius, edge, False)["out"]
        else:
            self.out_shape = (ny, nx)
            from ionscope.holography._phase_shifting import _carrier_basis

            cos, sin = _carrier_basis((ny, nx), q)
            self.decarrier = (cos - 1j * sin).astype(np.complex64)
        if refs is None or ref_times is None or len(ref_times) == 1:
            self.nearest = np.zeros(times.size, int)
        else:
            self.nearest = np.argmin(np.abs(times[:, None] - ref_times[None, :]), axis=1)
        self.ref_waves = None
        if refs is not None:
            self.ref_waves = self._reference_waves(refs, ref_times, base_time)
        else:
            self.nearest[:] = -1

    def _reference_waves(self, refs, ref_times, base_time):
        """The reference wave of each reference time: one base reference, changed smoothly.

        A reference carries only smooth information (biprism and lens
        distortions, the carrier), and its photon noise enters ΔV — smoothing
        with a small kernel does not help there: the noise at the scale of the
        bulk regions, which sets the steps, passes any local smoothing. So the
        reference nearest to the zero-bias state (``base``) is smoothed (it
        cancels in Δφ = arg ψ_t·ψ₀* wherever both use it), and every other
        reference enters only through its *change* from the base, taken as a
        3rd-order polynomial in log-amplitude and phase (what drifts over a
        night — carrier, biprism, lens — is smooth): a polynomial fitted to a
        whole field carries almost no noise. Measured on simulated Fourier
        series: frames referred through a second, Gaussian-smoothed reference
        had ~1.4× the ΔV scatter of those on the base reference.
        """
        from scipy import ndimage

        raw = [self._raw(np.asarray(refs.isel(time=i).values)) for i in range(refs.sizes["time"])]
        base = 0 if ref_times is None else int(np.argmin(np.abs(np.asarray(ref_times) - base_time)))
        sigma = 2.0 if self.method == "fourier" else 4.0
        b = raw[base]
        smooth = (ndimage.gaussian_filter(b.real, sigma, mode="nearest")
                  + 1j * ndimage.gaussian_filter(b.imag, sigma, mode="nearest")).astype(np.complex64)
        out = []
        for i, w in enumerate(raw):
            out.append(smooth if i == base else (smooth * _smooth_change(w, b)).astype(np.complex64))
        return out

    def _raw(self, arr):
        if self.method == "fourier":
            return _fourier.sideband_kernel(arr, **self.kw)
        from ionscope.holography._phase_shifting import estimate_shifts_array, solve_weights

        frames = np.ascontiguousarray(arr, dtype=np.float32)
        theta, _ = estimate_shifts_array(frames, q=self.q, iterations=3)
        # c = Σ w_n·I_n (Ru et al. 1994; as _phase_shifting.solve_kernel) as two real
        # matrix–vector products over frames-first data: ~50× faster than a complex
        # matmul over a frames-last view at 1k²
        w = solve_weights(theta)[1]
        flat = frames.reshape(frames.shape[0], -1)
        c = (w.real.astype(np.float32) @ flat) + 1j * (w.imag.astype(np.float32) @ flat)
        # carrier removed here (not only by the reference) so that a reference can be smoothed
        return c.reshape(frames.shape[1:]).astype(np.complex64) * self.decarrier

    def __call__(self, k, frame=None):
        """Wave of time point k (``frame``: its intensities, if already read)."""
        c = self._raw(np.asarray(self.holo.isel(time=k).values) if frame is None else frame)
        i = self.nearest[k]
        if i >= 0:
            ref = self.ref_waves[i]
            mag = np.abs(ref)
            return c / np.where(mag > 1e-12 * mag.max(), ref, 1e-12 * mag.max())
        return c


def _align_constant(z, vac, ref=None):
    """Remove the constant phase of z (relative to ``ref``) over the vacuum: fringe-phase drift, gauge."""
    s = np.sum(z[vac] if ref is None else z[vac] * np.conj(ref[vac]))
    return z * np.conj(s / abs(s)) if abs(s) > 0 else z


def _zero_state(waves, idx, vac):
    """Complex mean of the zero-bias waves after aligning their constant phases on the first."""
    first = waves(int(idx[0]))
    acc = first.astype(np.complex128)
    for k in idx[1:]:
        acc += _align_constant(waves(int(k)), vac, first)
    return (acc / len(idx)).astype(np.complex64)


def _drift_setup(drift, waves, zero_idx, vac, method, y_w, x_w):
    """The drift tracker, the zero-bias state aligned with it, and given positions relative to it (or None)."""
    spacing = (y_w[1] - y_w[0] if y_w.size > 1 else 1.0, x_w[1] - x_w[0] if x_w.size > 1 else 1.0)
    tracker = _drift.SpecimenDrift(spacing=spacing, shape=(y_w.size, x_w.size), method=method)
    given = None if isinstance(drift, str) else drift - drift[int(zero_idx[0])]
    try:
        psi0, _ = _drift.aligned_zero_state(waves, zero_idx, vac, tracker, given)
    except DataValidationError as exc:
        if given is not None:
            raise
        # "auto" on a specimen without edges to register on: carry on as without drift correction
        warnings.warn(f"{exc}; the drift is not corrected", RuntimeWarning, stacklevel=3)
        return None, _zero_state(waves, zero_idx, vac), None
    return tracker, psi0, given


# --------------------------------------------------------------------------- per-frame kernel
#: Side (px) of the coarse grid on which large difference waves are unwrapped.
_COARSE_SIDE = 64


def _block_mean(a, f):
    """Mean over f×f blocks (the part of ``a`` divisible by f)."""
    ny, nx = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return a[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))


def _unwrap_difference(z):
    """Unwrapped phase of a difference wave z = ψ_t·ψ₀*.

    Small grids are unwrapped directly (:func:`unwrap_phase`'s kernel). A large
    one is averaged over f×f blocks (complex mean: noise drops, the smooth
    leakage phase survives), the coarse phase is unwrapped, brought back to
    full size (nearest), and the full-resolution phase is that estimate plus
    the wrapped remainder arg(z·e^{−i·estimate}): exact wherever the fine
    detail stays within ±π of the block's mean phase (steps of a few radians
    over several pixels, noise), at a fraction of the cost (measured 0.22 s →
    ~0.03 s at 512², 23 → ~3 ms at 211²).
    """
    ny, nx = z.shape
    f = min(ny, nx) // _COARSE_SIDE
    if f < 2:
        return _unwrap_kernel(z[None])[0]
    coarse = _unwrap_kernel(_block_mean(z, f)[None])[0]

    def full(a):
        a = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
        return np.pad(a, ((0, ny - a.shape[0]), (0, nx - a.shape[1])), mode="edge")

    # e^{−i·estimate} on the coarse grid, then enlarged: the same numbers as on the
    # full grid, where the complex exponential cost most of this function (5 of 7 ms at 400²)
    return full(coarse) + np.angle(z * full(np.exp(-1j * coarse).astype(np.complex64)))


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


def _row_noise(rows, block=None):
    """A signal-free realisation of the noise of the row mean: alternating blocks of rows, differenced.

    Blocks (not single rows) so that noise correlated between neighbouring rows
    (a smoothed reference, the Fourier aperture) is kept; equal numbers of rows
    with each sign, so a signal that is the same in every row cancels exactly.
    """
    n = rows.shape[0]
    if block is None:
        # long enough to hold the noise's correlation between rows (a Fourier
        # aperture: ~2 rows, a smoothed reference: ~8 px), while ≥ 8 blocks keep
        # a smooth change of the signal along y from leaking in
        block = min(64, max(8, n // 8))
    block = max(1, min(block, n // 2))
    sign = np.where((np.arange(n) // block) % 2 == 0, 1.0, -1.0)
    n_pos, n_neg = int(np.sum(sign > 0)), int(np.sum(sign < 0))
    if min(n_pos, n_neg) < 1:
        return None
    # mean₊ − mean₋ has variance σ²(1/n₊ + 1/n₋); the row mean σ²/n: rescale to match
    e = np.nanmean(rows[sign > 0], axis=0) - np.nanmean(rows[sign < 0], axis=0)
    return e / math.sqrt(n * (1 / n_pos + 1 / n_neg))


_ONCE = {}


def _once(name, fn, *arrays):
    """``fn(*arrays)``, kept and reused while the same array objects come back (e.g. every frame of a series).

    The ramp's least squares over the vacuum solves with the same design
    matrix in every frame: its pseudo-inverse, once, turns each fit into a
    3 × n product (measured 2.0 → 0.4 ms per 400² frame, with the coarse
    vacuum mask below 2.5 → 1.5 ms of leakage statistics). Arrays are
    recognised by identity (weak references: a new array, e.g. a vacuum
    mask moved with the specimen, is a new entry; one freed never matches).
    """
    import weakref

    hit = _ONCE.get(name)
    if hit is not None and len(hit[0]) == len(arrays) and all(r() is a for r, a in zip(hit[0], arrays)):
        return hit[1]
    value = fn(*arrays)
    _ONCE[name] = (tuple(weakref.ref(a) for a in arrays), value)
    return value


def _frame_kernel(wave, psi0, *, vac, region_rows, design, t_map, c_e, x_nm, interfaces, window, model, background,
                  max_width, margin, shear=None, coarse_f=1):
    """Δφ, ΔV, leakage and the joint step fit of one time point (numpy in, numpy/objects out)."""
    z = _align_constant(wave * np.conj(psi0), vac)
    dphi = _unwrap_difference(z)
    coef = _once("ramp-pinv", lambda d, v: np.linalg.pinv(d[v]), design, vac) @ dphi[vac]
    ramp = design @ coef
    # leakage statistics on a coarse grid (block means): noise and any fringe
    # ripple average out, a ramp does not
    f = coarse_f
    cvac = _once(f"coarse-vacuum-{f}", lambda v: _block_mean(v.astype(float), f) > 0.999, vac)
    before = _block_mean(dphi, f)[cvac]
    dphi = dphi - ramp
    after = _block_mean(dphi, f)[cvac]
    with np.errstate(invalid="ignore", divide="ignore"):
        pot = dphi / (c_e * t_map)
    rows = _region_rows(pot, region_rows, shear)
    n_rows = rows.shape[0]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # sheared columns at the edges are all-NaN
        prof = np.nanmean(rows, axis=0)
        sem = np.nanstd(rows, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(rows), axis=0))
    import xarray as xr

    profile = xr.DataArray(prof, dims=("position",), coords={"position": x_nm, "sem": ("position", sem)})
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        noise = _row_noise(rows) if n_rows >= 4 else None
    try:
        # the fit measures the noise's correlation on the points it uses, standardised
        # as in its covariance; bias_series pools it over frames
        steps = fit_steps(profile, centers=interfaces, model=model, background=background, window=window,
                          max_width=max_width, margin=margin, noise=noise)
        gamma = steps.noise_gamma
    except DataValidationError:
        steps, gamma = None, None
    in_region = ramp[region_rows]
    return {"phase": dphi.astype(np.float32), "potential": pot.astype(np.float32), "coef": coef,
            "leak_rms": float(np.std(before)) if before.size > 1 else np.nan,
            "resid_rms": float(np.std(after)) if after.size > 1 else np.nan,
            "vac_rms": float(np.std(dphi[vac])),
            "leak_pv": float(np.ptp(ramp[vac])), "leak_inside": float(np.ptp(in_region)), "steps": steps,
            "gamma": gamma}


#: A step smaller than this many σ gets no width or position (NaN).
_MIN_STEP_SIGMAS = 3.0


# --------------------------------------------------------------------------- public
@accepts_data("holograms", "references")
def bias_series(holograms, *, bias_v=None, log=None, references=None, voltage_kv=None, thickness_nm,
                vacuum=None, interfaces_nm=None, method="fourier", zero_bias=None, region=None, window_nm=None,
                model="erf", background="piecewise", interface_tilt_deg=None, order=1, sideband=None, aperture=None,
                workers=1, out=None, drift=None, min_good_fraction=0.5, frame_checks=True):
    """Reconstruct a hologram series recorded under changing bias: ΔV maps and interface steps per frame.

    Parameters
    ----------
    holograms : DataArray
        ``(time, y, x)`` off-axis holograms (``method="fourier"``) or
        ``(time, frame, y, x)`` phase-shifting groups, with a ``time``
        coordinate in s; numpy- or dask/Zarr-backed (read one time point at a
        time).
    bias_v : array_like, optional
        Bias of the right electrode (V; left grounded) per time point.
    log : Dataset or path, optional
        Bias log (``voltage`` on ``time`` in s, :func:`ionscope.io.read_log`),
        interpolated at the holograms' times; used when ``bias_v`` is not
        given (else the holograms' ``bias_v`` coordinate).
    references : DataArray, optional
        Vacuum references ``([time,] y, x)`` (or ``([time,] frame, y, x)``
        groups); each time point uses the reference nearest in time.
    voltage_kv : float, optional
        Accelerating voltage in kV (default: the holograms' ``beam_energy_kv``; a
        value that contradicts it is refused).
    thickness_nm : float or array_like
        Specimen thickness (nm): a scalar or a ``(y, x)`` map on the hologram grid.
    vacuum : ndarray of bool (y, x), optional
        Field-free vacuum (or shielded) region on the hologram grid where the
        leakage ramp is fitted; default :func:`vacuum_mask` of the zero-bias wave.
    interfaces_nm : sequence of float, optional
        x positions (nm) of the interfaces (they run along y); default the two
        strongest mean-inner-potential steps of the zero-bias phase. Any
        other clear boundary of the zero-bias phase (a gradient peak ≥ 30 % of
        the weakest interface's) gets a step of its own in the fit, so that a
        bias-induced change there is not read as background; it is not reported.
    method : {"fourier", "phase-shifting"}
    zero_bias : array_like of int, optional
        Time indices forming the zero-bias state; default the leading frames
        with zero bias (|V| < 1 mV) before the first biased one.
    region : ndarray of bool (y, x) or (float, float), optional
        Pixels (or a y range in nm) averaged into the profile across the
        interfaces; default: the specimen rows of full thickness (from the
        thickness map, or from the zero-bias amplitude).
    window_nm : float, optional
        Use only profile points within ±window_nm of an interface (default:
        the whole profile, less a margin at the field's edges: every point of
        a bulk region fixes its level, which is what the step is measured
        against; see :func:`fit_steps`).
    model : {"erf", "tanh"}
        Step model (see :func:`fit_steps`).
    background : {"piecewise", "linear", "constant"}
        Background under the steps, fitted jointly with them: ``"piecewise"``
        (default) is continuous with its own slope in each region between
        interfaces (the residue of the leakage field, a field in the bulk
        electrolyte); ``"linear"`` one slope; ``"constant"`` none.
    interface_tilt_deg : float, optional
        Angle of the interfaces from the y axis (degrees, positive: x grows with
        y); the profile then averages along the interfaces. Default: measured
        on the zero-bias phase (the position of each interface's mean inner
        potential step in blocks of rows, one common slope) and used when it
        moves an interface by ≥ ½ px across the rows averaged and is ≥ 3σ;
        ``0`` averages straight along y.
    order : {1, 2}
        Order of the leakage ramp fitted over the vacuum.
    sideband, aperture : optional
        As in :func:`reconstruct` (default: estimated from the first reference).
    workers : int
        Threads working on different time points (each FFT single-threaded when > 1).
        Besides them, one thread reads the next frames of a lazy (dask/Zarr)
        series and one writes the maps to ``out``, overlapping the work.
    out : path, optional
        Write the ``phase`` and ``potential`` maps to this Zarr store frame by
        frame (atomic) and return them lazily from it. Without it, maps of
        numpy input are returned in memory; of dask input, lazily (each access
        recomputes them).
    drift : {None, "auto"} or array_like (time, 2), optional
        Specimen drift relative to the field of view (see
        :mod:`ionscope.holography._drift`). ``None`` (default): the specimen is
        taken not to move. ``"auto"``: its displacement from the zero-bias
        state is measured in every time point (sub-pixel registration of the
        phase-gradient magnitude, which shows the mean-inner-potential edges)
        and the zero-bias wave ψ₀, the vacuum mask, the profile rows, the
        thickness map and the interface windows are moved onto it; the
        zero-bias frames are aligned before they are averaged. An array gives
        the specimen position (y, x) in nm per time point instead (only
        differences from the first zero-bias frame matter). Masks and maps
        passed in (``vacuum``, ``region``, ``thickness_nm``) describe the
        specimen at the first zero-bias frame. ``None`` is the default because
        the measurement is not free (measured at 1024² on a shared 2-core
        machine: +15–20 ms per frame, +30–55 %, for the Fourier method; up to
        +50 % for phase shifting) and a call without it stays as it was, bit
        for bit; the pipeline (``[holography] drift``) defaults to ``"auto"``. A frame
        whose drift cannot be measured (1σ above 0.2 wave samples) is left
        uncorrected with NaN and a warning; a specimen without edges to
        register on falls back to ``None`` with a warning.
    min_good_fraction : float
        Stop with an error when fewer than this fraction of the time points
        are usable (see ``frame_checks``).
    frame_checks : bool
        Check every time point (:mod:`ionscope.holography._checks`): a frame
        with NaN/Inf pixels, all zero, a mean intensity ≤ 0 or 10× off the
        zero-bias frames', a zero-bias frame that does not match the others
        (without drift correction), a step fit whose χ² is 10× off the frames
        so far, or one whose reconstruction fails is skipped — NaN maps and
        steps, ``frame_reason`` says why, a warning lists them. False: every
        frame is used (a bad one then raises or spoils the fits, as before).

    Returns
    -------
    Dataset
        ``phase`` (time, y, x), rad, Δφ relative to zero bias with the ramp
        removed; ``potential`` (time, y, x), V; per (time, interface)
        ``step_v``, ``step_v_std``, ``width_nm``, ``width_nm_std``,
        ``position_nm``, ``position_nm_std`` (NaN where |ΔV| < 3σ: no step, no
        width), ``slope_v_per_nm`` (the background's slope at the interface); per time
        ``bias_v``, ``asymmetry``, ``asymmetry_std`` ((|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|),
        positive = interface at the higher-potential electrode),
        ``positive_interface``, ``reference_index``, ``leakage_ramp``
        (time, term; rad per half field), ``leakage_pv_rad`` (fitted ramp,
        peak to valley over the vacuum), ``leakage_inside_rad`` (its projected
        contribution across the profile region, removed), ``leakage_removed_fraction``
        (1 − leakage left in the vacuum after removal, noise subtracted using
        the zero-bias frames), ``vacuum_rms_rad``; coords ``time``, ``y``, ``x``
        (the wave grid), ``interface``, ``interface_nm``; ``vacuum`` and
        ``region`` masks (zero-bias specimen position); ``drift_nm`` and
        ``drift_nm_std`` (time, axis ``y``, ``x``): the specimen's displacement
        from the first zero-bias frame and its 1σ (NaN where not measured;
        σ 0 for a given drift); ``position_nm`` is then where the interface is
        in the field of view (it follows the specimen), and the maps stay in
        the field-of-view frame (the specimen moves across them);
        ``frame_good`` and ``frame_reason`` (time): whether the time point was
        used, and why not ("" where it was); a step reported as NaN because
        its fitted σ was 0 or not finite is named there too.

    Raises
    ------
    DataValidationError
        No zero-bias frames, bad bias/log, no fringes, bad thickness.
    ShapeMismatchError
        References, masks or maps that do not match the holograms.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> ds.step_v.dims, bool(abs(ds.step_v[-1, 1] - truth.step_v[-1, 1]) < 0.1)
    (('time', 'interface'), True)

    A specimen drifting 0.05 nm/s along x (4.5 nm by the last frame), measured and followed:

    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)],
    ...                                             specimen_drift_nm_per_s=(0.0, 0.05), seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, drift="auto")
    >>> err = ds.step_v[-1, 1] - truth.step_v[-1, 1]
    >>> bool(abs(ds.drift_nm[-1, 1] - truth.drift_nm[-1, 1]) < 0.2), bool(abs(err) < 3 * ds.step_v_std[-1, 1])
    (True, True)
    """
    import xarray as xr

    # every option's type and range before anything is read (one line naming it)
    _checks.check_options(thickness_nm=thickness_nm, voltage_kv=voltage_kv, interfaces_nm=interfaces_nm,
                          window_nm=window_nm, model=model, background=background, order=order, workers=workers,
                          zero_bias=zero_bias, method=method, min_good_fraction=min_good_fraction)
    window = None if window_nm is None else float(window_nm)
    given_slope = None
    if interface_tilt_deg is not None:
        try:
            given_slope = math.tan(math.radians(float(interface_tilt_deg)))
        except (TypeError, ValueError):
            raise DataValidationError(f"interface_tilt_deg: expected an angle in degrees or None, "
                                      f"got {interface_tilt_deg!r}") from None
        if not (math.isfinite(given_slope) and abs(given_slope) < 1):
            raise DataValidationError(f"interface_tilt_deg: expected an angle within ±45°, got {interface_tilt_deg!r}")
    holo = _series_da(holograms, method)
    n_t = holo.sizes["time"]
    drift = _drift.parse_drift(drift, n_t)
    ny, nx = holo.sizes["y"], holo.sizes["x"]
    times = np.asarray(holo["time"].values, float) if "time" in holo.coords else np.arange(n_t, dtype=float)
    bias = _bias_per_frame(holo, bias_v, log, times)
    voltage_kv = acquisition_value(holo, "beam_energy_kv", voltage_kv, argument="voltage_kv", source="the holograms")
    try:
        _checks.check_options(thickness_nm=1.0, voltage_kv=voltage_kv)
    except DataValidationError as exc:
        raise DataValidationError(f"{exc} (the holograms' beam_energy_kv attribute)") from None
    c_e = interaction_constant(float(voltage_kv))
    refs, ref_times = _references(references, method, (ny, nx))
    fft_workers = None if workers == 1 else 1
    # zero-bias state
    if zero_bias is None:
        biased = np.flatnonzero(np.abs(bias) >= 1e-3)
        first = biased[0] if biased.size else n_t
        zero_idx = np.arange(first)
        if zero_idx.size == 0:
            raise DataValidationError("bias_v: the series starts biased; no zero-bias frames to refer ΔV to — "
                                      "record a few frames at 0 V first or pass zero_bias=[indices]")
    else:
        zero_idx = np.atleast_1d(np.asarray(zero_bias, int))
        if zero_idx.size == 0 or zero_idx.min() < 0 or zero_idx.max() >= n_t:
            raise DataValidationError(f"zero_bias: expected time indices in [0, {n_t}), got {zero_bias!r}")
    skipped: dict[int, str] = {}  # time index -> why it is not used (frame_checks)
    level = None
    if frame_checks:
        zero_idx, level = _checks.screen_zero_bias(holo, zero_idx, skipped)
    if sideband is not None:
        q = canonical_carrier(sideband)
    else:
        src = refs.isel(time=0) if refs is not None else holo.isel(time=int(zero_idx[0]))
        if method != "fourier":
            src = src.isel(frame=0)
        q = estimate_carrier_array(np.asarray(src.values), name="references" if refs is not None else "holograms")[:2]
    waves = _Waves(holo, refs, ref_times, times, method, q, aperture, fft_workers,
                   base_time=float(times[zero_idx[0]]))
    if frame_checks and drift is None and zero_idx.size >= 3:
        # (with drift correction the zero-bias frames are registered onto each other instead)
        zero_idx = _checks.coherent_zero_bias(waves, zero_idx, skipped)
    oy, ox = waves.out_shape
    y_holo = np.asarray(holo["y"].values, float) if "y" in holo.coords else np.arange(ny, dtype=float)
    x_holo = np.asarray(holo["x"].values, float) if "x" in holo.coords else np.arange(nx, dtype=float)
    y_w = y_holo[0] + (y_holo[-1] - y_holo[0]) / max(ny - 1, 1) * (ny / oy) * np.arange(oy)
    x_w = x_holo[0] + (x_holo[-1] - x_holo[0]) / max(nx - 1, 1) * (nx / ox) * np.arange(ox)

    w_first = waves(int(zero_idx[0]))
    if vacuum is not None:
        vm = np.asarray(getattr(vacuum, "values", vacuum))
        if vm.shape != (ny, nx) or vm.dtype != bool:
            raise ShapeMismatchError(f"vacuum: expected a boolean (y, x) = {(ny, nx)} mask on the hologram grid, "
                                     f"got {vm.dtype} {vm.shape}")
        vac = _resample_map(vm.astype(float), y_holo, x_holo, y_w, x_w) > 0.99
    else:
        small = min(oy, ox) < 128   # a cropped Fourier grid: a few px of margin are many nm
        mask_kw = dict(smooth_px=1.0 if small else max(2.0, min(oy, ox) / 256), border_px=2 if small else 3)
        vac = vacuum_mask(w_first, **mask_kw)
    if np.count_nonzero(vac) < 6 * order * 4:
        raise DataValidationError(f"vacuum: {np.count_nonzero(vac)} pixels on the wave grid; too few for a ramp fit")
    tracker = given = None
    if drift is None:
        psi0 = _zero_state(waves, zero_idx, vac)
    else:
        tracker, psi0, given = _drift_setup(drift, waves, zero_idx, vac, method, y_w, x_w)
    if vacuum is None and zero_idx.size > 1:
        # the mean of the zero-bias frames is less noisy than one frame: a cleaner mask
        vac = vacuum_mask(psi0, **mask_kw)
    # block size for the leakage statistics: coarse, but leaving ≥ 16 whole blocks of vacuum
    coarse_f = max(1, min(oy, ox) // 64)
    while coarse_f > 1 and np.count_nonzero(_block_mean(vac.astype(float), coarse_f) > 0.999) < 16:
        coarse_f //= 2

    # thickness on the wave grid, and the profile region
    t_in = np.asarray(getattr(thickness_nm, "values", thickness_nm), float)
    if t_in.ndim == 0:
        if not (math.isfinite(float(t_in)) and t_in > 0):
            raise DataValidationError(f"thickness_nm: expected a positive thickness in nm, got {thickness_nm!r}")
        t_map = np.full((oy, ox), float(t_in))
    else:
        if t_in.shape != (ny, nx) or not np.all(np.isfinite(t_in)):
            raise ShapeMismatchError(f"thickness_nm: expected a finite (y, x) = {(ny, nx)} map, got {t_in.shape}")
        t_map = _resample_map(t_in, y_holo, x_holo, y_w, x_w)
    if region is None:
        if t_in.ndim == 2:
            rowt = np.median(t_map, axis=1)
        else:
            amp = np.abs(psi0) / np.median(np.abs(psi0)[vac])
            rowt = np.median(-2 * np.log(np.clip(amp, 1e-6, None)), axis=1)   # t/λ per row (SCIENCE.md §4)
        if t_in.ndim == 2:
            region_rows = rowt >= 0.95 * np.max(rowt)
        else:
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
    t_map = np.where(t_map > 0.05 * np.max(t_map), t_map, np.nan)

    # interfaces: where the zero-bias phase (mean inner potential) steps
    from scipy import ndimage

    ph0 = _unwrap_kernel(psi0[None])[0]
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
    report = np.flatnonzero(reported)
    # the steps are fitted jointly over the whole profile (all of each bulk region sets
    # its level); window_nm restricts the points to ±window around the interfaces
    stops = np.concatenate([[x_w[0]], interfaces, [x_w[-1]]])
    gaps = np.minimum(np.diff(stops)[:-1], np.diff(stops)[1:])
    pitch = abs(float(x_w[1] - x_w[0])) if x_w.size > 1 else 1.0

    # interfaces that do not run exactly along y: average along them, not along y
    # (a 1° tilt over 400 nm of rows would widen every step by 7 nm)
    tilt_sd = 0.0
    if interface_tilt_deg is None:
        half = max(3, int(0.25 * float(np.min(gaps)) / pitch))
        slope, slope_sd = _interface_tilt(ph0, region_rows, (interfaces - x_w[0]) / pitch, half)
        rows_span = float(np.ptp(np.flatnonzero(region_rows)))
        # only when it matters (≥ ½ px across the region) and is measured (≥ 3σ)
        if not (abs(slope) * rows_span >= 0.5 and abs(slope) >= 3 * slope_sd):
            slope, slope_sd = 0.0, slope_sd
        tilt_sd = math.degrees(slope_sd) if math.isfinite(slope_sd) else float("nan")
    else:
        slope = given_slope
    shear = _shear_plan(region_rows, ox, slope) if slope != 0 else None
    tilt_deg = math.degrees(math.atan(slope))
    # a step much wider than a space-charge layer is a slope; the bound keeps the fit local
    max_width = float(min(0.45 * np.min(gaps), 40.0))
    if window is not None:
        max_width = min(max_width, window)
    # the ringing edge of a Fourier reconstruction (and any drift margin) is not specimen
    margin = max(3 * pitch, 0.02 * abs(float(x_w[-1] - x_w[0])))

    design = _plane_design(oy, ox, order)
    kern_kw = dict(vac=vac, region_rows=region_rows, design=design, t_map=t_map, c_e=c_e, x_nm=x_w,
                   interfaces=interfaces, window=window, model=model, background=background, max_width=max_width,
                   margin=margin, shear=shear, coarse_f=coarse_f)

    def one(item):
        k, frame = item
        if k in skipped:
            return _checks.skipped_result(skipped[k], (oy, ox), design.shape[-1])
        if not frame_checks:
            return _one(k, frame)
        frame = np.asarray(holo.isel(time=k).values) if frame is None else frame
        why = _checks.check_hologram(frame, level=level)
        if why is None:
            try:
                return _one(k, frame)
            except (ValueError, ArithmeticError, IndexError, np.linalg.LinAlgError) as exc:
                # one frame's failure (e.g. "zero-size array" of a frame moved off the field) skips that frame
                text = str(exc).splitlines()[0][:160] if str(exc) else ""
                why = f"reconstruction failed ({type(exc).__name__}: {text})"
        return _checks.skipped_result(why, (oy, ox), design.shape[-1])

    def _one(k, frame):
        if tracker is None:
            return _frame_kernel(waves(k, frame), psi0, **kern_kw)
        # the specimen drifts: ψ₀ and the masks follow it into this frame (_drift.py says why not the reverse)
        wave = waves(k, frame)
        psi_k, kw_k, d = tracker.frame(wave, psi0, kern_kw, None if given is None else given[k])
        if shear is not None and kw_k["region_rows"] is not region_rows:
            # tilted interfaces: a y drift moves them along x too, and the rows averaged changed
            rows_k = np.flatnonzero(kw_k["region_rows"])
            dy = float(np.nan_to_num(d[0][0])) / tracker.spacing[0]
            off = slope * (rows_k.mean() - np.flatnonzero(region_rows).mean() - dy) * pitch
            kw_k = {**kw_k, "shear": _shear_plan(kw_k["region_rows"], ox, slope),
                    "interfaces": kw_k["interfaces"] + off}
        return {**_frame_kernel(wave, psi_k, **kw_k), "drift": d}

    # Frames are read, and maps written, a few time points at a time: one
    # dask/Zarr round trip costs ~10–30 ms, as much as a 1k² reconstruction.
    # The batch is bounded (≤ 16 MiB of holograms — one 2k² frame —, ≤ 8 time points).
    frame_bytes = int(np.prod([holo.sizes[d] for d in holo.dims if d != "time"])) * holo.dtype.itemsize
    batch = int(max(1, min(8, (16 << 20) // max(frame_bytes, 1))))

    def frames():
        # a lazy store's next block is read while this one is processed (see _read_ahead)
        blocks = _time_blocks(holo, batch)
        for start, block in (_read_ahead(blocks) if holo.chunks is not None else blocks):
            for j in range(block.shape[0]):
                yield start + j, block[j]

    lazy_input = holo.chunks is not None
    n_if = report.size
    scal = {k: np.full((n_t, n_if), np.nan) for k in ("step_v", "step_v_std", "width_nm", "width_nm_std",
                                                     "position_nm", "position_nm_std", "slope_v_per_nm")}
    per_t = {k: np.full(n_t, np.nan) for k in ("leak_rms", "resid_rms", "leak_pv", "leak_inside", "vac_rms")}
    coefs = np.full((n_t, design.shape[-1]), np.nan)
    drift_nm, drift_sd = np.full((n_t, 2), np.nan), np.full((n_t, 2), np.nan)
    step_fits = [None] * n_t
    gammas = []
    keep_maps = out is None and not lazy_input
    maps = {"phase": [], "potential": []}

    def collect(k, r):
        coefs[k] = r["coef"]
        if "drift" in r:
            drift_nm[k], drift_sd[k] = r["drift"]
        for key in per_t:
            per_t[key][k] = r[key]
        step_fits[k] = r["steps"]
        if r["gamma"] is not None:
            gammas.append(r["gamma"])

    writer = None
    if out is not None:
        import dask.array as dsa

        from ionscope.io import ZarrSeriesWriter

        tmpl = xr.DataArray(dsa.zeros((n_t, 2, oy, ox), dtype=np.float32, chunks=-1),
                            dims=("time", "component", "y", "x"),
                            coords={"time": times, "component": ["phase", "potential"], "y": y_w, "x": x_w},
                            name="maps")
        writer = _WriteBehind(ZarrSeriesWriter(out, tmpl, chunks={"time": 1}))
        writer.__enter__()
    try:
        if workers == 1:
            results = (one(item) for item in frames())
        else:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(workers)
            results = _bounded_map(pool, one, frames(), 2 * workers)
        pending, first = [], 0
        judge = _checks.FitJudge((oy, ox), design.shape[-1]) if frame_checks else None
        for k, r in _checks.judged(results, judge):
            if "bad" in r:
                skipped[k] = r["bad"]
                _checks.enough_good(skipped, n_t, min_good_fraction, times)
            collect(k, r)
            if writer is not None:
                pending.append(np.stack([r["phase"], r["potential"]]))
                if len(pending) == batch or k == n_t - 1:
                    writer.write({"time": slice(first, k + 1)}, np.stack(pending))
                    pending, first = [], k + 1
            elif keep_maps:
                maps["phase"].append(r["phase"])
                maps["potential"].append(r["potential"])
        if workers > 1:
            pool.shutdown()
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if writer is not None:
        writer.__exit__(None, None, None)
    if tracker is not None and given is None:
        _drift.warn_failed(int(np.count_nonzero(np.isnan(drift_nm[:, 0] if not skipped else np.delete(
            drift_nm[:, 0], sorted(skipped))))), n_t)
    if skipped:
        listed = "; ".join(f"{k} (t = {times[k]:g} s): {why}" for k, why in sorted(skipped.items())[:3])
        warnings.warn(f"bias_series: {len(skipped)} of {n_t} time points skipped (NaN maps and steps; "
                      f"frame_reason says why): {listed}" + (" ..." if len(skipped) > 3 else ""),
                      RuntimeWarning, stacklevel=2)

    # maps
    if out is not None:
        from ionscope.io import load

        stored = load(out)
        phase_map = stored.sel(component="phase", drop=True)
        pot_map = stored.sel(component="potential", drop=True)
        phase_map, pot_map = phase_map.data, pot_map.data
    elif keep_maps:
        phase_map, pot_map = np.stack(maps["phase"]), np.stack(maps["potential"])
    else:
        import dask
        import dask.array as dsa

        def lazy_one(k):
            return _checks.skipped_result(skipped[k], (oy, ox), design.shape[-1]) if k in skipped else one((k, None))

        delayed = [dask.delayed(lazy_one)(k) for k in range(n_t)]
        phase_map = dsa.stack([dsa.from_delayed(dask.delayed(lambda r: r["phase"])(d), (oy, ox), np.float32)
                               for d in delayed])
        pot_map = dsa.stack([dsa.from_delayed(dask.delayed(lambda r: r["potential"])(d), (oy, ox), np.float32)
                             for d in delayed])

    # errors: the noise's correlation along the profile is the same in every frame
    # (same optics, same zero-bias state, same reconstruction), so it is pooled over
    # frames — one frame's realisation alone gives a noisy correlation length
    if gammas:
        gamma = np.mean(np.stack(gammas), axis=0)
        for st in step_fits:
            if st is not None:
                apply_errors(st, recompute_errors(st, gamma))
    for st in step_fits:
        if st is not None and st.fits and len(st.fits) != n_if:
            # nuisance steps at other boundaries were fitted too: keep the interfaces asked for
            st.fits = [st.fits[i] for i in report]
            st.step_cov = st.step_cov[np.ix_(report, report)]
    floor = _checks.sigma_floor(step_fits, n_if)
    degenerate: dict[int, list] = {}
    for k, st in enumerate(step_fits):
        if st is None:
            continue
        for i, f in enumerate(st.fits):
            if not (np.isfinite(f.step_err) and f.step_err > floor[i]):
                # σ = 0, NaN or ~0 (a profile without noise: the zero-bias reference itself, no signal):
                # nothing measured there; never "0 ± 0 V"
                degenerate.setdefault(k, []).append(i)
                continue
            scal["step_v"][k, i], scal["step_v_std"][k, i] = f.step, f.step_err
            scal["slope_v_per_nm"][k, i] = f.slope
            # a step that is not there has no width or position (the fit leaves them
            # free and their σ meaningless): NaN, not a number that looks measured
            if abs(f.step) >= _MIN_STEP_SIGMAS * f.step_err:
                scal["width_nm"][k, i], scal["width_nm_std"][k, i] = f.width, f.width_err
                scal["position_nm"][k, i], scal["position_nm_std"][k, i] = f.center, f.center_err

    reasons = np.array([skipped.get(k, "") for k in range(n_t)], dtype=object)
    if degenerate:
        for k, which in degenerate.items():
            step_fits[k] = None  # no asymmetry from a step that was not measured
            reasons[k] = "; ".join(r for r in (reasons[k], f"step at interface(s) {which} not measured: the fit's σ "
                                                            f"is 0, not finite or < 1e-3 × the series' median (no "
                                                            f"signal, or the zero-bias reference itself); reported "
                                                            f"as NaN") if r)
        warnings.warn(f"bias_series: {len(degenerate)} time point(s) have a step fit with σ = 0, NaN or ~0 (no "
                      f"signal), reported as NaN (frame_reason says which): time indices {sorted(degenerate)[:10]}",
                      RuntimeWarning, stacklevel=2)

    # asymmetry (two interfaces): positive = the interface at the higher-potential electrode
    asym = np.full(n_t, np.nan)
    asym_sd = np.full(n_t, np.nan)
    pos_if = np.full(n_t, -1)
    if n_if == 2:
        for k in range(n_t):
            st = step_fits[k]
            if st is None:
                continue
            d = np.array([f.step for f in st.fits])
            total = bias[k] if abs(bias[k]) >= 1e-3 else d[0] + d[1]
            p = 1 if total >= 0 else 0
            pos_if[k] = p
            a_, b_ = abs(d[p]), abs(d[1 - p])
            tot = a_ + b_
            if tot == 0:
                continue
            asym[k] = (a_ - b_) / tot
            # the two steps share the electrolyte's level: their errors are correlated
            grad = np.zeros(2)
            grad[p] = np.sign(d[p]) * 2 * b_ / tot ** 2
            grad[1 - p] = -np.sign(d[1 - p]) * 2 * a_ / tot ** 2
            asym_sd[k] = math.sqrt(max(float(grad @ st.step_cov @ grad), 0.0))

    # leakage: fraction removed, noise floor from the zero-bias frames (no leakage there)
    # a zero-bias frame is 1/n₀ of ψ₀ and shares that part of its noise with it:
    # var(Δφ) = σ²(1 − 1/n₀) there against σ²(1 + 1/n₀) in every other frame
    n0 = zero_idx.size
    z_rms = per_t["resid_rms"][zero_idx]
    noise2 = float(np.mean(z_rms[np.isfinite(z_rms)] ** 2)) if np.isfinite(z_rms).any() else float("nan")
    noise2 = noise2 * (1 + 1 / n0) / (1 - 1 / n0) if n0 > 1 else noise2
    with np.errstate(invalid="ignore", divide="ignore"):
        before = np.sqrt(np.clip(per_t["leak_rms"] ** 2 - noise2, 0, None))
        left = np.sqrt(np.clip(per_t["resid_rms"] ** 2 - noise2, 0, None))
        # only where the leakage stands clear of the noise (≥ √3 × the noise level)
        removed = np.where(per_t["leak_rms"] ** 2 >= 4 * noise2, 1 - left / before, np.nan)

    iface = np.arange(n_if)
    ds = xr.Dataset(
        {"phase": (("time", "y", "x"), phase_map, {"units": "rad",
                                                   "long_name": "phase change from zero bias, leakage ramp removed"}),
         "potential": (("time", "y", "x"), pot_map, {"units": "V", "long_name": "potential change from zero bias"}),
         **{k: (("time", "interface"), v, {"units": "nm" if "nm" in k and "per" not in k else
                                           ("V/nm" if "per_nm" in k else "V")}) for k, v in scal.items()},
         "bias_v": ("time", bias, {"units": "V"}),
         "asymmetry": ("time", asym, {"long_name": "(|dV+| - |dV-|)/(|dV+| + |dV-|)"}),
         "asymmetry_std": ("time", asym_sd),
         "positive_interface": ("time", pos_if),
         "reference_index": ("time", waves.nearest.copy()),
         "leakage_ramp": (("time", "term"), coefs, {"units": "rad", "long_name": "ramp over the field, per half field"}),
         "leakage_pv_rad": ("time", per_t["leak_pv"], {"units": "rad"}),
         "leakage_inside_rad": ("time", per_t["leak_inside"], {"units": "rad"}),
         "leakage_removed_fraction": ("time", removed),
         "vacuum_rms_rad": ("time", per_t["vac_rms"], {"units": "rad"}),
         "drift_nm": (("time", "axis"), drift_nm, {"units": "nm", "long_name": "specimen drift from zero bias"}),
         "drift_nm_std": (("time", "axis"), drift_sd, {"units": "nm"}),
         "frame_good": ("time", np.array([k not in skipped for k in range(n_t)], bool),
                        {"long_name": "time point used (frame checks passed)"}),
         "frame_reason": ("time", reasons.astype(str), {"long_name": "why the time point (or a step) is NaN"}),
         "vacuum": (("y", "x"), vac), "region": (("y", "x"), np.broadcast_to(region_rows[:, None], (oy, ox)).copy())},
        coords={"time": ("time", times, {"units": "s"}), "y": ("y", y_w, {"units": "nm"}),
                "x": ("x", x_w, {"units": "nm"}), "interface": ("interface", iface),
                "interface_nm": ("interface", interfaces[report], {"units": "nm"}), "term": _RAMP_TERMS[order],
                "axis": ["y", "x"]})
    ds.attrs = {"method": method, "voltage_kv": float(voltage_kv), "interaction_constant_rad_per_v_nm": c_e,
                "carrier_cycles_per_px": [float(q[0]), float(q[1])], "zero_bias_frames": [int(i) for i in zero_idx],
                "window_nm": "all" if window is None else window, "background": background, "model": model,
                "max_width_nm": max_width, "margin_nm": margin, "ramp_order": order,
                "interface_tilt_deg": tilt_deg, "interface_tilt_deg_std": tilt_sd,
                "drift": "none" if tracker is None else ("given" if given is not None else "auto"),
                "bias_convention": "bias_v = potential of the right (larger-x) electrode, left grounded"}
    return ds


def _time_blocks(holo, batch):
    """``(start, numpy block)`` along the first dim of ``holo``, at most ``batch`` time points at a time.

    A dask array is computed here, synchronously: the frames are already the
    unit of parallel work, and dask's thread pool adds ~4× the read time of a
    1k² frame (measured). When its chunks hold whole frames (one chunk across
    the other axes, as in a Zarr series of one frame per chunk), each chunk's
    own task is run (``dask.get`` on the graph, materialised once) instead of
    slicing and computing, which optimises a graph, schedules it and copies
    the result: measured 19.5 → 10.9 ms of CPU per 2048² float32 frame.
    """
    n_t = holo.shape[0]
    chunks = holo.chunks   # None unless dask-backed (holo.data of a lazy backend array would load it all)
    if chunks is not None and all(len(c) == 1 for c in chunks[1:]) and max(chunks[0]) <= batch:
        import dask

        data = holo.data
        graph = dict(data.__dask_graph__())
        keys = []
        for k in data.__dask_keys__():
            while isinstance(k, list):
                k = k[0]
            keys.append(k)
        bounds = np.cumsum((0,) + tuple(chunks[0]))
        i = 0
        while i < len(keys):
            j = i + 1
            while j < len(keys) and bounds[j + 1] - bounds[i] <= batch:
                j += 1
            parts = [np.asarray(dask.get(graph, key)) for key in keys[i:j]]
            yield int(bounds[i]), parts[0] if len(parts) == 1 else np.concatenate(parts)
            i = j
        return
    for start in range(0, n_t, batch):
        block = holo[start:start + batch].data
        if hasattr(block, "compute"):
            block = block.compute(scheduler="synchronous")
        yield start, np.asarray(block)


class _WriteBehind:
    """A :class:`~ionscope.io.ZarrSeriesWriter` that writes each block in a thread while the caller goes on.

    Compressing and storing a frame's maps (~5 ms at 2 × 400²) overlaps the
    next frame's reconstruction. Blocks are written in order, one in flight; a
    failed write raises at the next :meth:`write` or on exit (which then
    removes the half-written store, as the plain writer does).
    """

    def __init__(self, writer):
        self._writer, self._pool, self._last = writer, None, None

    def __enter__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._writer.__enter__()
        self._pool = ThreadPoolExecutor(1)
        return self

    def write(self, region, block):
        if self._last is not None:
            self._last.result()
        self._last = self._pool.submit(self._writer.write, region, block)

    def __exit__(self, *exc):
        failed = None
        try:
            if self._last is not None:
                self._last.result()
        except BaseException as err:
            failed = err
        finally:
            self._last = None
            self._pool.shutdown()
        if exc[0] is None and failed is not None:
            self._writer.__exit__(type(failed), failed, failed.__traceback__)
            raise failed
        return self._writer.__exit__(*exc)


def _read_ahead(items):
    """Yield from the iterator ``items``, producing the next item in a thread while the caller works.

    Reading a 2048² float32 frame from a compressed Zarr store costs ~15 ms,
    mostly in Zarr's and Blosc's own threads (I/O, decompression) that release
    the GIL: overlapped with the reconstruction it is mostly hidden (measured
    cycle per frame, 2 cores: see BENCHMARKS.md, issue 12). One item ahead:
    at most one extra block (≤ 16 MiB) in memory.
    """
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(next, items, done)
        while True:
            item = ahead.result()
            if item is done:
                return
            ahead = pool.submit(next, items, done)
            yield item


def _bounded_map(pool, fn, items, depth):
    """Ordered map over a thread pool with at most ``depth`` results in flight (bounded memory)."""
    from collections import deque

    pending = deque()
    for it in items:
        pending.append(pool.submit(fn, it))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
