# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19: the bias of the Li routes against dose on realistic spectra, and where it comes from.

``python benchmarks/bench_dose_bias.py --doses 2000 1000 400 100 --seeds 12``

One scene, ``operando_eels(physics="realistic", shape=(32, 48), n_frames=2, energy_step=0.1, seed=19)``,
computed noise-free at dose 1000; each dose scales its expected counts and draws Poisson counts with
``--seeds`` independent seeds (same scene, same truth scaled by dose/1000). Over the film (Co > 0.5,
3072 spectra) per draw:

- MLLS one shape (``truth.references``, ``plural_scattering="fourier-log"``, fit 45–85 eV,
  ``nonnegative=False``): ΣLi and ΣCo against the truth's ``weights``;
- SA/SB through plural scattering (``references=truth.references``, ``method="exact"``): ΣSA, ΣSB and
  Li/Co from the film's sums (no ratio-of-noisy-pixels bias) against the truth's ΣLi/ΣCo;
- the deconvolution alone (:func:`ionscope.eels._lowloss.fourier_log_block`): ΣI0, mean t/λ and the
  summed single-scattering counts in 45–55 (pre-edge), 55–65 (Li-K) and 65–85 eV (Co-M).

Each noisy number is given as its deviation from the noise-free run (the noise-induced bias), mean ±
s.e. over the seeds, and "× dose" (constant for a 1/dose bias). ``before`` = the GLS weights from the
propagated variance of the observed counts, ``after`` = the same variance smoothed over 3 eV
(:func:`ionscope.eels._ssdfit.weight_variance`); both on the same draws, alternated, in one process.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

FIT = (45.0, 85.0)


def measure(si, truth, film, scale):
    import ionscope.eels as ie
    from ionscope.eels import _lowloss

    refs = truth.references
    W = truth.weights
    lt = float(W.sel(component="Li").values[film].sum()) * scale
    ct = float(W.sel(component="Co").values[film].sum()) * scale
    m = ie.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    s = ie.sasb(si, references=refs, method="exact", plural_scattering="fourier-log")
    a = s.attrs
    sa, sb = float(s.sa.values[film].sum()), float(s.sb.values[film].sum())
    R = sa / sb
    lico = (R * a["sb_co"] - a["sa_co"]) / (a["sa_li"] - R * a["sb_li"])
    e = si.energy.values
    J = np.asarray(si.values, float).reshape(-1, e.size)[film.ravel()]
    ch = np.flatnonzero((e >= 45.0) & (e < 85.0))
    r = _lowloss.fourier_log_block(J, e, out_energy_index=ch, resolution_fwhm=float(a["resolution_fwhm_ev"]),
                                   variance=False)
    ssd = r["ssd"].sum(axis=0) / scale
    ec = e[ch]
    return {"MLLS Li": float(m.Li.values[film].sum()) / lt, "MLLS Co": float(m.Co.values[film].sum()) / ct,
            "MLLS Li/Co": float(m.Li.values[film].sum() / m.Co.values[film].sum()) / (lt / ct),
            "SA/SB ΣSA": sa / scale, "SA/SB ΣSB": sb / scale, "SA/SB Li/Co": lico / (lt / ct),
            "SSD 45–55": float(ssd[ec < 55].sum()), "SSD 55–65 (Li-K)": float(ssd[(ec >= 55) & (ec < 65)].sum()),
            "SSD 65–85": float(ssd[ec >= 65].sum()), "ΣI0": float(r["i0"].sum()) / scale,
            "mean t/λ": float(r["thickness"].mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--doses", type=float, nargs="+", default=[2000.0, 1000.0, 400.0, 100.0])
    p.add_argument("--seeds", type=int, default=12)
    p.add_argument("--shape", type=int, nargs=2, default=[32, 48])
    p.add_argument("--frames", type=int, default=2)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import ionscope.simulate as sim
    from ionscope.eels import _ssdfit

    smooth = _ssdfit.WEIGHT_SMOOTH_EV
    si0, truth, _ = sim.operando_eels(physics="realistic", shape=tuple(args.shape), n_frames=args.frames,
                                      energy_step=0.1, dose=1000.0, noise=False, seed=19)
    film = (truth.co > 0.5).broadcast_like(truth.x_li).values
    lam = np.asarray(si0.values, float)
    arms = {"before": 0.0, "after": smooth}
    ref = {}
    for arm, sm in arms.items():
        _ssdfit.WEIGHT_SMOOTH_EV = sm
        ref[arm] = measure(si0, truth, film, 1.0)
    print(f"# {film.sum()} film spectra × {args.seeds} seeds per dose; load {os.getloadavg()}")
    print("noise-free, relative to truth (MLLS, SA/SB Li/Co) — before / after:")
    for k in ref["before"]:
        if "MLLS" in k or "Li/Co" in k:
            print(f"  {k}: {100 * (ref['before'][k] - 1):+.3f} % / {100 * (ref['after'][k] - 1):+.3f} %")
    for dose in args.doses:
        sc = dose / 1000.0
        rows = {arm: [] for arm in arms}
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            si = si0.copy(data=np.random.default_rng(1000 + seed).poisson(lam * sc).astype(np.float32))
            for arm, sm in arms.items():
                _ssdfit.WEIGHT_SMOOTH_EV = sm
                rows[arm].append(measure(si, truth, film, sc))
        print(f"\ndose {dose:g} counts per 0.1 eV at 55 eV ({time.perf_counter() - t0:.0f} s, load "
              f"{os.getloadavg()[0]:.1f}); noise-induced bias (vs noise-free) in %, mean ± s.e., × dose; "
              "and the total bias against truth")
        print("| quantity | before | ×dose | after | ×dose | after vs truth |")
        print("|---|---|---|---|---|---|")
        for k in ref["before"]:
            cells = []
            for arm in arms:
                v = np.array([r[k] for r in rows[arm]])
                d = (v - ref[arm][k]) if k == "mean t/λ" else 100 * (v / ref[arm][k] - 1)
                nd = 5 if k == "mean t/λ" else 3
                cells += [f"{d.mean():+.{nd}f} ± {d.std(ddof=1) / np.sqrt(d.size):.{nd}f}",
                          f"{d.mean() * dose:+.{2 if k == 'mean t/λ' else 0}f}"]
            v = np.array([r[k] for r in rows["after"]])
            tot = f"{100 * (v.mean() - 1):+.2f} ± {100 * v.std(ddof=1) / np.sqrt(v.size):.2f}" if (
                "MLLS" in k or "Li/Co" in k) else "—"
            unit = " (abs.)" if k == "mean t/λ" else ""
            print(f"| {k}{unit} | " + " | ".join(cells) + f" | {tot} |")
    _ssdfit.WEIGHT_SMOOTH_EV = smooth


if __name__ == "__main__":
    main()
