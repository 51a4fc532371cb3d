# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando pipeline benchmark: end-to-end time, peak RSS per stage, throughput, threads vs LocalCluster.

The "peers" here are the floor set by the hardware and the scheduler: one plain
read of the Zarr store (no analysis can be faster than reading the data once),
the denoiser's own time on the Li-map movie (the issue's target is end-to-end
≤ 3 × (one read + the denoiser)), and the same pipeline on a dask
``distributed`` LocalCluster (identical results required; overhead reported).

Usage::

    python benchmarks/bench_operando.py                     # modest: 24 frames, 32×48×1024
    python benchmarks/bench_operando.py --frames 157 --shape 64 64
    python benchmarks/bench_operando.py --full              # 157 × 128×128×1024 float32 (≈ 10.5 GB)
    python benchmarks/bench_operando.py --physics realistic --frames 24 --shape 128 128 --unfused
                                    # zero-loss peak: Fourier-log + GLS; fused vs stage-by-stage Li maps
    python benchmarks/bench_operando.py --physics realistic --frames 24 --shape 128 128 --workers 1 2 4  # scaling

The series is simulated frame by frame straight into a Zarr store (bounded
memory), then the pipeline streams it back.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class PeakRSS:
    """Sample the resident memory of this process and its children (cluster workers)."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # a worker that just exited
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss())
            time.sleep(self._interval)

    def reset(self) -> int:
        """Return the peak since the last reset (bytes) and start a new window."""
        peak, self._peak = max(self._peak, self._rss()), 0
        return peak

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of this process and its live children (the cluster's workers)."""
        t = self._proc.cpu_times()
        total = t.user + t.system
        for child in self._proc.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except Exception:  # a worker that just exited
                pass
        return total

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def simulate(store: Path, *, frames: int, shape, channels: int, seed: int, physics: str = "ideal") -> float:
    from ionscope.simulate import operando_eels

    step = 0.1
    # realistic spectra hold their zero-loss peak: the axis starts at −5 eV (as bench_simulate.py's)
    start = -5.0 if physics == "realistic" else 30.0
    t0 = time.perf_counter()
    operando_eels(shape=tuple(shape), n_frames=frames, energy_range=(start, start + channels * step),
                  energy_step=step, energy_drift_ev=0.3, specimen_drift_px=1.0, seed=seed, out=store,
                  chunks={"time": 1, "energy": -1}, physics=physics)
    return time.perf_counter() - t0


def read_once(store: Path) -> tuple[float, float]:
    """Seconds to read every chunk of the store once (threads), and the bytes read."""
    import dask

    import ionscope.io as iio

    da = iio.load(store)
    t0, c0 = time.perf_counter(), time.process_time()
    with dask.config.set(scheduler="threads"):
        da.data.sum().compute()
    read_once.cpu_s = time.process_time() - c0  # CPU seconds of this process (less sensitive to others' load)
    return time.perf_counter() - t0, float(da.nbytes)


def run_pipeline(store: Path, out: Path, log, *, scheduler: str, denoise: str, rss: PeakRSS, cache_spectra: bool,
                 fast_limap: bool = False, fused: bool = True, stages=None, physics: str = "ideal",
                 n_workers: int = 2):
    from ionscope.operando import run
    from ionscope.report import operando_report_stage

    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0},
           "output": {"dir": str(out)},
           "register": {"window_ev": [30.0, 50.0]},
           # the store records its physics; naming the realistic model's references keeps older stores right
           "limap": {**({"background": "basis", "weights": "none"} if fast_limap else {}),
                     **({"references": "simulated-realistic"} if physics == "realistic" else {})},
           "denoise": {"method": denoise},
           "report": {"movies": ["mp4"], "viewer": True, "figures": True},
           "compute": {"scheduler": scheduler, "n_workers": n_workers, "frames_per_batch": 4,
                       "cache_spectra": cache_spectra, "fused": fused}}
    peaks: dict[str, float] = {}
    rss.reset()
    c0 = time.process_time()
    cpu, last = {}, [c0]
    cpu_all, last_all = {}, [rss.cpu_s()]

    def on_stage(name, rec):
        peaks[name] = rss.reset() / 2**30
        now = time.process_time()
        cpu[name], last[0] = now - last[0], now
        # with the workers' CPU: what the stage cost the machine, whatever share of it others' load left
        now_all = rss.cpu_s()
        cpu_all[name], last_all[0] = now_all - last_all[0], now_all

    t0 = time.perf_counter()
    res = run(cfg, log=log, show_progress=False, extra_stages=() if stages else (operando_report_stage(),),
              stages=stages, on_stage=on_stage)
    total = time.perf_counter() - t0
    run_pipeline.cpu_s = time.process_time() - c0  # this process only (a cluster's workers are not counted)
    run_pipeline.stage_cpu_s = cpu
    run_pipeline.stage_cpu_all_s = cpu_all  # this process and the cluster's workers
    return res, total, peaks


