# SPDX-License-Identifier: GPL-3.0-or-later
"""The live dashboard: a small HTTP server (stdlib) in a thread, one self-contained page.

Endpoints (all JSON except the page and the PNGs):

``/``                        the page (inline CSS and JS: no CDN, works offline)
``/api/status``              phase, frames, rate, latency, bad frames, warnings, ``version``
``/api/series``              per-frame records and the (decimated) electrochemistry log
``/api/frame/K``             frame K's maps, quantised to 16 bits (base64), with their ranges
``/frame/K/NAME.png``        one map as a PNG (viridis, the frame's 1-99 % range)

The page polls ``/api/status`` every second and fetches the rest only when
``version`` changed. The server binds 127.0.0.1 by default; binding any other
address requires a token (``?token=...`` on every request), and on a loopback
address requests whose ``Host`` is not a loopback name are refused (so a web
page elsewhere cannot reach it through DNS rebinding).
"""
from __future__ import annotations

import hmac
import json
import re
import secrets
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .. import _viewer_kit
from ..errors import DataValidationError
from ._page import PAGE
from ._state import LiveState

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG (zlib, no external encoder).

    Examples
    --------
    >>> png_bytes(np.zeros((2, 3, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


class Dashboard:
    """Serve a :class:`LiveState` on ``http://host:port/``.

    Parameters
    ----------
    state : LiveState
    host : str
        ``127.0.0.1`` by default; any other address needs a token.
    port : int
        0: a free port.
    token : str, optional
        Required on every request when given (generated when binding a
        non-loopback address without one).

    Examples
    --------
    >>> import json, urllib.request
    >>> d = Dashboard(LiveState("demo")).start()
    >>> json.load(urllib.request.urlopen(d.url + "api/status"))["title"]
    'demo'
    >>> d.stop()
    """

    def __init__(self, state: LiveState, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.state = state
        self.host = host
        if host not in _LOOPBACK and not token:
            token = secrets.token_urlsafe(18)
        self.token = token
        self._lut = None
        handler = type("Handler", (_Handler,), {"dashboard": self})
        try:
            self._httpd = _Server((host, int(port)), handler)
        except (OSError, OverflowError) as exc:  # address in use / not ours / port out of range
            raise DataValidationError(f"dashboard: cannot listen on {host}:{port} ({exc}); another port "
                                      f"(--port), or 0 for any free one") from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "Dashboard":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ionscope-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def lut(self) -> np.ndarray:
        if self._lut is None:
            self._lut = _viewer_kit.colour_lut_array("viridis")
        return self._lut


# frame numbers of at most 9 digits: a longer one is no frame (and int() of 5000 digits raises)
_FRAME = re.compile(r"^/api/frame/([0-9]{1,9})$")
_PNG = re.compile(r"^/frame/([0-9]{1,9})/([A-Za-z0-9_]{1,64})\.png$")
#: a client that went away mid-request or mid-response: nothing to answer, nothing to report
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Server(ThreadingHTTPServer):
    """The stdlib server, without a traceback on stderr for a client that disconnected."""

    daemon_threads = True

    def handle_error(self, request, client_address):  # noqa: D401 (socketserver's name)
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, _GONE) or isinstance(exc, OSError) and exc.errno in (32, 104, 103):
            return  # the browser closed the tab, a curl was interrupted: quietly
        # anything else is a bug of ours: one line, never a traceback in the dashboard thread
        print(f"ionscope dashboard: {type(exc).__name__}: {exc} (request from {client_address[0]})",
              file=sys.stderr)


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard
    server_version = "ionscope-live"

    def log_message(self, format, *args):  # quiet: the terminal shows the watcher's progress
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, code: int = 200) -> None:
        self._send(code, json.dumps(obj, allow_nan=False, default=_jsonable).encode(), "application/json")

    def _allowed(self, query: dict) -> bool:
        d = self.dashboard
        if d.host in _LOOPBACK:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in _LOOPBACK:
                return False
        if d.token:
            given = (query.get("token") or [""])[0]
            return hmac.compare_digest(given.encode(), d.token.encode())
        return True

    def handle(self):
        try:
            super().handle()
        except _GONE:
            self.close_connection = True  # the client is gone: quietly

    def do_GET(self):  # noqa: N802 (http.server's name)
        try:
            self._get()
        except _GONE:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a malformed request must not end in a traceback
            try:
                self._json({"error": f"internal error: {type(exc).__name__}"}, 500)
            except Exception:  # noqa: BLE001 - the answer itself failed (client gone): nothing more to do
                self.close_connection = True

    def _not_found(self, what: str = "not found") -> None:
        self._json({"error": what}, 404)

    def _get(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._allowed(query):
            self._send(403, b"forbidden: a token is required (?token=...)", "text/plain")
            return
        st = self.dashboard.state
        path = parts.path
        if path in ("/", "/index.html"):
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/status":
            self._json(_clean(st.status()))
        elif path == "/api/series":
            self._json(_clean(st.series()))
        elif (m := _FRAME.match(path)):
            k = int(m.group(1))
            maps = st.maps(k)
            if not maps:
                self._not_found(f"no frame {k}")
                return
            ny, nx = next(iter(maps.values())).shape
            encoded = {n: _viewer_kit.quantise(v, empty_ok=True) for n, v in maps.items()}
            self._json({"frame": k, "ny": ny, "nx": nx, "maps": encoded})
        elif (m := _PNG.match(path)):
            maps = st.maps(int(m.group(1)))
            if not maps or m.group(2) not in maps:
                self._not_found("no such map")
                return
            a = np.asarray(maps[m.group(2)], float)
            fin = a[np.isfinite(a)]
            lo, hi = (np.percentile(fin, [1, 99]) if fin.size else (0.0, 1.0))
            idx = np.clip(np.nan_to_num((a - lo) / ((hi - lo) or 1.0) * 255, nan=0), 0, 255).astype(np.uint8)
            self._send(200, png_bytes(self.dashboard.lut()[idx]), "image/png")
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._not_found()


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def _clean(obj):
    """NaN/Inf → None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
