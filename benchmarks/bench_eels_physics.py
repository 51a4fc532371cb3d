# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: Li maps on realistic spectra (zero-loss peak, plural scattering) — ionscope routes vs eXSpy.

Data: ``ionscope.simulate.operando_eels(physics="realistic")`` — spectra from
−5 eV with an asymmetric 0.8 eV zero-loss peak, a valence loss with its plasmon
near 23 eV, exact Poisson plural scattering at t/λ 0.3–1.2 (thinning 5 % over
the series), Li-K and Co-M2,3 fine structure, a 0.6 eV Li-K chemical shift
between x = 1 and x = 0.5, 0.3 eV de-scan, Poisson noise; 1024 channels,
−5…97.3 eV. Truth: ``weights`` (Li, Co in single-scattering counts),
``thickness`` (t/λ per frame and pixel), ``x_li`` and ``k_li_co``.

Routes (fit window 45–85 eV, the exact single-scattering references
``truth.references``; unconstrained weights so that means are unbiased):

* ``raw MLLS``: ``mlls(plural_scattering=None)`` (per-pixel power law, Poisson ML);
* ``fourier-log``: ``mlls(plural_scattering="fourier-log")``;
* ``convolve``: ``mlls(plural_scattering="convolve")``;
* ``SA/SB after deconvolution``: ``sasb(deconvolve(si).ssd, method="exact")``
  calibrated on the references blurred to the deconvolution's resolution;
  reported for Li/Co (what SA/SB measures), and x;
* ``eXSpy careful``: per spectrum ``align_zero_loss_peak`` (sub-pixel),
  ``power_law_extrapolation`` of the tail, zero-loss peak cut at
  ``estimate_elastic_scattering_threshold``, ``fourier_log_deconvolution``
  (its output is ``I0·Z⊛SSD`` in counts: the zero-loss peak Z is the
  reconvolution function; checked against the truth noise-free), then a
  ``Model1D`` with ``PowerLaw`` + one ``ScalableFixedPattern`` per reference
  (references convolved with the mean aligned zero-loss shape) and
  ``multifit`` (Levenberg–Marquardt). Run on a seeded random subset of
  spectra (``--exspy-pixels``) because it is slow; say so when reporting.

Metrics on the Li weight (relative to the mean true Li): bias, RMSE, noise
limit (RMS of the reported σ) and RMSE/limit, correlation with the truth,
thickness leak (OLS slope of (Li_est − Li_true)/mean(Li_true) against the true
t/λ, % per unit t/λ, ± its standard error), pull spread std((est − true)/σ),
and for x = (w_Li/w_Co)/k (k = ``truth.attrs["k_li_co"]``): mean and median
|x − x_true| per pixel and |⟨x⟩ − ⟨x_true⟩|. ``--noise-free`` adds the same
routes on expected counts (``noise=False``): the systematic bias and leak
without statistical error (the fits are scale-invariant, so one dose serves all).

Speed (``--speed``): deconvolution + fit of a 128×128×2048 SI (−5…199.8 eV) by
ionscope (``mlls(plural_scattering="fourier-log")``, dask threads) vs eXSpy
``fourier_log_deconvolution`` + ``multifit`` on ``--speed-exspy-rows`` rows,
scaled linearly to the whole SI.

Run::

    python benchmarks/bench_eels_physics.py                      # 24×32×4, doses 100 400 1000 + noise-free (~5 min)
    python benchmarks/bench_eels_physics.py --full --doses 100 400 --no-noise-free
    python benchmarks/bench_eels_physics.py --full --doses 1000
    python benchmarks/bench_eels_physics.py --speed-only
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import time
import warnings

import numpy as np

FIT = (45.0, 85.0)
#: seconds of the last eXSpy run by step (align + extrapolate, deconvolve, model + multifit)
EXSPY_STEPS: dict = {}
ROUTES = ("raw MLLS", "fourier-log", "convolve", "SA/SB after deconvolution", "eXSpy careful")


# --------------------------------------------------------------------------- metrics

