# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic output: write to a temporary sibling, then rename into place.

A crash or an error while writing never leaves a half-written file (or Zarr
directory) under the final name.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``.

    Works for files and for directories (Zarr stores). On any exception the
    temporary is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary path for {final}")
        _replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp: Path, final: Path) -> None:
    if tmp.is_dir() or (final.exists() and final.is_dir()):
        # Directories cannot be replaced atomically in one call: move the old
        # one aside first, then swap, then delete the old one.
        old = None
        if final.exists():
            old = _tmp_sibling(final)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            _remove(old)
    else:
        os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
