# SPDX-License-Identifier: GPL-3.0-or-later
"""Specimen drift in a hologram series under bias: measure it per time point, follow it with ψ₀ and the masks.

:func:`ionscope.holography.bias_series` refers each time point's wave ψ_t to
the zero-bias state ψ₀ (Δφ = arg ψ_t·ψ₀*). If the specimen moves by d between
the two, every mean-inner-potential (MIP) edge leaves a dipole
∂φ_MIP/∂r·d in Δφ — a 2.6 rad MIP step at a Cu | electrolyte interface moved
by a few nm is a band of several volts of "potential" — which swamps the
bias-induced steps of ~1 V. This module

* **measures** d per time point by registering a feature image of ψ_t on that
  of ψ₀: the magnitude of the phase gradient, |∇φ|, from wrap-free central
  differences arg(ψ(r + e)·ψ(r − e)*)/2 of the (lightly smoothed) wave. It
  shows the MIP edges (interfaces, vacuum edge) strongly, where the
  amplitude hardly changes, and it is blind to what the bias does that is
  *not* a displacement: a constant or smooth (leakage) phase only adds a
  constant gradient, and the bias-induced step at an interface is centred on
  the MIP edge there, so the ridge of |∇φ| changes height but stays
  symmetric about the edge and does not pull the registration. Measured on
  the simulator (256², 1 nm/px, 1000 counts/px, 6 nm drift under ±1.5 V):
  registering the amplitude failed by > 10 nm, the complex wave itself was
  off by 0.3–0.4 nm (the bias-induced phase pulls it), |∇φ| 0.01–0.03 nm
  RMS. The registration is a least-squares (Gauss–Newton, inverse
  compositional) fit f(r) = α + β·ref(r − d) over the interior, started from
  an upsampled cross-correlation (:func:`skimage.registration.phase_cross_correlation`);
  the border, where a Fourier reconstruction rings in the field-of-view frame,
  is left out (:data:`BORDER_FRACTION`, as in :mod:`~ionscope.holography._register`,
  whose :func:`~ionscope.holography._register.upsample` and
  :func:`~ionscope.holography._register.border_taper` are reused).
* **follows** the specimen: ψ₀ is moved onto each frame's specimen position
  (not the frame onto ψ₀). The leakage field and the field-of-view frame
  (biprism, camera, the ramp fitted over the vacuum) stay where they are in
  ψ_t, and ψ₀ — recorded at zero bias — holds no leakage field to be moved
  with it; the distortions of the biprism and lenses have been divided out of
  both by their vacuum references before, so only what is left of them after
  that division (smooth, small) moves with ψ₀. The vacuum mask, the profile
  rows, the thickness map and the interface positions move with the specimen
  and are intersected with their zero-bias selves (only pixels valid in both
  states are used), with a border strip as wide as the drift left out.

The shift of ψ₀ is a cubic-spline interpolation of its real and imaginary
parts (not a Fourier shift): measured through ``bias_series`` with the true
drift given (256², Fourier method, 6 nm drift), ΔV RMS 0.021 V with the
spline, 0.025 V with a periodic Fourier shift (it wraps the ringing of the
field's non-periodic borders round) and 0.026 V with a Fourier shift of a
mirror-padded wave; for phase-shifting waves the spline and the Fourier shift
left equal residuals. What remained (0.021 V against 0.015 V without drift)
came from the ends of the profile, where ψ₀ moved by the drift has no data
and the border ringing of a Fourier reconstruction, fixed in the field of
view, no longer cancels: the joint step fit's margin is widened by the drift
plus one sample (0.017 V).

References
----------
S. Baker and I. Matthews, Int. J. Comput. Vis. 56 (2004) 221, doi:10.1023/B:VISI.0000011205.11775.fd
(inverse-compositional image alignment).
M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, Opt. Lett. 33 (2008) 156, doi:10.1364/OL.33.000156.
K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339 (bias series).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ._register import border_taper

#: Fourier-method wave grids with a side below this are upsampled 2× for the registration.
UPSAMPLE_BELOW = 128

#: Largest 1σ (samples of the registration grid) of a drift that is applied; beyond it the
#: frame is left uncorrected and its drift reported as NaN (and a specimen whose zero-bias
#: frames cannot be registered is not corrected at all). Measured on simulated nights at
#: 50–1000 counts/px, 256²–1024²: ≤ 0.05 with mean-inner-potential edges, 0.27–1.3 for a
#: specimen without any (MIP and built-in steps 0: noise registered onto noise).
MAX_SIGMA_SAMPLES = 0.2

#: Largest side (feature samples) of the registration grid: larger waves are smoothed and
#: block-averaged down to it (a 1024² phase-shifting wave: 4×; measured as precise, 10× cheaper).
REG_SIDE = 256

#: Fraction of each side left out of the registration at every border (plus the drift),
#: as in :data:`ionscope.holography._register.BORDER_FRACTION`.
BORDER_FRACTION = 0.1


def _shift_complex(w, d, *, order=3):
    """Move a complex image by +d samples (content at r goes to r + d), cubic spline, edges extended."""
    from scipy import ndimage

    if not np.any(d):
        return w
    re = ndimage.shift(np.asarray(w.real, np.float64), d, order=order, mode="nearest")
    im = ndimage.shift(np.asarray(w.imag, np.float64), d, order=order, mode="nearest")
    return (re + 1j * im).astype(w.dtype)


def _shift_mask(mask, d):
    """A boolean mask moved by +d samples, conservatively: True where every neighbouring whole shift is."""
    out = np.ones(mask.shape, bool)
    for dy in {math.floor(d[0]), math.ceil(d[0])}:
        for dx in {math.floor(d[1]), math.ceil(d[1])}:
            moved = np.zeros(mask.shape, bool)
            ny, nx = mask.shape
            ys, yd = (slice(0, ny - dy), slice(dy, ny)) if dy >= 0 else (slice(-dy, ny), slice(0, ny + dy))
            xs, xd = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
            moved[yd, xd] = mask[ys, xs]
            out &= moved
    return out


#: Most Gauss–Newton iterations per registration (it converges in 2–5 from the correlation's start).
_MAX_ITER = 20


def _correlation_factor(resid, lags):
    """√ of the variance inflation of a least-squares estimate from correlated residuals.

    The sum of the residuals' normalised 2-D autocorrelation over lags up to
    ``lags`` samples (the smoothing and upsampling correlate neighbouring
    feature samples; an AR(1) model overstates a Gaussian correlation ~2×).
    """
    from scipy import fft

    r = resid - resid.mean()
    ny, nx = r.shape
    # zero padding by the lags is enough: only |lag| ≤ lags is summed
    shape = (ny + lags + 1, nx + lags + 1)
    acf = fft.irfft2(np.abs(fft.rfft2(r, s=shape)) ** 2, s=shape)
    if not acf[0, 0] > 0:
        return 1.0
    acf = acf / acf[0, 0]
    iy = np.r_[0:lags + 1, -lags:0]
    total = float(np.sum(acf[np.ix_(iy, iy)]))
    return math.sqrt(max(total, 1.0))


def gradient_features(wave, *, upsample_factor=1, smooth=0.0, decimate=1):
    """Feature image for registration: |∇φ| of a complex wave (rad per sample), median-subtracted.

    The wave is upsampled ``upsample_factor``× (zero-padding its spectrum) or
    averaged over ``decimate``² blocks, Gaussian-smoothed by ``smooth``
    samples of the original grid (the complex wave: its noise would otherwise
    put a floor under |∇φ| that differs between a single frame and the
    averaged ψ₀, and steps with the amplitude at the vacuum edge; give
    ``smooth`` ≥ ``decimate`` so that the coarse grid is well sampled), and
    differentiated by wrap-free central differences arg(ψ(r + e)·ψ(r − e)*)/2.
    """
    from scipy import ndimage

    from ._register import upsample

    w = np.asarray(wave, np.complex128)
    if upsample_factor > 1:
        w = upsample(w, upsample_factor)
    if decimate > 1:
        # the complex mean over blocks first: smoothing on the coarse grid is decimate² cheaper
        ny, nx = (w.shape[0] // decimate) * decimate, (w.shape[1] // decimate) * decimate
        w = w[:ny, :nx].reshape(ny // decimate, decimate, nx // decimate, decimate).mean(axis=(1, 3))
    s = smooth * upsample_factor / decimate
    if s > 0:
        w = ndimage.gaussian_filter(w.real, s) + 1j * ndimage.gaussian_filter(w.imag, s)
    gy = np.angle(w[2:, 1:-1] * np.conj(w[:-2, 1:-1])) / 2
    gx = np.angle(w[1:-1, 2:] * np.conj(w[1:-1, :-2])) / 2
    m = np.pad(np.hypot(gy, gx), 1, mode="edge")
    return m - np.median(m)


class SpecimenDrift:
    """The specimen's position per time point relative to the zero-bias state, and the frame's view of ψ₀.

    Parameters
    ----------
    spacing : (float, float)
        Wave-grid spacing (y, x) in nm (or px of the holograms).
    shape : (int, int)
        Wave-grid shape.
    method : {"fourier", "phase-shifting"}
        How the waves were reconstructed (sets the feature image's sampling and smoothing).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> yy, xx = np.mgrid[:96, :96]
    >>> phase = 2.0 * (xx > 40) + 3.0 * (yy > 30)                    # two edges
    >>> wave = np.exp(1j * ndimage.gaussian_filter(phase.astype(float), 1.5))
    >>> moved = np.exp(1j * ndimage.shift(ndimage.gaussian_filter(phase.astype(float), 1.5), (0.4, 1.7)))
    >>> tracker = SpecimenDrift(spacing=(1.0, 1.0), shape=(96, 96), method="phase-shifting")
    >>> tracker.set_reference(wave)
    >>> d, sd = tracker.measure(moved)
    >>> np.round(d, 1)
    array([0.4, 1.7])
    """

    def __init__(self, *, spacing, shape, method):
        self.spacing = np.asarray(spacing, float)
        self.shape = tuple(shape)
        if method == "fourier":
            # Sampled at the aperture's bandwidth, |∇φ| aliases and a sub-sample shift locks to
            # the grid (measured x errors 0.14–0.19 nm RMS with neither of the remedies below).
            # A small grid is upsampled 2× and smoothed by half a wave sample (cheap; at 54²
            # more smoothing spoils y: its only y-structure, the vacuum edge, lies near the
            # border); a larger one is only smoothed, by 1.5 samples, which takes the band
            # above a quarter cycle/sample away (as precise at 210² as upsampling, 4× cheaper).
            if min(self.shape) < UPSAMPLE_BELOW:
                self.up, self.smooth = 2, 0.5
            else:
                self.up, self.smooth = 1, 1.5
        else:
            # full-bandwidth, noisy phase-shifting waves: without smoothing the noise floor of
            # |∇φ| steps with the amplitude at the vacuum edge (measured y errors 0.3 nm → 0.03)
            self.up, self.smooth = 1, 2.0
        # a large grid is smoothed at least as much as it is then decimated, to ≤ REG_SIDE
        # samples a side (cost; the edges stay several samples wide)
        self.dec = max(1, int(min(self.shape) * self.up // REG_SIDE))
        if self.dec > 1:
            self.smooth = max(self.smooth, float(self.dec))
        # feature sample in wave samples; lags over which feature noise is correlated
        self.step = self.dec / self.up
        self.lags = int(math.ceil(3 * self.smooth * self.up / self.dec)) + self.up
        self._coef = None
        self.ref = None

    def features(self, wave):
        return gradient_features(wave, upsample_factor=self.up, smooth=self.smooth, decimate=self.dec)

    # ------------------------------------------------------------------ measuring
    def set_reference(self, wave):
        """Register every later wave on this one (the zero-bias state ψ₀)."""
        f = self.features(wave)
        ny, nx = f.shape
        self.ref = f
        self.margin = max(3, int(round(BORDER_FRACTION * min(ny, nx))))
        self.taper = border_taper((ny, nx), 0.5 * BORDER_FRACTION)
        self._designs = {}
        self._design(self.margin)
        from scipy import fft

        inner = f[self.margin:ny - self.margin, self.margin:nx - self.margin]
        self._ref_spec = np.conj(fft.rfft2(inner - inner.mean()))

    def _start(self, inner):
        """Displacement (samples) at the peak of the cross-correlation of the interiors, parabola-refined.

        c(s) = Σ ref(r)·f(r + s) peaks at the displacement; a parabola through
        the peak and its neighbours along each axis puts it within ~0.1 sample,
        from where the Gauss–Newton fit converges in two or three steps.
        """
        from scipy import fft

        c = fft.irfft2(self._ref_spec * fft.rfft2(inner - inner.mean()), s=inner.shape)
        peak = np.unravel_index(int(np.argmax(c)), c.shape)
        d = np.zeros(2)
        for ax in (0, 1):
            n = c.shape[ax]
            i = peak[ax]
            lo, hi = list(peak), list(peak)
            lo[ax], hi[ax] = (i - 1) % n, (i + 1) % n
            a, b, e = c[tuple(lo)], c[peak], c[tuple(hi)]
            den = a - 2 * b + e
            frac = 0.5 * (a - e) / den if den < 0 else 0.0
            # whole samples beyond half the field are negative displacements (periodic correlation)
            d[ax] = (i if i <= n // 2 else i - n) + float(np.clip(frac, -0.5, 0.5))
        return d

    def _design(self, m):
        """Least-squares design [1, ref, ∂ref/∂y, ∂ref/∂x] over the interior (margin m), cached per margin."""
        got = self._designs.get(m)
        if got is None:
            inner = (slice(m, self.ref.shape[0] - m), slice(m, self.ref.shape[1] - m))
            gy, gx = np.gradient(self.ref)
            a = np.stack([np.ones(self.ref[inner].size), self.ref[inner].ravel(), gy[inner].ravel(),
                          gx[inner].ravel()], axis=1)
            ata = a.T @ a
            if not np.linalg.cond(ata[2:, 2:]) < 1e8:
                raise DataValidationError("drift: the zero-bias wave has no edges along y or x to register on "
                                          "(no mean-inner-potential structure); pass drift=None or the drift itself")
            got = (inner, a, np.linalg.inv(ata))
            self._designs[m] = got
        return got

    def measure(self, wave):
        """Displacement (dy, dx) of the specimen in ``wave`` relative to the reference, and its 1σ, in nm.

        Inverse-compositional Gauss–Newton on the feature images: the frame's
        features f satisfy f(r) = α + β·ref(r − D); with the current estimate
        d, f(r + d) ≈ α + β·ref + β·∇ref·(d − D) is linear in (α, β, β(d − D))
        with a design fixed by the reference (its gradients computed once), so
        each iteration costs one Fourier shift of f. The start (within ~0.1
        sample) is the peak of an upsampled cross-correlation of the interiors.
        """
        from scipy import fft

        if self.ref is None:
            raise RuntimeError("set_reference first")
        f = self.features(wave)
        ny, nx = f.shape
        base = (slice(self.margin, ny - self.margin), slice(self.margin, nx - self.margin))
        d = self._start(f[base])
        m = self.margin + int(math.ceil(np.max(np.abs(d)))) + 2
        if 2 * m + 8 > min(ny, nx):
            raise DataValidationError(f"drift: a displacement of ~{np.max(np.abs(d)) * self.step:.0f} wave "
                                      "samples is too large for the field of view")
        inner, a, inv = self._design(m)
        # f(r + d) by an exact Fourier shift of f faded out over the outer half of the margin:
        # the fade moves by d but stays outside the interior; 4–5× cheaper than a spline shift
        spec = fft.rfft2(f * self.taper)
        ky = fft.fftfreq(ny)[:, None]
        kx = fft.rfftfreq(nx)[None, :]
        for _ in range(_MAX_ITER):
            ramp = np.exp(2j * np.pi * ky * d[0]) * np.exp(2j * np.pi * kx * d[1])
            g = fft.irfft2(spec * ramp, s=(ny, nx))[inner].ravel()
            c = inv @ (a.T @ g)
            if not abs(c[1]) > 0:
                raise DataValidationError("drift: the frame's features do not match the zero-bias state's")
            step = -c[2:] / c[1]
            d = d + step
            if np.max(np.abs(step)) < 2e-3:
                break
            if np.max(np.abs(d)) > m - 2:
                raise DataValidationError("drift: the registration ran off the field (no consistent displacement)")
        resid = (g - a @ c).reshape(inner[0].stop - inner[0].start, inner[1].stop - inner[1].start)
        noise = float(np.sum(resid ** 2)) / max(resid.size - 4, 1)
        sigma = np.sqrt(noise * np.clip(np.diag(inv)[2:], 0, None)) / abs(c[1]) * _correlation_factor(resid, self.lags)
        if not np.all(sigma <= MAX_SIGMA_SAMPLES):
            raise DataValidationError(f"drift: too uncertain to apply ({np.max(sigma):.2f} samples 1σ > "
                                      f"{MAX_SIGMA_SAMPLES}: too little mean-inner-potential contrast to register on)")
        to_nm = self.spacing * self.step
        return d * to_nm, sigma * to_nm

    # ------------------------------------------------------------------ following
    def frame(self, wave, psi0, kern_kw, given=None):
        """ψ₀ and the per-frame kernel options of one time point, and its drift (nm) with 1σ.

        ``given``: the known displacement (nm) instead of a measured one. A
        drift that cannot be measured is NaN and the frame is left uncorrected.
        """
        if given is not None:
            d, sd = np.asarray(given, float), np.zeros(2)
        else:
            try:
                d, sd = self.measure(wave)
            except DataValidationError:
                d, sd = np.full(2, np.nan), np.full(2, np.nan)
        psi_k, vac, rows, t_map, ifs = self.follow(psi0, np.nan_to_num(d), vac=kern_kw["vac"],
                                                   region_rows=kern_kw["region_rows"], t_map=kern_kw["t_map"],
                                                   interfaces=kern_kw["interfaces"])
        kw = {**kern_kw, "vac": vac, "region_rows": rows, "t_map": t_map, "interfaces": ifs}
        dx = abs(float(np.nan_to_num(d)[1]))
        if dx > 0 and kern_kw.get("margin") is not None:
            # the profile's ends: where the moved ψ₀ has no data, and the Fourier reconstruction's
            # ringing at the field's edges (fixed in the field of view, moved with ψ₀) no longer
            # cancels. Measured (256², 1 nm/px, 6 nm drift, 4 seeds): ΔV RMS 0.023 V without this,
            # 0.0166 V with it, 0.0152 V on the same nights without drift.
            kw["margin"] = kern_kw["margin"] + (math.ceil(dx / self.spacing[1]) + 1) * self.spacing[1]
        return psi_k, kw, (d, sd)

    def samples(self, d_nm):
        """A displacement in nm as wave samples (y, x)."""
        return np.asarray(d_nm, float) / self.spacing

    def follow(self, psi0, d_nm, *, vac, region_rows, t_map, interfaces):
        """ψ₀ and the masks moved to a specimen displaced by ``d_nm`` (y, x) from the zero-bias state.

        Returns the moved ψ₀, vacuum mask, profile rows, thickness map and
        interface positions (nm). Where the move brings in pixels ψ₀ has no
        data for (a border strip as wide as the drift), the vacuum mask and
        the profile rows are cut back.
        """
        from scipy import ndimage

        d = self.samples(d_nm)
        if not np.any(d):
            return psi0, vac, region_rows, t_map, interfaces
        if self._coef is None or self._coef[0] is not psi0:
            # ψ₀ is the same for every frame: its spline coefficients once
            self._coef = (psi0, ndimage.spline_filter(psi0.real.astype(np.float64), order=3, mode="nearest"),
                          ndimage.spline_filter(psi0.imag.astype(np.float64), order=3, mode="nearest"))
        _, cre, cim = self._coef
        moved = (ndimage.shift(cre, d, order=3, mode="nearest", prefilter=False)
                 + 1j * ndimage.shift(cim, d, order=3, mode="nearest", prefilter=False)).astype(psi0.dtype)
        b = int(math.ceil(np.max(np.abs(d)))) + 1
        v = vac & _shift_mask(vac, d)
        v[:b], v[-b:], v[:, :b], v[:, -b:] = False, False, False, False
        rows = region_rows & _shift_mask(region_rows[:, None], (d[0], 0.0))[:, 0]
        rows[:b], rows[-b:] = False, False
        if np.all(np.isfinite(t_map)) and np.ptp(t_map) == 0:
            t = t_map
        else:
            finite = np.isfinite(t_map)
            t = ndimage.shift(np.where(finite, t_map, 0.0), d, order=1, mode="nearest")
            # where the move brings in pixels from outside the field, keep them as they were
            # (the maps there are invalid anyway; NaN would only leave empty profile columns)
            inside = _shift_mask(np.ones(finite.shape, bool), d)
            t = np.where(_shift_mask(finite, d) | (~inside & finite), t, np.nan)
        return moved, v, rows, t, np.asarray(interfaces, float) + float(d_nm[1])


def parse_drift(drift, n_t):
    """Validate ``bias_series(drift=...)``: "auto", None, or a (time, 2) array of positions (y, x) in nm."""
    if drift is None or (isinstance(drift, str) and drift == "auto"):
        return drift
    if isinstance(drift, (str, bytes)):
        raise DataValidationError(f"drift: expected 'auto', None or a (time, 2) array of specimen positions "
                                  f"(y, x) in nm, got {drift!r}")
    try:
        arr = np.asarray(getattr(drift, "values", drift), float)
    except (TypeError, ValueError):
        raise DataValidationError(f"drift: expected 'auto', None or a (time, 2) array of specimen positions "
                                  f"(y, x) in nm, got {type(drift).__name__}") from None
    if arr.shape != (n_t, 2):
        raise ShapeMismatchError(f"drift: expected a ({n_t}, 2) array (time, (y, x)) of specimen positions in nm, "
                                 f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataValidationError("drift: holds NaN/Inf; expected the specimen position (y, x) in nm per time point")
    return arr


def aligned_zero_state(waves, idx, vac, tracker, given=None):
    """Complex mean of the zero-bias waves, each moved onto the first one's specimen position.

    Returns ψ₀ and the drift (nm) of each zero-bias frame relative to the first.
    The constant phase of each is matched on the first over the vacuum (fringe drift, gauge).
    """
    first = waves(int(idx[0]))
    d = np.zeros((len(idx), 2))
    if given is None:
        tracker.set_reference(first)
    acc = first.astype(np.complex128)
    for j, k in enumerate(idx[1:], start=1):
        w = waves(int(k))
        d[j] = (given[int(k)] - given[int(idx[0])]) if given is not None else tracker.measure(w)[0]
        if np.any(d[j]):
            w = _shift_complex(w, -tracker.samples(d[j]))
        s = np.sum(w[vac] * np.conj(first[vac]))
        acc += w * np.conj(s / abs(s)) if abs(s) > 0 else w
    psi0 = (acc / len(idx)).astype(np.complex64)
    if given is None:
        # register on the less noisy mean from now on
        tracker.set_reference(psi0)
    return psi0, d


def warn_failed(n_failed, n_t):
    if n_failed:
        warnings.warn(f"drift: could not be measured in {n_failed} of {n_t} time points (no structure to register); "
                      "those frames are not corrected (drift_nm is NaN)", RuntimeWarning, stacklevel=3)
