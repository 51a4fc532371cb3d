# SPDX-License-Identifier: GPL-3.0-or-later
"""From reconstructed waves to physics: unwrapped phase, projected potential, thickness, ramps, differences."""
from __future__ import annotations

import math

import numpy as np

from ..data import apply_kernel, as_dataarray, like_input, require_dims
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data
from ..io import acquisition_value

# CODATA 2018
_H = 6.62607015e-34      # J s
_ME = 9.1093837015e-31   # kg
_C = 299792458.0         # m/s
_E = 1.602176634e-19     # C


def _image(obj, name):
    da = as_dataarray(obj, kind="image", name=name)
    require_dims(da, ["y", "x"], name=name)
    return da


def _mask_array(mask, shape, name="mask"):
    m = np.asarray(getattr(mask, "values", mask))
    if m.shape != shape:
        raise ShapeMismatchError(f"{name}: shape {m.shape} does not match the image's (y, x) = {shape}")
    if m.dtype != bool:
        raise DataValidationError(f"{name}: expected a boolean (y, x) mask, got dtype {m.dtype}")
    return m


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength in nm at ``voltage_kv``."""
    u = float(voltage_kv) * 1e3
    e = _E * u
    return _H / math.sqrt(2 * _ME * e * (1 + e / (2 * _ME * _C ** 2))) * 1e9


def interaction_constant(voltage_kv: float) -> float:
    """Relativistic interaction constant C_E in rad/(V·nm).

    C_E = (2π/(λU))·(E + E₀)/(E + 2E₀), E = eU, E₀ = m₀c².

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV.

    Returns
    -------
    float
        7.288e-3 rad/(V·nm) at 200 kV, 6.526e-3 at 300 kV.

    References
    ----------
    L. Reimer and H. Kohl, Transmission Electron Microscopy, 5th ed. (Springer, 2008),
    doi:10.1007/978-0-387-40093-8, §3.1.

    Examples
    --------
    >>> round(interaction_constant(200) * 1e3, 3)
    7.288
    """
    if not (isinstance(voltage_kv, (int, float, np.integer, np.floating)) and math.isfinite(voltage_kv)
            and voltage_kv > 0):
        raise DataValidationError(f"voltage_kv: expected a positive accelerating voltage in kV, got {voltage_kv!r}")
    u = float(voltage_kv) * 1e3
    e = _E * u
    e0 = _ME * _C ** 2
    return 2 * math.pi / (electron_wavelength_nm(voltage_kv) * u) * (e + e0) / (e + 2 * e0)


def _unwrap_kernel(block):
    from skimage.restoration import unwrap_phase as _sk_unwrap

    lead = block.shape[:-2]
    flat = block.reshape((-1,) + block.shape[-2:])
    out = np.empty(flat.shape, np.float64)
    for i, img in enumerate(flat):
        out[i] = _sk_unwrap(np.angle(img) if np.iscomplexobj(img) else np.asarray(img, float))
    return out.reshape(lead + block.shape[-2:])


@accepts_data("wave_or_phase")
def unwrap_phase(wave_or_phase):
    """Unwrap the phase of a wave (complex) or a wrapped phase (real), frame by frame.

    Uses the reliability-sorting unwrapper of scikit-image (Herráez et al.).
    The result is defined up to a multiple of 2π; reference it with
    :func:`remove_ramp` over vacuum.

    Parameters
    ----------
    wave_or_phase : DataArray or ndarray
        ``(..., y, x)``, complex wave or phase in rad.

    Returns
    -------
    DataArray or ndarray
        Unwrapped phase in rad (float64), same type and dims.

    References
    ----------
    M. A. Herráez et al., Appl. Opt. 41 (2002) 7437, doi:10.1364/AO.41.007437.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.add.outer(np.zeros(64), np.linspace(0, 20, 64))
    >>> bool(np.allclose(unwrap_phase(np.exp(1j * ramp)), ramp, atol=1e-6))
    True
    """
    da = _image(wave_or_phase, "phase")
    if da.dtype.kind not in "fc":
        raise DataValidationError(f"phase: expected a complex wave or a real phase, got dtype {da.dtype}")
    out = apply_kernel(_unwrap_kernel, da, input_core_dims=[["y", "x"]], output_core_dims=[["y", "x"]],
                       output_dtypes=[np.float64])
    out = out.transpose(*da.dims)
    out.attrs = {**da.attrs, "units": "rad", "unwrapped": True}
    out.name = "phase"
    return like_input(out, wave_or_phase)


def _real_phase(obj, name="phase"):
    da = _image(obj, name)
    if da.dtype.kind == "c":
        raise DataValidationError(
            f"{name}: got a complex wave; expected a real (unwrapped) phase — use unwrap_phase(wave) first")
    if da.dtype.kind not in "fiu":
        raise DataValidationError(f"{name}: expected a real phase in rad, got dtype {da.dtype}")
    return da


@accepts_data("phase")
def to_potential(phase, *, voltage_kv=None, thickness_nm=None):
    """Projected-mean electrostatic potential V = φ / (C_E·t) in volts.

    Parameters
    ----------
    phase : DataArray or ndarray
        Unwrapped phase in rad (e.g. a bias difference map).
    voltage_kv : float, optional
        Accelerating voltage in kV (default: the data's ``beam_energy_kv``;
        a value that contradicts it is refused).
    thickness_nm : float or array_like
        Specimen thickness in nm (scalar or a (y, x) map, > 0).

    Returns
    -------
    DataArray or ndarray
        Potential in V, same type as ``phase``.

    References
    ----------
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.

    Examples
    --------
    >>> import numpy as np
    >>> v = to_potential(np.full((4, 4), 7.288e-3 * 50 * 1.3), voltage_kv=200, thickness_nm=50)
    >>> round(float(v.mean()), 3)
    1.3
    """
    if thickness_nm is None:
        raise DataValidationError("to_potential: thickness_nm is required (V = φ / (C_E·t)); give the specimen "
                                  "thickness in nm, a scalar or a (y, x) map, e.g. from relative_thickness")
    da = _real_phase(phase)
    voltage_kv = acquisition_value(phase, "beam_energy_kv", voltage_kv, argument="voltage_kv")
    c_e = interaction_constant(voltage_kv)
    t = np.asarray(getattr(thickness_nm, "values", thickness_nm), float)
    if t.ndim == 0:
        if not (math.isfinite(float(t)) and t > 0):
            raise DataValidationError(f"thickness_nm: expected a positive thickness in nm, got {thickness_nm!r}")
        out = da / (c_e * float(t))
    else:
        if t.shape != (da.sizes["y"], da.sizes["x"]):
            raise ShapeMismatchError(
                f"thickness_nm: map shape {t.shape} does not match the phase's (y, x) = "
                f"{(da.sizes['y'], da.sizes['x'])}")
        if not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise DataValidationError("thickness_nm: the map must be finite and > 0 everywhere (mask vacuum first)")
        out = da / (c_e * _image(t, "thickness_nm"))
    out.attrs = {**da.attrs, "units": "V", "interaction_constant_rad_per_v_nm": c_e}
    out.name = "potential"
    return like_input(out, phase)


@accepts_data("wave_or_amplitude")
def relative_thickness(wave_or_amplitude, *, vacuum=None):
    """Thickness in units of the inelastic mean free path, t/λᵢ = −2·ln(A/A_vac).

    Parameters
    ----------
    wave_or_amplitude : DataArray or ndarray
        A reference-normalised wave (complex) or its amplitude.
    vacuum : ndarray of bool (y, x), optional
        Vacuum pixels; their median amplitude normalises A (else A is taken as
        already normalised by the reference).

    Returns
    -------
    DataArray or ndarray
        t/λᵢ (dimensionless), same type as the input.

    References
    ----------
    M. R. McCartney and M. Gajdardziska-Josifovska, Ultramicroscopy 53 (1994) 283,
    doi:10.1016/0304-3991(94)90040-X.

    Examples
    --------
    >>> import numpy as np
    >>> t = relative_thickness(np.full((4, 4), np.exp(-0.25)))
    >>> round(float(t.mean()), 3)
    0.5
    """
    da = _image(wave_or_amplitude, "amplitude")
    amp = np.abs(da) if da.dtype.kind == "c" else da
    if vacuum is not None:
        m = _mask_array(vacuum, (da.sizes["y"], da.sizes["x"]), "vacuum")
        if not m.any():
            raise DataValidationError("vacuum: the mask selects no pixel")
        ref = amp.where(_xr_mask(m)).median(dim=("y", "x"))
        amp = amp / ref
    # amplitude ≤ 0 only from noise in very thick regions: clip to keep logs finite
    out = -2.0 * np.log(np.maximum(amp, 1e-6))
    out.attrs = {**da.attrs, "units": "t/lambda_in"}
    out.name = "t_over_lambda"
    return like_input(out, wave_or_amplitude)


def _xr_mask(m):
    import xarray as xr

    return xr.DataArray(m, dims=("y", "x"))


def _plane_design(ny, nx, order):
    y = np.linspace(-1.0, 1.0, ny)[:, None] * np.ones((1, nx))
    x = np.ones((ny, 1)) * np.linspace(-1.0, 1.0, nx)[None, :]
    cols = [np.ones((ny, nx)), x, y]
    if order >= 2:
        cols += [x * x, x * y, y * y]
    return np.stack(cols, axis=-1)  # (ny, nx, k)


def _ramp_kernel(block, *, mask, order):
    ny, nx = block.shape[-2:]
    design = _plane_design(ny, nx, order)
    a = design[mask]                                  # (m, k)
    lead = block.shape[:-2]
    flat = block.reshape((-1, ny, nx)).astype(np.float64)
    out = np.empty_like(flat)
    for i, img in enumerate(flat):
        coef, *_ = np.linalg.lstsq(a, img[mask], rcond=None)
        out[i] = img - design @ coef
    return out.reshape(lead + (ny, nx))


@accepts_data("phase")
def remove_ramp(phase, *, mask, order=1):
    """Subtract a polynomial (plane by default) fitted over a mask: leakage fields, ramps, offset.

    Parameters
    ----------
    phase : DataArray or ndarray
        Unwrapped phase ``(..., y, x)`` in rad.
    mask : ndarray of bool (y, x)
        Where the phase should be flat: vacuum, or a field-free region.
    order : {1, 2}
        1: a + b·x + c·y (SCIENCE.md §4); 2 adds quadratic terms.

    Returns
    -------
    DataArray or ndarray
        Phase with the fit removed (zero mean over the mask).

    References
    ----------
    M. Beleggia et al., Appl. Phys. Lett. 98 (2011) 243101, doi:10.1063/1.3598468 (leakage fields).

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.add.outer(np.arange(32) * 0.1, np.arange(32) * 0.05) + 2.0
    >>> float(np.abs(remove_ramp(ramp, mask=np.ones((32, 32), bool))).max()) < 1e-9
    True
    """
    da = _real_phase(phase)
    m = _mask_array(mask, (da.sizes["y"], da.sizes["x"]))
    if order not in (1, 2):
        raise DataValidationError(f"order: expected 1 (plane) or 2 (quadratic), got {order!r}")
    if np.count_nonzero(m) < 6 * order:
        raise DataValidationError(f"mask: selects {np.count_nonzero(m)} pixels; a ramp fit needs at least {6 * order}")
    out = apply_kernel(_ramp_kernel, da, input_core_dims=[["y", "x"]], output_core_dims=[["y", "x"]],
                       output_dtypes=[np.float64], kwargs={"mask": m, "order": order})
    out = out.transpose(*da.dims)
    out.attrs = {**da.attrs, "units": "rad", "ramp_removed": f"order {order}"}
    return like_input(out, phase)


@accepts_data("wave_a", "wave_b")
def phase_difference(wave_a, wave_b, *, unwrap=True):
    """Difference map between two states, Δφ = φ_a − φ_b (e.g. biased minus unbiased).

    The mean inner potential and thickness cancel, leaving the change of the
    electrostatic potential (plus the change of leakage fields). For complex
    waves the difference is taken as arg(ψ_a·ψ_b*) before unwrapping, which
    avoids unwrapping the large MIP phase of each state separately.

    Parameters
    ----------
    wave_a, wave_b : DataArray or ndarray
        Waves (complex) or unwrapped phases (real) of the same shape.
    unwrap : bool
        Unwrap the difference of complex waves.

    Returns
    -------
    DataArray or ndarray
        Δφ in rad, same type as ``wave_a``.

    References
    ----------
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.exp(1j * np.full((8, 8), 0.5)), np.exp(1j * np.full((8, 8), 0.2))
    >>> round(float(phase_difference(a, b).mean()), 3)
    0.3
    """
    a = _image(wave_a, "wave_a")
    b = _image(wave_b, "wave_b")
    if a.shape != b.shape:
        raise ShapeMismatchError(f"wave_b: shape {b.shape} does not match wave_a's {a.shape}")
    if (a.dtype.kind == "c") != (b.dtype.kind == "c"):
        raise DataValidationError("wave_a/wave_b: pass two complex waves or two real phases, not one of each")
    if a.dtype.kind == "c":
        prod = a * np.conj(b.data)
        out = unwrap_phase(prod) if unwrap else a.copy(data=np.angle(prod.data))
    else:
        out = a - b.data
    out.attrs = {**a.attrs, "units": "rad"}
    out.name = "phase_difference"
    return like_input(out, wave_a)


#: Gaussian smoothing (px) of the waves used only to measure the displacement between bias states.
_ALIGN_SMOOTH_PX = 1.5


def _wave_shift(a, b):
    """Shift (dy, dx) px with b(r + d) ≈ β·a(r): b's specimen displaced by +d relative to a's."""
    from ._register import estimate_drift_array

    return estimate_drift_array(np.stack([a, b]), scale=(1.0, 1.0))[1]


def _roughness(d, moving, fixed, inner, axis):
    """Σ(∂Δφ)² along ``axis`` (wrapped neighbour differences) after moving ``moving`` by −d."""
    from scipy import ndimage

    # ``moving`` holds cubic-spline coefficients (prefiltered once by the caller)
    z = (ndimage.shift(moving, -np.asarray(d), order=3, mode="nearest", prefilter=False) * np.conj(fixed))[inner]
    g = z[1:, :] * np.conj(z[:-1, :]) if axis == 0 else z[:, 1:] * np.conj(z[:, :-1])
    return float(np.sum(np.angle(g) ** 2))


def _refine_by_smoothness(moving, fixed, d0, rounds=4):
    """Refine a displacement so that Δφ is as smooth as possible along each axis.

    A misregistration δ adds, at every edge of the mean-inner-potential phase
    φ₀, the dipole ∂φ₀/∂y·δy + ∂φ₀/∂x·δx, whereas a bias changes the
    potential by steps at the interfaces and smooth leakage fields. Along one
    axis the derivative of such a step (a bump) is orthogonal to the
    derivative of a dipole centred on it, so dy minimises Σ(∂Δφ/∂y)² and dx
    minimises Σ(∂Δφ/∂x)² without bias; the mixed terms of a joint |∇Δφ|²
    are not orthogonal (measured: a joint fit or a wave-to-wave fit was
    pulled by 0.3–0.6 px). The two 1-D minimisations (Brent) alternate.
    """
    from scipy import ndimage, optimize

    ny, nx = fixed.shape
    d = np.asarray(d0, float).copy()
    moving = (ndimage.spline_filter(moving.real, order=3, mode="nearest")
              + 1j * ndimage.spline_filter(moving.imag, order=3, mode="nearest"))
    m = int(np.ceil(np.max(np.abs(d)))) + 2 + max(3, int(round(0.1 * min(ny, nx))))
    inner = (slice(m, ny - m), slice(m, nx - m))
    for _ in range(rounds):
        previous = d.copy()
        for axis in (0, 1):
            def cost(v, axis=axis):
                trial = d.copy()
                trial[axis] = v
                return _roughness(trial, moving, fixed, inner, axis)

            res = optimize.minimize_scalar(cost, bounds=(d[axis] - 2.0, d[axis] + 2.0), method="bounded",
                                           options={"xatol": 1e-3})
            d[axis] = float(res.x)
        if np.max(np.abs(d - previous)) < 2e-3:
            break
    return d


@accepts_data("wave_biased", "wave_unbiased")
def bias_difference(wave_biased, wave_unbiased, *, mask=None, align=True, order=1, voltage_kv=None,
                    thickness_nm=None):
    """Bias-series workflow: align two states, Δφ = φ(V) − φ(0), remove the leakage ramp, ΔV.

    1. ``align``: the specimen drift between the two acquisitions is measured
       — first by a least-squares registration of the waves (each flattened
       over ``mask``: a leakage ramp is not a displacement), then refined so
       that Δφ is as smooth as possible along each axis (a misregistration
       adds dipoles at every mean-inner-potential edge; a bias adds steps,
       which those dipoles are orthogonal to) — and ``wave_biased`` is moved
       onto ``wave_unbiased`` (cubic spline). Measured on simulated 0/1 V
       pairs: ≤ 0.17 px error across interfaces; along an axis whose only
       structure lies near the image border (where the Fourier
       reconstruction rings, fixed on the detector) up to ~0.6 px.
    2. Δφ = arg(ψ_V·ψ_0*), unwrapped: MIP and thickness cancel (SCIENCE.md §4).
    3. The leakage-field ramp is removed by a polynomial fit over ``mask``
       (vacuum or a field-free region; see :func:`remove_ramp`).
    4. With ``voltage_kv`` and ``thickness_nm``, ΔV = Δφ/(C_E·t).

    Parameters
    ----------
    wave_biased, wave_unbiased : DataArray or ndarray
        Complex waves ``(y, x)`` of the two states (e.g. from :func:`reconstruct`
        or :func:`phase_shifting`), same shape.
    mask : ndarray of bool (y, x), optional
        Where Δφ must be flat, in the unbiased wave's frame; without it no ramp
        is removed.
    align : bool
        Register the states first (default True).
    order : {1, 2}
        Ramp polynomial order.
    voltage_kv, thickness_nm : float, optional
        Give ``thickness_nm`` (a scalar or a (y, x) map in nm) to get ΔV; the
        accelerating voltage in kV is the waves' ``beam_energy_kv`` unless
        given (a value that contradicts the data is refused).

    Returns
    -------
    Dataset or dict
        ``phase_difference`` (rad) and, with ``voltage_kv``/``thickness_nm``,
        ``potential_difference`` (V) maps; ``shift_px`` (dy, dx), the measured
        displacement of the biased state (in ``attrs`` for a Dataset). A
        Dataset for DataArray input, a dict of numpy arrays otherwise.

    Raises
    ------
    DataValidationError
        Non-complex waves, bad mask, drift not measurable.
    ShapeMismatchError
        Waves or mask of different shapes.

    References
    ----------
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.

    Examples
    --------
    >>> from ionscope.holography import reconstruct
    >>> from ionscope.simulate import hologram
    >>> h0, r0, t0 = hologram(shape=(128, 128), seed=0)
    >>> h1, r1, _ = hologram(shape=(128, 128), bias_v=1.0, shift_px=(0.0, 2.0), seed=1)
    >>> out = bias_difference(reconstruct(h1, r1, full_size=True), reconstruct(h0, r0, full_size=True),
    ...                       mask=t0.vacuum.values, voltage_kv=200, thickness_nm=60)
    >>> abs(out.attrs["shift_px"][1] - 2.0) < 0.5   # the drift between the states, px
    True
    """
    import xarray as xr
    from scipy import ndimage

    a = _image(wave_biased, "wave_biased")
    b = _image(wave_unbiased, "wave_unbiased")
    for name, da in (("wave_biased", a), ("wave_unbiased", b)):
        if da.dtype.kind != "c" or len(da.dims) != 2:
            raise DataValidationError(f"{name}: expected one complex (y, x) wave, got dtype {da.dtype}, dims {da.dims}")
    a, b = a.transpose("y", "x"), b.transpose("y", "x")
    if a.shape != b.shape:
        raise ShapeMismatchError(f"wave_unbiased: shape {b.shape} does not match wave_biased's {a.shape}")
    if not isinstance(align, (bool, np.bool_)):
        raise DataValidationError(f"align: expected True or False, got {align!r}")
    if voltage_kv is not None and thickness_nm is None:
        raise DataValidationError("voltage_kv: give thickness_nm too to convert Δφ to ΔV (or neither)")
    if thickness_nm is not None:
        voltage_kv = acquisition_value(b, "beam_energy_kv", voltage_kv, argument="voltage_kv")
        acquisition_value(a, "beam_energy_kv", voltage_kv, argument="voltage_kv of wave_unbiased",
                          source="wave_biased")
    m = None if mask is None else _mask_array(mask, a.shape)
    va, vb = np.asarray(a.values, np.complex128), np.asarray(b.values, np.complex128)
    shift = np.zeros(2)
    if align:
        # Register smoothed copies: a spline shift by a fraction of a pixel also
        # low-passes the noise, so on raw (e.g. full-bandwidth phase-shifting)
        # waves any criterion prefers half-pixel shifts (measured: 0.5–1.5 px
        # spurious offsets); after a σ = 1.5 px Gaussian that effect is < 6 %.
        sa, sb = (ndimage.gaussian_filter(w.real, _ALIGN_SMOOTH_PX)
                  + 1j * ndimage.gaussian_filter(w.imag, _ALIGN_SMOOTH_PX) for w in (va, vb))
        reg_a, reg_b = sa, sb
        if m is not None:
            # the leakage ramp differs between the states; a phase ramp is not a
            # displacement, so flatten each wave over the mask before registering
            reg_a, reg_b = (w * np.exp(-1j * (np.angle(w) - remove_ramp(_unwrap_kernel(w), mask=m, order=1)))
                            for w in (sa, sb))
        shift = _refine_by_smoothness(sa, sb, _wave_shift(reg_b, reg_a))
        # move the biased state back onto the unbiased one (spline on the complex wave)
        va = ndimage.shift(va, -shift, order=3, mode="nearest")
    dphi = unwrap_phase(va * np.conj(vb))
    if m is not None:
        dphi = remove_ramp(dphi, mask=m, order=order)
    out = {"phase_difference": dphi}
    if voltage_kv is not None:
        out["potential_difference"] = np.asarray(to_potential(dphi, voltage_kv=voltage_kv, thickness_nm=thickness_nm))
    if not isinstance(wave_biased, xr.DataArray):
        return {**out, "shift_px": (float(shift[0]), float(shift[1]))}
    coords = {k: v for k, v in b.coords.items() if set(v.dims) <= {"y", "x"}}
    ds = xr.Dataset({k: (("y", "x"), v) for k, v in out.items()}, coords=coords)
    ds["phase_difference"].attrs["units"] = "rad"
    if "potential_difference" in ds:
        ds["potential_difference"].attrs["units"] = "V"
    ds.attrs = {"shift_px": [float(shift[0]), float(shift[1])], "aligned": bool(align),
                "ramp_removed": "none" if m is None else f"order {order}"}
    return ds
