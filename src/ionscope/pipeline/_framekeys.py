# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-frame keys of the stage cache: each frame's content key, each row's key, linking reused rows.

See :mod:`ionscope.pipeline._stores` (how a batched stage reuses rows) and
:mod:`ionscope.pipeline._rows` (how a run derives each row's key).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


def file_digest(path) -> str:
    """``"size|sha256"`` of one file's bytes (what :func:`fingerprint_files` records per file)."""
    path = Path(path)
    return f"{path.stat().st_size}|{_sha256(path)}"


def frame_key(digest: str, number, time_s) -> str:
    """Content key of one frame: its file's digest (:func:`file_digest`), its frame number and its time.

    The batch run (which fingerprints every frame file) and the live watcher
    (which hashes each frame once, when it is complete) compute the same key,
    so rows computed live are found again by the final run.

    Examples
    --------
    >>> frame_key("3|ab", 7, 450.0) == frame_key("3|ab", 7, 450.0) != frame_key("3|ac", 7, 450.0)
    True
    """
    blob = f"frame-v1|{digest}|{int(number)}|{float(time_s)!r}"
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def row_id(value) -> str:
    """The identity of a row by its coordinate along the batched dimension (a frame's time)."""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True)
class RowKeys:
    """Per-row content keys of a batched stage (see the module docstring).

    Attributes
    ----------
    reuse : str
        Key of what every row shares (parameters, inputs that are not per frame):
        rows are reused only from a group written under the same one.
    ids : tuple of str
        Each row's identity (:func:`row_id` of its coordinate).
    frames : tuple of str
        Each row's frame content key (what a live session carries a row forward by).
    keys : tuple of str
        Each row's full key: its frame with every per-frame value it was computed from.
    """

    reuse: str
    ids: tuple
    frames: tuple
    keys: tuple

    def as_json(self, dim: str) -> dict:
        return {"reuse": self.reuse, "dim": dim, "ids": list(self.ids), "frames": list(self.frames),
                "keys": list(self.keys)}


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``[(start, stop), ...]`` of sorted indices."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return [(a, b) for a, b in out]


_SAME_ARRAY = ("data_type", "fill_value", "codecs", "chunk_key_encoding", "dimension_names", "storage_transformers")


def _link_rows(old: Path, new: Path, variables: list[str], dim: str, pairs: dict[int, int],
               listing: dict) -> set[int]:
    """Hard-link the chunk files of rows ``{new index: old index}`` of ``variables`` from group ``old``
    into ``new``; returns the new indices linked.

    A row is linked only when every variable's array is laid out alike in both
    groups (type, codecs, chunk shape, shape but along ``dim``; one chunk per
    step along ``dim``) and each of its chunk files has the size (and, where
    the old marker recorded one, the checksum) it was written with: a damaged
    old group gives no rows, they are computed. Chunk files hold no index, so
    a row may land at another position (a gap filled in front of it).
    """
    layout = {}
    for v in variables:
        a, b = _attrs_of(old / v / "zarr.json"), _attrs_of(new / v / "zarr.json")
        if a is None or b is None or any(a.get(k) != b.get(k) for k in _SAME_ARRAY):
            return set()
        dims = b.get("dimension_names") or []
        if dim not in dims:
            return set()
        ax = dims.index(dim)
        ca = a.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        cb = b.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        if ca != cb or not ca or ca[ax] != 1 or [s for i, s in enumerate(a["shape"]) if i != ax] != \
                [s for i, s in enumerate(b["shape"]) if i != ax]:
            return set()
        sep = (b.get("chunk_key_encoding", {}).get("configuration", {}) or {}).get("separator", "/")
        if sep != "/":
            return set()
        files: dict[int, list[tuple[str, ...]]] = {}
        root = old / v / "c"
        for f in (p for p in root.rglob("*") if p.is_file()) if root.is_dir() else ():
            parts = f.relative_to(root).parts
            if len(parts) == len(dims) and all(x.isdigit() for x in parts):
                files.setdefault(int(parts[ax]), []).append(parts)
        layout[v] = (ax, files)

    def intact(rel: str, f: Path) -> bool:
        size, digest = (listing.get(rel) or [None, ""])[:2]
        try:
            return size is not None and f.stat().st_size == size and (not digest or _sha256(f) == digest)
        except OSError:
            return False

    linked = set()
    for i, j in sorted(pairs.items()):
        plan = []
        for v, (ax, files) in layout.items():
            for parts in files.get(j, []):
                rel = "/".join((v, "c", *parts))
                if not intact(rel, old / rel):
                    plan = None
                    break
                dest = list(parts)
                dest[ax] = str(i)
                plan.append((old / rel, new / v / "c" / Path(*dest)))
            if plan is None:
                break
        if plan is None:
            continue
        for src, dst in plan:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)
            try:
                os.link(src, dst)
            except OSError:  # a file system without hard links: a copy
                shutil.copyfile(src, dst)
        linked.add(i)
    return linked


def _attrs_of(meta: Path) -> dict | None:
    try:
        node = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return node if isinstance(node, dict) and node.get("node_type") == "array" else None




def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
