# SPDX-License-Identifier: GPL-3.0-or-later
"""Model EELS edges and backgrounds for the simulator.

Shapes are smooth analytic models, not computed cross-sections: they place the
onsets and main features where the literature puts them (see
``../shared/SCIENCE.md``) so that the analysis code meets the same overlap
problems as with real LiCoO2 spectra — a sharp Li-K peak near 62 eV sitting on
the broad, delayed Co-M2,3 edge that starts near 59.5 eV. Every edge shape is
normalised to a maximum of 1 on a fixed internal grid, so a shape value at a
given energy never depends on how the caller samples the energy axis.

References
----------
M. Saitoh et al., Phys. Chem. Chem. Phys. 20 (2018) 25052, doi:10.1039/c8cp03390k
(Li-K onset near 55 eV, main peak near 62 eV).
R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron Microscope*,
3rd ed., Springer (2011), doi:10.1007/978-1-4419-9583-4 (power-law background,
delayed M2,3 edges, L2,3 white lines).
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from ..data import axis_values, calibrated
from ..errors import DataValidationError

__all__ = ["power_law", "li_k_edge", "co_m_edge", "edge_references", "co_l_references"]

#: Reference energy (eV) at which background amplitudes and the operando dose are defined.
E_REF = 55.0


def _energy_values(energy, *, name: str = "energy") -> np.ndarray:
    """Energy axis (eV) as a 1-D float array from an array or a DataArray with an energy coordinate."""
    if hasattr(energy, "dims") and hasattr(energy, "coords"):
        values = axis_values(energy, "energy", name=name)
    else:
        try:
            values = np.asarray(energy, dtype=float)
        except (TypeError, ValueError):
            raise DataValidationError(
                f"{name}: expected an array of energies in eV, got {type(energy).__name__}") from None
    if values.ndim == 0:
        values = values[None]
    if values.ndim != 1 or values.size == 0:
        raise DataValidationError(f"{name}: expected a 1-D array of energies in eV, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise DataValidationError(f"{name}: holds NaN/Inf; expected finite energies in eV")
    if np.any(values <= 0):
        raise DataValidationError(f"{name}: energies must be > 0 eV (energy loss), got minimum {values.min():g}")
    return values


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise DataValidationError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _like_energy(values: np.ndarray, energy, name: str):
    """Return ``values`` as a DataArray on ``energy``'s coordinate when ``energy`` is a DataArray."""
    if hasattr(energy, "dims") and hasattr(energy, "coords"):
        return calibrated(values, ("energy",), coords={"energy": axis_values(energy, "energy")}, name=name)
    return values


def power_law(energy, *, amplitude=1.0, exponent=3.0, e0=1.0):
    """Power-law background ``amplitude * (E / e0) ** -exponent``.

    Parameters
    ----------
    energy : array_like or DataArray
        Energy loss in eV (> 0). A DataArray contributes its ``energy`` coordinate.
    amplitude : float, array_like or DataArray
        Value at ``E = e0``; arrays broadcast against a trailing energy axis,
        DataArrays (e.g. maps on ``y, x``, numpy- or dask-backed) by dimension name.
    exponent : float, array_like or DataArray
        The exponent r (typically 2–5 for core-loss backgrounds).
    e0 : float
        Reference energy in eV.

    Returns
    -------
    ndarray or DataArray
        Shape ``broadcast(amplitude, exponent) + (n_energy,)``: a DataArray when
        ``amplitude`` or ``exponent`` is one (lazy if they are), or for scalar
        parameters when ``energy`` is one; otherwise an ndarray.

    References
    ----------
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.4,
    doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(power_law(np.array([110.0]), amplitude=8.0, exponent=3.0, e0=55.0)[0]), 12)
    1.0
    """
    e = _energy_values(energy)
    e0 = _positive(e0, "e0")
    if _is_dataarray(amplitude) or _is_dataarray(exponent):
        # labelled maps (e.g. fitted A, r on y, x; numpy- or dask-backed): xarray broadcasts
        # them against the energy axis by name and keeps dask input lazy
        from ..data import check_finite

        for value, name in ((amplitude, "amplitude"), (exponent, "exponent")):
            if _is_dataarray(value):
                check_finite(value.data, name=f"power_law: {name}")
            elif not np.all(np.isfinite(np.asarray(value, dtype=float))) or np.ndim(value):
                raise DataValidationError(
                    f"power_law: {name} must be a finite number or a DataArray when the other is a DataArray")
        e_da = calibrated(e, ("energy",), coords={"energy": e})
        out = amplitude * np.exp(-exponent * np.log(e_da / e0))
        return out.rename("background").transpose(..., "energy")
    amp = np.asarray(amplitude, dtype=float)
    r = np.asarray(exponent, dtype=float)
    if not (np.all(np.isfinite(amp)) and np.all(np.isfinite(r))):
        raise DataValidationError("power_law: amplitude and exponent must be finite")
    # exp(-r log(E/e0)) broadcasts per-pixel exponents in one pass
    out = amp[..., None] * np.exp(-r[..., None] * np.log(e / e0))
    if out.ndim == 1:
        return _like_energy(out, energy, "background")
    return out


