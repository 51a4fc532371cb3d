# SPDX-License-Identifier: GPL-3.0-or-later
"""One exception family for everything ionscope refuses.

Every message names the file and/or field concerned and what was expected, so
that a user never has to read a traceback from inside numpy or rosettasciio.
"""
from __future__ import annotations


class IonscopeError(Exception):
    """Base class of all errors raised on purpose by ionscope.

    Catch it to handle every refusal of ionscope at once.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> from ionscope.errors import DataValidationError, IonscopeError
    >>> issubclass(DataValidationError, IonscopeError)
    True
    """


class FileFormatError(IonscopeError):
    """A file is missing, truncated, corrupt or of an unsupported format.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> import ionscope.io
    >>> try:
    ...     ionscope.io.load("no/such/file.dm4")
    ... except FileFormatError as exc:
    ...     print("no/such/file.dm4" in str(exc))
    True
    """


class CalibrationError(IonscopeError):
    """An axis lacks a calibration, or calibrations disagree.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import as_dataarray, axis_scale
    >>> try:
    ...     axis_scale(as_dataarray(np.ones(8)), "energy")
    ... except CalibrationError as exc:
    ...     print(exc)
    data: axis 'energy' has no calibration; expected coordinates in eV
    """


class DataValidationError(IonscopeError, ValueError):
    """Values are unusable: NaN/Inf in counts, negative counts, wrong dtype, bad parameter.

    Also a :class:`ValueError`, so code that catches that keeps working.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import check_finite
    >>> try:
    ...     check_finite(np.array([np.inf]))
    ... except ValueError as exc:
    ...     print(type(exc).__name__)
    DataValidationError
    """


class ShapeMismatchError(DataValidationError):
    """Arrays that must agree in shape or axes do not.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import calibrated
    >>> try:
    ...     calibrated(np.zeros((2, 3)), ("energy",))
    ... except ShapeMismatchError as exc:
    ...     print(exc)
    dims ('energy',) name 1 axes but the data have 2 (shape (2, 3))
    """


class OutputPathError(IonscopeError):
    """An output path cannot be written: a file or folder is in the way, read-only, no permission, disk full.

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> issubclass(OutputPathError, IonscopeError)
    True
    """


class OutputLockedError(IonscopeError):
    """Another run holds the output folder.

    The message names the run holding it (its process and command line).

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> issubclass(OutputLockedError, IonscopeError)
    True
    """


class StageFailedError(IonscopeError):
    """A stage failed on a cause outside the data (e.g. a lost cluster).

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> str(StageFailedError("stage 'limap': no Dask worker for 60 s"))
    "stage 'limap': no Dask worker for 60 s"
    """


class ConfigError(DataValidationError):
    """A run configuration value is unknown, of the wrong type or out of range (names ``[section] key``).

    Parameters
    ----------
    message : str
        What is wrong, naming the file or field and what was expected.

    Examples
    --------
    >>> from ionscope.pipeline import from_dict
    >>> try:
    ...     from_dict({"denoise": {"method": "median"}})
    ... except ConfigError as exc:
    ...     print(exc)
    config [denoise] method: expected one of ['sparse_coding', 'gaussian', 'none'], got 'median'
    """


class LargeOutputWarning(UserWarning):
    """An output larger than ``IONSCOPE_LARGE_OUTPUT_GB`` (default 1 GB) is about to be written; says how large.

    Parameters
    ----------
    message : str
        The output, its size and how to silence the warning.

    Examples
    --------
    >>> issubclass(LargeOutputWarning, UserWarning)
    True
    """
