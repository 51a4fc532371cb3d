# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..data import check_dims, check_finite, decode_attrs, encodable_attrs
from ..errors import (
    CalibrationError,
    DataValidationError,
    FileFormatError,
    IonscopeError,
)
from ._convert import dataarray_to_signal_dict, signal_dict_to_dataarray
from ._inputs import accepts_data

# extension → rosettasciio plugin module, tried in order
_RSCIIO = {
    ".dm3": ["rsciio.digitalmicrograph"],
    ".dm4": ["rsciio.digitalmicrograph"],
    ".emd": ["rsciio.emd"],
    ".hspy": ["rsciio.hspy"],
    ".hdf5": ["rsciio.hspy", "rsciio.emd"],
    ".h5": ["rsciio.hspy", "rsciio.emd"],
    ".msa": ["rsciio.msa"],
    ".ems": ["rsciio.msa"],
}
_NETCDF = {".nc", ".netcdf", ".nc4"}
SUPPORTED = sorted(set(_RSCIIO) | _NETCDF | {".zarr"})
# Zarr format 2: its on-disk spec covers every dtype we store (component names are strings,
# which format 3 still lists as unstable) and every Zarr reader opens it.
ZARR_FORMAT = 2


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def load(path, *, signal: int = 0, lazy: bool | None = None, chunks: Any = None, reader: str | None = None,
         allow_nonfinite: bool = False, var: str | None = None, group: str | None = None):
    """Load a file as a calibrated :class:`xarray.DataArray`.

    Zarr and NetCDF files of several variables (e.g. the output of
    ``ionscope limap``) come back as an :class:`xarray.Dataset`; ``var``
    picks one as a DataArray.

    Parameters
    ----------
    path : str or Path
        .dm3, .dm4, .emd, .hspy, .hdf5/.h5, .msa, .zarr (directory) or .nc.
    signal : int
        Which signal of a file that holds several (e.g. a Velox .emd).
    lazy : bool, optional
        True: a dask-backed array. False: the values read into memory now
        (a damaged Zarr chunk is then refused here). Default: Zarr stores
        dask-backed, every other format in memory.
    chunks : optional
        Dask chunks for lazy arrays.
    reader : str, optional
        Force a rosettasciio plugin, e.g. ``"HSPY"`` for an ambiguous ``.hdf5``.
    allow_nonfinite : bool
        Microscope counts are finite; by default NaN/Inf in an in-memory
        file raise :class:`DataValidationError`. Set True for derived maps
        that use NaN as a mask.
    var : str, optional
        Zarr/NetCDF: the variable to return (default: the only one, or all).
    group : str, optional
        Zarr/NetCDF: a sub-group, e.g. a stage of a run's ``cache.zarr``.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Dimensions from ``ionscope.data.DIMS`` (``energy`` last for spectra),
        coordinates in eV / nm / s, metadata in ``attrs``.

    Raises
    ------
    FileFormatError
        Missing, truncated, corrupt or unsupported file.
    DataValidationError
        NaN/Inf in the counts (unless ``allow_nonfinite``).

    Examples
    --------
    >>> da = load("../shared/data/real/EELS_STO.dm3")  # doctest: +SKIP
    >>> da.dims, float(da.energy[0]), float(da.energy[1] - da.energy[0])  # doctest: +SKIP
    (('energy',), 350.0, 0.25)
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if reader is not None:
        _check_reader(reader, path)
    ext = _suffix(path)
    if _is_zarr(path):
        obj = _load_zarr(path, chunks=chunks, var=var, group=group)
        return obj.load() if lazy is False else obj  # a damaged chunk: FileFormatError naming it (ChunkReader)
    if ext in _NETCDF:
        return _load_netcdf(path, chunks=chunks if lazy else None, var=var, group=group)
    if reader is not None:
        modules = [f"rsciio.{reader.lower()}"]
    elif ext in _RSCIIO:
        modules = _RSCIIO[ext]
    else:
        raise FileFormatError(f"{path}: unsupported file extension {ext!r}; expected one of {SUPPORTED}")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, expected a {ext} file")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: the file is empty")
    errors = []
    for module in modules:
        try:
            signals = _read_rsciio(module, path, lazy=bool(lazy))
        except IonscopeError:
            raise
        except Exception as exc:  # rosettasciio raises anything for a corrupt file
            errors.append(f"{module}: {type(exc).__name__}: {exc}")
            continue
        if not signals:
            errors.append(f"{module}: no signal in the file")
            continue
        if not 0 <= signal < len(signals):
            raise FileFormatError(f"{path}: signal={signal} requested but the file holds {len(signals)} signal(s)")
        da = signal_dict_to_dataarray(signals[signal], source=str(path))
        if not allow_nonfinite:
            check_finite(da.data, name=f"{path} (field 'data')")
        if len(signals) > 1:
            da.attrs["n_signals_in_file"] = len(signals)
        if lazy and chunks is not None:
            da = da.chunk(chunks)
        return da
    detail = "; ".join(errors)
    raise FileFormatError(f"{path}: could not read the file as {ext} (truncated or corrupt?): {detail}")


def _check_reader(reader: str, path: Path) -> None:
    """A forced reader must be a rosettasciio plugin: a misspelt one was silently ignored for stores and logs."""
    import rsciio

    names = sorted(str(p["name"]) for p in rsciio.IO_PLUGINS)
    if str(reader).lower() not in {n.lower() for n in names}:
        raise FileFormatError(f"{path}: reader {reader!r} is not a rosettasciio plugin; expected one of "
                              f"{', '.join(names)}")


def _read_rsciio(module: str, path: Path, *, lazy: bool):
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise FileFormatError(f"{path}: reader {module} is not available ({exc})") from None
    kwargs = {"lazy": lazy}
    return mod.file_reader(str(path), **kwargs)


def _pick(ds, path, var):
    """One variable of a store: ``var``, the only one, or the one ``save`` marked.

    A store of several variables (Li maps, a truth store) comes back whole as a
    Dataset, so that ``save(load(p), q)`` copies it.
    """
    names = [str(n) for n in ds.data_vars]
    if var is not None:
        from ._inputs import _aliases

        for candidate in _aliases(str(var)):  # `--var Li` also finds an older file's `li`, and back
            if candidate in ds.data_vars:
                return ds[candidate]
        raise FileFormatError(f"{path}: has no variable {var!r}; it holds {names}")
    if len(names) == 1:
        return ds[names[0]]
    preferred = ds.attrs.get("ionscope_variable")
    if preferred in ds.data_vars:
        return ds[preferred]
    if not names:
        raise FileFormatError(f"{path}: holds no data variable")
    return ds


def _finish(obj, ds, path):
    """Decode attrs, check dims and strip the store's encodings (they must not follow the data elsewhere)."""
    import xarray as xr

    obj.attrs = decode_attrs({**ds.attrs, **obj.attrs}) if isinstance(obj, xr.DataArray) else decode_attrs(ds.attrs)
    for v in (obj.variables.values() if isinstance(obj, xr.Dataset) else [obj.variable, *obj.coords.variables.values()]):
        v.encoding = {}
    dims = obj.dims
    try:
        check_dims(dims)
    except DataValidationError as exc:
        raise DataValidationError(f"{path}: {exc}") from None
    return _coords_in_our_units(obj, path)