def _is_dataarray(obj) -> bool:
    return hasattr(obj, "dims") and hasattr(obj, "coords")


def _softplus(z):
    # smooth, non-negative ramp: onsets are broadened by the spectrometer and core-hole lifetime
    return np.logaddexp(0.0, z)


def _li_k_raw(e, onset, peak, peak_width, onset_width, continuum):
    step = 0.5 * (1.0 + erf((e - onset) / (np.sqrt(2.0) * onset_width)))
    # the near-edge peak of Li-K in Li oxides; a Gaussian centred on `peak`
    near_edge = np.exp(-0.5 * ((e - peak) / peak_width) ** 2)
    # continuum: a hydrogenic-like decay above the onset (∝ E^-3 far above it)
    tail = continuum * (np.maximum(e, onset) / onset) ** -3.0
    return step * (near_edge + tail)


def li_k_edge(energy, *, onset=55.0, peak=62.0, peak_width=1.6, onset_width=0.6, continuum=0.35):
    """Model Li-K edge shape (per Li atom, arbitrary units, maximum 1).

    A broadened step at ``onset`` carrying a near-edge peak at ``peak`` and a
    continuum that decays as E^-3.

    Parameters
    ----------
    energy : array_like or DataArray
        Energy loss in eV.
    onset : float
        Edge onset in eV (Li-K ≈ 55 eV).
    peak : float
        Main near-edge peak in eV (≈ 62 eV in most Li battery materials).
    peak_width : float
        Gaussian sigma of the main peak in eV.
    onset_width : float
        Gaussian sigma of the onset broadening in eV.
    continuum : float
        Height of the continuum just above the onset, relative to the peak.

    Returns
    -------
    ndarray or DataArray
        Same type as ``energy``.

    References
    ----------
    M. Saitoh et al., PCCP 20 (2018) 25052, doi:10.1039/c8cp03390k.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(40.0, 100.0, 0.1)
    >>> round(float(e[np.argmax(li_k_edge(e))]), 1)
    62.0
    """
    e = _energy_values(energy)
    args = (_positive(onset, "onset"), _positive(peak, "peak"), _positive(peak_width, "peak_width"),
            _positive(onset_width, "onset_width"), float(continuum))
    if args[-1] < 0:
        raise DataValidationError(f"continuum must be >= 0, got {continuum!r}")
    return _like_energy(_unit_maximum(_li_k_raw, e, args), energy, "Li")


def _unit_maximum(raw, e, args):
    """``raw(e, *args)`` scaled so that its maximum over onset − 5 … onset + 80 eV is 1."""
    grid = np.linspace(args[0] - 5.0, args[0] + 80.0, 8501)
    return raw(e, *args) / raw(grid, *args).max()


def _co_m_raw(e, onset, rise, decay, onset_width, tail):
    # delayed edge: M2,3 of 3d metals rise over several eV to a broad maximum
    eps = onset_width * _softplus((e - onset) / onset_width)
    shape = eps ** rise * np.exp(-eps / decay)
    # add a slowly decaying continuum so the edge does not vanish above the maximum
    cont = tail * (1.0 - np.exp(-eps / decay)) * (np.maximum(e, onset) / onset) ** -2.0
    return shape / (rise * decay) ** rise / np.exp(-rise) + cont


def co_m_edge(energy, *, onset=59.5, rise=1.3, decay=5.5, onset_width=0.8, tail=0.45):
    """Model Co-M2,3 edge shape (per Co atom, arbitrary units, maximum 1).

    A delayed edge: ``ε^rise · exp(-ε/decay)`` with ``ε`` the smoothed energy
    above ``onset`` (maximum near ``onset + rise·decay`` ≈ 67 eV), plus a
    continuum decaying as E^-2.

    Parameters
    ----------
    energy : array_like or DataArray
        Energy loss in eV.
    onset : float
        Onset in eV (Co-M2,3 begins ≈ 59–60 eV, overlapping Li-K).
    rise, decay : float
        Shape of the broad maximum (dimensionless power, eV).
    onset_width : float
        Smoothing of the onset in eV.
    tail : float
        Relative height of the continuum.

    Returns
    -------
    ndarray or DataArray
        Same type as ``energy``.

    References
    ----------
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §3.6 (delayed
    M2,3 edges of 3d metals), doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(40.0, 100.0, 0.1)
    >>> 64 < float(e[np.argmax(co_m_edge(e))]) < 70
    True
    """
    e = _energy_values(energy)
    args = (_positive(onset, "onset"), _positive(rise, "rise"), _positive(decay, "decay"),
            _positive(onset_width, "onset_width"), float(tail))
    if args[-1] < 0:
        raise DataValidationError(f"tail must be >= 0, got {tail!r}")
    return _like_energy(_unit_maximum(_co_m_raw, e, args), energy, "Co")


