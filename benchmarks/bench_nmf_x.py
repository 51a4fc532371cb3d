# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark (issue 19, third pass): the NMF route to x — correlation with truth, bias, σ — per variant.

Data: ``simulate.operando_eels(physics="realistic", dose=1000)`` (zero-loss
peak, plural scattering at t/λ 0.3–1.2, 0.6 eV Li-K chemical shift, de-scan,
Poisson noise), ``--shape`` × ``--frames`` per seed. Metrics as in
``bench_eels_routes.py``: k from the pristine region (frame 0, film x > 0.9);
**x bias** from the film sums of each frame (mean over frames); **RMS** and
**r(x)** on 4×4-pixel blocks of the film, r(x) also per pixel; **pull** =
std((Li − Li_true)/σ) and the same for Co per pixel, and of x on 4×4 blocks
(σ propagated from Li, Co and their covariance; the mean offset, i.e. the bias
of k, removed); **leak** = slope of the
areal Li and Co maps' relative errors against t/λ (% per unit t/λ), and the
slope of x's error on 4×4 blocks against their t/λ (x per unit t/λ). "pooled" puts every
block (pixel) of all seeds into one correlation / one pull.

Variants: ``co_pooling="none"`` (each spectrum on its own, the second pass),
``"time"`` (Co per unit t/λ pooled over the frames, the third pass),
``"time"`` with ``projection="full-covariance"`` (the fourth pass: the
deconvolved channels' correlations in the projection's weight) and, for
analysis only, Li also conditioned on the pooled Co (not offered: its σ is not
honest, see ``_pool_co_over_time``).
No peer: eXSpy/HyperSpy have no quantitative NMF route.

Fifth pass (``--fifth``): one full-covariance run per seed, from which the
fourth pass's default (Co pooled) and ``condition_li=True`` (Li conditioned on
the pooled Co) both follow (``nmf_li`` applies exactly ``_pool_co_over_time``),
plus two ceilings per seed: the **noise ceiling** ``r_max = √(var_true /
(var_true + mean σ²))`` of x on 4×4 blocks given the route's own σ, and the
**Cramér–Rao ceiling**: the same with σ of Li replaced by its Cramér–Rao bound
for the same 3-spectrum model fitted to the *raw* Poisson counts (every channel;
``∂J/∂β_k = J ⊗ h_k / I0`` for Fourier-log plural scattering, the noise-free
expected counts of the same scene), Co's σ as pooled. No unbiased estimator
with three free amplitudes per spectrum can do better than that ceiling.

Run::

    python benchmarks/bench_nmf_x.py --seeds 1 2 3            # ~2 min on a quiet 2-core machine
    python benchmarks/bench_nmf_x.py --seeds 1 2 3 --denoise  # + the denoised movies (a separate route)
    python benchmarks/bench_nmf_x.py --seeds 31 32 --shape 24 32 --specimen-drift 1 --thickness-range 0.2 1.6
    python benchmarks/bench_nmf_x.py --fifth --seeds 61 62 63  # fifth pass: ~30 s per seed at load 7
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


DENOISED = "time + sparse-coding denoised Li, Co movies (separate route, no σ)"


