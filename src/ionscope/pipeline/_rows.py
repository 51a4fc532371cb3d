# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-frame keys of a run: which rows of a batched stage another run has already computed.

A source may carry one content key per frame (``Context.info["frame_keys"]``:
``{source: {row id: key}}``; the EELS series read from a folder of frames
does: :func:`ionscope.pipeline._framekeys.frame_key` of each file). Every value
*derived* from such a source (a stage that reads it, directly or through
other stages) then gets, besides its stage key:

* a *global key*: the stage's name and parameters, the keys of its inputs
  that are not per frame (references, ...) and the global keys of its
  per-frame inputs — what every row shares;
* *row digests*, one per frame: for a batched stage the row keys it was
  written with; for a small stage (a per-frame table of shifts, gates, ...)
  a hash of its stored values in that frame's row, of its values that are
  not per frame, and of its own per-frame inputs' rows.

A batched stage's row key (:class:`~ionscope.pipeline._framekeys.RowKeys`) is
then the hash of its per-frame inputs' rows and of the row of its own result
that is already computed (eager arrays, e.g. shifts estimated from the whole
series); the rows of its lazy arrays must depend on nothing else (a per-frame
kernel). So a row is reused exactly when everything it was computed from is
the same: a new frame, a frame whose bytes changed, a shift that moved since
(a registration onto the mean of all frames), a parameter — each redoes what
it changed and nothing else.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ._framekeys import RowKeys, row_id
from ._stores import _KEY_ATTR, stage_key


def frame_rows(ctx) -> "FrameRows":
    """The run's :class:`FrameRows` (made on first use from ``ctx.info["frame_keys"]``)."""
    rows = ctx.info.get("_frame_rows")
    if rows is None:
        rows = ctx.info["_frame_rows"] = FrameRows(ctx.info.get("frame_keys") or {})
    return rows


class FrameRows:
    """Global keys and per-row digests of the values derived from frame-keyed sources (module docstring).

    Parameters
    ----------
    frame_keys : dict
        ``{source name: {row id: frame key}}``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from types import SimpleNamespace
    >>> fr = FrameRows({"series": {"0.0": "k0", "1.0": "k1"}})
    >>> st = SimpleNamespace(name="maps", inputs=("series",))
    >>> ds = xr.Dataset({"m": (("time", "y"), np.zeros((2, 3)))}, coords={"time": [0.0, 1.0]}).chunk()
    >>> ctx = SimpleNamespace(keys={"series": "whole-series-key"})
    >>> rows = fr.plan(st, ctx, {"p": 1}, ds, "time")
    >>> rows.ids, rows.frames != rows.keys
    (('0.0', '1.0'), True)
    """

    def __init__(self, frame_keys: dict):
        self.frames = {str(src): {str(k): str(v) for k, v in keys.items()} for src, keys in frame_keys.items()}
        self.glob: dict[str, str] = {}
        self._inputs: dict[str, tuple] = {}
        self._rows: dict[str, dict | None] = {}
        self._stored: dict = {}
        self._dim: dict[str, str] = {}

    def derived(self, name: str) -> bool:
        return name in self.frames or name in self.glob

    def _global(self, st, ctx, params, derived: list[str]) -> str:
        fixed = [ctx.keys[i] for i in st.inputs if i not in derived]
        return stage_key(st.name, params, fixed + [self.glob.get(i, f"frames:{i}") for i in derived])

    def plan(self, st, ctx, params, ds, dim: str) -> RowKeys | None:
        """Row keys of the batched result ``ds`` of stage ``st`` along ``dim`` (None: not per frame)."""
        derived = [i for i in st.inputs if self.derived(i)]
        if not derived or not hasattr(ds, "data_vars") or dim not in ds.coords or dim not in ds.dims:
            return None
        ids = [row_id(v) for v in np.asarray(ds[dim].values)]
        eager = _eager(ds, dim)
        reuse = stage_key(st.name, self._global(st, ctx, params, derived), [_fixed_digest(ds, dim)])
        frames, keys = [], []
        for i, t in enumerate(ids):
            parts = [self.row(name, t) for name in derived]
            frame = self.frame_of(t)
            if frame is None or any(p is None for p in parts):
                return None
            frames.append(frame)
            keys.append(_hash([frame, *parts, *(_row_bytes(a, i) for a in eager)]))
        return RowKeys(reuse, tuple(ids), tuple(frames), tuple(keys))

    def note(self, st, ctx, params, stored, dim: str | None, rows: RowKeys | None) -> None:
        """Record stage ``st`` once its result is available (computed or loaded)."""
        derived = [i for i in st.inputs if self.derived(i)]
        if not derived:
            return
        self.glob[st.name] = self._global(st, ctx, params, derived)
        self._inputs[st.name] = tuple(derived)
        self._rows.pop(st.name, None)
        if rows is not None:
            self._rows[st.name] = dict(zip(rows.ids, rows.keys))
        elif dim is not None:
            # a batched result without recorded rows: no per-frame identity (never read back to hash it)
            self._rows[st.name] = None
            self._stored[st.name] = ctx.keys.get(st.name)
        else:
            self._stored[st.name] = stored
            self._dim[st.name] = "time"

    def frame_of(self, t: str) -> str | None:
        """The frame key of row ``t`` (all frame-keyed sources that have it)."""
        got = [keys[t] for _, keys in sorted(self.frames.items()) if t in keys]
        return got[0] if len(got) == 1 else (_hash(got) if got else None)

    def row(self, name: str, t: str) -> str | None:
        """The row digest of value ``name`` at row ``t`` (None: ``name`` has no such row)."""
        if name in self.frames:
            return self.frames[name].get(t)
        if name not in self._rows:
            self._rows[name] = self._digest_rows(name)
        rows = self._rows[name]
        if rows is None:
            key = self._stored.get(name)
            return None if key is None else _hash(["whole", str(key)])
        return rows.get(t)

    def _digest_rows(self, name: str) -> dict | None:
        """Row digests of a small per-frame stage: its stored row, its fixed values, its inputs' rows."""
        ds, dim = self._stored.get(name), self._dim.get(name, "time")
        if not hasattr(ds, "data_vars") or dim not in ds.dims or dim not in ds.coords:
            return None
        ds = ds.load()
        ids = [row_id(v) for v in np.asarray(ds[dim].values)]
        arrays = [ds[v] for v in sorted(ds.data_vars) if dim in ds[v].dims]
        arrays = [np.moveaxis(np.asarray(a.values), a.dims.index(dim), 0) for a in arrays]
        fixed = _fixed_digest(ds, dim)
        out = {}
        for i, t in enumerate(ids):
            parts = [self.row(j, t) for j in self._inputs.get(name, ())]
            if any(p is None for p in parts):
                continue
            out[t] = _hash([fixed, *parts, *(_row_bytes(a, i) for a in arrays)])
        return out


