# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a Zarr store chunk by chunk so that a damaged chunk is named, not a codec's error.

A flipped or truncated chunk file makes the codec raise whatever it raises
(``RuntimeError: error during blosc decompression``, a ``ValueError`` about a
buffer size ...), far from the file. Every data variable :func:`ionscope.io.load`
opens from a store is therefore read through :class:`ChunkReader`: a dask
array whose blocks are read by xarray's own (lazily indexed, CF-decoded)
variable, and whose read errors become one
:class:`~ionscope.errors.FileFormatError` naming the store, the array and the
chunk key (the chunk's file, relative to the store), wherever the data are
computed — ``load(...).values``, ``ionscope convert``, a pipeline stage.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError


class ChunkReader:
    """``reader[key]`` → the decoded values of one block of a store's variable (numpy).

    Parameters
    ----------
    variable : xarray.Variable
        The variable as opened by ``xarray.open_zarr(..., chunks=None)`` (lazy, not dask).
    path : Path
        The store (for messages).
    name : str
        The array's name inside the store (``group/name`` for a sub-group).
    chunks : tuple of int
        The store's chunk shape of that array.
    """

    def __init__(self, variable, path, name: str, chunks, *, blosc_files: bool = False):
        self.variable = variable
        self.path = Path(path)
        self.name = name
        self.chunks = tuple(int(c) for c in chunks)
        self.shape = tuple(variable.shape)
        self.dtype = variable.dtype
        self.ndim = len(self.shape)
        self.blosc_files = blosc_files

    def __getitem__(self, key):
        try:
            if self.blosc_files:
                self._check_blosc_sizes(key)
            return np.asarray(self.variable[key].values)
        except FileFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - codecs and stores raise many types for a damaged chunk
            raise FileFormatError(self._message(key, exc)) from None

    def _check_blosc_sizes(self, key) -> None:
        """Each chunk file holds the bytes its Blosc header announces.

        Blosc decompresses from the announced size without knowing the
        buffer's: a chunk file cut short can decode from whatever memory
        follows it (measured: a truncated small chunk read back "plausible"
        values). 16 bytes read per chunk, against one decompression.
        """
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        for coords in self._chunk_coords(key):
            rel = self._chunk_file(coords)
            try:
                with open(self.path / rel, "rb") as f:
                    head = f.read(16)
                    size = f.seek(0, 2)
            except FileNotFoundError:
                continue  # a chunk never written reads as the fill value (Zarr's rule)
            if len(head) < 16:
                raise FileFormatError(f"{self.path}: chunk {rel} of array {self.name!r} holds {size} bytes, fewer "
                                      f"than a Blosc header: the store is damaged (a truncated chunk file); restore "
                                      f"it from a copy")
            announced = int.from_bytes(head[12:16], "little")
            if announced != size:
                raise FileFormatError(f"{self.path}: chunk {rel} of array {self.name!r} holds {size} bytes where its "
                                      f"header announces {announced}: the store is damaged (a truncated or altered "
                                      f"chunk file); restore it from a copy")

    def _chunk_coords(self, key) -> list[tuple[int, ...]]:
        """Store chunks a block selection (a tuple of slices) touches."""
        import itertools

        ranges = []
        for sl, size, c in zip(key, self.shape, self.chunks):
            start, stop, _ = sl.indices(size) if isinstance(sl, slice) else (int(sl), int(sl) + 1, 1)
            ranges.append(range(start // c, max(start, stop - 1) // c + 1))
        return list(itertools.product(*ranges))

    def _message(self, key, exc: Exception) -> str:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        coords = self._chunk_coords(key)
        bad = coords if len(coords) == 1 else [c for c in coords if not self._readable(c)] or coords
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        names = ", ".join(self._chunk_file(c) for c in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        return (f"{self.path}: chunk {names} of array {self.name!r} cannot be read ({type(exc).__name__}: "
                f"{detail}): the store is damaged (a truncated or altered chunk file); restore it from a copy")

    def _readable(self, coords) -> bool:
        sel = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, self.chunks, self.shape))
        try:
            np.asarray(self.variable[sel].values)
        except Exception:  # noqa: BLE001
            return False
        return True

    def _chunk_file(self, coords) -> str:
        return chunk_file(self.path, self.name, coords)


def chunk_file(path, name: str, coords) -> str:
    """The chunk's key as a file path relative to the store (``si/3.0.0.0``; ``si/c/3/0/0/0`` in Zarr 3)."""
    try:
        import zarr

        arr = zarr.open_array(str(path), path=name, mode="r")
        key = arr.metadata.encode_chunk_key(tuple(int(i) for i in coords))
    except Exception:  # noqa: BLE001 - a store too damaged for zarr: name the coordinates
        key = ".".join(str(int(i)) for i in coords)
    return f"{name}/{key}"


def checked_dataset(ds, path, *, chunks=None, group: str | None = None):
    """``ds`` (opened with ``chunks=None``) with every variable dask-backed through :class:`ChunkReader`.

    ``chunks``: None / {} → the store's chunks; a dict → those dims rechunked
    (``-1`` whole, ``"auto"``), as :func:`xarray.open_zarr` would.
    """
    import dask.array as dsa
    from dask.base import tokenize

    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = 0
    out = ds.copy()
    for name, var in ds.variables.items():
        zchunks = var.encoding.get("chunks") or var.shape
        if name in ds.indexes:
            # index coordinates were read when the store was opened: a chunk file cut short may have decoded
            if _blosc_only(var, path) and var.ndim:
                array_name = f"{group.strip('/')}/{name}" if group else str(name)
                ChunkReader(var, path, array_name, zchunks, blosc_files=True)._check_blosc_sizes((slice(None),))
            continue
        spec = tuple((chunks or {}).get(d, c) if isinstance(chunks, dict) else c for d, c in zip(var.dims, zchunks))
        blocks = dsa.core.normalize_chunks(spec, var.shape, dtype=var.dtype, previous_chunks=zchunks)
        array_name = f"{group.strip('/')}/{name}" if group else str(name)
        reader = ChunkReader(var, path, array_name, zchunks, blosc_files=_blosc_only(var, path))
        token = tokenize(str(Path(path).resolve()), array_name, blocks, stamp)
        data = dsa.from_array(reader, chunks=blocks, name=f"ionscope-zarr-{name}-{token}",
                              meta=np.empty((0,) * var.ndim, dtype=var.dtype))
        if name in ds.data_vars:
            out[name] = var.copy(data=data)
        else:
            out = out.assign_coords({name: var.copy(data=data)})
    return out


def _blosc_only(var, path) -> bool:
    """Whether the variable's chunk files are plain Blosc buffers in a local directory store (Zarr 2)."""
    comps = var.encoding.get("compressors") or ()
    return (Path(path).is_dir() and not var.encoding.get("filters") and len(comps) == 1
            and type(comps[0]).__name__ == "Blosc" and (Path(path) / ".zgroup").exists())


def locate_damage(path, group: str | None = None) -> str | None:
    """Name the first unreadable chunk of a store (small arrays first), or None; for an open that failed."""
    try:
        import zarr

        root = zarr.open_group(str(path), mode="r", path=group or "")
        arrays = sorted(((n, a) for n, a in root.arrays()), key=lambda na: int(np.prod(na[1].shape)))
    except Exception:  # noqa: BLE001
        return None
    for n, a in arrays:
        name = f"{group.strip('/')}/{n}" if group else n
        for coords in np.ndindex(*a.cdata_shape) if a.shape else [()]:
            try:
                rel = chunk_file(path, name, coords)
                chunk = Path(path) / rel
                if chunk.is_file() and a.metadata.zarr_format == 2 and type(a.metadata.compressor).__name__ == "Blosc":
                    with open(chunk, "rb") as f:
                        head, size = f.read(16), f.seek(0, 2)
                    if len(head) < 16 or int.from_bytes(head[12:16], "little") != size:
                        raise ValueError(f"{size} bytes, not the size its Blosc header announces")
                a.get_block_selection(coords)
            except Exception as exc:  # noqa: BLE001
                detail = str(exc).splitlines()[0][:160] if str(exc) else ""
                return (f"chunk {chunk_file(path, name, coords)} of array {name!r} cannot be read "
                        f"({type(exc).__name__}: {detail})")
    return None