def metrics(est, std, true, thick, *, x_est=None, x_true=None):
    est, std, true, thick = (np.asarray(a, float).ravel() for a in (est, std, true, thick))
    ok = np.isfinite(est) & np.isfinite(true)
    est, std, true, thick = est[ok], std[ok], true[ok], thick[ok]
    m = float(true.mean())
    d = est - true
    rel = d / m
    # leak: OLS slope of the relative error against t/λ, with its standard error
    tc = thick - thick.mean()
    slope = float((tc * rel).sum() / (tc**2).sum())
    resid = rel - rel.mean() - slope * tc
    se = float(np.sqrt((resid**2).sum() / (rel.size - 2) / (tc**2).sum()))
    good = np.isfinite(std) & (std > 0)
    limit = float(np.sqrt(np.mean(std[good] ** 2))) if good.any() else np.nan
    out = {"n": int(est.size), "bias_pct": 100 * float(d.mean()) / m,
           "bias_se_pct": 100 * float(d.std(ddof=1) / np.sqrt(d.size)) / m,
           "rmse_pct": 100 * float(np.sqrt(np.mean(d**2))) / m,
           "noise_limit_pct": 100 * limit / m,
           "median_sigma_pct": 100 * float(np.median(std[good])) / m if good.any() else np.nan,
           "rmse_over_limit": float(np.sqrt(np.mean(d**2))) / limit if limit > 0 else np.nan,
           "corr": float(np.corrcoef(est, true)[0, 1]) if est.std() > 0 else np.nan,
           "leak_pct_per_t": 100 * slope, "leak_se_pct_per_t": 100 * se,
           "pull_std": float(np.std(d[good] / std[good])) if good.any() else np.nan}
    if x_est is not None:
        xe = np.asarray(x_est, float).ravel()[ok]
        xt = np.asarray(x_true, float).ravel()[ok]
        fin = np.isfinite(xe)
        out.update(x_mean_abs_err=float(np.mean(np.abs(xe[fin] - xt[fin]))),
                   x_median_abs_err=float(np.median(np.abs(xe[fin] - xt[fin]))),
                   x_mean_err=float(np.mean(xe[fin]) - np.mean(xt[fin])))
    return out


# --------------------------------------------------------------------------- ionscope routes

def run_ionscope(si, truth, *, routes):
    import xarray as xr
    from scipy.ndimage import gaussian_filter1d

    import ionscope.eels as ie

    refs = truth.references
    k = float(truth.attrs["k_li_co"])
    li_t = truth.weights.sel(component="Li").values
    co_t = truth.weights.sel(component="Co").values
    thick = np.broadcast_to(truth.thickness.values, li_t.shape)
    x_t = truth.x_li.values
    res, secs = {}, {}
    for name, ps in (("raw MLLS", None), ("fourier-log", "fourier-log"), ("convolve", "convolve")):
        if name not in routes:
            continue
        t0 = time.perf_counter()
        maps = ie.mlls(si, refs, fit_range=FIT, plural_scattering=ps, nonnegative=False)
        maps = maps.compute() if hasattr(maps, "compute") else maps
        secs[name] = time.perf_counter() - t0
        x = ie.li_fraction(maps, calibration=k).li_fraction.values
        res[name] = metrics(maps.Li.values, maps.Li_std.values, li_t, thick, x_est=x, x_true=x_t)
        res[name]["co_bias_pct"] = 100 * float(np.mean(maps.Co.values - co_t)) / float(co_t.mean())
        res[name]["median_chi2"] = float(np.nanmedian(maps.chi2.values))
    if "SA/SB after deconvolution" in routes:
        t0 = time.perf_counter()
        dec = ie.deconvolve(si, energy_range=(30.0, float(si.energy[-1])))
        fw = float(dec.attrs["resolution_fwhm_ev"])
        step = float(si.energy[1] - si.energy[0])
        # the references at the deconvolution's Gaussian resolution, as the SSD holds them
        blurred = xr.DataArray(gaussian_filter1d(refs.values, fw / 2.3548 / step, axis=-1, mode="nearest"),
                               dims=refs.dims, coords=refs.coords)
        s = ie.sasb(dec.ssd, references=blurred, method="exact")
        secs["SA/SB after deconvolution"] = time.perf_counter() - t0
        ratio_t = li_t / co_t
        res["SA/SB after deconvolution"] = metrics(s.li_co.values, s.li_co_std.values, ratio_t, thick,
                                                   x_est=s.li_co.values / k, x_true=x_t)
        res["SA/SB after deconvolution"]["quantity"] = "Li/Co (reference units), not Li"
    return res, secs


# --------------------------------------------------------------------------- eXSpy

