# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the real files in ../shared/data/real and a headless matplotlib."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("IONSCOPE_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
# absolute (a relative IONSCOPE_REAL_DATA is read from the repository root, as docs/conf.py reads it), so that
# links and subprocesses the tests make in temporary folders reach the same files
_REAL = Path(os.environ.get("IONSCOPE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
REAL_DATA = (_REAL if _REAL.is_absolute() else REPO / _REAL).resolve()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of real microscope files; tests using it skip when it is absent."""
    if not REAL_DATA.is_dir():
        if os.environ.get("CI"):  # in CI a skipped real-file test would hide a failure
            pytest.fail(f"real data folder {REAL_DATA} is absent in CI (set IONSCOPE_REAL_DATA)")
        pytest.skip(f"real data folder {REAL_DATA} is absent (set IONSCOPE_REAL_DATA)")
    return REAL_DATA


@pytest.fixture
def real_file(real_data):
    """Return a function giving the path of one real file, skipping if it is missing."""

    def get(name: str) -> Path:
        path = real_data / name
        if not path.is_file():
            pytest.skip(f"real file {path} is absent")
        return path

    return get


#: headless, offline: no background traffic from the browser during page tests
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium():
    """``(playwright.sync_api, launch)`` for page tests — ``launch(p)`` starts headless Chromium from a
    ``sync_playwright()`` context — or a skip that says what is missing."""
    import os
    import shutil

    pw = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
               "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if exe is None:
        pytest.skip("no chromium found (install Debian's chromium: apt-get install -y chromium)")
    return pw, lambda p: p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``ionscope demo --quick`` run ONCE per test session, shared read-only by every test that checks the whole
    demo (tests/test_demo.py, tests/test_demo_steps.py, tests/test_report_html.py): ``(status, out, summary,
    figures)`` with every figure kept as it was saved (``figures[name]``, demo and operando report) for the
    referee's check. A test that changes the folder must copy it to its own ``tmp_path`` first."""
    import json

    from ionscope.cli import main
    from ionscope.demo import DemoContext
    from ionscope.report import _figures

    figures = {}
    mp = pytest.MonkeyPatch()
    save_demo, save_report = DemoContext.save_figure, _figures.save_figure

    def keep_demo(self, fig, name, **kw):
        figures[name] = fig
        return save_demo(self, fig, name, **kw)

    def keep_report(fig, path, **kw):
        figures[f"operando/{path.name}"] = fig
        return save_report(fig, path, **kw)

    mp.setattr(DemoContext, "save_figure", keep_demo)
    mp.setattr(_figures, "save_figure", keep_report)
    out = tmp_path_factory.mktemp("demo")
    try:
        status = main(["demo", "--quick", "--no-progress", "--out", str(out)])
    finally:
        mp.undo()
    return status, out, json.loads((out / "summary.json").read_text()), figures