def _metrics(maps, truth):
    import bench_eels_routes as B
    import ionscope.eels as ie

    film, pristine, _, xp, _ = B._regions(truth)
    k = ie.li_fraction(maps, calibration={"region": pristine, "x": xp}).attrs["k"]
    c = B._blocks(maps[["Li", "Co"]], film)
    w = B._blocks(truth.weights, film)
    kt = truth.attrs["k_li_co"]
    xb = (c.Li / c.Co).values.ravel() / k
    xtb = (w.sel(component="Li") / w.sel(component="Co")).values.ravel() / kt
    ok = np.isfinite(xb) & np.isfinite(xtb)
    xpix = (maps.Li / maps.Co.where(maps.Co > 0)).where(film).values.ravel() / k
    xtp = truth.x_li.where(film).transpose(*maps.Li.dims).values.ravel()
    okp = np.isfinite(xpix) & np.isfinite(xtp) & (np.abs(xpix) < 10)
    xf = (B._film_sum(maps.Li, film) / B._film_sum(maps.Co, film)).values / k
    wf = B._film_sum(truth.weights, film)
    xtf = (wf.sel(component="Li") / wf.sel(component="Co")).values / kt
    rest = B.amount_route(maps, truth, film, pristine, xp, truth_units=True)
    # x of blocks with its propagated σ, the Li–Co covariance included
    v = B._blocks(maps[["Li_std", "Co_std"]] ** 2, film)
    cv = B._blocks(maps["Li_Co_cov"], film).values.ravel()
    L, C = c.Li.values.ravel(), c.Co.values.ravel()
    sx = np.sqrt(v.Li_std.values.ravel() / C**2 + L**2 * v.Co_std.values.ravel() / C**4 - 2 * L * cv / C**3) / k
    okx = ok & np.isfinite(sx) & (sx > 0)
    pull_x = (xb[okx] - xtb[okx]) / sx[okx]
    # leaks per unit t/λ: Co areal map (relative, after one overall scale) and x of blocks (absolute)
    m = film.broadcast_like(maps.Co).transpose(*maps.Co.dims).values.ravel()
    t_pix = truth.thickness.transpose(*maps.Co.dims).values.ravel()[m]
    a_co = (maps.Co / maps.zero_loss).values.ravel()[m]
    at_co = (truth.weights.sel(component="Co") / truth.zero_loss).transpose(*maps.Co.dims).values.ravel()[m]
    at_co = at_co * np.nansum(a_co) / np.nansum(at_co)
    leak_co = B._slope((a_co - at_co) / np.nanmean(at_co), t_pix)[0]
    tb = B._blocks(truth.thickness.broadcast_like(maps.Co), film).transpose(*c.Li.dims).values.ravel() / 16.0
    leak_x = B._slope(xb[ok] - xtb[ok], tb[ok])[0] / 100.0
    pulls = {n: ((maps[n] - truth.weights.sel(component=n)) / maps[f"{n}_std"]).values.ravel() for n in ("Li", "Co")}
    return {"xb": xb[ok], "xtb": xtb[ok], "xp": xpix[okp], "xtp": xtp[okp], "bias": float(np.mean(xf - xtf)),
            "pull_li": pulls["Li"], "pull_co": pulls["Co"], "pull_x": pull_x - np.mean(pull_x),
            "leak": rest["leak"], "leak_se": rest["leak_se"], "leak_co": leak_co, "leak_x": leak_x}


def _x_ceilings(maps, truth, si_kwargs, k, *, conditioned):
    """(noise ceiling, Cramér–Rao ceiling) of r(x) on the film's 4×4 blocks (see the module docstring)."""
    import bench_eels_routes as B
    from ionscope.simulate import operando_eels

    film = B._regions(truth)[0]
    si0, _, _ = operando_eels(noise=False, **si_kwargs)
    dims = maps.Li.dims
    e = si0.energy.values.astype(float)
    H, ef = maps.spectra.values, maps.energy_fit.values
    L2 = np.stack([maps.component_li.values, maps.component_co.values])
    j0 = int(round(ef[0] / (e[1] - e[0])))
    h = np.zeros((H.shape[0], j0 + H.shape[1]))
    h[:, j0:] = H
    J = si0.transpose(*dims, "energy").values.reshape(-1, e.size).astype(float)
    i0 = maps.zero_loss.values.ravel()
    n_fft = 1 << int(np.ceil(np.log2(e.size + h.shape[1])))
    fh = np.fft.rfft(h, n_fft)
    crb = np.empty((J.shape[0], 2, 2))
    for a in range(0, J.shape[0], 512):
        sl = slice(a, a + 512)
        d = np.fft.irfft(np.fft.rfft(J[sl], n_fft)[:, None] * fh[None], n_fft)[..., :e.size] / i0[sl, None, None]
        F = np.einsum("pkn,pln,pn->pkl", d, d, np.where(J[sl] > 0, 1.0 / np.maximum(J[sl], 1e-300), 0.0))
        crb[sl] = np.einsum("qk,pkl,rl->pqr", L2, np.linalg.inv(F), L2)
    v_hat = maps.Co_std.values.ravel() ** 2  # the pooled Co's variance, as the route
    b = crb[:, 0, 1] / crb[:, 1, 1]
    if conditioned:  # Li − b·(Co − Ĉ): var(Li) − b·cov + b²·var(Ĉ), cov(Li, Ĉ) = b·var(Ĉ)
        v_li, c_lc = crb[:, 0, 0] - b * crb[:, 0, 1] + b**2 * v_hat, b * v_hat
    else:
        v_li, c_lc = crb[:, 0, 0], crb[:, 0, 1] * v_hat / crb[:, 1, 1]
    fb = film.broadcast_like(maps.Li).transpose(*dims)
    w = truth.weights.where(fb).coarsen(y=4, x=4, boundary="trim").sum()
    s = maps[["Li", "Co"]].where(fb).coarsen(y=4, x=4, boundary="trim").sum()
    L, C = s.Li.values.ravel(), s.Co.values.ravel()
    xt = (w.sel(component="Li") / w.sel(component="Co")).values.ravel() / truth.attrs["k_li_co"]
    out = []
    for vli, clc in ((maps.Li_std.values.ravel() ** 2, maps.Li_Co_cov.values.ravel()), (v_li, c_lc)):
        vv = maps[["Li"]].copy()
        for name, val in (("vli", vli), ("vco", v_hat), ("clc", clc)):
            vv[name] = (dims, val.reshape(maps.Li.shape))
        v = vv[["vli", "vco", "clc"]].where(fb).coarsen(y=4, x=4, boundary="trim").sum()
        with np.errstate(all="ignore"):
            sx2 = (v.vli.values.ravel() / C**2 + L**2 * v.vco.values.ravel() / C**4
                   - 2 * L * v.clc.values.ravel() / C**3) / k**2
        ok = np.isfinite(xt) & np.isfinite(sx2) & (C > 0)
        out.append(float(np.sqrt(np.var(xt[ok]) / (np.var(xt[ok]) + np.mean(sx2[ok])))))
    return tuple(out)


