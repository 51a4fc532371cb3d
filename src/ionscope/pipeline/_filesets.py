# SPDX-License-Identifier: GPL-3.0-or-later
"""A report's files as one stored unit: :class:`FileSetStore` (split from :mod:`ionscope.pipeline._stores`).

Where :class:`~ionscope.pipeline._stores.StageCache` keeps a stage's result as a Zarr group, a report
stage's result is a set of files in the output folder, published together under a journal.
"""
from __future__ import annotations

import json
from pathlib import Path


class FileSetStore:
    """A store whose entry is a set of files in the output folder, published as one unit.

    Report stages (the EELS report, the holography report) write their files
    into :meth:`staging` and return ``(staging, {name: path})``; :meth:`save`
    publishes the set under a journal (:func:`ionscope._atomic.publish_set`):
    the folder holds the old set or, after the next start at the latest, the
    whole new one — never a lasting mix. The manifest ``<name>.json`` records
    the key and the files: :meth:`has` is true when it carries the key and
    every listed file exists. A manifest that ionscope did not write, or one
    naming a path outside the folder, is not trusted: the stage is redone and
    its publication refuses to replace what is not ours.

    Parameters
    ----------
    out_dir : path
        The output folder.
    name : str
        The set's name: its manifest is ``out_dir/<name>.json``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> store = FileSetStore(out, "notes")
    >>> staging = store.staging()
    >>> _ = (staging / "a.txt").write_text("a")
    >>> store.save("notes", "k1", (staging, {"a": staging / "a.txt"}))
    >>> store.has("notes", "k1"), sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    (True, ['a.txt', 'notes.json'])
    """

    def __init__(self, out_dir, name: str = "report"):
        from .._atomic import recover_sets

        self.out = Path(out_dir)
        self.name = name
        recover_sets(self.out, name)  # finish a publication a kill cut short; drop unfinished staging

    def staging(self) -> Path:
        """A fresh hidden folder in the output folder to write the next set into."""
        from .._atomic import staging_dir

        return staging_dir(self.out, self.name)

    def _manifest(self) -> dict:
        import warnings

        from .._atomic import _folder
        from .._outdir_paths import safe_relpath
        from ..errors import OutputPathError

        path = self.out / f"{self.name}.json"
        if not path.is_file() or not _folder(self.out).owns(path.name):
            return {}
        try:
            data = json.loads(path.read_text())
            files = data.get("files", {})
            if not isinstance(files, dict):
                raise ValueError("'files' is not a table")
            data["files"] = {str(k): safe_relpath(self.out, v, what=f"{self.name}.json entry")
                             for k, v in files.items()}
        except (OSError, ValueError, AttributeError, OutputPathError) as exc:
            warnings.warn(f"{path}: not trusted ({exc}); the report is written anew", stacklevel=2)
            return {}
        return data

    def has(self, name: str, key: str) -> bool:
        old = self._manifest()
        return old.get("key") == key and all((self.out / f).is_file() for f in old.get("files", {}).values())

    def save(self, name: str, key: str, staged) -> None:
        from .._atomic import publish_set

        staging, files = staged
        rel = {k: Path(v).relative_to(staging).as_posix() for k, v in files.items()}
        previous = list(self._manifest().get("files", {}).values())
        publish_set(staging, self.out, list(rel.values()), name=self.name, manifest={"key": key, "files": rel},
                    previous=previous)

    def load(self, name: str) -> dict[str, str]:
        return {k: str(self.out / v) for k, v in self._manifest().get("files", {}).items()}
