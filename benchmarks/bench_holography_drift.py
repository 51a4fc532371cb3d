# SPDX-License-Identifier: GPL-3.0-or-later
"""Specimen drift in a night of biased holograms: how well ``bias_series(drift="auto")`` measures and follows it.

Run: ``python benchmarks/bench_holography_drift.py`` (``--help`` for sizes and doses; sized for a shared
2-core machine, a few minutes).

``simulate.biased_holograms`` (the night of ``bench_holography_series.py``: shielded Cu | electrolyte | Cu,
rest 40 s → +1.5 V 160 s → −1.5 V 160 s, frames every 10 s) with the specimen drifting ``--drift`` nm/s
along x and half that along y, plus a ``--jitter`` nm random walk per frame, reconstructed by
``holography.bias_series`` three ways: ``drift=None`` (no correction), ``drift="auto"`` (measured) and
the true drift given; and the same night without drift (``still``), with ``drift=None`` and ``"auto"``
(what the correction costs a specimen that does not move). Reported per method and dose: the RMS error of the measured drift per axis (nm and
hologram px) and the spread of its pulls, the ΔV RMS error and the fraction of frame × interface pairs
within the issue's target max(2 %, 0.02 V) (pairs with a true bias-induced ΔV > 0.2 V), and the time per
frame.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

PROGRAMME = [("rest", 40), ("hold", 1.5, 160), ("hold", -1.5, 160)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--pixel-nm", type=float, default=0.5)
    p.add_argument("--doses", type=float, nargs="+", default=[100.0, 400.0])
    p.add_argument("--methods", nargs="+", default=["fourier", "phase-shifting"])
    p.add_argument("--drift", type=float, default=0.02, help="x drift in nm/s (y: half of it)")
    p.add_argument("--jitter", type=float, default=0.05, help="random walk per frame, nm")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"{a.size}² px at {a.pixel_nm} nm/px, drift ({a.drift / 2:g}, {a.drift:g}) nm/s + {a.jitter:g} nm walk, "
          f"programme {PROGRAMME}")
    print(f"{'method':>15} {'counts':>6} {'drift':>10} {'drift err y/x (nm)':>19} {'(px)':>11} {'pull sd y/x':>11} "
          f"{'ΔV RMS':>7} {'in target':>9} {'ms/frame':>8}")
    for method in a.methods:
        for dose in a.doses:
            for still in (False, True):
                bench_one(method, dose, still, a)


def bench_one(method, dose, still, a):
    from ionscope.holography import bias_series
    from ionscope.simulate import biased_holograms

    v = (0.0, 0.0) if still else (a.drift / 2, a.drift)
    holos, refs, log, truth = biased_holograms(
        programme=PROGRAMME, shape=(a.size, a.size), pixel_nm=a.pixel_nm, dose=dose, method=method,
        specimen_drift_nm_per_s=v, specimen_jitter_nm=0.0 if still else a.jitter, seed=a.seed)
    true = truth["step_v"].values
    sel = np.abs(true) > 0.2
    for mode in (None, "auto") if still else (None, "auto", "given"):
        arg = truth["drift_nm"].values if mode == "given" else mode
        t0 = time.perf_counter()
        ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, method=method,
                         drift=arg)
        ms = (time.perf_counter() - t0) / holos.sizes["time"] * 1e3
        err = (ds["step_v"].values - true)[sel]
        in_target = float(np.mean(np.abs(err) <= np.maximum(0.02 * np.abs(true[sel]), 0.02)))
        derr, dpull, dpx = "—", "—", "—"
        if mode == "auto":
            e = ds["drift_nm"].values - truth["drift_nm"].values      # (the truth is 0 when still)
            r = np.sqrt(np.nanmean(e ** 2, axis=0))
            derr = f"{r[0]:.3f} / {r[1]:.3f}"
            dpx = f"{r[0] / a.pixel_nm:.3f}/{r[1] / a.pixel_nm:.3f}"
            pull = np.nanstd(e / ds["drift_nm_std"].values, axis=0)
            dpull = f"{pull[0]:.2f}/{pull[1]:.2f}"
        label = ("still " if still else "") + str(mode)
        print(f"{method:>15} {dose:>6.0f} {label:>10} {derr:>19} {dpx:>11} {dpull:>11} "
              f"{np.sqrt(np.mean(err ** 2)):>7.3f} {100 * in_target:>8.0f}% {ms:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