def edge_references(energy):
    """Noise-free, background-free Li-K and Co-M2,3 reference spectra.

    A simulated spectrum is exactly ``background + w_Li * ref["Li"] + w_Co * ref["Co"]``
    (see :func:`ionscope.simulate.operando_eels`, whose truth holds the weights).

    Parameters
    ----------
    energy : array_like or DataArray
        Energy loss in eV.

    Returns
    -------
    xarray.DataArray
        Dims ``("component", "energy")``, components ``["Li", "Co"]``, each with maximum 1.

    References
    ----------
    M. Saitoh et al., PCCP 20 (2018) 25052, doi:10.1039/c8cp03390k.

    Examples
    --------
    >>> import numpy as np
    >>> refs = edge_references(np.arange(30.0, 132.0, 0.1))
    >>> refs.component.values.tolist(), refs.dims
    (['Li', 'Co'], ('component', 'energy'))
    """
    e = _energy_values(energy)
    values = np.stack([li_k_edge(e), co_m_edge(e)])
    return calibrated(values, ("component", "energy"), coords={"component": ["Li", "Co"], "energy": e},
                      attrs={"signal_type": "EELS", "title": "Li-K and Co-M2,3 model references"},
                      name="references")


def _pseudo_voigt(e, centre, fwhm, eta=0.5):
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    gauss = np.exp(-0.5 * ((e - centre) / sigma) ** 2)
    lorentz = 1.0 / (1.0 + ((e - centre) / (0.5 * fwhm)) ** 2)
    return eta * lorentz + (1.0 - eta) * gauss


def _co_l(e, *, l3_peaks, l2_peaks, l3_edge=779.0, l2_edge=794.0):
    # continuum: arctan steps with the 2:1 statistical L3:L2 ratio; equal for both
    # compounds, so the two references are normalised to the same number of Co atoms
    cont = 0.1 * (2.0 / 3.0 * (0.5 + np.arctan((e - l3_edge) / 1.0) / np.pi)
                  + 1.0 / 3.0 * (0.5 + np.arctan((e - l2_edge) / 1.0) / np.pi))
    lines = sum(h * _pseudo_voigt(e, c, w) for c, w, h in (*l3_peaks, *l2_peaks))
    return cont + lines


def co_l_references(energy):
    """Co-L2,3 reference spectra of LiCoO2 (Co3+) and Co3O4 (Co2+ + Co3+), per Co atom.

    LiCoO2: L3 white line at 779.0 eV, L2 at 794.0 eV, integrated L3/L2 ≈ 2.4.
    Co3O4: a third of its Co is tetrahedral Co2+, which moves part of the L3
    intensity ~1.6 eV lower (shoulder at 777.4 eV) and raises L3/L2 (≈ 3.0).
    Both share the same continuum steps, i.e. are normalised per Co atom.

    Parameters
    ----------
    energy : array_like or DataArray
        Energy loss in eV (e.g. 760–820 eV).

    Returns
    -------
    xarray.DataArray
        Dims ``("component", "energy")``, components ``["LiCoO2", "Co3O4"]``.

    References
    ----------
    See ``SCIENCE.md`` §2; Co2+/Co3+ L-edge shapes: Y. Nomura et al., Nat. Commun.
    11 (2020) 2824, doi:10.1038/s41467-020-16622-w (Co-L multivariate analysis of
    the LiCoO2/Co3O4 interface layer).

    Examples
    --------
    >>> import numpy as np
    >>> refs = co_l_references(np.arange(760.0, 820.0, 0.25))
    >>> refs.component.values.tolist()
    ['LiCoO2', 'Co3O4']
    """
    e = _energy_values(energy)
    lco = _co_l(e, l3_peaks=((779.0, 1.8, 1.0),), l2_peaks=((794.0, 2.6, 0.4 * 1.8 / 2.6),))
    # Co3O4: same total L3 area split between Co3+ (779.0) and Co2+ (777.4), larger L3/L2
    c34 = _co_l(e, l3_peaks=((779.0, 1.8, 0.72), (777.4, 1.6, 0.45)),
                l2_peaks=((794.0, 2.6, 0.36 * 1.8 / 2.6),))
    return calibrated(np.stack([lco, c34]), ("component", "energy"),
                      coords={"component": ["LiCoO2", "Co3O4"], "energy": e},
                      attrs={"signal_type": "EELS", "title": "Co-L2,3 model references"}, name="references")
