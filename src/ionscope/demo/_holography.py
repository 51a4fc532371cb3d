# SPDX-License-Identifier: GPL-3.0-or-later
"""Demo step: Cu/electrolyte/Cu holograms reconstructed both ways; the space-charge step vs truth.

A biased and an unbiased state are simulated; the bias difference map cancels
the mean inner potentials and the thickness, leaving the change of the
electrostatic potential, whose step at the left interface is fitted.
Off-axis (one hologram, dose D) and phase-shifting (8 frames of D/8) use
the same total dose.
"""
from __future__ import annotations


def run(ctx) -> None:
    import numpy as np

    from ..holography import bias_difference, fit_step, line_profile, phase_shifting, reconstruct
    from ..report import colour_bar, colour_scale, subplots
    from ..simulate import hologram, phase_shifting_series

    size = 192 if ctx.quick else 384
    n, dose = 8, 800.0
    # 1.5 nm interface roughness: a FIB-cut interface is not atomically sharp
    kw = dict(shape=(size, size), pixel_nm=0.5, width_nm=2.0, step_v=1.3, roughness_nm=1.5, seed=11)
    bias = 2.0
    # Fourier method: one hologram per state
    h0, r0, t0 = hologram(bias_v=0.0, dose=dose, **kw)
    h1, r1, t1 = hologram(bias_v=bias, dose=dose, **kw)
    w0f, w1f = reconstruct(h0, r0, full_size=True), reconstruct(h1, r1, full_size=True)
    # phase shifting: n frames per state at dose/n each (equal total dose)
    s0, q0, _ = phase_shifting_series(n=n, bias_v=0.0, dose=dose / n, **kw)
    s1, q1, _ = phase_shifting_series(n=n, bias_v=bias, dose=dose / n, **{**kw, "seed": 12})
    w0p, est0 = phase_shifting(s0, references=q0)
    w1p, est1 = phase_shifting(s1, references=q1)

    y_nm = t0.y.values
    vac = t0.vacuum.values & (y_nm[:, None] < 0.8 * t0.attrs["vacuum_edge_y_nm"])
    x1 = t0.attrs["interface_x_nm"][0]
    y_mid = 0.65 * float(y_nm[-1])
    half_h = 0.5 * float(y_nm[-1])  # average over most of the full-thickness region
    truth_dv = t1.electrostatic - t0.electrostatic
    truth_prof = line_profile(truth_dv, start=(y_mid, x1 - 20), end=(y_mid, x1 + 20), width=half_h)
    results, profiles = {}, {}
    diffs = {}
    for name, (wa, wb) in {"fourier": (w1f, w0f), "phase_shifting": (w1p, w0p)}.items():
        # align the states, Δφ, leakage ramp removed over vacuum, ΔV
        diffs[name] = bias_difference(wa, wb, mask=vac, voltage_kv=200, thickness_nm=60.0)
        dphi, dv = diffs[name]["phase_difference"], diffs[name]["potential_difference"]
        prof = line_profile(dv, start=(y_mid, x1 - 20), end=(y_mid, x1 + 20), width=half_h)
        fit = fit_step(prof, model="erf")
        profiles[name] = (prof, fit)
        results[name] = {"step_v": fit.step, "step_err_v": fit.step_err, "width_nm": fit.width,
                         "width_err_nm": fit.width_err,
                         "phase_noise_rad": float(np.std(np.asarray(dphi)[vac])),
                         "alignment_shift_px": diffs[name].attrs["shift_px"]}
    results["truth"] = {"step_v": bias / 2, "width_nm": kw["width_nm"]}
    results["shift_uncertainty_rms_rad"] = float(np.sqrt(np.mean(est1["uncertainty"].values ** 2)))
    ctx.results["holography"] = results

    fig, axes = subplots(1, 3, figsize=(15, 4.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.35]})
    extent = [0, y_nm[-1], y_nm[-1], 0]
    im0 = axes[0].imshow(np.angle(np.asarray(w0f)), cmap="twilight", extent=extent, vmin=-np.pi, vmax=np.pi)
    axes[0].set_title("Fourier phase, 0 V (wrapped)", fontsize=10)
    colour_bar(fig, im0, None, ax=axes[0], shrink=0.85, label="phase (rad, wrapped)")
    dphi = np.asarray(diffs["phase_shifting"]["phase_difference"])
    sc = colour_scale(dphi, symmetric=True)
    im1 = axes[1].imshow(dphi, cmap="RdBu_r", extent=extent, vmin=sc.vmin, vmax=sc.vmax)
    axes[1].set_title(f"phase shifting: Δφ ({bias:g} V − 0 V)", fontsize=10)
    axes[1].plot([x1 - 20, x1 + 20], [y_mid, y_mid], "k-", lw=1.5)
    colour_bar(fig, im1, sc, ax=axes[1], shrink=0.85, label="Δφ (rad)")
    for a in axes[:2]:
        a.set_xlabel("x (nm)")
        a.set_ylabel("y (nm)")
    ax = axes[2]
    ax.plot(truth_prof.position, truth_prof, "k--", label="truth")
    for name, color in (("fourier", "C0"), ("phase_shifting", "C3")):
        prof, fit = profiles[name]
        ax.plot(prof.position, prof, ".", color=color, ms=3)
        ax.plot(fit.position, fit.fitted, "-", color=color,
                label=f"{name.replace('_', ' ')}: ΔV = {fit.step:.3f} ± {fit.step_err:.3f} V, "
                      f"w = {fit.width:.1f} ± {fit.width_err:.1f} nm")
    ax.set_xlabel("distance along the black line (nm)")
    # the potential axis on the right: on the left it would stand beside the Δφ colour bar as its second label
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.set_ylabel("ΔV (V)")
    ax.set_title("interface step across Cu | electrolyte", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)  # below: no data hidden
    ctx.save_figure(fig, "holography.png")
