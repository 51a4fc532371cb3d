# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulator benchmark: write an operando STEM-EELS series to Zarr with bounded memory.

Run: ``.venv/bin/python benchmarks/bench_simulate.py`` (modest: 64×64 px, 16 frames, 1020
channels ≈ 0.27 GB) or ``--full`` (128×128 px, 60 frames, 1020 channels ≈ 4.0 GB).

Each measurement runs in its own child process so that its peak resident memory
(``ru_maxrss``) is its own:

- ``baseline``: importing ionscope, numpy, xarray, dask, zarr (the floor of every process);
- ``ionscope``: ``operando_eels(out=...zarr)`` — transport solve, spectra, Poisson noise,
  written frame by frame through ``ionscope.io.ZarrSeriesWriter``;
- ``ionscope-memory`` (modest size only): the same series built in memory, for contrast;
- ``ionscope-copy``: the ionscope store opened lazily and written again with ``ionscope.io.save``
  (the pure I/O path, directly comparable with the peer);
- ``hyperspy``: the peer's out-of-core path on the *same* data — the ionscope store opened
  lazily with dask and written by HyperSpy to ``.hspy`` (HyperSpy has no operando simulator,
  so its lazy writer is the comparable step; its ``.zspy`` writer fails on zarr 3).

The stores are deleted afterwards. Two ratios are printed: HyperSpy copy / ionscope simulate +
write, and HyperSpy copy / ionscope copy of the same data.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEST = dict(shape=(64, 64), n_frames=16)
FULL = dict(shape=(128, 128), n_frames=60)
ENERGY = dict(energy_range=(30.0, 132.0), energy_step=0.1)


def _rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def worker(kind: str, size: dict, path: Path) -> dict:
    t0 = time.perf_counter()
    import numpy  # noqa: F401
    import xarray  # noqa: F401
    import dask.array  # noqa: F401
    import zarr  # noqa: F401

    from ionscope.simulate import operando_eels

    out: dict = {"kind": kind}
    if kind == "baseline":
        pass
    elif kind == "ionscope":
        t0 = time.perf_counter()
        si, truth, _ = operando_eels(**size, **ENERGY, seed=0, out=path)
        out["seconds"] = time.perf_counter() - t0
        out["gb"] = si.nbytes / 1e9
        out["disk_gb"] = _dir_bytes(path) / 1e9
        out["chunks"] = {d: int(c[0]) for d, c in zip(si.dims, si.chunks)}
    elif kind == "ionscope-memory":
        t0 = time.perf_counter()
        si, _, _ = operando_eels(**size, **ENERGY, seed=0)
        out["seconds"] = time.perf_counter() - t0
        out["gb"] = si.nbytes / 1e9
    elif kind == "ionscope-copy":
        from ionscope.io import load, save

        src = path.with_name(path.stem + "-src.zarr")
        da_src = load(src)  # lazy
        t0 = time.perf_counter()
        save(da_src, path.with_name(path.stem + "-copy.zarr"))
        out["seconds"] = time.perf_counter() - t0
        out["gb"] = da_src.nbytes / 1e9
    elif kind == "hyperspy":
        import dask.array as da
        import hyperspy
        import hyperspy.api as hs

        src = path.with_name(path.stem + "-src.zarr")
        from ionscope.io import load

        arr = load(src).data  # lazy dask array straight from the ionscope store
        if not isinstance(arr, da.Array):
            arr = da.from_array(arr, chunks=(1, -1, -1, -1))
        t0 = time.perf_counter()
        s = hs.signals.Signal1D(arr).as_lazy()
        # .hspy (HDF5): rosettasciio's .zspy writer does not run on zarr 3 (NestedDirectoryStore gone)
        s.save(str(path.with_suffix(".hspy")), overwrite=True)
        out["seconds"] = time.perf_counter() - t0
        out["gb"] = arr.nbytes / 1e9
        out["version"] = hyperspy.__version__
    out["peak_rss_mib"] = _rss_mib()
    return out


def run_child(kind: str, size: dict, path: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--shape", *map(str, size["shape"]),
           "--frames", str(size["n_frames"]), "--path", str(path)]
    env = dict(os.environ, IONSCOPE_PROGRESS="0")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the ~4 GB series (minutes)")
    ap.add_argument("--no-peer", action="store_true", help="skip HyperSpy")
    ap.add_argument("--dir", default=None, help="where to write the stores (default: a temporary folder)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--shape", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        size = dict(shape=tuple(args.shape), n_frames=args.frames)
        print(json.dumps(worker(args.worker, size, Path(args.path))))
        return

    size = FULL if args.full else MODEST
    base = Path(tempfile.mkdtemp(prefix="bench_simulate_", dir=args.dir))
    try:
        store = base / "series.zarr"
        results = [run_child("baseline", size, store)]
        results.append(run_child("ionscope", size, store))
        if not args.full:
            results.append(run_child("ionscope-memory", size, store))
        os.replace(store, base / "series-src.zarr")
        results.append(run_child("ionscope-copy", size, store))
        shutil.rmtree(base / "series-copy.zarr", ignore_errors=True)
        if not args.no_peer:
            results.append(run_child("hyperspy", size, store))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    floor = results[0]["peak_rss_mib"]
    print(f"operando_eels {size['shape'][0]}×{size['shape'][1]} px × {size['n_frames']} frames × "
          f"{round((ENERGY['energy_range'][1] - ENERGY['energy_range'][0]) / ENERGY['energy_step'])} channels")
    print(f"{'run':<16} {'GB':>6} {'seconds':>8} {'GB/s':>6} {'peak RSS MiB':>13} {'above import':>13}")
    for r in results:
        gb, sec = r.get("gb"), r.get("seconds")
        rate = f"{gb / sec:6.3f}" if gb and sec else "     -"
        print(f"{r['kind']:<16} {gb or 0:6.2f} {sec or 0:8.1f} {rate} {r['peak_rss_mib']:13.0f} "
              f"{r['peak_rss_mib'] - floor:13.0f}")
    ion = next(r for r in results if r["kind"] == "ionscope")
    print(f"ionscope store on disk: {ion['disk_gb']:.2f} GB, chunks {ion['chunks']}")
    peer = next((r for r in results if r["kind"] == "hyperspy"), None)
    copy = next(r for r in results if r["kind"] == "ionscope-copy")
    if peer:
        print(f"HyperSpy {peer['version']}: time ratio hyperspy/ionscope = {peer['seconds'] / ion['seconds']:.2f} "
              f"(ionscope simulates + writes; HyperSpy only copies the same data), "
              f"peak RSS ratio = {peer['peak_rss_mib'] / ion['peak_rss_mib']:.2f}")
        print(f"copy of the same store: hyperspy/ionscope time = {peer['seconds'] / copy['seconds']:.2f}, "
              f"peak RSS ratio = {peer['peak_rss_mib'] / copy['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