def _quiet():
    warnings.simplefilter("ignore")
    for name in ("hyperspy", "exspy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def exspy_careful(spectra, energy, refs, *, fit=FIT, extrapolation_ev=40.0):
    """eXSpy's careful Fourier-log + model workflow on (P, n) raw spectra; returns Li, Co, their std, seconds."""
    _quiet()
    import exspy
    import hyperspy.api as hs

    t0 = time.perf_counter()
    step = float(energy[1] - energy[0])
    s = exspy.signals.EELSSpectrum(np.asarray(spectra, dtype=np.float64))
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units, ax.name = float(energy[0]), step, "eV", "Energy loss"
    s.align_zero_loss_peak(subpixel=True, print_stats=False, show_progressbar=False, signal_range=(-3.0, 3.0))
    n_keep = s.axes_manager.signal_axes[0].size
    EXSPY_STEPS.clear()
    EXSPY_STEPS["align"] = time.perf_counter() - t0
    ext = s.power_law_extrapolation(window_size=int(round(20.0 / step)),
                                    extrapolation_size=int(round(extrapolation_ev / step)))
    thr = ext.estimate_elastic_scattering_threshold(window=10.0, start=1.0)
    e_ext = ext.axes_manager.signal_axes[0].axis
    thr_v = np.nan_to_num(np.asarray(thr.data, float).reshape(-1), nan=3.0)
    zlp = ext.deepcopy()
    zlp.data = np.where(e_ext[None, :] < thr_v[:, None], ext.data, 0.0)
    dec = ext.fourier_log_deconvolution(zlp)
    dec = dec.isig[:n_keep]
    EXSPY_STEPS["extrapolate + fourier_log_deconvolution"] = time.perf_counter() - t0 - EXSPY_STEPS["align"]
    e_dec = dec.axes_manager.signal_axes[0].axis
    # the output is reconvolved with the zero-loss peak itself: references at that resolution
    z = zlp.data[:, :n_keep].mean(axis=0)
    z /= z.sum()
    i_zero = int(np.argmin(np.abs(e_dec)))
    kernel = z[max(0, i_zero - 60):i_zero + 61]
    centre = i_zero - max(0, i_zero - 60)
    ref_vals = np.stack([np.interp(e_dec, refs.energy.values, refs.sel(component=c).values, left=0, right=0)
                         for c in ("Li", "Co")])
    conv = np.stack([np.convolve(r, kernel[::-1], mode="full")[len(kernel) - 1 - centre:][:e_dec.size]
                     for r in ref_vals])
    sig = hs.signals.Signal1D(np.asarray(dec.data, float))
    sax = sig.axes_manager.signal_axes[0]
    sax.offset, sax.scale = float(e_dec[0]), step
    sax.is_binned = False  # component values per channel, like the counts
    m = sig.create_model()
    bg = hs.model.components1D.PowerLaw()
    comps = []
    for name, shape in zip(("Li", "Co"), conv):
        pat = hs.signals.Signal1D(shape)
        pax = pat.axes_manager.signal_axes[0]
        pax.offset, pax.scale, pax.is_binned = float(e_dec[0]), step, False
        c = hs.model.components1D.ScalableFixedPattern(pat)
        c.name = name
        comps.append(c)
    m.extend([bg] + comps)
    m.set_signal_range(*fit)
    bg.estimate_parameters(sig, fit[0], fit[0] + 8.0, only_current=False)
    for c in comps:
        c.yscale.map["values"][:] = 1.0
        c.yscale.map["is_set"][:] = True
        c.xscale.free = False
        c.shift.free = False
    t_fit = time.perf_counter()
    m.multifit(show_progressbar=False, iterpath="flyback")
    EXSPY_STEPS["multifit"] = time.perf_counter() - t_fit
    out = {c.name: (np.asarray(c.yscale.map["values"], float), np.asarray(c.yscale.map["std"], float))
           for c in comps}
    return out, time.perf_counter() - t0, dec


def run_exspy(si, truth, *, n_pixels, seed=0):
    li_t = truth.weights.sel(component="Li").values.ravel()
    co_t = truth.weights.sel(component="Co").values.ravel()
    thick = np.broadcast_to(truth.thickness.values, truth.weights.shape[1:]).ravel()
    x_t = truth.x_li.values.ravel()
    flat = si.values.reshape(-1, si.sizes["energy"])
    idx = np.sort(np.random.default_rng(seed).choice(flat.shape[0], size=min(n_pixels, flat.shape[0]),
                                                     replace=False))
    out, secs, _ = exspy_careful(flat[idx], si.energy.values, truth.references)
    li, li_s = out["Li"]
    co, _ = out["Co"]
    x = (li / co) / float(truth.attrs["k_li_co"])
    r = metrics(li, li_s, li_t[idx], thick[idx], x_est=x, x_true=x_t[idx])
    r["co_bias_pct"] = 100 * float(np.mean(co - co_t[idx])) / float(co_t[idx].mean())
    r["subset"] = f"{idx.size} of {flat.shape[0]} spectra (seeded random)"
    return r, secs


# --------------------------------------------------------------------------- driver

def simulate(shape, frames, dose, noise, seed, **kw):
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=shape, n_frames=frames, physics="realistic", dose=dose, noise=noise,
                                 seed=seed, **kw)
    return si, truth


