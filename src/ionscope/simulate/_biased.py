# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulated operando holography under bias: a night of holograms of a Cu | electrolyte | Cu cell, with truth.

The specimen is that of :func:`ionscope.simulate.hologram` (two Cu electrodes
left and right of a solid electrolyte, a wedge-shaped edge with vacuum above,
mean inner potentials, a built-in space-charge step at each interface). The
left electrode is grounded, the right one follows a bias programme V(t).

Space-charge layers under bias (a deliberately simple, documented model):

* the bias divides between the two interfaces, nothing drops in the bulk;
  the interface at the *positive* electrode (right for V > 0, left for
  V < 0) takes the share (1 + a)/2 of V, the negative one (1 − a)/2, with
  the asymmetry parameter ``a`` in (−1, 1) (a > 0: the positive side takes
  more, as Li⁺ leaves the electrolyte there more easily than it piles up at
  the negative side; SCIENCE.md §1);
* each bias-induced drop d_i(t) relaxes towards that share with the time
  constant τ (first order, d′ = (d_eq − d)/τ, integrated exactly for the
  piecewise-linear programme);
* the bias-induced part of each layer is an error-function step of height
  d_i (potential rise from left to right) and 10–90 % width
  w_i = ``width_nm`` + ``width_per_v_nm``·|d_i|, on top of the built-in
  step (which the zero-bias difference cancels). So the change of the
  potential relative to zero bias is exactly Σ d_i·S(x − x_i; w_i): the
  truth that :func:`ionscope.holography.bias_series` measures.

Leakage (stray) field of the biased electrode: a phase κ·V(t)·L(x, y) over the
whole field (in vacuum and projected through the specimen). Unshielded, L is
smooth but not a plane (x̂·(1 − ŷ/2) + 0.15·x̂³, x̂ ∈ [−1, 1] across the field,
ŷ the depth below the vacuum edge in field heights), so a plane fitted over
the vacuum leaves a small curved residue inside the specimen. With the
grounded shield a fraction ``shield_efficiency`` (0.99, Nomura et al. 2018)
is removed and the remainder is a plane (x̂ + 0.3·ŷ).

Acquisition: one off-axis hologram per time point (``method="fourier"``) or a
group of ``n_shifts`` phase-shifted holograms (``"phase-shifting"``), the
total ``dose`` per time point split over the group; the fringe phase drifts
(``fringe_drift_rad_per_s`` plus a random walk), the carrier frequency drifts
slowly, the fringe contrast decays (``contrast_loss_per_h``); a vacuum
reference (or reference group) is recorded every ``reference_every`` frames.

Specimen drift (optional, off by default): the specimen moves relative to the
field of view by ``specimen_drift_nm_per_s``·t plus a random walk of
``specimen_jitter_nm`` per frame. Each time point's scene (mean inner potential,
thickness, amplitude, the space-charge layers and the interfaces) is the
analytic scene evaluated at coordinates shifted by the drift — exact at any
sub-pixel shift, no interpolation — while everything fixed to the microscope
stays put: the fringes (carrier, biprism), the distortion phase and the
leakage-field shape (a smooth field of the electrodes' far surroundings; over
a few nm of drift its change is negligible). References are vacuum and so
unaffected. One position per time point: a phase-shifting group (a few
seconds) is taken as recorded at one position.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError
from ._holography import _check_positive, _common, _intensity, _scene

#: 10–90 % width of an erf step in units of its σ.
_ERF_WIDTH = 2 * 1.2815515655446004

DEFAULT_PROGRAMME = (("rest", 60.0), ("hold", 1.5, 240.0), ("rest", 180.0), ("hold", -1.5, 240.0),
                     ("rest", 180.0))


