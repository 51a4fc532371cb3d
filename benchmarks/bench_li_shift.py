# SPDX-License-Identifier: GPL-3.0-or-later
"""Li-K chemical shift: x bias with one Li-K shape vs two shapes from regions vs shift-fitting, pooled over seeds.

``python benchmarks/bench_li_shift.py --doses 100 1000 --seeds 1 2 3``

Each seed is an independent ``operando_eels(physics="realistic")`` data set (microstructure and noise;
a 0.6 eV Li-K chemical shift between x = 1 and 0.5), calibrated as in ``bench_eels_routes.py`` (k from a
pristine region, two-shape references from a pristine and a charged region). x bias per frame's film from
summed weights; pooled mean ± s.e. over seeds × frames. The per-seed k error is common to a seed's frames,
so the s.e. is taken over seeds (each seed's mean over its frames).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

ROUTES = ["MLLS one shape", "MLLS two shapes (regions)", "MLLS shift-fitting"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--doses", type=float, nargs="+", default=[100.0, 1000.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--shape", type=int, nargs=2, default=[32, 48])
    ap.add_argument("--frames", type=int, default=4)
    args = ap.parse_args()
    from bench_eels_physics import _quiet, simulate
    from bench_eels_routes import run_routes

    _quiet()
    print(f"# load {os.getloadavg()[0]:.1f}; shape {args.shape} × {args.frames} frames; seeds {args.seeds}")
    print("| dose | route | x bias (mean ± s.e. over seeds) | per seed | minus one shape (paired) | r(x) 4×4 "
          "| s per seed |")
    print("|---|---|---|---|---|---|---|")
    for dose in args.doses:
        per = {r: [] for r in ROUTES}
        rx = {r: [] for r in ROUTES}
        tt = {r: 0.0 for r in ROUTES}
        for seed in args.seeds:
            # dose 0: noise-free (expected counts at 400 counts/channel)
            si, truth = simulate(tuple(args.shape), args.frames, dose or 400.0, dose > 0, seed)
            res, secs = run_routes(si, truth, ROUTES)
            for r in ROUTES:
                per[r].append(float(np.mean(res[r]["x_frames"])))
                rx[r].append(res[r]["r_x_blocks"])
                tt[r] += secs[r]
        base = np.asarray(per[ROUTES[0]])
        for r in ROUTES:
            v = np.asarray(per[r])
            d = v - base  # paired with one shape on the same data: the k and noise errors largely cancel
            print(f"| {dose:g} | {r} | {v.mean():+.4f} ± {v.std(ddof=1) / np.sqrt(v.size):.4f} | "
                  f"{', '.join(f'{u:+.3f}' for u in v)} | {d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(d.size):.4f} | "
                  f"{np.mean(rx[r]):.2f} | {tt[r] / v.size:.1f} |", flush=True)
    print(f"# load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