def fmt_table(rows):
    head = ("route", "bias %", "RMSE %", "σ-limit %", "RMSE/limit", "r", "leak %/(t/λ)", "pull std",
            "mean abs Δx", "median abs Δx", "Δ⟨x⟩")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows:
        lines.append("| " + " | ".join([
            name, f"{r['bias_pct']:+.2f} ± {r['bias_se_pct']:.2f}", f"{r['rmse_pct']:.1f}",
            f"{r['noise_limit_pct']:.1f}", f"{r['rmse_over_limit']:.2f}", f"{r['corr']:.3f}",
            f"{r['leak_pct_per_t']:+.2f} ± {r['leak_se_pct_per_t']:.2f}", f"{r['pull_std']:.3f}",
            f"{r.get('x_mean_abs_err', np.nan):.3f}", f"{r.get('x_median_abs_err', np.nan):.3f}",
            f"{r.get('x_mean_err', np.nan):+.3f}"]) + " |")
    return "\n".join(lines)


def accuracy(args):
    all_res = {}
    cases = [(d, True) for d in args.doses] + ([(args.noise_free_dose, False)] if args.noise_free else [])
    for dose, noise in cases:
        label = f"dose {dose:g}" + ("" if noise else " noise-free")
        t0 = time.perf_counter()
        si, truth = simulate(tuple(args.shape), args.frames, dose, noise, args.seed)
        t_sim = time.perf_counter() - t0
        res, secs = run_ionscope(si, truth, routes=args.routes)
        if "eXSpy careful" in args.routes and args.exspy_pixels > 0:
            try:
                r, s = run_exspy(si, truth, n_pixels=args.exspy_pixels, seed=args.seed)
                res["eXSpy careful"], secs["eXSpy careful"] = r, s
            except ImportError as exc:
                print(f"eXSpy skipped: {exc}")
        print(f"\n## {label}: {si.sizes['time']}×{si.sizes['y']}×{si.sizes['x']} spectra × {si.sizes['energy']} "
              f"channels (simulated in {t_sim:.0f} s); times: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()))
        print(fmt_table([(k, v) for k, v in res.items()]))
        for k, v in res.items():
            extra = {kk: (round(v[kk], 3) if isinstance(v[kk], float) else v[kk])
                     for kk in ("median_sigma_pct", "co_bias_pct", "median_chi2", "subset", "quantity") if kk in v}
            if extra:
                print(f"  {k}: {extra}")
        all_res[label] = {"metrics": res, "seconds": secs}
    return all_res


def speed(args):
    import dask

    import ionscope.eels as ie

    shape = (args.speed_size, args.speed_size)
    t0 = time.perf_counter()
    si, truth = simulate(shape, 1, 400.0, True, args.seed, energy_range=(-5.0, 199.8))
    t_sim = time.perf_counter() - t0
    si = si.isel(time=0)
    n_e = si.sizes["energy"]
    print(f"\n## speed: {shape[0]}×{shape[1]}×{n_e} SI ({si.nbytes / 1e6:.0f} MB float32), simulated in {t_sim:.0f} s")
    chunked = si.chunk({"y": 16, "x": -1, "energy": -1})
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        maps = ie.mlls(chunked, truth.references, fit_range=FIT, plural_scattering="fourier-log",
                       nonnegative=False).compute()
    t_ion = time.perf_counter() - t0
    rows = si.isel(y=slice(0, args.speed_exspy_rows))
    flat = rows.values.reshape(-1, n_e)
    _, t_ex, _ = exspy_careful(flat, si.energy.values, truth.references)
    scale = si.sizes["y"] / rows.sizes["y"]
    t_ex_full = t_ex * scale
    import exspy
    import hyperspy

    out = {"ionscope_s": t_ion, "exspy_subset_s": t_ex, "exspy_rows": int(rows.sizes["y"]),
           "exspy_scaled_s": t_ex_full, "ratio": t_ex_full / t_ion, "exspy": exspy.__version__,
           "hyperspy": hyperspy.__version__, "finite_li": float(np.isfinite(maps.Li.values).mean()),
           "exspy_steps_s": dict(EXSPY_STEPS)}
    print(f"ionscope fourier-log deconvolution + fit, all {shape[0] * shape[1]} spectra: {t_ion:.1f} s "
          f"({shape[0] * shape[1] / t_ion:.0f} spectra/s)")
    print(f"eXSpy {exspy.__version__} (HyperSpy {hyperspy.__version__}) align + extrapolate + "
          f"fourier_log_deconvolution + multifit on {rows.sizes['y']} rows ({flat.shape[0]} spectra): {t_ex:.1f} s "
          f"→ scaled ×{scale:g}: {t_ex_full:.0f} s; ionscope is {t_ex_full / t_ion:.1f}× faster")
    print("eXSpy steps (subset, s): " + ", ".join(f"{k} {v:.1f}" for k, v in EXSPY_STEPS.items())
          + f"; fourier_log_deconvolution + multifit alone scaled: "
          f"{(t_ex - EXSPY_STEPS.get('align', 0)) * scale:.0f} s = "
          f"{(t_ex - EXSPY_STEPS.get('align', 0)) * scale / t_ion:.1f}× ionscope")
    return out


def frame_speed(args):
    """Issue 20: the Li map of one realistic 128×128×1024 frame (Fourier-log + GLS) per frame, against its floors.

    Per round, back to back on the same in-memory frames: ionscope ``mlls(plural_scattering="fourier-log")``
    (the batched kernel, threads on the process's cores), the reference kernel of the first implementation
    (``--with-reference``), and eXSpy's careful workflow on ``--speed-exspy-rows`` rows, scaled to the frame.
    Floors: one pass over the frame in memory (``sum``) and, for the kernel's 16 real FFTs of 2048 points
    per spectrum (3 float64, 13 float32), scipy.fft alone on blocks of the kernel's size (as the kernel runs
    them, in cache), one thread, halved for two cores. A breakdown of one
    frame by step (single thread) gives each step's time and its floor.
    """
    import ionscope.eels as ie
    from ionscope.eels import _plural, _plural_fast

    n_frames = args.frame_frames
    si, truth = simulate((args.speed_size, args.speed_size), n_frames, 200.0, True, args.seed)
    refs = truth.references
    frames = [si.isel(time=t).load() for t in range(n_frames)]
    n_pix = frames[0].sizes["y"] * frames[0].sizes["x"]
    kw = dict(fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    print(f"\n## frame speed: {n_frames} frames of {frames[0].sizes['y']}×{frames[0].sizes['x']}×"
          f"{frames[0].sizes['energy']} (float32, {frames[0].nbytes / 2**20:.0f} MiB), dose 200, fit {FIT} eV")
    ours, refs_t, passes, ffts = [], [], [], []
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        for f in frames:
            t0 = time.perf_counter()
            ie.mlls(f, refs, **kw)
            ours.append(time.perf_counter() - t0)
        if args.with_reference:
            t0 = time.perf_counter()
            orig = _plural_fast.fourier_log_kernel
            _plural_fast.fourier_log_kernel = _plural.fourier_log_kernel
            try:
                ref = ie.mlls(frames[0], refs, **kw)
            finally:
                _plural_fast.fourier_log_kernel = orig
            refs_t.append(time.perf_counter() - t0)
            d = np.abs(ie.mlls(frames[0], refs, **kw).Li.values - ref.Li.values).max() \
                / np.sqrt(np.mean(ref.Li.values ** 2)) if r == 0 else np.nan
        t0 = time.perf_counter()
        float(frames[0].data.sum())
        passes.append(time.perf_counter() - t0)
        ffts.append(_fft_floor(n_pix) / 2)  # two cores
        print(f"round {r}: load {load:.1f}; ionscope {np.median(ours[-n_frames:]):.2f} s/frame"
              + (f", reference kernel {refs_t[-1]:.2f} s (max |ΔLi|/RMS {d:.1e})" if args.with_reference else "")
              + f"; one pass {passes[-1] * 1e3:.0f} ms, kernel FFTs alone (2 cores) {ffts[-1]:.2f} s", flush=True)
    best = min(ours)
    print(f"ionscope Li map: best {best:.2f} s/frame, median {np.median(ours):.2f} s/frame "
          f"({n_pix / best:,.0f} spectra/s); its FFTs alone on 2 cores {min(ffts):.2f} s → {best / min(ffts):.1f}× "
          f"that floor; one in-memory pass {min(passes) * 1e3:.0f} ms → {best / min(passes):.0f}× memory bandwidth")
    if args.with_reference:
        print(f"reference kernel (first implementation): best {min(refs_t):.2f} s → {min(refs_t) / best:.1f}× faster")
    out = {"ionscope_s_per_frame": best, "median": float(np.median(ours)), "fft_floor_s": min(ffts),
           "pass_s": min(passes), "reference_s": min(refs_t) if refs_t else None}
    if args.speed_exspy_rows > 0:
        rows = frames[0].isel(y=slice(0, args.speed_exspy_rows))
        flat = rows.values.reshape(-1, rows.sizes["energy"])
        _, t_ex, _ = exspy_careful(flat, rows.energy.values, refs)
        scaled = t_ex * frames[0].sizes["y"] / args.speed_exspy_rows
        import exspy

        print(f"eXSpy {exspy.__version__} careful workflow on {flat.shape[0]} spectra: {t_ex:.1f} s → scaled to the frame "
              f"{scaled:.0f} s = {scaled / best:.0f}× ionscope (steps: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in EXSPY_STEPS.items()) + ")")
        out.update(exspy_scaled_s=scaled, ratio=scaled / best)
    if args.breakdown:
        out["breakdown"] = breakdown(frames[0], refs)
    return out


def _fft_floor(n_pix, block=None):
    """CPU seconds of the kernel's transforms alone (3 float64 + 13 float32 real FFTs of 2048 points per
    spectrum), on one thread, in blocks of ``block`` spectra (default: the kernel's block size, in cache)."""
    from scipy import fft as sfft

    if block is None:
        from ionscope.eels import _plural_fast

        block = getattr(_plural_fast, "_BLOCK", 256)

    x64 = np.random.default_rng(0).random((block, 2048))
    x32 = x64.astype(np.float32)
    y64, y32 = sfft.rfft(x64, axis=1), sfft.rfft(x32, axis=1)
    best = np.inf
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(2):
            sfft.rfft(x64, axis=1, workers=1)
        sfft.irfft(y64, n=2048, axis=1, workers=1)
        for _ in range(6):
            sfft.rfft(x32, axis=1, workers=1)
        for _ in range(7):
            sfft.irfft(y32, n=2048, axis=1, workers=1)
        best = min(best, time.process_time() - t0)
    return best * n_pix / block


def breakdown(frame, refs):
    """One frame through the batched kernel on one thread, timed by step, each against its floor."""
    from scipy import fft as sfft

    import ionscope.eels as ie
    from ionscope.eels import _plural_fast

    clock = time.process_time
    spent: dict = {}
    counts: dict = {}

    def wrap(owner, name, key, count=False):
        fn = getattr(owner, name)

        def timed(*a, **k):
            t0 = clock()
            res = fn(*a, **k)
            spent[key] = spent.get(key, 0.0) + clock() - t0
            if count:
                x = a[0]
                tag = f"{key} {x.dtype}"
                counts[tag] = counts.get(tag, 0) + int(np.prod(x.shape[:-1]) if x.ndim > 1 else 1)
            return res

        setattr(owner, name, timed)
        return fn

    saved = [(sfft, "rfft", wrap(sfft, "rfft", "FFT", True)), (sfft, "irfft", wrap(sfft, "irfft", "FFT", True)),
             (_plural_fast, "_prepare", wrap(_plural_fast, "_prepare", "prepare (I0, cut, tail, extension)")),
             (_plural_fast._Context, "_fit", wrap(_plural_fast._Context, "_fit", "GLS fit"))]
    orig_workers = _plural_fast.block_workers
    _plural_fast.block_workers = lambda n, w=None: 1
    try:
        t0 = clock()
        ie.mlls(frame, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
        total = clock() - t0
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
        _plural_fast.block_workers = orig_workers
    n_pix = frame.sizes["y"] * frame.sizes["x"]
    n64 = sum(v for k, v in counts.items() if k.endswith(("float64", "complex128")))
    n32 = sum(v for k, v in counts.items() if k.endswith(("float32", "complex64")))
    fft_floor = _fft_floor(n_pix)
    x = np.asarray(frame.values, float)
    pass64 = np.inf
    for _ in range(3):
        t0 = clock()
        float(x.sum())
        pass64 = min(pass64, clock() - t0)
    print(f"breakdown (one thread, CPU s per frame; {total:.2f} s in all): transforms per spectrum "
          f"{n64 / n_pix:.0f} float64 + {n32 / n_pix:.0f} float32")
    print(f"  FFTs {spent['FFT']:.2f} s vs scipy.fft alone on the same shapes {fft_floor:.2f} s "
          f"→ {spent['FFT'] / fft_floor:.2f}× its floor")
    for k in ("prepare (I0, cut, tail, extension)", "GLS fit"):
        print(f"  {k} {spent[k]:.2f} s = {spent[k] / pass64:.0f} float64 passes over the frame ({pass64 * 1e3:.0f} ms each)")
    rest = total - sum(spent.values())
    print(f"  element-wise (log, filters, noise weights, sandwich products) {rest:.2f} s = {rest / pass64:.0f} passes")
    return {"total_cpu_s": total, "fft_s": spent["FFT"], "fft_floor_s": fft_floor, "pass_s": pass64,
            **{k: v for k, v in spent.items()}, "elementwise_s": rest}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="48×64 px × 4 frames (default 24×32 × 4)")
    p.add_argument("--doses", type=float, nargs="*", default=[100.0, 400.0, 1000.0])
    p.add_argument("--noise-free", dest="noise_free", action="store_true", default=True,
                   help="add the noise-free run at --noise-free-dose (default on)")
    p.add_argument("--no-noise-free", dest="noise_free", action="store_false")
    p.add_argument("--noise-free-dose", type=float, default=400.0)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--exspy-pixels", type=int, default=256)
    p.add_argument("--routes", nargs="*", default=list(ROUTES))
    p.add_argument("--speed", action="store_true", help="add the 128×128×2048 speed row")
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--speed-size", type=int, default=128)
    p.add_argument("--speed-exspy-rows", type=int, default=4)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--frame-speed", action="store_true",
                   help="issue 20: the Li map of realistic 128×128×1024 frames, per frame, vs floors and eXSpy")
    p.add_argument("--frame-frames", type=int, default=2, help="with --frame-speed: frames per round")
    p.add_argument("--rounds", type=int, default=3, help="with --frame-speed: rounds")
    p.add_argument("--with-reference", action="store_true", help="with --frame-speed: time the reference kernel too")
    p.add_argument("--breakdown", action="store_true", help="with --frame-speed: step-by-step CPU time vs floors")
    args = p.parse_args(argv)
    args.shape = (48, 64) if args.full else (24, 32)
    _quiet()
    import dask
    import numpy
    import xarray

    import ionscope

    print(f"# bench_eels_physics {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"{platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; python "
          f"{platform.python_version()}, numpy {numpy.__version__}, xarray {xarray.__version__}, "
          f"dask {dask.__version__}, ionscope {getattr(ionscope, '__version__', '?')}")
    try:
        import exspy
        import hyperspy

        print(f"# peer: eXSpy {exspy.__version__}, HyperSpy {hyperspy.__version__}")
    except ImportError:
        print("# peer: eXSpy not installed; its rows are skipped")
        args.routes = [r for r in args.routes if r != "eXSpy careful"]
        args.speed = args.speed_only = False
    results = {}
    if args.frame_speed:
        results["frame_speed"] = frame_speed(args)
        print(f"# load at end {os.getloadavg()[0]:.1f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, default=float)
        return 0
    if not args.speed_only:
        results["accuracy"] = accuracy(args)
    if args.speed or args.speed_only:
        results["speed"] = speed(args)
    print(f"# load at end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
