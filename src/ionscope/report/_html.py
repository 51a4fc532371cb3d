# SPDX-License-Identifier: GPL-3.0-or-later
"""HTML reports: one page with figures embedded (base64), numbers, movies and the viewer.

The page is self-contained for figures and numbers (it opens offline and can
be mailed); movies and the interactive viewer are sibling files it embeds by
relative link, because inlining a video would make the page tens of MB.
"""
from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path

_STYLE = """body{font-family:system-ui,sans-serif;max-width:72em;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
.figs{display:flex;flex-direction:column;gap:1.4em}.figs figure{margin:0;width:100%}
.figs img{display:block;max-width:100%;height:auto;margin:0 auto;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;text-align:center}
table{border-collapse:collapse;font-size:.9em;margin-bottom:1.2em}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
td.num{text-align:right;font-family:monospace}td.unit{color:#555}.bad{color:#b00}
td.text{text-align:left;font-family:inherit;max-width:48em}
tr.detail td{font-size:.8em;color:#555;padding:.1em .6em .5em 2.2em;border-top:none}td.v-inside{color:#060;font-weight:bold}
td.v-not-inside{color:#b00;font-weight:bold}td.v-not-resolved{color:#8a5a00;font-weight:bold}
tr.group th{background:#f3f4f7;text-align:left;font-style:italic}table.numbers th{font-weight:normal}
th.in-group{padding-left:1.6em}
iframe{width:100%;height:560px;border:1px solid #ccc}
video,img.movie{max-width:100%}"""


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "nan" if math.isnan(f) else f"{f:.4g}"
    if isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, str):  # a sentence (a note, where a number was measured) wraps in its cell
        return v if len(v) <= 480 else v[:477] + "..."
    text = json.dumps(v, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


_DIMLESS = "1"
#: a unit marker: the number is a fraction, shown × 100 in % (a relative change reads as "−4.9 %")
_FRACTION_PERCENT = "fraction→%"
#: Human names and units of the numbers reports show, by key. A report table shows only these
#: names: a key not listed here is written as it is spelt and marked (class "raw") so that the
#: tests find it. Add entries here rather than formatting names at the call site.
LABELS: dict[str, tuple[str, str]] = {
    # --- the operando run (summary.json)
    "method": ("flux method", ""),
    "x_boundary": ("side edges (x) of the field of view", ""),
    "through_fraction": ("through-film share of the Li flux, Σ|J_y| / Σ(|J_y| + |J_x|)", _DIMLESS),
    # {map_unit}: the mapped quantity's unit ("x" once calibrated), from the numbers' own "map_unit"
    "net_toward_electrolyte": ("net Li flux toward the electrolyte, mean over the run", "{map_unit}·nm/s"),
    "rest_activity_mean": ("mean |dLi/dt| at rest", "{map_unit}/s"),
    "map_quantity": ("mapped quantity", ""),
    "map_unit": ("unit of the maps", ""),
    "k": ("calibration k = w_Li/w_Co at x = 1", _DIMLESS),
    "k_std": ("σ of k", _DIMLESS),
    "thickness_change": ("change of the mean t/λ over the run (last frame / first − 1)", _FRACTION_PERCENT),
    "thinning_warning": ("film thins > 5 % (beam damage?)", ""),
    "undefined_pixels": ("pixels where x is undefined (no Co)", ""),
    "references_x_std_beyond": ("σ of x from the references' own noise beyond the regions' x (median pixel; "
                                "common to every pixel, averaging does not shrink it)", _DIMLESS),
    "references_rho": ("share of a pixel's information the references' noise takes (ρ, median beyond the "
                       "regions' x; > 0.5: x biased)", _DIMLESS),
    "references_beyond_pixels": ("pixels whose x lies beyond the references' regions", ""),
    "references_noise_warning": ("the references' noise decides x (make them from more pixels)", ""),
    "references_noise_note": ("the references' own noise, in words", ""),
    "thickness_per_frame": ("mean t/λ per frame", _DIMLESS),
    "stages_cached": ("stages loaded from the cache", ""),
    "x_outside_0_1": ("pixels of the maps outside 0 ≤ x ≤ 1", ""),
    "bias_percent": ("bias of the mean", "%"),
    "thickness_leak_percent_per_t": ("thickness leak (slope of the error against t/λ)", "% per unit t/λ"),
    "li_pull_std": ("spread of (estimate − truth)/σ", _DIMLESS),
    "mean_chi2": ("mean reduced χ²", _DIMLESS),
    "thickness_bias": ("t/λ bias", _DIMLESS),
    "thickness_pull_std": ("t/λ spread of (estimate − truth)/σ", _DIMLESS),
    "k_calibrated": ("k calibrated on a region of known x", _DIMLESS),
    "k_true": ("k of the simulation", _DIMLESS),
    "mean_x_error_per_frame_max": ("largest error of a frame's mean x", _DIMLESS),
    "sasb_mean_x_error_per_frame_max": ("SA/SB: largest error of a frame's mean x", _DIMLESS),
    "nmf_mean_x_error_per_frame_max": ("NMF: largest error of a frame's mean x", _DIMLESS),
    "mlls_mean_x_error_true_k_max": ("MLLS: largest error of a frame's mean x with the true k", _DIMLESS),
    "sasb_mean_x_error_true_k_max": ("SA/SB: largest error of a frame's mean x with the true k", _DIMLESS),
    "nmf_mean_x_error_true_k_max": ("NMF: largest error of a frame's mean x with the true k", _DIMLESS),
    "sasb_li_co_pull_std": ("SA/SB Li/Co: spread of (estimate − truth)/σ", _DIMLESS),
    "nmf_li_pull_std": ("NMF Li: spread of (estimate − truth)/σ", _DIMLESS),
    "nmf_x_corr_4x4": ("NMF: correlation of x with the truth, 4×4-pixel blocks", _DIMLESS),
    "nmf_x_rms_4x4": ("NMF: RMS error of x, 4×4-pixel blocks", _DIMLESS),
    "nmf_x_pull_4x4": ("NMF x (4×4 blocks): spread of (estimate − truth)/σ", _DIMLESS),
    "nmf_x_true_spread_4x4": ("true x: standard deviation over the 4×4-pixel blocks", _DIMLESS),
    "nmf_co_pull_std": ("NMF Co (pooled over frames): spread of (estimate − truth)/σ", _DIMLESS),
    "nmf_x_within_target_conditions": ("NMF x: data inside issue 19's target conditions", ""),
    "nmf_x_conditions": ("NMF x: conditions of these numbers", ""),
    "nmf_x_note": ("NMF x: how to read these numbers", ""),
    "mlls_width_error_nm": ("layer width: estimate − truth", "nm"),
    "x_se_references_noise_beyond_layer": (
        "two shapes: x's standard error from the references' noise, beyond the layer", _DIMLESS),
    "x_se_references_noise_incl_layer": (
        "two shapes: x's standard error from the references' noise, incl. the layer", _DIMLESS),
    "plural_scattering": ("plural-scattering route", ""),
    # the night's Li-K chemical shift (pipeline._li_shift_night)
    "li_k_shift_ev": ("Li-K chemical shift between the references' regions", "eV"),
    "li_k_shift_std_ev": ("Li-K shift: σ from the χ² curvature (data noise only)", "eV"),
    "li_k_shift_source": ("Li-K shift: where it came from", ""),
    "li_k_shift_measured_on": ("Li-K shift: measured on", ""),
    "li_k_shift_frames": ("Li-K shift: frames it was measured on", ""),
    "li_k_shift_at_bound": ("Li-K shift at the end of the searched range (1: not determined)", ""),
    "li_k_shift_probe_seconds": ("Li-K shift: time to measure it", "s"),
    "li_k_shift_determined": ("Li-K shift determined by the data (0: NOT determined; fitted with 0 eV)", ""),
    "li_k_shift_measured_ev": ("Li-K shift: the search's value on the first frame", "eV"),
    "li_k_shift_std_note": ("Li-K shift: what its σ leaves out", ""),
    "rest_to_active_ratio": ("activity at rest / during (dis)charge", _DIMLESS),
    "truth_through_fraction_estimate": ("through-film share, estimated", _DIMLESS),
    "truth_through_fraction_truth": ("through-film share, simulator truth", _DIMLESS),
    "truth_through_fraction_observable": ("through-film share, observable part of the truth", _DIMLESS),
    "truth_direction_agreement": ("flux direction agreement with the truth", _DIMLESS),
    "truth_cosine": ("cosine similarity of flux to the truth", _DIMLESS),
    "truth_cosine_observable": ("cosine similarity to the observable truth", _DIMLESS),
    "n_frames": ("frames", ""),
    "bad_frames": ("frames marked bad", ""),
    "implausible_pixels": ("spectra with impossible raw counts (NaN in the maps)", ""),
    "seconds": ("time", "s"),
    "stage": ("stage", ""),
    "cached": ("from the cache", ""),
    "resumed batches": ("resumed batches", ""),
    "frame": ("frame", ""),
    "file": ("file", ""),
    "reason": ("reason", ""),
    "pixels": ("pixels", ""),
    # --- the demo: simulator
    "operando_shape": ("size of the simulated operando series", ""),
    "operando_mb": ("memory of the simulated operando series", "MB"),
    "dose_counts_per_channel_55ev": ("dose: counts per energy channel at 55 eV", "counts"),
    "physics": ("physics simulated", ""),
    "thickness_range_t_over_lambda": ("thickness range, t/λ", _DIMLESS),
    "li_conservation_rel_error": ("relative error of Li conservation (simulator check)", _DIMLESS),
    "li_fraction_removed_on_charge": ("share of the Li removed on charge", _DIMLESS),
    "current_a": ("cell current", "A"),
    "linescan_shape": ("size of the simulated line scan", ""),
    "co_l_shape": ("size of the simulated Co-L map", ""),
    # --- the demo: EELS
    "spectra_per_s": ("fitting speed", "spectra/s"),
    "sasb_deconvolved_median_x_error": ("SA/SB on deconvolved spectra: median error of x", _DIMLESS),
    "li_fraction_definition": ("definition of x", ""),
    # --- the demo: line scan
    "true_width_nm": ("layer width, simulator truth", "nm"),
    "mlls_width_nm": ("layer width from the MLLS Li-K weights", "nm"),
    "mlls_width_resolved": ("layer width resolved by the data (Δχ² vs no layer ≥ 25, σ ≤ 25 % of it)", ""),
    "mlls_width_interval95_nm": ("layer width: 95 % interval of its likelihood", "nm"),
    "window_width_nm": ("layer width from the background-subtracted Li-K window", "nm"),
    "true_interface_nm": ("interface position, simulator truth", "nm"),
    "mlls_interface_nm": ("interface position from the MLLS Li-K weights", "nm"),
    "true_enhancement": ("Li enhancement in the layer, simulator truth", _DIMLESS),
    "mlls_enhancement": ("Li enhancement in the layer, fitted", _DIMLESS),
    "layer_found": ("Li-rich layer found by the fit", ""),
    "fit_warning": ("fit warning", ""),
    # --- the demo: Co-L multivariate analysis
    "co3o4_fraction_bias": ("Co3O4 share: bias of the mean", _DIMLESS),
    "co3o4_fraction_rmse": ("Co3O4 share: RMS error", _DIMLESS),
    "co3o4_fraction_pull_std": ("Co3O4 share: spread of (estimate − truth)/σ", _DIMLESS),
    "true_layer_width_nm": ("Co3O4 layer width, simulator truth", "nm"),
    "layer_width_nm": ("Co3O4 layer width", "nm"),
    "layer_co3o4_fraction": ("Co3O4 share in the layer", _DIMLESS),
    "true_layer_co3o4_fraction": ("Co3O4 share in the layer, simulator truth", _DIMLESS),
    "pca_n_signal": ("PCA components above the noise edge", ""),
    "nmf_components": ("NMF components", ""),
    # --- the demo: denoising
    "source": ("input maps", ""),
    "shape": ("size of the Li-map movie", ""),
    "psnr_raw_db": ("PSNR of the raw maps against the truth", "dB"),
    "psnr_denoised_db": ("PSNR of the denoised maps against the truth", "dB"),
    "psnr_gaussian3d_db": ("PSNR of a 3-D Gaussian filter (baseline) against the truth", "dB"),
    "ssim_raw": ("SSIM of the raw maps against the truth", _DIMLESS),
    "ssim_denoised": ("SSIM of the denoised maps against the truth", _DIMLESS),
    "mean_raw": ("mean of the raw maps", _DIMLESS),
    "mean_denoised": ("mean of the denoised maps", _DIMLESS),
    "mean_truth": ("mean of the true maps", _DIMLESS),
    # --- the demo: holography
    "step_v": ("potential step ΔV across the interface", "V"),
    "width_nm": ("10–90 % width of the step", "nm"),
    "phase_noise_rad": ("phase noise over the vacuum", "rad"),
    "alignment_shift_px": ("alignment shift between the two states (y, x)", "px"),
    "shift_uncertainty_rms_rad": ("RMS σ of the estimated phase shifts", "rad"),
    # --- the demo: operando pipeline
    "frames": ("frames", ""),
    "energy_drift_max_error_ev": ("largest error of the energy-drift correction", "eV"),
    "specimen_drift_max_error_px": ("largest error of the specimen-drift registration", "px"),
    "li_map_corr_raw_vs_truth": ("correlation of the raw Li maps with the truth", _DIMLESS),
    "li_map_corr_denoised_vs_truth": ("correlation of the denoised Li maps with the truth", _DIMLESS),
    "through_fraction_truth": ("through-film share, simulator truth", _DIMLESS),
    "through_fraction_observable_truth": ("through-film share, observable part of the truth", _DIMLESS),
    "flux_cosine_vs_truth": ("cosine similarity of the flux to the truth", _DIMLESS),
    "flux_cosine_vs_observable_truth": ("cosine similarity of the flux to the observable truth", _DIMLESS),
    "direction_agreement": ("frames whose net flux direction agrees with the truth", _DIMLESS),
    "net_flux_toward_electrolyte_charge": ("net Li flux toward the electrolyte, mean over charge",
                                           "{map_unit}·nm/s"),
    "net_flux_toward_electrolyte_discharge": ("net Li flux toward the electrolyte, mean over discharge",
                                              "{map_unit}·nm/s"),
    "boundary_rate_over_grain_rate": ("Li exchange rate at grain boundaries / in grains", _DIMLESS),
    "thickness_change_over_run": ("change of the mean t/λ over the run (last frame / first − 1)",
                                  _FRACTION_PERCENT),
    # --- issue 19 numbers in the demo (demo/_judge.py): value ± s.e., target, verdict, where measured
    "value": ("value (a bias: the mean error over the units)", ""),
    "target": ("issue 19 target", ""),
    "verdict": ("verdict (inside only when within the target and its s.e. small enough to tell)", ""),
    "conditions": ("measured on", ""),
    "worst_unit": ("worst unit's |error| (not judged)", ""),
    "unit_pull": ("units' errors over their σ (pull)", _DIMLESS),
    "units": ("units averaged (frames or frames × strips)", ""),
    "values": ("values in the spread", ""),
    "se_needed": ("s.e. needed to judge", ""),
    "value_std": ("σ", ""),
    "note": ("note", ""),
    "x_bias_beyond_layer": ("bias of x, film beyond the layer (frames without a region)", _DIMLESS),
    "x_bias_incl_layer": ("bias of x, film incl. the interface layer (frames without a region)", _DIMLESS),
    "x_error_worst_frame_beyond_layer": ("largest |error| of a frame's x beyond the layer", _DIMLESS),
    "x_pull_frames_beyond_layer": ("frames' x errors over their σ (pull), beyond the layer", _DIMLESS),
    "areal_leak_percent_per_t": ("areal Li (Li/I0) leak: slope of the error against t/λ", "% per unit t/λ"),
    "x_pristine_region": ("known x of the pristine region (first frame, film beyond the layer)", _DIMLESS),
    "x_charged_region": ("known x of the charged region (same pixels, rest frames)", _DIMLESS),
    "charged_frames": ("frames of the charged region", ""),
    "pixels_pristine": ("pixels of the pristine region", ""),
    "pixels_charged": ("pixels of the charged region", ""),
    "validation_seconds": ("time of the scenes at the targets' conditions (issue 19)", "s"),
    "li_pull_values": ("positions in the Li pull", ""),
    # --- the demo report itself
    "sections": ("sections", ""),
    "figures": ("figures", ""),
}

#: issue 19's numbers in the demo, by name (demo/_eels_issue19.py); each also as ``<name>_movie`` (on the
#: demo's movie, below the targets' conditions) and some as ``<name>_noise_free`` (the route's systematic part)
_ISSUE19 = {
    "mlls_two_shapes_x_bias": "MLLS, two Li-K shapes: bias of x, film beyond the layer",
    "mlls_two_shapes_x_bias_incl_layer": "MLLS, two Li-K shapes: bias of x, film incl. the interface layer",
    "mlls_two_shapes_x_bias_calibrated_k": "MLLS, two Li-K shapes: bias of x beyond the layer, k calibrated",
    "mlls_two_shapes_areal_leak": "MLLS, two Li-K shapes: areal Li leak (% per unit t/λ)",
    "mlls_one_shape_x_bias": "MLLS, one Li-K shape: bias of x (for comparison)",
    "sasb_li_co_bias": "SA/SB: bias of the film's Li/Co (%)",
    "sasb_leak": "SA/SB: Li/Co leak (% per unit t/λ)",
    "sasb_li_co_pull": "SA/SB Li/Co: spread of (estimate − truth)/σ",
    "nmf_x_corr_4x4": "NMF: correlation of x with the truth, 4×4-pixel blocks",
    "nmf_x_bias": "NMF: bias of x",
    "nmf_li_pull": "NMF Li: spread of (estimate − truth)/σ",
    "nmf_x_pull_4x4": "NMF x (4×4 blocks): spread of (estimate − truth)/σ",
    "layer_width_error": "line scan: layer width, estimate − truth (nm)",
    "li_pull": "line scan Li-K weight: spread of (estimate − truth)/σ",
}
_WHERE = {"": "", "_movie": " — on the movie (below target conditions)",
          "_noise_free": " — without noise (the route's systematic error)"}


def _issue19_groups() -> dict[str, tuple[str, None, bool]]:
    return {name + suffix: (head + tail, None, False) for name, head in _ISSUE19.items() for suffix, tail in _WHERE.items()}


#: Groups of numbers (a nested mapping in a section's ``numbers``): a heading row, then the
#: group's rows. ``(heading, unit of every row or None, rows named by their keys)``: a group of
#: named items (the pipeline's stages) labels each row with its key, spaces for underscores.
GROUPS: dict[str, tuple[str, str | None, bool]] = {
    "stage_seconds": ("time per pipeline stage", "s", True),
    "mlls_fourier_log": ("MLLS through each spectrum's zero-loss peak (Fourier-log)", None, False),
    "mlls_raw_counts": ("MLLS on raw counts (zero-loss peak ignored)", None, False),
    "mlls_two_shapes": ("MLLS with two Li-K shapes (references from a pristine and a charged region)", None, False),
    "issue19": ("issue 19's targets: each number ± its standard error, its target and verdict; first at the "
                "targets' conditions, then on the movie", None, False),
    **_issue19_groups(),
    "fourier": ("Fourier (off-axis) reconstruction", None, False),
    "phase_shifting": ("phase-shifting reconstruction", None, False),
    "truth": ("simulator truth", None, False),
    "x_outside_0_1": ("pixels of the maps outside 0 ≤ x ≤ 1 (drawn in the end colours)", "%", True),
}

#: σ of a number stored under a name the generic rules do not find (``K_std``, ``K_err``, and for a
#: key ending in a unit ``base_std_unit``/``base_err_unit``).
SIGMA_KEYS = {"k_calibrated": "k_std", "value": "se", "x_bias_beyond_layer": "x_bias_beyond_layer_se",
              "x_bias_incl_layer": "x_bias_incl_layer_se"}
#: Keys a table leaves out: machine-readable twins of what a row already says (issue 19's verdict and its rule).
HIDDEN_KEYS = {"inside", "resolved", "rule"}
#: Keys whose 0/1 value is a yes/no answer.
BOOLEAN_KEYS = {"thinning_warning", "references_noise_warning", "layer_found", "ramp_removed", "inside", "run_mean_inside"}
_UNIT_SUFFIXES = {"_nm": "nm", "_s": "s", "_ev": "eV", "_v": "V", "_kv": "kV", "_rad": "rad", "_mrad": "mrad",
                  "_px": "px", "_c": "C", "_a": "A", "_db": "dB", "_min": "min", "_percent": "%"}


def human(key: str) -> tuple[str, str]:
    """(name, unit) of a report key: from :data:`LABELS`, else from its spelling.

    Examples
    --------
    >>> human("width_nm"), human("through_fraction")[1], human("spectra_per_s")
    (('10–90 % width of the step', 'nm'), '1', ('fitting speed', 'spectra/s'))
    """
    return _human(key)[:2]


def _human(key: str) -> tuple[str, str, bool]:
    """(name, unit, known): ``known`` is False when the name only comes from the key's spelling."""
    if key in LABELS:
        return (*LABELS[key], True)
    head, dot, last = key.rpartition(".")
    if dot and last in LABELS:  # a nested key ("route.bias_percent"): the group, then the label
        name, unit = LABELS[last]
        group = GROUPS.get(head, (head.replace("_", " "),))[0]
        return f"{group}: {name}", unit, head in GROUPS
    if dot and head in GROUPS and GROUPS[head][2]:
        group, unit, _ = GROUPS[head]
        return f"{group}: {last.replace('_', ' ')}", unit or "", True
    low = key.lower()
    if low.endswith("_per_s"):  # a rate: "spectra_per_s" is spectra per second, not a time
        return key[:-6].replace("_", " ") + " per second", "1/s", False
    for suffix, unit in _UNIT_SUFFIXES.items():
        if low.endswith(suffix) and len(low) > len(suffix):
            return key[: -len(suffix)].replace("_", " "), unit, False
    return key.replace("_", " "), "", False


def _sigma_key(key: str, numbers: Mapping[str, Any]) -> str | None:
    """The key holding the σ of ``key`` in ``numbers``, if any."""
    cands = [SIGMA_KEYS.get(key), f"{key}_std", f"{key}_err"]
    for suffix in _UNIT_SUFFIXES:
        if key.lower().endswith(suffix) and len(key) > len(suffix):
            base = key[: -len(suffix)]
            cands += [f"{base}_std{suffix}", f"{base}_err{suffix}"]
    return next((c for c in cands if c and c != key and c in numbers), None)


def _shape_text(v: Mapping) -> str | None:
    """'24 × 32 × 48 (time × y × x)' for a mapping of axis → length, else None."""
    if v and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in v.values()):
        return " × ".join(str(int(n)) for n in v.values()) + " (" + " × ".join(map(str, v)) + ")"
    return None


