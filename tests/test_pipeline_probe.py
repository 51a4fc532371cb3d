# SPDX-License-Identifier: GPL-3.0-or-later
"""Scheduler addresses probed with a bounded handshake (issue 17, item 6): one line, never a hang.

``[compute] scheduler = "tcp://HOST:PORT"`` (or ``--scheduler``) pointing at a
server that is not dask — silent, HTTP, or one that speaks first — or at a
port where nothing listens, ends in one line within seconds (before: a
silent hang past the worker timeout, or ``MemoryError … 3.07 EiB``). Only
127.0.0.1 is used.
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ionscope.errors import ConfigError, StageFailedError
from ionscope.pipeline._probe import probe_scheduler


class _Server:
    """A TCP server on 127.0.0.1 that accepts and then says ``greeting`` (or nothing) and waits."""

    def __init__(self, greeting: bytes = b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.greeting = greeting
        self.conns = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.greeting:
                conn.sendall(self.greeting)

    def close(self):
        self._stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def server(request):
    s = _Server(getattr(request, "param", b""))
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(address, timeout_s=2.0):
    t0 = time.monotonic()
    with pytest.raises(StageFailedError) as exc:
        probe_scheduler(address, timeout_s=timeout_s)
    return str(exc.value), time.monotonic() - t0


def test_a_silent_tcp_server_is_one_line_within_the_deadline(server):
    msg, elapsed = _timed(server.address)
    assert "sent no dask handshake within 2 s: not a dask scheduler" in msg and "\n" not in msg
    assert elapsed < 30.0  # bounded (the deadline is 2 s; a loaded machine may add some)


@pytest.mark.parametrize("server", [b"HTTP/1.0 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n",
                                    b"\xff" * 64], indirect=True)
def test_a_server_that_speaks_something_else_is_refused_at_once(server):
    msg, _ = _timed(server.address)
    assert "is not a dask scheduler" in msg and server.address in msg


def test_an_http_server_is_not_a_scheduler():
    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        msg, _ = _timed(f"tcp://127.0.0.1:{httpd.server_address[1]}")
        assert "not a dask scheduler" in msg
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_nothing_listening_and_a_malformed_address():
    msg, _ = _timed(f"tcp://127.0.0.1:{_free_port()}")
    assert "nothing listens there (connection refused for 2 s)" in msg
    with pytest.raises(ConfigError, match="is not an address tcp://HOST:PORT"):
        probe_scheduler("tcp://127.0.0.1")


def test_a_real_scheduler_passes():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        probe_scheduler(cluster.scheduler_address, timeout_s=10.0)
        # the scheduler took the probe's handshake: a client still connects normally afterwards
        with distributed.Client(cluster.scheduler_address, timeout="10s") as client:
            assert client.scheduler_info()["address"] == cluster.scheduler_address


@pytest.mark.slow  # the CLI's one-line error (~7 s: two addresses time out); the probe's messages run fast above
def test_ionscope_run_with_a_wrong_scheduler_is_one_line(tmp_path, capsys):
    import ionscope.io as iio
    from ionscope.cli import main
    from ionscope.simulate import operando_eels

    si, _, log = operando_eels(shape=(12, 16), n_frames=3, energy_step=1.0, seed=1)
    iio.save(si, tmp_path / "s.zarr")
    toml = tmp_path / "run.toml"
    toml.write_text(f'[input]\nseries = "{tmp_path / "s.zarr"}"\n[output]\ndir = "{tmp_path / "out"}"\n'
                    f'[compute]\nworker_timeout_s = 2.0\n')
    srv = _Server()
    try:
        for address in (srv.address, f"tcp://127.0.0.1:{_free_port()}"):
            assert main(["run", str(toml), "--no-progress", "--scheduler", address]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err and "MemoryError" not in err
            assert address in err and ("not a dask scheduler" in err or "nothing listens" in err)
    finally:
        srv.close()
    assert not (tmp_path / "out" / "cache.zarr" / "limap").exists() and np.isfinite(log.voltage.values).all()