# --------------------------------------------------------------------------- bias programme
def _programme_curve(programme):
    """Break points (t, V) of a piecewise-linear programme of rest/hold/ramp segments."""
    if isinstance(programme, (str, bytes)) or not hasattr(programme, "__iter__"):
        raise DataValidationError(f"programme: expected a list of segments, got {programme!r}")
    t, v = [0.0], [0.0]
    for i, seg in enumerate(programme):
        if not isinstance(seg, (tuple, list)) or not seg or seg[0] not in ("rest", "hold", "ramp"):
            raise DataValidationError(
                f"programme[{i}]: expected ('rest', seconds), ('hold', volts, seconds) or "
                f"('ramp', to_volts, seconds), got {seg!r}")
        kind = seg[0]
        try:
            vals = [float(s) for s in seg[1:]]
        except (TypeError, ValueError):
            raise DataValidationError(f"programme[{i}]: expected numbers after {kind!r}, got {seg!r}") from None
        need = 1 if kind == "rest" else 2
        if len(vals) != need or not all(math.isfinite(x) for x in vals) or vals[-1] <= 0:
            raise DataValidationError(f"programme[{i}]: {kind!r} takes {need} number(s), the last a duration > 0 s; "
                                      f"got {seg!r}")
        dur = vals[-1]
        if kind == "ramp":
            t.append(t[-1] + dur)
            v.append(vals[0])
        else:
            level = 0.0 if kind == "rest" else vals[0]
            # a step: two break points at (almost) the same time
            t += [t[-1] + 1e-9, t[-1] + dur]
            v += [level, level]
    return np.asarray(t), np.asarray(v)


def _log_curve(log):
    """Break points (t, V) from a bias log: a Dataset with ``time`` (s) and ``voltage`` (V), or a CSV path."""
    from ..io import voltage_log

    log = voltage_log(log)
    t = np.asarray(log["time"].values, float)
    v = np.asarray(log["voltage"].values, float)
    if t.size < 2 or not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))) or np.any(np.diff(t) <= 0):
        raise DataValidationError("log: expected ≥ 2 finite samples with strictly increasing time")
    return t - t[0], v


def _relax(t_fine, v_fine, tau, asym):
    """Bias-induced drops (left, right) on a time grid: exact first-order relaxation for a linear V.

    Within an interval the equilibrium e(s) = a + b·s is linear, and
    d′ = (e − d)/τ has the exact solution d(h) = a + b·(h − τ) + (d₀ − a + b·τ)·e^{−h/τ}.
    The grid holds every break point of the programme, so steps are exact.
    """
    d = np.zeros((t_fine.size, 2))

    def share(v, sign):
        pos = (1 + asym) / 2 * v
        return np.array([v - pos, pos]) if sign >= 0 else np.array([pos, v - pos])   # (left, right)

    for k in range(1, t_fine.size):
        h = t_fine[k] - t_fine[k - 1]
        if h <= 0:
            d[k] = d[k - 1]
            continue
        sign = 0.5 * (v_fine[k] + v_fine[k - 1])
        e0, e1 = share(v_fine[k - 1], sign), share(v_fine[k], sign)
        b = (e1 - e0) / h
        decay = math.exp(-h / tau)
        d[k] = e0 + b * (h - tau) + (d[k - 1] - e0 + b * tau) * decay
    return d


def _leakage_shape(y, x, y_edge, shield):
    width, height = x[-1] - x[0], y[-1] - y[0]
    xh = ((x - x[0]) / width * 2 - 1)[None, :]
    yh = ((y - y_edge) / height)[:, None]
    if shield:
        return xh + 0.3 * yh
    return xh * (1 - 0.5 * yh) + 0.15 * xh ** 3


