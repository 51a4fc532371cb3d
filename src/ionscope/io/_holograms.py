# SPDX-License-Identifier: GPL-3.0-or-later
"""A night of holograms written one file per time point into a folder (live or batch, one reader).

The files are numbered by the frame rule of :mod:`ionscope.io._frames` (the
last run of digits of the name, or a ``frame_pattern``); hologram number *k*
is at ``start_s + k · frame_interval_s`` (:func:`ionscope.io.frame_time`,
``time_anchor = "start"`` by default: a hologram is a short exposure). Each
file holds one 2-D image ``(y, x)`` (Fourier) or one phase-shifting group
``(frame, y, x)``, in any format :func:`ionscope.io.load` reads that the
live follower follows (:data:`ionscope.io.FRAME_EXTENSIONS`: ``.dm3``,
``.dm4``, ``.emd``, ``.hspy``/``.hdf5``/``.h5``, ``.nc``, ``.zarr``). A file
may carry its bias as an attribute or scalar coordinate ``bias_v`` (V).

:func:`read_holograms` (the batch run) and :func:`load_hologram` (the live
session, one file as it arrives) read the same bytes the same way, so the
two see the same numbers. NaN/Inf pixels are *not* refused here: the
holography frame checks list such a hologram with the batch run's reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataValidationError, FileFormatError, IonscopeError, ShapeMismatchError
from ._frames import FRAME_EXTENSIONS, MAX_MISSING_RATIO, frame_time, number_frames


#: what a numbering error of a hologram folder names: [holography] has a frame pattern, the bound is fixed
HOLOGRAM_KEYS = ("[holography] frame_pattern", "max_missing_ratio")


def is_hologram_folder(path) -> bool:
    """True for a folder of hologram files (not a Zarr store, which is one store of a whole night).

    Parameters
    ----------
    path : str or Path
        ``[holography] holograms``; a path that does not exist yet and has no suffix counts as a folder
        (a live session may start before the microscope made it).

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile, pathlib
    >>> is_hologram_folder(tempfile.mkdtemp()), is_hologram_folder(pathlib.Path(tempfile.mkdtemp()) / "n.zarr")
    (True, False)
    """
    path = Path(path)
    if path.suffix.lower() == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists():
        return False
    return path.is_dir() or (not path.exists() and not path.suffix)


def load_hologram(path, *, var: str | None = None, method: str = "fourier", lazy: bool = False):
    """One hologram file as a (y, x) — or (frame, y, x) — DataArray (read into memory unless ``lazy``).

    Parameters
    ----------
    path : str or Path
        A file :func:`ionscope.io.load` reads, holding one image.
    var : str, optional
        The variable of a multi-variable file.
    method : {"fourier", "phase-shifting"}
        One image, or one group of phase-shifted images with a ``frame`` dim.
    lazy : bool
        Keep the pixels on disk (dask; the batch reader of a whole night).

    Returns
    -------
    DataArray
        Its ``bias_v`` (V) as a scalar coordinate when the file carries it.

    Raises
    ------
    FileFormatError
        Unreadable (names the file).
    ShapeMismatchError
        Not one image of the expected dims (names the file).

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "holo_0003.nc"
    >>> xr.DataArray(np.ones((4, 5), np.float32), dims=("y", "x"), attrs={"bias_v": 0.5}).to_netcdf(p)
    >>> da = load_hologram(p); da.dims, float(da.bias_v)
    (('y', 'x'), 0.5)
    """
    from ._api import load

    path = Path(path)
    try:
        da = load(path, var=var, allow_nonfinite=True, lazy=lazy)
    except IonscopeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:160]})") from None
    if not hasattr(da, "dims") or not hasattr(da, "name"):
        raise FileFormatError(f"{path}: holds several variables; name the hologram with var")
    want = ("y", "x") if method == "fourier" else ("frame", "y", "x")
    if set(da.dims) != set(want):
        raise ShapeMismatchError(f"{path}: expected one hologram with dims {want}, got dims {da.dims}")
    da = da.transpose(*want)
    bias = _bias_of(da)
    if bias is not None:
        da = da.assign_coords(bias_v=bias)
    return da


def _bias_of(da) -> float | None:
    """The file's own bias (V): a scalar ``bias_v`` coordinate or attribute, else None."""
    v = da.coords["bias_v"].values if "bias_v" in da.coords else da.attrs.get("bias_v")
    if v is None:
        return None
    try:
        v = float(np.asarray(v, float).reshape(()))
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def stack_holograms(holograms, numbers, *, frame_interval_s: float, start_s: float = 0.0,
                    time_anchor: str = "start"):
    """Holograms (one DataArray per time point) as one night ``(time, [frame,] y, x)``.

    Parameters
    ----------
    holograms : list of DataArray
        One per time point, as :func:`load_hologram` gives them.
    numbers : list of int
        Their hologram numbers (from the file names).
    frame_interval_s, start_s, time_anchor
        As for :func:`read_holograms`.

    Returns
    -------
    DataArray

    Notes
    -----
    The first hologram's ``y``/``x`` coordinates and attributes are the
    night's; ``time`` is :func:`~ionscope.io.frame_time` of each number and
    ``frame_index`` the numbers; ``bias_v`` a coordinate when every hologram
    carries one.

    Examples
    --------
    >>> import xarray as xr
    >>> h = [xr.DataArray(np.zeros((2, 3)), dims=("y", "x")) for _ in range(2)]
    >>> s = stack_holograms(h, [4, 5], frame_interval_s=10.0); s.dims, s.time.values.tolist()
    (('time', 'y', 'x'), [40.0, 50.0])
    """
    import xarray as xr

    first = holograms[0]
    spatial = {d: first[d] for d in ("y", "x") if d in first.coords}
    biases = [h.coords["bias_v"].values if "bias_v" in h.coords else None for h in holograms]
    frames = [h.drop_vars([c for c in h.coords if c not in h.dims]).assign_coords(spatial) for h in holograms]
    t = np.asarray(frame_time(np.asarray(numbers, float), start_s=start_s, interval_s=frame_interval_s,
                              anchor=time_anchor), float)
    night = xr.concat(frames, dim="time", coords="minimal", compat="override", join="override")
    night = night.assign_coords(time=("time", t, {"units": "s"}), frame_index=("time", np.asarray(numbers, int)))
    if all(b is not None for b in biases):
        night = night.assign_coords(bias_v=("time", np.asarray(biases, float), {"units": "V"}))
    night.attrs = dict(first.attrs)
    night.attrs.pop("bias_v", None)
    return night


