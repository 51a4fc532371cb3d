# SPDX-License-Identifier: GPL-3.0-or-later
"""Phase-shifting (fringe-scanning) holography with unknown, irregular shifts.

Frame n of a series is I_n(r) = a₀(r) + c(r)·e^{iθ_n} + c*(r)·e^{−iθ_n}, with
c(r) = (B/2)·e^{i(2π q·r + φ(r))} (carrier q canonical, as for the Fourier
method, so both methods share one sign convention). For known θ_n the per-pixel
least-squares solution (Ru et al. 1994) is a fixed complex weighted sum of the
frames, because the 3×3 normal matrix depends on the shifts only. The shifts
are estimated from the fringes themselves:

1. a least-squares fit of a + b·cos(2πq·r) + d·sin(2πq·r) to each frame (over
   a user mask, default the whole field) gives the global fringe phase of
   each frame up to a constant shared by all frames;
2. alternating refinement: solve (a₀, c) per pixel for the current shifts,
   then re-fit each frame's shift against that model by linear least
   squares in u_n = e^{iθ_n} (the "advanced iterative algorithm" of Wang and
   Han 2004); this removes the bias step 1 has when the specimen fills part
   of the field, and gives each shift's uncertainty from the residuals.

No aperture is applied: the wave keeps the full pixel bandwidth.
"""
from __future__ import annotations

import math

import numpy as np

from ..data import as_dataarray, like_input, require_dims
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data
from . import _fourier
from ._fourier import SIGN_CONVENTION, canonical_carrier, estimate_carrier_array

#: Largest condition number of the 3×3 normal matrix accepted; beyond it the
#: shifts do not sample the fringe period well enough to separate a₀, c and c*.
MAX_CONDITION = 1e3


def _carrier_basis(shape, q):
    ny, nx = shape
    arg = 2 * np.pi * (q[0] * np.arange(ny)[:, None] + q[1] * np.arange(nx)[None, :])
    return np.cos(arg), np.sin(arg)


def normal_matrix(shifts) -> np.ndarray:
    """The 3×3 complex normal matrix of the per-pixel solve (SCIENCE.md §4, Ru et al. 1994)."""
    e1 = np.exp(1j * np.asarray(shifts, float))
    n = e1.size
    s1, s2 = e1.sum(), (e1 ** 2).sum()
    return np.array([[n, s1, np.conj(s1)],
                     [np.conj(s1), n, np.conj(s2)],
                     [s1, s2, n]], dtype=complex)


