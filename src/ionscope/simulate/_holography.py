# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulated off-axis holograms of a Cu | solid electrolyte | Cu cross-section, with truth.

The specimen is a lamella seen edge-on: two Cu electrodes left and right of a
solid-electrolyte layer, all ``thickness_nm`` thick, with vacuum above a
wedge-shaped edge. The projected potential holds

* the mean inner potentials (MIP) of Cu and of the electrolyte,
* a space-charge (double-layer) step at each Cu/electrolyte interface: an
  error-function step of height ΔV and 10–90 % width ``width_nm``. The left
  electrode is at 0 V, the right at ``bias_v``; the bias divides equally
  between the two layers, so ΔV_left = step_v + bias_v/2 and
  ΔV_right = bias_v/2 − step_v,

and the wave also picks up a leakage-field phase ramp proportional to the
bias (stray field around the biased electrode) and a distortion phase common
to hologram and reference (biprism/projector distortions). Intensities follow
the sign convention of :mod:`ionscope.holography._fourier`:
``I = D/2·(1 + A² + 2·μ·A·cos(2π q·r + φ))`` with ``q`` in the canonical
half-plane, Poisson noise at ``dose`` counts/px in vacuum.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError

# Physical constants (CODATA 2018)
_H = 6.62607015e-34
_ME = 9.1093837015e-31
_C = 299792458.0
_E = 1.602176634e-19


def _interaction_constant(voltage_kv: float) -> float:
    # same formula as holography.interaction_constant (SCIENCE.md §4); duplicated
    # here so the simulator does not depend on the analysis code it tests
    u = voltage_kv * 1e3
    e = _E * u
    e0 = _ME * _C ** 2
    lam = _H / math.sqrt(2 * _ME * e * (1 + e / (2 * e0)))
    return 2 * math.pi / (lam * 1e9 * u) * (e + e0) / (e + 2 * e0)


def _check_positive(name, value):
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
        raise DataValidationError(f"{name}: expected a positive number, got {value!r}")