def _coords_in_our_units(obj, path):
    """Coordinates of a Zarr/NetCDF store in eV / nm / s, whatever unit their ``units`` attribute names.

    A store written by another program may label its energy axis in keV (0.045–0.085): read as eV, a
    window of 45–85 eV would be "outside the axis" at best, and a derived map mislabelled at worst. An
    unknown unit is refused rather than guessed.
    """
    from ..data import UNITS, unit_factor

    for dim, ours in UNITS.items():
        if dim not in obj.coords or "units" not in obj[dim].attrs or not np.issubdtype(obj[dim].dtype, np.number):
            continue
        unit = str(obj[dim].attrs["units"]).strip()
        if unit == ours:
            continue
        factor = unit_factor(unit, dim)
        if factor is None:
            raise CalibrationError(f"{path}: coordinate {dim!r} has units {unit!r}; expected {ours} or a unit "
                                   f"ionscope converts to {ours}")
        attrs = {**obj[dim].attrs, "units": ours}
        obj = obj.assign_coords({dim: (dim, obj[dim].values * factor, attrs)})
    return obj


def _is_zarr(path: Path) -> bool:
    return _suffix(path) == ".zarr" or (path.is_dir() and ((path / "zarr.json").exists()
                                                           or (path / ".zgroup").exists()
                                                           or (path / ".zarray").exists()))


