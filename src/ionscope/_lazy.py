# SPDX-License-Identifier: GPL-3.0-or-later
"""Lazy re-exports for subpackages, so that ``import ionscope.<topic>`` stays cheap.

A subpackage lists ``{public name: private module}`` and calls :func:`attach`;
a name's module (and with it numpy, scipy, ...) is imported on first access.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def attach(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``.

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = attach("ionscope.simulate", {"power_law": "_spectra"})
    >>> __all__
    ['power_law']
    """
    exports = dict(exports)

    def __getattr__(name: str):
        if name in exports:
            module = importlib.import_module(f".{exports[name]}", package)
            value = getattr(module, name)
            setattr(importlib.import_module(package), name, value)  # cache: next access is direct
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__, sorted(exports)
