# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the real files in ../shared/data/real and a headless matplotlib."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("IONSCOPE_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("IONSCOPE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


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
