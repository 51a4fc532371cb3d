# SPDX-License-Identifier: GPL-3.0-or-later
"""The dashboard under malformed requests and clients that leave (issue 17, item 6), over real HTTP on loopback.

Every malformed path gets a 404 JSON answer — ``/api/frame/<5000 digits>``
used to raise in the server thread — and a client that disconnects
mid-response is ignored quietly: no traceback on stderr, the server goes on.
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
import time

import numpy as np
import pytest

from ionscope.live import Dashboard, LiveState


@pytest.fixture
def dash():
    st = LiveState("test")
    rng = np.random.default_rng(0)
    st.put_frame({"frame": 0, "time_s": 30.0, "li_mean": 0.5}, {"li": rng.random((8, 12))})
    # a large frame: its answer (several MB) cannot sit in the socket buffers when the client leaves
    st.put_frame({"frame": 1, "time_s": 90.0, "li_mean": 0.5}, {"li": rng.random((1200, 1200))})
    d = Dashboard(st).start()
    yield d
    d.stop()


def _get(d, path: str):
    """GET with the path sent as raw bytes (UTF-8), as any client could send it."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
        s.sendall(b"GET " + path.encode("utf-8") + f" HTTP/1.0\r\nHost: 127.0.0.1:{d.port}\r\n\r\n".encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        return r.status, r.getheader("Content-Type"), r.read()


MALFORMED = ["/api/frame/" + "9" * 5000, "/api/frame/99999999999", "/api/frame/-1", "/api/frame/1.5",
             "/api/frame/", "/api/frame/abc", "/api/frame/%FF", "/api/frame/0/extra", "/frame/" + "7" * 5000 + "/li.png",
             "/frame/0/nope.png", "/frame/0/" + "a" * 300 + ".png", "/frame/x/li.png", "/api/statusX", "//x/api/status",
             "/%00", "/api/series/../../etc/passwd", "/" + "x" * 8000, "/api/frame/\u00b2"]


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_paths_answer_404_json(dash, path, capfd):
    status, ctype, body = _get(dash, path)
    assert status == 404 and ctype == "application/json"
    assert "error" in json.loads(body)
    assert _get(dash, "/api/status")[0] == 200  # the server goes on
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err


def test_good_paths_still_answer(dash):
    status, ctype, body = _get(dash, "/api/frame/0")
    assert status == 200 and json.loads(body)["frame"] == 0
    status, ctype, _ = _get(dash, "/frame/0/li.png")
    assert status == 200 and ctype == "image/png"


def _leave_early(d, path, *, reset: bool):
    """Send a request and go away before reading the answer (a RST when ``reset``, else a close)."""
    s = socket.create_connection(("127.0.0.1", d.port))
    if reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\n\r\n".encode())
    s.recv(100)  # the answer has started: leave in the middle of it
    s.close()


@pytest.mark.parametrize("reset", [True, pytest.param(False, marks=pytest.mark.slow)])  # the other way to leave: slow tier
def test_clients_that_disconnect_mid_response_are_ignored_quietly(dash, capfd, reset):
    for _ in range(5):
        _leave_early(dash, "/api/frame/1", reset=reset)
        _leave_early(dash, "/frame/1/li.png", reset=reset)
    # half a request, then gone
    s = socket.create_connection(("127.0.0.1", dash.port))
    s.sendall(b"GET /api/sta")
    s.close()
    time.sleep(1.0)  # the server threads meet the broken connections
    assert _get(dash, "/api/status")[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err
