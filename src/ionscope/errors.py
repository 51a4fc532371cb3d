# SPDX-License-Identifier: GPL-3.0-or-later
"""One exception family for everything ionscope refuses.

Every message names the file and/or field concerned and what was expected, so
that a user never has to read a traceback from inside numpy or rosettasciio.
"""
from __future__ import annotations


class IonscopeError(Exception):
    """Base class of all errors raised on purpose by ionscope."""


class FileFormatError(IonscopeError):
    """A file is missing, truncated, corrupt or of an unsupported format."""


class CalibrationError(IonscopeError):
    """An axis lacks a calibration, or calibrations disagree."""


class DataValidationError(IonscopeError, ValueError):
    """Values are unusable: NaN/Inf in counts, negative counts, wrong dtype, bad parameter."""


class ShapeMismatchError(DataValidationError):
    """Arrays that must agree in shape or axes do not."""


class OutputPathError(IonscopeError):
    """An output path cannot be written: a file or folder is in the way, read-only, no permission, disk full."""


class OutputLockedError(IonscopeError):
    """Another run holds the output folder."""


class StageFailedError(IonscopeError):
    """A stage failed on a cause outside the data (e.g. a lost cluster)."""


class ConfigError(DataValidationError):
    """A run configuration value is unknown, of the wrong type or out of range (names ``[section] key``)."""


class LargeOutputWarning(UserWarning):
    """An output larger than ``IONSCOPE_LARGE_OUTPUT_GB`` (default 1 GB) is about to be written; says how large."""
