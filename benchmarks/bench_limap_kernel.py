# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 20, second to sixth pass: the per-frame limap kernel (Fourier-log + GLS MLLS) step by step against its floors,
and this tree against another (main) per realistic frame, alternated.

One realistic 128×128×1024 frame (``operando_eels(physics="realistic")``, dose 200) goes through the
fused per-frame path (``frame_plan`` of the default configuration → ``frame_columns``: registration,
Fourier-log deconvolution, GLS fit, σ):

* ``--compare-src DIR``: each round runs the other tree (``PYTHONPATH=DIR``) and this one in child
  processes, back to back, on the same frame: wall and CPU per frame with the kernel's threads (both
  cores), CPU on one thread, the load average; then the maps' differences (Li and Co: max |Δ| / the map's
  RMS; σ: max relative).
* ``--breakdown``: one frame on one thread, CPU time per step (zero-loss alignment and padding, forward
  FFTs, complex log and filters, inverse FFT, noise weights, GLS fit, σ), each beside its floor measured
  in the same process: scipy.fft alone on the same transforms and block shapes (in cache), one
  in-memory pass over the bytes a step must touch, or numpy's transcendental ufuncs alone. A tree with
  the third pass's compiled kernels (``_plural_fast._compiled()``, numba) is timed on that path, with
  the same step names (the first call, untimed, compiles or loads them).

* ``--stage N`` (with ``--compare-src``): the limap stage as the pipeline runs it — ``li_columns`` of an N-frame
  realistic store (one chunk per frame), threads, two workers — wall and CPU per frame, the two trees alternated.

Example: ``python benchmarks/bench_limap_kernel.py --compare-src /tmp/main/src --rounds 3 --breakdown``
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _plan(x, e, refs):
    from ionscope.pipeline import from_dict
    from ionscope.pipeline._eels_frame import frame_plan, probe_spectra

    return frame_plan(from_dict({}), energy=e, references=refs, probe=probe_spectra(x))


def _load(d):
    import xarray as xr

    return np.load(os.path.join(d, "frame.npy")), np.load(os.path.join(d, "energy.npy")), \
        xr.open_dataarray(os.path.join(d, "refs.nc")).load()


def child(d, tag):
    """One side of a round: the frame through frame_columns with threads, then on one thread."""
    import dataclasses

    import ionscope
    from ionscope.pipeline._eels_frame import frame_columns

    x, e, refs = _load(d)
    plan = _plan(x, e, refs)
    one = dataclasses.replace(plan, fit=dataclasses.replace(plan.fit, kwargs={**plan.fit.kwargs, "workers": 1}))
    frame_columns(x[:8], plan=plan, drift=(0.3, -0.2))
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    out = frame_columns(x, plan=plan, drift=(0.3, -0.2))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    c0 = time.process_time()
    frame_columns(x, plan=one, drift=(0.3, -0.2))
    cpu1 = time.process_time() - c0
    np.save(os.path.join(d, f"out_{tag}.npy"), out)
    print(json.dumps({"tag": tag, "src": os.path.dirname(ionscope.__file__), "wall": wall, "cpu": cpu,
                      "cpu_one_thread": cpu1, "load": load, "load_end": os.getloadavg()[0],
                      "columns": list(plan.fit.columns)}))


def stage_child(d, tag):
    """The limap stage as the pipeline runs it: ``li_columns`` of the store, threads, two workers (read,
    registration, kernel per frame; one task per frame)."""
    import xarray as xr

    import ionscope
    import ionscope.io as iio
    from ionscope.pipeline._eels_fused import li_columns

    series = iio.load(os.path.join(d, "night.zarr"))
    refs = xr.open_dataarray(os.path.join(d, "night_refs.nc")).load()
    x0 = np.asarray(series.isel(time=0).transpose("y", "x", "energy").values)
    plan = _plan(x0, series.energy.values, refs)
    T = series.sizes["time"]
    cols = li_columns(series, plan, np.zeros(T), np.tile([0.3, -0.2], (T, 1)))
    from ionscope.pipeline._eels_frame import frame_columns

    frame_columns(x0[:4], plan=plan, drift=(0.3, -0.2))  # compile or load the kernels outside the timing
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    out = cols.data.compute(scheduler="threads", num_workers=2)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(os.path.join(d, f"stage_{tag}.npy"), out)
    print(json.dumps({"tag": tag, "src": os.path.dirname(ionscope.__file__), "wall_per_frame": wall / T,
                      "cpu_per_frame": cpu / T, "load": load, "load_end": os.getloadavg()[0],
                      "columns": list(plan.fit.columns)}))


