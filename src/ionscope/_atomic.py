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
import warnings
from collections.abc import Iterator
from pathlib import Path


#: an atomic_path temporary (with a run's token inside an output folder held by a session)
_TMP_NAME = re.compile(r"\..+\.tmp-(?:[0-9a-f]{12}-)?[0-9a-f]{8}")


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

    Inside an output folder held by :func:`ionscope._outdir.session`, the
    name must be new or written by ionscope before (a file ionscope did not
    write is never replaced: ``OutputPathError`` names it), the temporary
    carries the session's token (so that a later run can prove it is a
    leftover of ours) and the written file is recorded in the folder's ledger.
    The command line applies the same rule to single output files
    (:func:`ionscope._outdir.file_writes`; ``--overwrite`` lifts it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    from ._outdir import claim_file, file_mode, session_for

    final = Path(path)
    sess = session_for(final)
    rel = sess.prepare_write(final) if sess is not None else None
    claimed = sess is None and file_mode() is not None
    if claimed:  # a command's output file: new, ionscope's, or --overwrite (for the paths the user named)
        mode = file_mode()
        named = Path(os.path.abspath(final)) in mode.get("named", ())
        claim_file(final, overwrite=mode["overwrite"] and named, derived=mode["overwrite"] and not named)
        new_name = not (final.exists() or final.is_symlink())
    with os_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = sess.temp_name(final) if sess is not None else _tmp_sibling(final)
    try:
        with os_errors(final):
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written to the temporary path for {final}")
            if rel is not None:  # its checksum first: a kill after the rename leaves a file proven ours
                sess.expect([(rel, tmp)])
            _replace(tmp, final, sess)
    except BaseException:
        _remove_settled(tmp)
        # after Ctrl-C or SIGTERM, dask threads may still finish a chunk into the temporary (recreating
        # it); the pool is joined before atexit hooks run, so remove it once more then
        import atexit

        atexit.register(_remove, tmp)
        raise
    if rel is not None:
        with os_errors(final):
            sess.record([rel])
    elif claimed:
        from ._outdir import created_file, record_claimed

        record_claimed()
        if new_name:  # removed again if the command fails later (a refused preview beside it)
            created_file(final)


_STORE_MARKERS = ("zarr.json", ".zgroup", ".zarray")
_STORE_FILES = re.compile(r"zarr\.json|\.zgroup|\.zarray|\.zattrs|\.zmetadata|[0-9]+(?:[./][0-9]+)*")


def _not_store_entries(folder: Path) -> list[str]:
    """Top-level names of a Zarr store folder that are not part of the store (a user's notes put there):
    store metadata, chunk files and sub-folders that are store nodes or chunk folders (v3 ``c``, v2 ``0``
    with "/" separators) are."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            out.append(p.name)
        elif p.is_dir():
            if not (p.name == "c" or p.name.isdigit() or any((p / m).exists() for m in _STORE_MARKERS)):
                out.append(p.name + "/")
        elif not _STORE_FILES.fullmatch(p.name):
            out.append(p.name)
    return out


def _replace(tmp: Path, final: Path, sess=None) -> None:
    from .errors import OutputPathError

    if final.is_dir() and not final.is_symlink():
        if not tmp.is_dir():
            raise OutputPathError(f"{final}: a directory is in the way of this output file; move or rename it "
                                  f"(ionscope deletes only what it wrote)")
        if any(final.iterdir()) and not any((final / m).exists() for m in _STORE_MARKERS):
            raise OutputPathError(f"{final}: a folder that is not a data store is in the way of this output; "
                                  f"move or rename it (ionscope deletes only what it wrote)")
        extra = _not_store_entries(final)
        if extra:  # a store holding the user's own files too (--overwrite replaces the store, not them)
            shown = ", ".join(extra[:4]) + (f" and {len(extra) - 4} more" if len(extra) > 4 else "")
            raise OutputPathError(f"{final}: holds {shown}, not part of a data store; move "
                                  f"{'it' if len(extra) == 1 else 'them'} out first (ionscope replaces a store, "
                                  f"never files put into it)")
        # Directories cannot be replaced atomically in one call: move the old
        # one aside first, then swap, then delete the old one.
        old = sess.temp_name(final) if sess is not None else _tmp_sibling(final)
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


def _remove_settled(path: Path, *, quiet_s: float = 0.3, limit_s: float = 3.0) -> None:
    """Remove ``path`` until it has stayed absent for ``quiet_s`` (at most ``limit_s``).

    When one task of a dask write fails, ``compute`` raises at once while the pool's other tasks run on,
    and a netCDF writer reopens its file by name to write their chunks: the temporary came back after a
    plain removal (seen in ``test_convert_names_the_damaged_chunk_and_writes_nothing``, 2 runs in 5 under
    load). Only the error path waits, and only while the temporary keeps coming back.
    """
    import time

    start = last_seen = time.monotonic()
    while True:
        if path.exists():
            _remove(path)
            last_seen = time.monotonic()
        now = time.monotonic()
        if now - last_seen >= quiet_s or now - start >= limit_s:
            return
        time.sleep(0.02)


# --------------------------------------------------------------------------- publishing a set of files

_JOURNAL = ".{name}.publish.json"


def _folder(dest: Path):
    """The ownership ledger of ``dest``: the active session's when it holds exactly ``dest``."""
    from ._ledger import OutputFolder
    from ._outdir import session_for

    sess = session_for(Path(dest) / "x")
    return sess if sess is not None and sess.root == Path(os.path.abspath(dest)) else OutputFolder(dest)


def staging_dir(dest: str | os.PathLike, name: str) -> Path:
    """A fresh hidden folder inside ``dest`` to write a set of outputs into before :func:`publish_set`.

    In a folder held by :func:`ionscope._outdir.session` its name carries the
    session's token, recorded before the folder is made, so that a later run
    removes it as a leftover of ours (and nothing else of that look).
    """
    dest = Path(dest)
    with os_errors(dest):
        dest.mkdir(parents=True, exist_ok=True)
    folder = _folder(dest)
    if getattr(folder, "token", None):
        path = folder.temp_name(dest / name, kind="staging")
    else:
        path = dest / f".{name}.staging-{uuid.uuid4().hex[:8]}"
    with os_errors(path):
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

    Only what ionscope wrote is touched: every name is checked to be a path
    inside ``dest`` (:func:`ionscope._outdir.safe_relpath`), a name of the new
    set that exists and was not written by ionscope refuses the whole set
    (``OutputPathError`` naming the files, before anything moves), a file of
    ``previous`` is removed only if the folder's ledger lists it as ours, and
    a directory standing where a file must go is refused, not deleted.
    """
    from ._outdir_paths import safe_relpath
    from .errors import OutputPathError

    dest = Path(dest)
    folder = _folder(dest)
    files = [safe_relpath(dest, rel, what="output") for rel in files]
    for rel in files:
        target = dest / rel
        if target.is_dir() and not target.is_symlink():
            raise OutputPathError(f"{target}: a directory is in the way of an output file; move or rename it "
                                  f"(ionscope deletes only what it wrote)")
    old = []
    for rel in previous:
        try:
            rel = safe_relpath(dest, rel, what=f"{name}.json entry")
        except OutputPathError as exc:
            warnings.warn(f"{exc}: ignored", stacklevel=2)
            continue
        if folder.owns(rel):
            old.append(rel)
    journal = dest / _JOURNAL.format(name=name)
    folder.claim([*files, journal.name, f"{name}.json"])  # refuses names ionscope did not write
    # the staged files' checksums before anything moves: a kill mid-publication leaves files the ledger proves
    folder.expect([(rel, staging / rel) for rel in files])
    with atomic_path(journal) as tmp:
        tmp.write_text(json.dumps({"staging": staging.name, "files": list(files),
                                   "remove": sorted(set(old) - set(files)), "manifest": manifest}))
    folder.record([journal.name])
    _roll_forward(dest, journal)


class _BadJournal(ValueError):
    """A publication journal that names something it must not (it is then ignored)."""


def _plan(dest: Path, journal: Path) -> dict:
    """The journal's plan, every path in it checked (``_BadJournal`` otherwise)."""
    from ._outdir_paths import safe_relpath
    from .errors import OutputPathError

    name = journal.name[1:-len(".publish.json")]
    try:
        plan = json.loads(journal.read_text())
    except (OSError, ValueError) as exc:
        raise _BadJournal(f"unreadable ({exc})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("manifest"), dict):
        raise _BadJournal("not a publication journal")
    staging = plan.get("staging")
    if not isinstance(staging, str) or not re.fullmatch(rf"\.{re.escape(name)}\.staging-[0-9a-f-]+", staging):
        raise _BadJournal(f"its staging folder {staging!r} is not one of ionscope's")
    for key in ("files", "remove"):
        if not isinstance(plan.get(key), list):
            raise _BadJournal(f"{key!r} is not a list")
        try:
            plan[key] = [safe_relpath(dest, rel, what="journal entry") for rel in plan[key]]
        except OutputPathError as exc:
            raise _BadJournal(str(exc).split(": ", 1)[-1]) from None
    return plan


def _roll_forward(dest: Path, journal: Path) -> None:
    from .errors import OutputPathError

    folder = _folder(dest)
    plan = _plan(dest, journal)
    staging = dest / plan["staging"]
    if staging.is_symlink():
        raise _BadJournal(f"its staging folder {plan['staging']!r} is a symbolic link")
    clash = folder.clashes(plan["files"])
    if clash:  # e.g. a file put there after a kill cut the publication short
        from ._ledger import clash_message

        raise OutputPathError(clash_message(dest, clash))
    for rel in plan["files"]:
        src = staging / rel
        if src.is_file() and not src.is_symlink():  # else: moved before an interruption
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest / rel)
    folder.record(plan["files"])
    for rel in plan["remove"]:
        folder.remove(rel)  # only if ours (listed in the ledger, bytes unchanged)
    name = journal.name[1:-len(".publish.json")]
    with atomic_path(dest / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(plan["manifest"], indent=1))
    folder.record([f"{name}.json"])
    if staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
    journal.unlink()
    folder.forget([journal.name])  # a journal found there later is not ours


def recover_sets(dest: str | os.PathLike, name: str) -> None:
    """Finish a journalled publication of ``name`` cut short, and drop leftovers of killed runs.

    A journal that ionscope did not write is ignored with a warning (the next
    publication then refuses the name); one of ours that names a path outside
    ``dest`` (or anything it must not) is ignored with a warning and dropped,
    and nothing it names is touched.
    """
    dest = Path(dest)
    if not dest.is_dir():
        return
    folder = _folder(dest)
    journal = dest / _JOURNAL.format(name=name)
    if journal.exists() or journal.is_symlink():
        if not folder.owns(journal.name):
            warnings.warn(f"{journal}: not written by ionscope; ignored (nothing it names is touched)", stacklevel=2)
        else:
            try:
                staging = _plan(dest, journal)["staging"]
                if (dest / staging).exists() and not folder.owns(staging):
                    raise _BadJournal(f"its staging folder {staging!r} was not made by ionscope")
                _roll_forward(dest, journal)
            except _BadJournal as exc:  # the set is not trusted
                warnings.warn(f"{journal}: {exc}; ignored and removed (nothing it names was touched)",
                              stacklevel=2)
                folder.remove(journal.name)
                folder.remove(f"{name}.json")
    clean_temporaries(dest)


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the leftovers of :func:`atomic_path` and :func:`staging_dir` of killed ionscope runs.

    Only temporaries that the folder's ledger proves ours are removed: their
    name carries the token of a run recorded there (see :mod:`ionscope._outdir`),
    so a user's ``.notes.tmp-deadbeef`` stays. Only call this on a folder the
    caller holds exclusively (a lock), or a live writer's temporary could be
    removed.
    """
    return _folder(Path(folder)).clean()