def _value_cell(key: str, value: Any, sigma: Any, unit: str) -> tuple[str, str]:
    """(value text, unit text): SI-prefixed for A and C, ± σ when given, yes/no for a yes/no answer."""
    from . import _style

    if key.rpartition(".")[2] in BOOLEAN_KEYS and isinstance(value, (int, np.integer, bool, np.bool_)):
        return ("yes" if value else "no"), ""
    if unit in ("A", "C") and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        factor, unit = _style.si_prefix([value], unit)
        value = float(value) * factor
        sigma = None if sigma is None else float(sigma) * factor
    if unit == _FRACTION_PERCENT and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value, unit = float(value) * 100.0, "%"
        sigma = None if sigma is None else float(sigma) * 100.0
    unit = "" if unit == _DIMLESS else unit
    if sigma is not None and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return _style.with_sigma(value, sigma), unit
    return _fmt(value), unit


def _is_judged(v: Any) -> bool:
    """A number judged against a target (``demo/_judge.py``): value, target, verdict."""
    return isinstance(v, Mapping) and {"value", "target", "verdict"} <= set(v)


def _judged_rows(numbers: Mapping[str, Mapping]) -> list[str]:
    """One line per judged number (name, value ± s.e., target and verdict), its details in small type below."""
    rows = []
    for key, v in numbers.items():
        head = GROUPS.get(str(key), (str(key).replace("_", " "),))[0]
        mark = "in-group" if str(key) in GROUPS else "raw in-group"
        sk = _sigma_key("value", v)
        text, _ = _value_cell("value", v["value"], v.get(sk) if sk else None, "")
        verdict = str(v["verdict"])
        cls = "v-inside" if verdict == "inside" else "v-not-inside" if verdict == "not inside" else "v-not-resolved"
        rows.append(f"<tr><th class='{mark}'>{html.escape(head)}</th><td class='num'>{html.escape(text)}</td>"
                    f"<td class='text {cls}'>{html.escape(str(v['target']))}: {html.escape(verdict)}</td></tr>")
        parts = []
        for k, x in v.items():
            if k in ("value", "target", "verdict", sk) or k in HIDDEN_KEYS:
                continue
            name = LABELS.get(k, (k.replace("_", " "),))[0]
            parts.append(f"<b{'' if k in LABELS else ' class=raw'}>{html.escape(name)}</b>: {html.escape(_fmt(x))}")
        rows.append(f"<tr class='detail'><td colspan='3'>{'; '.join(parts)}</td></tr>")
    return rows


