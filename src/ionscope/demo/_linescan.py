# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step ``linescan``: Li-K profile across Cu | electrolyte and the Li-rich layer width.

Reads ``ctx.data["linescan"]`` = ``(data, truth)`` from the simulate step.
"""
from __future__ import annotations

import numpy as np


def run(ctx) -> None:
    from .. import eels

    data, truth = ctx.data["linescan"]
    # plural_scattering="auto": real spectra (zero-loss peak) go through each position's own zero-loss peak
    prof = eels.li_profile(data, references=truth.references)
    width = eels.layer_width(prof)
    found, why = layer_found(width)
    # reference-free: background-subtracted Li-K window (of the deconvolved spectra when realistic)
    window = eels.li_profile(data)
    width_w = eels.layer_width(window)
    d = (prof.li - truth.li).values
    ctx.results["linescan"] = {
        "true_width_nm": truth.attrs["layer_width_nm"],
        "mlls_width_nm": width["width_nm"], "mlls_width_std_nm": width["width_std_nm"],
        "window_width_nm": width_w["width_nm"], "window_width_std_nm": width_w["width_std_nm"],
        "true_interface_nm": truth.attrs["interface_nm"], "mlls_interface_nm": width["interface_nm"],
        "true_enhancement": truth.attrs["enhancement"], "mlls_enhancement": width["amplitude"],
        # on the electrolyte side (Li present; at zero Li the non-negativity clips the noise)
        "li_pull_std": float(np.std((d / prof.li_std.values)[truth.li.values > 0])),
        "li_pull_values": int(np.count_nonzero(truth.li.values > 0)),
        "mlls_width_error_nm": width["width_nm"] - truth.attrs["layer_width_nm"],
        "plural_scattering": prof.attrs.get("plural_scattering"),
        "physics": data.attrs.get("physics", "ideal"),
        "layer_found": found,
        "mlls_width_resolved": bool(width.get("resolved", found)),
        **({"mlls_width_interval95_nm": list(width["width_interval95_nm"])} if "width_interval95_nm" in width else {}),
        **({"fit_warning": why} if why else {}),
    }
    from ._eels_issue19 import linescan_targets

    ctx.results["linescan"]["issue19"] = linescan_targets(ctx.results["linescan"])
    ctx.save_figure(_figure(prof, width, truth, why), "figures/linescan.png")


def layer_found(width: dict) -> tuple[bool, str]:
    """(found, why not): the layer fit's own verdict (:func:`ionscope.eels.layer_width` ``problems``)."""
    problems = width.get("problems", [])
    return not problems, "; ".join(problems)


def _figure(prof, width, truth, why=""):
    from ..report import subplots

    x = prof.position.values
    fig, ax = subplots(figsize=(6.4, 3.4), layout="constrained")
    ax.errorbar(x, prof.li.values, yerr=prof.li_std.values, fmt=".", ms=3, lw=0.5, color="0.4",
                label="Li-K weight (MLLS) ± 1σ")
    ax.plot(x, truth.li.values, "g-", lw=1, label="truth")
    from ..report import with_sigma

    fit_label = (f"fit: layer {with_sigma(width['width_nm'], width['width_std_nm'], unit='nm')} "
                 f"(true {truth.attrs['layer_width_nm']:g} nm)") if not why else "fit (width not resolved)"
    ax.plot(x, width["fit"], "r-", lw=1.2, label=fit_label)
    ax.set_xlabel("position (nm)")
    ax.set_ylabel("Li-K weight (single-scattering counts)" if truth.attrs.get("physics") == "realistic"
                  else "Li-K weight (counts)")
    ax.legend(fontsize=8, loc="lower right")  # the layer and the film lie above: nothing hidden
    ax.set_title("Position-resolved TEM-EELS across Cu | electrolyte")
    if why:  # the fit found no layer: say so on the figure, not only in the numbers (in room above the data)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.2 * (hi - lo))
        ax.text(0.5, 0.97, why, transform=ax.transAxes, ha="center", va="top", fontsize=8, color="#b00",
                bbox={"facecolor": "white", "edgecolor": "#b00", "alpha": 0.9})
    return fig
