# SPDX-License-Identifier: GPL-3.0-or-later
"""Region writes of a batched stage: one batch computed at once, then written straight into its Zarr arrays.

:meth:`StageCache.save_batched <ionscope.pipeline._stores.StageCache.save_batched>`
writes a lazy Dataset batch by batch into a Zarr group that
``to_zarr(..., compute=False)`` created (metadata, and every variable not
backed by dask). ``to_zarr(region=...)`` per batch re-opens the group and
every array, checks them, builds a store graph and writes each stored chunk
with one synchronous Zarr call: for the holography table's 10 small per-frame
variables that was most of the table's own cost (profiled, issue 18: 260 Zarr
``__setitem__`` calls and 9 ``to_zarr`` calls for a 21-frame night). Here the
batch's dask variables are computed in one ``dask.compute`` on the current
scheduler (the run's executor) and each is written with one assignment into
the array opened once: the same values into the same arrays and chunks, so
the stored bytes are those ``to_zarr`` writes.

Only where that is plainly the same: numeric or boolean variables without an
encoding (``_clean`` drops encodings), and batches small enough to hold in
memory at once (:data:`MAX_BATCH_BYTES`); anything else (strings, dates, a
batch of large frames, which ``to_zarr`` streams chunk by chunk) goes through
``to_zarr`` as before.
"""
from __future__ import annotations

from pathlib import Path

#: Largest batch (bytes of its dask variables) computed whole before it is written; larger ones stream.
MAX_BATCH_BYTES = 256 * 2 ** 20


class RegionWriter:
    """Writes ``ds``'s variables along ``dim`` into the Zarr group at ``path`` one region at a time.

    Parameters
    ----------
    path : Path
        A Zarr group made by ``ds.to_zarr(path, mode="w", compute=False)``.
    ds : xarray.Dataset
        The lazy Dataset (its variables along ``dim`` are written).
    dim : str
        The batched dimension.
    region_vars : list of str
        The data variables along ``dim`` (as ``save_batched`` selects them).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"v": (("time", "x"), np.arange(6.0).reshape(3, 2))}).chunk({"time": 1})
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.zarr"
    >>> _ = ds.to_zarr(p, mode="w", compute=False, consolidated=False, zarr_format=3)
    >>> w = RegionWriter(p, ds, "time", ["v"])
    >>> w.write(0, 3)
    >>> xr.open_zarr(p, consolidated=False)["v"].values.tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """

    def __init__(self, path: Path, ds, dim: str, region_vars: list[str]):
        self.path, self.dim, self.ds = Path(path), dim, ds
        self.region_vars = list(region_vars)
        self._group = None
        self._direct = self._plain(ds, dim, region_vars)

    @staticmethod
    def _plain(ds, dim, region_vars) -> list[str] | None:
        """The dask variables to write directly, or None when any variable along ``dim`` needs ``to_zarr``."""
        from xarray.namedarray.pycompat import is_chunked_array

        names = []
        for name in [*region_vars, *(c for c in ds.coords if dim in ds[c].dims and c != dim)]:
            var = ds.variables[name]
            if var.dtype.kind not in "biufc" or var.encoding or var.attrs.get("_FillValue") is not None:
                return None
            if is_chunked_array(var.data):
                names.append(name)
            elif name not in ds.indexes:
                return None  # a numpy variable along dim other than an index: leave it to to_zarr
        return names

    def write(self, start: int, stop: int) -> None:
        """Compute and write time points ``start`` … ``stop`` − 1."""
        part = self.ds[self.region_vars].isel({self.dim: slice(start, stop)})
        part = part.drop_vars([c for c in part.coords if self.dim not in part[c].dims])
        nbytes = 0 if self._direct is None else sum(part.variables[n].nbytes for n in self._direct if n in part.variables)
        if self._direct is None or nbytes > MAX_BATCH_BYTES:
            part.to_zarr(self.path, region={self.dim: slice(start, stop)}, consolidated=False)
            return
        import dask

        names = [n for n in self._direct if n in part.variables]
        values = dask.compute(*(part.variables[n].data for n in names))
        group = self._open()
        for name, value in zip(names, values):
            dims = part.variables[name].dims
            group[name][tuple(slice(start, stop) if d == self.dim else slice(None) for d in dims)] = value

    def _open(self):
        if self._group is None:
            import zarr

            self._group = zarr.open_group(str(self.path), mode="r+")
        return self._group
