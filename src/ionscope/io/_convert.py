# SPDX-License-Identifier: GPL-3.0-or-later
"""Convert rosettasciio/HyperSpy signal dictionaries to calibrated DataArrays and back.

rosettasciio returns ``{"data", "axes", "metadata", "original_metadata"}``;
HyperSpy signals expose the same information. We name each axis from the
fixed vocabulary, convert units to eV/nm/s, put ``energy`` last (HyperSpy
stores some spectrum images energy-first) and copy the metadata we know.
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import numpy as np

from ..data import METADATA_SCHEMA, UNITS, calibrated, unit_factor
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
    if n == "component":  # reference spectra, factor loadings: labelled, not a length
        return "component"
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


#: ionscope attrs ↔ HyperSpy metadata paths (both directions; the first path is written), derived
#: from the one schema table :data:`ionscope.data.METADATA_SCHEMA` (signal_type, timestamp,
#: dispersion and source file are handled on their own below).
METADATA_MAP = {k: v[3] for k, v in METADATA_SCHEMA.items() if v[3] and k != "signal_type"}
_TEXT_KEYS = {k for k, v in METADATA_SCHEMA.items() if v[0] == "text"}
_INT_KEYS = {k for k, v in METADATA_SCHEMA.items() if v[0] == "int"}
# signal types HyperSpy (with exspy/holospy) knows; others stay in ionscope's own node
_HS_SIGNAL_TYPES = {"EELS": "EELS", "hologram": "hologram"}


def _typed(key: str, value):
    """``value`` as the schema's type for ``key`` (text, int or float)."""
    if key in _TEXT_KEYS:
        return str(value)
    if key in _INT_KEYS:
        return int(value)
    return float(value)


def _slug(key) -> str:
    """A tag name as HyperSpy's metadata browser spells it: words joined by ``_``, punctuation dropped
    ("Integration time (s)" → "Integration_time_s"); the readers' converters look tags up that way."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", str(key)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[-\s]+", "_", re.sub(r"[^\w\s-]", "", text).strip())
    return f"Number_{text}" if text[:1].isdigit() else text


class _Tags(dict):
    """A tag tree reachable both by the file's own names and by their :func:`_slug` spelling, with
    dotted-path ``get`` (what the rosettasciio converters of a ``mapping`` expect of the tree they get)."""

    @classmethod
    def of(cls, tree):
        if not isinstance(tree, dict):
            return tree
        out = cls()
        for k, v in tree.items():
            v = cls.of(v)
            out[k] = v
            out.setdefault(_slug(k), v)
        return out

    def get(self, path, default=None):
        node = self
        for part in str(path).split("."):
            if not isinstance(node, dict):
                return default
            if part in node.keys():
                node = dict.__getitem__(node, part)
            elif _slug(part) in node.keys():
                node = dict.__getitem__(node, _slug(part))
            else:
                return default
        return node

    get_item = get

    def has_item(self, path):
        return self.get(path) is not None


def apply_mapping(sig: dict[str, Any]) -> dict[str, Any]:
    """The signal's metadata tree completed from its ``original_metadata`` through the reader's ``mapping``.

    rosettasciio readers (DM, EMD, ...) return only a minimal ``metadata`` plus a ``mapping`` of
    ``original_metadata`` paths to HyperSpy metadata paths (with an optional conversion function);
    HyperSpy applies it when it builds a signal. Applying it here is what makes ``io.load`` see the
    same beam energy, angles, exposure, microscope and date as ``hs.load`` of the same file.
    """
    import copy

    md = copy.deepcopy(sig.get("metadata") or {})
    original = _Tags.of(sig.get("original_metadata") or {})
    for o_path, target in (sig.get("mapping") or {}).items():
        try:
            m_path, function = target
        except (TypeError, ValueError):
            continue
        value = _get(original, o_path)
        if value is None:
            continue
        if function is not None:
            try:
                value = function(value)
            except Exception:  # a reader's converter failing on an odd tag must not lose the data
                continue
        if value is None:
            continue
        node = md
        *parents, leaf = m_path.split(".")
        for k in parents:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = node[k] = {}
            node = nxt
        node[leaf] = value
    return md


def metadata_to_attrs(md: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Pick ionscope's metadata keys from a HyperSpy-style metadata tree."""
    attrs: dict[str, Any] = {}
    for key, paths in METADATA_MAP.items():
        for path in paths:
            value = _get(md, path)
            if value is None or value == "":
                continue
            try:
                attrs[key] = _typed(key, value)
            except (TypeError, ValueError):
                continue
            break
    st = _get(md, "Signal.signal_type")
    if st:
        attrs["signal_type"] = str(st)
    date, time = _get(md, "General.date"), _get(md, "General.time")
    if date:
        stamp = f"{date}T{time}" if time else str(date)
        try:
            stamp = _dt.datetime.fromisoformat(stamp).isoformat()
        except ValueError:
            pass
        attrs["timestamp"] = stamp
    extra = _get(md, "ionscope.attrs_json")
    if extra:  # written by to_hyperspy / save(.hspy): everything else, exactly
        try:
            attrs.update(json.loads(extra))
        except (TypeError, ValueError):
            pass
    if source:
        attrs["source_file"] = str(source)
    return {k: v for k, v in attrs.items() if v != ""}


