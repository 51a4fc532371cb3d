# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS night frame by frame (the frames executor's EELS part).

Each complete frame goes through the EELS table's own per-frame stages
(:func:`ionscope.pipeline._live_eels.process_frame`); then

* registration uses a *running* reference where ``[register] reference`` is
  not causal (``"previous"`` chains to the last frame, ``"mean"`` uses the mean
  of the frames so far); with ``"first"`` (the default) the frame's rows are
  the batch run's and go into the stage cache, so the final run reuses them;
* denoising is *causal*: the configured denoiser runs on a sliding window of
  the last ``window`` raw maps and the newest frame of its output is kept;
* each frame is synchronised with the electrochemistry log as the CSV grows
  (a frame the log does not cover yet waits for it).

Each frame passes the batch run's plausibility gates (``[screen]``,
:mod:`ionscope.pipeline._live_gates`) before and after its fit, against the
medians of the frames accepted so far; a refused frame is listed with its
reason and kept out of the live movie and flux.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import OrderedDict

import numpy as np

from ..errors import DataValidationError, FileFormatError, IonscopeError
from ._eels_frame import implausible_pixels
from ._live import LiveNight, fingerprint
from ._live_eels import FRAME_HOOKS, First, Reference, process_frame
from ._live_gates import LiveGates

_CACHE_SCHEMA = 3  # 3: frames keyed by their content key too (per-frame keys of the stage cache)


def causal_denoise(raw_window: np.ndarray, std_window: np.ndarray | None, config, *, whole: bool = False):
    """The newest frame of the configured denoiser run on the last frames only (causal).

    ``whole=True`` returns the denoised window (time, y, x) instead of its newest frame.
    """
    import xarray as xr

    from ._eels import _denoise
    from ._eels_downstream import fill_undefined

    # NaN pixels (unusable spectra) filled from their neighbours, as the batch denoise stage does
    da, _ = fill_undefined(xr.DataArray(np.asarray(raw_window, np.float32), dims=("time", "y", "x")))
    out = np.asarray(_denoise(da, config, std_window, show_progress=False).values, np.float32)
    return out if whole else out[-1]


def window_flux(movie: np.ndarray, times, states, *, pixel_nm: float, config) -> dict:
    """Li flux at the newest frame, from the causally denoised window (the past only).

    :func:`ionscope.transport.analyse` (``[analysis]`` options) on the window;
    returns the newest frame's ``toward_electrolyte`` (mean through-film flux,
    + toward the electrolyte; Li-map units × nm/s) and ``through_fraction``.
    """
    import xarray as xr

    from ..transport import analyse

    ny, nx = movie.shape[1:]
    li = xr.DataArray(movie, dims=("time", "y", "x"),
                      coords={"time": np.asarray(times, float), "y": np.arange(ny) * pixel_nm,
                              "x": np.arange(nx) * pixel_nm})
    ac = config.analysis
    known = states is not None and all(s not in (None, "", "uncovered") for s in states)
    an = analyse(li, states=np.asarray(states, str) if known else None, method=ac.method, interface=ac.interface,
                 open_edges=ac.open_edges, x_boundary=ac.x_boundary, profile_bins=ac.profile_bins,
                 rest_states=ac.rest_states)
    return {"flux_toward_electrolyte": float(an.toward_electrolyte.values[-1]),
            "flux_through_fraction": float(an.through_fraction.values[-1])}


def mapped(maps: dict) -> tuple:
    """(map, σ) of the quantity the movie is made of: x where the frame has it, else the Li weight."""
    if "x" in maps:
        return maps["x"], maps.get("x_std")
    if "li_areal" in maps:
        return maps["li_areal"], maps.get("li_areal_std")
    return maps.get("li"), maps.get("li_std")