def stage(d, src, frames, rounds):
    """``--stage N``: an N-frame realistic store (one chunk per frame, as bench_operando.py writes it), the limap
    stage of the other tree and of this one alternated in child processes."""
    from ionscope.simulate import operando_eels

    _, truth, _ = operando_eels(shape=(128, 128), n_frames=frames, energy_range=(-5.0, 97.4), energy_step=0.1,
                                energy_drift_ev=0.3, specimen_drift_px=1.0, seed=0, physics="realistic",
                                out=os.path.join(d, "night.zarr"), chunks={"time": 1, "energy": -1})
    truth.references.to_netcdf(os.path.join(d, "night_refs.nc"))
    rows = []
    for r in range(rounds):
        for tag, path in (("other", src), ("this", None)):
            rows.append(_side(d, f"{tag}{r}", path, stage=True))
            x = rows[-1]
            print(f"stage round {r} {tag:5s}: wall {x['wall_per_frame']:.2f} s, CPU {x['cpu_per_frame']:.2f} s per "
                  f"frame, load {x['load']:.1f} → {x['load_end']:.1f}", flush=True)
    a, b = np.load(os.path.join(d, "stage_other0.npy")), np.load(os.path.join(d, "stage_this0.npy"))
    cols = rows[0]["columns"]
    for name in ("Li", "Co"):
        i, k = cols.index(name), cols.index(f"{name}_std")
        print(f"stage this vs other: {name} {np.max(np.abs(a[..., i] - b[..., i])) / np.sqrt(np.mean(a[..., i] ** 2)):.1e}"
              f" of RMS, σ {np.max(np.abs(b[..., k] / a[..., k] - 1)):.1e}")
    return rows


def _side(d, tag, src, stage=False):
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    else:
        env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, __file__, "--stage-child" if stage else "--child", d, "--tag", tag],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(d, src, rounds):
    rows = []
    for r in range(rounds):
        for tag, path in (("other", src), ("this", None)):
            rows.append(_side(d, f"{tag}{r}", path))
            x = rows[-1]
            print(f"round {r} {tag:5s} ({x['src']}): wall {x['wall']:.2f} s, CPU {x['cpu']:.2f} s (threads), "
                  f"CPU one thread {x['cpu_one_thread']:.2f} s, load {x['load']:.1f} → {x['load_end']:.1f}", flush=True)
    cols = rows[0]["columns"]
    a, b = np.load(os.path.join(d, "out_other0.npy")), np.load(os.path.join(d, "out_this0.npy"))
    diff = {}
    for name in ("Li", "Co"):
        i, s = cols.index(name), cols.index(f"{name}_std")
        diff[name] = float(np.max(np.abs(a[..., i] - b[..., i])) / np.sqrt(np.mean(a[..., i] ** 2)))
        diff[f"{name}_std"] = float(np.max(np.abs(b[..., s] / a[..., s] - 1)))
    print("this vs other: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
          + " (maps: max |Δ| / RMS; σ: max relative)")
    for k in ("wall", "cpu", "cpu_one_thread"):
        o = [x[k] for x in rows if x["tag"].startswith("other")]
        t = [x[k] for x in rows if x["tag"].startswith("this")]
        print(f"{k}: other best {min(o):.2f} median {np.median(o):.2f}; this best {min(t):.2f} median "
              f"{np.median(t):.2f}; other / this (medians) {np.median(o) / np.median(t):.2f}×")
    return {"rows": rows, "diff": diff}