def zarr_groups(path) -> list[str]:
    """Names of the sub-groups of a Zarr store (e.g. the stages of a run's ``cache.zarr``)."""
    import zarr

    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    return sorted(name for name, _ in root.groups())


def _load_zarr(path: Path, *, chunks=None, var=None, group=None):
    import warnings

    import xarray as xr

    from ._zarr_chunks import checked_dataset, locate_damage

    try:
        with warnings.catch_warnings():
            # stores written with and without consolidated metadata both open; no need to say which
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            # lazily indexed (not dask): every variable is then read through ChunkReader, which names
            # a damaged chunk instead of passing on the codec's error
            ds = xr.open_zarr(path, chunks=None, consolidated=None, group=group)
    except Exception as exc:
        where = locate_damage(path, group)  # an index coordinate's chunk is read at open
        if where:
            raise FileFormatError(f"{path}: {where}: the store is damaged (a truncated or altered chunk file); "
                                  f"restore it from a copy") from None
        raise FileFormatError(f"{path}: not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    ds = checked_dataset(ds, path, chunks=chunks, group=group)
    if not ds.data_vars and group is None:
        groups = zarr_groups(path)
        if groups:
            raise FileFormatError(f"{path}: a store of groups {groups}; open one, e.g. {path / groups[0]}")
    return _finish(_pick(ds, path, var), ds, path)


def _load_netcdf(path: Path, *, chunks=None, var=None, group=None):
    import xarray as xr

    try:
        ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks, group=group)
        if chunks is None:
            ds = ds.load()
            ds.close()
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable NetCDF file ({type(exc).__name__}: {exc})") from None
    return _finish(_pick(ds, path, var), ds, path)


# kept for callers of the private names; the public ones live in ionscope.data
_encodable_attrs = encodable_attrs
_decode_attrs = decode_attrs


def _as_dataset(da):
    import xarray as xr

    if isinstance(da, xr.Dataset):
        ds = da.copy()
        ds.attrs = encodable_attrs(da.attrs)
        for v in ds.variables.values():
            v.attrs = encodable_attrs(v.attrs)
    else:
        name = da.name if isinstance(da.name, str) and da.name else "data"
        ds = da.to_dataset(name=name)
        ds[name].attrs = {}
        ds.attrs = {**encodable_attrs(da.attrs), "ionscope_variable": name}
        for c in ds.coords.values():
            c.attrs = encodable_attrs(c.attrs)
    for v in ds.variables.values():
        # encodings of the store the data came from (Zarr v3 codecs, chunk shapes, NetCDF
        # filters) do not apply to the new file and can make it unwritable
        v.encoding = {}
    return ds


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def warn_if_large(nbytes: float, path, *, what: str = "", stacklevel: int = 3) -> bool:
    """Warn before writing more than ``IONSCOPE_LARGE_OUTPUT_GB`` (default 1) GB, uncompressed, to ``path``.

    A notebook cell that writes gigabytes should say so before the disk fills, not after.

    Parameters
    ----------
    nbytes : float
        Uncompressed size of what is about to be written.
    path : str or Path
        Where it goes (named in the warning).
    what : str
        What it is, e.g. ``"24 frames × 64×64 px × 1024 channels, float32"``.
    stacklevel : int
        Passed to :func:`warnings.warn` (the caller's caller by default).

    Returns
    -------
    bool
        True if it warned (:class:`~ionscope.errors.LargeOutputWarning`).

    Examples
    --------
    >>> warn_if_large(10e6, "small.zarr")
    False
    """
    import warnings

    from ..errors import LargeOutputWarning

    try:
        limit = float(os.environ.get("IONSCOPE_LARGE_OUTPUT_GB", "1")) * 1e9
    except ValueError:
        limit = 1e9
    if nbytes <= limit:
        return False
    detail = f" ({what})" if what else ""
    warnings.warn(f"writing {_human_bytes(nbytes)} (uncompressed) to {path}{detail}; stopping it (Ctrl-C) leaves "
                  "no partial output under that name; IONSCOPE_LARGE_OUTPUT_GB sets this threshold", LargeOutputWarning,
                  stacklevel=stacklevel)
    return True


