# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake microscope: an operando series written frame by frame, in real time.

Acquisition software does not write a frame in one atomic step: the file
appears, grows while it is written, and only then is complete; the holder's
electrochemistry log grows line by line (and a reader may catch half a line).
:func:`acquire` reproduces that on disk, so that ``ionscope watch`` and its
tests meet the same partial files a real night produces:

``out_dir/frames/frame_0000.nc`` ...   one spectrum image per frame, written in pieces
``out_dir/log.csv``                    the log, appended as the experiment clock runs
``out_dir/frames/STOP``                written when the acquisition ends
``out_dir/watch.toml``                 a run configuration pointing at both

``out_dir`` must be new or empty, or a folder an earlier acquisition made (its
own frames and log are then replaced); it is held (locked) until the
acquisition ends.

The physics is :func:`ionscope.simulate.operando_eels` (seeded): the series is
simulated first into a hidden staging store (bounded memory), then frame ``k``
is copied out at the experiment time ``(k + 1)·frame_interval_s`` (its end),
``speed`` times faster than real time.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_path, staging_dir
from .._outdir import session
from ..errors import DataValidationError

#: name of the file that marks the end of an acquisition (in the frames folder)
STOP_NAME = "STOP"

_CONFIG = """# written by ionscope.simulate.acquire (the fake microscope)
[input]
series = "frames"
log = "log.csv"
frame_interval_s = {interval!r}

[output]
dir = "ionscope-out"
"""