def solve_weights(shifts, *, name="shifts") -> np.ndarray:
    """Complex weights w (2, N): a₀ = Σ w[0,n]·I_n and c = Σ w[1,n]·I_n per pixel.

    Raises :class:`DataValidationError` when the shift series is degenerate.
    """
    theta = np.asarray(shifts, float)
    if theta.ndim != 1 or theta.size < 3:
        raise DataValidationError(f"{name}: expected N ≥ 3 fringe shifts, got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise DataValidationError(f"{name}: holds NaN/Inf; expected finite shifts in rad")
    m = normal_matrix(theta)
    cond = float(np.linalg.cond(m))
    if not cond <= MAX_CONDITION:
        raise DataValidationError(
            f"{name}: the fringe-shift series is degenerate (condition number {cond:.3g} > {MAX_CONDITION:g}); "
            f"shifts {np.round(np.mod(theta, 2 * np.pi), 3).tolist()} rad do not spread over the fringe period — "
            "acquire frames whose shifts cover 2π (e.g. N ≥ 3 steps of ~2π/N)")
    minv = np.linalg.inv(m)
    basis = np.stack([np.ones_like(theta), np.exp(-1j * theta), np.exp(1j * theta)])  # (3, N)
    return (minv @ basis)[:2]


def solve_kernel(frames, *, weights, carrier=None, axis=-1):
    """Array kernel: per-pixel (a₀, c) → returns c (complex) from frames along ``axis``.

    With ``carrier`` (cos, sin basis broadcastable to the output) the carrier is
    removed, c·e^{−2πi q·r}.
    """
    frames = np.moveaxis(np.asarray(frames), axis, -1).astype(np.float32, copy=False)
    c = frames @ weights[1].astype(np.complex64)
    if carrier is not None:
        c = c * (carrier[0] - 1j * carrier[1]).astype(np.complex64)
    return c.astype(np.complex64, copy=False)


def _fringe_fit(frames, q, mask):
    """Step 1: global fringe phase of each frame by linear least squares. Works on numpy or dask."""
    n, ny, nx = frames.shape
    cos, sin = _carrier_basis((ny, nx), q)
    w = np.ones((ny, nx)) if mask is None else mask.astype(float)
    basis = np.stack([w, w * cos, w * sin]).astype(np.float32)       # (3, ny, nx)
    xtx = np.einsum("kyx,lyx->kl", basis.astype(float), np.stack([np.ones((ny, nx)), cos, sin]))
    proj = np.asarray(np.tensordot(frames, basis, axes=([1, 2], [1, 2])), float)  # (n, 3)
    coef = np.linalg.solve(xtx, proj.T).T                                        # (n, 3): a, b, d
    return np.arctan2(-coef[:, 2], coef[:, 1])


def _compute(*values):
    """Evaluate numpy or dask values (dask ones in a single pass) as float64 arrays."""
    if any(hasattr(v, "dask") for v in values):
        import dask

        values = dask.compute(*values)
    return [np.asarray(v, dtype=float) for v in values]


def _refine(frames, theta, mask, iterations):
    """Step 2: alternate per-pixel solve and per-frame shift fit; returns θ, σ_θ."""
    n = frames.shape[0]
    wmask = None if mask is None else mask.astype(np.float32)
    sigma = np.full(n, np.nan)
    for _ in range(max(iterations, 1)):
        w = solve_weights(theta, name="estimated shifts")
        a0 = np.tensordot(w[0].real.astype(np.float32), frames, axes=(0, 0))  # a₀ is real
        c = np.tensordot(w[1].astype(np.complex64), frames, axes=(0, 0))
        g1, g2 = 2 * c.real, -2 * c.imag        # D_n = 2·(c_r·u_r − c_i·u_i)
        if wmask is not None:
            g1, g2 = g1 * wmask, g2 * wmask
        resid = frames - a0[None]
        if wmask is not None:
            resid = resid * wmask
        # the few sums each pass needs, computed together (one read of a dask series)
        s11, s12, s22, h1, h2, dd = _compute(
            np.sum(g1 * g1), np.sum(g1 * g2), np.sum(g2 * g2),
            np.tensordot(resid, g1, axes=([1, 2], [0, 1])), np.tensordot(resid, g2, axes=([1, 2], [0, 1])),
            np.sum(resid.astype(np.float64) ** 2, axis=(1, 2)))
        gram = np.array([[s11, s12], [s12, s22]], float)
        h = np.stack([h1, h2], axis=1).astype(float)                                # (n, 2)
        u = np.linalg.solve(gram, h.T).T                                           # (n, 2)
        theta = np.arctan2(u[:, 1], u[:, 0])
        m = np.count_nonzero(mask) if mask is not None else int(np.prod(frames.shape[1:]))
        rss = np.maximum(dd - np.sum(u * h, axis=1), 0.0)
        # the per-pixel solve used 3 of every N values: (N − 3)/N of the data are free
        dof = m * (n - 3) / n
        var = rss / dof if dof > 0 else np.full(n, np.nan)
        ginv = np.linalg.inv(gram)
        tang = np.stack([-np.sin(theta), np.cos(theta)], axis=1)
        norm2 = np.sum(u ** 2, axis=1)
        sigma = np.sqrt(var * np.einsum("ni,ij,nj->n", tang, ginv, tang) / norm2)
        theta = theta - theta[0]  # gauge: frame 0 at 0 (the constant goes into the wave's phase)
    return theta, sigma


def estimate_shifts_array(frames, *, q, mask=None, iterations=3):
    """Array kernel: fringe shifts θ_n (rad, frame 0 = 0) and their 1σ uncertainties.

    ``frames`` is ``(N, ny, nx)`` (numpy or dask).
    """
    theta0 = _fringe_fit(frames, q, mask)
    theta0 = theta0 - theta0[0]
    solve_weights(theta0, name="estimated shifts")  # fail early and clearly on a degenerate series
    return _refine(frames, theta0, mask, iterations)


def _series(obj, name):
    da = as_dataarray(obj, kind="image", name=name)
    require_dims(da, ["y", "x"], name=name)
    loop = [d for d in da.dims if d not in ("y", "x")]
    if len(loop) != 1:
        raise ShapeMismatchError(
            f"{name}: expected a series (frame, y, x) of N ≥ 3 holograms, got dims {da.dims}")
    if da.dtype.kind not in "uif":
        raise DataValidationError(f"{name}: expected real intensities, got dtype {da.dtype}")
    if da.sizes[loop[0]] < 3:
        raise DataValidationError(
            f"{name}: phase shifting needs N ≥ 3 holograms, got {da.sizes[loop[0]]}")
    return da.transpose(loop[0], "y", "x"), loop[0]


def _estimate_drift(holo, ref, q):
    """Image drift (N, 2) in px of a (frame, y, x) series, frame 0 = 0 (see :mod:`._register`)."""
    from ..data import apply_kernel
    from ._register import (BORDER_FRACTION, MAX_DRIFT_SIGMA_PX, MIN_STRUCTURE, border_taper as _border_taper,
                            estimate_drift_array, smooth_reference_phase, upsample)

    qn = math.hypot(*q)
    kw = {"q": q, "radius": qn / 3.0, "edge": qn / 30.0}
    ny, nx = holo.sizes["y"], holo.sizes["x"]

    # Fade each frame to its mean at the borders before the FFT: the specimen's
    # phase is not periodic (vacuum at the top, specimen at the bottom), and the
    # ringing of that wrap-around step would stay put while the specimen moves.
    taper = _border_taper((ny, nx), BORDER_FRACTION)

    def waves(series):
        mean = series.mean(("y", "x"))
        series = mean + (series - mean) * taper
        plain = series.drop_vars([c for c in series.coords]).rename(y="_hy", x="_hx")
        my, mx = _fourier._plan((ny, nx), q, kw["radius"], kw["edge"], False)["out"]
        out = apply_kernel(_fourier.sideband_kernel, plain, input_core_dims=[["_hy", "_hx"]],
                           output_core_dims=[["_wy", "_wx"]], output_sizes={"_wy": my, "_wx": mx},
                           output_dtypes=[np.complex64], kwargs=kw)
        return np.asarray(out.transpose(series.dims[0], "_wy", "_wx").values)

    w = waves(holo)
    if ref is not None:
        w = w * smooth_reference_phase(waves(ref)).conj()
    w = upsample(w, 2)
    drift, sigma, structure = estimate_drift_array(w, scale=(ny / w.shape[1], nx / w.shape[2]), return_sigma=True,
                                                   oversampling=2)
    if structure < MIN_STRUCTURE or np.max(sigma) > MAX_DRIFT_SIGMA_PX:
        import warnings

        warnings.warn(f"holograms: image drift not measurable (structure-to-noise {structure:.1f}, "
                      f"minimum {MIN_STRUCTURE}; 1σ up to {np.max(sigma):.2f} px, maximum {MAX_DRIFT_SIGMA_PX} px: "
                      "too little structure in the specimen); frames left unregistered", stacklevel=3)
        return np.zeros_like(drift), sigma
    return drift, sigma


def _given_shifts(shifts, n, name):
    theta = np.asarray(shifts, float)
    if theta.shape != (n,):
        raise ShapeMismatchError(f"{name}: expected {n} shifts (one per frame), got shape {theta.shape}")
    solve_weights(theta, name=name)
    return theta, np.zeros(n)


@accepts_data("holograms", "references")
def phase_shifting(holograms, *, references=None, shifts=None, reference_shifts=None, sideband=None,
                   mask=None, iterations=3, flip_sign=False, register=True):
    """Reconstruct the electron wave from a phase-shifting hologram series.

    Parameters
    ----------
    holograms : DataArray or ndarray
        N ≥ 3 holograms ``(frame, y, x)`` (or ``time``) with fringe shifts that
        may be unknown, irregular and drifting. Dask-backed series stay lazy:
        the shift estimation reads them a few times, the wave is returned lazy.
    references : DataArray or ndarray, optional
        Vacuum reference series ``(frame, y, x)``, same shape, own shifts.
        Without it the carrier is removed numerically and the amplitude is in counts.
    shifts, reference_shifts : array_like, optional
        Known shifts (rad), skipping the estimation for that series.
    sideband : (float, float), optional
        Carrier (qy, qx) in cycles/px (estimated from the first frame when omitted).
    mask : ndarray of bool (y, x), optional
        Pixels used to estimate the shifts (e.g. vacuum); default all.
    iterations : int
        Refinement passes of the shift estimation.
    flip_sign : bool
        Conjugate the wave (see :func:`reconstruct`).
    register : bool
        Estimate the specimen (image) drift between the holograms and undo it
        before the per-pixel solve (default True). Each frame's sideband wave
        (carrier removed, so the fixed fringes cannot dominate) is registered
        by least squares to subpixel precision (measured at 100 counts/px per
        frame: 0.06–0.08 px RMS with a Cu/electrolyte MIP contrast, 0.2–0.3 px
        when the only structure is a 1.3 V step); the frames are moved back by
        a Fourier shift. A border as wide as the largest drift is then
        unreliable (``attrs["drift_border_px"]``) and left out of the shift
        estimation. The reference series (vacuum) is never registered. A
        series with too little structure (e.g. vacuum) is left unregistered
        with a warning. Without drift registration changes the result by less
        than the noise.

    Returns
    -------
    wave : DataArray or ndarray
        complex64 ``(y, x)``, full resolution; same sign convention as
        :func:`reconstruct`; the specimen where it was in the first frame.
    shifts : Dataset or dict
        ``shift`` and ``uncertainty`` (rad, frame 0 = 0) per frame — the fringe
        shift on the detector, i.e. with the drift's 2π q·d removed —,
        ``drift_y``, ``drift_x`` (px, frame 0 = 0; zero without ``register``
        or when the drift is not measurable) with their 1σ
        ``drift_y_uncertainty``, ``drift_x_uncertainty`` (px), and
        ``reference_shift``/``reference_uncertainty`` with references.

    Raises
    ------
    DataValidationError
        N < 3, no fringes, a degenerate shift series.
    ShapeMismatchError
        References or mask of another shape.

    References
    ----------
    Q. Ru, G. Lai, K. Aoyama, J. Endo and A. Tonomura, Ultramicroscopy 55 (1994) 209,
    doi:10.1016/0304-3991(94)90171-6.
    K. Yamamoto, I. Kawajiri, T. Tanji, M. Hibino and T. Hirayama, J. Electron Microsc. 49 (2000) 31,
    doi:10.1093/oxfordjournals.jmicro.a023789.
    Z. Wang and B. Han, Opt. Lett. 29 (2004) 1671, doi:10.1364/OL.29.001671.

    Examples
    --------
    >>> from ionscope.simulate import phase_shifting_series
    >>> holos, refs, truth = phase_shifting_series(n=6, shape=(128, 128), seed=0)
    >>> wave, est = phase_shifting(holos, references=refs)
    >>> wave.dims, est["shift"].sizes["frame"]
    (('y', 'x'), 6)
    """
    import xarray as xr

    from ..data import apply_kernel

    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise DataValidationError(f"iterations: expected an integer ≥ 1, got {iterations!r}")
    holo, fdim = _series(holograms, "holograms")
    ref = rdim = None
    if references is not None:
        ref, rdim = _series(references, "references")
        if ref.shape != holo.shape:
            raise ShapeMismatchError(
                f"references: shape {dict(ref.sizes)} does not match the holograms' {dict(holo.sizes)}; "
                "expected a reference series of the same size")
    ny, nx = holo.sizes["y"], holo.sizes["x"]
    if mask is not None:
        mask = np.asarray(getattr(mask, "values", mask), bool)
        if mask.shape != (ny, nx):
            raise ShapeMismatchError(f"mask: shape {mask.shape} does not match the holograms' (y, x) = {(ny, nx)}")
        if np.count_nonzero(mask) < 64:
            raise DataValidationError("mask: fewer than 64 pixels selected; expected a region holding fringes")
    if sideband is not None:
        q = canonical_carrier(sideband)
    else:
        src, nm = (ref, "references") if ref is not None else (holo, "holograms")
        q = estimate_carrier_array(np.asarray(src.isel({src.dims[0]: 0}).values), name=nm)[:2]

    def estimate(series, given, name, fit_mask=mask, offset=0.0):
        if given is not None:
            theta, sig = _given_shifts(given, series.shape[0], name)
            return theta + offset, sig
        return estimate_shifts_array(series.data, q=q, mask=fit_mask, iterations=iterations)

    n = holo.shape[0]
    drift = np.zeros((n, 2))
    drift_sigma = np.zeros((n, 2))
    if not isinstance(register, (bool, np.bool_)):
        raise DataValidationError(f"register: expected True or False, got {register!r}")
    border = 0
    fit_mask = mask
    if register:
        from ._register import fourier_shift_kernel

        drift, drift_sigma = _estimate_drift(holo, ref, q)
        border = int(math.ceil(np.max(np.abs(drift)))) + 1
        if 2 * border + 16 > min(ny, nx):
            raise DataValidationError(
                f"holograms: the image drift ({np.max(np.abs(drift)):.1f} px) leaves too little of the "
                f"{ny}×{nx} field; crop or pass register=False")
        plain = holo.drop_vars([c for c in holo.coords]).rename(y="_hy", x="_hx")
        holo = apply_kernel(fourier_shift_kernel, plain, input_core_dims=[[fdim, "_hy", "_hx"]],
                            output_core_dims=[[fdim, "y", "x"]], output_dtypes=[np.float32],
                            output_sizes={fdim: n, "y": ny, "x": nx},
                            kwargs={"shifts": drift}).transpose(fdim, "y", "x").assign_coords(holo.coords)
        inner = np.zeros((ny, nx), bool)
        inner[border:ny - border, border:nx - border] = True
        fit_mask = inner if mask is None else (mask & inner)
        if np.count_nonzero(fit_mask) < 64:
            raise DataValidationError("mask: fewer than 64 pixels remain after the drift border is excluded")
    # moving frame k back by d_k moves the fixed fringes too: its fringe phase gains 2π q·d_k
    fringe_offset = 2 * np.pi * (drift @ np.asarray(q, float))

    theta, sig = estimate(holo, shifts, "shifts", fit_mask, fringe_offset)
    cos, sin = _carrier_basis((ny, nx), q)
    plain = holo.drop_vars([c for c in holo.coords if c not in ("y", "x")])
    wave = apply_kernel(solve_kernel, plain, input_core_dims=[[fdim]], output_core_dims=[[]],
                        output_dtypes=[np.complex64], kwargs={"weights": solve_weights(theta)})
    # report the fringe shift on the detector (the biprism's), frame 0 = 0
    lab = theta - fringe_offset
    out = {"shift": lab - lab[0], "uncertainty": sig, "drift_y": drift[:, 0], "drift_x": drift[:, 1],
           "drift_y_uncertainty": drift_sigma[:, 0], "drift_x_uncertainty": drift_sigma[:, 1]}
    if ref is not None:
        rtheta, rsig = estimate(ref, reference_shifts, "reference_shifts")
        rplain = ref.drop_vars([c for c in ref.coords if c not in ("y", "x")])
        rwave = apply_kernel(solve_kernel, rplain, input_core_dims=[[rdim]], output_core_dims=[[]],
                             output_dtypes=[np.complex64], kwargs={"weights": solve_weights(rtheta)})
        # the carrier cancels in the ratio; a reference is never dark where fringes exist
        wave = wave / rwave
        out.update(reference_shift=rtheta, reference_uncertainty=rsig)
    else:
        wave = wave * xr.DataArray((cos - 1j * sin).astype(np.complex64), dims=("y", "x"))
    if flip_sign:
        wave = np.conj(wave)
    wave = wave.astype(np.complex64)
    wave.attrs = {**holo.attrs, "signal_type": "electron wave", "method": "phase shifting",
                  "carrier_cycles_per_px": [q[0], q[1]], "referenced": ref is not None,
                  "sign_convention": SIGN_CONVENTION, "flip_sign": bool(flip_sign),
                  "registered": bool(register), "drift_border_px": border}
    wave.name = "wave"
    if isinstance(holograms, xr.DataArray):
        shifts_out = xr.Dataset({k: (fdim, np.asarray(v)) for k, v in out.items()},
                                coords={fdim: holo.coords[fdim]} if fdim in holo.coords else None)
        for k in shifts_out.data_vars:
            shifts_out[k].attrs["units"] = "px" if k.startswith("drift") else "rad"
        shifts_out.attrs["rms_uncertainty_rad"] = float(np.sqrt(np.mean(sig ** 2)))
        return wave, shifts_out
    return like_input(wave, holograms), {k: np.asarray(v) for k, v in out.items()}


def shifts_rms_error(estimated, true) -> float:
    """RMS of the wrapped difference between estimated and true shifts, both referred to frame 0."""
    e = np.asarray(estimated, float) - np.asarray(estimated, float)[0]
    t = np.asarray(true, float) - np.asarray(true, float)[0]
    d = np.angle(np.exp(1j * (e - t)))
    return float(math.sqrt(np.mean(d ** 2)))
