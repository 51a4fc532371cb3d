# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a large labelled array to Zarr block by block, atomically (:class:`ZarrSeriesWriter`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import ShapeMismatchError
from ._api import ZARR_FORMAT, _as_dataset


class ZarrSeriesWriter:
    """Write a large labelled array to Zarr block by block, atomically.

    The store is created at a temporary path with the full shape and
    coordinates; :meth:`write` fills one region from a numpy block; on leaving
    the ``with`` block the store is renamed into place (or removed on error).
    Memory use is bounded by one block.

    Parameters
    ----------
    path : str or Path
        The ``.zarr`` store to create.
    template : DataArray
        Dims, shape, dtype, coordinates and attrs of the whole array (its values are not written;
        a lazy ``dask.array.zeros`` template costs nothing).
    chunks : dict
        Zarr chunks by dimension; a region written at once must cover whole chunks.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ionscope.data import calibrated
    >>> from ionscope.io import load
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
        import zarr

        # blocks go straight into the Zarr array: the same bytes as xarray's
        # to_zarr(region=...) (no encoding applies to the raw values), at ~¼ of the
        # cost (measured 12.7 → 3.5 ms per 2 × 400² float32 block)
        self._array = zarr.open_group(str(self._tmp), mode="r+", zarr_format=ZARR_FORMAT)[self._name]
        return self

    def write(self, region: dict[str, slice], block) -> None:
        dims = self.template.dims
        unknown = set(region) - set(dims)
        if unknown or not all(isinstance(v, slice) for v in region.values()):
            raise ShapeMismatchError(f"region: expected slices along the template's dims {dims}, got {region!r}")
        index = tuple(region.get(d, slice(None)) for d in dims)
        block = np.asarray(block, dtype=self.template.dtype)
        want = tuple(len(range(*ix.indices(self.template.sizes[d]))) for ix, d in zip(index, dims))
        if block.shape != want:
            # Zarr itself would store a block of the wrong shape without complaint
            raise ShapeMismatchError(f"block: shape {block.shape} does not fill the region {region!r} of shape {want}")
        self._array[index] = block

    def __exit__(self, *exc):
        if exc[0] is None and self._tmp is not None:
            # region writes leave the consolidated metadata of the creation step stale: refresh it
            import zarr

            zarr.consolidate_metadata(str(self._tmp))
        return self._ctx.__exit__(*exc)
