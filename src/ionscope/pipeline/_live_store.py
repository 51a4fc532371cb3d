# SPDX-License-Identifier: GPL-3.0-or-later
"""Rows into the stage cache: :class:`LiveStore`, the frames executor's store (split from
:mod:`ionscope.pipeline._live`).

A per-frame run keeps its results in memory and appends the new rows of its batched stages to the
run's stage cache under their per-frame keys, where the final batch run finds and reuses them.
"""
from __future__ import annotations

import numpy as np


class LiveStore:
    """The frames executor's store: a per-frame run's results in memory, and the new rows of its batched
    stages appended to the run's :class:`~ionscope.pipeline.StageCache` under their per-frame keys.

    A per-frame run keeps what it computed in memory (materialised, one chunk
    per frame, as :class:`~ionscope.pipeline._live_eels.MemoryStore` does), so
    the frame's maps reach the sink without waiting for the disk; the rows the
    cache does not hold yet wait in :attr:`pending` until :meth:`flush` (the
    night calls it when no frame waits, and before the final run) appends them
    all at once. Each batched stage's group in the cache then holds every frame
    processed so far (rows written earlier are linked, not rewritten); the
    final batch run, whose rows have the same keys, reuses them
    (:mod:`ionscope.pipeline._rows`). A session killed before a flush loses
    only those rows: the final run computes them.
    """

    def __init__(self, cache):
        self.cache = cache
        self._mem: dict = {}
        self._rows: dict = {}
        self.pending: dict = {}  # stage -> [(dim, rows' dataset, RowKeys of those rows)]
        #: frame keys of the rows a per-frame run is for (the newest frame; set by the per-frame run); rows of
        #: other frames that are neither in the cache nor waiting are left lazy (computed only if read)
        self.focus: set | None = None

    def has(self, name: str, key: str) -> bool:
        return False  # a per-frame run computes its frame (its other rows come from the cache as links)

    def save(self, name: str, key: str, value) -> None:
        self._mem[name] = value.compute() if hasattr(value, "compute") else value
        self._rows.pop(name, None)

    def save_batched(self, name: str, key: str, ds, *, dim: str, batch: int, progress=None, on_batch=None,
                     rows=None) -> int:
        from ._framekeys import RowKeys

        if rows is None:  # not per frame: nothing the final run could reuse
            self._mem[name] = ds.compute().chunk({dim: 1})
            self._rows.pop(name, None)
            return 0
        self._rows[name] = rows
        have = self._known(name, rows.reuse)
        new = [i for i, k in enumerate(rows.keys) if k not in have]
        lazy = []
        if self.focus is not None:
            # On spectra with their zero-loss peak a setting measured on all the frames so far (the zero-loss
            # width) is in every row's key, so the first frame's row beside each new frame is new too: it is
            # not what this frame's maps need, so it is not computed (issue 20: that halved the Li-map work)
            lazy = [i for i in new if rows.frames[i] not in self.focus]
            new = [i for i in new if i not in lazy]
        # rows computed before (the first frame beside each new one) are taken as they were, not recomputed
        value = _as_stored(self._assemble(name, ds, dim, rows, new, lazy), key, dim)
        self._mem[name] = value
        if new:
            pick = lambda v: tuple(v[i] for i in new)  # noqa: E731
            part = value.isel({dim: new})
            if lazy:  # its own arrays, not a view into a graph that holds the frames' spectra until the flush
                part = part.compute().chunk({dim: 1})
            self.pending.setdefault(name, []).append(
                (dim, part, RowKeys(rows.reuse, pick(rows.ids), pick(rows.frames), pick(rows.keys))))
        return 0

    def _assemble(self, name: str, ds, dim: str, rows, new: list, lazy: list = ()):
        """``ds`` materialised: rows ``new`` computed, rows ``lazy`` left as they are (lazy), the others taken
        from the waiting rows or the cache."""
        import xarray as xr

        if len(new) == ds.sizes[dim]:
            return ds.compute(**in_this_thread(len(new))).chunk({dim: 1})
        found = {}
        for _, part, r in self.pending.get(name, ()):
            for j, k in enumerate(r.keys):
                found.setdefault(k, (part, j))
        acc = self.cache.rows(name)
        if acc is not None:
            group = None
            for j, k in enumerate(acc.keys):
                if k not in found:
                    group = self.cache.load(name) if group is None else group
                    found[k] = (group, j)
        computed = ds.isel({dim: new}).compute(**in_this_thread(len(new))) if new else None
        pieces = []
        for i, k in enumerate(rows.keys):
            if i in new:
                pieces.append(computed.isel({dim: [new.index(i)]}))
            elif i in lazy:
                pieces.append(ds.isel({dim: [i]}))
            else:
                part, j = found[k]
                old = part.isel({dim: [j]}).compute()
                # the row as computed, on this run's coordinate (rows are matched by content, not by position)
                pieces.append(old.assign_coords({dim: ds[dim].isel({dim: [i]})}))
        out = xr.concat(pieces, dim=dim, data_vars="minimal", coords="minimal", compat="override", join="override")
        out.attrs = dict(ds.attrs)
        return out.chunk({dim: 1})

    def _known(self, name: str, reuse: str) -> set:
        """Keys of the rows of stage ``name`` under global key ``reuse`` in the cache or waiting for it."""
        acc = self.cache.rows(name)
        have = set(acc.keys) if acc is not None and acc.reuse == reuse else set()
        for _, _, r in self.pending.get(name, ()):
            if r.reuse == reuse:
                have.update(r.keys)
        return have

    #: rows waiting for the cache after which they are written even while frames wait (bounded memory:
    #: rows keep the cropped spectra when ``[compute] cache_spectra``)
    max_waiting = 8

    def waiting(self) -> int:
        """The most rows of one stage waiting for the cache."""
        return max((sum(len(r.keys) for _, _, r in parts) for parts in self.pending.values()), default=0)

    def flush(self) -> bool:
        """Append the waiting rows to the cache's groups (one rewrite per stage); True when there were any."""
        import xarray as xr

        from ._framekeys import RowKeys
        from ._stores import stage_key

        if not self.pending:
            return False
        pending, self.pending = self.pending, {}
        for name, parts in pending.items():
            reuse = parts[-1][2].reuse  # a changed global key (new references, ...) starts the group afresh
            parts = [p for p in parts if p[2].reuse == reuse]
            dim = parts[-1][0]
            acc = self.cache.rows(name)
            pieces, keys = [p[1] for p in parts], [p[2] for p in parts]
            if acc is not None and acc.reuse == reuse:
                pieces.insert(0, self.cache.load(name))
                keys.insert(0, acc)
            rows = RowKeys(reuse, sum((k.ids for k in keys), ()), sum((k.frames for k in keys), ()),
                           sum((k.keys for k in keys), ()))
            combined = pieces[0] if len(pieces) == 1 else xr.concat(
                pieces, dim=dim, data_vars="minimal", coords="minimal", compat="override", join="override")
            self.cache.save_batched(name, stage_key(name, "live rows", list(rows.keys)), combined, dim=dim,
                                    batch=max(1, combined.sizes[dim]), rows=rows)
        return True

    def load(self, name: str):
        return self._mem[name]

    def rows(self, name: str):
        return self._rows.get(name)