def biased_holograms(*, programme=DEFAULT_PROGRAMME, log=None, frame_interval_s=10.0, shape=(256, 256),
                     pixel_nm=0.5, voltage_kv=200.0, builtin_v=1.3, width_nm=6.0, width_per_v_nm=2.0,
                     relaxation_s=40.0, asymmetry=0.3, shield=True, shield_efficiency=0.99,
                     leakage_rad_per_v=2.0, thickness_nm=60.0, edge_nm=30.0, mip_v=(20.0, 14.0),
                     mfp_nm=(110.0, 160.0), roughness_nm=0.5, distortion_rad=1.0, method="fourier", n_shifts=4,
                     dose=100.0, carrier=(0.1, 0.22), contrast=0.3, contrast_loss_per_h=0.2,
                     fringe_drift_rad_per_s=0.01, carrier_drift=(0.0, 1e-4), reference_every=10,
                     specimen_drift_nm_per_s=(0.0, 0.0), specimen_jitter_nm=0.0, seed=0, out=None):
    """Simulate holograms of a biased Cu | electrolyte | Cu cross-section over time, with truth.

    Parameters
    ----------
    programme : sequence of tuple
        Bias programme of the right electrode (left grounded): ``("rest", s)``
        (0 V), ``("hold", volts, s)``, ``("ramp", to_volts, s)`` (linear from
        the previous level). Ignored when ``log`` is given.
    log : Dataset or path, optional
        A bias log instead (``voltage`` in V on ``time`` in s, e.g. from
        :func:`ionscope.io.read_log`, or a CSV path); linear between samples.
    frame_interval_s : float
        Time between time points (the first at t = 0).
    shape, pixel_nm, voltage_kv, thickness_nm, edge_nm, mip_v, mfp_nm, roughness_nm, distortion_rad, carrier
        Specimen and optics as in :func:`ionscope.simulate.hologram`.
    builtin_v : float
        Built-in space-charge step at zero bias (left interface +, right −).
    width_nm, width_per_v_nm : float
        10–90 % width of a bias-induced layer: ``width_nm + width_per_v_nm·|ΔV|``.
    relaxation_s : float
        Relaxation time τ of the layers after a change of bias (s).
    asymmetry : float
        a in (−1, 1): the positive interface takes (1 + a)/2 of the bias.
    shield : bool
        Grounded shield film on the specimen (default True).
    shield_efficiency : float
        Fraction of the leakage field the shield removes (0.99).
    leakage_rad_per_v : float
        Unshielded leakage phase across half the field of view per volt.
    method : {"fourier", "phase-shifting"}
        One hologram per time point, or a group of ``n_shifts`` phase-shifted ones.
    dose : float
        Mean vacuum counts per pixel per time point (split over a phase-shifting group).
    contrast, contrast_loss_per_h : float
        Initial fringe contrast and its relative loss per hour (exponential).
    fringe_drift_rad_per_s : float
        Drift of the fringe phase (plus a random walk of 0.05 rad per frame).
    carrier_drift : (float, float)
        Change of the carrier (qy, qx), cycles/px, over the whole series.
    reference_every : int
        A vacuum reference before every ``reference_every``-th time point (≥ 1).
    specimen_drift_nm_per_s : (float, float)
        Specimen drift (vy, vx) in nm/s relative to the field of view (fringes,
        distortion and leakage shape stay fixed); default (0, 0), no drift.
        A positive value moves the specimen towards larger y / x.
    specimen_jitter_nm : float
        Standard deviation (nm, each axis) of a random-walk step per frame added
        to the linear drift (0: none). Frame 0 is always at the undrifted position.
    seed : int
        Random seed (frame k draws from its own stream, so a store written
        frame by frame equals the in-memory result).
    out : path, optional
        Write the holograms to this Zarr store frame by frame (memory bounded
        by one frame) and return them lazily (dask) from it.

    Returns
    -------
    holograms : DataArray
        float32 counts, ``(time, y, x)`` or ``(time, frame, y, x)``; coords
        ``time`` (s), ``y``, ``x`` (nm), ``bias_v`` (time).
    references : DataArray
        Vacuum references, ``(time, y, x)`` or ``(time, frame, y, x)``, on their own ``time``.
    log : Dataset
        Bias log on a 1 s grid: ``voltage`` (V), ``current`` (A, a double-layer
        charging current plus a leak, illustrative).
    truth : Dataset
        Per time point and interface (``left``, ``right``): ``step_v`` (the
        bias-induced change of the drop, V, left → right), ``width_nm``,
        ``position_nm`` (where the interface is in the field of view: it
        follows the specimen drift); per (time, axis) ``drift_nm`` (the
        specimen's displacement (y, x) from frame 0); per time point
        ``bias_v``, ``asymmetry`` (|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|), ``positive_interface``
        (index), ``leakage_scale_rad``, ``contrast``,
        ``fringe_phase_rad``; ``delta_potential`` (time, x), V, the change of
        potential inside the specimen (at each frame's specimen position); maps
        ``potential0`` (V, zero bias), ``thickness_nm``, ``vacuum`` (frame 0's
        specimen position), ``leakage_shape`` (the leakage phase of
        frame k is ``leakage_scale_rad[k]·leakage_shape``).

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020 (shielded operando holography).
    Y. Aizawa et al., Ultramicroscopy 178 (2017) 20, doi:10.1016/j.ultramic.2016.07.014.

    Examples
    --------
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 20), ("hold", 1.0, 30)],
    ...                                             shape=(64, 64), seed=0)
    >>> holos.dims, holos.sizes["time"], truth["step_v"].dims
    (('time', 'y', 'x'), 6, ('time', 'interface'))
    >>> _, _, _, truth = biased_holograms(programme=[("rest", 20)], shape=(64, 64), specimen_drift_nm_per_s=(0, 0.1))
    >>> truth.drift_nm.values[-1].tolist(), truth.position_nm.values[-1] - truth.position_nm.values[0]
    ([0.0, 2.0], array([2., 2.]))
    """
    v_drift = _check_night(method=method, frame_interval_s=frame_interval_s, relaxation_s=relaxation_s, dose=dose,
                           width_nm=width_nm, asymmetry=asymmetry, shield_efficiency=shield_efficiency,
                           reference_every=reference_every, n_shifts=n_shifts, width_per_v_nm=width_per_v_nm,
                           specimen_drift_nm_per_s=specimen_drift_nm_per_s, specimen_jitter_nm=specimen_jitter_nm)
    bt, bv = _log_curve(log) if log is not None else _programme_curve(programme)
    times, t_fine, d_fine, bias, drops = _timeline(bt, bv, frame_interval_s, relaxation_s, asymmetry)
    n_t = times.size

    # static scene (MIP, wedge, built-in steps, distortion) from the single-hologram simulator
    q0, scene = _common(shape, pixel_nm, voltage_kv, builtin_v, width_nm, 0.0, thickness_nm, mip_v, mfp_nm, 0.0,
                        (0.0, 0.0), edge_nm, roughness_nm, distortion_rad, carrier, contrast)
    y, x = scene["y"], scene["x"]
    x_if = np.asarray(scene["attrs"]["interface_x_nm"], float)
    widths = float(width_nm) + float(width_per_v_nm) * np.abs(drops)         # (time, 2)
    drift = _specimen_drift(times, v_drift, specimen_jitter_nm, seed)
    delta_potential = np.stack([_layers(x, x_if, drops[k], widths[k], drift[k, 1]) for k in range(n_t)])  # (time, x)
    shape_leak = _leakage_shape(y, x, scene["attrs"]["vacuum_edge_y_nm"], bool(shield))
    kappa = float(leakage_rad_per_v) * ((1 - float(shield_efficiency)) if shield else 1.0)
    rng_walk = np.random.default_rng([int(seed), 1])
    night = _Night(
        scene=scene, q0=q0, times=times, drift=drift, delta_potential=delta_potential, shape_leak=shape_leak,
        leak_scale=kappa * bias, pixel_nm=pixel_nm,
        fringe=float(fringe_drift_rad_per_s) * times + np.cumsum(rng_walk.normal(0, 0.05, n_t)),
        contrast_t=float(contrast) * np.exp(-float(contrast_loss_per_h) * times / 3600.0),
        carrier_drift=carrier_drift, n_shift=int(n_shifts) if method == "phase-shifting" else 1, dose=dose)

    ref_idx = np.arange(0, n_t, int(reference_every))
    dims = ("time", "y", "x") if night.n_shift == 1 else ("time", "frame", "y", "x")
    attrs = {"beam_energy_kv": float(voltage_kv), "signal_type": "hologram",
             "title": f"simulated biased holograms ({method})"}
    coords = {"time": times, "y": y, "x": x, "bias_v": ("time", bias)}
    if night.n_shift > 1:
        coords["frame"] = np.arange(night.n_shift)
    holos = _holograms(night, seed, dims, coords, attrs, out)
    refs_arr = np.stack([night.group(k, True, np.random.default_rng([int(seed), 3, k])) for k in ref_idx])
    ref_coords = {"time": times[ref_idx], "y": y, "x": x}
    if night.n_shift > 1:
        ref_coords["frame"] = np.arange(night.n_shift)
    refs = _image_like(refs_arr, dims, ref_coords, {**attrs, "title": "simulated vacuum references"})
    truth = _truth(night, bias=bias, drops=drops, widths=widths, x_if=x_if, ref_idx=ref_idx)
    truth.attrs = {"builtin_v": float(builtin_v), "relaxation_s": float(relaxation_s), "asymmetry": float(asymmetry),
                   "shield": bool(shield), "shield_efficiency": float(shield_efficiency),
                   "leakage_rad_per_v": float(leakage_rad_per_v), "interaction_constant_rad_per_v_nm": scene["c_e"],
                   "voltage_kv": float(voltage_kv), "thickness_nm": float(thickness_nm), "pixel_nm": float(pixel_nm),
                   "method": method, "dose_counts_per_px": float(dose), "n_shifts": night.n_shift,
                   "carrier_cycles_per_px": list(q0), "vacuum_edge_y_nm": scene["attrs"]["vacuum_edge_y_nm"],
                   "interface_x_nm": [float(v) for v in x_if], "width0_nm": float(width_nm),
                   "width_per_v_nm": float(width_per_v_nm),
                   "specimen_drift_nm_per_s": [float(v) for v in v_drift],
                   "specimen_jitter_nm": float(specimen_jitter_nm)}
    return holos, refs, _bias_log(times, bt, bv, t_fine, d_fine), truth


