# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``simulate``: a small operando experiment, a TEM-EELS line scan and a Co-L image.

Leaves in ``ctx.data``: ``"operando"`` → ``{"si", "truth", "log"}``, ``"linescan"``
→ ``(data, truth)``, ``"co_l"`` → ``(data, truth)``; writes
``data/operando.zarr``, ``data/operando_truth.zarr``, ``data/log.csv`` and the
quick-look ``figures/simulate.png``.
"""
from __future__ import annotations

import numpy as np

from .._atomic import atomic_path


def _sizes(quick: bool) -> dict:
    if quick:
        return dict(shape=(16, 24), n_frames=8, energy_step=0.2)
    return dict(shape=(32, 48), n_frames=24, energy_step=0.2)


#: The demo records what a microscope records: spectra from −5 eV with their zero-loss peak, plasmons
#: and plural scattering (``physics="realistic"``); dose = counts per channel at 55 eV.
DEMO_PHYSICS = dict(physics="realistic", dose=1000.0)


def run(ctx) -> None:
    import warnings

    from .. import io as iio
    from ..simulate import co_l_spectrum_image, operando_eels, tem_eels_linescan

    size = _sizes(ctx.quick)
    si, truth, log = operando_eels(**size, **DEMO_PHYSICS, energy_drift_ev=0.3, specimen_drift_px=1.0, seed=0)
    iio.save(si, ctx.path("data/operando.zarr"))
    with atomic_path(ctx.path("data/operando_truth.zarr")) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        # fixed-width strings (state, component labels) are readable by xarray/zarr-python
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification")
        truth.to_zarr(tmp, mode="w", consolidated=True)
    with atomic_path(ctx.path("data/log.csv")) as tmp:
        log.to_dataframe().to_csv(tmp, float_format="%.9g")
    ctx.data["operando"] = {"si": si, "truth": truth, "log": log}
    # position-resolved TEM-EELS sums each position along the interface: far more counts than a STEM pixel
    # (at 2000 counts/channel the layer's Li-K step is ~1 σ per position and the width ±2 nm; see
    # docs/eels_routes.md). 200 positions even when quick: the bulk beyond the layer fixes the baseline.
    ctx.data["linescan"] = tem_eels_linescan(n_positions=200, physics="realistic", dose=20000.0, seed=0)
    co_l, co_l_low, co_l_truth = co_l_spectrum_image(shape=(32, 24) if ctx.quick else (48, 64),
                                                     physics="realistic", dual_eels=True, seed=0)
    ctx.data["co_l"] = (co_l, co_l_truth)
    ctx.data["co_l_low_loss"] = co_l_low

    faraday = truth.attrs["faraday_c_per_mol"]
    expected = -truth.charge_c.values / faraday
    change = truth.li_total_mol.values - truth.attrs["li_initial_mol"]
    moving = np.abs(expected) > 0
    conservation = float(np.max(np.abs(change[moving] - expected[moving]) / np.abs(expected[moving])))
    ctx.results["simulate"] = {
        "operando_shape": dict(si.sizes),
        "operando_mb": round(si.nbytes / 2**20, 1),
        "dose_counts_per_channel_55ev": si.attrs["dose"],
        "physics": si.attrs.get("physics", "ideal"),
        "thickness_range_t_over_lambda": [float(truth.thickness.min()), float(truth.thickness.max())],
        "li_conservation_rel_error": conservation,
        "li_fraction_removed_on_charge": float(truth.li.mean(("y", "x")).max() - truth.li.mean(("y", "x")).min()),
        "current_a": truth.attrs["current_a"],
        "linescan_shape": dict(ctx.data["linescan"][0].sizes),
        "co_l_shape": dict(ctx.data["co_l"][0].sizes),
    }
    ctx.save_figure(_figure(truth, log), "figures/simulate.png")


def _figure(truth, log):
    from .._viewer_kit import charge_prefix
    from ..report import colour_bar, colour_scale, subplots

    states = truth.state.values
    picks = [0]
    for s in ("charge", "rest", "discharge"):  # last frame of each protocol step
        idx = np.flatnonzero(states == s)
        if idx.size:
            picks.append(int(idx[-1]))
    picks = sorted(set(picks))
    fig, axes = subplots(1, len(picks) + 1, figsize=(3.0 * (len(picks) + 1), 2.8), layout="constrained",
                             gridspec_kw={"width_ratios": [1] * len(picks) + [1.3]})
    # room between the maps' colour bar and the voltage axis: its label must not read as the bar's second label
    fig.get_layout_engine().set(w_pad=0.3)
    extent = [0, float(truth.x[-1] + truth.x[0]), float(truth.y[-1] + truth.y[0]), 0]
    # the Li-poor interface layer saturates the low end (arrow on the colour bar); the film's contrast matters
    sc = colour_scale(truth.li.values[picks], bounds=(0.0, 1.0), vmin=0.3)
    for ax, k in zip(axes, picks):
        im = ax.imshow(truth.li.values[k], vmin=sc.vmin, vmax=sc.vmax, cmap="viridis", extent=extent)
        ax.set_title(f"t = {truth.time.values[k] / 60:.1f} min ({states[k]})", fontsize=9)
        ax.set_xlabel("x (nm)")
        if k != picks[0]:
            ax.set_yticklabels([])
    axes[0].set_ylabel("y (nm)  electrolyte ↑")
    colour_bar(fig, im, sc, ax=list(axes[:len(picks)]), shrink=0.8, label="true x in LixCoO2")
    ax = axes[-1]
    ax.plot(log.time / 60, log.voltage, "k-")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("voltage (V)")
    ax2 = ax.twinx()
    factor, unit = charge_prefix(log.charge_c.values, log.current.values if "current" in log else None)
    ax2.plot(log.time / 60, log.charge_c * factor, "C1-")
    ax2.set_ylabel(f"charge passed ({unit})", color="C1")
    ax.set_title("charge → rest → discharge", fontsize=9)
    return fig