def _row(name, seed, parts):
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("xb", "xtb", "xp", "xtp", "pull_li", "pull_co",
                                                                     "pull_x")}
    d = cat["xb"] - cat["xtb"]
    return {"variant": name, "seed": seed, "bias": float(np.mean([p["bias"] for p in parts])),
            "rms": float(np.sqrt(np.mean(d**2))), "r4": float(np.corrcoef(cat["xb"], cat["xtb"])[0, 1]),
            "rpix": float(np.corrcoef(cat["xp"], cat["xtp"])[0, 1]),
            "pull_li": float(np.nanstd(cat["pull_li"])), "pull_co": float(np.nanstd(cat["pull_co"])),
            "pull_x": float(np.nanstd(cat["pull_x"])),
            "leak": float(np.mean([p["leak"] for p in parts])), "blocks": int(cat["xb"].size),
            "leak_co": float(np.mean([p["leak_co"] for p in parts])),
            "leak_x": float(np.mean([p["leak_x"] for p in parts]))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--shape", type=int, nargs=2, default=[48, 64])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--dose", type=float, default=1000.0)
    p.add_argument("--energy-step", type=float, default=0.1, help="eV per channel (the demo: 0.2)")
    p.add_argument("--specimen-drift", type=float, default=0.0, help="largest specimen drift (px), left "
                   "unregistered (an imperfect input)")
    p.add_argument("--thickness-range", type=float, nargs=2, default=[0.3, 1.2], help="t/λ of the thinnest "
                   "and thickest pixels")
    p.add_argument("--fifth", action="store_true", help="fifth pass: only the full-covariance route, Co pooled "
                   "(fourth pass) and Li conditioned on it (fifth pass), with the noise and Cramér–Rao ceilings")
    p.add_argument("--denoise", action="store_true", help="also the default's Li and Co movies denoised by "
                   "denoise.sparse_coding (a separate route, no σ)")
    args = p.parse_args(argv)
    import ionscope.eels as ie
    from ionscope.eels._nmf_li import _pool_co_over_time
    from ionscope.simulate import operando_eels

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    if args.fifth:
        return _fifth(args)
    variants = ("none (second pass)", "time (third pass: Co pooled, diagonal)",
                "time + full covariance (fourth pass)", "time + Li conditioned on Co (analysis)")
    variants += (DENOISED,) if args.denoise else ()
    parts = {v: [] for v in variants}
    rows = []
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, shape {args.shape} × {args.frames} "
          f"frames, dose {args.dose:g} counts per {args.energy_step:g} eV channel, specimen drift "
          f"{args.specimen_drift:g} px (unregistered), t/λ {args.thickness_range[0]:g}–{args.thickness_range[1]:g}")
    for seed in args.seeds:
        si, truth, _ = operando_eels(shape=tuple(args.shape), n_frames=args.frames, physics="realistic",
                                     dose=args.dose, seed=seed, energy_step=args.energy_step,
                                     specimen_drift_px=args.specimen_drift,
                                     thickness_range=tuple(args.thickness_range))
        t0 = time.perf_counter()
        m = ie.nmf_li(si, truth.references, co_pooling="none", projection="diagonal")
        t1 = time.perf_counter()
        d3 = ie.nmf_li(si, truth.references, projection="diagonal")
        t2 = time.perf_counter()
        d = ie.nmf_li(si, truth.references, projection="full-covariance")
        t3 = time.perf_counter()
        load = os.getloadavg()
        maps = {"none (second pass)": m, "time (third pass: Co pooled, diagonal)": d3,
                "time + full covariance (fourth pass)": d,
                "time + Li conditioned on Co (analysis)": _pool_co_over_time(m, condition=True)}
        if args.denoise:
            # a separate route: the movies' own sparse-coding denoiser on the default's Li and Co maps
            # (per-pixel noise maps = their σ); the denoised maps carry no σ, so no pull is reported
            from ionscope.denoise import sparse_coding

            dn = d.copy()
            for n in ("Li", "Co"):
                dn[n] = sparse_coding(d[n], sigma=d[f"{n}_std"]).transpose(*d[n].dims)
            maps[DENOISED] = dn
        for v in variants:
            mt = _metrics(maps[v], truth)
            parts[v].append(mt)
            rows.append(_row(v, seed, [mt]))
        spread = float(np.std(parts[variants[0]][-1]["xtb"]))
        print(f"# seed {seed}: true x spread (std over 4×4 film blocks) {spread:.3f}; nmf_li none {t1 - t0:.1f} s, diagonal {t2 - t1:.1f} s, full covariance {t3 - t2:.1f} s, load {load[0]:.1f} "
              f"{load[1]:.1f} {load[2]:.1f}; co_time_chi2 {d.attrs.get('co_time_chi2', np.nan):.3f}", flush=True)
    return _table(rows, parts, variants)