def attrs_to_metadata(attrs: dict[str, Any], *, has_energy: bool) -> dict[str, Any]:
    """Inverse of :func:`metadata_to_attrs`: a HyperSpy metadata tree (plus an ``ionscope`` node
    holding every other attribute as JSON, so that a round trip is exact)."""
    md: dict[str, Any] = {"General": {"title": str(attrs.get("title", ""))}, "Signal": {"signal_type": ""}}

    def put(path: str, value) -> None:
        node = md
        *parents, leaf = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value

    used = {"title", "signal_type", "timestamp", "source_file", "dispersion_ev"}
    for key, paths in METADATA_MAP.items():
        if key in attrs and key != "title":
            path = paths[0]
            if key == "exposure_s" and not has_energy:
                path = paths[1]  # an image's exposure belongs to the camera
            try:
                put(path, _typed(key, attrs[key]))
            except (TypeError, ValueError):
                continue  # not a number where the schema wants one: it travels in the ionscope node
            used.add(key)
    st = str(attrs.get("signal_type", "EELS" if has_energy else ""))
    md["Signal"]["signal_type"] = _HS_SIGNAL_TYPES.get(st, "")
    if attrs.get("source_file"):
        md["General"]["original_filename"] = str(attrs["source_file"]).replace("\\", "/").rsplit("/", 1)[-1]
    if "timestamp" in attrs:
        try:
            stamp = _dt.datetime.fromisoformat(str(attrs["timestamp"]))
            md["General"]["date"] = stamp.date().isoformat()
            md["General"]["time"] = stamp.time().isoformat()
        except ValueError:
            pass
    rest = {k: v for k, v in attrs.items() if k not in used or k == "signal_type" and st not in _HS_SIGNAL_TYPES}
    if rest:
        md["ionscope"] = {"attrs_json": json.dumps(rest, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                                    else str(o))}
    return md


def _check_signal(sig: dict[str, Any], source) -> None:
    """Refuse what no calibrated array can be made of, naming the file and the field."""
    from ..errors import DataValidationError

    data = sig.get("data")
    where = source or "signal"
    if data is None or not hasattr(data, "dtype"):
        raise DataValidationError(f"{where}: field 'data' holds no array (got {type(data).__name__})")
    if data.dtype.kind not in "biufc":
        raise DataValidationError(f"{where}: field 'data' has dtype {data.dtype}; expected numbers "
                                  "(counts, intensities or a complex wave)")
    if 0 in np.shape(data):
        raise DataValidationError(f"{where}: field 'data' is empty (shape {np.shape(data)})")
    for i, ax in enumerate(sig.get("axes") or []):
        label = f"{where}: axis {i} ({ax.get('name') or 'unnamed'})"
        if ax.get("axis") is not None:
            v = np.asarray(ax["axis"], float)
            if v.size and (not np.all(np.isfinite(v)) or (v.size > 1 and not (np.all(np.diff(v) > 0)
                                                                               or np.all(np.diff(v) < 0)))):
                raise CalibrationError(f"{label}: field 'axis' must be finite and strictly monotonic")
            continue
        for field_name in ("scale", "offset"):
            value = ax.get(field_name, 1.0 if field_name == "scale" else 0.0)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise CalibrationError(f"{label}: field '{field_name}' is {value!r}; expected a number") from None
            if not np.isfinite(value):
                raise CalibrationError(f"{label}: field '{field_name}' is {value}; expected a finite number")
            if field_name == "scale" and value <= 0:
                raise CalibrationError(f"{label}: field 'scale' is {value}; expected a positive step "
                                       "(units per pixel)")
        size = ax.get("size")
        if size is not None and int(size) != int(np.shape(data)[ax.get("index_in_array", i)]
                                                  if ax.get("index_in_array", i) < np.ndim(data) else -1):
            raise CalibrationError(f"{label}: field 'size' is {size} but the data have shape {np.shape(data)}")