def _cache_key(cfg, window: int, hooks: dict) -> str:
    from .. import __version__  # another release's live rows are never reused (as pipeline.stage_key)

    blob = json.dumps({"schema": _CACHE_SCHEMA, "version": __version__, "window": window, "hooks": sorted(hooks),
                       **{s: cfg.section(s)
                          for s in ("input", "screen", "energy_drift", "register", "limap", "denoise")}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class EelsNight(LiveNight):
    """The EELS watch loop's state (one per session)."""

    def __init__(self, cfg, *, references, window, sink, expected_frames, poll_s, settle_s, late_s, stop_file,
                 sidecar, hooks):
        ic = cfg.input
        if not ic.series:
            raise DataValidationError("config [input] series: no series folder given")
        super().__init__(cfg, folder=cfg.path(ic.series), log_path=cfg.path(ic.log) if ic.log else None, sink=sink,
                         poll_s=poll_s, settle_s=settle_s, late_s=late_s, stop_file=stop_file, sidecar=sidecar,
                         pattern=ic.frame_pattern or None, max_missing_ratio=ic.max_missing_ratio,
                         expected_frames=expected_frames,
                         log_options=dict(missing=ic.log_missing, duplicates=ic.log_duplicates,
                                          resets=ic.log_resets))
        self.frame_interval_s = ic.frame_interval_s
        self.hooks = FRAME_HOOKS if hooks is None else dict(hooks)
        self.references = references
        self.window = int(window)
        self.reference = Reference(cfg.register.reference)
        self.gates = LiveGates(cfg.screen)  # the [screen] plausibility gates, medians of the frames so far
        # raw maps (and their standard errors) of the newest frames, for the causal window;
        # bounded: older ones are read back from the cache when a late denoising needs them
        self.hist: OrderedDict[int, tuple] = OrderedDict()
        self.pending_denoise: list[int] = []
        self.pending_sync: list[dict] = []
        self.energy = None
        self.pixel_nm = 1.0
        self.first: First | None = None  # the frame "first"-referenced registration measures against
        self.store = None  # the stage cache the frames' rows go into (a LiveStore), once resumed
        self.given_up = False
        self.implausible: dict[int, int] = {}  # frame → spectra with impossible raw counts (NaN in its maps)
        self.clocks: dict[int, tuple] = {}  # frame → (file name, its own timestamp), for the "clock" warning
        sink.set_meta(series=str(self.folder), log=str(cfg.path(ic.log)) if ic.log else "",
                      frame_interval_s=ic.frame_interval_s, window=self.window, out_dir=str(cfg.out_dir),
                      denoise=cfg.denoise.method, register_reference=cfg.register.reference, night="eels")
        if ic.low_loss:
            sink.warn("low_loss", "[input] low_loss (dual EELS) is not followed live: live maps are made without "
                                  "the plural-scattering correction; the final run uses it")

    # -- cache -------------------------------------------------------------------------
    def _open_store(self) -> None:
        """The run's stage cache, held like :func:`ionscope.pipeline.run` holds it, for the frames' rows (a causal
        session's rows stay in memory: its cache keeps the night's Li-K shift, which the final run reuses)."""
        from .._outdir import session_for
        from ._live_store import LiveStore
        from ._stores import StageCache, cache_state

        cfg = self.cfg
        if self.store is not None:
            return
        folder = session_for(cfg.cache_path)
        if folder is None or cache_state(cfg.cache_path).startswith("foreign"):
            return  # no session holds the cache's folder here (a library call): live maps only
        if cache_state(cfg.cache_path) in ("ours", "legacy"):
            folder.adopt(folder.rel(cfg.cache_path))
        folder.claim([folder.rel(cfg.cache_path)], kind="dir", hint=" ([output] cache)")
        cache = StageCache(cfg.cache_path)
        cache.clear_stale()
        self.store = LiveStore(cache)

    def resume(self) -> None:
        """Reuse cached frames whose file is unchanged, in order, until the first gap."""
        if self.cfg.cache_path.exists():  # else made with the first frame: a session that sees none leaves none
            self._open_store()
        self.resume_cached(_cache_key(self.cfg, self.window, self.hooks), self.cache.load, self._take_cached)
        if self.records:
            self.sink.set_meta(resumed_frames=self.resumed)

    def _take_cached(self, k: int, f, got) -> bool:
        """A cached frame back into the session's state (False: its arrays are missing, process it again)."""
        rec, arrays = got
        if rec.get("bad"):  # refused by a plausibility gate: listed again, not reprocessed
            self.frames.bad.append({"frame": k, "file": rec.get("file", ""), "reason": rec["bad"]})
            if rec.get("bad_after_use") and "image" in arrays:  # it had become the reference: as then
                self.reference.update(arrays["image"], np.array([rec["dy"], rec["dx"]]))
            return True
        if "image" not in arrays or "map_li" not in arrays:
            return False
        self.gates.accept(rec, judged=rec.get("gate_judged", True))
        self.reference.update(arrays["image"], np.array([rec["dy"], rec["dx"]]))
        if self.first is None and rec.get("key"):
            self._set_first(f, k, rec["time_s"], rec["key"], rec.get("energy_shift"))
        if np.isfinite(rec.get("x_k", np.nan)) and self.reference.fraction_k is None:
            self.reference.fraction_k = {"k": rec["x_k"], "k_std": 0.0}
        maps = {n[4:]: v for n, v in arrays.items() if n.startswith("map_")}
        self._remember(k, *mapped(maps))
        rec.pop("published_at", None)
        self.records.append(rec)
        if "li_causal_mean" not in rec:
            self.pending_denoise.append(k)
        if rec.get("covered") is False:
            self.pending_sync.append(rec)
        self.sink.put_frame(rec, {})
        return True

    def finish(self) -> None:
        """The frames' rows still in memory go into the stage cache (the final run reuses them)."""
        if self.store is not None:
            self.store.flush()

    def _set_first(self, path, k: int, t: float, key: str, energy_shift=None) -> None:
        from .. import io as iio

        da = iio.load(path, var=self.cfg.input.var or None).transpose("y", "x", "energy").load()
        self.first = First(frame=da, time_s=float(t), number=int(k), key=key,
                           energy_shift=None if energy_shift is None else float(energy_shift))

    def _save(self, rec: dict, maps: dict, image: np.ndarray) -> None:
        self.cache.save(rec, maps, image=image)

    def _remember(self, k: int, raw, std) -> None:
        self.hist[k] = (raw, std)
        while len(self.hist) > self.window + 32:
            self.hist.popitem(last=False)

    # -- one frame -------------------------------------------------------------------------
    def _read(self, ff, final_attempt: bool):
        """The frame as a loaded (y, x, energy) DataArray, or None (retried or given up)."""
        from .. import io as iio

        try:
            da = iio.load(ff.path, var=self.cfg.input.var or None)
            if "energy" not in da.dims or set(da.dims) != {"y", "x", "energy"}:
                raise FileFormatError(f"{ff.path}: expected a (y, x, energy) spectrum image, got dims {da.dims}")
            e = np.asarray(da.energy.values, float) if "energy" in da.coords else np.arange(0.0)
            if e.size > 1 and not (np.all(np.isfinite(e)) and np.all(np.diff(e) > 0)):
                # (issue 17) a descending axis would pair channels with the wrong energies: the frame is refused
                raise FileFormatError(f"{ff.path}: coordinate 'energy' is not strictly increasing ({e[0]:.6g} … "
                                      f"{e[-1]:.6g} eV); expected ascending energies")
            if self.energy is not None:
                e = np.asarray(da.energy.values, float)
                if e.shape != self.energy.shape or np.max(np.abs(e - self.energy)) > 1e-3 * abs(
                        float(self.energy[1] - self.energy[0])):
                    raise FileFormatError(f"{ff.path}: energy axis differs from the first frame's")
            return da.transpose("y", "x", "energy").load()
        except IonscopeError as exc:
            self.given_up = self.frames.failed(ff, str(exc).replace(f"{ff.path}: ", ""),
                                               attempts=1 if final_attempt else 3)
            self.sink.set_bad(self.frames.bad)
            return None

    def handle(self, ff, *, final_attempt: bool) -> bool:
        """Process one released frame; False when it must be retried later."""
        from ..io import frame_time
        from ._framekeys import frame_key

        da = self._read(ff, final_attempt)
        if da is None:
            return self.given_up
        if self.energy is None:
            self.energy = np.asarray(da.energy.values, float)
            self.pixel_nm = float(abs(da.x.values[1] - da.x.values[0])) if "x" in da.coords and \
                da.sizes["x"] > 1 else 1.0
            self.sink.set_meta(ny=int(da.sizes["y"]), nx=int(da.sizes["x"]), n_energy=int(da.sizes["energy"]),
                               pixel_nm=self.pixel_nm,
                               pixel_units=str(da.x.attrs.get("units", "px")) if "x" in da.coords else "px")
        self.frame_bytes = max(self.frame_bytes, ff.size)
        ic = self.cfg.input
        k = ff.index
        stamp = da.attrs.get("timestamp")
        if isinstance(stamp, str) and stamp and self.cfg.sync.check_timestamps:
            self.clocks[k] = (ff.path.name, stamp)
        # frame number k (from its name) at start_s + k · interval: the batch reader's rule (ionscope.io)
        t = float(frame_time(k, start_s=ic.start_s, interval_s=ic.frame_interval_s, anchor=ic.time_anchor))
        t0 = time.perf_counter()
        fp = fingerprint(ff.path)
        key = frame_key(fp.split("|", 1)[1] + (f"|var={ic.var}" if ic.var else ""), k, t)
        gate_stats, reason = self.gates.counts(np.asarray(da.values))
        if reason:
            return self._refuse(ff, reason, fp)
        before = dataclasses.replace(self.reference)  # process_frame moves the reference on; a refused fit must not
        first = self.first if self.first is not None else First(frame=da, time_s=t, number=k, key=key)
        self._open_store()
        try:
            out = process_frame(da, config=self.cfg, reference=self.reference, references=self.references,
                                index=k, time_s=t, hooks=self.hooks, first=first, key=key, store=self.store)
        except IonscopeError as exc:
            if not self.records:
                raise  # the very first frame: a configuration problem, not a bad frame
            self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": f"not processed: {exc}"})
            self.sink.set_bad(self.frames.bad)
            return True
        reason = self.gates.fit(out["scalars"].get("chi2_mean"))
        if reason:
            self.reference = before
            return self._refuse(ff, reason, fp)
        if self.first is None:
            self.first = first
            if self.cfg.energy_drift.enabled:  # its shift is not estimated again beside every later frame
                first.energy_shift = float(out["scalars"]["energy_shift"])
        maps, sc = out["maps"], out["scalars"]
        rec = {"frame": k, "file": ff.path.name, "time_s": t, "fingerprint": fp, "key": key,
               "complete_how": ff.how, "mtime": ff.mtime, **sc, **gate_stats, "gate_judged": self.gates.judging,
               "process_s": time.perf_counter() - t0}
        bad = implausible_pixels(da.values)  # the maps hold NaN there (pipeline._eels_frame.corrected_frame)
        if bad is not None:
            rec["implausible_pixels"] = self.implausible[k] = int(bad.sum())
        now = time.time()
        rec["published_at"] = now
        rec["latency_s"] = now - ff.mtime
        self._sync(rec)
        self._save(rec, maps, out["image"])
        if self.store is not None and self.store.waiting() >= self.store.max_waiting:
            self.store.flush()  # the machine has not been idle for a while: rows are not kept in memory forever
        self.sink.put_frame(rec, {n: v for n, v in maps.items() if n != "li_std"})
        self._remember(k, *mapped(maps))
        self.records.append(rec)
        self.pending_denoise.append(k)
        self.last_new = time.monotonic()
        self.gates.accept(rec, judged=rec["gate_judged"])
        for j, why in self.gates.review():
            self._refuse_late(j, why)
        self._warnings(rec)
        return True

    def _refuse(self, ff, reason: str, fp: str) -> bool:
        """A frame a plausibility gate refuses: listed with its reason, cached as such (a resume skips it)."""
        k = ff.index
        self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": reason})
        self.sink.set_bad(self.frames.bad)
        self.cache.save({"frame": k, "file": ff.path.name, "fingerprint": fp, "bad": reason})
        self.last_new = time.monotonic()
        return True

    def _refuse_late(self, k: int, reason: str) -> None:
        """A frame accepted before a median could judge it, found implausible once there were enough frames."""
        rec = self.record_of(k)
        if rec is None:
            return
        self.records.remove(rec)
        self.pending_sync = [r for r in self.pending_sync if r["frame"] != k]
        if k in self.pending_denoise:
            self.pending_denoise.remove(k)
        self.hist.pop(k, None)
        rec.update(bad=reason, bad_after_use=True)
        self.frames.bad.append({"frame": k, "file": rec.get("file", ""), "reason": reason})
        self.frames.bad.sort(key=lambda b: b["frame"])
        self.sink.set_bad(self.frames.bad)
        self.cache.update(rec)

    def idle(self) -> bool:
        """Causally denoise one waiting frame (the newest first), else write the waiting rows into the
        stage cache; False when nothing waits.

        Raw maps come first: while frames are waiting to be mapped, denoising
        waits, so the newest raw map's latency stays bounded even when the
        denoiser is slower than the frame rate; the skipped frames are filled
        in (newest first) whenever the watcher is idle, and all of them before
        the final run. A frame's causal window is the ``window`` processed
        frames up to it, whenever it is computed.
        """
        if not self.pending_denoise:
            # then the rows of the frames mapped since into the stage cache (off the maps' critical path)
            return self.store.flush() if self.store is not None else False
        k = max(self.pending_denoise)
        self.pending_denoise.remove(k)
        rec = self.record_of(k)
        # the window: the last frames up to k that map the same quantity (x, or the Li weight)
        is_x = "x_mean" in rec
        done = [r["frame"] for r in self.records if r["frame"] <= k and ("x_mean" in r) == is_x][-self.window:]
        raws, stds = [], []
        for j in done:
            if j not in self.hist:
                self.hist[j] = mapped(self.cache.maps(j) or {})
            raws.append(self.hist[j][0])
            stds.append(self.hist[j][1])
        t1 = time.perf_counter()
        movie = causal_denoise(np.stack(raws), None if any(s is None for s in stds) else np.stack(stds), self.cfg,
                               whole=True)
        causal = movie[-1]
        rec["denoise_s"] = time.perf_counter() - t1
        if len(done) >= 2:  # flux so far: the transport analysis on the causally denoised window
            recs = [self.record_of(j) for j in done]
            try:
                rec.update(window_flux(movie, [r["time_s"] for r in recs], [r.get("state") for r in recs],
                                       pixel_nm=self.pixel_nm, config=self.cfg))
            except IonscopeError as exc:
                rec["flux_error"] = str(exc)
        rec["li_causal_mean"] = float(np.nanmean(causal))
        rec["latency_denoised_s"] = time.time() - rec["mtime"]
        self.cache.update(rec, {"li_causal": causal})
        self.sink.put_frame(rec, {"li_causal": causal})
        return True

    def _sync(self, rec: dict) -> None:
        """Voltage, current, charge and state of this frame from the log so far (or wait for it)."""
        if self.log is None:
            return
        from ..transport import sync_frames

        ic = self.cfg.input
        start = rec["time_s"] - (0.5 * ic.frame_interval_s if ic.time_anchor == "mid" else 0.0)
        if self.log.t_end < start + ic.frame_interval_s:
            rec["covered"] = False
            self.pending_sync.append(rec)
            return
        ds = self.log.dataset()
        try:
            s = sync_frames(np.array([start]), ds, duration_s=ic.frame_interval_s, capacity_c=self.cfg.sync.capacity_c,
                            allow_uncovered=True)
        except DataValidationError as exc:
            rec["sync_error"] = str(exc)
            return
        rec["covered"] = bool(s.covered.values[0])
        for name in ("voltage", "current", "charge_c"):
            if name in s:
                v = float(s[name].values[0])
                rec[name] = v if np.isfinite(v) else None
        rec["state"] = str(s.state.values[0])

    def resync(self) -> None:
        """Frames that waited for the log, now that it grew."""
        if not self.pending_sync:
            return
        waiting, self.pending_sync = self.pending_sync, []
        for rec in waiting:
            self._sync(rec)
            if rec.get("covered"):
                self.sink.put_frame(rec, {})
                self.cache.update(rec)

    def _warnings(self, rec: dict) -> None:
        st = self.sink
        clocks = getattr(self, "clocks", None)  # (as "implausible": the warnings read a night's state only)
        if clocks:  # the batch reader's rule (io._series): here a warning, the final run refuses
            from ..errors import DataValidationError
            from ..io import check_frame_clocks as _check_frame_clocks

            ks = sorted(clocks)
            try:
                _check_frame_clocks("frames", ks, [clocks[k][0] for k in ks], [clocks[k][1] for k in ks],
                                    self.cfg.input.frame_interval_s)
                st.warn("clock", None)
            except DataValidationError as exc:
                st.warn("clock", f"{str(exc).split(': ', 1)[1]} — the final run will refuse the night until "
                                 "then")
        flagged = getattr(self, "implausible", None)
        if flagged:  # kept for the whole night: a corrupt pixel is never analysed, and never unsaid
            listed = "; ".join(f"frame {k}: {n}" for k, n in list(flagged.items())[-5:])
            st.warn("implausible", f"{sum(flagged.values())} spectra in {len(flagged)} frame(s) "
                                   f"hold impossible raw counts (a value below -8x the spectrum's noise level): NaN "
                                   f"in the maps there ({listed})")
        # the references' own noise decides x beyond the regions (issue 19, pipeline._refs_noise)
        st.warn("references_noise", rec.get("references_noise_note") if rec.get("references_noise_warning") else None)
        recs = self.records
        # χ² far above its running median: the references no longer describe the spectra
        chi = [r["chi2_mean"] for r in recs[:-1] if r.get("chi2_mean") is not None]
        if len(chi) >= 3 and rec.get("chi2_mean") is not None and rec["chi2_mean"] > 2.0 * float(np.median(chi)):
            st.warn("chi2", f"frame {rec['frame']}: mean χ² {rec['chi2_mean']:.3g} is over twice the median "
                            f"so far ({np.median(chi):.3g}): reference spectra may not fit (phase change, "
                            f"contamination, energy calibration)")
        else:
            st.warn("chi2", None)
        # χ² drifting away from 1 (slowly: the running median follows it): the noise model no longer holds
        last = [r["chi2_mean"] for r in recs[-3:] if r.get("chi2_mean") is not None]
        level = float(np.median(last)) if len(last) == 3 else None
        if level is not None and not 0.5 <= level <= 2.0:
            st.warn("chi2_level", f"mean reduced χ² of the last 3 frames is {level:.2g}, far from 1: the noise "
                                  f"model does not describe the spectra (noise {'over' if level < 0.5 else 'under'}"
                                  "estimated: dose, gain or detector setting changed?); σ and pulls are off")
        else:
            st.warn("chi2_level", None)
        # thinning: t/λ when a frame hook measures it, else the pre-edge intensity (a proxy)
        tl = [r["t_over_lambda_mean"] for r in recs if r.get("t_over_lambda_mean") is not None]
        pe = tl or [r["pre_edge_counts"] for r in recs if r.get("pre_edge_counts") is not None]
        if len(pe) >= 2:
            base = float(np.median(pe[:3]))
            drop = 1.0 - pe[-1] / base if base > 0 else 0.0
            what = ("mean t/λ" if tl else "pre-edge signal")
            st.warn("thinning", None if drop < 0.1 else
                    f"{what} down {100 * drop:.0f} % since the first frames: the region may be thinning under the "
                    f"beam" + ("" if tl else " (or the probe current dropped); a proxy, not t/λ"))
        self.check_disk()

    def check_disk(self) -> None:
        """Warn early: free space against the frames still to come and the final run's cache."""
        # the microscope writes each frame; the final run caches the cropped series twice
        crop = 2 if self.cfg.compute.cache_spectra else 0
        self.check_disk_space(per_frame_bytes=self.frame_bytes, final_bytes_per_frame=self.frame_bytes * crop * 0.6)
