# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 18: the pipeline's holography table (``holo_plan`` → ``holo_frames`` → ``holo_series``) timed.

Run: ``python benchmarks/bench_holography_table.py [--size 2048 --frames 20 --rounds 3 --base SRC]``.

A night of ``--frames`` + 1 simulated 2048² off-axis holograms (``simulate.biased_holograms``, the
programme of ``bench_holography_split.py``: 30 s at rest, then 1.5 V; 100 counts/px; written to Zarr
once) runs through ``run_holography(..., stages=("holo_series",), executor=EXECUTOR)`` (``--executor``,
default ``"threads"``) into a fresh
output folder each time (nothing cached), drift ``"auto"`` (the pipeline's default). Each run is a
fresh Python process, so that ``--base SRC`` (another checkout's ``src``, e.g. ``git archive main``)
and this checkout can be alternated in one session ("before", "after"); the order flips every round.
Reported per run: wall and process CPU of the call, the time of each stage, the load average (1 min)
before the run. After the timed runs, the stored ``holo_series`` and the movie of the two codes are
compared variable by variable (bit-identical or the largest difference). ``--profile FILE`` instead
runs this checkout once under cProfile and writes the stats to FILE.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "src"


def _make(data: Path, size: int, frames: int) -> None:
    from ionscope.simulate import biased_holograms

    n_rest = 30
    hold = 10 * (frames - n_rest // 10) + 5
    _, refs, log, truth = biased_holograms(programme=[("rest", n_rest), ("hold", 1.5, hold)], shape=(size, size),
                                           pixel_nm=0.5, dose=100.0, seed=0, out=data / "holos.zarr")
    import pickle

    (data / "inputs.pkl").write_bytes(pickle.dumps((refs.load(), log)))
    truth.thickness_nm.load().to_dataset(name="thickness_nm").to_zarr(data / "thickness.zarr", mode="w")


def _one(data: Path, out: Path, executor: str = "threads", warm: bool = True) -> dict:
    """One timed run of the table in this process (the ``--one`` mode): a dict of timings.

    An untimed 5-frame night first (imports, FFT plans), into a folder of its own.
    """
    import pickle

    from ionscope.io import load
    from ionscope.pipeline import run_holography

    warnings.simplefilter("ignore", RuntimeWarning)
    holos = load(data / "holos.zarr")
    refs, log = pickle.loads((data / "inputs.pkl").read_bytes())
    cfg = {"holography": {"thickness_nm": str(data / "thickness.zarr")}, "compute": {"scheduler": "threads"}}
    if warm:
        run_holography(cfg, holograms=holos.isel(time=slice(0, 5)), references=refs, log=log,
                       output=out.with_name(out.name + "-warm"), stages=("holo_series",), executor=executor)
        shutil.rmtree(out.with_name(out.name + "-warm"), ignore_errors=True)
    load_avg = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_holography(cfg, holograms=holos, references=refs, log=log, output=out, stages=("holo_series",),
                         executor=executor)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = {k: round(float(getattr(r, "seconds", float("nan")) or 0.0), 3) for k, r in res.records.items()}
    return {"wall": wall, "cpu": cpu, "load": load_avg, "stages": stages}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--base", type=Path, default=None, help="another checkout's src folder (the 'before' code)")
    p.add_argument("--data", type=Path, default=None, help="keep the simulated night here (made if missing)")
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--executor", default="threads",
                   help="'threads' (default) or 'synchronous' (inline; with --profile it profiles the tasks too)")
    p.add_argument("--one", nargs=2, type=Path, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print("RESULT " + json.dumps(_one(*a.one, a.executor)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_holo_table_"))
    data = a.data or tmp / "data"
    try:
        if not (data / "holos.zarr").exists():
            data.mkdir(parents=True, exist_ok=True)
            _make(data, a.size, a.frames)
        if a.profile:
            import cProfile

            _one(data, tmp / "warm", a.executor, warm=False)  # imports, FFT plans: not profiled
            cProfile.runctx("_one(data, tmp / 'prof', ex, warm=False)", globals(),
                            {"_one": _one, "data": data, "tmp": tmp, "ex": a.executor}, str(a.profile))
            return
        codes = {"after": HERE} if a.base is None else {"before": a.base.resolve(), "after": HERE}
        runs = []
        for r in range(a.rounds):
            order = list(codes.items()) if r % 2 == 0 else list(reversed(codes.items()))
            for name, src in order:
                out = tmp / f"{name}-{r}"
                env = {**os.environ, "PYTHONPATH": str(src)}
                proc = subprocess.run([sys.executable, __file__, "--one", str(data), str(out), "--executor", a.executor],
                                      env=env,
                                      capture_output=True, text=True)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if not line:
                    print(proc.stdout, proc.stderr)
                    raise SystemExit(f"{name}: run failed")
                got = json.loads(line[0][7:])
                runs.append((r, name, got))
                print(f"round {r} {name:>6} (load {got['load']:.2f}): wall {got['wall']:6.2f} s, CPU {got['cpu']:6.2f} s,"
                      f" stages {got['stages']}", flush=True)
                if r < a.rounds - 1:
                    shutil.rmtree(out, ignore_errors=True)
        for name in codes:
            w = [g["wall"] for _, n, g in runs if n == name]
            c = [g["cpu"] for _, n, g in runs if n == name]
            print(f"{name:>6}: wall median {np.median(w):.2f} s (runs {', '.join(f'{v:.2f}' for v in w)}), "
                  f"CPU median {np.median(c):.2f} s")
        if len(codes) == 2:
            _compare(tmp / f"before-{a.rounds - 1}", tmp / f"after-{a.rounds - 1}")
    finally:
        if a.data is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            for d in tmp.glob("*"):
                shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)


def _compare(before: Path, after: Path) -> None:
    """Every stored array of the two runs' caches: bit-identical, or the largest difference."""
    import zarr

    worst = {}
    for group in ("holo_frames", "holo_series"):
        gb = next((before / ".ionscope-cache").glob(f"**/{group}"), None) if (before / ".ionscope-cache").exists() else None
        ga = next((after / ".ionscope-cache").glob(f"**/{group}"), None) if (after / ".ionscope-cache").exists() else None
        if gb is None or ga is None:
            gb, ga = next(before.rglob(group), None), next(after.rglob(group), None)
        if gb is None or ga is None:
            print(f"  {group}: not found to compare ({before}, {after})")
            continue
        zb, za = zarr.open_group(str(gb), mode="r"), zarr.open_group(str(ga), mode="r")
        for name, arr in zb.arrays():
            x, y = np.asarray(arr[...]), np.asarray(za[name][...])
            if x.dtype.kind in "fc":
                same = np.array_equal(x, y, equal_nan=True)
                diff = float(np.nanmax(np.abs(x - y))) if x.size and not same else 0.0
            else:
                same, diff = np.array_equal(x, y), 0.0
            worst[f"{group}/{name}"] = (same, diff)
    bad = {k: v for k, v in worst.items() if not v[0]}
    print(f"  compared {len(worst)} arrays: " + ("all bit-identical" if not bad else
          "; ".join(f"{k}: max |Δ| {d:.3g}" for k, (_, d) in bad.items())))


if __name__ == "__main__":
    main()
