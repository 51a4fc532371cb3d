# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19, Li-K shift second pass: x bias against dose with references measured on the noisy regions,
before (the fit as it was) and after the correction for the references' own noise (jackknife, see
:func:`ionscope.eels._li_shift.noise_gram`), same draws, same process.

``python benchmarks/bench_li_shift_dose.py --doses 100 400 1000 --seeds 5 --delta true``

One scene (``bench_li_shift_beyond.scene``: ``operando_eels(physics="realistic")``, 32×48 × 4 frames,
seed 1, computed noise-free at dose 1000); each dose scales the expected counts and draws Poisson counts
with ``--seeds`` seeds. References from the draw's pristine and charged regions
(``references_from_regions``, as a user makes them); ``mlls(chemical_shift="auto")`` with the shift given
(``--delta true``: the simulator's, ``references.attrs["li_k_shift_ev"]``) or measured on the data
(``--delta auto``). "before" strips the jackknife attrs from the references (the previous fit). x bias =
ΣLi/ΣCo/k − truth over the film pixels in the regions' x range (0.6–1.0) and beyond (0.1–0.4), k from the
pristine region; mean ± s.e. over the draws and the paired after − before.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_li_shift_beyond import FIT, measures, scene  # noqa: E402

JK = ("references_jackknife", "region_fingerprints", "jackknife_groups")


def main(argv=None):
    from ionscope import eels

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--doses", type=float, nargs="+", default=[100.0, 400.0, 1000.0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--delta", choices=("true", "auto"), default="true")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    si0, truth, film, pristine, charged = scene(0, 1, (32, 48), 4)
    xp = float(truth.x_li.where(pristine).mean())
    xc = float(truth.x_li.where(charged).mean())
    comp = {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}}
    reg = {"pristine": pristine, "charged": charged}
    td = float(truth.attrs["li_chemical_shift_ev"]) / 0.5 * (xp - xc)
    lam = np.asarray(si0.values, float)
    print(f"# load {os.getloadavg()}, true δ {td:.3f} eV, δ {a.delta}", flush=True)
    print("| dose | draw | route | δ eV | x bias 0.6–1.0 | x bias 0.1–0.4 | k | areal leak %/t | pull | s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    res = {}
    for dose in a.doses:
        for seed in range(a.seeds):
            si = si0.copy(data=np.random.default_rng(1000 + seed).poisson(lam * dose / 1000).astype(np.float32))
            refs = eels.references_from_regions(si, reg, comp, fit_range=FIT)
            if a.delta == "true":
                refs.attrs["li_k_shift_ev"] = td
            for route in ("before", "after"):
                r_ = refs.copy()
                if route == "before":
                    for k in JK:
                        r_.attrs.pop(k, None)
                t0 = time.perf_counter()
                m = eels.mlls(si, r_, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
                dt = time.perf_counter() - t0
                r = measures(m, truth, film, pristine, xp)
                r["delta"] = float(m.attrs.get("li_k_shift_ev", np.nan))
                res.setdefault((dose, route), []).append(r)
                print(f"| {dose:g} | {seed} | {route} | {r['delta']:.2f} | {r['bias_in']:+.4f} | {r['bias_out']:+.4f} | "
                      f"{r['k']:.4f} | {r['leak']:+.1f} | {r['pull']:.2f} | {dt:.0f} | {os.getloadavg()[0]:.1f} |",
                      flush=True)
    print("\n| dose | route | δ eV (true %.2f) | x bias 0.6–1.0 | x bias 0.1–0.4 | areal leak %%/t | pull |" % td)
    print("|---|---|---|---|---|---|---|")

    def ms(v):
        v = np.asarray(v, float)
        return f"{v.mean():+.4f} ± {v.std(ddof=1) / np.sqrt(v.size):.4f}" if v.size > 1 else f"{v.mean():+.4f}"

    for dose in a.doses:
        for route in ("before", "after", "after − before"):
            if route == "after − before":
                b, f = res[(dose, "before")], res[(dose, "after")]
                rows = [{k: fa[k] - ba[k] for k in fa} for ba, fa in zip(b, f)]
            else:
                rows = res[(dose, route)]
            col = {k: [r[k] for r in rows] for k in rows[0]}
            print(f"| {dose:g} | {route} | {np.mean(col['delta']):.2f} | {ms(col['bias_in'])} | {ms(col['bias_out'])} | "
                  f"{ms(col['leak'])} | {np.mean(col['pull']):.2f} |")


if __name__ == "__main__":
    main()
