# SPDX-License-Identifier: GPL-3.0-or-later
"""Live holography benchmark: hologram file complete → its ΔV per interface on the sink (issue 18).

A fake microscope in its own process writes simulated off-axis holograms
(:func:`ionscope.simulate.biased_holograms`, ``--shape`` px, float32 NetCDF,
one file per ``--interval`` wall seconds, each file written in 4 MiB pieces as
an acquisition program writes it) into a folder, and appends the bias log
(CSV) up to each hologram's time just before it. ``FramesExecutor`` (the
engine of ``ionscope watch``) follows the folder in this process with a
sink that notes when each hologram's record (ΔV per interface) and potential
map arrive. Measured:

* latency = (time ``put_frame`` receives hologram k's ΔV) − (the file's last
  write, ``st_mtime``): median and 95th percentile over the holograms measured
  after the plan (steady state), and the holograms that waited for the plan
  (the zero-bias ones and the first biased one: the plan is made when the
  first biased hologram arrives) listed apart;
* the plan's time, the per-hologram kernel time;
* the final batch run (``pipeline.run``, the holography table, on the same
  folder and output folder: it takes each hologram measured live from the
  live cache, :mod:`ionscope.pipeline._holo_reuse`), the same run into a fresh
  output folder (every hologram measured), and the largest
  |ΔV_live − ΔV_batch| over the holograms seen.

The pre-generation of the holograms is not timed. Usage::

    python benchmarks/bench_live_holography.py                       # 2048², 1 per 10 s, 10 holograms
    python benchmarks/bench_live_holography.py --shape 512 --frames 6 --interval 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _simulate(stage: Path, shape: int, n: int, interval: float) -> None:
    """The holograms (one NetCDF file each, outside the watched folder), the references and the full log."""
    from ionscope import io as iio
    from ionscope.simulate import biased_holograms

    rest = 2 * interval  # holograms 0-2 at 0 V, then +1.5 V: the plan is made when hologram 3 arrives
    holos, refs, log, _ = biased_holograms(programme=[("rest", rest), ("hold", 1.5, (n - 3) * interval + 1)],
                                           shape=(shape, shape),
                                           frame_interval_s=interval, seed=0, out=stage / "night.zarr")
    for k in range(n):
        da = holos.isel(time=k)
        da = da.drop_vars([c for c in da.coords if c not in ("y", "x")]).astype(np.float32).load()
        iio.save(da, stage / f"holo_{k:04d}.nc")
    iio.save(refs.load(), stage / "refs.nc")
    np.save(stage / "log.npy", np.stack([log.time.values, log.voltage.values]))


def _microscope(stage: str, folder: str, n: int, interval: float, t0: float) -> None:
    """Child process: at t0 + k·interval, the log up to hologram k's time, then hologram k, piece by piece."""
    stage, folder = Path(stage), Path(folder)
    lt, lv = np.load(stage / "log.npy")
    log = folder.parent / "bias.csv"
    written = 0
    with open(log, "w") as f:
        f.write("time (s),voltage (V)\n")
    for k in range(n):
        time.sleep(max(0.0, t0 + k * interval - time.time()))
        rows = [(a, b) for a, b in zip(lt[written:], lv[written:]) if a <= k * interval + 0.5]
        with open(log, "a") as f:
            f.write("".join(f"{a:.6g},{b:.9g}\n" for a, b in rows))
        written += len(rows)
        raw = (stage / f"holo_{k:04d}.nc").read_bytes()
        with open(folder / f"holo_{k:04d}.nc", "wb") as f:
            for i in range(0, len(raw), 4 << 20):
                f.write(raw[i:i + (4 << 20)])
                f.flush()
    time.sleep(1.0)
    with open(log, "a") as f:
        f.write("".join(f"{a:.6g},{b:.9g}\n" for a, b in zip(lt[written:], lv[written:])))
    (folder / "STOP").write_text("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, default=2048)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--interval", type=float, default=10.0, help="wall (and log) seconds per hologram")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    from ionscope.pipeline import FramesExecutor, MemorySink, from_dict, run

    root = Path(tempfile.mkdtemp(prefix="bench_live_holo_"))
    try:
        stage, folder = root / "stage", root / "night" / "holograms"
        stage.mkdir()
        folder.mkdir(parents=True)
        t = time.perf_counter()
        _simulate(stage, args.shape, args.frames, args.interval)
        sim_s = time.perf_counter() - t
        shutil.copy(stage / "refs.nc", root / "night" / "refs.nc")
        cfg = from_dict({"holography": {"holograms": "holograms", "references": "refs.nc", "log": "bias.csv",
                                        "thickness_nm": 60.0, "frame_interval_s": args.interval},
                         "output": {"dir": str(root / "night" / "out")}}, base_dir=root / "night")

        arrived: dict[int, float] = {}

        class Sink(MemorySink):
            def put_frame(self, record, maps):
                if "potential" in maps and record.get("step_v_0") is not None:
                    arrived.setdefault(int(record["frame"]), time.time())
                super().put_frame(record, maps)

        sink = Sink()
        ex = FramesExecutor(cfg, sink=sink, settle_s=0.5, poll_s=0.1)
        t0 = time.time() + 2.0
        child = mp.get_context("spawn").Process(target=_microscope,
                                                args=(str(stage), str(folder), args.frames, args.interval, t0))
        child.start()
        load_before = os.getloadavg()
        ended = ex.run()
        child.join()
        load_during = os.getloadavg()
        recs = {r["frame"]: r for r in ex.records}
        lat = {k: arrived[k] - recs[k]["mtime"] for k in arrived}
        plan_at = max(int(i) for i in sink.meta["zero_bias_frames"]) + 1
        steady = [lat[k] for k in sorted(lat) if k > plan_at]
        waited = {k: round(lat[k], 2) for k in sorted(lat) if k <= plan_at}
        # the final run (the live cache in its output folder: measured holograms are taken from it), then
        # the same run into a fresh folder (everything measured), back to back
        t = time.perf_counter()
        final = run(cfg, stages=("holo_series",), show_progress=False)
        batch_s = time.perf_counter() - t
        ds, reused = final.context["holo_series"], final.context.info.get("holo_live_reused")
        t = time.perf_counter()
        fresh = run(cfg.replace(output={"dir": str(root / "night" / "fresh")}), stages=("holo_series",),
                    show_progress=False).context["holo_series"]
        fresh_s = time.perf_counter() - t
        same = bool(np.array_equal(fresh.step_v.values, ds.step_v.values, equal_nan=True))
        times = np.round(ds.time.values, 6)
        diffs = []
        for r in ex.records:
            i = int(np.flatnonzero(times == round(r["time_s"], 6))[0])
            for j in range(ds.sizes["interface"]):
                lv, bv = r.get(f"step_v_{j}"), float(ds.step_v.values[i, j])
                if lv is not None and np.isfinite(bv):
                    diffs.append(abs(lv - bv))
        out = {
            "shape": [args.shape, args.shape], "frames": args.frames, "interval_s": args.interval, "ended": ended,
            "measured": len(lat), "bad": sink.bad,
            "latency_steady_median_s": float(np.median(steady)) if steady else None,
            "latency_steady_p95_s": float(np.percentile(steady, 95)) if steady else None,
            "latency_steady_n": len(steady), "latency_waited_for_plan_s": waited,
            "plan_s": sink.meta.get("plan_s"),
            "kernel_s_median": float(np.median([r["process_s"] for r in ex.records])),
            "final_batch_run_s": batch_s, "final_holograms_reused": reused, "batch_run_without_live_s": fresh_s,
            "final_equals_fresh_batch": same, "max_abs_dv_live_minus_batch_v": max(diffs) if diffs else None,
            "dv_compared": len(diffs), "simulate_s": sim_s,
            "loadavg_before": load_before, "loadavg_after_live": load_during, "loadavg_after_batch": os.getloadavg(),
            "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
        }
        text = json.dumps(out, indent=1, default=str)
        print(text)
        if args.out:
            Path(args.out).write_text(text)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
