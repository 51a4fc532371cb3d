# SPDX-License-Identifier: GPL-3.0-or-later
"""Make docs/holography_bias.png: the offline viewer of a simulated night of holograms under bias.

Run from the repository root: ``python docs/make_holography_bias.py`` (needs python playwright and a
Chromium: ``/usr/bin/chromium`` or one on the PATH). It simulates a shielded Cu | electrolyte | Cu cell
(512² phase-shifting groups at 400 counts/px; rest, +1.5 V, −1.5 V), runs the ``[holography]`` pipeline
(what ``ionscope run night.toml`` does) and photographs ``viewer.html`` at a biased frame.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(out=HERE / "holography_bias.png"):
    from playwright.sync_api import sync_playwright

    from ionscope.io import save
    from ionscope.operando import run_holography
    from ionscope.report import holography_writers
    from ionscope.simulate import biased_holograms

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        holos, refs, log, truth = biased_holograms(
            programme=[("rest", 40), ("hold", 1.5, 200), ("hold", -1.5, 200)], shape=(512, 512), pixel_nm=0.5,
            dose=400.0, method="phase-shifting", seed=0, out=d / "night.zarr")
        save(refs, d / "refs.zarr")
        save(truth["thickness_nm"], d / "thickness.nc")
        log.to_dataframe().reset_index().to_csv(d / "bias.csv", index=False)
        (d / "night.toml").write_text(
            '[holography]\nholograms = "night.zarr"\nreferences = "refs.zarr"\nlog = "bias.csv"\n'
            'thickness_nm = "thickness.nc"\nmethod = "phase-shifting"\noutput = "run"\n')
        res = run_holography(d / "night.toml", show_progress=False, writers=holography_writers())
        page = res.output / "viewer.html"
        exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   "/usr/bin/chromium")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox", "--disable-gpu"])
            tab = browser.new_page(viewport={"width": 1400, "height": 820})
            tab.goto(page.as_uri())
            slider = tab.locator("input[type=range]").first
            n = int(slider.get_attribute("max"))
            slider.fill(str(int(0.45 * n)))          # late in the +1.5 V hold: both layers grown
            slider.dispatch_event("input")
            tab.wait_for_timeout(300)
            tab.screenshot(path=str(out))
            browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
