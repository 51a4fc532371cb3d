# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography night hologram by hologram (the frames executor's holography part).

``[holography] holograms`` names the folder the microscope writes one
hologram file per time point into (:mod:`ionscope.io._holograms`; numbered by
the frame rule of :mod:`ionscope.io._frames`, hologram *k* at
``start_s + k · frame_interval_s``). Each complete file is read, its bias
taken from the growing ``[holography] log`` (the value at its time, as the
batch run interpolates it; a hologram the log does not reach yet waits for
it) or from the file's own ``bias_v``, and then:

* until the plan can be made, the hologram waits: the plan
  (:func:`ionscope.holography.plan_bias_series`: ψ₀, vacuum mask, interfaces,
  reference waves) needs every zero-bias hologram, i.e. the leading ones at
  |bias| < 1 mV up to the first biased one (or those ``zero_bias`` names),
  plus the references; the sink says so (``warn("plan", ...)``);
* once the plan is made (with exactly the batch run's inputs: the zero-bias
  holograms, their biases, the references, the options), every hologram goes
  through the per-frame kernel :func:`ionscope.holography.bias_frame` with its
  time index in the series — the same call the batch table's ``holo_frames``
  stage makes, so ΔV per interface is the batch run's, number for number
  (the step errors are the frame's own; the batch assembly pools the noise
  correlation over frames and its χ² check may skip a frame in hindsight).

Each hologram's record (ΔV, width, position per interface, leakage, drift)
and its potential map go to the sink; the record and every array the batch
table's ``holo_frames`` stage stores go into ``<output>/live/frames/``: a
restarted session resumes there (and remakes the plan from the zero-bias
files), and the final batch run takes each hologram from there instead of
measuring it again (:mod:`ionscope.pipeline._holo_reuse`). A hologram the frame checks skip is listed with the batch run's
reason; an unreadable one as ``corrupt: ...`` (the reason ``[holography]
on_bad_frame = "skip"`` lists in batch; with ``"error"`` the final run stops
on it, and the sink says so).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataValidationError, IonscopeError, ShapeMismatchError
from ._live import LiveNight

