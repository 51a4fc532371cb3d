# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19, two Li-K shapes at 100–400 counts, pinned: many independent Poisson draws of one scene, one JSON
line per draw (appended and flushed, so a stopped run keeps every finished draw), then mean ± s.e. over them.

``python benchmarks/bench_li_shift_pinned.py --doses 100 400 --draws 0 40 --delta true --out pinned.jsonl``
``python benchmarks/bench_li_shift_pinned.py --summary pinned.jsonl``

Scene and measures as ``bench_li_shift_dose.py`` (``bench_li_shift_beyond.scene``: realistic physics,
32×48 × 4 frames, seed 1, computed noise-free at dose 1000; Poisson draws ``rng(1000 + draw)`` scaled to each
dose; references from the draw's own pristine (~1070 px) and charged (~560 px) regions with their jackknife
replicates; ``mlls(chemical_shift="auto")`` with the shift given (``--delta true``, the simulator's) or
measured on the data (``--delta auto``)). Doses are interleaved per draw. Per draw: x bias in the regions'
range (0.6–1.0) and beyond (0.1–0.4), k, areal leak (%/unit t/λ), the pull spread of x on 4×4 blocks, and
the pull of x beyond the regions pooled over all the beyond pixels (σ from the maps' ``_std``).
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
from bench_li_shift_beyond import FIT, measures, scene  # noqa: E402


def pooled_pull(maps, truth, film, k, lo, hi):
    """(x̂ − x)/σ of ΣLi/ΣCo over the film pixels at true x in (lo, hi], σ propagated from the pixels' σ
    (independent pixels, the Li–Co covariance and k's error left out)."""
    w = truth.weights
    kt = truth.attrs["k_li_co"]
    xt = w.sel(component="Li") / w.sel(component="Co") / kt
    m = film.broadcast_like(maps.Li) & (xt > lo) & (xt <= hi)
    li, co = float(maps.Li.where(m).sum()), float(maps.Co.where(m).sum())
    vli, vco = float((maps.Li_std ** 2).where(m).sum()), float((maps.Co_std ** 2).where(m).sum())
    tru = float(w.sel(component="Li").where(m).sum() / w.sel(component="Co").where(m).sum()) / kt
    sx = np.sqrt(vli / co**2 + (li / co**2) ** 2 * vco) / k
    return sx, (li / co / k - tru) / sx


def run(a):
    from ionscope import eels

    warnings.simplefilter("ignore")
    si0, truth, film, pristine, charged = scene(0, 1, (32, 48), 4)
    xp = float(truth.x_li.where(pristine).mean())
    xc = float(truth.x_li.where(charged).mean())
    comp = {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}}
    reg = {"pristine": pristine, "charged": charged}
    td = float(truth.attrs["li_chemical_shift_ev"]) / 0.5 * (xp - xc)
    lam = np.asarray(si0.values, float)
    for draw in range(*a.draws):
        for dose in a.doses:
            mu = lam * dose / 1000
            counts = np.random.default_rng(1000 + draw).poisson(mu).astype(np.float32)
            signs = (1, -1) if a.antithetic else (1,)
            for sign in signs:
                # the antithetic twin: the same noise with the opposite sign (clipped at 0 counts, reached only in
                # the vacuum's empty channels); the pair's mean cancels every odd-order term of the noise
                data = counts if sign > 0 else np.maximum(2 * mu - counts, 0).astype(np.float32)
                one(a, eels, si0.copy(data=data), reg, comp, td, truth, film, pristine, xp, dose, draw, sign)


def one(a, eels, si, reg, comp, td, truth, film, pristine, xp, dose, draw, sign):
    t0 = time.perf_counter()
    refs = eels.references_from_regions(si, reg, comp, fit_range=FIT)
    if a.delta == "true":
        refs.attrs["li_k_shift_ev"] = td
    m = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    r = measures(m, truth, film, pristine, xp)
    r["sigma_out"], r["pull_out"] = pooled_pull(m, truth, film, r["k"], 0.1, 0.4)
    r["sigma_in"], r["pull_in"] = pooled_pull(m, truth, film, r["k"], 0.6, 1.0)
    r.update(dose=dose, draw=draw, sign=sign, antithetic=bool(a.antithetic), delta_mode=a.delta,
             delta=float(m.attrs.get("li_k_shift_ev", np.nan)),
             true_delta=td, s=time.perf_counter() - t0, load=os.getloadavg()[0])
    with open(a.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(json.dumps(r), flush=True)


def summary(paths):
    """Mean ± s.e. over the draws (plain Poisson draws) or over the antithetic pairs' means."""
    rows = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    print("| dose | shift | draws | x bias 0.6–1.0 | x bias 0.1–0.4 | SD per unit (0.1–0.4) | pull 0.1–0.4 "
          "(spread over draws) | areal leak %/t | pull x 4×4 | δ eV | s per fit | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["dose"], r["delta_mode"], bool(r.get("antithetic", False))) for r in rows})
    num = ("bias_in", "bias_out", "leak", "pull", "pull_out", "delta", "s", "load", "k")
    for dose, mode, anti in keys:
        sel = [r for r in rows if r["dose"] == dose and r["delta_mode"] == mode and
               bool(r.get("antithetic", False)) == anti]
        if anti:  # one unit per complete pair: the mean of the draw and its twin
            by = {}
            for r in sel:
                by.setdefault(r["draw"], {})[r["sign"]] = r
            units = [{k: 0.5 * (p[1][k] + p[-1][k]) for k in num} for p in by.values() if len(p) == 2]
        else:
            units = [{k: r[k] for k in num} for r in sel]
        if not units:
            continue
        col = {k: np.array([u[k] for u in units], float) for k in num}
        n = len(units)

        def ms(v):
            return f"{v.mean():+.4f} ± {v.std(ddof=1) / np.sqrt(v.size):.4f}" if v.size > 1 else f"{v.mean():+.4f}"

        sd = col["bias_out"].std(ddof=1) if n > 1 else float("nan")
        pp = np.array([r["pull_out"] for r in sel], float)
        print(f"| {dose:g} | {mode}{' (antithetic pairs)' if anti else ''} | {n} | {ms(col['bias_in'])} | "
              f"{ms(col['bias_out'])} | {sd:.3f} | {pp.std(ddof=1) if pp.size > 1 else float('nan'):.2f} | "
              f"{ms(col['leak'])} | {col['pull'].mean():.2f} | {np.nanmean(col['delta']):.2f} ± "
              f"{np.nanstd(col['delta']):.2f} | {np.median([r['s'] for r in sel]):.0f} | "
              f"{min(r['load'] for r in sel):.1f}–{max(r['load'] for r in sel):.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--doses", type=float, nargs="+", default=[100.0, 400.0])
    p.add_argument("--draws", type=int, nargs=2, default=[0, 10], help="first, last+1")
    p.add_argument("--delta", choices=("true", "auto"), default="true")
    p.add_argument("--out", default="li_shift_pinned.jsonl")
    p.add_argument("--antithetic", action="store_true", help="each draw and its twin with the noise's sign flipped")
    p.add_argument("--summary", nargs="+", default=None, help="summarise these JSON-lines files and stop")
    a = p.parse_args(argv)
    if a.summary:
        summary(a.summary)
    else:
        run(a)


if __name__ == "__main__":
    main()