def in_this_thread(rows: int) -> dict:
    """``compute`` options for ``rows`` rows of a per-frame run: one row (the newest frame, the live case)
    is computed in the calling thread, where the Li-map kernel spreads the frame's pixel blocks over every
    core (:func:`ionscope.eels._kernels.block_workers`; the blocks are independent, so the numbers are the
    same); inside a dask worker thread it would keep to one thread and leave the other cores idle.

    Examples
    --------
    >>> in_this_thread(1), in_this_thread(2)
    ({'scheduler': 'synchronous'}, {})
    """
    return {"scheduler": "synchronous"} if rows == 1 else {}


def _as_stored(ds, key: str, dim: str):
    """``ds`` as the stage cache gives it back (attributes, string types, one chunk per row): its layout
    goes through an in-memory Zarr store, so downstream stages and their rows' keys see what the batch
    run's stages see; the (dask-backed) arrays are not written there, their in-memory values are kept."""
    import xarray as xr
    import zarr

    from ._stores import _clean

    clean = _clean(ds, key).chunk({dim: 1})
    store = zarr.storage.MemoryStore()
    clean.to_zarr(store, mode="w", consolidated=False, zarr_format=3, compute=False)  # metadata + coordinates
    back = xr.open_zarr(store, consolidated=False)
    # every variable but the indexes (written above) takes its in-memory values, in the stored type
    values = {}
    for name, v in clean.variables.items():
        if name in clean.indexes:
            continue
        stored = back.variables[name]
        if v.dtype == stored.dtype:
            data = v.data
        elif hasattr(v.data, "dask") and v.dtype.kind in "fiub" and stored.dtype.kind in "fiub":
            data = v.data.astype(stored.dtype)  # a row left lazy stays lazy (the same cast when computed)
        else:
            data = np.asarray(v.values).astype(stored.dtype)
        values[name] = xr.Variable(stored.dims, data, stored.attrs)
    coords = {n: values.pop(n) for n in list(values) if n in back.coords}
    return back.assign_coords(coords).assign(values)