def read_holograms(folder, *, frame_interval_s: float, start_s: float = 0.0, time_anchor: str = "start",
                   frame_pattern: str | None = None, max_missing_ratio: float = MAX_MISSING_RATIO,
                   on_bad_frame: str = "skip", var: str | None = None, method: str = "fourier"):
    """Read a folder of hologram files as one night ``(time, y, x)`` (or ``(time, frame, y, x)``).

    Parameters
    ----------
    folder : str or Path
        The folder the holograms were written into, one file per time point.
    frame_interval_s : float
        Time between two hologram numbers (s).
    start_s : float
        Time of hologram 0 on the log's clock (s).
    time_anchor : {"start", "mid"}
        Whether a hologram's time is its exposure's start (default) or middle.
    frame_pattern : str, optional
        The frame pattern (one group: the number; default the last run of digits).
    max_missing_ratio : float
        Most missing numbers per file present (see :func:`ionscope.io.number_frames`).
    on_bad_frame : {"skip", "error"}
        An unreadable file or one of another shape: left out and listed, or refused.
    var : str, optional
        The variable of multi-variable files.
    method : {"fourier", "phase-shifting"}
        One image per file, or one ``(frame, y, x)`` group.

    Returns
    -------
    (holograms, bad) : (DataArray, list of dict)
        ``bad`` lists ``{"frame", "file", "reason"}`` (also in ``holograms.attrs["bad_frames"]``).

    Raises
    ------
    FileFormatError
        No such folder, no hologram file in it, or none readable (one line naming the folder).

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     xr.DataArray(np.full((4, 5), k, np.float32), dims=("y", "x")).to_netcdf(d / f"holo_{k:04d}.nc")
    >>> night, bad = read_holograms(d, frame_interval_s=10.0)
    >>> night.dims, night.time.values.tolist(), bad
    (('time', 'y', 'x'), [0.0, 10.0, 20.0], [])
    """
    folder = Path(folder)
    if on_bad_frame not in ("skip", "error"):
        raise DataValidationError(f"on_bad_frame: expected 'skip' or 'error', got {on_bad_frame!r}")
    if not folder.is_dir():
        raise FileFormatError(f"{folder}: no such folder of holograms")
    numbered = number_frames(folder.iterdir(), pattern=frame_pattern, max_missing_ratio=max_missing_ratio,
                             where=folder, keys=HOLOGRAM_KEYS)
    if not numbered.frames:
        extra = (f"; {len(numbered.ignored)} file(s) do not match the frame pattern {numbered.pattern!r}: "
                 + ", ".join(numbered.ignored[:5])) if numbered.ignored else ""
        raise FileFormatError(f"{folder}: no hologram files ({', '.join(FRAME_EXTENSIONS)}) in the folder{extra}")
    bad: list[dict] = []
    kept, holos, shape = [], [], None
    for k, p in numbered.frames.items():
        try:
            da = load_hologram(p, var=var, method=method, lazy=True)
            if shape is not None and da.shape != shape:
                raise ShapeMismatchError(f"{p}: image size {da.shape} differs from the first hologram's {shape}")
        except IonscopeError as exc:
            if on_bad_frame == "error":
                raise
            bad.append({"frame": int(k), "file": p.name, "reason": "corrupt: " + str(exc).replace(f"{p}: ", "")})
            continue
        shape = shape or da.shape
        kept.append(int(k))
        holos.append(da)
    for k in numbered.missing():
        bad.append({"frame": int(k), "file": "", "reason": f"missing (no file numbered {k})"})
    if not holos:
        raise FileFormatError(f"{folder}: none of the {len(numbered.frames)} hologram files is readable: "
                              + "; ".join(f"{b['file']}: {b['reason']}" for b in bad[:3]))
    night = stack_holograms(holos, kept, frame_interval_s=frame_interval_s, start_s=start_s, time_anchor=time_anchor)
    bad.sort(key=lambda b: b["frame"])
    night.attrs["source_file"] = str(folder)
    night.attrs["bad_frames"] = [f"{b['frame']}: {b['file']} {b['reason']}".strip() for b in bad]
    return night, bad
