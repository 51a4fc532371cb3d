# SPDX-License-Identifier: GPL-3.0-or-later
"""Lazy exports: every name resolves, and the .pyi stubs IDEs read list exactly the exported names."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from ionscope._lazy import LAZY_PACKAGES, stub_text


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_stub_matches_exports(package):
    mod = importlib.import_module(package)
    stub = Path(mod.__file__).with_suffix(".pyi")
    assert stub.is_file(), f"{stub} is missing: run `python -m ionscope._lazy`"
    assert stub.read_text() == stub_text(mod._EXPORTS), \
        f"{stub} is out of date with {package}._EXPORTS: run `python -m ionscope._lazy`"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_export_resolves(package):
    mod = importlib.import_module(package)
    for name, module in mod._EXPORTS.items():
        # a facade (operando, live) points at another package by its full name, as _lazy.attach resolves it
        home = module if module.startswith("ionscope") else f"{package}.{module}"
        assert getattr(mod, name) is getattr(importlib.import_module(home), name)
    assert set(mod._EXPORTS) <= set(dir(mod)) and sorted(mod.__all__) == sorted(mod._EXPORTS)
