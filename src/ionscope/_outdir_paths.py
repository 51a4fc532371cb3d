# SPDX-License-Identifier: GPL-3.0-or-later
"""What :mod:`ionscope._outdir` stands on: the reserved names, path safety and the proof that a name is ours.

:func:`safe_relpath` checks every path read from a ledger, journal or report manifest; a ledger entry
is proved by the bytes on disk (:func:`_file_matches`, :func:`_dir_matches`). The registry of this
process's live sessions is kept here too, read by the ledger (:class:`ionscope._ledger.OutputFolder`)
and filled by :func:`ionscope._outdir.session`. (Split from :mod:`ionscope._outdir`.)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the session class lives in _outdir, which imports this module
    from ._outdir import OutputFolder

MANIFEST = ".ionscope.manifest.json"
LOCK_NAME = ".ionscope.lock"
_RESERVED = (MANIFEST, LOCK_NAME)
_VERSION = 1
_TOKEN_RE = r"[0-9a-f]{12}"
_TEMP_RE = re.compile(rf"\..+\.(?:tmp|staging)-({_TOKEN_RE})-[0-9a-f]{{8}}")

# active sessions of this process: absolute root → OutputFolder
_REGISTRY: dict[Path, OutputFolder] = {}
_REGISTRY_LOCK = threading.RLock()


def _error(msg: str):
    from .errors import OutputPathError

    return OutputPathError(msg)


def _abs(path) -> Path:
    return Path(os.path.abspath(os.fspath(path)))


def new_token() -> str:
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- path safety


def safe_relpath(root, rel, *, what: str = "path") -> str:
    """``rel`` as a clean relative POSIX path inside ``root``, or :class:`OutputPathError`.

    Refused: a non-string, an empty or absolute path, ``..`` or ``.``
    components, NUL bytes, and a path with a symbolic link on the way (which
    could lead out of the folder). What a ledger or journal names is passed
    through here before anything is moved or deleted.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> safe_relpath(d, "figures/a.png")
    'figures/a.png'
    >>> try:
    ...     safe_relpath(d, "../x")
    ... except Exception as exc:
    ...     print(type(exc).__name__, "leaves the folder" in str(exc))
    OutputPathError True
    """
    root = _abs(root)
    bad = None
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        bad = "is not a relative path"
    elif rel.startswith("/") or Path(rel).is_absolute():
        bad = "is an absolute path"
    else:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            bad = "leaves the folder ('..', '.' or empty parts)"
        else:
            cur = root
            for p in parts:
                cur = cur / p
                if cur.is_symlink():
                    bad = f"passes through a symbolic link ({cur.relative_to(root).as_posix()})"
                    break
    if bad is not None:
        raise _error(f"{root}: {what} {rel!r} {bad}; ionscope acts only on paths inside the output folder "
                     f"(nothing was changed)")
    return "/".join(rel.split("/"))


def _journalled(path: Path) -> bool:
    """A staging folder that a publication journal beside it names (kept until the journal is rolled forward)."""
    m = re.fullmatch(r"\.(.+)\.staging-[0-9a-f-]+", path.name)
    if not m:
        return False
    try:
        return json.loads((path.parent / f".{m.group(1)}.publish.json").read_text()).get("staging") == path.name
    except (OSError, ValueError, AttributeError):
        return False


def _is_temp_of(name: str, tokens: Iterable[str]) -> bool:
    m = _TEMP_RE.fullmatch(name)
    return bool(m) and m.group(1) in set(tokens)


# --------------------------------------------------------------------------- the ledger


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: a data store's own metadata at its root: what a folder entry of the ledger is recognised by
_STORE_META = (".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json")


def _dir_meta(path: Path) -> dict:
    """``{"meta": sha256}`` of a data store's root metadata files (names and bytes); ``{}`` for a plain folder.

    A store ionscope wrote (whole, through :func:`~ionscope._atomic.atomic_path`) is recognised by it
    later: a user's store put under the same name (a ledger copied from elsewhere, a folder replaced)
    has other metadata and is not taken for ours.
    """
    h = hashlib.sha256()
    found = False
    for name in _STORE_META:
        f = path / name
        if f.is_file() and not f.is_symlink():
            found = True
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return {"meta": h.hexdigest()} if found else {}


#: the file inside a folder ionscope made (``live/``) holding the id its ledger entry records
DIR_MARK = ".ionscope-dir"


def _dir_matches(path: Path, entry: dict, live: set[str] = frozenset()) -> bool:
    """A folder entry of the ledger still names the folder ionscope wrote.

    The proof, in this order: a session of this process claimed it (its ``token`` is live); its store
    metadata (``meta``) are unchanged; it holds the :data:`DIR_MARK` file with the entry's ``id``; it is
    empty (nothing in it to lose). A bare entry (a hand-written or copied ledger) proves nothing.
    """
    if path.is_symlink() or not path.is_dir():
        return False
    if entry.get("token") and entry["token"] in live:
        return True
    metas = [m for m in (entry.get("meta"), entry.get("expect_meta")) if isinstance(m, str)]
    if metas:  # (expect_meta: a store's temporary, recorded just before its rename)
        return _dir_meta(path).get("meta") in metas
    if isinstance(entry.get("id"), str):
        mark = path / DIR_MARK
        try:
            return not mark.is_symlink() and mark.is_file() and mark.read_text().strip() == entry["id"]
        except (OSError, UnicodeDecodeError):
            return False
    return not any(path.iterdir())


def _file_matches(path: Path, rec) -> bool:
    """``path`` still holds the bytes a ledger record describes (size and mtime, else SHA-256)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
        return False
    st = path.stat()
    if st.st_size != rec.get("size"):
        return False
    return st.st_mtime_ns == rec.get("mtime_ns") or _sha256(path) == rec["sha256"]


def _file_record(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}
