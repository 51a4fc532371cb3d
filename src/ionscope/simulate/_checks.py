# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of the simulators' arguments: one message style, naming the argument and what was expected."""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataValidationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(value, name, *, positive=True, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or (positive and (v < 0 or (v == 0 and not allow_zero))):
        expected = ">= 0" if allow_zero else "> 0"
        raise DataValidationError(f"{name} must be a finite number {expected}, got {value!r}")
    return v


def _seed_entropy(seed):
    """The user's seed as SeedSequence entropy; only non-negative integers keep runs reproducible."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise DataValidationError(f"seed must be a non-negative integer (results must be reproducible), got {seed!r}")


def _check_shape(shape):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)):
        raise DataValidationError(f"shape must be a pair of integers (ny, nx), got {shape!r}")
    if min(shape) < 4:
        raise DataValidationError(f"shape must be at least (4, 4) pixels, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _pair(value, name):
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name} must be a pair of numbers, got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise DataValidationError(f"{name} must be finite, got {value!r}")
    return a, b


def _validate_range(energy_range, energy_step, *, allow_negative=False):
    try:
        e_lo, e_hi = (float(v) for v in energy_range)
    except (TypeError, ValueError):
        raise DataValidationError(f"energy_range must be a pair (start, stop) in eV, got {energy_range!r}") from None
    step = _check_float(energy_step, "energy_step")
    if not ((allow_negative or 0 < e_lo) and e_lo < e_hi) or not np.isfinite(e_hi) or not np.isfinite(e_lo):
        raise DataValidationError(f"energy_range must satisfy {'' if allow_negative else '0 < '}start < stop (eV), "
                                  f"got {energy_range!r}")
    n = int(np.floor((e_hi - e_lo) / step + 1e-9))
    if n < 8:
        raise DataValidationError(f"energy_range {energy_range!r} with energy_step={step:g} gives {n} channels; "
                                  "expected at least 8")
    return e_lo + step * np.arange(n), step
