# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19, error bars with the references' noise: the pull of pooled x over independent draws, with the
maps' pixel-noise σ (``<name>_std``) and with the references' σ added (``<name>_std_references``).

``python benchmarks/bench_refs_sigma.py --doses 400 100 --draws 0 12 --out refs_sigma.jsonl``
``python benchmarks/bench_refs_sigma.py --summary refs_sigma.jsonl``

Scene as ``bench_li_shift_pinned.py`` (``bench_li_shift_beyond.scene``: realistic physics, 32×48 × 4 frames,
seed 1, pristine ~1070 px and charged ~560 px regions, references from the draw's own regions with their
jackknife replicates, the true shift given), Poisson draws ``rng(2000 + draw)``. Per draw and x range
(beyond the regions 0.1–0.4, inside 0.6–1.0): the pooled x = ΣLi/ΣCo/k (k from the pristine region), its
σ from the pixels' noise (independent pixels) and from the references (the Co-weighted mean of the pixels'
``ratio_std_references``: one realisation common to every pixel), and the time the references' σ took inside the fit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_li_shift_beyond import FIT, scene  # noqa: E402


def pooled(maps, truth, film, k, lo, hi):
    """(error, σ pixels, σ references, median ρ, median per-pixel σ_ref of x) of the pooled x over the film
    pixels at true x in (lo, hi]."""
    w = truth.weights
    kt = truth.attrs["k_li_co"]
    xt = w.sel(component="Li") / w.sel(component="Co") / kt
    m = film.broadcast_like(maps.Li) & (xt > lo) & (xt <= hi)
    li, co = float(maps.Li.where(m).sum()), float(maps.Co.where(m).sum())
    tru = float(w.sel(component="Li").where(m).sum() / w.sel(component="Co").where(m).sum()) / kt
    vli, vco = float((maps.Li_std ** 2).where(m).sum()), float((maps.Co_std ** 2).where(m).sum())
    s_pix = np.sqrt(vli / co**2 + (li / co**2) ** 2 * vco) / k
    # the references' error of x is common to the pixels (one realisation): the pooled x's is the Co-weighted
    # mean of the pixels' (not divided by √N)
    px = maps.ratio_std_references / k
    s_ref = float((px * maps.Co).where(m).sum() / maps.Co.where(m).sum())
    return (li / co / k - tru, s_pix, s_ref, float(maps.references_rho.where(m).median()),
            float(px.where(m).median()))


def summary(paths):
    """Per dose and x range: bias, spread over draws, the pull's spread with each σ."""
    rows = []
    for path in paths:
        with open(path) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    print("| dose | x range | draws | bias ± s.e. | SD over draws | pull, pixel σ | pull, total σ | rms σ_ref | "
          "median ρ | s per fit (of which σ_ref) | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dose in sorted({r["dose"] for r in rows}):
        sel = [r for r in rows if r["dose"] == dose]
        for rn, label in (("out", "0.1–0.4 (beyond)"), ("in", "0.6–1.0 (regions')")):
            err = np.array([r[f"err_{rn}"] for r in sel])
            sp = np.array([r[f"s_pix_{rn}"] for r in sel])
            sr = np.array([r[f"s_ref_{rn}"] for r in sel])
            n = err.size
            load = [f"{f([r['load'] for r in sel]):.1f}" for f in (min, max)]
            print(f"| {dose:g} | {label} | {n} | {err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(n):.4f} | "
                  f"{err.std(ddof=1):.4f} | {np.std(err / sp, ddof=1):.2f} | "
                  f"{np.std(err / np.sqrt(sp**2 + sr**2), ddof=1):.2f} | {np.sqrt(np.mean(sr**2)):.4f} | "
                  f"{np.median([r[f'rho_{rn}'] for r in sel]):.2f} | {np.median([r['s'] for r in sel]):.0f} "
                  f"({np.median([r['s_sigma'] for r in sel]):.1f}) | {'–'.join(load)} |")


def run(a):
    from ionscope import eels
    from ionscope.eels import _refs_sigma

    warnings.simplefilter("ignore")
    spent = [0.0]
    for name in ("pixel_columns", "information_ratio"):
        f = getattr(_refs_sigma, name)

        def timed(*args, _f=f, **kw):
            t = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                spent[0] += time.perf_counter() - t
        setattr(_refs_sigma, name, timed)
    si0, truth, film, pristine, charged = scene(0, 1, (32, 48), 4)
    reg = {"pristine": pristine, "charged": charged}
    x_of = {name: float(truth.x_li.where(mask).mean()) for name, mask in reg.items()}
    xp = x_of["pristine"]
    comp = {name: {"Li": x, "Co": 1.0} for name, x in x_of.items()}
    # the simulator's shift (per 0.5 in x) between the two regions, given to the fit
    td = float(truth.attrs["li_chemical_shift_ev"]) * (xp - x_of["charged"]) / 0.5
    lam = np.asarray(si0.values, float)
    for draw in range(*a.draws):
        for dose in a.doses:
            counts = np.random.default_rng(2000 + draw).poisson(lam * dose / 1000).astype(np.float32)
            si = si0.copy(data=counts)
            refs = eels.references_from_regions(si, reg, comp, fit_range=FIT)
            refs.attrs["li_k_shift_ev"] = td
            spent[0] = 0.0
            t0 = time.perf_counter()
            m = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
            s = time.perf_counter() - t0
            k = float(eels.li_fraction(m, calibration={"region": pristine, "x": xp}).attrs["k"])
            r = {"dose": dose, "draw": draw, "k": k, "s": s, "s_sigma": spent[0], "load": os.getloadavg()[0]}
            for rng_name, (lo, hi) in {"out": (0.1, 0.4), "in": (0.6, 1.0)}.items():
                err, sp, sr, rho, px = pooled(m, truth, film, k, lo, hi)
                r.update({f"err_{rng_name}": err, f"s_pix_{rng_name}": sp, f"s_ref_{rng_name}": sr,
                          f"rho_{rng_name}": rho, f"x_std_ref_pixel_{rng_name}": px})
            line = json.dumps(r)
            with open(a.out, "a") as out:  # one line per fit, flushed: a stopped run keeps its draws
                out.write(line + "\n")
            print(line, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", nargs="+", metavar="JSONL", help="only summarise these files")
    p.add_argument("--out", default="refs_sigma.jsonl", help="JSON lines, appended")
    p.add_argument("--draws", type=int, nargs=2, default=[0, 10], metavar=("FIRST", "STOP"))
    p.add_argument("--doses", type=float, nargs="+", default=[400.0, 100.0], help="counts per 0.1 eV channel")
    a = p.parse_args(argv)
    return summary(a.summary) if a.summary else run(a)


if __name__ == "__main__":
    main()
