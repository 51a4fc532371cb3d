# SPDX-License-Identifier: GPL-3.0-or-later
"""``watch``: a night followed while the microscope writes it — the frames executor with the dashboard.

The per-frame work is the pipeline's (:class:`ionscope.pipeline.FramesExecutor`:
an EELS night's own per-frame stages; for a ``[holography]`` night, a folder of
hologram files, the holography table's per-frame kernel on each hologram once
the plan is made), which reports to a sink; here that sink is the dashboard's
:class:`~ionscope.live.LiveState`, served by :class:`~ionscope.live.Dashboard`.
When the acquisition ends (a stop file, an idle timeout, Ctrl-C) the batch
run :func:`ionscope.pipeline.run` runs on the same frames, so the final
outputs are exactly those of ``ionscope run`` — and it reuses what the live
session computed: each frame's rows went into the run's stage cache under the
frame's content key (EELS, ``[register] reference = "first"``). The causal
live movie is kept apart in ``live/causal.nc``.
"""
from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from .._outdir import session
from ._state import LiveState


@dataclass
class WatchResult:
    """What a live session produced.

    Parameters
    ----------
    frames : list
        One record per processed frame.
    bad_frames : list
        Frames left out, with why.
    warnings : dict
        Warnings raised during the session, by kind.
    ended_by : str
        ``"stop file"``, ``"timeout"``, ``"interrupted"`` or ``"stopped"``.
    run : RunResult, optional
        The batch run at the end (None with ``final=False``).
    url : str, optional
        The dashboard's address.
    live_dir : Path, optional
        Where the live results are kept.
    psnr_causal_vs_batch : float, optional
        PSNR (dB) of the live (causal) denoised maps against the batch ones.
    resumed_frames : int
        Frames found processed by an earlier session.
    ignored_files : list
        Files in the series folder that are not frames.

    Examples
    --------
    >>> WatchResult(ended_by="stop file").frames
    []
    """

    frames: list = field(default_factory=list)       # one record per processed frame
    bad_frames: list = field(default_factory=list)
    warnings: dict = field(default_factory=dict)
    ended_by: str = ""                                 # "stop file" | "timeout" | "interrupted" | "stopped"
    run: Any = None                                    # the batch RunResult (None with final=False)
    url: str | None = None
    live_dir: Path | None = None
    psnr_causal_vs_batch: float | None = None
    resumed_frames: int = 0
    ignored_files: list = field(default_factory=list)  # files in the series folder that are not frames


