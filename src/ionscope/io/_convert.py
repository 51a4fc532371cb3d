# SPDX-License-Identifier: GPL-3.0-or-later
"""Convert rosettasciio/HyperSpy signal dictionaries to calibrated DataArrays and back.

rosettasciio returns ``{"data", "axes", "metadata", "original_metadata"}``;
HyperSpy signals expose the same information. We name each axis from the
fixed vocabulary, convert units to eV/nm/s, put ``energy`` last (HyperSpy
stores some spectrum images energy-first) and copy the metadata we know.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from ..data import UNITS, calibrated, unit_factor
from ..errors import CalibrationError

_ENERGY_NAMES = {"energy loss", "energy", "e", "energy-loss"}
_TIME_NAMES = {"time", "t"}
_STACK_NAMES = {"z", "frame", "stack", "slice", "image"}


def _classify(name: str | None, units: str | None, used: set[str]) -> str:
    n = (name or "").strip().lower()
    u = (units or "").strip()
    if n in _ENERGY_NAMES or u in ("eV", "keV", "meV"):
        return "energy"
    if n in _TIME_NAMES or (u in ("s", "ms", "min") and n not in ("x", "y")):
        return "time"
    if n in ("x", "y") and n not in used:
        return n
    if n in _STACK_NAMES:
        return "frame"
    return ""


def dims_from_axes(axes: list[dict[str, Any]]) -> list[str]:
    """Choose one vocabulary name per axis (given in array order)."""
    dims: list[str] = []
    used: set[str] = set()
    for ax in axes:
        d = _classify(ax.get("name"), ax.get("units"), used)
        if not d or d in used:
            d = ""
        dims.append(d)
        used.add(d)
    # Unnamed axes, from the end: x, y, then a frame (stack) axis, then position.
    candidates = [d for d in ("x", "y", "frame", "position") if d not in used]
    for i in reversed(range(len(dims))):
        if not dims[i]:
            dims[i] = candidates.pop(0)
    # A single spatial axis beside energy is a line scan: call it position.
    if "energy" in dims and sum(d in ("x", "y") for d in dims) == 1 and len(dims) == 2:
        dims = ["position" if d in ("x", "y") else d for d in dims]
    return dims


def _get(tree: dict, path: str, default=None):
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def metadata_to_attrs(md: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Pick ionscope's metadata keys from a HyperSpy-style metadata tree."""
    attrs: dict[str, Any] = {}

    def put(key, value, conv=float):
        if value is None:
            return
        try:
            attrs[key] = conv(value)
        except (TypeError, ValueError):
            pass

    put("beam_energy_kv", _get(md, "Acquisition_instrument.TEM.beam_energy"))
    put("convergence_angle_mrad", _get(md, "Acquisition_instrument.TEM.convergence_angle"))
    put("collection_angle_mrad", _get(md, "Acquisition_instrument.TEM.Detector.EELS.collection_angle"))
    put("exposure_s", _get(md, "Acquisition_instrument.TEM.Detector.EELS.exposure")
        or _get(md, "Acquisition_instrument.TEM.Detector.Camera.exposure")
        or _get(md, "Acquisition_instrument.TEM.dwell_time"))
    put("biprism_voltage_v", _get(md, "Acquisition_instrument.TEM.Biprism.voltage"))
    put("title", _get(md, "General.title"), str)
    put("signal_type", _get(md, "Signal.signal_type"), str)
    put("doi", _get(md, "General.doi"), str)
    date, time = _get(md, "General.date"), _get(md, "General.time")
    if date:
        stamp = f"{date}T{time}" if time else str(date)
        try:
            stamp = _dt.datetime.fromisoformat(stamp).isoformat()
        except ValueError:
            pass
        attrs["timestamp"] = stamp
    if source:
        attrs["source_file"] = str(source)
    return {k: v for k, v in attrs.items() if v != ""}


def signal_dict_to_dataarray(sig: dict[str, Any], *, source: str | None = None):
    """Convert one rosettasciio signal dictionary into a calibrated DataArray."""
    data = sig["data"]
    axes = sorted(sig["axes"], key=lambda a: a.get("index_in_array", 0)) if all(
        "index_in_array" in a for a in sig["axes"]) else list(sig["axes"])
    if len(axes) != np.ndim(data):
        raise CalibrationError(
            f"{source}: the file describes {len(axes)} axes for data of shape {np.shape(data)}"
        )
    dims = dims_from_axes(axes)
    scale, offset = {}, {}
    for dim, ax in zip(dims, axes):
        units = ax.get("units")
        s, o = ax.get("scale", 1.0), ax.get("offset", 0.0)
        if ax.get("axis") is not None:  # non-uniform axis: keep explicit values
            continue
        factor = unit_factor(units, dim) if dim in UNITS else None
        uncalibrated = (units in (None, "", "<undefined>")) and float(s) == 1.0 and float(o) == 0.0
        if dim in UNITS and factor is not None and not uncalibrated:
            scale[dim] = float(s) * factor
            offset[dim] = float(o) * factor
        # otherwise: leave the axis without coordinates (uncalibrated)
    coords = {dim: np.asarray(ax["axis"], float) for dim, ax in zip(dims, axes) if ax.get("axis") is not None}
    attrs = metadata_to_attrs(sig.get("metadata") or {}, source)
    if "energy" in scale:
        attrs.setdefault("dispersion_ev", scale["energy"])
    da = calibrated(data, dims, scale=scale, offset=offset, coords=coords, attrs=attrs)
    if "energy" in da.dims and da.dims[-1] != "energy":
        da = da.transpose(*[d for d in da.dims if d != "energy"], "energy")
    return da


def dataarray_to_signal_dict(da) -> dict[str, Any]:
    """Inverse of :func:`signal_dict_to_dataarray` (for HyperSpy and .hspy writing)."""
    axes = []
    signal_dims = ("energy",) if "energy" in da.dims else tuple(d for d in ("y", "x") if d in da.dims)
    for i, dim in enumerate(da.dims):
        ax: dict[str, Any] = {"name": dim, "size": int(da.sizes[dim]), "index_in_array": i,
                              "navigate": dim not in signal_dims}
        if dim in da.coords and da.coords[dim].size > 1 and np.issubdtype(da.coords[dim].dtype, np.number):
            v = np.asarray(da.coords[dim].values, float)
            ax.update(scale=float(v[1] - v[0]), offset=float(v[0]), units=UNITS.get(dim, ""))
        axes.append(ax)
    tem: dict[str, Any] = {}
    if "beam_energy_kv" in da.attrs:
        tem["beam_energy"] = float(da.attrs["beam_energy_kv"])
    if "convergence_angle_mrad" in da.attrs:
        tem["convergence_angle"] = float(da.attrs["convergence_angle_mrad"])
    if "collection_angle_mrad" in da.attrs:
        tem.setdefault("Detector", {}).setdefault("EELS", {})["collection_angle"] = float(
            da.attrs["collection_angle_mrad"])
    md: dict[str, Any] = {"General": {"title": str(da.attrs.get("title", da.name or ""))},
                          "Signal": {"signal_type": str(da.attrs.get("signal_type",
                                                                     "EELS" if "energy" in da.dims else ""))}}
    if tem:
        md["Acquisition_instrument"] = {"TEM": tem}
    # rosettasciio's .hspy writer wants a complete HyperSpy signal dictionary
    return {"data": np.asarray(da.data), "axes": axes, "metadata": md, "original_metadata": {},
            "tmp_parameters": {}, "attributes": {"_lazy": False}, "learning_results": {},
            "models": {}, "package_info": {}}