@dataclass
class Acquisition:
    """A running or finished fake acquisition.

    ``truth`` and ``log`` are the simulator's ground truth and full log;
    ``written`` lists the frame numbers written completely so far.

    Parameters
    ----------
    out_dir : Path
        The acquisition folder.
    frames_dir : Path
        Where the frames (and at the end the stop file) are written.
    log_path : Path
        The growing CSV log.
    config_path : Path
        A pipeline config for the acquisition (TOML).
    frame_interval_s : float
        Seconds between frames (acquisition time).
    n_frames : int
        Frames planned.
    truth, log : optional
        The simulator's ground truth and its full log.
    written : list of int
        Frame numbers written completely so far.
    error : BaseException, optional
        What stopped a background acquisition (re-raised by :meth:`wait`).

    Examples
    --------
    >>> import tempfile
    >>> acq = acquire(tempfile.mkdtemp(), frame_interval_s=60.0, n_frames=2, shape=(8, 12), energy_step=1.0,
    ...               speed=600.0, block=False)
    >>> acq.wait(timeout=60), acq.written, acq.stop_path.name
    (True, [0, 1], 'STOP')
    """

    out_dir: Path
    frames_dir: Path
    log_path: Path
    config_path: Path
    frame_interval_s: float
    n_frames: int
    truth: Any = None
    log: Any = None
    written: list = field(default_factory=list)
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def stop_path(self) -> Path:
        return self.frames_dir / STOP_NAME

    def stop(self) -> None:
        """Ask the acquisition to end early (it still writes the stop file)."""
        self._stop.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the acquisition ended; re-raise an error it met."""
        finished = self._done.wait(timeout)
        if self.error is not None:
            raise self.error
        return finished


def acquire(out_dir, *, frame_interval_s: float = 60.0, n_frames: int = 24, shape=(32, 48),
            energy_range=None, energy_step: float = 0.1, dose: float = 200.0,
            energy_drift_ev: float = 0.3, specimen_drift_px: float = 1.0, seed: int = 0, speed: float = 1.0,
            pieces: int = 8, write_fraction: float = 0.05, missing=(), corrupt=(), late=None,
            block: bool = True, **simulate_kw) -> Acquisition:
    """Write a simulated operando STEM-EELS acquisition in real time (a fake microscope).

    Parameters
    ----------
    out_dir : str or Path
        Acquisition folder (created); see the module docstring for its layout.
    frame_interval_s : float
        Frame time on the experiment clock (s); frame ``k`` spans
        ``[k, k+1)·frame_interval_s`` and its file is written at its end.
    n_frames, shape, energy_range, energy_step, dose, energy_drift_ev, specimen_drift_px, seed
        The series, as in :func:`ionscope.simulate.operando_eels` (``energy_range=None``: its default).
    speed : float
        Experiment seconds per wall-clock second (``speed=60``: a 1-min frame
        every second).
    pieces : int
        Each frame file is written in this many pieces, so a reader can see it
        partially written.
    write_fraction : float
        Wall time spent writing one frame, as a fraction of the frame interval
        (capped at 2 s).
    missing, corrupt : sequence of int
        Frames never written / left truncated for ever (to test the watcher).
    late : dict {frame: frames of delay}, optional
        Frames written that many frame intervals late.
    block : bool
        Run in the calling thread until the end (True), or in a background
        thread (False; use :meth:`Acquisition.wait` / :meth:`Acquisition.stop`).
        To run it in another process, call it with ``block=True`` there.
    **simulate_kw
        More options of :func:`ionscope.simulate.operando_eels` (``protocol``, ...).

    Returns
    -------
    Acquisition

    Raises
    ------
    DataValidationError
        Bad timing options, or anything :func:`~ionscope.simulate.operando_eels` refuses.
    OutputPathError
        ``out_dir`` holds files and was not made by an earlier acquisition (a
        fake microscope never writes over files it did not make).
    OutputLockedError
        Another acquisition or run is writing into ``out_dir``.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
    (operando STEM-EELS frames of about one minute beside the charge curve).

    Examples
    --------
    >>> import tempfile
    >>> acq = acquire(tempfile.mkdtemp(), frame_interval_s=60.0, n_frames=2, shape=(8, 12),
    ...               energy_step=1.0, speed=600.0)
    >>> sorted(p.name for p in acq.frames_dir.iterdir())
    ['STOP', 'frame_0000.nc', 'frame_0001.nc']
    """
    from ..simulate import operando_eels

    interval = float(frame_interval_s)
    if not interval > 0:
        raise DataValidationError(f"acquire: frame_interval_s must be > 0, got {frame_interval_s!r}")
    if not float(speed) > 0:
        raise DataValidationError(f"acquire: speed must be > 0, got {speed!r}")
    if int(pieces) < 1:
        raise DataValidationError(f"acquire: pieces must be >= 1, got {pieces!r}")
    if not 0 <= float(write_fraction) < 1:
        raise DataValidationError(f"acquire: write_fraction must be in [0, 1), got {write_fraction!r}")
    late = {int(k): float(v) for k, v in dict(late or {}).items()}
    out = Path(out_dir)
    frames_dir = out / "frames"
    # a folder of its own: new or empty, or one an earlier acquisition made (then its own files are replaced)
    held = session(out, fresh=True, what="acquisition folder")
    folder = held.__enter__()
    try:
        for old in [*frames_dir.glob("frame_*.nc"), frames_dir / STOP_NAME, out / "log.csv"]:
            folder.remove(old.relative_to(out).as_posix())  # only files it wrote itself (the ledger's)
        folder.claim(["log.csv", *(f"frames/frame_{k:04d}.nc" for k in range(int(n_frames)))])
        frames_dir.mkdir(parents=True, exist_ok=True)
        staging = staging_dir(out, "acquire")
        if energy_range is not None:
            simulate_kw["energy_range"] = energy_range
        si, truth, log = operando_eels(shape=shape, n_frames=n_frames, energy_step=energy_step, dose=dose,
                                       energy_drift_ev=energy_drift_ev, specimen_drift_px=specimen_drift_px,
                                       seed=seed, frame_time_s=interval, out=staging / "series.zarr", **simulate_kw)
        config_path = out / "watch.toml"
        with atomic_path(config_path) as tmp:
            tmp.write_text(_CONFIG.format(interval=interval))
    except BaseException as exc:
        held.__exit__(type(exc), exc, exc.__traceback__)
        raise
    acq = Acquisition(out_dir=out, frames_dir=frames_dir, log_path=out / "log.csv", config_path=config_path,
                      frame_interval_s=interval, n_frames=int(n_frames), truth=truth, log=log)
    args = dict(si=si, staging=staging, speed=float(speed), pieces=int(pieces),
                write_s=min(2.0, float(write_fraction) * interval / float(speed)),
                missing={int(k) for k in missing}, corrupt={int(k) for k in corrupt}, late=late, held=held,
                folder=folder)
    if block:
        _run(acq, **args)
        if acq.error is not None:
            raise acq.error
    else:
        acq._thread = threading.Thread(target=_run, args=(acq,), kwargs=args, name="ionscope-acquire", daemon=True)
        acq._thread.start()
    return acq


def _log_rows(log) -> tuple[list[float], list[str]]:
    """The log as CSV lines (no newline), with their experiment times."""
    import numpy as np

    t = np.asarray(log.time.values, float)
    v = np.asarray(log.voltage.values, float)
    i = np.asarray(log.current.values, float)
    q = np.asarray(log.charge_c.values, float)
    s = [str(x) for x in log.state.values]
    return t.tolist(), [f"{a:.9g},{b:.9g},{c:.9g},{d},{e:.9g}" for a, b, c, d, e in zip(t, v, i, s, q)]


def _run(acq: Acquisition, *, si, staging: Path, speed, pieces, write_s, missing, corrupt, late, held,
         folder) -> None:
    try:
        times, rows = _log_rows(acq.log)
        # (experiment time at which the frame is written, frame number)
        due = sorted(((k + 1 + late.get(k, 0.0)) * acq.frame_interval_s, k)
                     for k in range(acq.n_frames) if k not in missing)
        t0 = time.monotonic()
        tick = min(0.05, acq.frame_interval_s / speed / 20)
        with open(acq.log_path, "w", encoding="utf-8", newline="") as logf:
            logf.write("time (s),voltage (V),current (A),state,charge (C)\n")
            logf.flush()
            n_rows = 0
            half = False  # the next row's first half is already on disk
            while due and not acq._stop.is_set():
                clock = (time.monotonic() - t0) * speed
                # the log: every row up to the clock, then half of the next one
                # (a buffered writer flushes at arbitrary byte boundaries)
                new = 0
                while n_rows + new < len(rows) and times[n_rows + new] <= clock:
                    new += 1
                if new:
                    text = "".join((r[len(r) // 2:] if (j == 0 and half) else r) + "\n"
                                   for j, r in enumerate(rows[n_rows:n_rows + new]))
                    n_rows += new
                    half = n_rows < len(rows)
                    if half:
                        text += rows[n_rows][: len(rows[n_rows]) // 2]
                    logf.write(text)
                    logf.flush()
                if due[0][0] <= clock:
                    _, k = due.pop(0)
                    _write_frame(acq, si, k, staging, pieces=pieces, write_s=write_s, truncate=k in corrupt,
                                 folder=folder)
                    continue
                time.sleep(tick)
            if half:
                logf.write(rows[n_rows][len(rows[n_rows]) // 2:] + "\n")
                n_rows += 1
            if not acq._stop.is_set():
                logf.write("".join(r + "\n" for r in rows[n_rows:]))
    except BaseException as exc:  # reported through Acquisition.wait()
        acq.error = exc
    finally:
        try:
            with atomic_path(acq.stop_path) as tmp:
                tmp.write_text(json.dumps({"frames_written": acq.written, "stopped_early": acq._stop.is_set()}))
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # (a staging folder this acquisition made)
            try:
                folder.record(["log.csv"])
                held.__exit__(None, None, None)  # the folder's lock goes with the end of the acquisition
            finally:
                acq._done.set()


def _write_frame(acq: Acquisition, si, k: int, staging: Path, *, pieces: int, write_s: float,
                 truncate: bool, folder) -> None:
    """Serialise frame ``k`` off to the side, then write it under its final name piece by piece."""
    from .. import io as iio

    frame = si.isel(time=k).drop_vars("time").load()
    tmp = staging / f"frame_{k:04d}.nc"
    iio.save(frame, tmp)
    blob = tmp.read_bytes()
    tmp.unlink()
    if truncate:  # the software died mid-write: the file stays half written
        blob = blob[: len(blob) // 2]
    path = acq.frames_dir / f"frame_{k:04d}.nc"
    step = -(-len(blob) // pieces)
    with open(path, "wb") as f:
        for j in range(0, len(blob), step):
            f.write(blob[j:j + step])
            f.flush()
            if write_s > 0 and j + step < len(blob):
                time.sleep(write_s / pieces)
    if not truncate:
        acq.written.append(k)
    folder.record([f"frames/{path.name}"])