def _scene(*, shape, pixel_nm, voltage_kv, step_v, width_nm, bias_v, thickness_nm, mip_v, mfp_nm,
           leakage_rad_per_v, ramp_rad_per_nm, edge_nm, roughness_nm, distortion_rad, shift_px=(0.0, 0.0)):
    from scipy.special import erf

    ny, nx = (int(v) for v in shape)
    if ny < 32 or nx < 32:
        raise DataValidationError(f"shape: expected at least (32, 32) px, got {shape!r}")
    for name, v in (("pixel_nm", pixel_nm), ("voltage_kv", voltage_kv), ("width_nm", width_nm),
                    ("thickness_nm", thickness_nm)):
        _check_positive(name, v)
    y_det = np.arange(ny) * pixel_nm
    x_det = np.arange(nx) * pixel_nm
    # The specimen moves by shift_px relative to the detector (image drift): the
    # specimen's fields are evaluated at r − d, while the optics' distortion and
    # the fringes stay fixed on the detector.
    y = y_det - float(shift_px[0]) * pixel_nm
    x = x_det - float(shift_px[1]) * pixel_nm
    width_x, height_y = nx * pixel_nm, ny * pixel_nm
    x1, x2 = 0.3 * width_x, 0.7 * width_x        # Cu | electrolyte | Cu interfaces
    y_edge = 0.2 * height_y                      # vacuum above, specimen below
    # wedge edge: thickness rises smoothly from 0 over edge_nm (unwrappable phase)
    s = np.clip((y - y_edge) / edge_nm, 0.0, 1.0)
    t_profile = thickness_nm * (3 * s ** 2 - 2 * s ** 3)
    thickness = np.broadcast_to(t_profile[:, None], (ny, nx)).copy()
    specimen = thickness > 0
    # material fraction of electrolyte along x (interfaces smoothed by the roughness)
    rough = max(roughness_nm, 1e-6)
    frac = 0.5 * (erf((x - x1) / (math.sqrt(2) * rough)) - erf((x - x2) / (math.sqrt(2) * rough)))
    mip_cu, mip_el = mip_v
    mip = mip_cu + (mip_el - mip_cu) * frac
    # space-charge steps: erf with 10–90 % width w ⇒ σ = w / (2·1.2816)
    sigma = width_nm / (2 * 1.2815515655446004)
    step = lambda x0: 0.5 * (1 + erf((x - x0) / (math.sqrt(2) * sigma)))  # noqa: E731
    dv_left = step_v + 0.5 * bias_v
    dv_right = 0.5 * bias_v - step_v
    v_es = dv_left * step(x1) + dv_right * step(x2)
    potential = np.where(specimen, (mip + v_es)[None, :], 0.0)
    c_e = _interaction_constant(voltage_kv)
    xx = (x - 0.5 * width_x)[None, :]
    yy = (y - 0.5 * height_y)[:, None]
    phase_leak = leakage_rad_per_v * bias_v * xx / width_x + ramp_rad_per_nm[0] * yy + ramp_rad_per_nm[1] * xx
    phase = c_e * thickness * potential + phase_leak
    inv_mfp = (1 / mfp_nm[0]) + (1 / mfp_nm[1] - 1 / mfp_nm[0]) * frac
    t_over_lambda = thickness * inv_mfp[None, :]
    amplitude = np.exp(-0.5 * t_over_lambda)
    ox = (x_det - 0.5 * width_x)[None, :] / (0.5 * width_x)    # optics: detector frame
    oy = (y_det - 0.5 * height_y)[:, None] / (0.5 * height_y)
    distortion = distortion_rad * (0.6 * (ox ** 2 + oy ** 2) + 0.4 * ox * oy)
    return {
        "y": y_det, "x": x_det, "phase": phase, "amplitude": amplitude, "potential": potential,
        "electrostatic": np.where(specimen, v_es[None, :], 0.0), "mip": np.where(specimen, mip[None, :], 0.0),
        "thickness_nm": thickness, "t_over_lambda": t_over_lambda, "vacuum": ~specimen,
        "distortion": distortion, "c_e": c_e,
        # positions on the detector (where the displaced specimen's features appear)
        "attrs": {"interface_x_nm": [x1 + x_det[0] - x[0], x2 + x_det[0] - x[0]],
                  "vacuum_edge_y_nm": y_edge + y_det[0] - y[0], "step_left_v": dv_left,
                  "step_right_v": dv_right, "width_nm": width_nm, "bias_v": bias_v,
                  "interaction_constant_rad_per_v_nm": c_e, "voltage_kv": voltage_kv,
                  "thickness_nm": thickness_nm, "mip_v": list(mip_v),
                  "leakage_rad_per_v": leakage_rad_per_v},
    }


def _intensity(scene, q, contrast, dose, extra_phase, rng, *, vacuum=False):
    ny, nx = scene["phase"].shape
    carrier = 2 * np.pi * (q[0] * np.arange(ny)[:, None] + q[1] * np.arange(nx)[None, :])
    if vacuum:
        amp, phi = 1.0, scene["distortion"]
    else:
        amp, phi = scene["amplitude"], scene["phase"] + scene["distortion"]
    mean = 1.0 if dose is None else float(dose)
    ideal = 0.5 * mean * (1 + amp ** 2 + 2 * contrast * amp * np.cos(carrier + phi + extra_phase))
    if dose is None:
        return ideal.astype(np.float32)
    return rng.poisson(ideal).astype(np.float32)


def _truth(scene, q, contrast, dose, pixel_nm):
    import xarray as xr

    coords = {"y": ("y", scene["y"], {"units": "nm"}), "x": ("x", scene["x"], {"units": "nm"})}
    names = ("phase", "amplitude", "potential", "electrostatic", "mip", "thickness_nm", "t_over_lambda", "vacuum")
    ds = xr.Dataset({k: (("y", "x"), np.asarray(scene[k])) for k in names}, coords=coords)
    ds["phase"].attrs["units"] = "rad"
    ds["potential"].attrs["units"] = "V"
    ds.attrs = {**scene["attrs"], "carrier_cycles_per_px": list(q), "contrast": contrast,
                "dose_counts_per_px": dose, "pixel_nm": pixel_nm}
    return ds


