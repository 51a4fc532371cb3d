# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic output: write to a temporary sibling, then rename into place.

A crash or an error while writing never leaves a half-written file (or Zarr
directory) under the final name.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


_TMP_NAME = re.compile(r"\..+\.tmp-[0-9a-f]{8}")


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``.

    Works for files and for directories (Zarr stores). On any exception the
    temporary is removed and ``path`` is left as it was. A directory is
    replaced only by a directory and only when it is a data store (or empty):
    a folder that merely has an output's name (``out/summary.json/``) is
    never deleted; :class:`~ionscope.errors.OutputPathError` says so instead.
    Operating-system failures (disk full, read-only file system, no
    permission, a file where a folder must be) also become ``OutputPathError``
    with what to do.

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
    with os_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    try:
        with os_errors(final):
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written to the temporary path for {final}")
            _replace(tmp, final)
    except BaseException:
        _remove(tmp)
        # after Ctrl-C or SIGTERM, dask threads may still finish a chunk into the temporary (recreating
        # it); the pool is joined before atexit hooks run, so remove it once more then
        import atexit

        atexit.register(_remove, tmp)
        raise


_STORE_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def _replace(tmp: Path, final: Path) -> None:
    from .errors import OutputPathError

    if final.is_dir() and not final.is_symlink():
        if not tmp.is_dir():
            raise OutputPathError(f"{final}: a directory is in the way of this output file; move or rename it "
                                  f"(ionscope deletes only what it wrote)")
        if any(final.iterdir()) and not any((final / m).exists() for m in _STORE_MARKERS):
            raise OutputPathError(f"{final}: a folder that is not a data store is in the way of this output; "
                                  f"move or rename it (ionscope deletes only what it wrote)")
        # Directories cannot be replaced atomically in one call: move the old
        # one aside first, then swap, then delete the old one.
        old = _tmp_sibling(final)
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    elif tmp.is_dir() and (final.exists() or final.is_symlink()):
        raise OutputPathError(f"{final}: a file is in the way of this output folder; move or rename it")
    else:
        os.replace(tmp, final)


#: errno → what the user can do about it
_OS_ADVICE = {
    "ENOSPC": "the disk is full: free space or choose another [output] dir",
    "EDQUOT": "the disk quota is exceeded: free space or choose another [output] dir",
    "EROFS": "the file system is read-only: choose a writable [output] dir",
    "EACCES": "permission denied: fix the permissions, or choose a path you can read/write",
    "EPERM": "operation not permitted: fix the permissions, or choose a path you can read/write",
    "ENOTDIR": "a file stands where a folder is needed: move it or choose another output path",
    "EISDIR": "a folder stands where a file is needed: move it or choose another output path",
    "EEXIST": "something is in the way of the output: move it or choose another output path",
}


def os_error_message(exc: OSError, path) -> str | None:
    """One line for an environment fault (disk full, read-only, ...), or None for other errors."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    if name not in _OS_ADVICE:
        return None
    where = exc.filename or path
    if name == "EEXIST" and Path(where).is_file():  # mkdir over a file
        name = "ENOTDIR"
    return f"{where}: {_OS_ADVICE[name]} ({os.strerror(exc.errno)})"


@contextlib.contextmanager
def os_errors(path) -> Iterator[None]:
    """Turn an environment ``OSError`` inside the block into a one-line ``OutputPathError``."""
    from .errors import IonscopeError, OutputPathError

    try:
        yield
    except IonscopeError:
        raise
    except OSError as exc:
        msg = os_error_message(exc, path)
        if msg is None:
            raise
        raise OutputPathError(msg) from exc


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# --------------------------------------------------------------------------- publishing a set of files

_JOURNAL = ".{name}.publish.json"


def staging_dir(dest: str | os.PathLike, name: str) -> Path:
    """A fresh hidden folder inside ``dest`` to write a set of outputs into before :func:`publish_set`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f".{name}.staging-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def publish_set(staging: Path, dest: Path, files: list[str], *, name: str, manifest: dict,
                previous: list[str] = ()) -> None:
    """Move a complete set of files from ``staging`` into ``dest`` as one unit.

    A journal naming the set is written (atomically) *before* the first file
    moves and removed after the last, and :func:`recover_sets` completes a
    journalled publication that a kill interrupted; so outputs are either the
    old set, or — after the next start at the latest — the whole new set,
    never a lasting mix. Files of ``previous`` (the old set) missing from the
    new one are removed; ``manifest`` is written last as ``dest/<name>.json``.
    Nothing that is not in one of the two sets is touched, and a directory
    standing where a file must go is refused, not deleted.
    """
    from .errors import OutputPathError

    for rel in files:
        target = dest / rel
        if target.is_dir():
            raise OutputPathError(f"{target}: a directory is in the way of an output file; move or rename it "
                                  f"(ionscope deletes only what it wrote)")
    journal = dest / _JOURNAL.format(name=name)
    with atomic_path(journal) as tmp:
        tmp.write_text(json.dumps({"staging": staging.name, "files": list(files),
                                   "remove": sorted(set(previous) - set(files)), "manifest": manifest}))
    _roll_forward(dest, journal)


def _roll_forward(dest: Path, journal: Path) -> None:
    plan = json.loads(journal.read_text())
    staging = dest / plan["staging"]
    for rel in plan["files"]:
        src = staging / rel
        if src.exists():  # else: moved before an interruption
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest / rel)
    for rel in plan["remove"]:
        target = dest / rel
        if target.is_file() or target.is_symlink():
            target.unlink()
    name = journal.name[1:-len(".publish.json")]
    with atomic_path(dest / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(plan["manifest"], indent=1))
    shutil.rmtree(staging, ignore_errors=True)
    journal.unlink()


def recover_sets(dest: str | os.PathLike, name: str) -> None:
    """Finish a journalled publication of ``name`` cut short, and drop unfinished staging folders."""
    dest = Path(dest)
    if not dest.is_dir():
        return
    journal = dest / _JOURNAL.format(name=name)
    if journal.is_file():
        try:
            _roll_forward(dest, journal)
        except (OSError, ValueError, KeyError):  # an unreadable journal: the set is not trusted
            journal.unlink(missing_ok=True)
            (dest / f"{name}.json").unlink(missing_ok=True)
    for stale in dest.glob(f".{name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    clean_temporaries(dest)


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.tmp-XXXXXXXX`` leftovers of :func:`atomic_path` from a killed process.

    Only call this on a folder the caller holds exclusively (a lock), or a
    live writer's temporary could be removed.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        if not _TMP_NAME.fullmatch(tmp.name):
            continue
        _remove(tmp)
        removed.append(tmp)
    return removed