def signal_dict_to_dataarray(sig: dict[str, Any], *, source: str | None = None):
    """Convert one rosettasciio signal dictionary into a calibrated DataArray."""
    data = sig["data"]
    axes = sorted(sig["axes"], key=lambda a: a.get("index_in_array", 0)) if all(
        "index_in_array" in a for a in sig["axes"]) else list(sig["axes"])
    if len(axes) != np.ndim(data):
        raise CalibrationError(
            f"{source}: the file describes {len(axes)} axes for data of shape {np.shape(data)}"
        )
    _check_signal({**sig, "axes": [dict(a, index_in_array=a.get("index_in_array", i)) for i, a in enumerate(axes)]},
                  source)
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
    coords = {}
    for dim, ax in zip(dims, axes):
        if ax.get("axis") is not None:
            factor = unit_factor(ax.get("units"), dim) if dim in UNITS else None
            coords[dim] = np.asarray(ax["axis"], float) * (factor or 1.0)
    md = apply_mapping(sig)
    labels = _get(md, "ionscope.labels_json")
    if labels:  # label coordinates (component names) written by dataarray_to_signal_dict
        try:
            for dim, values in json.loads(labels).items():
                if dim in dims and len(values) == np.shape(data)[dims.index(dim)]:
                    coords[dim] = np.asarray(values)
        except (TypeError, ValueError):
            pass
    attrs = metadata_to_attrs(md, source)
    name = _get(md, "ionscope.name")
    if name and _get(md, "ionscope.title_is_name") and attrs.get("title") == name:
        attrs.pop("title")  # the title was only the array's name (see attrs_to_metadata)
    if "energy" in scale:
        attrs.setdefault("dispersion_ev", scale["energy"])
    da = calibrated(data, dims, scale=scale, offset=offset, coords=coords, attrs=attrs,
                    name=str(name) if name else None)
    if "energy" in da.dims and da.dims[-1] != "energy":
        da = da.transpose(*[d for d in da.dims if d != "energy"], "energy")
    return da


def signal_dims(dims) -> tuple[str, ...]:
    """The signal (non-navigation) dims HyperSpy should see: energy for spectra, (y, x) for images."""
    if "energy" in dims:
        return ("energy",)
    if {"y", "x"} <= set(dims):
        return ("y", "x")
    return (dims[-1],) if dims else ()


def hyperspy_order(da):
    """``da`` transposed so that HyperSpy's layout holds: navigation dims first, signal dims last,
    images as (..., y, x) (so ``s.data.shape == (..., ny, nx)`` and ``s.isig[ix, iy]``)."""
    sig = signal_dims(da.dims)
    nav = [d for d in da.dims if d not in sig]
    return da.transpose(*nav, *sig)


def dataarray_to_signal_dict(da) -> dict[str, Any]:
    """Inverse of :func:`signal_dict_to_dataarray` (for HyperSpy and .hspy writing).

    Dims are put in HyperSpy's layout first (:func:`hyperspy_order`).
    """
    da = hyperspy_order(da)
    sig = signal_dims(da.dims)
    axes = []
    for i, dim in enumerate(da.dims):
        ax: dict[str, Any] = {"name": dim, "size": int(da.sizes[dim]), "index_in_array": i,
                              "navigate": dim not in sig}
        if dim in da.coords and np.issubdtype(da.coords[dim].dtype, np.number):
            v = np.asarray(da.coords[dim].values, float)
            # the end-to-end step is exact to rounding; a stored dispersion is the file's own number
            step = float((v[-1] - v[0]) / (v.size - 1)) if v.size > 1 else 1.0
            if dim == "energy" and np.isclose(float(da.attrs.get("dispersion_ev", np.nan)), step, rtol=1e-6):
                step = float(da.attrs["dispersion_ev"])
            uniform = v.size < 3 or np.allclose(np.diff(v), step, rtol=1e-6, atol=1e-12 * abs(step))
            if uniform:
                ax.update(scale=step, offset=float(v[0]) if v.size else 0.0, units=UNITS.get(dim, ""))
            else:
                ax.update(axis=v, units=UNITS.get(dim, ""))
        axes.append(ax)
    attrs = {k: v for k, v in da.attrs.items()}
    md = attrs_to_metadata(attrs, has_energy="energy" in da.dims)
    labels = {dim: [str(v) for v in np.asarray(da.coords[dim].values).tolist()] for dim in da.dims
              if dim in da.coords and not np.issubdtype(da.coords[dim].dtype, np.number)}
    if labels:  # HyperSpy axes hold numbers only: component names travel in the ionscope node
        md.setdefault("ionscope", {})["labels_json"] = json.dumps(labels)
    if da.name is not None:
        md.setdefault("ionscope", {})["name"] = str(da.name)
        if "title" not in attrs:  # HyperSpy shows the title: let it be the array's name
            md["General"]["title"] = str(da.name)
            md["ionscope"]["title_is_name"] = True
    # rosettasciio's .hspy writer wants a complete HyperSpy signal dictionary
    return {"data": np.asarray(da.data), "axes": axes, "metadata": md, "original_metadata": {},
            "tmp_parameters": {}, "attributes": {"_lazy": False}, "learning_results": {},
            "models": {}, "package_info": {}}