def _image(arr, scene, attrs):
    from ..data import calibrated

    dims = ("y", "x") if arr.ndim == 2 else ("frame", "y", "x")
    coords = {"y": scene["y"], "x": scene["x"]}
    if arr.ndim == 3:
        coords["frame"] = np.arange(arr.shape[0])
    return calibrated(arr, dims, coords=coords, attrs=attrs)


def _pair(value, name):
    """A (dy, dx) pair in px from a pair or one number (the same along y and x)."""
    try:
        pair = (float(value), float(value)) if np.ndim(value) == 0 else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise DataValidationError(f"{name}: expected a finite (dy, dx) pair in px, got {value!r}")
    return pair


def _common(shape, pixel_nm, voltage_kv, step_v, width_nm, bias_v, thickness_nm, mip_v, mfp_nm,
            leakage_rad_per_v, ramp_rad_per_nm, edge_nm, roughness_nm, distortion_rad, carrier, contrast,
            shift_px=(0.0, 0.0)):
    from ..holography import canonical_carrier

    q = canonical_carrier(carrier)
    if not (0 < contrast < 1):
        raise DataValidationError(f"contrast: expected a fringe contrast in (0, 1), got {contrast!r}")
    scene_kw = dict(shape=shape, pixel_nm=pixel_nm, voltage_kv=voltage_kv, step_v=step_v, width_nm=width_nm,
                    bias_v=bias_v, thickness_nm=thickness_nm, mip_v=mip_v, mfp_nm=mfp_nm,
                    leakage_rad_per_v=leakage_rad_per_v, ramp_rad_per_nm=ramp_rad_per_nm, edge_nm=edge_nm,
                    roughness_nm=roughness_nm, distortion_rad=distortion_rad)
    scene = _scene(**scene_kw, shift_px=shift_px)
    scene["kw"] = scene_kw  # to re-evaluate the scene at another specimen position (drift)
    return q, scene


