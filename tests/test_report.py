# SPDX-License-Identifier: GPL-3.0-or-later
"""Movies, figures, the HTML report and the offline viewer (in headless Chromium)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ionscope.errors import DataValidationError, ShapeMismatchError
from ionscope.report import li_movie, write_html_report, write_viewer


def _maps(nt=6, ny=12, nx=16, seed=0):
    rng = np.random.default_rng(seed)
    clean = np.linspace(1, 0.5, nt)[:, None, None] * np.ones((nt, ny, nx))
    return clean + 0.1 * rng.normal(size=clean.shape), clean


def test_movies_have_one_frame_per_map(tmp_path):
    import imageio.v3 as iio

    raw, den = _maps()
    captions = [f"t = {k} min · 4.0{k} V · charge" for k in range(6)]
    gif = li_movie(tmp_path / "m.gif", {"raw": raw, "denoised": den}, captions, fps=4)
    mp4 = li_movie(tmp_path / "m.mp4", {"raw": raw, "denoised": den}, captions, fps=4)
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 6 and frames.shape[-1] in (3, 4)
    assert not np.array_equal(frames[0], frames[-1])  # the caption and maps change
    import imageio_ffmpeg

    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(mp4))
    assert n_frames == 6
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporaries left


def test_movie_bad_inputs(tmp_path):
    raw, den = _maps()
    with pytest.raises(ShapeMismatchError, match="captions for 6 frames"):
        li_movie(tmp_path / "m.gif", {"raw": raw}, ["a"])
    with pytest.raises(ShapeMismatchError, match="every panel must be"):
        li_movie(tmp_path / "m.gif", {"raw": raw, "d": den[:, :5]}, ["a"] * 6)
    with pytest.raises(DataValidationError, match="movie format must be .mp4 or .gif"):
        li_movie(tmp_path / "m.avi", {"raw": raw}, ["a"] * 6)
    assert not (tmp_path / "m.avi").exists()


def test_viewer_and_report_files(tmp_path):
    raw, den = _maps()
    v = write_viewer(tmp_path / "viewer.html", raw=raw, denoised=den, times=np.arange(6) * 60.0,
                     voltage=np.linspace(3.9, 4.2, 6), states=["charge"] * 6, pixel_nm=5.0)
    text = v.read_text()
    assert "<script" in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # offline
    with pytest.raises(ShapeMismatchError, match=r"times has shape \(3,\), expected \(6,\)"):
        write_viewer(tmp_path / "x.html", raw=raw, times=[0, 1, 2])
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    from ionscope.report import save_figure

    png = save_figure(fig, tmp_path / "f.png")
    r = write_html_report(tmp_path / "report.html", title="run", sections=[
        {"title": "numbers", "numbers": {"through_fraction": 0.93456}, "figures": [png]},
        {"title": "viewer", "viewer": v, "movies": [tmp_path / "m.gif"]},
        {"title": "bad", "table": [{"frame": 3, "reason": "missing"}]}])
    html = r.read_text()
    assert "0.9346" in html and "data:image/png;base64," in html and "src='viewer.html'" in html
    assert "missing" in html


@pytest.mark.browser
def test_viewer_in_headless_chromium(tmp_path, chromium):
    pw, launch = chromium
    raw, den = _maps(nt=8)
    path = write_viewer(tmp_path / "viewer.html", raw=raw, denoised=den, times=np.arange(8) * 60.0,
                        voltage=np.linspace(3.9, 4.2, 8), soc=np.linspace(0, 1, 8),
                        states=["charge"] * 4 + ["rest"] * 4, pixel_nm=5.0)
    errors: list[str] = []
    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"network request {r.url}")
                    if not r.url.startswith(("file:", "data:")) else None)
            page.goto(Path(path).as_uri())
            page.wait_for_selector("#marker")
            label0 = page.inner_text("#label")
            cx0 = float(page.get_attribute("#marker", "cx"))
            pixel0 = page.evaluate("Array.from(document.getElementById('map').getContext('2d')"
                                   ".getImageData(5, 5, 1, 1).data)")
            # slider → frame 6
            page.eval_on_selector("#frame", "el => { el.value = 6; el.dispatchEvent(new Event('input')); }")
            assert "frame 7/8" in page.inner_text("#label") and page.inner_text("#label") != label0
            assert "rest" in page.inner_text("#label")
            cx6 = float(page.get_attribute("#marker", "cx"))
            assert cx6 > cx0 + 10  # the marker moved along the charge curve
            pixel6 = page.evaluate("Array.from(document.getElementById('map').getContext('2d')"
                                   ".getImageData(5, 5, 1, 1).data)")
            assert pixel6 != pixel0  # the map was redrawn with another frame
            # raw/denoised toggle and hover readout
            page.check("#mode-raw")
            box = page.locator("#map").bounding_box()
            page.mouse.move(box["x"] + 3, box["y"] + 3)
            readout = page.inner_text("#readout")
            assert "Li (raw) =" in readout
            shown = float(readout.split("=")[-1])
            assert shown == pytest.approx(raw[6, 0, 0], abs=1e-3 * np.ptp(raw))
            # play advances frames
            page.click("#play")
            page.wait_for_function("document.getElementById('frame').value != '6'", timeout=3000)
            page.click("#play")
        finally:
            browser.close()
    assert errors == []


def test_demo_report_step_collects_every_step(tmp_path):
    import matplotlib.pyplot as plt

    from ionscope.demo import DemoContext
    from ionscope.demo._report import run as report_step

    ctx = DemoContext(out=tmp_path)
    for name in ("figures/eels_limaps.png", "figures/simulate.png", "operando/figures/flux_map.png"):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        ctx.save_figure(fig, name)
    raw, den = _maps()
    write_viewer(ctx.path("operando/viewer.html"), raw=raw, denoised=den, times=np.arange(6) * 60.0)
    ctx.results["eels"] = {"li_bias": 0.012, "timing": {"mlls_s": 1.5}}
    ctx.results["operando"] = {"through_fraction": 0.91}
    report_step(ctx)
    html = (tmp_path / "report.html").read_text()
    for text in ("Li maps from STEM-EELS", "Simulated operando experiment", "Operando pipeline",
                 "timing", ">1.5<", "0.91", "src='operando/viewer.html'"):
        assert text in html, text
    assert html.count("data:image/png;base64,") == 3
    assert ctx.results["report"]["figures"] == 3


def test_viewer_escapes_script_end_and_draws_every_curve(tmp_path):
    raw, den = _maps(nt=4)
    path = write_viewer(tmp_path / "v.html", raw=raw, denoised=den, times=np.arange(4) * 60.0,
                        voltage=[3.9, 4.0, 4.1, 4.2], current=[2e-6, 2e-6, 0.0, -2e-6],
                        charge=[0.0, 1.2e-4, 2.4e-4, 1.2e-4], label="Li </script><script>alert(1)</script>")
    text = path.read_text()
    assert text.count("</script>") == 1  # only the page's own closing tag
    assert "<\\/script>" in text
    assert '"label": "current (\\u00b5A)"' in text and '"label": "charge passed (\\u00b5C)"' in text


def test_viewer_screenshot_has_axes_and_curves(tmp_path, chromium):
    pw, launch = chromium
    raw, den = _maps(nt=6)
    path = write_viewer(tmp_path / "v.html", raw=raw, denoised=den, times=np.arange(6) * 60.0,
                        voltage=np.linspace(3.9, 4.2, 6), current=np.full(6, 2e-6), charge=np.linspace(0, 6e-4, 6),
                        pixel_nm=5.0, label="Li weight (× reference)")
    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(Path(path).as_uri())
            page.wait_for_selector("#marker-2")
            ticks = page.eval_on_selector_all("#axes text", "els => els.map(e => e.textContent)")
            assert "x (nm)" in ticks and "y (nm)" in ticks and page.text_content("#scalebar").endswith(" nm")
            curve_text = page.eval_on_selector_all("#curve text", "els => els.map(e => e.textContent)")
            assert {"voltage (V)", "current (µA)", "charge passed (µC)", "time (min)"} <= set(curve_text)
            page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "viewer.png").stat().st_size > 10_000


def test_map_grid_conventions():
    """nm axes with y downward, time in min, one colour bar (or one per panel for relative maps)."""
    from ionscope.data import calibrated
    from ionscope.report import map_grid

    da = calibrated(np.random.default_rng(1).random((6, 8, 12)), ("time", "y", "x"),
                    scale={"time": 90.0, "y": 5.0, "x": 5.0}, offset={"time": 45.0}, name="Li")
    fig = map_grid(da, label="Li weight (× reference)")
    maps = [a for a in fig.axes if a.get_title()]
    bars = [a for a in fig.axes if a.get_ylabel() == "Li weight (× reference)"]
    assert [a.get_title() for a in maps] == ["0.8 min", "2.2 min", "3.8 min", "5.2 min", "6.8 min", "8.2 min"]
    assert len(bars) == 1
    first = next(a for a in maps if a.get_xlabel() == "x (nm)")
    lo, hi = first.get_ylim()
    assert lo > hi  # y grows downward: row 0 (the electrolyte) at the top
    assert hi == pytest.approx(-2.5) and lo == pytest.approx(37.5)  # pixel centres on the coordinates
    rel = map_grid(da.isel(time=slice(0, 2)), relative=True, label="NMF loading")
    assert sum("relative" in a.get_ylabel() for a in rel.axes) == 2  # each panel its own scale
    import matplotlib.pyplot as plt

    plt.close("all")