def _check_night(*, method, frame_interval_s, relaxation_s, dose, width_nm, asymmetry, shield_efficiency,
                 reference_every, n_shifts, width_per_v_nm, specimen_drift_nm_per_s, specimen_jitter_nm):
    """The night's options checked (messages name the argument); the specimen drift velocity (vy, vx)."""
    if method not in ("fourier", "phase-shifting"):
        raise DataValidationError(f"method: expected 'fourier' or 'phase-shifting', got {method!r}")
    for name, v in (("frame_interval_s", frame_interval_s), ("relaxation_s", relaxation_s), ("dose", dose),
                    ("width_nm", width_nm)):
        _check_positive(name, v)
    if not (-1 < float(asymmetry) < 1):
        raise DataValidationError(f"asymmetry: expected a number in (−1, 1), got {asymmetry!r}")
    if not (0 <= float(shield_efficiency) <= 1):
        raise DataValidationError(f"shield_efficiency: expected a fraction in [0, 1], got {shield_efficiency!r}")
    if not (isinstance(reference_every, (int, np.integer)) and reference_every >= 1):
        raise DataValidationError(f"reference_every: expected an integer ≥ 1, got {reference_every!r}")
    if method == "phase-shifting" and not (isinstance(n_shifts, (int, np.integer)) and n_shifts >= 3):
        raise DataValidationError(f"n_shifts: expected an integer ≥ 3, got {n_shifts!r}")
    if width_per_v_nm < 0:
        raise DataValidationError(f"width_per_v_nm: expected ≥ 0, got {width_per_v_nm!r}")
    try:
        v_drift = np.asarray(specimen_drift_nm_per_s, float)
    except (TypeError, ValueError):
        v_drift = np.empty(0)
    if v_drift.shape != (2,) or not np.all(np.isfinite(v_drift)):
        raise DataValidationError(f"specimen_drift_nm_per_s: expected a finite (vy, vx) pair in nm/s, "
                                  f"got {specimen_drift_nm_per_s!r}")
    if not (isinstance(specimen_jitter_nm, (int, float, np.integer, np.floating))
            and math.isfinite(specimen_jitter_nm) and specimen_jitter_nm >= 0):
        raise DataValidationError(f"specimen_jitter_nm: expected a standard deviation ≥ 0 in nm, "
                                  f"got {specimen_jitter_nm!r}")
    return v_drift