@accepts_data("da", keep_dataset=("da",))
def save(da, path, *, chunks: Any = None, overwrite: bool = True) -> Path:
    """Save a DataArray atomically; the format follows the extension.

    ``da`` is a DataArray, or a Dataset (Zarr/NetCDF only: e.g. Li maps with
    their standard errors). ``.zarr`` (chunked, lazy-friendly; the native
    format for large series; Zarr format 2, which every reader opens),
    ``.nc`` (NetCDF4 through h5netcdf) or ``.hspy`` (HyperSpy). Data are
    written to a temporary sibling and renamed into place, so a failure never
    leaves a partial file. Dask-backed arrays are streamed chunk by chunk.

    Parameters
    ----------
    da : DataArray or Dataset
        What to write (attributes Zarr/NetCDF cannot store natively are kept as JSON).
    path : str or Path
        The output, ending in ``.zarr``, ``.nc`` or ``.hspy``.
    chunks : dict or int, optional
        Zarr chunks by dimension (default: the data's own chunks, or one chunk per frame).
    overwrite : bool
        Replace an existing file that ionscope wrote (False: refuse any existing file).

    Returns
    -------
    Path
        The final path.

    Raises
    ------
    FileFormatError
        An unsupported extension.
    OutputPathError
        The path cannot be written (a folder in the way, no permission, disk full).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ionscope.data import calibrated
    >>> si = calibrated(np.ones((2, 8), "f4"), ("position", "energy"), scale={"energy": 0.5}, name="si")
    >>> path = save(si, pathlib.Path(tempfile.mkdtemp()) / "si.nc")
    >>> path.name, load(path).dims
    ('si.nc', ('position', 'energy'))
    """
    import xarray as xr

    if not isinstance(da, (xr.DataArray, xr.Dataset)):
        raise DataValidationError(f"save: expected an xarray.DataArray or Dataset, got {type(da).__name__}")
    check_dims(da.dims)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileFormatError(f"{path}: exists and overwrite=False")
    ext = _suffix(path)
    # stacklevel 4: the caller of save, past the input adapter's wrapper
    warn_if_large(float(da.nbytes), path, what=", ".join(f"{d} {n}" for d, n in da.sizes.items()), stacklevel=4)
    if ext == ".zarr":
        ds = _as_dataset(da)
        if chunks is not None:
            ds = ds.chunk(chunks)
        ds = ds.unify_chunks()  # variables read from one store may be chunked differently along a dim
        with atomic_path(path) as tmp:
            ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
    elif ext in _NETCDF:
        ds = _as_dataset(da)
        # complex waves and boolean masks are h5netcdf extensions (read back by h5netcdf and h5py)
        complex_data = any(v.dtype.kind in "cb" for v in ds.variables.values())
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=bool(complex_data))
    elif ext == ".hspy":
        from rsciio.hspy import file_writer

        if isinstance(da, xr.Dataset):
            raise FileFormatError(f"{path}: .hspy holds one signal but the data hold variables "
                                  f"{list(map(str, da.data_vars))}; save one (ds['name']) or use .zarr/.nc")

        with atomic_path(path) as tmp:
            file_writer(str(tmp) + ".hspy", dataarray_to_signal_dict(da.compute()))
            os.replace(str(tmp) + ".hspy", tmp)
    else:
        raise FileFormatError(f"{path}: cannot save as {ext!r}; expected .zarr, .nc or .hspy")
    return path


def _axis_lines(obj, indent="  ") -> list[str]:
    lines = []
    for dim in obj.dims:
        size = obj.sizes[dim]
        if dim in obj.coords and obj.coords[dim].size and np.issubdtype(obj.coords[dim].dtype, np.number):
            v = np.asarray(obj.coords[dim].values, float)
            step = f", step {v[1] - v[0]:.6g}" if v.size > 1 else ""
            unit = obj.coords[dim].attrs.get("units", "")
            lines.append(f"{indent}{dim:<9} {size:>6} from {v[0]:.6g}{step} {unit}".rstrip())
        elif dim in obj.coords:
            lines.append(f"{indent}{dim:<9} {size:>6} labels {list(map(str, obj.coords[dim].values[:6]))}")
        else:
            lines.append(f"{indent}{dim:<9} {size:>6} (uncalibrated)")
    return lines


