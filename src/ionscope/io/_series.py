# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an operando series: a folder of frames, one multi-frame file, or a Zarr store.

A night of acquisition rarely ends with a perfect folder: a frame may be
missing, truncated, or acquired with a different spectrometer setting. Such
frames are *dropped and recorded* (index, file, reason) instead of stopping
the run (``on_bad_frame="skip"``), or refused (``"error"``). Frame times come
from the frame number (``start_s + k · frame_interval_s``), so a missing frame
leaves a gap in time rather than shifting every later frame.

:func:`screen_frames` reads every frame once more: a frame whose data cannot be
decoded, holds NaN/Inf, or fails a physical plausibility gate (all zero,
negative signal, negative values beyond read noise, total counts far outside
the series' own range: :mod:`ionscope.pipeline._gates`, ``[screen]``) is bad.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CalibrationError, DataValidationError, FileFormatError, IonscopeError, ShapeMismatchError
from ._frames import FRAME_EXTENSIONS, MAX_MISSING_RATIO, frame_number, frame_time, number_frames

_FRAME_EXT = set(FRAME_EXTENSIONS)


def _frame_number(path: Path, pattern: str | None = None) -> int | None:
    """The frame number of a file by the frame pattern (:func:`ionscope.io.frame_number`)."""
    return frame_number(Path(path).name, pattern=pattern)


def _time_coord(n: int, *, numbers=None, start_s: float, interval_s: float, anchor: str) -> np.ndarray:
    k = np.arange(n, dtype=float) if numbers is None else np.asarray(numbers, float)
    return np.asarray(frame_time(k, start_s=start_s, interval_s=interval_s, anchor=anchor), float)


def read_series(path, *, frame_interval_s: float = 60.0, start_s: float = 0.0, time_anchor: str = "mid",
                on_bad_frame: str = "skip", chunks_time: int = 1, frame_pattern: str | None = None,
                max_missing_ratio: float = MAX_MISSING_RATIO, var: str | None = None,
                check_timestamps: bool = True):
    """Open an operando STEM-EELS series lazily as one (time, y, x, energy) DataArray.

    Parameters
    ----------
    path : str or Path
        A folder of frames (``.dm3``, ``.dm4``, ``.hspy``, ``.nc``, ... one
        spectrum image each, numbered in their names), one multi-frame file, or
        a Zarr store with a ``time`` (or ``frame``) dimension.
    frame_interval_s : float
        Frame period, used when the data carry no time coordinate.
    start_s : float
        Start of frame 0 on the log's clock (s); added to the times a store
        carries (they count from the start of the acquisition). In a folder,
        frame number *k* (from its file name) starts at
        ``start_s + k · frame_interval_s`` whatever number the series starts
        at; a series numbered from 1 whose first frame starts at the log's
        t = 0 needs ``start_s = -frame_interval_s``.
    time_anchor : {"mid", "start"}
        Whether the ``time`` coordinate is each frame's middle (default, the
        moment a frame best represents) or its start.
    on_bad_frame : {"skip", "error"}
        Drop an unreadable / inconsistent frame and record it, or raise.
    chunks_time : int
        Frames per dask chunk.
    frame_pattern : str, optional
        Folder: the regular expression (one group: the number) that names
        frame files (default: the last run of digits of the name; see
        :mod:`ionscope.io._frames`). Files with a frame extension that do not
        match are ignored and listed in ``series.attrs["ignored_files"]``; two
        files with one number are refused with both names.
    max_missing_ratio : float
        Folder: most missing frame numbers per frame file present (default
        10); a number beyond (a date in a backup's name) is refused naming
        the file.
    var : str, optional
        The variable of multi-variable frame files or store (``[input] var``;
        default: the only one, or the store's main one).
    check_timestamps : bool
        Folder: when every kept frame carries its own acquisition time
        (``timestamp``, e.g. from DM tags), each frame's time since the first
        must match its number × ``frame_interval_s`` to within half an
        interval + 5 s, else :class:`DataValidationError` naming the frame and
        the mean interval the timestamps give (a wrong interval, or frames
        renumbered, would otherwise shift every frame's time silently).

    Returns
    -------
    (series, bad) : (xarray.DataArray, list of dict)
        ``bad`` lists ``{"frame": k, "file": name, "reason": text}`` (a frame
        number with no file: ``"missing (no file numbered k)"``). For a
        folder, ``series.attrs["frame_files"]`` names the file of each kept
        frame, ``series.attrs["ignored_files"]`` the files that are not frames
        and the ``frame_index`` coordinate holds the frame numbers. Only headers are read here; a frame whose *data* cannot be
        decoded or holds NaN/Inf is found by :func:`screen_frames`.

    Raises
    ------
    FileFormatError
        No such path / no frame files / nothing readable.
    DataValidationError, CalibrationError, ShapeMismatchError
        A bad frame with ``on_bad_frame="error"``.

    Examples
    --------
    >>> series, bad = read_series("night/frames/")  # doctest: +SKIP
    >>> series.dims, [b["reason"] for b in bad]  # doctest: +SKIP
    (('time', 'y', 'x', 'energy'), ['missing (no file numbered 7)'])
    """
    from .. import io as iio

    path = Path(path)
    if on_bad_frame not in ("skip", "error"):
        raise DataValidationError(f"on_bad_frame: expected 'skip' or 'error', got {on_bad_frame!r}")
    if not path.exists():
        raise FileFormatError(f"{path}: no such series (a folder of frames, a multi-frame file or a .zarr store)")
    is_store = path.suffix.lower() == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists()
    if path.is_dir() and not is_store:
        return _read_folder(path, frame_interval_s=frame_interval_s, start_s=start_s, anchor=time_anchor,
                            on_bad_frame=on_bad_frame, chunks_time=chunks_time, pattern=frame_pattern,
                            max_missing_ratio=max_missing_ratio, var=var, check_timestamps=check_timestamps)
    da = iio.load(path, lazy=True, var=var)
    if not hasattr(da, "name"):  # a store of several variables: the spectra, or say how to choose
        names = [str(n) for n in da.data_vars]
        picked = next((n for n in ("si", "data", "series", "spectra") if n in names), None)
        if picked is None:
            raise FileFormatError(f"{path}: a store of variables {names}; name the spectra with [input] var "
                                  "(or --var NAME)")
        da = da[picked]
    if "frame" in da.dims and "time" not in da.dims:
        da = da.rename({"frame": "time"})
    if "time" not in da.dims:
        raise ShapeMismatchError(f"{path}: expected a series with a 'time' or 'frame' dimension, got dims {da.dims}")
    if "time" in da.coords:
        _check_stored_times(da.time, path)
    if "time" not in da.coords:
        da = da.assign_coords(time=("time", _time_coord(da.sizes["time"], start_s=start_s,
                                                         interval_s=frame_interval_s, anchor=time_anchor),
                                    {"units": "s"}))
    elif start_s:
        # stored times count from the start of the acquisition; start_s puts them on the log's clock
        t = np.asarray(da.time.values, float)
        da = da.assign_coords(time=("time", t + float(start_s), dict(da.time.attrs)))
    missing = [d for d in ("y", "x", "energy") if d not in da.dims]
    if missing:
        raise ShapeMismatchError(f"{path}: series lacks dimension(s) {missing}; it has {da.dims}")
    da = da.transpose("time", "y", "x", "energy")
    if "energy" not in da.coords:
        raise CalibrationError(f"{path}: the energy axis has no calibration (eV)")
    if da.chunks is None:
        da = da.chunk({"time": chunks_time})
    return da, []


def _check_stored_times(time, path) -> None:
    """A store's own frame times: seconds, finite, strictly increasing — else one line naming the frame.

    Found (s28seams): a store with frame times out of order, repeated or NaN ran through registration and the
    Li maps before the sync stage refused it ("frame start times must increase", naming no file), a NaN time
    was reported as a frame the *log* does not cover, and absolute clock times (datetime64) were read as
    1.8·10¹⁸ s.
    """
    t = np.asarray(time.values)
    where = f"{path}: the series' time coordinate"
    if t.dtype.kind in "mM":
        raise DataValidationError(
            f"{where} holds clock times ({t.dtype}, first {t[0]}); expected seconds from the start of the "
            "acquisition: store t − t[0] in s and put them on the log's clock with [input] start_s")
    if t.dtype.kind not in "iuf":
        raise DataValidationError(f"{where} holds {t.dtype} values; expected seconds (numbers)")
    t = t.astype(float)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise DataValidationError(f"{where} is {t[bad[0]]} at frame {int(bad[0])} ({bad.size} frame(s) in all); "
                                  "expected a finite time (s) for every frame")
    step = np.diff(t)
    back = np.flatnonzero(step <= 0)
    if back.size:
        i = int(back[0])
        what = (f"repeats {t[i]:g} s (frames {i} and {i + 1})" if step[i] == 0 else
                f"goes back from {t[i]:g} s at frame {i} to {t[i + 1]:g} s at frame {i + 1}")
        raise DataValidationError(
            f"{where} {what}; {back.size} such step(s); expected strictly increasing frame times (frames out of "
            "order or repeated in the store)")


def _check_frame_clocks(folder, kept, names, stamps, interval_s) -> None:
    """Each frame's own timestamp, relative to the first kept frame's, matches its number × the interval.

    Found (s28seams): frame times come from the numbers alone; frames acquired every 45 s read with
    ``frame_interval_s = 60`` (or a folder renumbered after frames were deleted) put every frame at another
    time than it was taken — another voltage, another dLi/dt — without a word, though each DM frame says
    when it was acquired.

    Parameters
    ----------
    folder : str or Path
        The folder of frames (named in the error).
    kept : sequence of int
        The frames' numbers, in order.
    names : sequence of str
        Their file names.
    stamps : sequence of str
        Their ISO timestamps (nothing is compared unless every frame has a readable one).
    interval_s : float
        ``frame_interval_s``.

    Returns
    -------
    None
        Raises :class:`~ionscope.errors.DataValidationError` naming the first frame more than half an
        interval + 5 s from ``number × interval_s``.

    Examples
    --------
    >>> _check_frame_clocks("run", [0, 1], ["f0.dm4", "f1.dm4"],
    ...                     ["2026-01-01T10:00:00", "2026-01-01T10:01:00"], 60.0) is None
    True
    """
    import datetime as _dt

    if len(kept) < 2 or not all(isinstance(v, str) and v for v in stamps):
        return
    try:
        clocks = [_dt.datetime.fromisoformat(v) for v in stamps]
        elapsed = np.array([(c - clocks[0]).total_seconds() for c in clocks])
    except (ValueError, TypeError):  # unreadable, or zones mixed: nothing to compare
        return
    expected = (np.asarray(kept, float) - kept[0]) * float(interval_s)
    off = np.abs(elapsed - expected)
    i = int(np.argmax(off))
    if off[i] <= 0.5 * float(interval_s) + 5.0:
        return
    span = float(kept[-1] - kept[0])
    mean = f"{elapsed[-1] / span:.6g} s" if span > 0 and elapsed[-1] > 0 else "not increasing"
    raise DataValidationError(
        f"{folder}: frame {kept[i]} ({names[i]}) was acquired {elapsed[i]:.6g} s after frame {kept[0]} "
        f"({names[0]}) by their timestamps, but frame_interval_s = {float(interval_s):g} puts it at "
        f"{expected[i]:.6g} s (the timestamps' mean interval: {mean}); set [input] frame_interval_s to the real "
        f"interval, check the numbering, or set [sync] check_timestamps = false if the timestamps are wrong")


def _read_folder(folder: Path, *, frame_interval_s, start_s, anchor, on_bad_frame, chunks_time, pattern=None,
                 max_missing_ratio=MAX_MISSING_RATIO, var=None, check_timestamps=True):
    import xarray as xr

    from .. import io as iio

    # one numbering rule for the batch reader and the live follower (ionscope.io._frames)
    numbered = number_frames(folder.iterdir(), pattern=pattern, max_missing_ratio=max_missing_ratio, where=folder)
    if not numbered.frames:
        extra = (f"; {len(numbered.ignored)} file(s) do not match the frame pattern {numbered.pattern!r}: "
                 + ", ".join(numbered.ignored[:5])) if numbered.ignored else ""
        raise FileFormatError(f"{folder}: no frame files ({', '.join(sorted(_FRAME_EXT))}) in the folder{extra}")
    numbers = numbered.numbers
    files = list(numbered.frames.values())
    bad: list[dict] = []

    def refuse(k, name, reason, exc_type=DataValidationError):
        if on_bad_frame == "error":
            raise exc_type(f"{folder / name if name else folder}: frame {k}: {reason}")
        bad.append({"frame": int(k), "file": name, "reason": reason})

    for k in numbered.missing():
        refuse(k, "", f"missing (no file numbered {k})", FileFormatError)

    frames, kept, stamps = [], [], []
    ref_energy = None
    ref_shape = None
    for k, p in zip(numbers, files):
        try:
            da = iio.load(p, lazy=True, var=var)
        except IonscopeError as exc:
            refuse(k, p.name, "unreadable: " + str(exc).replace(f"{p}: ", ""), FileFormatError)
            continue
        if "energy" not in da.dims or "energy" not in da.coords:
            refuse(k, p.name, f"not a calibrated spectrum image (dims {da.dims})", CalibrationError)
            continue
        if set(da.dims) != {"y", "x", "energy"}:
            refuse(k, p.name, f"expected dims (y, x, energy), got {da.dims}", ShapeMismatchError)
            continue
        da = da.transpose("y", "x", "energy")
        e = np.asarray(da.energy.values, float)
        if ref_energy is None:
            ref_energy, ref_shape = e, da.shape[:2]
        else:
            step = abs(float(ref_energy[1] - ref_energy[0])) if ref_energy.size > 1 else 1.0
            if e.shape != ref_energy.shape or np.max(np.abs(e - ref_energy)) > 1e-3 * step:
                refuse(k, p.name, f"energy axis differs from frame {numbers[0]}'s: {e.size} channels "
                                  f"{e[0]:.4g}..{e[-1]:.4g} eV vs {ref_energy.size} channels "
                                  f"{ref_energy[0]:.4g}..{ref_energy[-1]:.4g} eV", CalibrationError)
                continue
            if da.shape[:2] != ref_shape:
                refuse(k, p.name, f"image size {da.shape[:2]} differs from {ref_shape}", ShapeMismatchError)
                continue
        frames.append(da.drop_vars([c for c in da.coords if c not in ("y", "x", "energy")]))
        kept.append(k)
        stamps.append((p.name, da.attrs.get("timestamp")))
    if not frames:
        raise FileFormatError(f"{folder}: none of the {len(files)} frame files is usable: "
                              + "; ".join(f"{b['file']}: {b['reason']}" for b in bad[:3]))
    if check_timestamps:
        _check_frame_clocks(folder, kept, [n for n, _ in stamps], [v for _, v in stamps], frame_interval_s)
    # Frames that agree to within the tolerance share the first frame's exact axes.
    frames = [f.assign_coords(energy=frames[0].energy, **{d: frames[0][d] for d in ("y", "x") if d in frames[0].coords})
              for f in frames]
    t = _time_coord(len(kept), numbers=kept, start_s=start_s, interval_s=frame_interval_s, anchor=anchor)
    series = xr.concat(frames, dim="time", coords="minimal", compat="override", join="override")
    series = series.assign_coords(time=("time", t, {"units": "s"}),
                                  frame_index=("time", np.asarray(kept, int)))
    series.attrs = dict(frames[0].attrs)
    series.attrs["source_file"] = str(folder)
    kept_set = set(kept)
    series.attrs["frame_files"] = [p.name for k, p in zip(numbers, files) if k in kept_set]
    series.attrs["ignored_files"] = list(numbered.ignored)
    series = series.transpose("time", "y", "x", "energy").chunk({"time": chunks_time})
    bad.sort(key=lambda b: b["frame"])
    return series, bad