def hologram(*, shape=(512, 512), pixel_nm=0.5, voltage_kv=200.0, step_v=1.3, width_nm=3.0, bias_v=0.0,
             carrier=(0.1, 0.22), contrast=0.3, dose=200.0, seed=0, thickness_nm=60.0, mip_v=(20.0, 14.0),
             mfp_nm=(110.0, 160.0), leakage_rad_per_v=0.5, ramp_rad_per_nm=(0.0, 0.0), edge_nm=40.0,
             roughness_nm=0.5, distortion_rad=1.0, shift_px=(0.0, 0.0)):
    """Simulate an off-axis hologram of a Cu/electrolyte/Cu cross-section and its vacuum reference.

    Parameters
    ----------
    shape : (int, int)
        Image size (y, x) in px.
    pixel_nm : float
        Pixel size in nm.
    voltage_kv : float
        Accelerating voltage (sets the interaction constant).
    step_v : float
        Space-charge potential step ΔV at zero bias (V).
    width_nm : float
        10–90 % width of the space-charge steps (nm).
    bias_v : float
        Potential of the right electrode (left at 0 V).
    carrier : (float, float)
        Fringe carrier (qy, qx) in cycles/px (mapped to the canonical half-plane).
    contrast : float
        Fringe contrast μ in vacuum, 0 < μ < 1.
    dose : float or None
        Mean counts per pixel in vacuum (Poisson noise); None gives noiseless intensities.
    seed : int
        Random seed.
    thickness_nm, mip_v, mfp_nm : optional
        Specimen thickness, mean inner potentials (Cu, electrolyte) in V and
        inelastic mean free paths (Cu, electrolyte) in nm.
    leakage_rad_per_v : float
        Leakage-field phase ramp across the field of view per volt of bias.
    ramp_rad_per_nm : (float, float)
        Extra phase ramp (y, x) over the whole field (rad/nm).
    edge_nm, roughness_nm : float
        Width of the wedge-shaped specimen edge; interface roughness.
    distortion_rad : float
        Smooth distortion phase shared by hologram and reference.
    shift_px : (float, float)
        Displacement (dy, dx) in px of the specimen on the detector (e.g. drift
        between two bias states); the fringes and the distortion stay put, and
        ``truth`` describes the displaced specimen.

    Returns
    -------
    hologram, reference : DataArray
        float32 counts, dims (y, x), coordinates in nm.
    truth : Dataset
        ``phase`` (rad, object phase without distortion), ``amplitude``,
        ``potential`` (V, MIP + electrostatic), ``electrostatic``, ``mip``,
        ``thickness_nm``, ``t_over_lambda``, ``vacuum`` (mask); attrs with the
        interface positions, steps, carrier, contrast and interaction constant.

    References
    ----------
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.
    Y. Aizawa et al., Ultramicroscopy 178 (2017) 20, doi:10.1016/j.ultramic.2016.07.014
    (operando holography of a solid-state Li battery).

    Examples
    --------
    >>> holo, ref, truth = hologram(shape=(128, 128), seed=0)
    >>> holo.dims, round(truth.attrs["step_left_v"], 2)
    (('y', 'x'), 1.3)
    """
    shift = _pair(shift_px, "shift_px")
    q, scene = _common(shape, pixel_nm, voltage_kv, step_v, width_nm, bias_v, thickness_nm, mip_v, mfp_nm,
                       leakage_rad_per_v, ramp_rad_per_nm, edge_nm, roughness_nm, distortion_rad, carrier,
                       contrast, shift_px=shift)
    scene["attrs"]["shift_px"] = list(shift)
    if dose is not None:
        _check_positive("dose", dose)
    rng = np.random.default_rng(seed)
    attrs = {"beam_energy_kv": float(voltage_kv), "signal_type": "hologram", "title": "simulated hologram"}
    holo = _intensity(scene, q, contrast, dose, 0.0, rng)
    ref = _intensity(scene, q, contrast, dose, 0.0, rng, vacuum=True)
    ref_attrs = {**attrs, "title": "simulated vacuum reference"}
    return _image(holo, scene, attrs), _image(ref, scene, ref_attrs), _truth(scene, q, contrast, dose, pixel_nm)