def _attr_lines(attrs, indent="  ") -> list[str]:
    import shutil
    import textwrap

    # wrapped here, at word boundaries under the key, so that a terminal never cuts a value mid-word
    width = max(shutil.get_terminal_size((100, 24)).columns - 1, 40)
    out = []
    for k, v in attrs.items():
        text = " ".join(str(v).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        head = f"{indent}{k}: "
        out += textwrap.wrap(text, width=width, initial_indent=head, subsequent_indent=" " * len(head),
                             break_long_words=False, break_on_hyphens=False) or [head.rstrip()]
    return out


def _describe(obj, path) -> list[str]:
    import shutil

    import xarray as xr

    if isinstance(obj, xr.DataArray):
        lines = [f"file:   {path}", f"dims:   {tuple(obj.dims)}", f"shape:  {tuple(obj.shape)}",
                 f"dtype:  {obj.dtype}"]
        if obj.attrs.get("units"):
            lines += _attr_lines({"units": obj.attrs["units"]}, indent="")
        lines += ["axes:", *_axis_lines(obj)]
        if obj.attrs:
            lines += ["metadata:", *_attr_lines(obj.attrs)]
        return lines
    lines = [f"file:   {path}", f"variables ({len(obj.data_vars)}):"]
    width = max([len(str(n)) for n in obj.data_vars] + [8]) + 1
    for name, v in obj.data_vars.items():
        unit = v.attrs.get("units", "")
        row = f"  {str(name):<{width}} {str(tuple(v.dims)):<30} {str(tuple(v.shape)):<18} {v.dtype}"
        if unit and len(row) + len(str(unit)) + 4 > shutil.get_terminal_size((100, 24)).columns:
            lines += [row, *_attr_lines({"units": unit}, indent="      ")]  # a unit too long for the row
        else:
            lines.append(row + (f"  [{unit}]" if unit else ""))
        extra = {k: val for k, val in decode_attrs(v.attrs).items()
                 if k != "units" and not (k == "long_name" and str(val) == str(name))}
        lines += _attr_lines(dict(list(extra.items())[:4]), indent="      ")
    lines += ["axes:", *_axis_lines(obj)]
    if obj.attrs:
        lines += ["metadata:", *_attr_lines(obj.attrs)]
    return lines


def info(path, *, reader: str | None = None, var: str | None = None) -> str:
    """A human-readable summary: dims, shape, dtype, calibration, metadata.

    Multi-variable stores (Li maps, a simulator's truth) list every variable
    with its dims, shape, dtype and units; a Zarr store of groups (a run's
    ``cache.zarr``) lists each group. CSV electrochemistry logs are summarised
    too (time span, columns).

    Parameters
    ----------
    path : str or Path
        Any file :func:`load` (or :func:`read_log`) reads.
    reader : str, optional
        Force a rosettasciio reader (as in :func:`load`).
    var : str, optional
        Only this variable of a multi-variable store.

    Returns
    -------
    str
        The summary, one item a line.

    Raises
    ------
    FileFormatError
        A missing, corrupt or unsupported file.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ionscope.data import calibrated
    >>> si = calibrated(np.ones((2, 8), "f4"), ("position", "energy"), scale={"energy": 0.5}, offset={"energy": 50})
    >>> print(info(save(si, pathlib.Path(tempfile.mkdtemp()) / "si.nc")).split("axes:")[1])
    <BLANKLINE>
      position       2 (uncalibrated)
      energy         8 from 50, step 0.5 eV
    """
    if reader is not None:
        _check_reader(reader, Path(path))
    if Path(path).suffix.lower() == ".csv":
        from ._logs import read_log

        log = read_log(path)
        t = log.time.values
        lines = [f"file:   {path}", "kind:   electrochemistry/bias log",
                 f"time:   {t.size} rows, {t[0]:.6g} .. {t[-1]:.6g} s"]
        for name, v in log.data_vars.items():
            lines.append(f"  {name:<8} {v.attrs.get('units', ''):<3} from column {v.attrs.get('column', name)!r}")
        lines += [f"  {k}: {v}" for k, v in log.attrs.items()]
        return "\n".join(lines)
    path = Path(path)
    if path.exists() and _is_zarr(path):
        import xarray as xr

        try:
            top = load(path, lazy=True, var=var)
        except FileFormatError:
            groups = zarr_groups(path) if var is None else []
            if not groups:
                raise
            lines = [f"file:   {path}", f"groups: {groups}"]
            for g in groups:
                sub = load(path / g, lazy=True)
                body = _describe(sub if isinstance(sub, xr.Dataset) else sub.to_dataset(name=sub.name or "data"),
                                 path / g)
                lines += ["", f"[{g}]", *body[1:]]
            return "\n".join(lines)
        return "\n".join(_describe(top, path))
    return "\n".join(_describe(load(path, lazy=True, reader=reader, var=var), path))