def _timeline(bt, bv, frame_interval_s, relaxation_s, asymmetry):
    """Frame times, the fine grid of exact relaxation, and the bias and layer drops at every frame."""
    total = float(bt[-1])
    n_t = int(math.floor(total / frame_interval_s + 1e-9)) + 1
    if n_t < 2:
        raise DataValidationError(f"programme/log: lasts {total:g} s, shorter than two frame intervals "
                                  f"({frame_interval_s:g} s each)")
    times = np.arange(n_t) * float(frame_interval_s)
    # fine grid holding every frame time: exact relaxation between break points
    t_fine = np.union1d(times, bt[bt <= times[-1]])
    v_fine = np.interp(t_fine, bt, bv)
    # a step is two break points 1 ns apart: right after it the new level holds
    d_fine = _relax(t_fine, v_fine, float(relaxation_s), float(asymmetry))
    at = np.searchsorted(t_fine, times)
    return times, t_fine, d_fine, v_fine[at], d_fine[at]                    # drops (time, 2): left, right


def _specimen_drift(times, v_drift, jitter_nm, seed):
    """Specimen drift (y, x) in nm per time point: linear plus a random walk from its own stream
    (so the photon noise and the fringe walk are those of the drift-free night)."""
    drift = times[:, None] * v_drift[None, :]
    if jitter_nm > 0:
        walk = np.cumsum(np.random.default_rng([int(seed), 4]).normal(0, float(jitter_nm), (times.size, 2)),
                         axis=0)
        drift = drift + (walk - walk[0])
    return drift


