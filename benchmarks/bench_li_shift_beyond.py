# SPDX-License-Identifier: GPL-3.0-or-later
"""Two Li-K shapes beyond the regions' x: ``mlls(chemical_shift="off")`` (the two measured rows, before)
against the default ``"auto"`` (Li-K shape at each pixel's neighbourhood x, shift measured on the data).

``python benchmarks/bench_li_shift_beyond.py --doses 0 100 400 1000 --seeds 1 2``

Each seed: ``operando_eels(physics="realistic")`` (0.6 eV Li-K shift between x = 1 and 0.5, linear in x),
``--shape`` × ``--frames``; dose 0 = noise-free (dose 1000). Regions: pristine = the film of frame 0 with
x > 0.9 (x ≈ 0.96), charged = the film of the later frames with 0.55 < x < 0.75 (x ≈ 0.65); k from the
pristine region (``li_fraction``). x bias = ΣLi/ΣCo/k − the truth's, over the film pixels whose true x
lies in the regions' range (0.6–1.0) and outside it (0.1–0.4); areal leak = slope of the relative error of
Li/zero_loss against t/λ (% per unit); pull = spread of (x − truth)/σ on 4×4 blocks of the film (σ from
the maps' ``_std``, Li–Co covariance and k's error left out). Both routes in the same process, alternated,
with the load average.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

FIT = (45.0, 85.0)


def scene(dose, seed, shape, frames):
    import xarray as xr

    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=shape, n_frames=frames, physics="realistic", dose=float(dose or 1000.0),
                                 noise=bool(dose), seed=seed)
    x = truth.x_li
    film = truth.co > 0.5
    pristine = xr.zeros_like(x, dtype=bool)
    pristine[0] = (x.isel(time=0) > 0.9) & film
    charged = (x > 0.55) & (x < 0.75) & film
    charged[0] = False
    return si, truth, film, pristine, charged


def measures(maps, truth, film, pristine, xp):
    from ionscope import eels

    k = float(eels.li_fraction(maps, calibration={"region": pristine, "x": xp}).attrs["k"])
    w = truth.weights
    kt = truth.attrs["k_li_co"]
    xt = w.sel(component="Li") / w.sel(component="Co") / kt
    fb = film.broadcast_like(maps.Li)
    out = {"k": k}
    for name, (lo, hi) in {"in": (0.6, 1.0), "out": (0.1, 0.4)}.items():
        m = fb & (xt > lo) & (xt <= hi)
        est = float(maps.Li.where(m).sum() / maps.Co.where(m).sum()) / k
        tru = float(w.sel(component="Li").where(m).sum() / w.sel(component="Co").where(m).sum()) / kt
        out[f"bias_{name}"] = est - tru
    # areal leak
    mm = fb.values.ravel()
    a = (maps.Li / maps.zero_loss).values.ravel()[mm]
    at = (w.sel(component="Li") / truth.zero_loss).values.ravel()[mm]
    t = truth.thickness.broadcast_like(maps.Li).values.ravel()[mm]
    ok = np.isfinite(a) & np.isfinite(at)
    a, at, t = a[ok], at[ok], t[ok]
    at = at * a.sum() / at.sum()
    tc = t - t.mean()
    out["leak"] = 100 * float((tc * (a - at) / at.mean()).sum() / (tc**2).sum())
    # pull of x on 4×4 blocks
    c = maps[["Li", "Co"]].where(fb).coarsen(y=4, x=4, boundary="trim").sum()
    v = (maps[["Li_std", "Co_std"]] ** 2).where(fb).coarsen(y=4, x=4, boundary="trim").sum()
    wt = w.where(fb).coarsen(y=4, x=4, boundary="trim").sum()
    xb = (c.Li / c.Co).values.ravel() / k
    sx = np.sqrt(v.Li_std / c.Co**2 + (c.Li / c.Co**2) ** 2 * v.Co_std).values.ravel() / k
    xtb = (wt.sel(component="Li") / wt.sel(component="Co")).values.ravel() / kt
    full = (fb.coarsen(y=4, x=4, boundary="trim").sum() == 16).values.ravel()
    ok = np.isfinite(xb) & np.isfinite(sx) & (sx > 0) & full
    out["pull"] = float(np.std((xb[ok] - xtb[ok]) / sx[ok]))
    return out


def main() -> None:
    from ionscope import eels

    ap = argparse.ArgumentParser()
    ap.add_argument("--doses", type=float, nargs="+", default=[0.0, 100.0, 400.0, 1000.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--shape", type=int, nargs=2, default=[32, 48])
    ap.add_argument("--frames", type=int, default=4)
    a = ap.parse_args()
    print(f"# load {os.getloadavg()}, shape {a.shape} × {a.frames} frames")
    print("| dose | seed | route | δ (eV) | x bias in regions' range | x bias at x 0.1–0.4 | areal leak %/t | "
          "pull x (4×4) | time s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dose in a.doses:
        for seed in a.seeds:
            si, truth, film, pristine, charged = scene(dose, seed, tuple(a.shape), a.frames)
            xp = float(truth.x_li.where(pristine).mean())
            xc = float(truth.x_li.where(charged).mean())
            refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged},
                                                {"pristine": {"Li": xp, "Co": 1.0},
                                                 "charged": {"Li": xc, "Co": 1.0}}, fit_range=FIT)
            true_delta = float(truth.attrs["li_chemical_shift_ev"]) / 0.5 * (xp - xc)
            for route in ("off", "auto"):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    maps = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False,
                                     chemical_shift=route)
                dt = time.perf_counter() - t0
                r = measures(maps, truth, film, pristine, xp)
                d = maps.attrs.get("li_k_shift_ev")
                dtxt = "—" if d is None else f"{d:.2f} (true {true_delta:.2f})"
                print(f"| {dose:g} | {seed} | {route} | {dtxt} | {r['bias_in']:+.4f} | {r['bias_out']:+.4f} | "
                      f"{r['leak']:+.2f} | {r['pull']:.2f} | {dt:.1f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
