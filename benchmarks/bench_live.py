# SPDX-License-Identifier: GPL-3.0-or-later
"""Live operando benchmark: frame-complete → map-on-dashboard latency, sustained rate, memory, causal PSNR.

A fake microscope (:func:`ionscope.simulate.acquire`) runs in its own process,
writing frames of ``ny × nx × channels`` float32 counts in real time at one
frame per ``--interval`` seconds; ``ionscope.operando.watch`` follows it in
this process with the dashboard served; an HTTP client polls the dashboard's
``/api/status`` every 0.1 s like the page does (it polls every 1 s) and notes
when each frame's map becomes available there. Measured:

* latency = (time the client first sees frame k on the dashboard) − (the
  frame file's last write, st_mtime): median and 95th percentile, for the raw
  Li map and for its causally denoised version;
* resident memory of the watcher over time (bounded when sustained);
* PSNR of the causal live movie against the batch-denoised movie of the final
  run, and of both (and of the raw maps) against the simulator's truth.

Usage::

    python benchmarks/bench_live.py                               # 128×128×1024, 1 frame / 10 s, 24 frames
    python benchmarks/bench_live.py --shape 64 64 --frames 12     # smaller
    python benchmarks/bench_live.py --physics realistic --frames 10  # with the zero-loss peak (issue 20)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def _microscope(root: str, kw: dict, ready) -> None:
    """Child process: simulate, save the Li truth, then write the frames in real time."""
    from ionscope.simulate import acquire

    acq = acquire(root, block=False, **kw)
    np.save(Path(root) / "truth_li.npy", acq.truth.weights.sel(component="Li").values)
    ready.set()
    acq.wait()


def _poll(url: str, seen: dict, seen_den: dict, stop: threading.Event) -> None:
    """The dashboard client: when does each frame (and its denoised map) appear there?"""
    last = -1
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url + "api/status", timeout=5) as r:
                s = json.load(r)
            if s["version"] != last:
                last = s["version"]
                with urllib.request.urlopen(url + "api/series", timeout=5) as r:
                    frames = json.load(r)["frames"]
                now = time.time()
                for rec in frames:
                    seen.setdefault(rec["frame"], now)
                    if rec.get("li_causal_mean") is not None:
                        seen_den.setdefault(rec["frame"], now)
        except OSError:
            pass
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=2, default=(128, 128))
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--interval", type=float, default=10.0, help="wall seconds per frame")
    ap.add_argument("--denoise", default="sparse_coding")
    ap.add_argument("--window", type=int, default=6)
    ap.add_argument("--physics", choices=("ideal", "realistic"), default="ideal",
                    help="realistic: spectra with their zero-loss peak (-5–97.4 eV at 1024 channels), "
                         "so every frame goes through Fourier-log deconvolution and the GLS fit")
    ap.add_argument("--dose", type=float, default=None, help="counts scale (default: the simulator's)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-final", action="store_true")
    args = ap.parse_args()

    import psutil

    from ionscope.denoise import psnr
    from ionscope.operando import load_config, watch

    root = Path(args.out or tempfile.mkdtemp(prefix="bench-live-"))
    step = max(0.1, 102.4 / args.channels)  # 30–132 eV (ideal) or -5–97.4 eV (realistic) whatever the channels
    start = -5.0 if args.physics == "realistic" else 30.0
    kw = dict(frame_interval_s=60.0, n_frames=args.frames, shape=tuple(args.shape), energy_step=step,
              energy_range=(start, start + step * (args.channels + 0.5)), speed=60.0 / args.interval,
              energy_drift_ev=0.3, specimen_drift_px=1.0, seed=0)
    if args.physics == "realistic":
        kw["physics"] = "realistic"
    if args.dose is not None:
        kw["dose"] = args.dose
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    t_sim = time.perf_counter()
    proc = ctx.Process(target=_microscope, args=(str(root), kw, ready), daemon=True)
    proc.start()
    if not ready.wait(3600):
        raise SystemExit("the fake microscope did not start")
    t_sim = time.perf_counter() - t_sim
    cfg = load_config(root / "watch.toml").replace(denoise={"method": args.denoise}, report={"movies": ["gif"]})
    me = psutil.Process()
    rss: list[tuple[float, int, int]] = []  # (t, frames done, rss bytes)
    seen, seen_den, stop = {}, {}, threading.Event()
    box: dict = {}
    done_frames = [0]

    def sample():
        while not stop.is_set():
            rss.append((time.time(), done_frames[0], me.memory_info().rss))
            time.sleep(1.0)

    def on_ready(url):
        box["url"] = url
        threading.Thread(target=_poll, args=(url, seen, seen_den, stop), daemon=True).start()

    def on_frame(rec):
        done_frames[0] += 1

    threading.Thread(target=sample, daemon=True).start()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    wall0 = time.time()
    res = watch(cfg, port=0, window=args.window, settle_s=1.0, final=not args.no_final, on_ready=on_ready,
                on_frame=on_frame, expected_frames=args.frames, show_progress=False)
    t_total = time.perf_counter() - t0
    time.sleep(0.3)
    stop.set()
    proc.join(30)
    load1 = os.getloadavg()

    recs = {r["frame"]: r for r in res.frames}
    lat = np.array([seen[k] - recs[k]["mtime"] for k in sorted(recs) if k in seen])
    lat_den = np.array([seen_den[k] - recs[k]["mtime"] for k in sorted(recs) if k in seen_den])
    internal = np.array([recs[k]["latency_s"] for k in sorted(recs)])
    proc_s = np.array([recs[k]["process_s"] for k in sorted(recs)])
    den_s = np.array([recs[k].get("denoise_s", np.nan) for k in sorted(recs)])
    live_end = max(seen_den.values(), default=time.time())
    # the live phase: from the first processed frame to the last frame's denoised map (not the final run)
    live_rss = np.array([(f, b) for t, f, b in rss if f >= 1 and t <= live_end]).reshape(-1, 2)
    out = {
        "shape": list(args.shape), "channels": args.channels, "frames": args.frames, "interval_s": args.interval,
        "frame_mb": args.shape[0] * args.shape[1] * args.channels * 4 / 1e6, "denoise": args.denoise,
        "physics": args.physics,
        "window": args.window, "simulate_s": round(t_sim, 1),
        "frames_live": len(res.frames), "bad_frames": res.bad_frames, "warnings": res.warnings,
        "latency_dashboard_raw_s": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                                    "max": float(lat.max())} if lat.size else None,
        "latency_dashboard_denoised_s": {"median": float(np.median(lat_den)), "p95": float(np.percentile(lat_den, 95)),
                                         "max": float(lat_den.max())} if lat_den.size else None,
        "latency_internal_raw_s_median": float(np.median(internal)),
        "process_s": {"median": float(np.median(proc_s)), "p95": float(np.percentile(proc_s, 95))},
        "denoise_s": {"median": float(np.nanmedian(den_s)), "p95": float(np.nanpercentile(den_s, 95))},
        "complete_how": sorted({r["complete_how"] for r in res.frames}),
        "rss_mb": {"after_first_frame": float(live_rss[0, 1] / 1e6) if len(live_rss) else None,
                   "max_live": float(live_rss[:, 1].max() / 1e6) if len(live_rss) else None,
                   "at_end_of_live": float(live_rss[-1, 1] / 1e6) if len(live_rss) else None,
                   "samples": [(int(f), round(b / 1e6)) for f, b in live_rss[:: max(1, len(live_rss) // 24)]]},
        "live_phase_s": round(max(seen_den.values(), default=wall0) - wall0, 1),
        "total_s": round(t_total, 1), "loadavg_start": load0, "loadavg_end": load1,
        "cpus": os.cpu_count(), "python": platform.python_version(),
    }
    if res.run is not None:
        import xarray as xr

        causal = xr.open_dataset(res.live_dir / "causal.nc").load()
        batch = res.run.li_denoised.load().values
        truth = np.load(root / "truth_li.npy")
        rng = float(np.ptp(truth))
        out["psnr_db"] = {"causal_vs_batch": res.psnr_causal_vs_batch,
                          "raw_vs_truth": psnr(causal.li.values, truth, data_range=rng),
                          "causal_vs_truth": psnr(causal.li_causal.values, truth, data_range=rng),
                          "batch_vs_truth": psnr(batch, truth, data_range=rng)}
        out["final_run_s"] = {n: round(r.seconds, 1) for n, r in res.run.stages.items()}
        # what the final run took from the live session (per-frame rows reused) instead of computing it
        out["final_rows"] = {n: r.info for n, r in res.run.stages.items() if "rows_reused" in r.info}
    print(json.dumps(out, indent=1, default=float))
    (root / "bench_live.json").write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