def _fingerprint_cost(store: Path, total: float, out: dict) -> None:
    """The input fingerprint (SHA-256 of every byte of the store, issue 17) against the run it keys,
    and the stat-only identity it replaced (path, size, mtime), in the same process, back to back."""
    import hashlib

    from ionscope.pipeline._stores import fingerprint

    t0 = time.perf_counter()
    fingerprint([store])
    t_fp = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = hashlib.sha256()
    for p in sorted(q for q in store.rglob("*") if q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(store.parent)}|{st.st_size}|{st.st_mtime_ns}".encode())
    t_stat = time.perf_counter() - t0
    nbytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    out["fingerprint_s"] = round(t_fp, 3)
    out["fingerprint_stat_only_s"] = round(t_stat, 4)
    out["fingerprint_share_of_run"] = round(t_fp / total, 4)
    out["store_bytes_on_disk"] = nbytes
    out["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    print(f"input fingerprint (SHA-256 of {nbytes / 1e6:.0f} MB on disk): {t_fp:.3f} s = "
          f"{100 * t_fp / total:.1f} % of the run (stat only: {t_stat:.4f} s); load average {out['loadavg']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--shape", type=int, nargs=2, default=(32, 48), metavar=("NY", "NX"))
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--full", action="store_true", help="the issue's full size: 157 × 128×128×1024 (≈ 10.5 GB)")
    p.add_argument("--denoise", default="sparse_coding", choices=["sparse_coding", "gaussian", "none"])
    p.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster comparison")
    p.add_argument("--workers", type=int, nargs="+", default=[2],
                   help="LocalCluster worker processes (1 thread each); several: the scaling, e.g. 1 2 4")
    p.add_argument("--fast-limap", action="store_true",
                   help="MLLS with a linear power-law basis and least squares (~25x faster, ~10%% more noise)")
    p.add_argument("--cache-spectra", action="store_true",
                   help="also store the drift-corrected 4-D series of each stage (two more full writes)")
    p.add_argument("--physics", default="ideal", choices=["ideal", "realistic"],
                   help="realistic: spectra with their zero-loss peak (Fourier-log deconvolution + GLS fit)")
    p.add_argument("--unfused", action="store_true",
                   help="also make the Li maps stage by stage ([compute] fused = false) in the same run")
    p.add_argument("--workdir", default=None, help="where to put the store (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--cleanup", action="store_true", help="remove --workdir at the end")
    p.add_argument("--reuse", action="store_true", help="reuse a series already simulated in --workdir")
    args = p.parse_args(argv)
    if args.full:
        args.frames, args.shape, args.channels = 157, (128, 128), 1024
    os.environ.setdefault("IONSCOPE_PROGRESS", "0")

    import dask
    import psutil

    import ionscope

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_operando_"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "series.zarr"
    ny, nx = args.shape
    size_gb = args.frames * ny * nx * args.channels * 4 / 1e9
    print(f"ionscope {ionscope.__version__}, dask {dask.__version__}, {platform.machine()}, "
          f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM")
    print(f"series: {args.frames} frames × {ny}×{nx} px × {args.channels} channels float32 = {size_gb:.2f} GB")
    out: dict = {"date": _dt.date.today().isoformat(), "frames": args.frames, "shape": [ny, nx],
                 "channels": args.channels, "size_gb": round(size_gb, 3), "denoise": args.denoise,
                 "cache_spectra": args.cache_spectra, "fast_limap": args.fast_limap, "physics": args.physics}
    try:
        from ionscope.simulate import operando_eels

        if args.reuse and store.exists():
            t_sim = None
            # the runs' own output folders of an earlier invocation (a stage cache left there would be reused)
            for old in ["threads", "unfused", "cluster", *(f"cluster{n}" for n in args.workers)]:
                shutil.rmtree(work / old, ignore_errors=True)
        else:
            t_sim = simulate(store, frames=args.frames, shape=args.shape, channels=args.channels, seed=0,
                             physics=args.physics)
        # the log is small; simulate it again in memory without the spectra (same seed: same log)
        _, _, log = operando_eels(shape=tuple(args.shape), n_frames=args.frames, energy_range=(30.0, 40.0),
                                  energy_step=1.0, seed=0, noise=False)
        out["simulate_s"] = None if t_sim is None else round(t_sim, 1)
        t_read, nbytes = read_once(store)
        out["read_once_s"] = round(t_read, 2)
        out["read_mb_s"] = round(nbytes / 2**20 / t_read, 1)
        out["read_once_cpu_s"] = round(read_once.cpu_s, 2)
        made = "reused" if t_sim is None else f"simulated in {t_sim:.1f} s"
        print(f"series {made}; one read of the store: {t_read:.2f} s ({out['read_mb_s']} MB/s)")

        load = lambda: [round(v, 2) for v in os.getloadavg()]  # noqa: E731
        out["loadavg_read"] = load()
        with PeakRSS() as rss:
            out["loadavg_threads_start"] = load()
            res, total, peaks = run_pipeline(store, work / "threads", log, scheduler="threads",
                                             denoise=args.denoise, rss=rss, cache_spectra=args.cache_spectra,
                                             fast_limap=args.fast_limap, physics=args.physics)
            out["threads_total_s"] = round(total, 2)
            out["threads_cpu_s"] = round(run_pipeline.cpu_s, 1)
            out["threads_stage_cpu_s"] = {n: round(v, 2) for n, v in run_pipeline.stage_cpu_s.items()}
            threads_cpu_all = run_pipeline.stage_cpu_all_s
            out["stages"] = {n: {"seconds": round(r.seconds, 2), "peak_rss_gib": round(peaks.get(n, 0.0), 2),
                                 "mb_s": round(nbytes / 2**20 / r.seconds, 1) if r.seconds > 0 else None}
                             for n, r in res.stages.items()}
            print(f"\npipeline (threads): {total:.1f} s end to end = {total / t_read:.1f} × one read")
            print(f"{'stage':<13}{'s':>9}{'peak RSS GiB':>14}{'MB/s of series':>16}")
            for n, s in out["stages"].items():
                print(f"{n:<13}{s['seconds']:>9.2f}{s['peak_rss_gib']:>14.2f}{(s['mb_s'] or 0):>16.1f}")
            out["peak_rss_gib"] = round(max(peaks.values()), 2)
            out["loadavg_threads_end"] = load()
            out["end_to_end_over_read"] = round(total / t_read, 2)
            sec = {n: r.seconds for n, r in res.stages.items()}
            # the screen's read gathers what the energy drift and the registration measure on
            drift_reg = sec.get("screen", 0) + sec.get("energy_drift", 0) + sec.get("register", 0)
            out["drift_registration_s"] = round(drift_reg, 2)
            out["drift_registration_over_read"] = round(drift_reg / t_read, 2)
            out["limap_s_per_frame"] = round(sec.get("limap", 0) / args.frames, 3)
            print(f"screen + energy_drift + register: {drift_reg:.1f} s = {drift_reg / t_read:.2f} × one read; "
                  f"limap {out['limap_s_per_frame']:.2f} s per frame; load average {out['loadavg_threads_end']}")
            _fingerprint_cost(store, total, out)
            # a re-run with every stage cached: the content fingerprint of the inputs is most of it
            t0 = time.perf_counter()
            run_pipeline(store, work / "threads", log, scheduler="threads", denoise=args.denoise, rss=rss,
                         cache_spectra=args.cache_spectra, fast_limap=args.fast_limap, physics=args.physics)
            out["cached_rerun_s"] = round(time.perf_counter() - t0, 2)
            print(f"re-run, every stage cached: {out['cached_rerun_s']:.2f} s")

            # the denoiser's own time on the same Li-map movie (its input, already in the cache)
            if args.denoise == "sparse_coding":
                from ionscope import denoise

                li = res.li_raw.load()
                std = float(np.median(res.dataset("limap").li_std.values))
                t0 = time.perf_counter()
                denoise.sparse_coding(li, noise="gaussian", sigma=std)
                t_den = time.perf_counter() - t0
                out["denoiser_alone_s"] = round(t_den, 2)
                target = 3 * (t_read + t_den)
                out["target_s"] = round(target, 1)
                print(f"denoiser alone: {t_den:.2f} s; target end-to-end ≤ 3 × (read + denoiser) = {target:.1f} s "
                      f"→ {'met' if total <= target else 'MISSED'} ({total:.1f} s)")

            if args.unfused:
                # the stage-by-stage Li maps of the same series (energy drift and registration re-applied lazily
                # to the series on its way into the fit), up to limap only, same process, back to back
                out["loadavg_unfused_start"] = load()
                res_u, _, _ = run_pipeline(store, work / "unfused", log, scheduler="threads", denoise=args.denoise,
                                           rss=rss, cache_spectra=args.cache_spectra, fast_limap=args.fast_limap,
                                           fused=False, stages=("limap",), physics=args.physics)
                lu, lf = res_u.dataset("limap"), res.dataset("limap")
                t_u = res_u.stages["limap"].seconds
                out["unfused_limap_s_per_frame"] = round(t_u / args.frames, 3)
                out["unfused_over_fused_limap"] = round(t_u / max(sec.get("limap", 0), 1e-9), 2)
                scale = float(np.nanmax(np.abs(lu.li.values)))
                out["fused_li_max_rel_diff"] = float(np.nanmax(np.abs(lf.li.values - lu.li.values)) / scale)
                out["fused_li_std_max_rel_diff"] = float(np.nanmax(np.abs(lf.li_std.values - lu.li_std.values)
                                                                   / np.abs(lu.li_std.values)))
                out["loadavg_unfused_end"] = load()
                print(f"stage-by-stage limap: {out['unfused_limap_s_per_frame']:.2f} s per frame "
                      f"({out['unfused_over_fused_limap']:.2f} × fused); Li max |Δ| {out['fused_li_max_rel_diff']:.1e} "
                      f"of max |Li|, σ max rel. Δ {out['fused_li_std_max_rel_diff']:.1e}; load {out['loadavg_unfused_end']}")

            if not args.no_cluster:
                import distributed

                out["distributed"] = distributed.__version__
                for n_w in args.workers:
                    tag = "cluster" if n_w == 2 else f"cluster{n_w}"  # 2 workers: the keys earlier runs wrote
                    out[f"loadavg_{tag}_start"] = load()
                    res_c, total_c, peaks_c = run_pipeline(store, work / tag, log, scheduler="local",
                                                           denoise=args.denoise, rss=rss,
                                                           cache_spectra=args.cache_spectra,
                                                           fast_limap=args.fast_limap, physics=args.physics,
                                                           n_workers=n_w)
                    same = all(np.array_equal(res_c.dataset(st)[v].values, res.dataset(st)[v].values)
                               for st, v in (("limap", "li"), ("denoise", "li"), ("analysis", "flux_y")))
                    out[f"{tag}_total_s"] = round(total_c, 2)
                    out[f"{tag}_identical"] = bool(same)
                    out[f"{tag}_over_threads"] = round(total_c / total, 2)
                    out[f"{tag}_peak_rss_gib"] = round(max(peaks_c.values()), 2)
                    out[f"{tag}_limap_s"] = round(res_c.stages["limap"].seconds, 2)
                    # CPU seconds of the limap stage, this process + workers, against the threaded run's
                    c_cpu = run_pipeline.stage_cpu_all_s
                    out[f"{tag}_limap_cpu_s"] = round(c_cpu.get("limap", 0), 2)
                    out[f"{tag}_cpu_s"] = round(sum(c_cpu.values()), 2)
                    out[f"{tag}_stage_cpu_all_s"] = {n: round(v, 2) for n, v in c_cpu.items()}
                    out["threads_stage_cpu_all_s"] = {n: round(v, 2) for n, v in threads_cpu_all.items()}
                    out["threads_limap_cpu_s"] = round(threads_cpu_all.get("limap", 0), 2)
                    out["threads_cpu_all_s"] = round(sum(threads_cpu_all.values()), 2)
                    out[f"loadavg_{tag}_end"] = load()
                    try:  # the threads each worker ran (ionscope shares the cores out when workers are fewer)
                        from ionscope.pipeline._executors import _threads_per_worker
                        out[f"{tag}_threads_per_worker"] = _threads_per_worker(n_w)
                    except ImportError:  # an older ionscope: one thread each
                        out[f"{tag}_threads_per_worker"] = 1
                    print(f"\nLocalCluster ({n_w} workers × {out[f'{tag}_threads_per_worker']} thread(s), "
                          f"distributed {distributed.__version__}): "
                          f"{total_c:.1f} s = {total_c / total:.2f} × threads; results identical: {same}; CPU s "
                          f"(with workers) {out[f'{tag}_cpu_s']:.1f} vs {out['threads_cpu_all_s']:.1f} threaded, limap "
                          f"{out[f'{tag}_limap_cpu_s']:.1f} vs {out['threads_limap_cpu_s']:.1f}")
                    for n, r in res_c.stages.items():
                        print(f"  {n:<13}{r.seconds:>9.2f} s  peak RSS {peaks_c.get(n, 0):.2f} GiB (incl. workers)")
                    shutil.rmtree(work / tag, ignore_errors=True)  # its own output only (disk for the next)
    finally:
        if not args.workdir or args.cleanup:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print("\n" + json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
