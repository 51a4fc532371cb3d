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
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

MANIFEST = ".ionscope.manifest.json"
LOCK_NAME = ".ionscope.lock"
_RESERVED = (MANIFEST, LOCK_NAME)
_VERSION = 1
_TOKEN_RE = r"[0-9a-f]{12}"
_TEMP_RE = re.compile(rf"\..+\.(?:tmp|staging)-({_TOKEN_RE})-[0-9a-f]{{8}}")

# active sessions of this process: absolute root → OutputFolder
_REGISTRY: dict[Path, "OutputFolder"] = {}
_REGISTRY_LOCK = threading.RLock()
# files claimed without a session (command-line ``-o FILE``), recorded once written
_PENDING_FILES: list[Path] = []


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


class OutputFolder:
    """The ownership ledger of one folder (see the module docstring).

    Parameters
    ----------
    root : path
        The folder.
    token : str, optional
        This session's token (set by :func:`session`); None: no temporaries
        are tracked (their names are random, as :func:`~ionscope._atomic.atomic_path` makes them).
    """

    def __init__(self, root, *, token: str | None = None):
        self.root = _abs(root)
        self.token = token
        self.created_dirs: list[Path] = []  # folders this session created (root and missing parents)
        self.new_entries: list[str] = []  # names it claimed that did not exist before
        self.new_reserved: list[str] = []  # the lock and the ledger, when it made them
        self._discarded = False
        self.depth = 0  # > 0 while a nested run shares this session (it must not discard the outer's work)

    # -- reading and writing the ledger (a short flock on the folder itself guards read-modify-write)
    @property
    def ledger(self) -> Path:
        return self.root / MANIFEST

    def read(self) -> dict:
        """The ledger (``{}`` when absent; unreadable: ``{}`` with a warning — nothing is trusted)."""
        p = self.ledger
        if p.is_symlink() or not p.exists():
            return {}
        try:
            return self._parse()
        except (OSError, ValueError) as exc:
            warnings.warn(f"{p}: unreadable ({exc}); no file in {self.root} counts as written by ionscope",
                          stacklevel=3)
            return {}

    def _parse(self) -> dict:
        data = json.loads(self.ledger.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("entries", {}), dict) \
                or not isinstance(data.get("tokens", {}), dict):
            raise ValueError("not a ledger")
        return data

    def check_ledger(self) -> None:
        """Refuse (one line) a ``.ionscope.manifest.json`` that ionscope did not write: a symbolic link, a
        folder, or a file that is not a ledger. Writing the ledger would replace it (the user's file)."""
        p = self.ledger
        why = None
        if p.is_symlink():
            why = "is a symbolic link"
        elif p.exists() and not p.is_file():
            why = "is not a plain file"
        elif p.exists():
            try:
                self._parse()
            except (OSError, ValueError) as exc:
                why = f"is not an ionscope ledger ({type(exc).__name__}: {' '.join(str(exc).split())[:80]})"
        if why:
            raise _error(f"{p}: {why}; ionscope keeps its record of what it wrote under that name and never "
                         f"replaces a file it did not write: move it away, or choose another folder")

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict]:
        from ._atomic import os_errors

        with os_errors(self.root):
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            with contextlib.suppress(OSError):  # (a file system without flock: the folder's own lock still holds)
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.check_ledger()  # a user's file (or a link) under the ledger's name is never replaced
            data = self.read()
            data.setdefault("ionscope", "output folder ledger")
            data.setdefault("version", _VERSION)
            data.setdefault("entries", {})
            data.setdefault("tokens", {})
            yield data
            with os_errors(self.ledger):
                fdt, tmp = tempfile.mkstemp(dir=self.root, prefix=MANIFEST + ".")
                try:
                    with os.fdopen(fdt, "w") as f:
                        json.dump(data, f, indent=0, sort_keys=True)
                    os.replace(tmp, self.ledger)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
        finally:
            os.close(fd)

    # -- ownership
    def rel(self, path) -> str:
        """``path`` (absolute, or relative to the current directory) relative to the root, checked."""
        p = _abs(path)
        try:
            rel = p.relative_to(self.root).as_posix()
        except ValueError:
            raise _error(f"{p}: outside the output folder {self.root}; ionscope writes only inside it") from None
        return safe_relpath(self.root, rel)

    def _tokens(self, data: dict) -> set[str]:
        return ({self.token} if self.token else set()) | set(data.get("tokens", {}))

    def _live(self) -> set[str]:
        """Tokens of the sessions of this process (their claims are in memory, not just in the ledger)."""
        with _REGISTRY_LOCK:
            live = {s.token for s in _REGISTRY.values() if s.token}
        return live | ({self.token} if self.token else set())

    def _owned(self, data: dict, rel: str) -> bool:
        """Whether ``rel`` is ours: the ledger lists it *and* the thing on disk proves it.

        Trusted: a file whose size and mtime (else SHA-256) equal those recorded after it was written, or
        those recorded of the temporary just before it was renamed into place (``expect``: a kill between
        the rename and the record); a folder as :func:`_dir_matches`; an entry a live session of this
        process claimed (``token``). A listed name that does not exist may be created. Nothing else: an
        entry without a checksum (a hand-forged or copied ledger) never makes a user's file ours.
        """
        if self._inside_owned(data, rel):
            return True
        e = data.get("entries", {}).get(rel)
        if not isinstance(e, dict):
            return False
        p = self.root / rel
        if not (p.exists() or p.is_symlink()):
            return True  # listed, not there: creating it again is ours to do
        if p.is_symlink():
            return False
        live = self._live()
        if p.is_dir():
            return _dir_matches(p, e, live)
        if not p.is_file():
            return False
        if e.get("token") and e["token"] in live:
            return True  # claimed by a session of this process, being written
        return _file_matches(p, e) or _file_matches(p, e.get("expect"))

    def owns(self, rel: str) -> bool:
        """Whether ``rel`` (a checked relative path) was written by ionscope and is unchanged since."""
        return self._owned(self.read(), rel)

    def clashes(self, rels: Iterable[str], data: dict | None = None) -> list[str]:
        """The names among ``rels`` that exist and are not ours."""
        data = self.read() if data is None else data
        out = []
        for rel in rels:
            p = self.root / rel
            if (p.exists() or p.is_symlink()) and not self._owned(data, rel):
                out.append(rel)
                continue
            parts = rel.split("/")  # a file where a folder of the name must be (figures/ a file)
            for i in range(1, len(parts)):
                q = self.root.joinpath(*parts[:i])
                if (q.exists() or q.is_symlink()) and not q.is_dir():
                    out.append("/".join(parts[:i]))
                    break
        return sorted(set(out), key=out.index)

    def check_new(self, rels: Iterable[str], *, hint: str = "") -> None:
        """Refuse (one line naming them) names that exist and were not written by ionscope."""
        rels = [safe_relpath(self.root, r) for r in rels]
        clash = self.clashes(rels)
        if clash:
            raise _error(clash_message(self.root, clash, hint=hint))

    def claim(self, rels: Iterable[str], *, kind: str = "file", hint: str = "", mark_dirs: bool = False) -> None:
        """Check ``rels`` (relative paths) are new or ours, then record them as ours before they are written.

        ``mark_dirs`` (folders, ``kind="dir"``): create each folder now and put a :data:`DIR_MARK` file in
        it whose id the ledger records — the proof, for a later session, that the folder is ours.
        """
        rels = [safe_relpath(self.root, r) for r in rels]
        with self._edit() as data:
            clash = self.clashes(rels, data)
            if clash:
                raise _error(clash_message(self.root, clash, hint=hint))
            live = self._live()
            for rel in rels:
                p = self.root / rel
                if not (p.exists() or p.is_symlink()) and rel not in self.new_entries:
                    self.new_entries.append(rel)
                if self._inside_owned(data, rel):
                    continue
                # (re)written from now on: ours while this session lives (its token), and afterwards only
                # as far as the bytes prove it (the record kept until :meth:`record` replaces it)
                old = data["entries"].get(rel)
                keep = {k: v for k, v in old.items() if k in ("size", "mtime_ns", "sha256", "meta", "id")} \
                    if isinstance(old, dict) else {}
                entry = {**keep, "kind": kind}
                if self.token:
                    entry["token"] = self.token
                if kind == "dir" and mark_dirs and not p.is_symlink() and not (p.exists() and not p.is_dir()):
                    entry["id"] = self._mark_dir(p, keep.get("id"), data, rel, live)
                data["entries"][rel] = entry

    def _mark_dir(self, p: Path, old_id, data: dict, rel: str, live) -> str:
        """Create folder ``p`` if needed and mark it ours (:data:`DIR_MARK`); its id."""
        ident = old_id if isinstance(old_id, str) and _dir_matches(p, {"id": old_id}) else uuid.uuid4().hex
        p.mkdir(parents=True, exist_ok=True)
        mark = p / DIR_MARK
        if not (mark.is_file() and not mark.is_symlink() and mark.read_text().strip() == ident):
            if mark.is_symlink() or (mark.exists() and not mark.is_file()):
                raise _error(f"{mark}: not a file ionscope wrote; move it away")
            mark.write_text(ident + "\n")
        return ident

    def expect(self, items: Iterable[tuple[str, Path]]) -> None:
        """Record what each ``src`` (a temporary about to be renamed to ``rel``) holds, before the rename: a
        kill between the rename and :meth:`record` then leaves a file the ledger still proves ours.

        ``items``: ``(rel, src)`` pairs of names claimed before (others are ignored).
        """
        got = {}
        for rel, src in items:
            src = Path(src)
            if src.is_file() and not src.is_symlink():
                got[rel] = {"expect": _file_record(src)}
            elif src.is_dir() and not src.is_symlink() and _dir_meta(src):
                got[rel] = {"expect_meta": _dir_meta(src)["meta"]}
        if not got:
            return
        with self._edit() as data:
            for rel, extra in got.items():
                e = data["entries"].get(rel)
                if isinstance(e, dict):
                    e.update(extra)

    def _inside_owned(self, data: dict, rel: str) -> bool:
        """Inside one of our temporaries (a staging folder) or a folder ionscope made (a cache, live/)."""
        parts = rel.split("/")
        if any(_is_temp_of(p, self._tokens(data)) for p in parts):
            return True
        entries = data.get("entries", {})
        for i in range(1, len(parts)):
            e = entries.get("/".join(parts[:i]))
            if isinstance(e, dict) and e.get("kind") == "dir" and _dir_matches(self.root / "/".join(parts[:i]), e,
                                                                                   self._live()):
                return True
        return False

    def record(self, rels: Iterable[str]) -> None:
        """Record size, mtime and SHA-256 of files just written (claimed before)."""
        rels = list(rels)
        with self._edit() as data:
            for rel in rels:
                if self._inside_owned(data, rel):
                    continue
                p = self.root / rel
                old = data["entries"].get(rel) if isinstance(data["entries"].get(rel), dict) else {}
                if p.is_dir() and not p.is_symlink():
                    keep = {"id": old["id"]} if isinstance(old.get("id"), str) else {}
                    data["entries"][rel] = {"kind": "dir", **keep, **_dir_meta(p)}
                elif p.is_file() and not p.is_symlink():
                    exp = old.get("expect")
                    st = p.stat()
                    if isinstance(exp, dict) and exp.get("size") == st.st_size and \
                            exp.get("mtime_ns") == st.st_mtime_ns and isinstance(exp.get("sha256"), str):
                        rec = dict(exp)  # (the renamed temporary, hashed just before: not read twice)
                    else:
                        rec = _file_record(p)
                    data["entries"][rel] = {"kind": "file", **rec}

    def adopt(self, rel: str, *, kind: str = "dir") -> None:
        """Record ``rel`` as ours without the clash check: for a folder whose own marker proves that
        ionscope made it (a stage cache, :func:`ionscope.pipeline._stores.cache_state`)."""
        rel = safe_relpath(self.root, rel)
        with self._edit() as data:
            data["entries"][rel] = {"kind": kind, **({"token": self.token} if self.token else {})}

    def forget(self, rels: Iterable[str]) -> None:
        """Drop names from the ledger (a file ionscope removed itself, e.g. a finished journal)."""
        with self._edit() as data:
            for rel in rels:
                data["entries"].pop(rel, None)

    def remove(self, rel: str) -> bool:
        """Delete ``rel`` if it is ours (file, or folder ionscope made); False (and untouched) otherwise."""
        rel = safe_relpath(self.root, rel)
        with self._edit() as data:
            if not self._owned(data, rel):
                return False
            p = self.root / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
            data["entries"].pop(rel, None)
        return True

    # -- temporaries
    def temp_name(self, final: Path, kind: str = "tmp") -> Path:
        """A temporary sibling of ``final`` carrying this session's token; its folder is recorded first."""
        final = _abs(final)
        name = f".{final.name}.{kind}-{self.token}-{uuid.uuid4().hex[:8]}"
        parent = final.parent
        rel_dir = "." if parent == self.root else parent.relative_to(self.root).as_posix()
        if rel_dir != "." and any(_is_temp_of(p, [self.token]) for p in rel_dir.split("/")):
            return parent / name  # inside one of our temporaries: removed with it
        data = self.read()
        if rel_dir not in data.get("tokens", {}).get(self.token, []):
            with self._edit() as data:
                dirs = data["tokens"].setdefault(self.token, [])
                if rel_dir not in dirs:
                    dirs.append(rel_dir)
        return parent / name

    def clean(self, *, keep_own: bool = True) -> list[Path]:
        """Remove the temporaries of dead sessions: every recorded token but the live ones of this process.

        Call only while holding the folder's lock (no other process then has
        a live session here). ``keep_own=False`` removes this session's own
        leftovers too (at its end).
        """
        with _REGISTRY_LOCK:
            live = {s.token for s in _REGISTRY.values() if s.token and s is not self}
        if keep_own and self.token:
            live.add(self.token)
        data = self.read()
        gone = [t for t in data.get("tokens", {}) if t not in live]
        removed: list[Path] = []
        kept: set[str] = set()  # tokens with a staging folder a pending journal names: proof kept for recovery
        if not gone:
            return removed
        for tok in gone:
            dirs = data["tokens"].get(tok, [])
            for rel_dir in dirs if isinstance(dirs, list) else []:
                try:
                    folder = self.root if rel_dir == "." else self.root / safe_relpath(self.root, rel_dir)
                except Exception:  # noqa: BLE001 - a tampered ledger entry: act on nothing there
                    continue
                if not folder.is_dir():
                    continue
                for p in folder.iterdir():
                    if _is_temp_of(p.name, [tok]) and _journalled(p):
                        kept.add(tok)
                    elif _is_temp_of(p.name, [tok]):
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p, ignore_errors=True)
                        else:
                            p.unlink(missing_ok=True)
                        removed.append(p)
        with self._edit() as data:
            for tok in gone:
                if tok not in kept:
                    data["tokens"].pop(tok, None)
        return removed

    def prepare_write(self, final) -> str | None:
        """Before writing ``final``: check it is new or ours and record it; None when nothing to record
        (inside a folder ionscope made or inside one of this session's temporaries)."""
        rel = self.rel(final)
        if self._inside_owned(self.read(), rel):
            return None
        self.claim([rel])
        return rel

    # -- a failed start leaves nothing
    def discard_new(self) -> None:
        """Remove what this session created (a run refused before any result was worth keeping).

        The names this session claimed that did not exist before, the lock
        and the ledger when this session made them, then the folders it
        created, if empty; a file someone else put there meanwhile stays.
        """
        if self.depth:
            return
        data = self.read()
        for rel in sorted(self.new_entries, key=lambda r: -r.count("/")):
            with contextlib.suppress(Exception):
                if self._owned(data, safe_relpath(self.root, rel)):
                    p = self.root / rel
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        self.clean(keep_own=False)
        with contextlib.suppress(OSError):
            with self._edit() as data:
                for rel in self.new_entries:
                    data["entries"].pop(rel, None)
        for name in self.new_reserved:
            (self.root / name).unlink(missing_ok=True)
        for d in sorted(self.created_dirs, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        self._discarded = True


def clash_message(root, names: list[str], *, hint: str = "") -> str:
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    if not (Path(root) / MANIFEST).exists():
        hint += ("; this folder has no ionscope ledger (.ionscope.manifest.json), so outputs of an ionscope "
                 "version that kept none count as not ionscope's: move them away once")
    return (f"{root}: {shown} already exist{'s' if len(names) == 1 else ''} and "
            f"{'was' if len(names) == 1 else 'were'} not written by ionscope; move "
            f"{'it' if len(names) == 1 else 'them'} away or choose another output folder "
            f"(ionscope never replaces a file it did not write){hint}")


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

    out = Path(path).resolve()
    for name, inp_path in inputs.items():
        if inp_path is None:
            continue
        inp = Path(inp_path).resolve()
        store = inp.is_file() or any((inp / m).exists() for m in ("zarr.json", ".zgroup", ".zarray"))
        if out == inp:
            how = "is"
        elif inp in out.parents and (store or any_input):
            how = "is inside"
        elif any_input and out in inp.parents:
            how = "holds"
        else:
            continue
        raise ConfigError(f"config {key} = {str(path)!r} {how} the input {name} ({inp_path}); choose a path of "
                          f"its own (ionscope never writes into its inputs)")


# --------------------------------------------------------------------------- single files (no session)

#: set by :func:`file_writes` while a command runs: every atomic write outside a session is checked
_FILE_MODE: dict | None = None


@contextlib.contextmanager
def file_writes(*, overwrite: bool = False) -> Iterator[None]:
    """Within the block, :func:`~ionscope._atomic.atomic_path` outside an output-folder session
    refuses to replace a file ionscope did not write (unless ``overwrite``) and records what it writes
    in the ledger of the file's folder; the command line runs every command in this mode.

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
    _FILE_MODE = {"overwrite": bool(overwrite), "created": [], "new_ledgers": []}
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


def claim_file(path, *, overwrite: bool = False) -> Path:
    """Check that a command may write ``path``: new, written by ionscope before, or ``overwrite``.

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
            raise _error(f"{path}: exists and was not written by ionscope; choose another name, or pass "
                         f"--overwrite to replace it")
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
