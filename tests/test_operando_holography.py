# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography-under-bias stage table: files in, movie + curves + summary out, cached and resumable."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ionscope.errors import ConfigError
from ionscope.io import read_log
from ionscope.pipeline._holography import STAGES, run_holography
from ionscope.simulate import biased_holograms

PROGRAMME = [("rest", 30), ("hold", 1.5, 150), ("hold", -1.5, 150)]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A simulated night on disk: holograms and references (Zarr), bias log (CSV), thickness map, config."""
    from ionscope.io import save

    d = tmp_path_factory.mktemp("night")
    holos, refs, log, truth = biased_holograms(programme=PROGRAMME, shape=(256, 256), pixel_nm=1.0, dose=1000.0,
                                               seed=2, out=d / "holos.zarr")
    save(refs, d / "refs.zarr")
    save(truth["thickness_nm"], d / "thickness.nc")
    log.to_dataframe().reset_index().rename(columns={"time": "time (s)", "voltage": "voltage (V)",
                                                    "current": "current (A)"}).to_csv(d / "bias.csv", index=False)
    (d / "run.toml").write_text(
        '[holography]\nholograms = "holos.zarr"\nreferences = "refs.zarr"\nlog = "bias.csv"\n'
        'thickness_nm = "thickness.nc"\noutput = "out"\nmethod = "fourier"\n')
    return d, truth


def test_run_produces_movie_curves_and_summary(night):
    d, truth = night
    from ionscope.report import holography_writers

    res = run_holography(d / "run.toml", writers=holography_writers())  # figures, GIF, viewer: from report
    out = d / "out"
    assert res.output == out and set(res.records) == set(STAGES)
    for f in ("summary.json", "figures/holo_steps.png", "figures/holo_potential.png", "potential_movie.gif",
              "viewer.html", "curves.csv"):
        assert (out / f).stat().st_size > 0, f
    assert not (out / ".holo_maps.zarr").exists()
    s = json.loads((out / "summary.json").read_text())
    assert "viewer.html" in s["files"] and "potential_movie.gif" in s["files"]
    assert s["n_time_points"] == truth.sizes["time"] and s["method"] == "fourier"
    # the report's writers do not edit the run's result: the same series as read back from the cache
    # (the viewer blanked the widths of step-less frames in res.series itself)
    again = run_holography(d / "run.toml", writers=holography_writers())
    assert all(r.cached for r in again.records.values())  # a rerun of an unchanged night is every stage cached
    for v in ("width_nm", "width_nm_std", "position_nm", "position_nm_std"):
        np.testing.assert_array_equal(res.series[v].values, again.series[v].values, err_msg=v)
    # the movie is in the cache, (time, y, x), in V
    assert res.series["potential"].dims == ("time", "y", "x") and res.series["potential"].attrs["units"] == "V"
    # asymmetry recovered (simulator: 0.3, positive side larger) with its σ
    a = s["asymmetry"]["all"]
    assert abs(a["asymmetry"] - 0.3) < 3 * a["asymmetry_std"] + 0.05
    assert a["step_positive_v"] > a["step_negative_v"]
    # relaxation: three steps (0 → +1.5, +1.5 → −1.5) × two interfaces; τ = 40 s within 3.5σ or 30 %
    taus = [(r["tau_s"], r["tau_s_std"]) for r in s["relaxation"] if r["tau_s"] is not None]
    assert len(taus) >= 3
    for tau, sd in taus:
        assert abs(tau - 40.0) < max(3.5 * sd, 12.0)
    # ΔV per frame vs truth (the curves the report plots)
    err = res.series["step_v"].values - truth["step_v"].values
    assert np.sqrt(np.mean(err ** 2)) < 0.1


@pytest.mark.slow  # the cached rerun is asserted fast above; the stage keys run fast for EELS nights
def test_rerun_is_cached_and_a_changed_option_redoes_the_series(night, tmp_path):
    import shutil

    d, _ = night
    from ionscope.report import holography_writers

    run_holography(d / "run.toml", writers=holography_writers())  # the night (cached when the fast tier ran it)
    import tomllib

    cfg = tomllib.loads((d / "run.toml").read_text())
    cfg["holography"]["window_nm"] = 20.0
    cfg["holography"] = {k: (str(d / v) if k in ("holograms", "references", "log", "thickness_nm") else v)
                         for k, v in cfg["holography"].items()}
    # the changed run goes to a copy of the folder, so that d/out stays cached for the tests below (a changed
    # option in a copied folder redoes the series as in the original: the cache travels with the folder)
    shutil.copytree(d / "out", tmp_path / "out")
    changed = run_holography(cfg, output=tmp_path / "out", writers=holography_writers())
    assert not changed.records["holo_series"].cached and not changed.records["holo_report"].cached
    assert changed.series.attrs["window_nm"] == 20.0


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no \\[holography\\]"):
        run_holography({"input": {}})
    with pytest.raises(ConfigError, match="unknown option"):
        run_holography({"holography": {"thickness_nm": 60, "colour": "red"}})
    with pytest.raises(ConfigError, match="thickness_nm"):
        run_holography({"holography": {"holograms": "x.zarr"}})
    with pytest.raises(ConfigError, match="does not exist"):
        run_holography({"holography": {"holograms": str(tmp_path / "missing.zarr"), "thickness_nm": 60}},
                       output=tmp_path / "o")
    with pytest.raises(ConfigError, match="method"):
        run_holography({"holography": {"thickness_nm": 60, "method": "holospy"}})


def test_ionscope_run_routes_a_holography_config(night, tmp_path, capsys):
    from ionscope.cli import main

    import shutil

    d, _ = night
    # into a copy of the folder the tests above made: the routing is under test here, not the stages (cached)
    shutil.copytree(d / "out", tmp_path / "cli")
    assert main(["run", str(d / "run.toml"), "--no-progress", "-o", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "asymmetry" in out and (tmp_path / "cli" / "summary.json").exists()
    # one run per folder, as for the EELS pipeline
    from ionscope._lock import folder_lock

    with folder_lock(tmp_path / "cli"):
        assert main(["run", str(d / "run.toml"), "--no-progress", "-o", str(tmp_path / "cli")]) != 0
    err = capsys.readouterr().err
    assert "in use by" in err and "Traceback" not in err
    # the live mode follows a folder of hologram files: a finished store gets a clear pointer to `ionscope run`
    assert main(["watch", str(d / "run.toml"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "watch follows a folder of hologram files" in err and "ionscope run" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the offline viewer (viewer.html)
from test_holography_viewer import _maps, _payload  # noqa: E402  (the page decoders, one copy)


def test_viewer_embeds_every_frame_and_the_curves(night):
    d, _ = night
    from ionscope.report import holography_writers

    res = run_holography(d / "run.toml", writers=holography_writers())  # cached after the first test
    log = read_log(d / "bias.csv")
    ds = res.series
    path = res.output / "viewer.html"
    assert "viewer.html" in res.summary["files"]
    text = path.read_text(encoding="utf-8")
    # one file, offline: no URL but the SVG namespace, one script element
    assert "http" not in text.replace("http://www.w3.org/2000/svg", "") and text.count("</script>") == 1
    D = _payload(path)
    n = ds.sizes["time"]
    assert D["nt"] == n and D["frames"] == list(range(n))  # 24 < 100: every frame, in order
    pot = np.asarray(ds["potential"].values, float)
    assert (D["ny"], D["nx"]) == pot.shape[1:] and D["block"] == 1  # small maps are not downsampled
    # the maps come back to within the 16-bit step (values beyond the clip bounds are clipped)
    clipped = np.clip(pot, D["qlo"], D["qhi"])
    step = (D["qhi"] - D["qlo"]) / 65534
    np.testing.assert_allclose(_maps(D), clipped, atol=step, equal_nan=True)
    # fixed colour scale, symmetric about 0: ± the 99.5th percentile of |ΔV| over the frames, in the
    # profile region (not the thin wedge edge, where ΔV = Δφ/(C_E·t) is noise over a small t)
    assert D["lo"] == -D["hi"]
    region = np.asarray(ds["region"].values, bool)
    assert D["hi"] == pytest.approx(np.nanpercentile(np.abs(pot[:, region]), 99.5), rel=1e-9)
    assert D["label"] == "ΔV from zero bias (V)" and D["pixel_nm"] == pytest.approx(float(ds.x[1] - ds.x[0]))
    # curves: every frame's ΔV ± σ and width per interface, the bias and current log
    np.testing.assert_allclose(np.array(D["step"], float).T, ds["step_v"].values, rtol=1e-5)
    np.testing.assert_allclose(np.array(D["step_std"], float).T, ds["step_v_std"].values, rtol=1e-5)
    # widths where the fit found a step; blank ("—") where it did not, as the report's figure draws them
    from ionscope.report._holography import _found

    found = _found(ds["step_v"].values, ds["step_v_std"].values, ds["width_nm"].values, ds["width_nm_std"].values,
                   abs(float(ds.x[1] - ds.x[0])))
    width = np.where(found, ds["width_nm"].values, np.nan)
    assert np.isfinite(width).sum() >= width.size // 2  # most frames have a step to measure
    np.testing.assert_allclose(np.array(D["width"], float).T, width, rtol=1e-5)
    np.testing.assert_allclose(D["t"], ds["time"].values)
    np.testing.assert_allclose(D["bias_curve"]["v"], log["voltage"].values)  # 231 points: all kept
    factor = {"nA": 1e9, "pA": 1e12, "µA": 1e6}[D["current"]["unit"]]
    np.testing.assert_allclose(np.array(D["current"]["v"]) / factor, log["current"].values, rtol=1e-5, atol=1e-18)
    assert D["tunit"] == "s"  # a 230 s series is labelled in s
    assert D["interfaces_nm"] == pytest.approx(list(ds["interface_nm"].values))


@pytest.mark.browser
def test_viewer_in_headless_chromium(night, chromium, tmp_path):
    pw, launch = chromium
    d, _ = night
    from ionscope.report import holography_writers

    res = run_holography(d / "run.toml", writers=holography_writers())
    ds = res.series
    path = res.output / "viewer.html"
    bias = ds["bias_v"].values
    k = int(np.flatnonzero(bias > 1)[-1])  # the last (most relaxed) frame at +1.5 V
    errors: list[str] = []
    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"network request {r.url}")
                    if not r.url.startswith(("file:", "data:")) else None)
            page.goto(path.as_uri())
            page.wait_for_selector("#marker-step-1")
            n = ds.sizes["time"]
            assert page.inner_text("#label").startswith(f"frame 1/{n} · t = 0 s · bias +0.00 V")
            x0 = float(page.get_attribute("#cursor", "x1"))
            assert "no bias" in page.inner_text("#asym")
            pixel0 = page.evaluate("Array.from(document.getElementById('map').getContext('2d')"
                                   ".getImageData(300, 200, 1, 1).data)")
            page.eval_on_selector("#frame", f"el => {{ el.value = {k}; el.dispatchEvent(new Event('input')); }}")
            label = page.inner_text("#label")
            assert label.startswith(f"frame {k + 1}/{n} · t = {ds.time.values[k]:.0f} s · bias +1.50 V · current ")
            # the cursor moved to the frame's time on every panel, the markers sit on its values
            xk = float(page.get_attribute("#cursor", "x1"))
            assert xk > x0 + 100
            for cid in ("#cursor-1", "#cursor-2", "#cursor-3"):
                assert float(page.get_attribute(cid, "x1")) == pytest.approx(xk)
            assert float(page.get_attribute("#marker-step-0", "cx")) == pytest.approx(xk)
            # the frame's numbers: ΔV ± σ per interface, the positive side marked, asymmetry ± σ
            pos = int(ds["positive_interface"].values[k])
            for i in range(2):
                row = page.inner_text(f"#num-{i}")
                dv, sd = float(ds.step_v.values[k, i]), float(ds.step_v_std.values[k, i])
                shown = re.search(r"([+−])(\d+\.\d+) ± (\d+\.\d+)", row)
                value = float(shown.group(2)) * (-1 if shown.group(1) == "−" else 1)
                assert value == pytest.approx(dv, abs=0.006) and float(shown.group(3)) == pytest.approx(sd, abs=0.006)
                assert ("positive side" in row) == (i == pos)
            asym = page.inner_text("#asym")
            a = float(ds.asymmetry.values[k])
            assert re.search(r"= ([+−])(\d+\.\d+) ±", asym) and \
                float(asym.split("= ")[1].split(" ±")[0].replace("−", "-")) == pytest.approx(a, abs=0.006)
            pixel_k = page.evaluate("Array.from(document.getElementById('map').getContext('2d')"
                                    ".getImageData(300, 200, 1, 1).data)")
            assert pixel_k != pixel0  # the map was redrawn
            # hover: the ΔV under the pointer, in V
            box = page.locator("#map").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.7)
            readout = page.inner_text("#readout")
            assert "nm, ΔV = " in readout and readout.endswith(" V")
            # colour bar: symmetric limits and the unit; scale bar in nm
            assert page.inner_text("#cb-label") == "ΔV from zero bias (V)"
            assert page.inner_text("#cb-lo").startswith("−") and page.inner_text("#cb-hi").startswith("+")
            assert page.text_content("#scalebar").endswith(" nm")
            texts = page.eval_on_selector_all("#curve text", "els => els.map(e => e.textContent)")
            assert {"bias (V)", "interface ΔV (V)", "10–90 % width (nm)", "time (s)"} <= set(texts)
            assert any(t.startswith("current (") for t in texts)
            # play advances
            page.click("#play")
            page.wait_for_function(f"document.getElementById('frame').value != '{k}'", timeout=3000)
            page.click("#play")
            page.screenshot(path=str(tmp_path / "holo_viewer.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert (tmp_path / "holo_viewer.png").stat().st_size > 20_000
