# SPDX-License-Identifier: GPL-3.0-or-later
"""Exclusive output folders: one run at a time per folder.

A run takes ``FOLDER/.ionscope.lock`` with an exclusive ``flock`` and writes
its pid, host, start time and command (option names only, never their values:
no token or password reaches the disk) into it; the file is readable by its
owner only (mode 0600). The kernel drops the lock when the
holder exits in any way (including SIGKILL or a power cut), so a lock file
left by a dead run is *stale* by construction: the next run takes it over and
says so. A second run while the first is alive refuses with one line naming
the holder, or waits for it (``wait``).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from ._atomic import os_errors
from .errors import OutputLockedError

LOCK_NAME = ".ionscope.lock"


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "another ionscope run"
    return (f"run pid {info.get('pid', '?')} on host {info.get('host', '?')} "
            f"(started {info.get('started', '?')})")


def check_lock_file(path, *, fd: int | None = None) -> None:
    """Refuse a ``.ionscope.lock`` that ionscope did not write (:class:`~ionscope.errors.OutputPathError`).

    Ours is a plain file holding nothing (created, not yet written) or the
    JSON record of a run (``pid``, ``host``, ...). A symbolic link or
    another file under that name is the user's: taking the lock would
    truncate and rewrite it (through a link, a file outside the folder).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / LOCK_NAME
    >>> _ = p.write_text("my notes")
    >>> try:
    ...     check_lock_file(p)
    ... except Exception as exc:
    ...     print(type(exc).__name__)
    OutputPathError
    """
    from .errors import OutputPathError

    path = Path(path)
    why = None
    if path.is_symlink():
        why = "is a symbolic link"
    elif path.exists() and not path.is_file():
        why = "is not a plain file"
    elif path.exists():
        try:
            if fd is not None:
                size = os.fstat(fd).st_size
                text = os.pread(fd, min(size, 1 << 16), 0) if size else b""
            else:
                text = path.read_bytes()[: 1 << 16]
        except OSError:
            return  # (unreadable: the open below says why, in one line)
        if text.strip():
            try:
                info = json.loads(text)
            except ValueError:
                info = None
            if not (isinstance(info, dict) and "pid" in info and "started" in info):
                why = "holds something other than ionscope's lock record"
    if why:
        raise OutputPathError(f"{path}: {why}, not a lock ionscope wrote; move it away (ionscope never writes over "
                              f"a file it did not write, and never through a link)")


def command_line(argv) -> str:
    """The command that holds a folder, without any option value (``--token SECRET`` → ``--token``).

    Only the program's name, the sub-command words before the first option
    and the option names are kept: a value (a token, a password in a
    scheduler address) never reaches the disk.

    Examples
    --------
    >>> command_line(["/usr/bin/ionscope", "watch", "run.toml", "--token", "s3cret", "--port=9000"])
    'ionscope watch --token --port'
    """
    argv = [str(a) for a in argv]
    if not argv:
        return ""
    words = [os.path.basename(argv[0])]
    rest = argv[1:]
    while rest and len(words) < 3 and re.fullmatch(r"[a-z][a-z0-9-]*", rest[0]):
        words.append(rest.pop(0))  # sub-commands (`run`, `holo phase-shift`): plain words
    words += [a.split("=", 1)[0] for a in rest if a.startswith("-") and len(a) > 1]
    return " ".join(words)


@contextlib.contextmanager
def folder_lock(folder, *, wait: bool | float = False, poll_s: float = 0.5) -> Iterator[Path]:
    """Hold ``folder`` exclusively for the duration of the block.

    Parameters
    ----------
    folder : path
        Created if absent.
    wait : bool or float
        False: refuse at once if another live run holds the folder; True:
        wait for it; a number: wait at most that many seconds.

    Raises
    ------
    OutputLockedError
        Another live run holds the folder (the message names its pid, host
        and start time).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with folder_lock(d):
    ...     try:
    ...         with folder_lock(d):
    ...             pass
    ...     except OutputLockedError as exc:
    ...         print("refused")
    refused
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    check_lock_file(path)
    with os_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        try:  # O_NOFOLLOW: a link planted under the lock's name is never written through
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                check_lock_file(path)  # (a link made since the check above): one line naming it
            raise
    try:
        check_lock_file(path, fd=fd)  # (a foreign file put there since the check above: nothing written yet)
        deadline = None if wait is True else time.monotonic() + (float(wait) if wait else 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise OutputLockedError(
                        f"{folder}: in use by {_describe(_holder(path))}; wait for it to finish, or pass --wait "
                        f"(ionscope run) / wait=True") from None
                time.sleep(poll_s)
        previous = _holder(path)
        if previous.get("pid") and previous.get("state") != "released":
            warnings.warn(f"{folder}: taking over the lock left by {_describe(previous)}, which is no longer "
                          f"running (it was killed or crashed; its finished stages are reused)", stacklevel=3)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": command_line(sys.argv), "state": "running"}
        with os_errors(path):
            os.fchmod(fd, 0o600)  # (a lock written by an older version may be world-readable)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                released = json.dumps({**info, "state": "released"}).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, released, 0)
    finally:
        os.close(fd)  # releases the flock