def phase_shifting_series(*, n=8, shape=(256, 256), dose=100.0, shift_jitter_rad=0.4, drift_rad=0.6, seed=0,
                          pixel_nm=0.5, voltage_kv=200.0, step_v=1.3, width_nm=3.0, bias_v=0.0,
                          carrier=(0.1, 0.22), contrast=0.3, thickness_nm=60.0, mip_v=(20.0, 14.0),
                          mfp_nm=(110.0, 160.0), leakage_rad_per_v=0.5, ramp_rad_per_nm=(0.0, 0.0),
                          edge_nm=40.0, roughness_nm=0.5, distortion_rad=1.0, image_drift_px=(0.0, 0.0),
                          image_jitter_px=0.0):
    """Simulate a phase-shifting (fringe-scanning) hologram series and its reference series.

    Frame ``k`` has the fringe phase θ_k = 2πk/n + ε_k + drift·k/(n−1), with
    irregular ε_k ~ N(0, ``shift_jitter_rad``) and a slow linear drift; the
    reference series has its own, independent shifts. The scene is that of
    :func:`hologram`. Optionally the specimen also drifts on the detector
    (image drift, frame k displaced by d_k = ``image_drift_px``·k/(n−1) plus a
    random jitter) while the fringes and the distortion stay fixed; the
    reference series (vacuum) is unaffected.

    Parameters
    ----------
    n : int
        Number of frames (≥ 3).
    dose : float or None
        Mean counts per pixel *per frame* in vacuum.
    shift_jitter_rad, drift_rad : float
        Irregularity and total drift of the fringe shifts (rad).
    image_drift_px : float or (float, float)
        Total specimen (image) drift (dy, dx) in px from the first to the last
        frame, linear in k; default 0 (no drift).
    image_jitter_px : float
        Standard deviation (px, each axis) of a random per-frame displacement
        added to the linear drift; default 0.
    seed : int
        Random seed.
    **others
        As in :func:`hologram`.

    Returns
    -------
    holograms, references : DataArray
        float32 counts, dims (frame, y, x).
    truth : Dataset
        As for :func:`hologram` (the specimen at frame 0), plus ``shift`` and
        ``reference_shift`` (frame), rad, and the true image drift ``drift_y``,
        ``drift_x`` (frame), px, of each frame relative to frame 0.

    References
    ----------
    Q. Ru, G. Lai, K. Aoyama, J. Endo and A. Tonomura, Ultramicroscopy 55 (1994) 209,
    doi:10.1016/0304-3991(94)90171-6.

    Examples
    --------
    >>> holos, refs, truth = phase_shifting_series(n=4, shape=(64, 64), seed=0)
    >>> holos.dims, truth["shift"].shape
    (('frame', 'y', 'x'), (4,))
    """
    if not isinstance(n, (int, np.integer)) or n < 3:
        raise DataValidationError(f"n: expected an integer number of frames ≥ 3, got {n!r}")
    q, scene = _common(shape, pixel_nm, voltage_kv, step_v, width_nm, bias_v, thickness_nm, mip_v, mfp_nm,
                       leakage_rad_per_v, ramp_rad_per_nm, edge_nm, roughness_nm, distortion_rad, carrier,
                       contrast)
    if dose is not None:
        _check_positive("dose", dose)
    total = _pair(image_drift_px, "image_drift_px")
    if not (math.isfinite(image_jitter_px) and image_jitter_px >= 0):
        raise DataValidationError(f"image_jitter_px: expected a standard deviation ≥ 0 in px, got {image_jitter_px!r}")
    rng = np.random.default_rng(seed)
    k = np.arange(n)

    def shifts():
        return 2 * np.pi * k / n + rng.normal(0.0, shift_jitter_rad, n) + drift_rad * k / max(n - 1, 1)

    theta, theta_ref = shifts(), shifts()
    drift = np.outer(k / max(n - 1, 1), total)                      # (n, 2): dy, dx in px
    if image_jitter_px > 0:
        # separate generator: the fringe shifts and noise stay those of the drift-free series
        drift = drift + np.random.default_rng([int(seed), 7]).normal(0.0, image_jitter_px, (n, 2))
        drift -= drift[0]
    holos = []
    for t, d in zip(theta, drift):
        frame_scene = scene if not np.any(d) else _scene(**scene["kw"], shift_px=tuple(d))
        holos.append(_intensity(frame_scene, q, contrast, dose, t, rng))
    holos = np.stack(holos)
    refs = np.stack([_intensity(scene, q, contrast, dose, t, rng, vacuum=True) for t in theta_ref])
    attrs = {"beam_energy_kv": float(voltage_kv), "signal_type": "hologram",
             "title": "simulated phase-shifting series"}
    truth = _truth(scene, q, contrast, dose, pixel_nm)
    truth = truth.assign(shift=("frame", theta), reference_shift=("frame", theta_ref),
                         drift_y=("frame", drift[:, 0]), drift_x=("frame", drift[:, 1]))
    truth = truth.assign_coords(frame=("frame", k))
    truth["shift"].attrs["units"] = "rad"
    truth["drift_y"].attrs["units"] = truth["drift_x"].attrs["units"] = "px"
    return (_image(holos, scene, attrs), _image(refs, scene, {**attrs, "title": "simulated reference series"}),
            truth)
