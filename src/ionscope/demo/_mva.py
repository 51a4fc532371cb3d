# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``mva``: Co-L2,3 phase map (LiCoO2 vs Co3O4), the interface layer, PCA and NMF.

Reads ``ctx.data["co_l"]`` = ``(data, truth)`` from the simulate step.
"""
from __future__ import annotations

import numpy as np


def run(ctx) -> None:
    from .. import eels

    data, truth = ctx.data["co_l"]
    # dual EELS: the references get each pixel's own plasmon replicas from its low loss
    low = ctx.data.get("co_l_low_loss")
    pm = eels.phase_map(data, truth.spectra, background=True, low_loss=low)
    c34 = pm.fraction.sel(component="Co3O4")
    profile = c34.mean("x")
    layer = eels.layer_width(profile, kind="step", interface=0.0)
    pc = eels.pca(data)
    nm = eels.nmf(data, n_components=pc.attrs["n_signal"] + 1, seed=0)
    # the two fractions sum to 1, so the Co3O4 one carries all the information
    d = (c34 - truth.fraction.sel(component="Co3O4")).values
    ctx.results["mva"] = {
        "co3o4_fraction_bias": float(d.mean()), "co3o4_fraction_rmse": float(np.sqrt(np.mean(d**2))),
        "co3o4_fraction_pull_std": float(np.std(d / pm.fraction_std.sel(component="Co3O4").values)),
        "true_layer_width_nm": truth.attrs["layer_width_nm"],
        "layer_width_nm": layer["width_nm"], "layer_width_std_nm": layer["width_std_nm"],
        "layer_co3o4_fraction": layer["amplitude"] + layer["baseline"],
        "true_layer_co3o4_fraction": truth.attrs["layer_fraction"],
        "pca_n_signal": pc.attrs["n_signal"], "nmf_components": int(nm.sizes["component"]),
    }
    ctx.save_figure(_figure(c34, truth, profile, layer, pc), "figures/mva_co_l.png")


def _figure(c34, truth, profile, layer, pc):
    from ..report import colour_bar, colour_scale, subplots

    fig, axes = subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    # the colour bar of the maps must not read as a label of the profile beside it
    fig.get_layout_engine().set(w_pad=0.3)
    x, y = truth.x.values, truth.y.values
    dx, dy = (x[1] - x[0]) if x.size > 1 else 1.0, (y[1] - y[0]) if y.size > 1 else 1.0
    # y downward from the electrolyte interface (row 0), as in every ionscope map
    extent = [x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]
    # a share lies in [0, 1]; one scale for truth and estimate, from the truth's range
    base = colour_scale(truth.fraction.sel(component="Co3O4").values, bounds=(0.0, 1.0), percentiles=(0, 100))
    sc = colour_scale(c34.values, bounds=(0.0, 1.0), vmin=0.0, vmax=base.vmax)
    axes[0].imshow(truth.fraction.sel(component="Co3O4").values, vmin=sc.vmin, vmax=sc.vmax, cmap="magma",
                   extent=extent)
    axes[0].set_title("true Co3O4 share", fontsize=10)
    im = axes[1].imshow(c34.values, vmin=sc.vmin, vmax=sc.vmax, cmap="magma", extent=extent)
    axes[1].set_title("Co3O4 share (MLLS on Co-L, dual EELS)", fontsize=10)
    for a in axes[:2]:
        a.set_xlabel("x (nm)")
        a.set_ylabel("y from the interface (nm)")
    colour_bar(fig, im, sc, ax=axes[:2].tolist(), shrink=0.85, label="Co3O4 share of the Co")
    axes[2].plot(y, profile.values, ".", ms=4, label="mean along the interface (over x)")
    axes[2].plot(y, layer["fit"], "r-",
                 label=f"fit: Co3O4 layer {layer['width_nm']:.2f} ± {layer['width_std_nm']:.2f} nm")
    axes[2].set_xlabel("distance from the interface (nm)")
    axes[2].set_ylabel("Co3O4 share of the Co")
    axes[2].legend(fontsize=8, frameon=False, loc="center right")  # between the plateaus, right of the step: empty
    ev = pc.eigenvalues.values
    axes[3].semilogy(np.arange(1, ev.size + 1), ev, "o-", ms=3)
    axes[3].axhline(pc.attrs["noise_edge"], color="r", lw=0.8, label="noise edge (Marchenko–Pastur)")
    axes[3].set_title(f"PCA scree ({pc.attrs['n_signal']} signal components)", fontsize=10)
    axes[3].set_xlabel("component")
    axes[3].set_ylabel("eigenvalue (Poisson-scaled)")
    axes[3].legend(fontsize=8, frameon=False)
    return fig
