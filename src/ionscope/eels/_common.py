# SPDX-License-Identifier: GPL-3.0-or-later
"""Input checks shared by the EELS functions: spectra, energy axis, windows, references."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import as_dataarray, axis_values, check_dims
from ..errors import CalibrationError, DataValidationError, ShapeMismatchError


def spectra(si: Any, *, energy: Any = None, name: str = "si"):
    """Return ``si`` as a DataArray with ``energy`` last and calibrated in eV.

    Plain arrays take their last axis as energy; its calibration comes from
    ``energy`` (1-D eV values). DataArrays may pass ``energy`` only if they lack
    an energy coordinate.
    """
    import xarray as xr

    if isinstance(si, (xr.Dataset,)):
        raise DataValidationError(f"{name}: expected a DataArray or array of spectra, got a Dataset")
    arr_in = si
    if not isinstance(si, xr.DataArray):
        arr = si if hasattr(si, "chunks") and hasattr(si, "dtype") else np.asarray(si)
        if arr.ndim == 0:
            raise ShapeMismatchError(f"{name}: expected spectra with an energy axis, got a scalar")
        if arr.dtype.kind not in "biuf":
            raise DataValidationError(f"{name}: expected real numbers (counts), got dtype {arr.dtype}")
        arr_in = arr
    da = as_dataarray(arr_in, kind="spectrum", name=name)
    check_dims(da.dims)
    if "energy" not in da.dims:
        raise ShapeMismatchError(f"{name}: needs an 'energy' dimension; it has {tuple(da.dims)}")
    if da.dims[-1] != "energy":
        da = da.transpose(..., "energy")
    if energy is not None:
        e = np.asarray(energy, dtype=float).ravel()
        if e.size != da.sizes["energy"]:
            raise ShapeMismatchError(
                f"energy: {e.size} values given but {name} has {da.sizes['energy']} energy channels")
        da = da.assign_coords(energy=("energy", e, {"units": "eV"}))
    if "energy" not in da.coords:
        raise CalibrationError(f"{name}: the energy axis has no calibration; pass energy=<eV values>")
    e = axis_values(da, "energy", name=name)
    if not np.all(np.isfinite(e)) or (e.size > 1 and not np.all(np.diff(e) > 0)):
        raise CalibrationError(f"{name}: energy coordinates must be finite and increasing (eV)")
    if da.dtype.kind not in "biuf":
        raise DataValidationError(f"{name}: expected real numbers (counts), got dtype {da.dtype}")
    return da


def window(energy: np.ndarray, rng: Any, *, name: str, min_channels: int = 2) -> np.ndarray:
    """Channel indices with energy in the closed interval ``rng`` (eV), validated."""
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name}: expected (start_eV, end_eV), got {rng!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise DataValidationError(f"{name}: expected start < end in eV, got ({lo}, {hi})")
    step = float(np.median(np.diff(energy))) if energy.size > 1 else 0.0
    if lo < energy[0] - 0.5 * step or hi > energy[-1] + 0.5 * step:
        # an EELS axis a few eV wide in all, with the window far beyond it, is most likely in keV (or
        # a spectrum's counts read as its axis): say so instead of leaving the user to guess
        hint = (" (the whole axis spans under 2 eV: is it in keV, labelled eV?)"
                if 0 < energy[-1] - energy[0] < 2.0 and hi > 1000 * max(abs(energy[-1]), 1e-3) / 2 else "")
        raise DataValidationError(
            f"{name}=({lo:g}, {hi:g}) eV lies outside the data's energy axis "
            f"{energy[0]:g}–{energy[-1]:g} eV{hint}")
    idx = np.flatnonzero((energy >= lo - 1e-9) & (energy <= hi + 1e-9))
    if idx.size < min_channels:
        raise DataValidationError(
            f"{name}=({lo:g}, {hi:g}) eV holds {idx.size} channel(s); at least {min_channels} are needed")
    return idx


def references(refs: Any, energy: np.ndarray, *, ref_energy: Any = None) -> tuple[list[str], np.ndarray]:
    """Reference spectra resampled onto ``energy``: (names, array (n_energy, M)).

    A DataArray needs dims ``(component, energy)`` (any order) with eV
    coordinates; it is linearly interpolated onto ``energy`` when the axes
    differ. The references must cover ``energy`` (the fit window): extrapolating
    an edge shape would silently invent data.
    """
    import xarray as xr

    if isinstance(refs, xr.DataArray):
        if "energy" not in refs.dims:
            raise ShapeMismatchError(f"references: needs dims ('component', 'energy'), got {refs.dims}")
        if refs.ndim == 1:
            refs = refs.expand_dims(component=["ref0"])
        if set(refs.dims) != {"component", "energy"}:
            raise ShapeMismatchError(f"references: needs dims ('component', 'energy'), got {refs.dims}")
        refs = refs.transpose("component", "energy")
        names = ([str(c) for c in refs.coords["component"].values] if "component" in refs.coords
                 else [f"ref{i}" for i in range(refs.sizes["component"])])
        if "energy" not in refs.coords:
            if refs.sizes["energy"] != energy.size:
                raise CalibrationError("references: no energy coordinate and a different length from the data")
            e_ref = energy
        else:
            e_ref = np.asarray(refs.coords["energy"].values, float)
        values = np.asarray(refs.values, float)
    else:
        values = np.asarray(refs, dtype=float)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2:
            raise ShapeMismatchError(f"references: expected shape (component, energy), got {values.shape}")
        names = [f"ref{i}" for i in range(values.shape[0])]
        if ref_energy is not None:
            e_ref = np.asarray(ref_energy, float)
        elif values.shape[1] == energy.size:
            e_ref = energy
        else:
            raise ShapeMismatchError(
                f"references: {values.shape[1]} energy channels but the data have {energy.size}; "
                "pass a DataArray with an energy coordinate")
    if len(set(names)) != len(names):
        raise DataValidationError(f"references: component names must be unique, got {names}")
    if not np.all(np.isfinite(values)):
        raise DataValidationError("references: NaN/Inf values; expected finite spectra")
    if e_ref.size != values.shape[1]:
        raise ShapeMismatchError("references: energy coordinate length differs from the data length")
    if e_ref.size == energy.size and np.allclose(e_ref, energy, rtol=0, atol=1e-9 * max(1.0, abs(energy[-1]))):
        return names, values.T.copy()
    order = np.argsort(e_ref)
    e_ref, values = e_ref[order], values[:, order]
    step = float(np.median(np.diff(e_ref))) if e_ref.size > 1 else 0.0
    if energy[0] < e_ref[0] - 0.5 * step or energy[-1] > e_ref[-1] + 0.5 * step:
        raise CalibrationError(
            f"references cover {e_ref[0]:g}–{e_ref[-1]:g} eV but the fit window needs "
            f"{energy[0]:g}–{energy[-1]:g} eV; expected references spanning the fit window")
    return names, np.stack([np.interp(energy, e_ref, v) for v in values], axis=1)


def leading_coords(da):
    """Coordinates of ``da`` that do not depend on the energy axis."""
    return {k: v for k, v in da.coords.items() if "energy" not in v.dims}
