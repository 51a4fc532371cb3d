# SPDX-License-Identifier: GPL-3.0-or-later
"""ionscope: see ions move in solid-state batteries with (S)TEM.

Subpackages are imported lazily so that ``import ionscope`` stays fast:

- :mod:`ionscope.io` — load/save calibrated data (Gatan, Velox, HyperSpy, Zarr, NetCDF)
- :mod:`ionscope.eels` — background removal, MLLS, SA/SB, multivariate analysis
- :mod:`ionscope.denoise` — sparse-coding denoising of Li-map movies
- :mod:`ionscope.holography` — off-axis and phase-shifting holography
- :mod:`ionscope.operando` — the frames → Li movie → flux pipeline
- :mod:`ionscope.simulate` — physics-based simulator with ground truth
"""
from __future__ import annotations

import importlib

from .errors import (  # errors are tiny and needed everywhere
    CalibrationError,
    DataValidationError,
    FileFormatError,
    IonscopeError,
    ShapeMismatchError,
)

__version__ = "0.1.0"

_SUBPACKAGES = {
    "io", "eels", "denoise", "holography", "operando", "simulate", "report", "data", "cli", "live",
}

__all__ = [
    "IonscopeError",
    "FileFormatError",
    "CalibrationError",
    "DataValidationError",
    "ShapeMismatchError",
    "__version__",
    *sorted(_SUBPACKAGES),
]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ionscope' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
