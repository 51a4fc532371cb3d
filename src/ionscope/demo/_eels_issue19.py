# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``eels``, realistic spectra: the two-Li-K-shape MLLS route and issue 19's targets.

The Li-K fine structure moves with x (chemical shift): one Li-K shape reads
Li-poor pixels low. A user fixes that the way issue 19 asks, with references
measured on the data (:func:`ionscope.eels.references_from_regions`) from one
pristine and one charged region, chosen from what the user knows — the film
beyond the interface layer in the first frame (before any charge) and the same
pixels at rest after charge (the protocol is in the log). Both regions' x are
taken as known (a standard, or the charge passed for a uniformly charged
region); an error in them passes into x one to one, as with any two-point calibration.

Every issue-19 number the demo writes is stated with its target and whether it
is inside (:func:`target`), so the report shows where each route stands.

Measured on the demo's own scene without noise (``operando_eels`` with the demo's
sizes and physics, ``noise=False``; :data:`NOISE_FREE`): two Li-K shapes give a
frame's mean x within 0.004 beyond the interface layer (bias −0.001; one shape:
0.057, −0.034), areal leak −0.10 %/unit t/λ; SA/SB Li/Co within 1.97 % (mean
−1.32 %); NMF x within 0.018 (true k). With the demo's noise (1000 counts per
0.2 eV channel, 32×48 pixels, 24 frames) a frame's mean x has σ ≈ 0.02, so the
worst of 24 frames misses targets the routes meet without noise.
"""
from __future__ import annotations

import numpy as np

FIT_RANGE = (45.0, 85.0)
#: the same routes on the demo's scene without noise (measured 2026-12-07; see the module docstring)
NOISE_FREE = {"two_beyond": 0.004, "two_film": 0.024, "one_beyond": 0.057, "sasb_percent": 1.97, "nmf": 0.018}
#: the spread of (estimate − truth)/σ that counts as an honest σ (issue 19's range for SA/SB)
PULL_RANGE = (0.8, 1.3)


def target(value, *, target: str, inside: bool, note: str | None = None, run_mean=None, limit=None) -> dict:
    """One issue-19 number: ``{"value", "target", "inside"}`` (+ ``run_mean``, ``note`` when given).

    ``value`` is the worst frame where there are frames; ``run_mean`` (the bias over the frames) is then
    judged too, against ``|run_mean| < limit`` (``run_mean_inside``): both readings of "bias" are shown.
    """
    out = {"value": float(value)}
    if run_mean is not None:
        out["run_mean"] = float(run_mean)
    out.update(target=target, inside=bool(inside))
    if run_mean is not None and limit is not None:
        out["run_mean_inside"] = bool(abs(float(run_mean)) <= limit)
    if note:
        out["note"] = note
    return out


def pull_target(value, note: str | None = None) -> dict:
    """A pull (spread of (estimate − truth)/σ) against :data:`PULL_RANGE`."""
    lo, hi = PULL_RANGE
    return target(value, target=f"{lo:g}–{hi:g}", inside=lo <= float(value) <= hi, note=note)


def areal_leak(maps, truth, film) -> float:
    """Slope of the relative error of Li/zero_loss against t/λ (% per unit), after one overall scale.

    Scale-free, so references in any unit (the simulator's or measured on regions) compare.
    """
    m = film.broadcast_like(maps.Li).values.ravel()
    a = (maps.Li / maps.zero_loss).values.ravel()[m]
    at = (truth.weights.sel(component="Li") / truth.zero_loss).values.ravel()[m]
    t = truth.thickness.broadcast_like(maps.Li).values.ravel()[m]
    ok = np.isfinite(a) & np.isfinite(at) & np.isfinite(t)
    a, at, t = a[ok], at[ok], t[ok]
    at = at * a.sum() / at.sum()
    rel = (a - at) / at.mean()
    tc = t - t.mean()
    return 100 * float((tc * rel).sum() / (tc**2).sum())


def regions(truth, film):
    """(pristine, charged, charged frames): masks over (time, y, x) from the geometry and the protocol only.

    The same film pixels (beyond the interface layer) before charge (first frame) and at rest after charge
    (the rest frames of the protocol): thickness and valence tail cancel in the difference, only the Li-K
    shape and amount change. (A band next to the electrolyte in one rest frame alone, measured: worst frame's
    x error 0.11 beyond the layer instead of 0.07 — the regions' different thickness reads as Li.)
    """
    import xarray as xr

    layer = float(truth.attrs["layer_nm"])
    beyond = film & (truth.y > layer + 5.0)
    states = np.asarray(truth.state.values).astype(str)
    rest = np.flatnonzero(states == "rest")
    frames = rest if rest.size else np.array([truth.sizes["time"] - 1])
    shape = xr.zeros_like(truth.x_li, dtype=bool)
    pristine = shape.copy()
    pristine[0] = beyond
    charged = shape.copy()
    for f in frames:
        charged[int(f)] = beyond
    return pristine, charged, [int(f) for f in frames]


def two_shapes(si, truth, film) -> tuple:
    """MLLS with references from a pristine and a charged region: (maps, x map, numbers)."""
    from .. import eels

    pristine, charged, frame = regions(truth, film)
    xp = float(truth.x_li.where(pristine).mean())
    xc = float(truth.x_li.where(charged).mean())
    refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged},
                                        {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}},
                                        fit_range=FIT_RANGE)
    maps = eels.mlls(si, refs, fit_range=FIT_RANGE, plural_scattering="fourier-log", nonnegative=False).compute()
    frac = eels.li_fraction(maps.isel(time=0), calibration={"region": pristine.isel(time=0), "x": xp})
    k, k_std = frac.attrs["k"], frac.attrs["k_std"]
    x = eels.li_fraction(maps, calibration={"k": k, "k_std": k_std}, smooth_co=2.0)
    def errors(mask):
        fb = mask.broadcast_like(maps.Li)
        w = truth.weights.where(fb).sum(("y", "x"))
        xt = w.sel(component="Li") / w.sel(component="Co") / truth.attrs["k_li_co"]
        ratio = maps.Li.where(fb).sum(("y", "x")) / maps.Co.where(fb).sum(("y", "x"))
        # the references' own scale is amount per formula unit (Co = 1, Li = x): k = 1 without calibration noise
        return (ratio / k - xt).values, (ratio - xt).values

    beyond_mask = (film & (truth.y > float(truth.attrs["layer_nm"]) + 5.0)).broadcast_like(maps.Li)
    # σ of a frame's film-mean x from the fit's own σ (Li–Co covariance left out: a lower bound)
    c = maps.Co.where(beyond_mask).sum(("y", "x"))
    sx = np.sqrt((maps.Li_std**2).where(beyond_mask).sum(("y", "x")) / c**2 + (maps.Li.where(beyond_mask).sum(
        ("y", "x")) / c) ** 2 * (maps.Co_std**2).where(beyond_mask).sum(("y", "x")) / c**2) / k
    err, err_nominal = errors(film)
    beyond, _ = errors(film & (truth.y > float(truth.attrs["layer_nm"]) + 5.0))
    numbers = {
        "x_error_per_frame_max": float(np.abs(err).max()), "x_bias_run_mean": float(err.mean()),
        "x_error_per_frame_max_nominal_k": float(np.abs(err_nominal).max()),
        "x_bias_run_mean_nominal_k": float(err_nominal.mean()),
        "x_error_per_frame_max_beyond_layer": float(np.abs(beyond).max()),
        "x_bias_run_mean_beyond_layer": float(beyond.mean()),
        "x_sigma_per_frame_median": float(np.nanmedian(sx.values)),
        "areal_leak_percent_per_t": areal_leak(maps, truth, film),
        "k_calibrated": float(k), "k_std": float(k_std),
        "x_pristine_region": xp, "x_charged_region": xc, "charged_frames": f"{frame[0]}–{frame[-1]}",
        "pixels_pristine": int(pristine.sum()), "pixels_charged": int(charged.sum()),
    }
    return maps, x, numbers


def eels_targets(r: dict, two: dict, one_err: np.ndarray, sasb_rel: np.ndarray, nmf_err: np.ndarray) -> dict:
    """Issue 19's numbers of the eels step with their targets (``r``: the step's results so far)."""
    x_note = "worst of the frames; the bias is the mean over the frames"
    out = {
        "mlls_two_shapes_x_bias": target(
            two["x_error_per_frame_max"], run_mean=two["x_bias_run_mean"], target="≤ 0.01", limit=0.01,
            inside=two["x_error_per_frame_max"] <= 0.01,
            note=f"{x_note}; film incl. the layer, whose x ≈ 0.15–0.35 lies beyond the regions' (noise-free: "
                 f"{NOISE_FREE['two_film']})"),
        "mlls_two_shapes_x_bias_nominal_k": target(
            two["x_error_per_frame_max_nominal_k"], run_mean=two["x_bias_run_mean_nominal_k"], target="≤ 0.01",
            limit=0.01,
            inside=two["x_error_per_frame_max_nominal_k"] <= 0.01,
            note="k = 1 (the references' own scale): the route without the calibration's noise"),
        "mlls_two_shapes_x_bias_beyond_layer": target(
            two["x_error_per_frame_max_beyond_layer"], run_mean=two["x_bias_run_mean_beyond_layer"],
            target="≤ 0.01", limit=0.01, inside=two["x_error_per_frame_max_beyond_layer"] <= 0.01,
            note=(f"a frame's mean x has σ ≥ {two['x_sigma_per_frame_median']:.3f} here: noise; without noise "
                  f"{NOISE_FREE['two_beyond']} (one shape {NOISE_FREE['one_beyond']})")),
        "mlls_two_shapes_areal_leak": target(
            two["areal_leak_percent_per_t"], target="|leak| < 1 % per unit t/λ",
            inside=abs(two["areal_leak_percent_per_t"]) < 1.0),
        "mlls_one_shape_x_bias": target(
            r["mean_x_error_per_frame_max"], run_mean=float(np.mean(one_err)), target="≤ 0.01", limit=0.01,
            inside=r["mean_x_error_per_frame_max"] <= 0.01,
            note="one Li-K shape, for comparison: it cannot follow the Li-K chemical shift"),
        "sasb_li_co_bias": target(
            100 * float(np.abs(sasb_rel).max()), run_mean=100 * float(np.mean(sasb_rel)), target="|bias| < 3 %",
            limit=3.0,
            inside=100 * float(np.abs(sasb_rel).max()) < 3.0,
            note=f"{x_note}; film Li/Co, no k involved; same scene noise-free: {NOISE_FREE['sasb_percent']} %"),
        "sasb_li_co_pull": pull_target(r["sasb_li_co_pull_std"]),
        "nmf_x_bias": target(
            float(np.abs(nmf_err).max()), run_mean=float(np.mean(nmf_err)), target="< 0.03", limit=0.03,
            inside=float(np.abs(nmf_err).max()) < 0.03,
            note=f"{x_note}; k from the first frame's film; noise-free {NOISE_FREE['nmf']} (true k)"),
        "nmf_x_corr_4x4": target(
            r["nmf_x_corr_4x4"], target="≥ 0.95 at 1000 counts per 0.1 eV", inside=r["nmf_x_corr_4x4"] >= 0.95,
            note=None if r["nmf_x_within_target_conditions"] else
            "these data lie outside the target's conditions (see 'NMF x: conditions of these numbers')"),
        "nmf_li_pull": pull_target(r["nmf_li_pull_std"]),
        "nmf_x_pull_4x4": pull_target(r["nmf_x_pull_4x4"]),
    }
    return out


def linescan_targets(r: dict) -> dict:
    """Issue 19's numbers of the line-scan step with their targets."""
    e = r["mlls_width_error_nm"]
    return {"layer_width_error": target(e, target="|error| < 1 nm", inside=abs(e) < 1.0),
            "li_pull": pull_target(r["li_pull_std"])}
