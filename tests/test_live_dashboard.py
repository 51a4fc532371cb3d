# SPDX-License-Identifier: GPL-3.0-or-later
"""The live dashboard: served locally only, a token elsewhere, and a page that updates by itself."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from ionscope.errors import DataValidationError
from ionscope.live import Dashboard, LiveState


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def _state_with_frames(n=3, ny=6, nx=8):
    st = LiveState("test")
    rng = np.random.default_rng(0)
    for k in range(n):
        li = rng.random((ny, nx))
        st.put_frame({"frame": k, "time_s": 60.0 * k + 30, "li_mean": float(li.mean())},
                     {"li": li, "li_causal": li * 0.5})
    return st


def serve_watch(cfg, **options):
    """``watch(cfg)`` with its dashboard on a thread: (thread, box, stop event) once the page is served.

    ``box["url"]`` is the page, ``box["res"]`` the result once the thread ends, ``box["error"]`` what it raised.
    """
    from ionscope.live import watch

    ready, box, stop = threading.Event(), {}, threading.Event()

    def serve():
        try:
            box["res"] = watch(cfg, final=False, port=0, hold=True, stop_event=stop,
                               on_ready=lambda u: (box.__setitem__("url", u), ready.set()), **options)
        except BaseException as exc:  # surfaced by the caller
            box["error"] = exc
            ready.set()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(30) and "url" in box, box.get("error")
    return t, box, stop


def test_endpoints_and_png():
    st = _state_with_frames()
    d = Dashboard(st).start()
    try:
        assert d.url.startswith("http://127.0.0.1:") and "token" not in d.url
        code, ctype, body = _get(d.url)
        assert code == 200 and ctype.startswith("text/html")
        page = body.decode()
        # self-contained: no script, style or image is fetched from another host
        assert "<script src" not in page and "<link" not in page and "https://" not in page
        status = json.loads(_get(d.url + "api/status")[2])
        assert status["frames"] == 3 and status["newest"] == 2
        fr = json.loads(_get(d.url + "api/frame/1")[2])
        assert fr["ny"] == 6 and fr["nx"] == 8 and set(fr["maps"]) == {"li", "li_causal"}
        # the 16-bit quantisation keeps 1/65534 of the range
        import base64

        q = np.frombuffer(base64.b64decode(fr["maps"]["li"]["b64"]), "<u2").astype(float)
        lo, hi = fr["maps"]["li"]["lo"], fr["maps"]["li"]["hi"]
        back = (lo + (q - 1) / 65534 * (hi - lo)).reshape(6, 8)
        np.testing.assert_allclose(back, st.maps(1)["li"], atol=(hi - lo) / 65534)
        code, ctype, png = _get(d.url + "frame/1/li_causal.png")
        assert ctype == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
        import imageio.v3 as iio

        assert iio.imread(png).shape == (6, 8, 3)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(d.url + "api/frame/99")
        # a page elsewhere reaching the loopback server through DNS rebinding is refused
        with pytest.raises(urllib.error.HTTPError, match="403"):
            _get(d.url + "api/status", headers={"Host": "attacker.example:80"})
    finally:
        d.stop()


def test_token_is_required_when_given_or_off_loopback():
    st = _state_with_frames(1)
    d = Dashboard(st, token="s3cret").start()
    try:
        with pytest.raises(urllib.error.HTTPError, match="403"):
            _get(f"http://127.0.0.1:{d.port}/api/status")
        assert _get(f"http://127.0.0.1:{d.port}/api/status?token=s3cret")[0] == 200
    finally:
        d.stop()
    d = Dashboard(st, host="0.0.0.0")  # not started: binding all interfaces generates a token
    try:
        assert d.token and len(d.token) >= 20 and f"token={d.token}" in d.url
    finally:
        d._httpd.server_close()
    with pytest.raises(DataValidationError, match="cannot listen on 127.0.0.1"):
        Dashboard(st, port=-5)


@pytest.mark.browser
def test_page_updates_as_frames_arrive(tmp_path, chromium):
    pw, launch = chromium
    from ionscope.operando import load_config
    from ionscope.simulate import acquire

    # a frame every 1.5 s: slow enough for the page to see each one arrive
    acq = acquire(tmp_path / "acq", frame_interval_s=60.0, n_frames=5, shape=(16, 24), energy_step=0.5,
                  speed=40.0, seed=1, block=False)
    cfg = load_config(acq.config_path).replace(denoise={"method": "gaussian"})
    t, box, stop = serve_watch(cfg, settle_s=0.2, poll_s=0.05)
    errors: list[str] = []
    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"request off the server: {r.url}")
                    if not r.url.startswith(box["url"].split("?")[0]) else None)
            page.goto(box["url"])
            page.wait_for_function("document.body.dataset.shown !== undefined", timeout=20000)
            first = int(page.evaluate("document.body.dataset.shown"))
            status0 = page.inner_text("#status")
            pixels0 = page.evaluate("Array.from(document.getElementById('map-raw').getContext('2d')"
                                    ".getImageData(0, 0, 60, 60).data).join(',')")
            # no reload, no click: the page shows the next frame by itself
            page.wait_for_function(f"parseInt(document.body.dataset.shown) > {first}", timeout=20000)
            assert page.inner_text("#status") != status0
            pixels1 = page.evaluate("Array.from(document.getElementById('map-raw').getContext('2d')"
                                    ".getImageData(0, 0, 60, 60).data).join(',')")
            assert pixels1 != pixels0
            # the charge curve is drawn from the growing log, with the current frame marked
            assert page.locator("#plot-v polyline").count() >= 1
            assert page.locator("#plot-v .marker").count() == 1
            page.wait_for_function("document.getElementById('phase').textContent === 'done'", timeout=30000)
            page.wait_for_function("document.body.dataset.shown === '4'", timeout=10000)
            assert "5 frames" in page.inner_text("#status")
            assert page.locator("#plot-li circle:not(.marker)").count() == 5  # one raw mean-Li point per frame
            # any other per-frame map (here the fit's χ²) can replace the raw Li map
            before = page.evaluate("Array.from(document.getElementById('map-raw').getContext('2d')"
                                   ".getImageData(0, 0, 60, 60).data).join(',')")
            page.select_option("#layer", "chi2")
            page.wait_for_function("document.getElementById('cb-raw-label').textContent === 'χ² per pixel'")
            after = page.evaluate("Array.from(document.getElementById('map-raw').getContext('2d')"
                                  ".getImageData(0, 0, 60, 60).data).join(',')")
            assert after != before
        finally:
            browser.close()
            stop.set()
    t.join(30)
    assert "error" not in box, box.get("error")
    assert errors == []