def watch(config, *, references=None, serve: bool = True, host: str = "127.0.0.1", port: int = 0,
          token: str | None = None, window: int = 6, poll_s: float = 0.25, settle_s: float = 1.0,
          late_s: float | None = None, idle_timeout_s: float | None = None, stop_file: str = "STOP",
          sidecar: str | None = None, expected_frames: int | None = None, final: bool = True,
          final_stages: tuple = (), hooks: dict | None = None, hold: bool = False,
          stop_event: threading.Event | None = None, on_ready: Callable[[str], None] | None = None,
          on_frame: Callable[[dict], None] | None = None, on_end: Callable[[WatchResult], None] | None = None,
          show_progress: bool | None = None, on_wait: Callable[[str], None] | None = None,
          wait_every_s: float = 5.0, writers: dict | None = None) -> WatchResult:
    """Follow an acquisition folder while it is written: live maps, then the batch run.

    Parameters
    ----------
    config : Config, dict or path to a TOML file
        As for :func:`ionscope.pipeline.run`. EELS: ``[input] series`` must be
        the folder the microscope writes frame files into, ``[input] log`` the
        CSV log it appends to. Holography: ``[holography] holograms`` the
        folder it writes one hologram file per time point into (with
        ``frame_interval_s``), ``[holography] log`` the bias log it appends to
        (see :mod:`ionscope.pipeline._holo_config`).
    references : optional
        Reference spectra (component, energy) instead of ``[limap] references``.
    serve : bool
        Serve the live dashboard (see :class:`ionscope.live.Dashboard`).
    host, port, token : str, int, str
        Dashboard address (``port=0``: any free port). Binding anything but
        127.0.0.1/localhost requires a token (one is generated when None).
    window : int
        Frames in the causal denoising window.
    poll_s, settle_s, late_s : float
        Polling period; size-stable time after which a frame file counts as
        complete; how long a missing frame is waited for (default 3 frame
        intervals, at least 10 s).
    idle_timeout_s : float, optional
        End when no new frame arrived for this long (default: never).
    stop_file : str
        Name (in the series folder) or absolute path of the file that ends the acquisition.
    sidecar : str, optional
        Suffix of a "frame done" sidecar file written by the acquisition software.
    expected_frames : int, optional
        Frames the acquisition will write (for the disk-space warning).
    final : bool
        Run the batch pipeline when the acquisition ends.
    hooks : dict, optional
        Frame hooks (default :data:`FRAME_HOOKS`): name → ``hook(FrameContext)``.
    final_stages : tuple of Stage
        Extra stages for that run, as ``ionscope run`` adds them (the report
        stage, where the pipeline takes ``extra_stages``; the CLI passes it).
    hold : bool
        Keep serving the dashboard after the end until Ctrl-C (or ``stop_event``).
    stop_event : threading.Event, optional
        Set it to end the session (as Ctrl-C does).
    on_ready, on_frame, on_end : callable, optional
        Called with the dashboard URL once serving / with each frame's record /
        with the result once the final run is done (before ``hold``).
    on_wait : callable, optional
        Called every ``wait_every_s`` seconds until the first frame arrives with a
        line saying what is awaited (folder, file pattern, log, how to stop); the
        dashboard shows the same line as a warning.
    writers : dict, optional
        Holography: the final run's report files (:func:`ionscope.report.holography_writers`;
        the CLI passes them).

    Returns
    -------
    WatchResult

    Raises
    ------
    DataValidationError, FileFormatError
        Unusable configuration or log (messages name the file / key).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> import tempfile, threading
    >>> from ionscope.simulate import acquire
    >>> acq = acquire(tempfile.mkdtemp(), n_frames=3, shape=(16, 24), energy_step=0.5, speed=300.0)
    >>> res = watch(acq.config_path, serve=False, settle_s=0.1, poll_s=0.05,
    ...             final=False)  # doctest: +ELLIPSIS
    >>> len(res.frames), res.ended_by
    (3, 'stop file')
    """
    from ..pipeline import FramesExecutor, as_config

    cfg = as_config(config)
    stop_event = stop_event or threading.Event()
    state = LiveState(title=f"ionscope live · {_where(cfg)}")
    ex = FramesExecutor(cfg, sink=state, references=references, window=window, poll_s=poll_s, settle_s=settle_s,
                        late_s=late_s, stop_file=stop_file, sidecar=sidecar, expected_frames=expected_frames,
                        hooks=hooks)
    state._loader = ex.loader
    result = WatchResult(live_dir=ex.live_dir)
    # the output folder is held for the whole session (the final run shares it): only names ionscope owns
    with session(cfg.out_dir) as out:
        out.claim([ex.live_dir.name], kind="dir", hint=" (the live cache)", mark_dirs=True)  # (marked: proof later)
        return _watch_session(ex, state, result, cfg, stop_event, references=references, serve=serve, host=host,
                              port=port, token=token, idle_timeout_s=idle_timeout_s, final=final,
                              final_stages=final_stages, hold=hold, on_ready=on_ready, on_frame=on_frame,
                              on_end=on_end, on_wait=on_wait, wait_every_s=wait_every_s,
                              show_progress=show_progress, writers=writers)


def _where(cfg) -> str:
    if cfg.table == "holography":
        h = cfg.holography.get("holograms") or "."
        where = Path(cfg.base_dir) / h
    else:
        where = cfg.path(cfg.input.series) if cfg.input.series else Path(".")
    return f"{where.parent.name}/{where.name}"


