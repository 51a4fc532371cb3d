# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..data import check_dims, check_finite
from ..errors import DataValidationError, FileFormatError, IonscopeError
from ._convert import dataarray_to_signal_dict, signal_dict_to_dataarray

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


def load(path, *, signal: int = 0, lazy: bool = False, chunks: Any = None, reader: str | None = None,
         allow_nonfinite: bool = False):
    """Load a file as a calibrated :class:`xarray.DataArray`.

    Parameters
    ----------
    path : str or Path
        .dm3, .dm4, .emd, .hspy, .hdf5/.h5, .msa, .zarr (directory) or .nc.
    signal : int
        Which signal of a file that holds several (e.g. a Velox .emd).
    lazy : bool
        Return a dask-backed array (Zarr/NetCDF are always lazy unless small).
    chunks : optional
        Dask chunks for lazy arrays.
    reader : str, optional
        Force a rosettasciio plugin, e.g. ``"HSPY"`` for an ambiguous ``.hdf5``.
    allow_nonfinite : bool
        Microscope counts are finite; by default NaN/Inf in an in-memory
        file raise :class:`DataValidationError`. Set True for derived maps
        that use NaN as a mask.

    Returns
    -------
    xarray.DataArray
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
    ext = _suffix(path)
    if ext == ".zarr" or (path.is_dir() and (path / "zarr.json").exists() or (path / ".zgroup").exists()):
        return _load_zarr(path, chunks=chunks)
    if ext in _NETCDF:
        return _load_netcdf(path, chunks=chunks if lazy else None)
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
            signals = _read_rsciio(module, path, lazy=lazy)
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


def _read_rsciio(module: str, path: Path, *, lazy: bool):
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise FileFormatError(f"{path}: reader {module} is not available ({exc})") from None
    kwargs = {"lazy": lazy}
    return mod.file_reader(str(path), **kwargs)


def _single_var(ds, path):
    names = [n for n in ds.data_vars]
    if len(names) != 1:
        preferred = ds.attrs.get("ionscope_variable")
        if preferred in names:
            return ds[preferred]
        raise FileFormatError(f"{path}: holds variables {names}; expected exactly one data variable")
    return ds[names[0]]


def _decode_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if k == "ionscope_json":
            try:
                out.update(json.loads(v))
            except (TypeError, ValueError):
                pass
        elif k != "ionscope_variable":
            out[k] = v
    return out


def _load_zarr(path: Path, *, chunks=None):
    import xarray as xr

    try:
        ds = xr.open_zarr(path, chunks=chunks if chunks is not None else {}, consolidated=None)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    da = _single_var(ds, path)
    da.attrs = _decode_attrs({**ds.attrs, **da.attrs})
    check_dims(da.dims)
    return da


def _load_netcdf(path: Path, *, chunks=None):
    import xarray as xr

    try:
        ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
        if chunks is None:
            ds = ds.load()
            ds.close()
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable NetCDF file ({type(exc).__name__}: {exc})") from None
    da = _single_var(ds, path)
    da.attrs = _decode_attrs({**ds.attrs, **da.attrs})
    return da


def _encodable_attrs(attrs: dict) -> dict:
    """Attributes that Zarr/NetCDF store natively; the rest go into one JSON string."""
    plain, extra = {}, {}
    for k, v in attrs.items():
        if isinstance(v, (str, int, float, bool, np.integer, np.floating)):
            plain[k] = v.item() if isinstance(v, np.generic) else v
        else:
            try:
                json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
                extra[k] = v
            except (TypeError, ValueError):
                extra[k] = str(v)
    if extra:
        plain["ionscope_json"] = json.dumps(extra, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return plain


def _as_dataset(da):
    name = da.name if isinstance(da.name, str) and da.name else "data"
    ds = da.to_dataset(name=name)
    ds[name].attrs = {}
    ds.attrs = {**_encodable_attrs(da.attrs), "ionscope_variable": name}
    return ds


def save(da, path, *, chunks: Any = None, overwrite: bool = True) -> Path:
    """Save a DataArray atomically; the format follows the extension.

    ``.zarr`` (chunked, lazy-friendly; the native format for large series),
    ``.nc`` (NetCDF4 through h5netcdf) or ``.hspy`` (HyperSpy). Data are
    written to a temporary sibling and renamed into place, so a failure never
    leaves a partial file. Dask-backed arrays are streamed chunk by chunk.

    Returns the final path.
    """
    import xarray as xr

    if not isinstance(da, xr.DataArray):
        raise DataValidationError(f"save: expected an xarray.DataArray, got {type(da).__name__}")
    check_dims(da.dims)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileFormatError(f"{path}: exists and overwrite=False")
    ext = _suffix(path)
    if ext == ".zarr":
        ds = _as_dataset(da)
        if chunks is not None:
            ds = ds.chunk(chunks)
        for var in ds.variables.values():
            var.encoding.pop("chunks", None)
            var.encoding.pop("preferred_chunks", None)
        with atomic_path(path) as tmp:
            ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
    elif ext in _NETCDF:
        ds = _as_dataset(da)
        complex_data = np.iscomplexobj(da.dtype.type(0)) if hasattr(da.dtype, "type") else False
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=bool(complex_data))
    elif ext == ".hspy":
        from rsciio.hspy import file_writer

        with atomic_path(path) as tmp:
            file_writer(str(tmp) + ".hspy", dataarray_to_signal_dict(da.compute()))
            os.replace(str(tmp) + ".hspy", tmp)
    else:
        raise FileFormatError(f"{path}: cannot save as {ext!r}; expected .zarr, .nc or .hspy")
    return path


class ZarrSeriesWriter:
    """Write a large labelled array to Zarr block by block, atomically.

    The store is created at a temporary path with the full shape and
    coordinates; :meth:`write` fills one region from a numpy block; on leaving
    the ``with`` block the store is renamed into place (or removed on error).
    Memory use is bounded by one block.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ionscope.data import calibrated
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.zarr"
    >>> tmpl = calibrated(np.zeros((4, 8, 8), "f4"), ("time", "y", "x"), scale={"time": 60.0})
    >>> with ZarrSeriesWriter(p, tmpl, chunks={"time": 1}) as w:
    ...     for t in range(4):
    ...         w.write({"time": slice(t, t + 1)}, np.full((1, 8, 8), t, "f4"))
    >>> float(load(p).isel(time=3).mean())
    3.0
    """

    def __init__(self, path, template, *, chunks: dict[str, int]):
        import dask.array as dsa

        self.path = Path(path)
        self.template = template
        self._ctx = atomic_path(self.path)
        self._name = template.name if isinstance(template.name, str) and template.name else "data"
        full_chunks = tuple(chunks.get(d, template.sizes[d]) for d in template.dims)
        lazy = template.copy(data=dsa.zeros(template.shape, dtype=template.dtype, chunks=full_chunks))
        self._ds = _as_dataset(lazy)
        self._tmp: Path | None = None

    def __enter__(self):
        self._tmp = self._ctx.__enter__()
        self._ds.to_zarr(self._tmp, mode="w", compute=False, consolidated=True, zarr_format=ZARR_FORMAT)
        return self

    def write(self, region: dict[str, slice], block) -> None:
        import xarray as xr

        dims = self.template.dims
        ds = xr.Dataset({self._name: (dims, np.asarray(block, dtype=self.template.dtype))})
        full_region = {d: region.get(d, slice(None)) for d in dims}
        ds.to_zarr(self._tmp, region=full_region, consolidated=False, zarr_format=ZARR_FORMAT)

    def __exit__(self, *exc):
        if exc[0] is None and self._tmp is not None:
            # region writes leave the consolidated metadata of the creation step stale: refresh it
            import zarr

            zarr.consolidate_metadata(str(self._tmp))
        return self._ctx.__exit__(*exc)


def from_hyperspy(signal):
    """Convert a HyperSpy signal to a calibrated DataArray (lazy signals stay lazy)."""
    axes = []
    for ax in sorted(signal.axes_manager._axes, key=lambda a: a.index_in_array):
        d = {"name": ax.name if isinstance(ax.name, str) else None, "size": ax.size,
             "units": ax.units if isinstance(ax.units, str) else None,
             "index_in_array": ax.index_in_array, "navigate": ax.navigate}
        if getattr(ax, "is_uniform", True):
            d.update(scale=ax.scale, offset=ax.offset)
        else:
            d["axis"] = np.asarray(ax.axis)
        axes.append(d)
    sig = {"data": signal.data, "axes": axes, "metadata": signal.metadata.as_dictionary()}
    return signal_dict_to_dataarray(sig, source=signal.metadata.get_item("General.original_filename"))


def to_hyperspy(da):
    """Convert a DataArray to a HyperSpy signal (needs the optional ``hyperspy`` extra)."""
    try:
        import hyperspy.api as hs
    except ImportError:
        raise IonscopeError("to_hyperspy needs HyperSpy: pip install 'ionscope[hyperspy]'") from None
    if "energy" in da.dims and da.dims[-1] != "energy":
        da = da.transpose(..., "energy")
    d = dataarray_to_signal_dict(da)
    signal = hs.signals.BaseSignal(d["data"], axes=d["axes"], metadata=d["metadata"])
    if "energy" in da.dims:
        signal = signal.as_signal1D(-1) if signal.axes_manager.signal_dimension != 1 else signal
    elif {"y", "x"} <= set(da.dims):
        signal = signal.as_signal2D((da.dims.index("x"), da.dims.index("y")))
    st = d["metadata"]["Signal"]["signal_type"]
    if st:
        try:
            signal.set_signal_type(st)
        except Exception:
            pass
    return signal


def info(path, *, reader: str | None = None) -> str:
    """A human-readable summary: dims, shape, dtype, calibration, metadata.

    CSV electrochemistry logs are summarised too (time span, columns).
    """
    if Path(path).suffix.lower() == ".csv":
        from ._logs import read_log

        log = read_log(path)
        t = log.time.values
        lines = [f"file:   {path}", "kind:   electrochemistry/bias log",
                 f"time:   {t.size} rows, {t[0]:.6g} .. {t[-1]:.6g} s"]
        for name, var in log.data_vars.items():
            lines.append(f"  {name:<8} {var.attrs.get('units', ''):<3} from column {var.attrs.get('column', name)!r}")
        lines += [f"  {k}: {v}" for k, v in log.attrs.items()]
        return "\n".join(lines)
    da = load(path, lazy=True, reader=reader)
    lines = [f"file:   {path}", f"dims:   {tuple(da.dims)}", f"shape:  {tuple(da.shape)}", f"dtype:  {da.dtype}"]
    lines.append("axes:")
    for dim in da.dims:
        if dim in da.coords and da.coords[dim].size and np.issubdtype(da.coords[dim].dtype, np.number):
            v = np.asarray(da.coords[dim].values, float)
            step = f", step {v[1] - v[0]:.6g}" if v.size > 1 else ""
            unit = da.coords[dim].attrs.get("units", "")
            lines.append(f"  {dim:<9} {da.sizes[dim]:>6} from {v[0]:.6g}{step} {unit}")
        elif dim in da.coords:
            lines.append(f"  {dim:<9} {da.sizes[dim]:>6} labels {list(map(str, da.coords[dim].values[:6]))}")
        else:
            lines.append(f"  {dim:<9} {da.sizes[dim]:>6} (uncalibrated)")
    if da.attrs:
        lines.append("metadata:")
        for k, v in da.attrs.items():
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)