def _layers(x, x_if, drops, widths, shift_x):
    """The bias-induced potential change along x: an erf step of height drop_i and width w_i at each interface."""
    from scipy.special import erf

    sig = widths / _ERF_WIDTH
    return sum(drops[i] * 0.5 * (1 + erf((x - (x_if[i] + shift_x)) / (math.sqrt(2) * sig[i]))) for i in range(2))


class _Night:
    """What the microscope sees at each time point: the biased specimen (or vacuum) through drifting fringes."""

    def __init__(self, *, scene, q0, times, drift, delta_potential, shape_leak, leak_scale, pixel_nm, fringe,
                 contrast_t, carrier_drift, n_shift, dose):
        cd = np.asarray(carrier_drift, float)
        if cd.shape != (2,) or not np.all(np.isfinite(cd)):
            raise DataValidationError(f"carrier_drift: expected a (qy, qx) pair in cycles/px, got {carrier_drift!r}")
        self.scene, self.q0, self.times, self.drift, self.cd = scene, q0, times, drift, cd
        self.delta_potential, self.shape_leak, self.leak_scale = delta_potential, shape_leak, leak_scale
        self.pixel_nm, self.fringe, self.contrast_t, self.n_shift = pixel_nm, fringe, contrast_t, n_shift
        self.moving = bool(np.any(drift != 0))
        self.per_exposure = float(dose) / n_shift

    def carrier_at(self, k):
        t = self.times
        return (self.q0[0] + self.cd[0] * t[k] / t[-1], self.q0[1] + self.cd[1] * t[k] / t[-1])

    def group(self, k, vacuum, rng):
        """One time point: the hologram (or group) of the biased specimen, or the vacuum reference."""
        scene, drift = self.scene, self.drift
        sc = scene
        if not vacuum:
            here = scene
            if self.moving and np.any(drift[k] != 0):
                # the analytic scene at the drifted specimen position (exact sub-pixel shift)
                here = _scene(**scene["kw"], shift_px=(drift[k, 0] / self.pixel_nm, drift[k, 1] / self.pixel_nm))
            phase = here["phase"] + np.where(~here["vacuum"],
                                             scene["c_e"] * here["thickness_nm"] * self.delta_potential[k][None, :], 0)
            sc = {**here, "phase": phase + self.leak_scale[k] * self.shape_leak}
        frames = []
        n_shift = self.n_shift
        for j in range(n_shift):
            theta = self.fringe[k] + 2 * np.pi * j / n_shift + (rng.normal(0, 0.2) if n_shift > 1 else 0.0)
            frames.append(_intensity(sc, self.carrier_at(k), self.contrast_t[k], self.per_exposure, theta, rng,
                                     vacuum=vacuum))
        return frames[0] if n_shift == 1 else np.stack(frames)