def _table(rows, parts, variants):
    """The per-seed rows plus each variant's pooled row, printed as a Markdown table; returns all rows."""
    for v in variants:
        rows.append(_row(v, "pooled", parts[v]))
    print("| variant | seed | x bias | RMS x 4×4 | r(x) 4×4 | r(x) per pixel | Li pull | Co pull | x pull 4×4 "
          "| leak Li / Co %/t/λ | x leak /t/λ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pulls = ("— | — | —" if r["variant"] == DENOISED else
                 f"{r['pull_li']:.2f} | {r['pull_co']:.2f} | {r['pull_x']:.2f}")
        print(f"| {r['variant']} | {r['seed']} | {r['bias']:+.3f} | {r['rms']:.3f} | {r['r4']:.3f} | {r['rpix']:.3f} "
              f"| {pulls} | {r['leak']:+.1f} / {r['leak_co']:+.1f} | {r['leak_x']:+.3f} |")
    return rows


def _fifth(args):
    import bench_eels_routes as B
    import ionscope.eels as ie
    from ionscope.eels._nmf_li import _pool_co_over_time
    from ionscope.simulate import operando_eels

    variants = ("time + full covariance (fourth pass)", "time + full covariance + Li conditioned on Co (fifth pass)")
    parts = {v: [] for v in variants}
    rows = []
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, fifth pass, shape {args.shape} × "
          f"{args.frames} frames, dose {args.dose:g} counts per {args.energy_step:g} eV channel")
    for seed in args.seeds:
        kw = dict(shape=tuple(args.shape), n_frames=args.frames, physics="realistic", dose=args.dose, seed=seed,
                  energy_step=args.energy_step, specimen_drift_px=args.specimen_drift,
                  thickness_range=tuple(args.thickness_range))
        si, truth, _ = operando_eels(**kw)
        t0 = time.perf_counter()
        m = ie.nmf_li(si, truth.references, co_pooling="none")
        t1 = time.perf_counter()
        load = os.getloadavg()
        maps = {variants[0]: _pool_co_over_time(m), variants[1]: _pool_co_over_time(m, condition=True)}
        film, pristine, _, xp, _ = B._regions(truth)
        ceil = []
        for v in variants:
            mt = _metrics(maps[v], truth)
            parts[v].append(mt)
            rows.append(_row(v, seed, [mt]))
            k = ie.li_fraction(maps[v], calibration={"region": pristine, "x": xp}).attrs["k"]
            ceil.append(_x_ceilings(maps[v], truth, kw, k, conditioned=v == variants[1]))
        spread = float(np.std(parts[variants[0]][-1]["xtb"]))
        print(f"# seed {seed}: true x spread {spread:.3f}; nmf_li {t1 - t0:.1f} s at load {load[0]:.1f} {load[1]:.1f} "
              f"{load[2]:.1f}; r ceilings (noise / Cramér–Rao): Co pooled {ceil[0][0]:.4f} / {ceil[0][1]:.4f}, "
              f"Li conditioned {ceil[1][0]:.4f} / {ceil[1][1]:.4f}", flush=True)
    return _table(rows, parts, variants)


if __name__ == "__main__":
    main()