def _rows(numbers: Mapping[str, Any], map_unit: str, prefix: str = "") -> list[str]:
    rows = []
    used = {_sigma_key(str(k), numbers) for k in numbers} - {None}
    for k, v in numbers.items():
        key = str(k)
        if key in used or (prefix and key in HIDDEN_KEYS):
            continue  # shown as the σ of its number, or a machine-readable twin of a row
        full = f"{prefix}{key}"
        if isinstance(v, Mapping) and _shape_text(v) is None:
            head, unit, named = GROUPS.get(key, (key.replace("_", " "), None, False))
            known = key in GROUPS
            mark = "" if known else " class='raw'"
            rows.append(f"<tr class='group'><th colspan='3'{mark}>{html.escape(head)}</th></tr>")
            if v and all(_is_judged(x) for x in v.values()):
                rows.extend(_judged_rows(v))  # numbers against targets: one line each, details below
            else:
                rows.extend(_rows(v, map_unit, prefix=f"{full}."))
            continue
        # inside a group (under its heading row) a row needs only its own name
        name, unit, known = _human(key if prefix else full)
        if prefix and not known:
            by_group = _human(full)  # a group of named rows (the pipeline's stages) labels them itself
            if by_group[2]:
                name, unit, known = by_group[0].split(": ", 1)[-1], by_group[1], True
        shape = _shape_text(v) if isinstance(v, Mapping) else None
        sk = _sigma_key(key, numbers)
        text, unit = _value_cell(key, shape if shape else v, numbers.get(sk) if sk else None,
                                 unit.replace("{map_unit}", map_unit))
        cls = ("raw " if not known else "") + ("in-group" if prefix else "")
        td = "num"
        if isinstance(v, str) and len(v) > 40:
            td = "text"  # a sentence reads left-aligned, in the page's font
        if key == "verdict" and isinstance(v, str):
            td = "text v-" + ("inside" if v == "inside" else "not-inside" if v == "not inside" else "not-resolved")
        rows.append(f"<tr><th{f' class={cls.strip()!r}' if cls.strip() else ''}>{html.escape(name.strip())}</th>"
                    f"<td class='{td}'>{html.escape(text)}</td><td class='unit'>{html.escape(unit)}</td></tr>")
    return rows