def _holograms(night, seed, dims, coords, attrs, out):
    """The holograms of every time point: in memory, or frame by frame to a Zarr store (read back lazily)."""
    import xarray as xr

    n_t = night.times.size

    def holo_block(k):
        return night.group(k, False, np.random.default_rng([int(seed), 2, k]))

    if out is None:
        return _image_like(np.stack([holo_block(k) for k in range(n_t)]), dims, coords, attrs)
    import dask.array as dsa

    from ..io import ZarrSeriesWriter, load

    shape = night.scene["phase"].shape
    fshape = tuple(shape) if night.n_shift == 1 else (night.n_shift, *shape)
    template = xr.DataArray(dsa.zeros((n_t, *fshape), dtype=np.float32, chunks=-1), dims=dims,
                            coords={k: v for k, v in coords.items()}, attrs=attrs, name="holograms")
    with ZarrSeriesWriter(out, template, chunks={"time": 1}) as writer:
        for k in range(n_t):
            writer.write({"time": slice(k, k + 1)}, holo_block(k)[None])
    return load(out)


def _bias_log(times, bt, bv, t_fine, d_fine):
    """Bias log on a 1 s grid with an illustrative current: double-layer charging plus a leak."""
    import xarray as xr

    t_log = np.arange(0.0, times[-1] + 1e-9, 1.0)
    v_log = np.interp(t_log, bt, bv)
    dsum = np.interp(t_log, t_fine, np.abs(d_fine).sum(axis=1))
    current = 2e-9 * np.gradient(dsum, t_log) + 1e-10 * v_log
    return xr.Dataset({"voltage": ("time", v_log, {"units": "V"}), "current": ("time", current, {"units": "A"})},
                      coords={"time": ("time", t_log, {"units": "s"})},
                      attrs={"title": "simulated bias log"})


def _truth(night, *, bias, drops, widths, x_if, ref_idx):
    """The truth of the night: per time point and interface, and the static maps."""
    import xarray as xr

    scene, times, drift = night.scene, night.times, night.drift
    n_t = times.size
    pos = np.where(bias >= 0, 1, 0)
    d_pos = np.abs(drops[np.arange(n_t), pos])
    d_neg = np.abs(drops[np.arange(n_t), 1 - pos])
    with np.errstate(invalid="ignore", divide="ignore"):
        asym_t = np.where(d_pos + d_neg > 1e-9, (d_pos - d_neg) / (d_pos + d_neg), np.nan)
    return xr.Dataset(
        {"step_v": (("time", "interface"), drops, {"units": "V"}),
         "width_nm": (("time", "interface"), widths, {"units": "nm"}),
         "position_nm": (("time", "interface"), x_if[None, :] + drift[:, 1:2], {"units": "nm"}),
         "drift_nm": (("time", "axis"), drift, {"units": "nm",
                                                "long_name": "specimen displacement from frame 0 (y, x)"}),
         "bias_v": ("time", bias, {"units": "V"}),
         "asymmetry": ("time", asym_t),
         "positive_interface": ("time", pos),
         "leakage_scale_rad": ("time", night.leak_scale, {"units": "rad"}),
         "contrast": ("time", night.contrast_t),
         "fringe_phase_rad": ("time", night.fringe, {"units": "rad"}),
         "delta_potential": (("time", "x"), night.delta_potential, {"units": "V"}),
         "potential0": (("y", "x"), scene["potential"], {"units": "V"}),
         "thickness_nm": (("y", "x"), scene["thickness_nm"], {"units": "nm"}),
         "vacuum": (("y", "x"), scene["vacuum"]),
         "leakage_shape": (("y", "x"), night.shape_leak)},
        coords={"time": ("time", times, {"units": "s"}), "interface": ["left", "right"],
                "y": ("y", scene["y"], {"units": "nm"}), "x": ("x", scene["x"], {"units": "nm"}), "axis": ["y", "x"],
                "reference_time": ("reference", times[ref_idx], {"units": "s"})})


def _image_like(arr, dims, coords, attrs):
    from ..data import calibrated

    return calibrated(arr, dims, coords=coords, attrs=attrs)