def _hash(parts) -> str:
    h = hashlib.sha256(b"rows-v1")
    for p in parts:
        h.update(b"\x00" + (p if isinstance(p, bytes) else str(p).encode()))
    return h.hexdigest()[:24]


def _eager(ds, dim: str) -> list[np.ndarray]:
    """The already computed (numpy) data variables along ``dim``, with ``dim`` first."""
    out = []
    for v in sorted(ds.data_vars):
        a = ds[v]
        if dim in a.dims and not _is_lazy(a):
            out.append(np.moveaxis(np.asarray(a.values), a.dims.index(dim), 0))
    return out


def _is_lazy(a) -> bool:
    return a.chunks is not None


def _fixed_digest(ds, dim: str) -> str:
    """Hash of the values of ``ds`` that are not per row: variables and coordinates without ``dim``, and the
    attributes (a kernel's setting measured on the whole series lands there, e.g. the zero-loss width that
    ``eels.mlls`` measures on spectra sampled across every frame: a changed one redoes every row)."""
    import json

    parts = [json.dumps({k: v for k, v in ds.attrs.items() if k != _KEY_ATTR}, sort_keys=True, default=str)]
    for v in sorted(ds.variables):
        parts.append(json.dumps(ds.variables[v].attrs, sort_keys=True, default=str))
    for v in sorted(ds.variables):
        a = ds.variables[v]
        if dim in a.dims or (hasattr(a, "chunks") and a.chunks is not None):
            continue
        if a.attrs.get("sample_across_frames"):
            # a sample of spectra across the frames (the screen's probe windows): its effect on a consumer's
            # rows is recorded in that consumer's attributes (e.g. the zero-loss width of the Li maps)
            continue
        # text is text whatever its numpy type: a Zarr v3 store reads '<U2' back as StringDType
        kind = "str" if a.dtype.kind in "OUST" else str(a.dtype)
        parts.append(f"{v}|{a.dims}|{kind}".encode())
        parts.append(_row_bytes(np.asarray(a.values)[None], 0))
    return _hash(parts)


def _row_bytes(a: np.ndarray, i: int) -> bytes:
    r = np.asarray(a[i])
    if r.dtype.kind in "OUST":  # (T: numpy's StringDType, whose raw bytes are not its text)
        return ("\x1f".join(map(str, r.ravel()))).encode() + str(r.shape).encode()
    return str(r.dtype).encode() + str(r.shape).encode() + np.ascontiguousarray(r).tobytes()
