# SPDX-License-Identifier: GPL-3.0-or-later
"""The ownership ledger of one output folder: :class:`OutputFolder` (``FOLDER/.ionscope.manifest.json``).

What the ledger records and how a name is proved ours is told in :mod:`ionscope._outdir`; sessions
(:func:`ionscope._outdir.session`) and single-file writes use this class. (Split from :mod:`ionscope._outdir`.)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._outdir_paths import (
    _REGISTRY,
    _REGISTRY_LOCK,
    _VERSION,
    DIR_MARK,
    MANIFEST,
    _abs,
    _dir_matches,
    _dir_meta,
    _error,
    _file_matches,
    _file_record,
    _is_temp_of,
    _journalled,
    safe_relpath,
)


class OutputFolder:
    """The ownership ledger of one folder (see :mod:`ionscope._outdir`).

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