def _best(fn, repeat=5):
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def breakdown(d):
    """One frame on one thread, CPU per step, each beside its floor (same process)."""
    from scipy import fft as sfft

    from ionscope.eels import _plural_fast as pf

    x, e, refs = _load(d)
    plan = _plan(x, e, refs)
    J = x.reshape(-1, x.shape[-1])
    clock = time.process_time
    spent: dict = {}
    stack = ["deconvolution"]
    saved = []

    def wrap(owner, name, key):
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def timed(*a, **k):
            stack.append(key)
            t0 = clock()
            try:
                return fn(*a, **k)
            finally:
                stack.pop()
                spent[key] = spent.get(key, 0.0) + clock() - t0  # inclusive of the steps it calls

        setattr(owner, name, timed)

    def fft_wrap(name):
        fn = getattr(sfft, name)
        saved.append((sfft, name, fn))

        def timed(*a, **k):
            t0 = clock()
            res = fn(*a, **k)
            key = f"FFT {stack[-1]} {name}"
            spent[key] = spent.get(key, 0.0) + clock() - t0
            _count(stack[-1], name, a[0], k.get("axis", -1))
            return res

        setattr(sfft, name, timed)

    rows: dict = {}

    def _count(step, name, x, axis):
        # transforms of one row, by step, kind and precision (the floors below are per row)
        x = np.asarray(x)
        bits = 32 if x.dtype in (np.float32, np.complex64) else 64
        key = (step, name, bits)
        rows[key] = rows.get(key, 0) + x.size // x.shape[axis]

    for name in ("rfft", "irfft"):
        fft_wrap(name)
    if getattr(pf, "_ducc", lambda: None)() is not None:
        # the fourth pass's float64 transforms by ducc0: counted with the transforms, under the same names
        for name, key in (("_rfft64", "rfft"), ("_irfft64", "irfft")):
            fn = getattr(pf, name)
            saved.append((pf, name, fn))

            def timed(*a, _fn=fn, _key=key, **k):
                t0 = clock()
                res = _fn(*a, **k)
                key = f"FFT {stack[-1]} {_key}"
                spent[key] = spent.get(key, 0.0) + clock() - t0
                _count(stack[-1], _key, a[0], 1)
                return res

            setattr(pf, name, timed)
    try:  # the sixth pass's float32 transforms (scipy's pocketfft binding): counted as scipy.fft's
        from ionscope.eels import _plural_f32
    except ImportError:
        _plural_f32 = None
    for name in ("rfft", "irfft") if _plural_f32 is not None else ():
        fn = getattr(_plural_f32, name)
        saved.append((_plural_f32, name, fn))

        def timed32(*a, _fn=fn, _key=name, **k):
            t0 = clock()
            res = _fn(*a, **k)
            key = f"FFT {stack[-1]} {_key}"
            spent[key] = spent.get(key, 0.0) + clock() - t0
            _count(stack[-1], _key, a[0], k.get("axis", -1))
            return res

        setattr(_plural_f32, name, timed32)
    wrap(pf, "_prepare", "prepare")
    wrap(pf._Context, "_noise", "noise")
    wrap(pf._Context, "_fit", "fit")
    wrap(pf._Context, "_sandwich", "sigma")
    wrap(pf._Context, "block", "block")
    # the third pass's compiled path (numba; a tree without it runs the numpy steps above)
    compiled = getattr(pf, "_compiled", lambda: None)() is not None
    if compiled:
        wrap(pf._Context, "_prepare_jit", "prepare")
        wrap(pf._Context, "_log_jit", "log")
        wrap(pf._Context, "_noise_jit", "noise")
        wrap(pf._Context, "_sandwich_jit", "sigma")
    kw = {**plan.fit.kwargs, "workers": 1}
    try:
        pf.fourier_log_kernel(J[:64], **kw)
        spent.clear()
        rows.clear()
        t0 = clock()
        pf.fourier_log_kernel(J, **kw)
        total = clock() - t0
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    f = {k: spent.get(k, 0.0) for k in set(spent)}
    ffts = {k: v for k, v in f.items() if k.startswith("FFT")}
    fwd = f.get("FFT block rfft", 0.0)
    inv = f.get("FFT block irfft", 0.0)
    noise_fft = f.get("FFT noise rfft", 0.0) + f.get("FFT noise irfft", 0.0)
    sigma_fft = f.get("FFT sigma rfft", 0.0) + f.get("FFT sigma irfft", 0.0)
    # the log step: the block's own work (the numpy path) or _log_jit plus what is left of the block (compiled)
    block_own = f["block"] - f["prepare"] - f["noise"] - f["fit"] - f["sigma"] - fwd - inv
    # floors, in the same process, on the kernel's block shape
    P, n_pix, n_fft = pf._BLOCK, J.shape[0], 2048
    scale = n_pix / P
    rng = np.random.default_rng(0)
    r64 = rng.random((P, n_fft))
    r32 = r64.astype(np.float32)
    c64, c32 = sfft.rfft(r64, axis=1), sfft.rfft(r32, axis=1)
    fl = {"rfft64": _best(lambda: sfft.rfft(r64, axis=1, workers=1)) * scale,
          "irfft64": _best(lambda: sfft.irfft(c64, n=n_fft, axis=1, workers=1)) * scale,
          "rfft32": _best(lambda: sfft.rfft(r32, axis=1, workers=1)) * scale,
          "irfft32": _best(lambda: sfft.irfft(c32, n=n_fft, axis=1, workers=1)) * scale}
    x64 = np.asarray(J, float)
    pass64 = _best(lambda: x64.sum(), 3)  # one read of the frame as float64 (134 MB)
    wide = np.empty((n_pix, n_fft))
    pad = _best(lambda: wide.__setitem__((slice(None), slice(0, J.shape[1])), J), 3)  # the padded copy
    from ionscope.eels import _lowloss

    g = _lowloss.gaussian_ft(np.fft.rfftfreq(n_fft, d=float(e[1] - e[0])), plan.fit.kwargs["resolution_fwhm"])
    kc = max(8, int(np.count_nonzero(g > 1e-18)))  # the frequencies the kernel keeps (as _Context)
    # generic arguments: phases in every quadrant, as j/z has them
    q_re, q_im = rng.standard_normal((P, kc)), rng.standard_normal((P, kc))
    pos = np.abs(q_re) + 0.1
    log_floor = _best(lambda: (np.arctan2(q_im, q_re), np.log(pos))) * scale
    def tf(step, names=("rfft", "irfft")):
        """The transforms a step ran (per pixel, as counted) and their floor: scipy.fft alone on as many rows."""
        keys = [k for k in rows if k[0] == step and k[1] in names]
        floor = sum(rows[k] * fl[f"{k[1]}{k[2]}"] / n_pix for k in keys)
        what = " + ".join(f"{rows[k] / n_pix:.3g} {k[1]}{k[2]}" for k in sorted(keys))
        return floor, what

    (fwd_fl, fwd_w), (inv_fl, inv_w) = tf("block", ("rfft",)), tf("block", ("irfft",))
    (noise_fl, noise_w), (sigma_fl, sigma_w) = tf("noise"), tf("sigma")
    steps = [
        ("zero-loss alignment, I0, tail, padding (_prepare)", f["prepare"], pass64 + pad,
         "one read of the frame (float64) + the padded 2048-channel copy"),
        (f"forward FFTs: counts and zero-loss ({fwd_w} per pixel)", fwd, fwd_fl, "scipy.fft alone"),
        ("complex log, 1/j, 1/z, reconvolution, zero-loss mask", block_own, log_floor,
         "np.arctan2 + np.log alone on (block, kc)"),
        (f"inverse FFT to single scattering ({inv_w})", inv, inv_fl, "scipy.fft alone"),
        (f"noise weights: FFTs ({noise_w})", noise_fft, noise_fl, "scipy.fft alone"),
        ("noise weights: element-wise", f["noise"] - noise_fft, pass64, "one read of the frame"),
        ("GLS normal equations, solve, NNLS, χ² (_fit)", f["fit"], None, ""),
        (f"σ sandwich: FFTs ({sigma_w})", sigma_fft, sigma_fl, "scipy.fft alone"),
        ("σ sandwich: element-wise", f["sigma"] - sigma_fft, pass64, "one read of the frame"),
        ("outside the blocks (checks, conversion, threads)", total - f["block"], pass64, "one read of the frame"),
    ]
    path = "compiled element-wise kernels (numba)" if compiled else "numpy element-wise passes"
    print(f"\nbreakdown: one frame {x.shape}, one thread, CPU s (block of {P} pixels, {path}); "
          f"total {total:.2f} s; load {os.getloadavg()[0]:.1f}")
    print("| step | CPU s | floor s | floor | ratio |\n|---|---|---|---|---|")
    for name, t, floor, what in steps:
        ratio = f"{t / floor:.1f}×" if floor else "—"
        print(f"| {name} | {t:.3f} | {'—' if floor is None else f'{floor:.3f}'} | {what} | {ratio} |")
    all_fft = sum(ffts.values())
    fft_floor = fwd_fl + inv_fl + noise_fl + sigma_fl
    n_tf = sum(rows.values()) / n_pix
    print(f"| all {n_tf:.3g} transforms per pixel | {all_fft:.3f} | {fft_floor:.3f} | scipy.fft alone | "
          f"{all_fft / fft_floor:.2f}× |")
    print(f"| whole kernel | {total:.3f} | {fft_floor:.3f} | its transforms alone | {total / fft_floor:.2f}× |")
    return {"total": total, "steps": {s[0]: s[1] for s in steps}, "floors": fl, "pass64": pass64, "fft_floor": fft_floor}


