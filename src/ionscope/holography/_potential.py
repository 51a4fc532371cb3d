# SPDX-License-Identifier: GPL-3.0-or-later
"""From reconstructed waves to physics: unwrapped phase, projected potential, thickness, ramps, differences."""
from __future__ import annotations

import math

import numpy as np

from ..data import apply_kernel, as_dataarray, like_input, require_dims
from ..errors import DataValidationError, ShapeMismatchError

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


def to_potential(phase, *, voltage_kv, thickness_nm):
    """Projected-mean electrostatic potential V = φ / (C_E·t) in volts.

    Parameters
    ----------
    phase : DataArray or ndarray
        Unwrapped phase in rad (e.g. a bias difference map).
    voltage_kv : float
        Accelerating voltage.
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
    da = _real_phase(phase)
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
