# SPDX-License-Identifier: GPL-3.0-or-later
"""A bounded handshake with a dask scheduler address, before handing it to ``distributed``.

``distributed.Client("tcp://host:port")`` trusts whatever answers: a plain TCP
or HTTP server that never speaks makes it wait past every timeout, and one
that does speak is read as a dask frame header (the first 8 bytes of
``HTTP/1.0`` announce a 3 EiB message: ``MemoryError``). :func:`probe_scheduler`
connects with a deadline, reads at most a few kilobytes and checks that they
are a dask handshake (the scheduler speaks first: a small framed message
naming its ``compression`` and ``pickle-protocol``), so that a wrong address
fails in one line within seconds.
"""
from __future__ import annotations

import socket
import struct
import time
from urllib.parse import urlsplit

from ..errors import ConfigError, StageFailedError

#: largest handshake message read (a real one is a few hundred bytes)
_MAX_HANDSHAKE = 1 << 16


def parse_address(address: str) -> tuple[str, int]:
    """``"tcp://HOST:PORT"`` → ``(host, port)``; IPv6 hosts in brackets.

    Examples
    --------
    >>> parse_address("tcp://127.0.0.1:8786"), parse_address("tcp://[::1]:8786")
    (('127.0.0.1', 8786), ('::1', 8786))
    """
    where = "config [compute] scheduler"
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"{where}: {address!r} is not an address tcp://HOST:PORT")
    return parts.hostname, port


def probe_scheduler(address: str, *, timeout_s: float = 5.0, connect_s: float | None = None) -> None:
    """Raise :class:`~ionscope.errors.StageFailedError` (one line) unless a dask scheduler answers at ``address``.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT``.
    timeout_s : float
        Deadline for the scheduler's handshake once connected (a scheduler
        speaks at once; a server that does not within it is not one).
    connect_s : float, optional
        How long a refused connection is retried (a scheduler still
        starting); default ``timeout_s``.

    Examples
    --------
    >>> probe_scheduler("tcp://127.0.0.1:1", timeout_s=1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ionscope.errors.StageFailedError: config [compute] scheduler 'tcp://127.0.0.1:1': nothing listens there ...
    """
    host, port = parse_address(address)
    where = f"config [compute] scheduler {address!r}"
    hint = "start the scheduler (dask scheduler --port PORT) or use scheduler = 'threads'"
    connect_s = float(timeout_s if connect_s is None else connect_s)
    sock = _connect(host, port, connect_s, where, hint)
    deadline = time.monotonic() + float(timeout_s)
    with sock:
        try:
            head = _read(sock, 8, deadline)
            (size,) = struct.unpack("<Q", head)
            if not 16 <= size <= _MAX_HANDSHAKE:
                raise _NotDask(f"its first bytes {head!r} are not a dask message header")
            body = _read(sock, size, deadline)
            (n_frames,) = struct.unpack_from("<Q", body)
            if not 1 <= n_frames <= 64 or 8 * (1 + n_frames) > size:
                raise _NotDask("its first message is not a dask frame list")
            lengths = struct.unpack_from(f"<{n_frames}Q", body, 8)
            if 8 * (1 + n_frames) + sum(lengths) < size or b"pickle-protocol" not in body:
                raise _NotDask("its first message is not a dask handshake")
            # answer with the scheduler's own handshake (a valid one), so that it does not log an aborted connection
            sock.sendall(head + body)
        except (TimeoutError, socket.timeout):
            raise StageFailedError(f"{where}: a server answers the connection but sent no dask handshake within "
                                   f"{timeout_s:g} s: not a dask scheduler (an HTTP or other server?); {hint}") \
                from None
        except _NotDask as exc:
            raise StageFailedError(f"{where}: a server answers but is not a dask scheduler ({exc}); {hint}") \
                from None
        except (ConnectionError, EOFError, struct.error, OSError) as exc:
            raise StageFailedError(f"{where}: the server closed the connection before a dask handshake "
                                   f"({type(exc).__name__}): not a dask scheduler; {hint}") from None


class _NotDask(Exception):
    pass


def _connect(host: str, port: int, connect_s: float, where: str, hint: str) -> socket.socket:
    """A connected socket; a refused connection is retried until ``connect_s`` (a scheduler still starting)."""
    deadline = time.monotonic() + connect_s
    pause = 0.05
    while True:
        left = deadline - time.monotonic()
        try:
            return socket.create_connection((host, port), timeout=max(left, 0.1))
        except socket.gaierror as exc:
            raise StageFailedError(f"{where}: unknown host {host!r} ({exc.strerror or exc}); {hint}") from None
        except ConnectionRefusedError:
            if left <= pause:
                raise StageFailedError(f"{where}: nothing listens there (connection refused for {connect_s:g} s); "
                                       f"{hint}") from None
            time.sleep(pause)
            pause = min(2 * pause, 0.5)
        except (TimeoutError, socket.timeout):
            raise StageFailedError(f"{where}: no answer within {connect_s:g} s (host unreachable or filtered); "
                                   f"{hint}") from None
        except OSError as exc:
            raise StageFailedError(f"{where}: cannot connect ({exc.strerror or exc}); {hint}") from None


def _read(sock: socket.socket, n: int, deadline: float) -> bytes:
    """Exactly ``n`` bytes before ``deadline`` (TimeoutError), or EOFError when the peer closes."""
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        part = sock.recv(min(n - len(buf), 65536))
        if not part:
            raise EOFError
        buf += part
    return bytes(buf)
