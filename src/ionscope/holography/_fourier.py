# SPDX-License-Identifier: GPL-3.0-or-later
"""Off-axis (Fourier, sideband) reconstruction of electron holograms.

Sign convention (the one used everywhere in :mod:`ionscope.holography` and by
:func:`ionscope.simulate.hologram`): a hologram is modelled as

    I(r) = a₀(r) + 2·|c(r)|·cos(2π q·r + φ(r)),

where the carrier ``q = (qy, qx)`` in cycles per pixel is taken in the
*canonical half-plane* ``qx > 0`` (for ``|qx| < 0.004`` cycles/px, ``qy > 0``). The
reconstructed phase is φ. The two sidebands ±q of one hologram carry φ and −φ;
whichever one a user passes (or the estimator finds), ionscope maps it to the
canonical one, so the phase never flips sign with the sideband choice. With
this convention the mean inner potential makes the phase inside a specimen
positive for the simulator's geometry; a microscope whose biprism puts the
object wave on the other side gives −φ for every sideband, which
``flip_sign=True`` corrects once per instrument.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from ..data import as_dataarray, like_input, require_dims
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data

#: Text stored in the ``sign_convention`` attribute of every reconstruction.
SIGN_CONVENTION = ("I = a0 + 2|c| cos(2*pi*q.r + phi), q in the half-plane qx>0 (qy>0 if |qx|<0.004); "
                   "phase = phi, increasing with projected potential")

# A sideband must stand this many times above the local (ring-averaged)
# spectrum level to count as fringes; pure Poisson noise stays below ~8 after
# the 3x3 smoothing used here (measured on 256²–512² noise images).
_MIN_SIDEBAND_SNR = 12.0
# Straight edges (specimen edge, particles, support film) put streaks into the
# spectrum: lines through the origin and, for pixel-sharp edges, their aliased
# copies parallel to them, whose crossings and near-centre parts make compact,
# strong peaks. A candidate is accepted only if it stands at least
# _MIN_LINE_CONTRAST times above the strongest straight line through it (median
# excess along the line 4–_LINE_BINS bins either side). Measured on 120
# fringe-free simulated images (edges, particles, amorphous texture; 2–2000
# counts/px; see tests/test_holography_sideband.py) the false peaks stood at
# most 2.5× above their line, while the sidebands of 64 low-dose holograms
# and references (1–5 counts/px, ~4 px fringes) stood ≥ 13× above, and the
# real Fe-needle hologram (whose sideband lies on its edge streak) 33×; 6 is
# about the geometric mean. The conjugate sideband is no extra check: the
# power spectrum of a real image is symmetric, P(−q) = P(q), always.
_MIN_LINE_CONTRAST = 6.0
_LINE_BINS = 24
_LINE_DIRECTIONS = 72
_MAX_CANDIDATES = 12
# Largest image side used for the carrier search; the carrier is a property of
# the biprism, identical over the field, so a central crop finds it as well as
# the whole image at a fraction of the cost (sub-bin refinement keeps it precise).
_SEARCH_SIDE = 1024


# --------------------------------------------------------------------------- helpers
def _workers(workers):
    if workers is None:
        return os.cpu_count() or 1
    return int(workers)


#: Carriers with |qx| below this (cycles/px) count as lying on the half-plane's
#: boundary and are oriented by qy > 0: fringes set up exactly horizontal are
#: common, and an estimate a fraction of a bin off must not flip the sign.
BOUNDARY_TOLERANCE = 0.004


def canonical_carrier(q) -> tuple[float, float]:
    """Return the carrier ``(qy, qx)`` mapped to the canonical half-plane.

    The half-plane is ``qx > 0``; carriers with ``|qx| <`` :data:`BOUNDARY_TOLERANCE`
    are oriented by ``qy > 0`` instead.

    Parameters
    ----------
    q : pair of float
        The carrier ``(qy, qx)`` in cycles/px, either sideband of the pair.

    Returns
    -------
    tuple of float
        ``(qy, qx)`` of the sideband in the canonical half-plane.

    Examples
    --------
    >>> canonical_carrier((0.1, -0.22)), canonical_carrier((-0.2, 0.0))
    ((-0.1, 0.22), (0.2, 0.0))
    """
    try:
        qy, qx = (float(v) for v in q)
    except (TypeError, ValueError):
        raise DataValidationError(f"sideband: expected a pair (qy, qx) in cycles/px, got {q!r}") from None
    if not (math.isfinite(qy) and math.isfinite(qx)):
        raise DataValidationError(f"sideband: expected finite (qy, qx), got {q!r}")
    norm = math.hypot(qy, qx)
    if not 0.0 < norm <= 0.5 * math.sqrt(2.0) or abs(qy) > 0.5 or abs(qx) > 0.5:
        raise DataValidationError(
            f"sideband: carrier (qy, qx) = ({qy:g}, {qx:g}) cycles/px is outside (0, 0.5]; "
            "expected the fringe frequency, e.g. (0.1, 0.22) for ~4 px fringes")
    if (abs(qx) >= BOUNDARY_TOLERANCE and qx < 0) or (abs(qx) < BOUNDARY_TOLERANCE and qy < 0):
        qy, qx = -qy, -qx
    return qy + 0.0, qx + 0.0  # + 0.0 turns -0.0 into 0.0


def _as_float_image(arr, name):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uif":
        raise DataValidationError(f"{name}: expected real intensities (int or float), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataValidationError(f"{name}: holds NaN/Inf values; expected finite counts")
    return arr


def _hann2(ny, nx, dtype=np.float32):
    return np.outer(np.hanning(ny).astype(dtype), np.hanning(nx).astype(dtype))


# --------------------------------------------------------------------------- kernels
def estimate_carrier_array(image, *, min_frequency=0.08, min_snr=_MIN_SIDEBAND_SNR, name="hologram"):
    """Array kernel: carrier frequency ``(qy, qx)`` (cycles/px, canonical) of a 2-D hologram.

    The power spectrum of the Hann-windowed image is smoothed over 3×3 bins
    and divided by its ring average (geometric mean over each |q| ring), so
    that the sideband — a narrow peak — stands out against both the photon
    noise floor and the isotropic fall-off of the object's own spectrum. The
    peak is refined to sub-bin precision by a parabola through the log-power.
    A candidate must also stand ``_MIN_LINE_CONTRAST`` (6) times above the
    strongest straight line through it, so that the streaks of straight
    edges (and their aliased copies and crossings) are not taken for fringes.

    Returns ``(qy, qx, snr)``; raises :class:`DataValidationError` when no peak
    exceeds ``min_snr`` (no fringes).
    """
    from scipy import fft, ndimage

    img = _as_float_image(image, name)
    if img.ndim != 2:
        raise ShapeMismatchError(f"{name}: expected one 2-D hologram (y, x), got shape {img.shape}")
    ny, nx = img.shape
    if min(ny, nx) < 16:
        raise ShapeMismatchError(f"{name}: {img.shape} is too small to hold fringes; expected at least 16×16 px")
    # Central crop for speed (see _SEARCH_SIDE); even sides keep the rfft grid simple.
    sy, sx = min(ny, _SEARCH_SIDE), min(nx, _SEARCH_SIDE)
    y0, x0 = (ny - sy) // 2, (nx - sx) // 2
    crop = img[y0:y0 + sy, x0:x0 + sx].astype(np.float32)
    crop = (crop - crop.mean()) * _hann2(sy, sx)
    raw = np.abs(fft.rfft2(crop, workers=_workers(None))) ** 2
    # 3×3 smoothing on the half-spectrum: periodic along ky, but along kx the
    # neighbours of the kx = 0 and Nyquist columns are mirrored bins,
    # P(ky, −1) = P(−ky, 1); a plain wrap would mix the Nyquist column into
    # kx = 0 (measured: false "sidebands" on the ky axis of sharp-edged images)
    flip = (-np.arange(sy)) % sy
    padded = np.concatenate([raw[flip, 1:2], raw, raw[flip, -2:-1]], axis=1)
    power = ndimage.uniform_filter(padded, size=3, mode="wrap")[:, 1:-1]
    ky = fft.fftfreq(sy)[:, None]
    kx = fft.rfftfreq(sx)[None, :]
    radius = np.hypot(ky, kx)
    # ring index in units of the coarser frequency step
    ring = np.rint(radius * max(sy, sx)).astype(np.int64)
    logp = np.log(power + np.finfo(np.float32).tiny)
    counts = np.bincount(ring.ravel())
    ring_mean = np.bincount(ring.ravel(), weights=logp.ravel()) / np.maximum(counts, 1)
    full_excess = logp - ring_mean[ring]
    # Exclude the centre band and the corner beyond Nyquist on either axis.
    valid = (radius >= min_frequency) & (np.abs(ky) < 0.5) & (kx < 0.5)
    excess = np.where(valid, full_excess, -np.inf)
    # Candidates in order of excess; one on a streak is rejected together with
    # the whole line it lies on (see _MIN_LINE_CONTRAST).
    snr = best = 0.0
    for _ in range(_MAX_CANDIDATES):
        iy, ix = np.unravel_index(int(np.argmax(excess)), excess.shape)
        snr = float(np.exp(excess[iy, ix]))
        if not snr >= min_snr:
            break
        best = max(best, snr)
        cy, cx = float(ky[iy, 0]) * sy, float(kx[0, ix]) * sx      # bins
        level, (uy, ux) = _strongest_line(full_excess, cy, cx, sy, sx, min_frequency)
        if snr >= _MIN_LINE_CONTRAST * math.exp(level):
            break
        # reject every bin within 2 bins of that line (either half-plane representation)
        ky_b, kx_b = ky * sy, kx * sx
        dist = np.minimum(np.abs((ky_b - cy) * ux - (kx_b - cx) * uy), np.abs((-ky_b - cy) * ux - (-kx_b - cx) * uy))
        excess = np.where(dist <= 2.0, -np.inf, excess)
        snr = 0.0
    if not snr >= min_snr:
        raise DataValidationError(
            f"{name}: no fringes found — no sideband stands ≥ {min_snr:g}× above the spectrum and "
            f"≥ {_MIN_LINE_CONTRAST:g}× above the streaks of straight edges (best candidate {max(best, snr):.1f}×); "
            "check that this is an off-axis hologram, or pass sideband=(qy, qx)")

    # sub-bin refinement on the unsmoothed log-power (a Hann-windowed peak is
    # close to a Gaussian, so a parabola through log-power is nearly unbiased)
    logp = np.log(raw + np.finfo(np.float32).tiny)

    def parabola(lm, l0, lp):
        den = lm - 2 * l0 + lp
        return 0.0 if den >= 0 else float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))

    dy = parabola(logp[(iy - 1) % sy, ix], logp[iy, ix], logp[(iy + 1) % sy, ix])
    if ix < logp.shape[1] - 1:
        # at kx = 0 the left neighbour is the mirrored bin: P(ky, −1) = P(−ky, 1)
        left = logp[iy, ix - 1] if ix > 0 else logp[(-iy) % sy, 1]
        dx = parabola(left, logp[iy, ix], logp[iy, ix + 1])
    else:
        dx = 0.0
    qy = (float(ky[iy, 0]) * sy + dy) / sy
    qx = (float(kx[0, ix]) * sx + dx) / sx
    qy, qx = canonical_carrier((qy, qx))
    return qy, qx, snr


def _strongest_line(excess, cy, cx, sy, sx, min_frequency):
    """Median log-excess along the strongest straight line through bin (cy, cx), and its direction.

    ``excess`` is the rfft2 half-spectrum of log-power minus its ring mean;
    samples 4–_LINE_BINS bins either side of the candidate (its own peak
    excluded) in _LINE_DIRECTIONS directions; bins inside half the minimum
    frequency (the centre's own blur) or beyond Nyquist are skipped.
    """
    theta = np.arange(_LINE_DIRECTIONS) * (np.pi / _LINE_DIRECTIONS)
    t = np.r_[-_LINE_BINS:-3, 4:_LINE_BINS + 1].astype(float)
    uy, ux = np.sin(theta)[:, None], np.cos(theta)[:, None]
    py = np.rint(cy + t[None, :] * uy).astype(np.int64)
    px = np.rint(cx + t[None, :] * ux).astype(np.int64)
    ok = (np.hypot(py / sy, px / sx) >= 0.5 * min_frequency) & (np.abs(py) < sy // 2) & (np.abs(px) < sx // 2)
    # bins with kx < 0 are read from their mirror (−ky, −kx) in the half-spectrum
    neg = px < 0
    vals = excess[np.where(neg, -py, py) % sy, np.minimum(np.abs(px), excess.shape[1] - 1)]
    vals = np.where(ok, vals, np.nan)
    enough = np.count_nonzero(ok, axis=1) >= 8
    if not enough.any():
        return -np.inf, (0.0, 1.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: directions leaving the valid band
        med = np.where(enough, np.nanmedian(vals, axis=1), -np.inf)
    k = int(np.argmax(med))
    return float(med[k]), (float(uy[k, 0]), float(ux[k, 0]))


def _box_geometry(shape, q, radius, edge):
    """Integer carrier bin and the (fast-FFT) size of the box holding the aperture."""
    from scipy import fft

    ny, nx = shape
    cy, cx = int(round(q[0] * ny)), int(round(q[1] * nx))
    reach = radius + 2.0 * edge  # aperture is < 1e-3 beyond R + 2·edge
    my = fft.next_fast_len(2 * (int(math.ceil(reach * ny)) + 2))
    mx = fft.next_fast_len(2 * (int(math.ceil(reach * nx)) + 2))
    return cy, cx, min(my, ny), min(mx, nx)


def _aperture(shape, q, cy, cx, box, radius, edge):
    """Soft circular aperture on the box, centred on the exact (sub-bin) carrier.

    The edge is a logistic (tanh) roll-off: 1/2·(1 − tanh((|k−q| − R)/(edge/2))).
    A soft edge suppresses the ringing a hard cut-off would put around sharp
    features (interfaces, specimen edges).
    """
    ny, nx = shape
    my, mx = box
    ky = (cy + np.arange(my) - my // 2) / ny - q[0]
    kx = (cx + np.arange(mx) - mx // 2) / nx - q[1]
    r = np.hypot(ky[:, None], kx[None, :])
    if edge > 0:
        return (0.5 * (1.0 - np.tanh((r - radius) / (0.5 * edge)))).astype(np.float32)
    return (r <= radius).astype(np.float32)


def _box_indices(shape, cy, cx, box):
    """Indices into the rfft2 half-spectrum for a full-spectrum box around (cy, cx).

    Bins with negative (or beyond-Nyquist) kx are not stored by rfft2; they are
    the complex conjugates of the mirrored bins, F(−k) = F(k)* for a real image.
    """
    ny, nx = shape
    my, mx = box
    ky = (cy + np.arange(my) - my // 2)[:, None]
    kx = (cx + np.arange(mx) - mx // 2)[None, :]
    kxm = kx % nx
    direct = kxm <= nx // 2
    iy = np.where(direct, ky % ny, (-ky) % ny)
    ix = np.where(direct, kxm, (nx - kxm) % nx)
    return iy, ix, ~direct


@functools.lru_cache(maxsize=16)
def _plan(shape, q, radius, edge, full_size):
    """Everything about a reconstruction that depends on geometry only, computed once.

    Cached so that a stack, or a hologram and its reference, pay for the
    aperture, the index arrays and the carrier remainder only once (at 4096²
    the aperture alone costs as much as 10 % of an FFT).
    """
    ny, nx = shape
    cy, cx, my, mx = _box_geometry(shape, q, radius, edge)
    iy, ix, conj = _box_indices(shape, cy, cx, (my, mx))
    aperture = _aperture(shape, q, cy, cx, (my, mx), radius, edge)
    oy, ox = (ny, nx) if full_size else (my, mx)
    # sub-bin remainder of the carrier, q − (cy/ny, cx/nx), removed after the inverse FFT
    ry = np.exp(-2j * np.pi * (q[0] - cy / ny) * (np.arange(oy) * (ny / oy))).astype(np.complex64)
    rx = np.exp(-2j * np.pi * (q[1] - cx / nx) * (np.arange(ox) * (nx / ox))).astype(np.complex64)
    if full_size:
        # the box's offsets from the carrier bin, placed on the full grid with the
        # carrier bin at index 0 so that the inverse FFT removes it
        place = ((np.arange(my) - my // 2) % ny, (np.arange(mx) - mx // 2) % nx)
        scale = np.float32(1.0)
    else:
        place = None
        scale = np.float32(my * mx / (ny * nx))  # ifft of a smaller grid: keep |c| in counts
    # The box reads a band of columns (kx) of the half-spectrum only: a "pruned"
    # 2-D FFT transforms every row (rfft along x) but then only that band along
    # y. Same arithmetic per column as rfft2, so bitwise the same bins; measured
    # 14 → 9.5 ms at 2048² (|q|/3 aperture, ~40 % of the columns, 1 thread).
    lo, hi = int(ix.min()), int(ix.max()) + 1
    cols = slice(lo, hi) if hi - lo <= 0.75 * (nx // 2 + 1) else None
    plan = {"box": (my, mx), "out": (oy, ox), "iy": iy, "ix": ix - lo if cols is not None else ix, "conj": conj,
            "aperture": aperture, "place": place, "cols": cols}
    if full_size:  # two 1-D factors: a 2-D one would be as large as the hologram
        plan["ramps"] = (ry[:, None] * scale, rx[None, :])
    else:          # small grid: one precomputed 2-D factor saves a pass over the output
        plan["ramps"] = (np.outer(ry * scale, rx),)
    return plan


def _sideband_one(img, plan, workers):
    """Complex sideband wave of one 2-D hologram (carrier removed, not referenced)."""
    from scipy import fft

    ny, nx = img.shape
    my, mx = plan["box"]
    # float32/complex64 halves memory traffic and rfft2 halves the work of a
    # complex FFT on a real image (measured 5–10× faster than numpy fft2 on 2 cores).
    img = np.asarray(img, dtype=np.float32)
    if plan["cols"] is None:
        spec = fft.rfft2(img, workers=workers)
    else:   # pruned: rows, then the columns the box reads (see _plan)
        spec = fft.rfft(img, axis=1, workers=workers)[:, plan["cols"]]
        spec = fft.fft(spec, axis=0, workers=workers, overwrite_x=True)
    box = spec[plan["iy"], plan["ix"]]
    del spec
    np.conjugate(box, out=box, where=plan["conj"])
    if not np.all(np.isfinite(box)):
        # NaN/Inf anywhere in the image spreads to every Fourier bin: checking the
        # small box is as conclusive as scanning the whole image, at no cost
        raise DataValidationError("hologram: holds NaN/Inf values; expected finite counts")
    box *= plan["aperture"]
    if plan["place"] is not None:
        full = np.zeros((ny, nx), np.complex64)
        full[plan["place"][0][:, None], plan["place"][1][None, :]] = box
        wave = fft.ifft2(full, workers=workers, overwrite_x=True)
    else:
        # A small inverse FFT: the output samples the wave at the aperture's
        # bandwidth, on a grid ny/my times coarser (same field of view).
        box = np.roll(box, (-(my // 2), -(mx // 2)), axis=(0, 1))  # carrier bin to index 0
        wave = fft.ifft2(box, workers=workers, overwrite_x=True)
    for factor in plan["ramps"]:
        wave *= factor
    return wave


def sideband_kernel(block, *, q, radius, edge, full_size=False, reference_wave=None, flip_sign=False,
                    workers=None):
    """Array kernel: Fourier reconstruction of holograms on the last two axes.

    ``block`` has shape ``(..., ny, nx)``; returns complex64 ``(..., my, mx)``
    (or ``(..., ny, nx)`` with ``full_size``), divided by ``reference_wave``
    when given (same output shape, broadcast over leading axes).
    """
    block = np.asarray(block)
    if block.dtype.kind not in "uif":
        raise DataValidationError(f"hologram: expected real intensities (int or float), got dtype {block.dtype}")
    ny, nx = block.shape[-2:]
    plan = _plan((ny, nx), (float(q[0]), float(q[1])), float(radius), float(edge), bool(full_size))
    oy, ox = plan["out"]
    lead = block.shape[:-2]
    flat = block.reshape((-1, ny, nx))
    out = np.empty((flat.shape[0], oy, ox), np.complex64)
    w = _workers(workers)
    inv_ref = None
    if reference_wave is not None:
        ref = np.asarray(reference_wave, np.complex64).reshape((-1, oy, ox))
        # a reference is never dark where fringes exist; the floor only avoids 0/0.
        # One reciprocal, then a multiply per frame (cheaper than a division per frame).
        mag = np.abs(ref)
        floor = np.float32(1e-12) * mag.max()
        inv_ref = np.reciprocal(np.where(mag > floor, ref, floor))
    for i in range(flat.shape[0]):
        out[i] = _sideband_one(flat[i], plan, w)
        if inv_ref is not None:
            out[i] *= inv_ref[i % inv_ref.shape[0]]
    if flip_sign:
        np.conjugate(out, out=out)
    return out.reshape(lead + (oy, ox))


# --------------------------------------------------------------------------- labelled layer
def _resolve_carrier(holo, reference, sideband, min_frequency):
    if sideband is not None:
        return canonical_carrier(sideband)
    source, name = (reference, "reference") if reference is not None else (holo, "hologram")
    frame = source
    for dim in [d for d in source.dims if d not in ("y", "x")]:
        frame = frame.isel({dim: 0})
    qy, qx, _ = estimate_carrier_array(np.asarray(frame.transpose("y", "x").values),
                                       min_frequency=min_frequency, name=name)
    return qy, qx


def _resolve_aperture(q, aperture, edge):
    qn = math.hypot(*q)
    radius = qn / 3.0 if aperture is None else float(aperture)
    if not (math.isfinite(radius) and 0 < radius < qn):
        raise DataValidationError(
            f"aperture: radius {aperture!r} cycles/px must be in (0, |q|) = (0, {qn:.4g}); "
            f"the default |q|/3 = {qn / 3:.4g} keeps the centre band out")
    edge = 0.1 * radius if edge is None else float(edge)
    if not (math.isfinite(edge) and edge >= 0):
        raise DataValidationError(f"aperture_edge: expected a width ≥ 0 in cycles/px, got {edge!r}")
    return radius, edge


def _image_da(obj, name):
    da = as_dataarray(obj, kind="image", name=name)
    require_dims(da, ["y", "x"], name=name)
    return da


@accepts_data("hologram", "reference")
def reconstruct(hologram, reference=None, *, sideband=None, aperture=None, aperture_edge=None,
                full_size=False, flip_sign=False, min_frequency=0.08, workers=None):
    """Reconstruct the complex electron wave of off-axis hologram(s) by the Fourier method.

    The hologram is Fourier transformed, the sideband at the carrier ``q`` is
    cut out with a soft circular aperture and centred, and the inverse FFT
    gives the wave; dividing by the same from a vacuum ``reference`` removes
    the carrier's imperfections and the biprism distortions.

    Parameters
    ----------
    hologram : DataArray or ndarray
        Intensities, dims ``(y, x)`` or a stack ``(frame|time, y, x)``;
        dask-backed stacks stay lazy and are processed frame by frame.
    reference : DataArray or ndarray, optional
        Vacuum reference hologram: ``(y, x)`` (its FFT is computed once and
        used for every frame) or the same shape as ``hologram``.
    sideband : (float, float), optional
        Carrier ``(qy, qx)`` in cycles/px. Either sideband (±q) gives the same
        result (see the module's sign convention). Estimated when omitted
        (from the reference if given), robust at low dose and ~4 px fringes.
    aperture : float, optional
        Aperture radius in cycles/px; default ``|q|/3``.
    aperture_edge : float, optional
        Width of the aperture's smooth (tanh) edge in cycles/px; default
        ``aperture/10``; 0 gives a hard edge.
    full_size : bool
        Return the wave on the hologram's pixel grid instead of the default
        grid cropped to the aperture's bandwidth (same field of view, fewer
        pixels, no information lost).
    flip_sign : bool
        Conjugate the wave (microscopes with the object on the other side of the biprism).
    min_frequency : float
        Lowest carrier frequency (cycles/px) considered by the estimator;
        the default 0.08 (fringes finer than 12.5 px) keeps the object's own
        low-frequency structure out of the search; lower it for coarse fringes.
    workers : int, optional
        Threads per FFT (default: all cores).

    Returns
    -------
    DataArray or ndarray
        complex64 wave, same type as ``hologram``; phase = ``np.angle``,
        amplitude normalised by the reference when one is given. ``attrs``
        record the carrier, aperture, fringe spacing and sign convention.

    Raises
    ------
    DataValidationError
        No fringes found, bad sideband or aperture, non-finite input.
    ShapeMismatchError
        ``reference`` does not match the hologram's (y, x) shape.

    References
    ----------
    M. Lehmann and H. Lichte, Microsc. Microanal. 8 (2002) 447, doi:10.1017/S1431927602020147.
    E. Völkl, L. F. Allard and D. C. Joy (eds.), Introduction to Electron Holography
    (Springer, 1999), doi:10.1007/978-1-4615-4817-1.

    Examples
    --------
    >>> from ionscope.simulate import hologram
    >>> from ionscope.holography import reconstruct
    >>> holo, ref, truth = hologram(shape=(256, 256), seed=1)
    >>> wave = reconstruct(holo, ref)
    >>> wave.dims, wave.dtype.name
    (('y', 'x'), 'complex64')
    """
    holo = _image_da(hologram, "hologram")
    if holo.dtype.kind not in "uif":
        raise DataValidationError(f"hologram: expected real intensities, got dtype {holo.dtype}")
    ref = None
    if reference is not None:
        ref = _image_da(reference, "reference")
        if ref.chunks is None and not np.any(np.asarray(ref.values)):
            # dividing by an all-zero vacuum wave gives an all-NaN result: refuse it up front
            raise DataValidationError("reference: the reference hologram is all zero (an empty or failed "
                                      "acquisition); pass a vacuum hologram with fringes, or reference=None")
        if (ref.sizes["y"], ref.sizes["x"]) != (holo.sizes["y"], holo.sizes["x"]):
            raise ShapeMismatchError(
                f"reference: shape (y, x) = ({ref.sizes['y']}, {ref.sizes['x']}) does not match the "
                f"hologram's ({holo.sizes['y']}, {holo.sizes['x']})")
        extra = [d for d in ref.dims if d not in ("y", "x")]
        if extra and ref.shape != holo.shape:
            raise ShapeMismatchError(
                f"reference: a stacked reference must have the hologram's shape {dict(holo.sizes)}, "
                f"got {dict(ref.sizes)}; or pass one (y, x) reference")
    from ._input_checks import check_counts, check_same_fringes

    check_counts(holo)
    q = _resolve_carrier(holo, ref, sideband, min_frequency)
    if ref is not None and sideband is None:
        check_same_fringes(holo, q, min_frequency)
    radius, edge = _resolve_aperture(q, aperture, aperture_edge)
    ny, nx = holo.sizes["y"], holo.sizes["x"]
    oy, ox = _plan((ny, nx), q, radius, edge, bool(full_size))["out"]
    kw = dict(q=q, radius=radius, edge=edge, full_size=full_size, flip_sign=False, workers=workers)

    lead = [d for d in holo.dims if d not in ("y", "x")]
    if ref is not None and len(ref.dims) > 2 and set(ref.dims) != set(holo.dims):
        raise ShapeMismatchError(f"reference: stacked dims {ref.dims} differ from the hologram's {holo.dims}")
    # one (y, x) reference: its FFT is computed once and reused for every frame
    ref_wave = None
    if ref is not None and len(ref.dims) == 2:
        ref_wave = sideband_kernel(np.asarray(ref.transpose("y", "x").values), **kw)
    if holo.chunks is None and (ref is None or ref.chunks is None):
        # In memory: call the kernel directly. xarray.apply_ufunc costs ~1–2 ms
        # per call, as much as the whole reconstruction of a 512² hologram.
        import xarray as xr

        if ref is not None and ref_wave is None:
            ref_wave = sideband_kernel(np.asarray(ref.transpose(*lead, "y", "x").values), **kw)
        out = sideband_kernel(np.asarray(holo.transpose(*lead, "y", "x").values),
                              **{**kw, "reference_wave": ref_wave, "flip_sign": flip_sign})
        keep = {k: v for k, v in holo.coords.items() if not ({"y", "x"} & set(v.dims))}
        wave = xr.DataArray(out, dims=(*lead, "y", "x"), coords=keep)
    else:
        from ..data import apply_kernel

        def mapped(da, extra):
            plain = da.drop_vars([c for c in ("y", "x") if c in da.coords]).rename(y="_hy", x="_hx")
            return apply_kernel(sideband_kernel, plain, input_core_dims=[["_hy", "_hx"]],
                                output_core_dims=[["y", "x"]], output_sizes={"y": oy, "x": ox},
                                output_dtypes=[np.complex64], kwargs={**kw, **extra})

        wave = mapped(holo, {"reference_wave": ref_wave, "flip_sign": flip_sign})
        if ref is not None and ref_wave is None:
            # stacked reference: one reference per frame, divided lazily
            wave = wave / mapped(ref, {"flip_sign": flip_sign})
    # order dims like the input
    wave = wave.transpose(*[d for d in holo.dims])
    for dim, n_in, n_out in (("y", ny, oy), ("x", nx, ox)):
        if dim in holo.coords:
            c = np.asarray(holo.coords[dim].values, float)
            step = (c[-1] - c[0]) / max(n_in - 1, 1)
            wave = wave.assign_coords({dim: (dim, c[0] + step * (n_in / n_out) * np.arange(n_out),
                                             dict(holo.coords[dim].attrs))})
    wave.attrs = {**holo.attrs, "signal_type": "electron wave",
                  "carrier_cycles_per_px": [q[0], q[1]],
                  "fringe_spacing_px": 1.0 / math.hypot(*q),
                  "aperture_cycles_per_px": radius, "aperture_edge_cycles_per_px": edge,
                  "referenced": ref is not None, "sign_convention": SIGN_CONVENTION,
                  "flip_sign": bool(flip_sign)}
    wave.name = "wave"
    return like_input(wave, hologram)
