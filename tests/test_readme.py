# SPDX-License-Identifier: GPL-3.0-or-later
"""README.md runs top to bottom as written: every ```bash and ```python block, in order, in one empty folder.

A new user copies the README's blocks one after another into a shell and a Python prompt in an empty
folder. This test does the same: each block runs as written (bash with ``-euo pipefail``, Python in a
fresh interpreter), in document order, in one temporary folder, with the ``ionscope`` of the
interpreter running the tests on the path. Files one block writes are what the next block reads.

The one exception is the first block, ``make demo`` / ``make test``: run inside the suite, ``make
test`` would start the suite again; the test checks that the block is exactly those two lines and that
the Makefile's targets run what ``tests/test_demo.py`` and this suite test.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MAKE_BLOCK = ["make demo", "make test"]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]


def _commands(code: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in code.splitlines() if line.split("#", 1)[0].strip()]


def test_fence_parser_finds_blocks_in_order():
    text = "x\n```bash\necho 1\n```\n\n```python\nprint(2)\n```\n```toml\na = 1\n```\n"
    assert blocks(text) == [("bash", "echo 1\n"), ("python", "print(2)\n"), ("toml", "a = 1\n")]


def test_readme_links_point_at_files_that_exist():
    missing = [link for link in re.findall(r"\]\(([^)#\s]+)", README.read_text())
               if "://" not in link and not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_first_block_is_the_two_make_commands():
    runnable = [(lang, code) for lang, code in blocks(README.read_text()) if lang in ("bash", "python")]
    assert runnable and runnable[0][0] == "bash" and _commands(runnable[0][1]) == MAKE_BLOCK
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:.*\n\t\$\(BIN\)/ionscope demo --out \$\(OUT\)$", makefile, re.M)
    assert re.search(r'^test:.*\n\t\$\(BIN\)/python -m pytest -q -m "not slow"$', makefile, re.M)
    assert re.search(r"^test-slow:.*\n\t\$\(BIN\)/python -m pytest -q -m slow$", makefile, re.M)


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path):
    runnable = [(lang, code) for lang, code in blocks(README.read_text()) if lang in ("bash", "python")]
    assert len(runnable) >= 3, "README.md should show commands and Python snippets"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(MPLBACKEND="Agg", IONSCOPE_PROGRESS="0", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # as a user would: the installed ionscope, not the source tree by path
    for i, (lang, code) in enumerate(runnable):
        if i == 0:
            continue  # make demo / make test: see test_first_block_is_the_two_make_commands
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (
            f"README block {i} ({lang}) failed with exit status {proc.returncode}:\n{code}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    # what the README says its commands write is there
    for name in ("series.zarr", "refs.nc", "series_log.csv", "limaps.zarr", "limaps_Li.png", "li_denoised.zarr",
                 "profile.nc", "profile.png", "wave.nc", "run-demo/report.html", "maps.nc"):
        assert (tmp_path / name).exists(), name
