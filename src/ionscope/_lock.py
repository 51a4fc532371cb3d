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
    with os_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
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
