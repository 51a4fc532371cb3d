# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``eels``: Li maps of the simulated operando series by MLLS, SA/SB and NMF.

Reads ``ctx.data["operando"]`` (``si``, ``truth``, ``log``) from the simulate
step. Corrects the per-frame energy drift (edge cross-correlation on each
frame's mean spectrum, band-limited shift), maps Li by Poisson-weighted MLLS
with a per-pixel power-law background, by SA/SB and by reference-free NMF,
compares them with the true Li maps, and leaves the MLLS Li-fraction movie in
``ctx.data["limaps"]`` (time, y, x) and ``limaps.zarr`` for the later steps.
"""
from __future__ import annotations

import time

import numpy as np


def _licoo2_ratio(truth) -> float:
    """w_Li/w_Co of fully lithiated LiCoO2: the 'reference of known Li/Co' that calibrates Li/Co → x."""
    r = float(truth.attrs["exponent"])
    e0 = float(truth.attrs["background_e0_ev"])
    # the simulator scales the edges against the background at their peaks (62 and 67 eV)
    return (truth.attrs["li_edge_fraction"] * (62.0 / e0) ** -r) / (truth.attrs["co_edge_fraction"] * (67.0 / e0) ** -r)


def run(ctx) -> None:
    from .. import eels
    from .. import io as iio

    op = ctx.data["operando"]
    si, truth = op["si"], op["truth"]
    refs = truth.references
    e = si.energy.values
    fit_range = (float(e[0]), float(e[-1]))

    # 1. energy drift per frame: the shift of the edge references that best fits 4×4-pixel
    #    sums (still Poisson counts, and nearly one power law each), median over each frame
    blocks = si.coarsen(y=4, x=4, boundary="trim").sum()
    per_block = eels.estimate_shift(blocks, method="model", window=(e[0] + 1.0, e[-1] - 1.0), references=refs,
                                    max_shift_ev=0.6, grid_step_ev=0.1)
    shift = per_block.median(("y", "x"))
    aligned = eels.shift_energy(si, shift)
    # channels that wrapped in from beyond the axis ends are excluded from the fit
    margin = float(np.abs(shift).max()) + 2 * float(e[1] - e[0])
    fit_range = (fit_range[0] + margin, fit_range[1] - margin)

    # 2. MLLS (Poisson, non-negative, per-pixel power law)
    t0 = time.perf_counter()
    res = eels.mlls(aligned, refs, fit_range=fit_range).compute()
    t_mlls = time.perf_counter() - t0
    k = _licoo2_ratio(truth)
    true_x = (truth.weights.sel(component="Li") / truth.weights.sel(component="Co")) / k
    li_mlls = (res.Li / res.Co.where(res.Co > 0)) / k

    # 3. SA/SB (exact two-reference inversion and the linear working form)
    t0 = time.perf_counter()
    cal = eels.sasb_calibration(refs, li_co=k)
    sab = eels.sasb(aligned, calibration=cal, method="exact").compute()
    t_sasb = time.perf_counter() - t0
    li_sasb = sab.li_co / k

    # 4. NMF, reference-free, on background-subtracted spectra of a few frames
    frames = sorted({0, si.sizes["time"] // 2, si.sizes["time"] - 1})
    sub = eels.remove_background(aligned.isel(time=frames), fit_range=(40.0, 52.0))
    window = sub.sel(energy=slice(50.0, 85.0)).clip(min=0)
    nm = eels.nmf(window, n_components=2, seed=0)
    li_ref = refs.sel(component="Li").interp(energy=nm.energy.values).values
    corr = [np.corrcoef(s, li_ref)[0, 1] for s in nm.spectra.values]
    i_li = int(np.argmax(corr))
    li_nmf = nm.maps.isel(component=i_li) / nm.maps.sum("component").where(nm.maps.sum("component") > 0)

    def stats(est, truth_x):
        d = (est - truth_x).values.ravel()
        d = d[np.isfinite(d)]
        return {"bias": float(d.mean()), "rmse": float(np.sqrt(np.mean(d**2)))}

    results = {
        "energy_shift_max_error_ev": float(np.max(np.abs(shift.values - truth.energy_shift.values))),
        "energy_shift_rms_error_ev": float(np.sqrt(np.mean((shift.values - truth.energy_shift.values) ** 2))),
        "mlls": {**stats(li_mlls, true_x), "spectra_per_s": round(si.size / si.sizes["energy"] / t_mlls),
                 "mean_chi2": float(res.chi2.mean()),
                 "li_weight_pull_std": float(((res.Li - truth.weights.sel(component="Li")) / res.Li_std).std())},
        "sasb": {**stats(li_sasb, true_x), "spectra_per_s": round(si.size / si.sizes["energy"] / t_sasb)},
        "nmf": {"corr_with_truth": float(np.corrcoef(np.nan_to_num(li_nmf.values.ravel()),
                                                      true_x.isel(time=frames).values.ravel())[0, 1])},
        "li_fraction_definition": "Li/Co weight ratio divided by its LiCoO2 value",
    }
    ctx.results["eels"] = results

    limaps = li_mlls.fillna(0.0).clip(0.0, 1.5).astype(np.float32)
    limaps.name = "li"
    limaps.attrs = {"signal_type": "limap", "long_name": "Li fraction x in LixCoO2 (MLLS)",
                    "units": "1", "source": "ionscope.eels.mlls"}
    ctx.data["limaps"] = limaps
    iio.save(limaps, ctx.path("limaps.zarr"))
    ctx.save_figure(_figure(true_x, li_mlls, li_sasb, li_nmf, frames, truth), "figures/eels_limaps.png")


def _figure(true_x, li_mlls, li_sasb, li_nmf, frames, truth):
    import matplotlib.pyplot as plt

    rows = [("truth", true_x), ("MLLS", li_mlls), ("SA/SB", li_sasb), ("NMF (rel.)", None)]
    fig, axes = plt.subplots(len(rows), len(frames), figsize=(2.8 * len(frames), 2.1 * len(rows)),
                             layout="constrained", squeeze=False)
    shared = None
    for j, t in enumerate(frames):
        for i, (label, da) in enumerate(rows):
            ax = axes[i, j]
            if da is None:  # NMF maps are relative (no calibration): own colour scale
                ax.imshow(li_nmf.isel(time=j).values, cmap="viridis")
            else:
                shared = ax.imshow(da.isel(time=t).values, vmin=0.2, vmax=1.1, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
            if i == 0:
                ax.set_title(f"t = {float(truth.time[t]) / 60:.0f} min ({truth.state.values[t]})", fontsize=9)
    fig.colorbar(shared, ax=axes[:3, :].ravel().tolist(), shrink=0.6, label="x")
    fig.suptitle("Li fraction x: ground truth vs ionscope.eels")
    return fig
