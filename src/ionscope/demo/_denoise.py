# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``denoise``: sparse-coding denoising of the Li-map movie, raw vs denoised vs truth.

Uses ``ctx.data["limaps"]`` (time, y, x) from the EELS step when present, with
the truth ``ctx.data["operando"]["truth"]["li"]``; otherwise simulates a
Li-map movie at 5 counts/px with :func:`ionscope.simulate.limap_movie`.
Leaves ``ctx.data["limaps_denoised"]``; writes ``figures/denoise.png`` and
``limaps_denoised.zarr``.
"""
from __future__ import annotations

import time

import numpy as np


def _truth_for(ctx, limaps):
    try:
        truth = ctx.data["operando"]["truth"]
        # x in the image frame (realistic physics) or the specimen-frame Li fraction (ideal)
        li = truth["x_li"] if "x_li" in truth else truth["li"]
    except (KeyError, TypeError):
        return None
    if tuple(li.dims) != tuple(limaps.dims) or li.shape != limaps.shape:
        return None
    return li


def run(ctx) -> None:
    from .. import io as iio
    from ..denoise import gaussian, psnr, sparse_coding, ssim

    limaps = ctx.data.get("limaps")
    if limaps is not None and "time" in limaps.dims:
        raw = limaps.load()
        truth = _truth_for(ctx, raw)
        source = "eels step (MLLS Li maps)"
    else:
        from ..simulate import limap_movie

        shape, frames = ((48, 48), 8) if ctx.quick else ((96, 96), 16)
        raw, truth = limap_movie(shape=shape, n_frames=frames, counts=5.0, seed=0)
        source = "limap_movie, 5 counts/px"
    t0 = time.perf_counter()
    sigma = raw.attrs.get("noise_sigma")
    # x maps are fitted numbers, not counts: their noise level comes from the fit's own errors
    den = sparse_coding(raw, noise="gaussian", sigma=float(sigma)) if sigma else sparse_coding(raw)
    seconds = time.perf_counter() - t0
    ctx.data["limaps_denoised"] = den
    iio.save(den, ctx.path("limaps_denoised.zarr"))
    results = {"source": source, "shape": dict(raw.sizes), "seconds": round(seconds, 2)}
    if truth is not None:
        g = gaussian(raw, sigma=1.0, sigma_t=1.0)
        results.update({
            "psnr_raw_db": psnr(raw, truth), "psnr_denoised_db": psnr(den, truth),
            "psnr_gaussian3d_db": psnr(g, truth),
            "ssim_raw": ssim(raw, truth), "ssim_denoised": ssim(den, truth),
            "mean_raw": float(raw.mean()), "mean_denoised": float(den.mean()), "mean_truth": float(truth.mean()),
        })
    ctx.results["denoise"] = results
    ctx.save_figure(_figure(raw, den, truth, results), "figures/denoise.png")


def _figure(raw, den, truth, results):
    from ..report import bounds_of, colour_bar, colour_scale, quantity_label, subplots

    n_t = raw.sizes["time"]
    frames = sorted({0, n_t // 2, n_t - 1})
    rows = [("raw", raw), ("sparse coding", den)] + ([("truth", truth)] if truth is not None else [])
    # the denoised maps' robust range (raw noise would wash it out), within x's bounds when the maps are x;
    # arrows on the colour bar: the raw maps go beyond it
    is_x = "LixCoO2" in str(raw.attrs.get("long_name", "")) or raw.attrs.get("quantity") == "x"
    bounds = (0.0, 1.0) if is_x else bounds_of(raw)
    base = colour_scale(np.asarray(den), bounds=bounds)
    sc = colour_scale(np.concatenate([np.ravel(np.asarray(m.isel(time=frames))) for _, m in rows]), bounds=bounds,
                      vmin=base.vmin, vmax=base.vmax)
    lo, hi = sc.vmin, sc.vmax
    ny, nx = raw.sizes["y"], raw.sizes["x"]
    aspect = nx / max(ny, 1)
    fig, axes = subplots(len(rows), len(frames), figsize=(2.4 * aspect * len(frames) + 1.6, 2.4 * len(rows) + 0.6),
                             layout="constrained", squeeze=False)
    has_nm = "x" in raw.coords and "y" in raw.coords and raw.sizes["x"] > 1 and raw.sizes["y"] > 1
    if has_nm:
        x, y = raw.x.values, raw.y.values
        dx, dy = x[1] - x[0], y[1] - y[0]
        extent = [x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]  # electrolyte (row 0) at the top
    else:
        extent = None
    times = raw.time.values if "time" in raw.coords else np.arange(n_t)
    for r, (label, movie) in enumerate(rows):
        for c, t in enumerate(frames):
            ax = axes[r, c]
            im = ax.imshow(np.asarray(movie.isel(time=t)), cmap="viridis", vmin=lo, vmax=hi, extent=extent)
            if r == len(rows) - 1 and has_nm:
                ax.set_xlabel("x (nm)")
            else:
                ax.set_xticklabels([])
            if c == 0:
                text = label
                if "psnr_raw_db" in results and label != "truth":
                    key = "psnr_raw_db" if label == "raw" else "psnr_denoised_db"
                    text += f" ({results[key]:.1f} dB)"
                ax.set_ylabel(f"{text}\ny (nm)" if has_nm else text, fontsize=9)
            else:
                ax.set_yticklabels([])
            if r == 0:
                ax.set_title(f"t = {float(times[t]) / 60:.1f} min" if "time" in raw.coords else f"frame {t}",
                             fontsize=10)
    colour_bar(fig, im, sc, ax=axes.ravel().tolist(), shrink=0.7, label=quantity_label(raw, "Li map"))
    if bounds is not None:  # the share of each row's pixels outside 0 ≤ x ≤ 1, in the frames shown
        parts = [f"{label}: {out}" for label, movie in rows
                 if (out := colour_scale(np.asarray(movie.isel(time=frames)), bounds=bounds).outside("x"))]
        if parts:
            fig.suptitle("pixels outside 0 ≤ x ≤ 1 (drawn in the end colours) — " + "; ".join(parts), fontsize=9)
    return fig
