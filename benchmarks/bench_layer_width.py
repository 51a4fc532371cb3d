# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer width on realistic line scans: error, σ honesty (pull) and the "not resolved" call, per dose.

``python benchmarks/bench_layer_width.py --doses 500 2000 8000 20000 --seeds 24``

Each seed: ``tem_eels_linescan(physics="realistic", n_positions=200, dose=D, seed=s)`` (13 nm
layer, +60 % Li), ``li_profile(references=truth.references)`` (auto → Fourier-log MLLS),
``layer_width``. No peer has a layer-width fit (eXSpy/HyperSpy: none).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--doses", type=float, nargs="+", default=[500.0, 2000.0, 8000.0, 20000.0])
    ap.add_argument("--seeds", type=int, default=24)
    args = ap.parse_args()
    from ionscope import eels
    from ionscope.simulate import tem_eels_linescan

    print("| dose | resolved | width RMS error, all (resolved) | median σ | pull std, all (resolved) "
          "| |pull| < 1 / < 2 | 95 % interval covers | s per fit | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dose in args.doses:
        rows, t_fit = [], 0.0
        for seed in range(args.seeds):
            data, truth = tem_eels_linescan(n_positions=200, physics="realistic", dose=dose, seed=seed)
            prof = eels.li_profile(data, references=truth.references)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = eels.layer_width(prof)
            t_fit += time.perf_counter() - t0
            lo, hi = w["width_interval95_nm"]
            true = truth.attrs["layer_width_nm"]
            rows.append((w["width_nm"] - true, w["width_std_nm"], w["resolved"], lo <= true <= hi))
        r = np.array(rows, float)
        err, sig, ok, cov = r[:, 0], r[:, 1], r[:, 2] > 0, r[:, 3] > 0
        p = err / sig

        def rms(v):
            return float(np.sqrt(np.mean(v**2))) if v.size else float("nan")

        print(f"| {dose:g} | {ok.sum()}/{len(r)} | {rms(err):.2f} ({rms(err[ok]):.2f}) nm | {np.median(sig):.2f} nm "
              f"| {np.std(p):.2f} ({np.std(p[ok]) if ok.any() else float('nan'):.2f}) "
              f"| {np.mean(abs(p) < 1):.2f} / {np.mean(abs(p) < 2):.2f} | {cov.mean():.2f} "
              f"| {t_fit / len(r):.2f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
