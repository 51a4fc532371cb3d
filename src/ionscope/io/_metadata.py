# SPDX-License-Identifier: GPL-3.0-or-later
"""Acquisition parameters taken from the data's metadata, and checked against what the caller says.

A beam energy or an angle is a property of the acquisition, recorded by the microscope in the
file (``attrs`` keys of :data:`ionscope.data.METADATA_SCHEMA`). Functions that need one take it
from the data by default; a value given by the caller that contradicts the file is refused
rather than silently preferred (a 200 kV interaction constant on 300 kV data is a 13 % error
in every potential).
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import DataValidationError

#: Relative difference tolerated between a given value and the file's (files store e.g. 199.99 kV).
RTOL = 0.01


def _units(key: str) -> str:
    from ..data import METADATA_SCHEMA

    return METADATA_SCHEMA.get(key, ("", "", "", ()))[1]


def acquisition_value(data: Any, key: str, value: Any = None, *, argument: str | None = None,
                      required: bool = True, rtol: float = RTOL, source: str | None = None):
    """The acquisition parameter ``key`` for ``data``: the file's, the caller's, never two different ones.

    Parameters
    ----------
    data : DataArray, Dataset or None
        Data whose ``attrs`` may record ``key`` (e.g. ``beam_energy_kv``).
    key : str
        A key of :data:`ionscope.data.METADATA_SCHEMA`.
    value : float, optional
        What the caller gave (None: take the file's).
    argument : str, optional
        How the caller's value is named in messages (``"voltage_kv"``, ``"--voltage-kv"``).
    required : bool
        Raise when neither the caller nor the data give a value (else return None).
    rtol : float
        Relative difference within which the two agree.
    source : str, optional
        How the data are named in messages (default: their ``source_file`` attr, else "the data").

    Returns
    -------
    float or None

    Raises
    ------
    DataValidationError
        The given value contradicts the data's, is not a positive finite number, or neither
        gives one (``required``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros(3), dims="x", attrs={"beam_energy_kv": 300.0})
    >>> acquisition_value(da, "beam_energy_kv")
    300.0
    >>> acquisition_value(da, "beam_energy_kv", 200, argument="voltage_kv")
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: voltage_kv=200 kV contradicts the data (beam_energy_kv = 300 kV); leave it out to use the data's value, or correct the metadata
    """
    argument = argument or key
    unit = _units(key)
    unit_text = f" {unit}" if unit else ""
    attrs = getattr(data, "attrs", None) or {}
    stored = attrs.get(key)
    where = source or attrs.get("source_file") or "the data"
    if stored is not None:
        try:
            stored = float(stored)
        except (TypeError, ValueError):
            stored = None
        if stored is not None and not (math.isfinite(stored) and stored > 0):
            stored = None  # a zero beam energy is an unset field, not a measurement
    if value is not None:
        try:
            given = float(value)
        except (TypeError, ValueError):
            raise DataValidationError(f"{argument}: expected a number in{unit_text or ' the key units'}, "
                                      f"got {value!r}") from None
        if not (math.isfinite(given) and given > 0):
            raise DataValidationError(f"{argument}: expected a positive number{unit_text}, got {value!r}")
        if stored is not None and abs(given - stored) > rtol * abs(stored):
            where_text = where
            sep = " " if argument.startswith("--") else "="  # `--voltage-kv 200` on the shell, voltage_kv=200 in Python
            raise DataValidationError(
                f"{argument}{sep}{given:g}{unit_text} contradicts {where_text} ({key} = {stored:g}{unit_text}); "
                "leave it out to use the data's value, or correct the metadata")
        return given
    if stored is None and required:
        raise DataValidationError(f"{argument}: not given and {where} records no {key}; "
                                  f"give {argument} ({unit or 'value'})")
    return stored
