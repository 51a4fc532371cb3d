# SPDX-License-Identifier: GPL-3.0-or-later
"""Output folders that are ours, and only ours.

An output folder may hold files ionscope did not write (the user's notes, the
input data, another tool's results). ionscope writes there only under names it
owns, and deletes or replaces only what it wrote. The proof is a ledger kept in
the folder, ``FOLDER/.ionscope.manifest.json``:

* ``entries``: every file or folder ionscope wrote there (relative path; for a
  file its size, modification time and SHA-256 once written). A name is *ours*
  when it is listed and, for a file, still holds the bytes written (size and
  mtime equal, else the SHA-256 equal): a file the user replaced or edited is
  theirs again. Everything inside a folder entry (a stage cache, ``live/``) is
  ours;
* ``created``: whether ionscope created the folder (or found it empty), which
  is what ``run --demo`` / ``watch --demo`` require to reuse a folder;
* ``tokens``: one token per session that wrote in the folder, with the
  sub-folders where it made temporaries. Temporaries carry the token in their
  name (``.NAME.tmp-TOKEN-XXXXXXXX``, ``.NAME.staging-TOKEN-XXXXXXXX``) and a
  folder is recorded *before* the first temporary is made there, so the next
  session (holding the folder's lock) removes exactly the leftovers of dead
  sessions — never a user's file that merely looks like one.

Every path read from a ledger, journal or report manifest is checked by
:func:`safe_relpath` (relative, no ``..``, no symlink on the way, inside the
folder) before anything acts on it.

A *session* (:func:`session`) holds the folder's lock
(:func:`ionscope._lock.folder_lock`) and registers the folder for this
process: :func:`ionscope._atomic.atomic_path` then checks and records every
write under it automatically (a clash with a file ionscope did not write is an
:class:`~ionscope.errors.OutputPathError` naming the file). Without a session
(single-file command-line outputs), :func:`claim_file` / :func:`record_file`
keep the same ledger in the output file's folder.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

# the ledger and what it stands on live in their own modules; their names are also found here
from ._ledger import OutputFolder, clash_message  # noqa: F401 - clash_message: its old home
from ._outdir_paths import (  # noqa: F401 - DIR_MARK, new_token, _file_record: their old home
    _REGISTRY,
    _REGISTRY_LOCK,
    _RESERVED,
    DIR_MARK,
    LOCK_NAME,
    MANIFEST,
    _abs,
    _error,
    _file_record,
    new_token,
    safe_relpath,
)

# files claimed without a session (command-line ``-o FILE``), recorded once written
_PENDING_FILES: list[Path] = []


# --------------------------------------------------------------------------- sessions


def session_for(path) -> OutputFolder | None:
    """The innermost active session of this process whose folder holds ``path`` (None if none)."""
    p = _abs(path)
    with _REGISTRY_LOCK:
        best = None
        for root, sess in _REGISTRY.items():
            if root in p.parents:
                if best is None or len(root.parts) > len(best.root.parts):
                    best = sess
        return best


def _listing(folder: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.name not in _RESERVED)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@contextlib.contextmanager
def session(root, *, wait: bool | float = False, fresh: bool = False, what: str = "output folder") -> Iterator[
        OutputFolder]:
    """Hold ``root`` (created if absent) exclusively as an ionscope output folder.

    Parameters
    ----------
    root : path
    wait : bool or float
        Another live run holds it: refuse (False), wait (True) or wait at most this many s.
    fresh : bool
        Refuse a folder that is not empty unless ionscope created it (``run --demo``, ``watch --demo``).

    Within the block, writes through :func:`ionscope._atomic.atomic_path`
    under ``root`` are checked and recorded; leftovers of killed sessions are
    removed at the start. The same folder opened again by this process (a
    nested run) shares the session.

    Raises
    ------
    OutputPathError
        ``fresh`` and the folder holds files ionscope did not write; a file
        stands where the folder must be.
    OutputLockedError
        Another live run holds the folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope._atomic import atomic_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> with session(d) as out:
    ...     try:
    ...         with atomic_path(d / "notes.txt") as tmp:
    ...             _ = tmp.write_text("ours")
    ...     except Exception as exc:
    ...         print(type(exc).__name__)
    OutputPathError
    >>> (d / "notes.txt").read_text()
    'mine'
    """
    from ._atomic import os_errors
    from ._lock import folder_lock

    root = _abs(root)
    with _REGISTRY_LOCK:
        shared = _REGISTRY.get(root)
    if shared is not None:  # a nested run (watch's final run): the outer session stays in charge
        shared.depth += 1
        try:
            yield shared
        finally:
            shared.depth -= 1
        return
    if root.exists() and not root.is_dir():
        raise _error(f"{root}: a file stands where the {what} must be; move it or choose another path")
    if root.is_dir():  # a user's file (or a link) under the ledger's or the lock's name: refused before anything
        from ._lock import check_lock_file

        OutputFolder(root).check_ledger()
        check_lock_file(root / LOCK_NAME)
    ledger = OutputFolder(root).read() if root.is_dir() else {}
    empty = not root.exists() or not any(p for p in root.iterdir() if p.name not in _RESERVED)
    if fresh and not empty and not ledger.get("created"):
        raise _error(f"{root}: not empty ({_listing(root)}) and not made by ionscope; choose a new or empty "
                     f"folder (ionscope never writes over files it did not make)")
    created = []
    missing = root
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    with os_errors(root):
        root.mkdir(parents=True, exist_ok=True)
    sess = OutputFolder(root, token=new_token())
    sess.created_dirs = created
    sess.new_reserved = [n for n in _RESERVED if not (root / n).exists()]
    try:
        with folder_lock(root, wait=wait):
            with sess._edit() as data:
                if empty or "created" not in data:
                    data["created"] = bool(empty)
                data["tokens"][sess.token] = []
            sess.clean()
            with _REGISTRY_LOCK:
                _REGISTRY[root] = sess
            try:
                yield sess
            finally:
                with _REGISTRY_LOCK:
                    _REGISTRY.pop(root, None)
                if not sess._discarded:
                    with contextlib.suppress(OSError):
                        sess.clean(keep_own=False)
    finally:
        if sess._discarded:  # the lock's release wrote to the (removed) lock file once more
            with contextlib.suppress(OSError):
                if LOCK_NAME in sess.new_reserved:
                    (root / LOCK_NAME).unlink(missing_ok=True)
                for d in sorted(created, key=lambda p: -len(p.parts)):
                    d.rmdir()


def discard_folder(root) -> bool:
    """Remove what ionscope wrote in ``root`` — the ledger's entries that are still ours, its temporaries, the
    ledger and the lock — then ``root`` itself if nothing else is left; True when the folder is gone.

    For a session that produced nothing worth keeping (``ionscope watch --timeout`` with no frame) and
    whose folder did not exist before it: whatever else arrived there meanwhile (the microscope's
    frames, a user's notes) stays, and with it the folder. Call it only when no session holds ``root``.
    """
    root = _abs(root)
    if root.is_symlink() or not root.is_dir():
        return False
    folder = OutputFolder(root)
    try:
        folder.check_ledger()
    except Exception:  # noqa: BLE001 - not our ledger: act on nothing
        return False
    for rel in sorted(folder.read().get("entries", {}), key=lambda r: -r.count("/")):
        with contextlib.suppress(Exception):
            folder.remove(rel)  # only if ours (and unchanged)
    with contextlib.suppress(OSError):
        folder.clean(keep_own=False)
    if any(p.name not in _RESERVED and not p.name.startswith(MANIFEST + ".") for p in root.iterdir()):
        return False
    from ._lock import check_lock_file

    try:
        check_lock_file(root / LOCK_NAME)
    except Exception:  # noqa: BLE001 - a user's file under the lock's name: it stays, and the folder
        return False
    for name in _RESERVED:
        (root / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        root.rmdir()
    return not root.exists()


def overlap(out, inp, *, any_input: bool = False, holds: bool | None = None) -> str | None:
    """How an output path ``out`` collides with an input path ``inp``: ``"is"`` it, ``"is inside"`` it
    (an input file or data store; any input folder with ``any_input``), ``"holds"`` it (with
    ``any_input``, or ``holds``), or None. Symbolic links are followed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "night.nc").write_text("data")
    >>> overlap(d / "night.nc", d / "night.nc"), overlap(d / "maps.nc", d / "night.nc")
    ('is', None)
    >>> overlap(d, d / "night.nc"), overlap(d, d / "night.nc", holds=True)
    (None, 'holds')
    """
    out, inp = Path(out).resolve(), Path(inp).resolve()
    store = inp.is_file() or any((inp / m).exists() for m in ("zarr.json", ".zgroup", ".zarray"))
    if out == inp:
        return "is"
    if inp in out.parents and (store or any_input):
        return "is inside"
    if (any_input if holds is None else holds) and out in inp.parents:
        return "holds"
    return None


def check_inputs(path, inputs: dict, *, key: str, any_input: bool = False) -> None:
    """Refuse an output ``path`` that is an input, or lies inside an input file or data store.

    ``inputs`` maps a config key to the path it reads. With ``any_input``
    (the stage cache) any overlap is refused: inside any input folder, or
    holding one.

    Raises
    ------
    ConfigError
        Naming both config keys.
    """
    from .errors import ConfigError

    for name, inp_path in inputs.items():
        how = None if inp_path is None else overlap(path, inp_path, any_input=any_input)
        if how is None:
            continue
        raise ConfigError(f"config {key} = {str(path)!r} {how} the input {name} ({inp_path}); choose a path of "
                          f"its own (ionscope never writes into its inputs)")


# --------------------------------------------------------------------------- single files (no session)

#: set by :func:`file_writes` while a command runs: every atomic write outside a session is checked
_FILE_MODE: dict | None = None


@contextlib.contextmanager
def file_writes(*, overwrite: bool = False, named=()) -> Iterator[None]:
    """Within the block, :func:`~ionscope._atomic.atomic_path` outside an output-folder session
    refuses to replace a file ionscope did not write (unless ``overwrite``) and records what it writes
    in the ledger of the file's folder; the command line runs every command in this mode.

    ``overwrite`` covers only the paths in ``named`` (those typed on the command line) and those
    :func:`claim_file` is given with ``overwrite=True``: a file a command writes *beside* its output
    under a name it derives (a preview ``li_Li.png``, a frame log ``s_log.csv``) is never a user's
    file replaced by ``--overwrite`` (found: both were).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope._atomic import atomic_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "theirs.txt").write_text("theirs")
    >>> with file_writes():
    ...     with atomic_path(d / "ours.txt") as tmp:
    ...         _ = tmp.write_text("1")
    ...     with atomic_path(d / "ours.txt") as tmp:   # written by ionscope: replaced
    ...         _ = tmp.write_text("2")
    ...     try:
    ...         with atomic_path(d / "theirs.txt") as tmp:
    ...             _ = tmp.write_text("ours")
    ...     except Exception as exc:
    ...         print(type(exc).__name__)
    OutputPathError
    >>> (d / "ours.txt").read_text(), (d / "theirs.txt").read_text()
    ('2', 'theirs')
    """
    global _FILE_MODE
    previous = _FILE_MODE
    _FILE_MODE = {"overwrite": bool(overwrite), "created": [], "new_ledgers": [],
                  "named": {_abs(p) for p in named if p}}
    mode = _FILE_MODE
    try:
        yield
    except Exception:
        # a command refused (or failed) after it wrote some of its outputs — a preview beside a store
        # that was not its to replace, a --refs-out over a user's file — leaves none of its new files
        _FILE_MODE = previous
        record_claimed()
        _roll_back(mode)
        raise
    finally:
        _FILE_MODE = previous
        record_claimed()


def _roll_back(mode: dict) -> None:
    """Remove the files a failed command created (new names only, and only while still ours)."""
    for path in reversed(mode.get("created", [])):
        with contextlib.suppress(Exception):
            if path.parent.is_dir():
                OutputFolder(path.parent).remove(path.name)
    for ledger in mode.get("new_ledgers", []):
        with contextlib.suppress(Exception):
            folder = OutputFolder(ledger.parent)
            if not folder.read().get("entries"):
                ledger.unlink(missing_ok=True)


def file_mode() -> dict | None:
    return _FILE_MODE


def created_file(path) -> None:
    """Note that the running command created ``path`` (a new name): removed again if the command fails."""
    if _FILE_MODE is not None:
        _FILE_MODE["created"].append(_abs(path))


def claim_file(path, *, overwrite: bool = False, derived: bool = False) -> Path:
    """Check that a command may write ``path``: new, written by ionscope before, or ``overwrite``.

    ``derived``: the name was derived by the command, not given by the user (the message says that
    ``--overwrite`` does not replace it). A path claimed with ``overwrite=True`` while a command runs
    may be replaced by its later writes (:func:`file_writes`).

    The name is recorded in the ledger of its folder once written
    (:func:`record_claimed`, at the end of :func:`file_writes`).

    Raises
    ------
    OutputPathError
        ``path`` exists (or is a symbolic link) and ionscope did not write it.
    """
    path = _abs(path)
    exists = path.exists() or path.is_symlink()
    if path.parent.is_dir():  # its record goes into the folder's ledger: never over a user's file of that name
        OutputFolder(path.parent).check_ledger()
        ledger = path.parent / MANIFEST
        if _FILE_MODE is not None and not ledger.exists() and ledger not in _FILE_MODE["new_ledgers"]:
            _FILE_MODE["new_ledgers"].append(ledger)
    if exists and overwrite and path.is_dir() and not path.is_symlink():
        from ._atomic import _not_store_entries

        extra = _not_store_entries(path)
        if extra:  # --overwrite replaces a data store, never the user's files put into it (checked before work)
            raise _error(f"{path}: holds {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}, not part of a "
                         f"data store; --overwrite replaces a store, never files put into it: move them out first")
    if exists and not overwrite:
        if path.is_symlink() or not path.parent.is_dir() or not OutputFolder(path.parent).owns(path.name):
            if derived:
                raise _error(f"{path}: exists and was not written by ionscope; the command writes this name "
                             f"beside its output, and --overwrite replaces only the paths given on the command "
                             f"line: move or rename it (nothing was changed)")
            raise _error(f"{path}: exists and was not written by ionscope; choose another name, or pass "
                         f"--overwrite to replace it")
    if overwrite and _FILE_MODE is not None:
        _FILE_MODE["named"].add(path)
    if path not in _PENDING_FILES:
        _PENDING_FILES.append(path)
    return path


def record_claimed() -> None:
    """Record in their folders' ledgers the files claimed by :func:`claim_file` and now written."""
    while _PENDING_FILES:
        path = _PENDING_FILES.pop()
        if not ((path.exists() and not path.is_symlink()) and path.parent.is_dir()):
            continue
        with contextlib.suppress(OSError):
            OutputFolder(path.parent).record([path.name])