def _numbers_table(numbers: Mapping[str, Any]) -> str:
    """The numbers as a table: human names, value ± σ, unit; nested mappings as groups under a heading."""
    if not numbers:
        return ""
    map_unit = str(numbers.get("map_unit", "map units"))
    return f"<table class='numbers'>{''.join(_rows(numbers, map_unit))}</table>"


#: What each figure shows, by file name (stem): the caption under it in a report.
CAPTIONS = {
    "simulate": "Ground truth of the simulated experiment: x in LixCoO2 at four times, cell voltage and "
                "charge passed.",
    "eels_limaps": "Li maps from the simulated spectra: truth, MLLS through the zero-loss peak with two and with "
                   "one Li-K shape, MLLS on raw counts, and the thickness t/λ, at three times.",
    "linescan": "Li-K weight across the Cu | electrolyte interface with ± 1σ, the layer fit and the truth.",
    "mva_co_l": "Co3O4 share of the Co from Co-L MLLS against the truth, its profile from the interface with "
                "the layer fit, and the PCA scree.",
    "denoise": "Raw, sparse-coding denoised and true Li maps at three times (PSNR against the truth).",
    "holography": "Holography of Cu | electrolyte | Cu: wrapped phase at 0 V, the phase change at 2 V "
                  "(phase shifting), and the potential step across the left interface by both methods.",
    "charge_curve": "Cell voltage, state of charge and current per frame, shaded by cell state.",
    "mean_li": "Mean of the mapped quantity over the field of view per frame, raw and denoised.",
    "flux_components": "Through-film and in-plane Li flux per frame, and the net flux toward the electrolyte.",
    "profiles": "Li and through-film flux against the distance from the interface, at six times.",
    "flux_map": "Li flux (arrows, with a key) over the rate of change of Li in the most active frame.",
    "rest_activity": "Where Li keeps moving at open circuit: mean |dLi/dt| over the rest frames.",
    "thickness": "Mean thickness t/λ per frame: a film thinning under the beam changes every map.",
    "holo_steps": "Bias and current from the log, ΔV and width per interface with ± 1σ, and the asymmetry.",
    "holo_potential": "Potential change from zero bias at the most positive and most negative bias.",
}


