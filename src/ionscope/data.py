# SPDX-License-Identifier: GPL-3.0-or-later
"""The calibrated data model shared by every ionscope module.

Data are :class:`xarray.DataArray` objects, backed by numpy or dask, whose
dimension names come from one fixed vocabulary (:data:`DIMS`) and whose
coordinates carry physical units in a ``units`` attribute (eV, nm, s).
Acquisition metadata live in ``attrs`` under the keys of :data:`METADATA_KEYS`.

Every public function takes its data through one adapter, :func:`as_data` (owned by
:mod:`ionscope.io`): a DataArray, a Dataset, a HyperSpy signal or a numpy array.

Algorithms are written as plain array kernels (``f(ndarray, *, axis=...)``);
:func:`apply_kernel` is the one place where a kernel is mapped over the chunks
of a labelled array, so that the same call runs in memory, on threads, or on a
dask cluster.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import CalibrationError, DataValidationError, ShapeMismatchError

#: The fixed vocabulary of dimension names.
DIMS = ("time", "frame", "y", "x", "energy", "position", "component")

#: Physical unit of each calibrated dimension (``frame``/``component`` are indices/labels).
UNITS = {"time": "s", "y": "nm", "x": "nm", "energy": "eV", "position": "nm"}

#: The acquisition-metadata schema: one table, shared by every reader, writer and the HyperSpy
#: bridge. Each ``attrs`` key maps to ``(type, unit, meaning, HyperSpy metadata paths)``; readers
#: take the first path present, writers use the first (``exposure_s`` of an image goes to the
#: camera). Units are fixed by the key's suffix (``_kv``, ``_mrad``, ``_s``, ``_v``, ``_mm``).
#: Documented for users in ``docs/data_model.md``.
METADATA_SCHEMA: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "title": ("text", "", "the file's own title (as the microscope software or HyperSpy wrote it)",
              ("General.title",)),
    "beam_energy_kv": ("float", "kV", "accelerating voltage", ("Acquisition_instrument.TEM.beam_energy",)),
    "convergence_angle_mrad": ("float", "mrad", "probe convergence semi-angle",
                               ("Acquisition_instrument.TEM.convergence_angle",)),
    "collection_angle_mrad": ("float", "mrad", "spectrometer collection semi-angle",
                              ("Acquisition_instrument.TEM.Detector.EELS.collection_angle",)),
    "exposure_s": ("float", "s", "exposure per spectrum or image (the dwell time of a spectrum image)",
                   ("Acquisition_instrument.TEM.Detector.EELS.exposure",
                    "Acquisition_instrument.TEM.Detector.Camera.exposure",
                    "Acquisition_instrument.TEM.Detector.EELS.dwell_time",
                    "Acquisition_instrument.TEM.dwell_time")),
    "frames_summed": ("int", "", "number of read-outs summed into each spectrum",
                      ("Acquisition_instrument.TEM.Detector.EELS.frame_number",)),
    "acquisition_mode": ("text", "", "TEM or STEM", ("Acquisition_instrument.TEM.acquisition_mode",)),
    "camera_length_mm": ("float", "mm", "camera length", ("Acquisition_instrument.TEM.camera_length",)),
    "magnification": ("float", "", "indicated magnification", ("Acquisition_instrument.TEM.magnification",)),
    "biprism_voltage_v": ("float", "V", "biprism voltage (holography)",
                          ("Acquisition_instrument.TEM.Biprism.voltage",)),
    "microscope": ("text", "", "microscope name", ("Acquisition_instrument.TEM.microscope",)),
    "spectrometer": ("text", "", "spectrometer name",
                     ("Acquisition_instrument.TEM.Detector.EELS.spectrometer",)),
    "timestamp": ("text", "", "acquisition start, ISO 8601 (HyperSpy: General.date + General.time)", ()),
    "doi": ("text", "", "DOI of the data or its paper", ("General.doi",)),
    "authors": ("text", "", "who acquired the data", ("General.authors",)),
    "notes": ("text", "", "free-text notes", ("General.notes",)),
    "sample": ("text", "", "specimen description", ("Sample.description",)),
    "signal_type": ("text", "", "EELS, hologram, image, limap, ...", ("Signal.signal_type",)),
    "dispersion_ev": ("float", "eV", "energy per channel (the file's own number)", ()),
    "source_file": ("text", "", "path of the file the data came from", ()),
}

#: Acquisition metadata keys understood across ionscope (all optional): key → meaning with unit.
METADATA_KEYS = {k: (f"{v[2]} in {v[1]}" if v[1] else v[2]) for k, v in METADATA_SCHEMA.items()}

# Length units we convert to nm so that every spatial axis is in nm.
_LENGTH_TO_NM = {
    "nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "micron": 1e3, "mm": 1e6, "m": 1e9,
    "pm": 1e-3, "Å": 0.1, "A": 0.1, "angstrom": 0.1,
}
_TIME_TO_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}
_ENERGY_TO_EV = {"eV": 1.0, "keV": 1e3, "meV": 1e-3}

# Default dims for a plain array, by number of dimensions, for each kind of data.
_DEFAULT_DIMS = {
    "spectrum": {1: ("energy",), 2: ("position", "energy"), 3: ("y", "x", "energy"),
                 4: ("time", "y", "x", "energy")},
    "image": {2: ("y", "x"), 3: ("time", "y", "x")},
}


def _xr():
    import xarray as xr  # lazy: keeps ``import ionscope`` fast

    return xr


def unit_factor(unit: str | None, dim: str) -> float | None:
    """Factor converting ``unit`` to ionscope's unit for ``dim`` (None if unknown).

    Parameters
    ----------
    unit : str or None
        A unit as a file writes it (``"µm"``, ``"keV"``, ``"ms"``, ...).
    dim : str
        The dimension it calibrates: ``"energy"`` (to eV), ``"time"`` (to s), any other (a length, to nm).

    Returns
    -------
    float or None
        Multiply values in ``unit`` by this to get ionscope's unit; None for an unknown or missing unit.

    Examples
    --------
    >>> unit_factor("µm", "x"), unit_factor("keV", "energy"), unit_factor("furlong", "x")
    (1000.0, 1000.0, None)
    """
    if unit is None:
        return None
    u = str(unit).strip()
    table = {"energy": _ENERGY_TO_EV, "time": _TIME_TO_S}.get(dim, _LENGTH_TO_NM)
    return table.get(u)


def calibrated(
    data: Any,
    dims: Sequence[str],
    *,
    scale: Mapping[str, float] | None = None,
    offset: Mapping[str, float] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
):
    """Build a calibrated DataArray from an array and per-axis scale/offset.

    Parameters
    ----------
    data : array_like or dask array
        The values.
    dims : sequence of str
        Dimension names, each from :data:`DIMS`.
    scale, offset : mapping, optional
        Linear calibration ``coord = offset + scale * index`` per dimension, in
        the units of :data:`UNITS`.
    coords : mapping, optional
        Explicit coordinates (override ``scale``/``offset``), e.g. component names.
    attrs : mapping, optional
        Metadata (see :data:`METADATA_KEYS`).
    name : str, optional
        The DataArray's name.

    Returns
    -------
    xarray.DataArray
        ``data`` (not copied) on ``dims``, with a ``units`` attribute on every calibrated coordinate.

    Raises
    ------
    DataValidationError
        A dimension name outside :data:`DIMS`, or a repeated one.
    ShapeMismatchError
        ``dims`` and ``data`` disagree on the number of axes.

    Examples
    --------
    >>> import numpy as np
    >>> da = calibrated(np.zeros((4, 100)), ("position", "energy"),
    ...                 scale={"energy": 0.25, "position": 1.0}, offset={"energy": 30.0})
    >>> float(da.energy[1]), da.energy.attrs["units"]
    (30.25, 'eV')
    """
    xr = _xr()
    dims = tuple(dims)
    check_dims(dims)
    if len(dims) != np.ndim(data):
        raise ShapeMismatchError(
            f"dims {dims} name {len(dims)} axes but the data have {np.ndim(data)} (shape {np.shape(data)})"
        )
    scale = dict(scale or {})
    offset = dict(offset or {})
    out_coords: dict[str, Any] = {}
    for axis, dim in enumerate(dims):
        n = np.shape(data)[axis]
        if coords and dim in coords:
            values = np.asarray(coords[dim])
        elif dim in scale or dim in offset:
            values = offset.get(dim, 0.0) + scale.get(dim, 1.0) * np.arange(n, dtype=float)
        else:
            continue
        unit = UNITS.get(dim)
        out_coords[dim] = (dim, values, {"units": unit} if unit else {})
    for key, value in (coords or {}).items():
        if key not in dims:  # non-dimension coordinates (e.g. per-frame voltage)
            out_coords[key] = value
    da = xr.DataArray(data, dims=dims, coords=out_coords, attrs=dict(attrs or {}), name=name)
    if name is None:
        # xarray names an unnamed DataArray after a dask array's graph key ('array-e16888…'); that
        # key is no name of the data and would become the title of a converted file
        da.name = None
    return da


def check_dims(dims: Iterable[Hashable]) -> None:
    """Raise :class:`DataValidationError` if a dimension name is outside :data:`DIMS` or repeated.

    Parameters
    ----------
    dims : iterable of str
        Dimension names.

    Raises
    ------
    DataValidationError
        An unknown or a repeated name (the message lists the vocabulary).

    Examples
    --------
    >>> check_dims(("time", "y", "x"))
    >>> check_dims(("t", "y"))
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: unknown dimension name(s) ['t']; expected names from ('time', 'frame', 'y', 'x', 'energy', 'position', 'component')
    """
    bad = [d for d in dims if d not in DIMS]
    if bad:
        raise DataValidationError(f"unknown dimension name(s) {bad}; expected names from {DIMS}")
    if len(set(dims)) != len(tuple(dims)):
        raise DataValidationError(f"repeated dimension name in {tuple(dims)}")


def as_dataarray(obj: Any, *, kind: str = "spectrum", dims: Sequence[str] | None = None, name: str = "data"):
    """Return ``obj`` as a DataArray; plain arrays get default dims for ``kind``.

    A DataArray is returned unchanged (after checking its dims); a Dataset (its
    one variable, or its main one), a HyperSpy signal and anything else go through
    the one input adapter :func:`ionscope.io.as_data`.

    Parameters
    ----------
    obj : DataArray, Dataset, HyperSpy signal, ndarray or dask array
        The data.
    kind : {"spectrum", "image"}
        Default dims of a plain array: ``"spectrum"`` (last axis ``energy``;
        1-4 dimensions) or ``"image"`` (last two axes ``y, x``; 2-3 dimensions).
    dims : sequence of str, optional
        The dims the data must have (checked on a DataArray, given to a plain array).
    name : str
        How the data are named in error messages.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ShapeMismatchError
        A DataArray with other dims than ``dims``, or a plain array with an unexpected number of dimensions.
    DataValidationError
        An unknown ``kind`` or an input the adapter cannot read.

    Examples
    --------
    >>> import numpy as np
    >>> as_dataarray(np.zeros((3, 4, 10))).dims
    ('y', 'x', 'energy')
    >>> as_dataarray(np.zeros((5, 8, 8)), kind="image").dims
    ('time', 'y', 'x')
    """
    xr = _xr()
    if not isinstance(obj, xr.DataArray) and not (hasattr(obj, "chunks") and hasattr(obj, "dtype")):
        from .io._inputs import as_data

        obj = as_data(obj, name=name)
    if isinstance(obj, xr.DataArray):
        if dims is not None and tuple(obj.dims) != tuple(dims):
            raise ShapeMismatchError(f"{name}: expected dims {tuple(dims)}, got {obj.dims}")
        return obj
    arr = obj if hasattr(obj, "chunks") and hasattr(obj, "dtype") else np.asarray(obj)
    if dims is None:
        table = _DEFAULT_DIMS.get(kind)
        if table is None:
            raise DataValidationError(f"unknown kind {kind!r}; expected one of {sorted(_DEFAULT_DIMS)}")
        if arr.ndim not in table:
            raise ShapeMismatchError(
                f"{name}: a plain {kind} array must have {sorted(table)} dimensions, got shape {arr.shape}"
            )
        dims = table[arr.ndim]
    return calibrated(arr, dims, name=None)


def as_data(obj: Any, **kwargs):
    """The one input adapter, :func:`ionscope.io.as_data` (re-exported here beside :func:`as_dataarray`).

    A DataArray, a Dataset (``var=``), a HyperSpy signal or a numpy/dask array in; one
    :class:`~ionscope.errors.DataValidationError` that says what to pass otherwise.

    Parameters
    ----------
    obj : DataArray, Dataset, HyperSpy signal or array
        The data.
    **kwargs
        Passed on to :func:`ionscope.io.as_data` (``var=``, ``name=``, ...).

    Returns
    -------
    xarray.DataArray or ndarray
        What :func:`ionscope.io.as_data` returns.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"li": (("y", "x"), [[1.0, 2.0]])})
    >>> as_data(ds).name
    'li'
    """
    from .io._inputs import as_data as _as_data

    return _as_data(obj, **kwargs)


def like_input(result, template: Any):
    """Return ``result`` (a DataArray) as the same type as ``template`` (ndarray in, ndarray out).

    Labelled inputs (a DataArray, a Dataset, a HyperSpy signal) give a DataArray.

    Parameters
    ----------
    result : DataArray
        A function's labelled result.
    template : object
        What the user passed in.

    Returns
    -------
    DataArray or ndarray
        ``result`` for labelled input, else its underlying array (numpy or dask).

    Examples
    --------
    >>> import numpy as np
    >>> da = as_dataarray(np.ones(5))
    >>> type(like_input(da, np.ones(5))).__name__, type(like_input(da, da)).__name__
    ('ndarray', 'DataArray')
    """
    xr = _xr()
    if isinstance(template, (xr.DataArray, xr.Dataset)) or (hasattr(template, "axes_manager")
                                                           and hasattr(template, "metadata")):
        return result
    if isinstance(result, xr.DataArray):
        return result.data
    return result


def require_dims(da, required: Iterable[str], *, name: str = "data") -> None:
    """Raise :class:`ShapeMismatchError` unless ``da`` has every dimension in ``required``.

    Parameters
    ----------
    da : DataArray
        The data.
    required : iterable of str
        Dimensions it must have.
    name : str
        How the data are named in the message.

    Raises
    ------
    ShapeMismatchError
        A dimension is missing (the message names it and the dims present).

    Examples
    --------
    >>> import numpy as np
    >>> require_dims(as_dataarray(np.ones(5)), ["energy"])
    >>> require_dims(as_dataarray(np.ones(5)), ["y", "x"], name="map")
    Traceback (most recent call last):
    ...
    ionscope.errors.ShapeMismatchError: map: missing dimension(s) ['y', 'x']; it has ('energy',)
    """
    missing = [d for d in required if d not in da.dims]
    if missing:
        raise ShapeMismatchError(f"{name}: missing dimension(s) {missing}; it has {tuple(da.dims)}")


def axis_values(da, dim: str, *, name: str = "data") -> np.ndarray:
    """Calibrated coordinate of ``dim`` as a float array; :class:`CalibrationError` if absent.

    Parameters
    ----------
    da : DataArray
        The data.
    dim : str
        The dimension.
    name : str
        How the data are named in error messages.

    Returns
    -------
    ndarray
        The coordinate values (float64), in the units of :data:`UNITS`.

    Raises
    ------
    ShapeMismatchError
        ``da`` has no dimension ``dim``.
    CalibrationError
        The dimension has no coordinate.

    Examples
    --------
    >>> import numpy as np
    >>> da = calibrated(np.zeros(3), ("energy",), scale={"energy": 0.5}, offset={"energy": 50.0})
    >>> axis_values(da, "energy").tolist()
    [50.0, 50.5, 51.0]
    """
    require_dims(da, [dim], name=name)
    if dim not in da.coords:
        raise CalibrationError(
            f"{name}: axis {dim!r} has no calibration; expected coordinates in {UNITS.get(dim, 'physical units')}"
        )
    return np.asarray(da.coords[dim].values, dtype=float)


def axis_scale(da, dim: str, *, name: str = "data", rtol: float = 1e-3) -> float:
    """Uniform step of a calibrated axis; :class:`CalibrationError` if absent or non-uniform.

    Parameters
    ----------
    da : DataArray
        The data.
    dim : str
        The dimension.
    name : str
        How the data are named in error messages.
    rtol : float
        Largest relative deviation of any step from the median step.

    Returns
    -------
    float
        The median step, in the units of :data:`UNITS`.

    Raises
    ------
    CalibrationError
        No coordinate, fewer than 2 points, or steps that differ by more than ``rtol``.

    Examples
    --------
    >>> import numpy as np
    >>> axis_scale(calibrated(np.zeros(4), ("energy",), scale={"energy": 0.25}), "energy")
    0.25
    """
    values = axis_values(da, dim, name=name)
    if values.size < 2:
        raise CalibrationError(f"{name}: axis {dim!r} has fewer than 2 points; cannot infer its step")
    steps = np.diff(values)
    step = float(np.median(steps))
    if step == 0 or np.max(np.abs(steps - step)) > rtol * abs(step):
        raise CalibrationError(f"{name}: axis {dim!r} is not uniformly sampled (steps {steps.min()}..{steps.max()})")
    return step


def check_finite(values: Any, *, name: str = "data") -> None:
    """Raise :class:`DataValidationError` if ``values`` (numpy) hold NaN or Inf.

    Dask arrays are not computed here; kernels check their own blocks.

    Parameters
    ----------
    values : array_like
        The values.
    name : str
        How the data are named in the message.

    Raises
    ------
    DataValidationError
        NaN/Inf found (the message counts them).

    Examples
    --------
    >>> import numpy as np
    >>> check_finite(np.ones(3))
    >>> check_finite(np.array([1.0, np.nan]), name="si")
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: si: 1 NaN/Inf value(s) in the counts; expected finite numbers (mask or replace them first)
    """
    if hasattr(values, "dask"):
        return
    arr = np.asarray(values)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataValidationError(
            f"{name}: {n_bad} NaN/Inf value(s) in the counts; expected finite numbers "
            "(mask or replace them first)"
        )


def apply_kernel(
    kernel: Callable[..., Any],
    *arrays,
    input_core_dims: Sequence[Sequence[str]],
    output_core_dims: Sequence[Sequence[str]] = ((),),
    output_sizes: Mapping[str, int] | None = None,
    output_dtypes: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    vectorize: bool = False,
):
    """Map an array kernel over the chunks of labelled arrays.

    The kernel receives numpy blocks whose core dimensions are moved last, in
    the order given by ``input_core_dims``. Core dimensions are rechunked to a
    single chunk *explicitly* here (a kernel needs the whole spectrum or image);
    loop dimensions keep the user's chunks. In-memory inputs are processed in
    memory with no dask overhead.

    Parameters
    ----------
    kernel : callable
        ``kernel(*blocks, **kwargs) -> ndarray`` (or a tuple of arrays, one per output).
    *arrays : DataArray
        The inputs.
    input_core_dims : sequence of sequence of str
        The core dimensions of each input (moved last, whole in every block).
    output_core_dims : sequence of sequence of str
        The core dimensions of each output.
    output_sizes : mapping, optional
        Sizes of output core dimensions that no input has.
    output_dtypes : sequence of dtype, optional
        Output dtypes (needed for dask inputs).
    kwargs : mapping, optional
        Keyword arguments for the kernel.
    vectorize : bool
        Loop the kernel over the loop dimensions (for kernels that take one core block only).

    Returns
    -------
    DataArray or tuple of DataArray
        Lazy when an input is dask-backed; the first input's attrs are kept.

    Examples
    --------
    >>> import numpy as np
    >>> da = calibrated(np.arange(6.0).reshape(2, 3), ("position", "energy"))
    >>> apply_kernel(lambda b: b.sum(axis=-1), da, input_core_dims=[["energy"]]).values.tolist()
    [3.0, 12.0]
    """
    xr = _xr()
    out_core = [list(d) for d in output_core_dims]
    prepared = []
    for arr, core in zip(arrays, input_core_dims):
        if isinstance(arr, xr.DataArray) and arr.chunks is not None:
            single = {d: -1 for d in core if d in arr.dims}
            if single:
                arr = arr.chunk(single)
        prepared.append(arr)
    result = xr.apply_ufunc(
        kernel,
        *prepared,
        input_core_dims=[list(d) for d in input_core_dims],
        output_core_dims=out_core,
        kwargs=dict(kwargs or {}),
        dask="parallelized",
        vectorize=vectorize,
        output_dtypes=list(output_dtypes) if output_dtypes is not None else None,
        dask_gufunc_kwargs={"output_sizes": dict(output_sizes or {}), "allow_rechunk": False},
        keep_attrs=True,
    )
    return result


def encodable_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes that Zarr and NetCDF store natively; the rest go into one JSON string.

    Scalars (str, int, float, numpy numbers) are kept as they are; booleans (which
    NetCDF cannot store), lists, dicts and arrays are gathered under ``ionscope_json`` (read back by
    :func:`decode_attrs`), so every store ionscope writes opens in any Zarr or
    NetCDF reader.

    Parameters
    ----------
    attrs : mapping
        Attributes of a DataArray or Dataset.

    Returns
    -------
    dict
        Attributes every Zarr and NetCDF writer accepts.

    Examples
    --------
    >>> enc = encodable_attrs({"beam_energy_kv": 200.0, "shift": [1, 2]})
    >>> enc["beam_energy_kv"], decode_attrs(enc)["shift"]
    (200.0, [1, 2])
    """
    import json

    def default(o):
        return o.tolist() if hasattr(o, "tolist") else str(o)

    plain: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in attrs.items():
        if isinstance(v, (bool, np.bool_)):
            extra[k] = bool(v)  # NetCDF has no boolean attribute: JSON keeps True as True (not 1)
        elif isinstance(v, (str, int, float, np.integer, np.floating)):
            plain[k] = v.item() if isinstance(v, np.generic) else v
        else:
            try:
                json.dumps(v, default=default)
                extra[k] = v
            except (TypeError, ValueError):
                extra[k] = str(v)
    if extra:
        plain["ionscope_json"] = json.dumps(extra, default=default)
    return plain


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encodable_attrs` (also drops ionscope's bookkeeping keys).

    Parameters
    ----------
    attrs : mapping
        Attributes as read from a Zarr or NetCDF store.

    Returns
    -------
    dict
        The attributes with ``ionscope_json`` unpacked into their own keys.

    Examples
    --------
    >>> decode_attrs({"dose": 5.0, "ionscope_json": '{"flags": [true]}'})
    {'dose': 5.0, 'flags': [True]}
    """
    import json

    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if k == "ionscope_json":
            try:
                out.update(json.loads(v))
            except (TypeError, ValueError):
                pass
        elif k != "ionscope_variable":
            out[k] = v
    return out