def _watch_session(ex, state, result, cfg, stop_event, *, references, serve, host, port, token, idle_timeout_s,
                   final, final_stages, hold, on_ready, on_frame, on_end, on_wait, wait_every_s,
                   show_progress, writers) -> WatchResult:
    server = None
    try:
        if serve:
            from ._server import Dashboard

            server = Dashboard(state, host=host, port=port, token=token).start()
            result.url = server.url
            if on_ready is not None:
                on_ready(server.url)
        result.ended_by = ex.run(stop_event, idle_timeout_s=idle_timeout_s, on_frame=on_frame, on_wait=on_wait,
                                 wait_every_s=wait_every_s)
        result.resumed_frames = ex.night.resumed
        result.frames = [dict(r) for r in ex.records]
        result.bad_frames = [dict(b) for b in ex.night.frames.bad]
        result.ignored_files = list(ex.night.frames.ignored)
        result.warnings = dict(state.warnings)
        if cfg.table != "holography":
            _write_causal(ex, cfg)
        if final and ex.records:
            state.set_phase("final batch run")
            from ..pipeline import run as run_pipeline

            kw = {"writers": writers} if cfg.table == "holography" else {}
            result.run = run_pipeline(cfg, references=references, show_progress=show_progress,
                                      extra_stages=tuple(final_stages), **kw)
            if cfg.table != "holography":
                result.psnr_causal_vs_batch = _psnr_vs_batch(ex, result.run)
            state.set_final(psnr_causal_vs_batch=result.psnr_causal_vs_batch, out_dir=str(cfg.out_dir),
                            files=sorted(result.run.files),
                            reused={n: r.info for n, r in result.run.stages.items() if r.info.get("rows_reused")})
        state.set_phase("done")
        _write_summary(ex, result)
        if on_end is not None:
            on_end(result)
        if hold and server is not None:
            with contextlib.suppress(KeyboardInterrupt):
                while not stop_event.wait(0.5):
                    pass
    finally:
        if server is not None:
            server.stop()
    return result


def _write_causal(ex, cfg) -> None:
    """The causal live movie (raw and causally denoised maps per frame), kept apart from the batch outputs."""
    import xarray as xr

    recs = list(ex.records)
    if not recs:
        return
    maps = [ex.loader(r["frame"]) or {} for r in recs]
    names = sorted(set.intersection(*(set(m) for m in maps))) if maps else []
    data = {n: (("time", "y", "x"), np.stack([m[n] for m in maps])) for n in names if n != "li_std"}
    ds = xr.Dataset(data, coords={"time": ("time", [r["time_s"] for r in recs], {"units": "s"}),
                                  "frame_index": ("time", [r["frame"] for r in recs])},
                    attrs={"window": ex.night.window, "denoise": cfg.denoise.method,
                           "note": "li_causal: the denoiser run on the last `window` frames only (live view)"})
    with atomic_path(ex.live_dir / "causal.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def _psnr_vs_batch(ex, run) -> float | None:
    """PSNR (dB) of the causal live movie against the batch-denoised one, over their common frames."""
    from ..denoise import psnr

    batch = run.li_denoised.load()
    recs = ex.records
    live_q = ("x" if any("x_mean" in r for r in recs)
              else "areal" if any("li_areal_mean" in r for r in recs) else "weight")
    if batch.attrs.get("quantity", "weight") != live_q:
        return None  # x in LixCoO2 vs Li weight/areal Li (e.g. charge calibration): not comparable
    idx = batch.frame_index.values if "frame_index" in batch.coords else np.arange(batch.sizes["time"])
    pos = {int(k): i for i, k in enumerate(idx)}
    live, ref = [], []
    for r in recs:
        if r["frame"] in pos:
            m = ex.loader(r["frame"])
            if m and "li_causal" in m:
                live.append(m["li_causal"])
                ref.append(np.asarray(batch.values[pos[r["frame"]]]))
    if not live:
        return None
    ref, live = np.stack(ref), np.stack(live)
    ok = np.isfinite(ref) & np.isfinite(live)  # a pixel NaN in a map (an unusable spectrum) is left out
    if not ok.any():
        return None
    return float(psnr(live[ok], ref[ok], data_range=float(np.ptp(ref[ok]))))


def _write_summary(ex, result: WatchResult) -> None:
    lat = [r["latency_s"] for r in result.frames if r.get("latency_s") is not None]
    summary = {"frames": len(result.frames), "resumed_frames": result.resumed_frames, "ended_by": result.ended_by,
               "bad_frames": result.bad_frames, "ignored_files": result.ignored_files, "warnings": result.warnings,
               "latency_median_s": float(np.median(lat)) if lat else None,
               "psnr_causal_vs_batch_db": result.psnr_causal_vs_batch}
    if result.run is not None:  # what the final run took from the live session instead of computing it
        summary["final_rows_reused"] = {n: r.info for n, r in result.run.stages.items() if "rows_reused" in r.info}
        info = getattr(getattr(result.run, "context", None), "info", {}) or {}
        if "holo_live_reused" in info:  # holography: holograms taken from the live cache (pipeline._holo_reuse)
            summary["final_holograms_reused"] = info["holo_live_reused"]
    ex.live_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ex.live_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
