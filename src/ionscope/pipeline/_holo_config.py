# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``[holography]`` section of a run configuration: a night of holograms under bias.

A configuration with this section describes a holography night (the holography
table of :mod:`ionscope.pipeline._holography`); one without it, an EELS night.
The two share ``[output]`` and ``[compute]``; the EELS sections (``[input]``,
``[limap]``, ...) have no meaning for holograms and are refused beside it.

Example::

    [holography]
    holograms = "night.zarr"      # (time, y, x) off-axis or (time, frame, y, x) phase-shifting groups
    references = "refs.zarr"      # optional: vacuum references on their own time axis
    log = "bias.csv"              # optional: bias log (ionscope.io.read_log); else the holograms' bias_v
    method = "fourier"            # or "phase-shifting"
    thickness_nm = 60.0           # or the path of a (y, x) map in nm
    drift = "auto"                # specimen drift: measured per frame (default), "none", or [[y, x], ...] nm
    # optional: output (the folder, as [output] dir), voltage_kv, interfaces_nm, window_nm, model,
    #           background ("piecewise", "linear", "constant"), order, workers, zero_bias,
    #           min_bias_v (asymmetry), min_jump_v (relaxation), frame_checks, min_good_fraction,
    #           on_bad_frame ("skip": a bad time point is left out and listed; "error": the run stops on it,
    #           naming it — the same vocabulary as [input] on_bad_frame of an EELS night)

A folder of hologram files (one file per time point, as the microscope
writes them; ``ionscope watch`` follows it live, ``ionscope run`` reads it
afterwards)::

    [holography]
    holograms = "holograms/"      # a folder: holo_0000.dm4, holo_0001.dm4, ... (.dm3 .dm4 .emd .hspy .h5 .nc)
    frame_interval_s = 10.0       # required for a folder: hologram k is at start_s + k · frame_interval_s
    # optional: frame_pattern (a regular expression, one group: the number; default the last run of
    #           digits of the name, as [input] frame_pattern), start_s (0.0), time_anchor ("start" or "mid")
    log = "bias.csv"              # the bias log the potentiostat appends to; else each file's bias_v attribute
    references = "refs.nc"        # optional, written before the night starts
    thickness_nm = 60.0

Each file holds one hologram ``(y, x)`` (or one phase-shifting group
``(frame, y, x)``); a file that cannot be read is left out and listed
(``on_bad_frame = "skip"``) or stops the run (``"error"``).

``workers`` is still accepted but no longer used: the frames run as tasks on
the run's executor (``[compute] scheduler``: threads, synchronous, a Dask
cluster), ``[compute] frames_per_batch`` of them per resumable batch.
"""
from __future__ import annotations

import math

from ..errors import ConfigError, DataValidationError

#: Options of ``[holography]`` and their defaults (None: not given).
OPTIONS = {
    "holograms": None, "references": None, "log": None, "output": "holography_run", "method": "fourier",
    "thickness_nm": None, "voltage_kv": None, "interfaces_nm": None, "window_nm": None, "model": "erf",
    "background": "piecewise", "order": 1, "workers": 1, "zero_bias": None, "min_bias_v": None, "min_jump_v": None,
    "drift": "auto", "frame_checks": True, "min_good_fraction": 0.5, "on_bad_frame": "skip",
    # a folder of hologram files, one per time point (live: `ionscope watch`; batch: `ionscope run`)
    "frame_pattern": None, "frame_interval_s": None, "start_s": 0.0, "time_anchor": "start",
}

#: Sections of an EELS night: meaningless beside ``[holography]``.
EELS_SECTIONS = ("input", "screen", "energy_drift", "register", "limap", "denoise", "sync", "analysis", "report")


def holography_section(sec) -> dict:
    """``[holography]`` with its defaults, every value checked (one line naming the key otherwise).

    Examples
    --------
    >>> opt = holography_section({"thickness_nm": 60.0})
    >>> opt["method"], opt["drift"], opt["thickness_nm"]
    ('fourier', 'auto', 60.0)
    >>> holography_section({"thickness_nm": True})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ionscope.errors.ConfigError: config [holography] thickness_nm: expected a thickness in nm (a number > 0), ...
    """
    if not isinstance(sec, dict):
        raise ConfigError(f"config [holography]: expected a table of keys, got {sec!r}")
    unknown = sorted(set(sec) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"config [holography]: unknown option(s) {unknown}; expected {sorted(OPTIONS)}")
    out = {**OPTIONS, **sec}
    _check_section(out)
    out["drift"] = _drift_option(out["drift"])
    return out


def _check_section(opt: dict) -> None:
    """Every ``[holography]`` value's type and range, before anything is read: one line naming the key."""
    from ..holography import check_bias_options

    if opt["thickness_nm"] is None:
        raise ConfigError("config [holography] thickness_nm: required (nm, or the path of a (y, x) map)")
    for key in ("holograms", "references", "log", "output"):
        v = opt[key]
        if v is not None and not (isinstance(v, str) and v.strip()):
            raise ConfigError(f"config [holography] {key}: expected a path (a string), got {v!r}")
    _check_folder_keys(opt)
    if opt["on_bad_frame"] not in ("skip", "error"):
        raise ConfigError(f"config [holography] on_bad_frame: expected \"skip\" or \"error\", got "
                          f"{opt['on_bad_frame']!r}")
    if not isinstance(opt["frame_checks"], bool):
        raise ConfigError(f"config [holography] frame_checks: expected true or false, got {opt['frame_checks']!r}")
    try:
        check_bias_options(allow_path=True, **{k: opt[k] for k in (
            "thickness_nm", "voltage_kv", "interfaces_nm", "window_nm", "model", "background", "order", "workers",
            "zero_bias", "method", "min_good_fraction", "min_bias_v", "min_jump_v")})
    except DataValidationError as exc:
        key, _, rest = str(exc).partition(": ")
        raise ConfigError(f"config [holography] {key}: {rest}") from None


def _check_folder_keys(opt: dict) -> None:
    """The keys of a folder of hologram files (checked whether or not ``holograms`` is a folder)."""
    fi = opt["frame_interval_s"]
    if fi is not None and (isinstance(fi, bool) or not isinstance(fi, (int, float)) or not math.isfinite(fi)
                           or fi <= 0):
        raise ConfigError(f"config [holography] frame_interval_s: expected a time in s (a number > 0), got {fi!r}")
    st = opt["start_s"]
    if isinstance(st, bool) or not isinstance(st, (int, float)) or not math.isfinite(st):
        raise ConfigError(f"config [holography] start_s: expected a time in s (a number), got {st!r}")
    if opt["time_anchor"] not in ("start", "mid"):
        raise ConfigError(f"config [holography] time_anchor: expected \"start\" or \"mid\", got {opt['time_anchor']!r}")
    fp = opt["frame_pattern"]
    if fp is not None:
        from ..io import frame_pattern

        try:
            frame_pattern(fp, where="config [holography] frame_pattern")
        except DataValidationError as exc:
            raise ConfigError(str(exc)) from None


def _drift_option(value):
    """``drift``: "auto", "none" (or false) → None, or a list of [y, x] specimen positions (nm) per time point."""
    if value is False or value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) and
                                                                 not isinstance(v, bool) and math.isfinite(v)
                                                                 for v in p) for p in value):
        return [[float(v) for v in p] for p in value]
    raise ConfigError(f"config [holography] drift = {value!r}: expected \"auto\", \"none\" or a list of "
                      "[y, x] specimen positions in nm, one per time point")