def _caption(path: Path) -> str:
    return CAPTIONS.get(path.stem, path.stem.replace("_", " "))


def _figure(path: Path, caption: str) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream")
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img src='data:{mime};base64,{b64}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_html_report(path, *, title: str, sections: Sequence[Mapping[str, Any]], intro: str = "") -> Path:
    """Write one HTML report page (atomically).

    Parameters
    ----------
    path : str or Path
        The ``.html`` to write; relative links are resolved from its folder.
    title : str
    sections : sequence of dict
        Each with ``title`` and optional ``text``, ``numbers`` (mapping: names
        and units from :data:`LABELS`, a ``*_std``/``*_err`` sibling shown as
        ± σ, nested mappings as titled groups, see :data:`GROUPS`),
        ``figures`` (paths of PNG/SVG files, or (path, caption) pairs; embedded,
        captioned from :data:`CAPTIONS` by file name), ``movies`` (paths of
        MP4/GIF files, linked), ``viewer`` (path of a viewer HTML, embedded in
        an iframe), ``table`` (list of dicts, e.g. bad frames).
    intro : str
        A paragraph under the title (plain text).

    Returns
    -------
    Path
        The page written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.html"
    >>> _ = write_html_report(p, title="t", sections=[{"title": "a", "numbers": {"x": 1.5}}])
    >>> "1.5" in p.read_text()
    True
    """
    path = Path(path)
    base = path.parent
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    toc = "".join(f"<li><a href='#s{i}'>{html.escape(s['title'])}</a></li>" for i, s in enumerate(sections))
    parts.append(f"<ul>{toc}</ul>")
    for i, sec in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(sec['title'])}</h2>")
        if sec.get("text"):
            parts.append(f"<p>{html.escape(sec['text'])}</p>")
        if sec.get("error"):
            parts.append(f"<p class='bad'>{html.escape(sec['error'])}</p>")
        parts.append(_numbers_table(sec.get("numbers") or {}))
        if sec.get("table"):
            rows = sec["table"]
            keys = list(rows[0])
            head = "".join("<th>{}</th>".format(html.escape(
                human(k)[0] + (f" ({human(k)[1]})" if human(k)[1] not in ("", "1") else ""))) for k in keys)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k, '')))}</td>" for k in keys) + "</tr>"
                           for r in rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        figs = [(Path(f[0]), f[1]) if isinstance(f, tuple) else (Path(f), None) for f in sec.get("figures", ())]
        figs = [(f, cap or _caption(f)) for f, cap in figs if f.is_file()]
        if figs:
            parts.append("<div class='figs'>" + "".join(_figure(f, cap) for f, cap in figs) + "</div>")
        for m in sec.get("movies", ()):
            rel = html.escape(_rel(m, base))
            if str(m).lower().endswith(".mp4"):
                parts.append(f"<p><video controls loop muted src='{rel}'></video><br><a href='{rel}'>{rel}</a></p>")
            else:
                parts.append(f"<p><img class='movie' src='{rel}' alt='movie'><br><a href='{rel}'>{rel}</a></p>")
        if sec.get("viewer"):
            rel = html.escape(_rel(sec["viewer"], base))
            parts.append(f"<p>Interactive viewer (<a href='{rel}'>open on its own</a>):</p>"
                         f"<iframe src='{rel}' title='viewer'></iframe>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def _rel(target, base: Path) -> str:
    target = Path(target)
    try:
        return target.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return target.resolve().as_uri()
