# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``operando``: the whole pipeline on the simulated series, checked against the truth.

Reads the series the ``simulate`` step saved (``data/operando.zarr``, lazily:
the pipeline streams it) with its log and truth from ``ctx.data["operando"]``,
runs :func:`ionscope.operando.run` into ``operando/`` and records how close
each stage came to the simulator's ground truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def run(ctx) -> None:
    from ..operando import run as run_pipeline
    from ..report import operando_report_stage

    sim = ctx.data.get("operando")
    if sim is None:
        raise RuntimeError("the operando demo needs the simulate step's data (ctx.data['operando'])")
    truth, log = sim["truth"], sim["log"]
    store = ctx.out / "data" / "operando.zarr"
    config = {
        "input": {"series": str(store.resolve()), "frame_interval_s": float(truth.attrs["frame_time_s"])},
        "output": {"dir": str((ctx.out / "operando").resolve())},
        "register": {"window_ev": [30.0, 50.0]},
        "denoise": {"method": "sparse_coding"},
        "report": {"fps": 5.0},
    }
    realistic = "x_li" in truth
    if realistic:
        # x = (w_Li/w_Co)/k with k from the first frame's film beyond the Li-poor interface layer, whose x
        # the simulator knows (a user gives the x of a region they know, e.g. pristine LiCoO2: 1)
        ny, nx = truth.sizes["y"], truth.sizes["x"]
        y0 = int(np.ceil(float(truth.attrs["layer_nm"]) / float(truth.attrs["pixel_nm"]))) + 1
        known = float(truth.x_li.isel(time=0, y=slice(y0, ny)).mean())
        config["limap"] = {"fit_range": [45.0, 85.0],
                           "calibration": {"region": [y0, ny, 0, nx], "x": known, "frame": 0}}
    # the simulator's microstructure as the segmentation: grains 1.., boundaries 0
    labels = np.where(truth.boundaries.values, 0, truth.grains.values + 1).astype(int)
    res = run_pipeline(config, log=log, truth=truth, segmentation=labels, show_progress=False,
                       extra_stages=(operando_report_stage(),))
    an = res.analysis
    for path in res.files.values():
        ctx.files.append(Path(path).resolve().relative_to(ctx.out.resolve()).as_posix())

    reg = res.dataset("register").drift.values
    drift_err = np.abs(reg + np.c_[truth.drift_y.values, truth.drift_x.values]).max()
    e_shift = res.dataset("energy_drift").energy_shift.values
    e_err = np.abs(e_shift - truth.energy_shift.values).max()
    # truth weights are in the drifting image frame; the pipeline's maps are registered onto frame 0
    w_true = (truth.x_li if realistic else truth.weights.sel(component="Li")).values
    li_raw = (res.li_fraction if realistic else res.li_raw).values
    li_den = res.li_denoised.values
    corr = lambda a, b: float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])  # noqa: E731
    states = np.asarray([str(s) for s in res.sync.state.values])
    toward = an.toward_electrolyte.values

    def sem(v):  # σ of a state's mean flux: the spread of its frames / √n
        v = v[np.isfinite(v)]
        return float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    ctx.results["operando"] = {
        "frames": int(an.sizes["time"]),
        "bad_frames": len(res.bad_frames),
        "energy_drift_max_error_ev": float(e_err),
        "specimen_drift_max_error_px": float(drift_err),
        "li_map_corr_raw_vs_truth": corr(li_raw, w_true),
        "li_map_corr_denoised_vs_truth": corr(li_den, w_true),
        "through_fraction": float(an.attrs["through_fraction"]),
        "through_fraction_std": float(an.attrs.get("through_fraction_std", np.nan)),
        "through_fraction_truth": float(an.attrs.get("truth_through_fraction_truth", np.nan)),
        "through_fraction_observable_truth": float(an.attrs.get("truth_through_fraction_observable", np.nan)),
        "flux_cosine_vs_truth": float(an.attrs.get("truth_cosine", np.nan)),
        "flux_cosine_vs_observable_truth": float(an.attrs.get("truth_cosine_observable", np.nan)),
        "direction_agreement": float(an.attrs.get("truth_direction_agreement", np.nan)),
        "net_flux_toward_electrolyte_charge": float(toward[states == "charge"].mean()),
        "net_flux_toward_electrolyte_charge_std": sem(toward[states == "charge"]),
        "net_flux_toward_electrolyte_discharge": float(toward[states == "discharge"].mean()),
        "net_flux_toward_electrolyte_discharge_std": sem(toward[states == "discharge"]),
        "rest_to_active_ratio": float(an.attrs.get("rest_to_active_ratio", np.nan)),
        "rest_to_active_ratio_std": float(an.attrs.get("rest_to_active_ratio_std", np.nan)),
        "boundary_rate_over_grain_rate": float(an.region_rate.sel(component="boundary")
                                               / an.region_rate.drop_sel(component="boundary").mean()),
        "stage_seconds": {n: round(r.seconds, 2) for n, r in res.stages.items()},
        "map_quantity": str(an.attrs.get("map_quantity", "")),
        "map_unit": "x" if realistic else "map units",
        **({"k_calibrated": float(res.dataset("fraction").attrs["k"]), "k_std": float(res.dataset("fraction").attrs["k_std"]),
            "k_true": float(truth.attrs["k_li_co"]),
            "thickness_change_over_run": float(res.dataset("fraction").attrs.get("thickness_change", np.nan))}
           if realistic else {}),
    }
    ctx.data["operando_run"] = res