_CACHE_SCHEMA = 1
#: the batch plan's rule for a zero-bias time point (holography._plan: |V| < 1 mV)
_ZERO_V = 1e-3


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _cache_key(cfg) -> str:
    opt = {k: v for k, v in cfg.holography.items() if k not in ("output", "workers")}
    from .. import __version__  # another release's live results are never reused (as pipeline.stage_key)

    blob = json.dumps({"schema": _CACHE_SCHEMA, "version": __version__, "holography": opt}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class HoloNight(LiveNight):
    """The holography watch loop's state (one per session)."""

    frame_kind = "hologram files"
    config_keys = ("[holography] frame_pattern", "max_missing_ratio")  # as the batch reader names them

    def __init__(self, cfg, *, sink, expected_frames, poll_s, settle_s, late_s, stop_file, sidecar):
        from ..io import is_hologram_folder

        opt = cfg.holography
        if not opt.get("holograms"):
            raise ConfigError("config [holography] holograms: required (the folder the holograms are written into)")
        folder = cfg.path(opt["holograms"])
        if folder.exists() and not is_hologram_folder(folder):
            raise DataValidationError(f"{folder}: watch follows a folder of hologram files (one per time point); "
                                      f"for a finished store of a whole night use ionscope run")
        if opt.get("frame_interval_s") is None:
            raise ConfigError(f"config [holography] frame_interval_s: required when holograms = "
                              f"{opt['holograms']!r} is a folder of hologram files (s between two hologram numbers)")
        if isinstance(opt["drift"], list):
            raise ConfigError("config [holography] drift: positions given per time point are not followed live "
                              "(the night's length is not known yet); use \"auto\" or \"none\"")
        self.opt = opt
        self.frame_interval_s = float(opt["frame_interval_s"])
        if late_s is None:
            late_s = max(10.0, 3.0 * self.frame_interval_s)
        super().__init__(cfg, folder=folder, log_path=cfg.path(opt["log"]) if opt.get("log") else None, sink=sink,
                         poll_s=poll_s, settle_s=settle_s, late_s=late_s, stop_file=stop_file, sidecar=sidecar,
                         pattern=opt.get("frame_pattern") or None, max_missing_ratio=10.0,
                         expected_frames=expected_frames)
        self.kept: list[dict] = []      # the series' time points so far (readable holograms), in time order
        self.pending: list[tuple] = []  # (entry, hologram) waiting for the plan
        self.plan = None
        self.plan_digest = None
        self.shape = None
        self.given_up = False
        sink.set_meta(night="holography", series=str(folder), log=str(self.log.path) if self.log else "",
                      frame_interval_s=self.frame_interval_s, out_dir=str(cfg.out_dir), method=opt["method"],
                      units="V", map="potential")
        if opt.get("on_bad_frame") == "error":
            sink.warn("on_bad_frame", "[holography] on_bad_frame = \"error\": the final run stops at the first "
                                      "hologram listed as bad; live mode lists them and goes on")

    # -- inputs read once ------------------------------------------------------------
    def _times(self, k):
        from ..io import frame_time

        opt = self.opt
        return float(frame_time(k, start_s=float(opt.get("start_s") or 0.0), interval_s=self.frame_interval_s,
                                anchor=opt.get("time_anchor") or "start"))

    def _bias(self, da, t, path):
        """The hologram's bias (V) as the batch run takes it; None while the log does not reach it yet."""
        if self.log is not None:
            from ..io import voltage_log

            if self.log.t_end < t:
                return None
            lg = voltage_log(self.log.dataset())
            lt = np.asarray(lg["time"].values, float)
            if t < lt[0] - 1e-9:  # the batch run refuses a log that does not span the series (no extrapolation)
                raise DataValidationError(f"{path}: at t = {t:g} s, before the log ({self.log.path}) starts "
                                          f"({lt[0]:g} s); expected the log to span the series")
            return float(np.interp(t, lt, np.asarray(lg["voltage"].values, float)))
        if "bias_v" in da.coords:
            return float(da.coords["bias_v"].values)
        raise DataValidationError(f"{path}: carries no bias_v attribute and no [holography] log is given; expected "
                                  "the bias per hologram (a log the potentiostat appends to, or bias_v in each file)")

    def _plan_inputs(self):
        """References and thickness, read as the batch run reads them (``[holography] references``, ``thickness_nm``)."""
        from .. import io as iio
        from ._holography import _resolve

        opt, base = self.opt, Path(self.cfg.base_dir)
        refs = None
        if opt.get("references"):
            path = _resolve(base, opt["references"])
            if not path.exists():
                raise ConfigError(f"config [holography] references = {opt['references']!r}: {path} does not exist "
                                  "(write the references before the night)")
            refs = iio.load(path)
        t = opt["thickness_nm"]
        if isinstance(t, (int, float)):
            thick = float(t)
        else:
            path = _resolve(base, t)
            if not path.exists():
                raise ConfigError(f"config [holography] thickness_nm = {t!r}: {path} does not exist")
            thick = np.asarray(iio.load(path).values, float)
        return refs, thick

    # -- the plan --------------------------------------------------------------------
    def _zero_count(self) -> int | None:
        """How many leading time points the plan needs (None: not arrived yet)."""
        zb = self.opt.get("zero_bias")
        if zb is not None:
            need = int(np.max(np.atleast_1d(zb))) + 1
            return need if len(self.kept) >= need else None
        for i, e in enumerate(self.kept):
            if abs(e["bias_v"]) >= _ZERO_V:
                if i == 0:
                    raise DataValidationError(f"{self.folder / e['file']}: the night starts biased "
                                              f"({e['bias_v']:.4g} V); no zero-bias holograms to refer ΔV to — record "
                                              f"a few at 0 V first or set [holography] zero_bias")
                return i
        return None

    def _make_plan(self, holos) -> bool:
        """The plan from the leading holograms (``holos``: DataArrays of kept[:n]) once they are all there."""
        from ..holography import plan_bias_series
        from ..io import stack_holograms
        from ._holo_reuse import plan_digest
        from ._holography import plan_options

        n = self._zero_count()
        if n is None:
            n_zero = len(self.kept)
            self.sink.set_phase("waiting for zero-bias holograms")
            self.sink.warn("plan", f"{n_zero} zero-bias hologram(s) so far: the plan (ψ₀, interfaces, references) "
                                   f"is made when the first biased one (|bias| ≥ 1 mV) arrives"
                           + (f" (zero_bias = {self.opt['zero_bias']})" if self.opt.get("zero_bias") is not None
                              else ""))
            return False
        entries = self.kept[:n]
        night = stack_holograms(holos(n), [e["frame"] for e in entries], frame_interval_s=self.frame_interval_s,
                                start_s=float(self.opt.get("start_s") or 0.0),
                                time_anchor=self.opt.get("time_anchor") or "start")
        refs, thick = self._plan_inputs()
        t0 = time.perf_counter()
        self.plan = plan_bias_series(night, references=refs, bias_v=[e["bias_v"] for e in entries],
                                     thickness_nm=thick, **plan_options(self.opt))
        plan = self.plan
        self.plan_digest = plan_digest(plan)  # the final run takes a hologram from the cache under the same plan
        self.sink.warn("plan", None)
        self.sink.set_phase("watching")
        self.sink.set_meta(plan_s=time.perf_counter() - t0, zero_bias_frames=[int(i) for i in plan.zero_bias],
                           interfaces_nm=[float(v) for v in plan.interfaces[plan.reported]],
                           pixel_nm=plan.pitch, pixel_units="nm", ny=plan.out_shape[0], nx=plan.out_shape[1],
                           x0_nm=float(plan.x[0]),
                           drift=plan.drift)
        return True

    # -- one hologram ------------------------------------------------------------------
    def handle(self, ff, *, final_attempt: bool) -> bool:
        """Read one released hologram; measure it (or keep it for the plan). False: retry later."""
        from ..io import load_hologram

        from ._live import fingerprint

        try:
            da = load_hologram(ff.path, method=self.opt["method"])
            if self.shape is not None and da.shape != self.shape:
                raise ShapeMismatchError(f"{ff.path}: image size {da.shape} differs from the first hologram's "
                                         f"{self.shape}")
        except IonscopeError as exc:
            if isinstance(exc, ShapeMismatchError) and not self.kept:
                raise  # the very first hologram is not one (another kind of folder): a configuration problem
            self.given_up = self.frames.failed(ff, str(exc).replace(f"{ff.path}: ", ""),
                                               attempts=1 if final_attempt else 3)
            self.sink.set_bad(self.frames.bad)
            return self.given_up
        k = ff.index
        t = self._times(k)
        try:
            bias = self._bias(da, t, ff.path)
        except DataValidationError as exc:
            if not self.kept:
                raise  # the first hologram: how the bias is given is a configuration problem
            self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": str(exc).replace(f"{ff.path}: ", "")})
            self.sink.set_bad(self.frames.bad)
            return True
        if bias is None:
            if not final_attempt:
                self.frames._next = k  # the log has not reached this hologram yet: offered again at a later poll
                self.sink.warn("log", f"hologram {k} (t = {t:g} s) waits for the log ({self.log.path}), which "
                                      f"ends at {self.log.t_end:g} s")
                return False
            self.sink.warn("log", None)
            self.frames.bad.append({"frame": k, "file": ff.path.name, "reason": f"bias: the log ends at "
                                    f"{self.log.t_end:g} s, before this hologram (t = {t:g} s)"})
            self.sink.set_bad(self.frames.bad)
            return True
        self.sink.warn("log", None)
        self.shape = self.shape or da.shape
        self.frame_bytes = max(self.frame_bytes, ff.size)
        entry = {"frame": k, "file": ff.path.name, "time_s": t, "bias_v": bias, "fingerprint": fingerprint(ff.path),
                 "mtime": ff.mtime, "complete_how": ff.how}
        self.kept.append(entry)
        self.last_new = time.monotonic()
        if self.plan is None:
            self.pending.append((entry, da))
            if not self._make_plan(lambda n: [d for _, d in self.pending[:n]]):
                return True
            waiting, self.pending = self.pending, []
            for e, d in waiting:
                self._measure(e, np.asarray(d.values))
        else:
            self._measure(entry, np.asarray(da.values))
        self.check_disk_space(per_frame_bytes=self.frame_bytes)
        return True

    def _measure(self, entry: dict, hologram: np.ndarray) -> None:
        """:func:`~ionscope.holography.bias_frame` on one time point; its record and map to the sink and cache."""
        from ..holography import bias_frame

        plan = self.plan
        index = next(i for i, e in enumerate(self.kept) if e is entry)
        t0 = time.perf_counter()
        # fft_workers=None: every core for this one frame (the numbers do not depend on it)
        fr = bias_frame(plan, hologram, index=index, time=entry["time_s"], fft_workers=None)
        rec = {**{k: v for k, v in entry.items()}, "time_index": index, "reason": fr.reason,
               "plan_digest": self.plan_digest,
               **self._numbers(fr), "process_s": time.perf_counter() - t0}
        now = time.time()
        rec["published_at"] = now
        rec["latency_s"] = now - entry["mtime"]
        # every variable the batch table's holo_frames stage stores (the final run reuses them, _holo_reuse)
        variables = fr.to_variables(plan)
        potential = variables.pop("potential")
        self.cache.save(rec, {"potential": potential}, **variables)
        self.records.append(rec)
        if fr.reason:
            self.frames.bad.append({"frame": entry["frame"], "file": entry["file"], "reason": fr.reason})
            self.frames.bad.sort(key=lambda b: b["frame"])
            self.sink.set_bad(self.frames.bad)
        self.sink.put_frame(rec, {} if fr.reason else {"potential": fr.potential})

    def _numbers(self, fr) -> dict:
        """ΔV, width and position (± 1σ) per reported interface, leakage and drift of one frame."""
        plan = self.plan
        out = {"leak_pv_rad": _num(fr.leak_pv), "vacuum_rms_rad": _num(fr.vac_rms),
               "drift_y_nm": _num(fr.drift_nm[0]), "drift_x_nm": _num(fr.drift_nm[1]),
               "chi2_reduced": _num(fr.steps.chi2_reduced) if fr.steps is not None else None}
        fits = [] if fr.steps is None else list(fr.steps.fits)
        if fits and len(fits) != plan.reported.size:
            fits = [fits[i] for i in plan.reported]  # nuisance steps at other boundaries: the ones asked for
        for i in range(plan.reported.size):
            f = fits[i] if fits else None
            for name, attr in (("step_v", "step"), ("step_v_std", "step_err"), ("width_nm", "width"),
                               ("position_nm", "center")):
                out[f"{name}_{i}"] = None if f is None else _num(getattr(f, attr))
        if plan.reported.size:
            pot = fr.potential
            out["potential_mean_v"] = _num(np.nanmean(pot)) if pot is not None and np.isfinite(pot).any() else None
        return out

    # -- resume ---------------------------------------------------------------------------
    def resume(self) -> None:
        """Reuse cached holograms whose file is unchanged, in order, until the first gap; remake the plan."""
        from ..io import load_hologram

        self.resume_cached(_cache_key(self.cfg), self.cache.record, self._take_cached)
        if self.kept:
            method = self.opt["method"]
            holos = lambda n: [load_hologram(self.folder / e["file"], method=method) for e in self.kept[:n]]  # noqa: E731
            if not self._make_plan(holos):
                raise DataValidationError(f"{self.live}: the live cache holds measured holograms but their plan "
                                          f"cannot be remade; remove {self.live} to start afresh")
            self.shape = load_hologram(self.folder / self.kept[0]["file"], method=method).shape
            self.sink.set_meta(resumed_frames=self.resumed)
            self.sink.set_bad(self.frames.bad)

    def _take_cached(self, k: int, f, rec) -> bool:
        """A cached hologram's record back into the session (its maps stay in the cache until shown)."""
        rec.pop("published_at", None)
        self.kept.append({n: rec[n] for n in ("frame", "file", "time_s", "bias_v", "fingerprint", "mtime",
                                              "complete_how")})
        self.records.append(rec)
        if rec.get("reason"):
            self.frames.bad.append({"frame": k, "file": rec["file"], "reason": rec["reason"]})
        self.sink.put_frame(rec, {})
        return True

    def finish(self) -> None:
        """Holograms still waiting for a plan when the night ended are listed (never silently dropped);
        a folder whose hologram files were all unreadable is refused in one line."""
        from ..errors import FileFormatError

        if not self.kept and self.frames.bad:
            bad = [b for b in self.frames.bad if b.get("file") and b["reason"].startswith("corrupt")]
            if bad:
                raise FileFormatError(f"{self.folder}: none of the {len(bad)} hologram file(s) is readable: "
                                      + "; ".join(f"{b['file']}: {b['reason']}" for b in bad[:3]))
        for entry, _ in self.pending:
            self.frames.bad.append({"frame": entry["frame"], "file": entry["file"],
                                    "reason": "not measured: the night ended before the plan could be made "
                                              "(no biased hologram after the zero-bias ones)"})
        self.pending = []
        self.sink.set_bad(self.frames.bad)

    def loader(self, k: int):
        return self.cache.maps(k)

    def list_ignored(self, what: str = "[holography] frame_pattern") -> None:
        super().list_ignored(what)