def make_frame(d, size, seed, dose):
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=(size, size), n_frames=1, physics="realistic", dose=dose, seed=seed)
    np.save(os.path.join(d, "frame.npy"), np.ascontiguousarray(si.values[0]))
    np.save(os.path.join(d, "energy.npy"), si.energy.values)
    truth.references.to_netcdf(os.path.join(d, "refs.nc"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dose", type=float, default=200.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compare-src", help="the other tree's src folder (e.g. main's, from git archive)")
    p.add_argument("--breakdown", action="store_true")
    p.add_argument("--json")
    p.add_argument("--stage", type=int, default=0, metavar="N",
                   help="with --compare-src: also the limap stage (li_columns, threads) on an N-frame store")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--stage-child", help=argparse.SUPPRESS)
    p.add_argument("--tag", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage_child:
        stage_child(args.stage_child, args.tag)
        return 0
    if args.child:
        if args.tag == "breakdown":
            print()
            breakdown(args.child)
        else:
            child(args.child, args.tag)
        return 0
    import numpy
    import scipy

    print(f"# bench_limap_kernel {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; numpy {numpy.__version__}, scipy {scipy.__version__}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_limap_") as d:
        make_frame(d, args.size, args.seed, args.dose)
        if args.compare_src:
            results["compare"] = compare(d, args.compare_src, args.rounds)
        if args.stage and args.compare_src:
            results["stage"] = stage(d, args.compare_src, args.stage, args.rounds)
        if args.breakdown and args.compare_src:
            # the same per-step breakdown of the other tree (its kernel has the same steps), then this one
            env = {**os.environ, "PYTHONPATH": args.compare_src}
            out = subprocess.run([sys.executable, __file__, "--child", d, "--tag", "breakdown"], env=env,
                                 capture_output=True, text=True, check=True).stdout
            print(f"\nthe other tree ({args.compare_src}):" + out.split("\n", 1)[1], end="")
            print("\nthis tree:", end="")
        if args.breakdown:
            results["breakdown"] = breakdown(d)
    print(f"# load at end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
