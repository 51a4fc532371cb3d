# SPDX-License-Identifier: GPL-3.0-or-later
"""Li transport in a polycrystalline LiCoO2 film during charge, rest and discharge.

The film is a 2-D cross-section (``y`` through the film, the solid electrolyte
at ``y`` index 0, the current collector at the last row; ``x`` in-plane). The
state is the Li site occupancy θ ∈ [0, 1]; each pixel column holds
``s·θ`` Li in units of a fully lithiated LiCoO2 column of reference thickness,
where the capacity ``s = co · (1 − f_Co3O4) · t / t̄`` accounts for the Co
density, the Co3O4 share (no Li sites) and the local specimen thickness. Li
moves down occupancy gradients (ideal-solution chemical diffusion),

    ∂(s θ)/∂t = ∇·(s D ∇θ) + sources,

with a 2-D diffusion tensor D per grain (fast along the CoO2 layers, slow
across them, rotated by the grain's orientation), an isotropic fast D on grain
boundaries and an isotropic D in the interface layer. Writing the
equation for θ with the capacity inside keeps a Li-poor interface layer in
equilibrium with the film at rest (uniform θ), so it is Li-poor from the start
and stays so without an artificial sink.

Discretisation: finite volumes on the pixel grid, face diffusivities by
arithmetic averaging, the off-diagonal tensor terms with the usual
four-point transverse gradient; backward Euler in time (unconditionally
stable; the matrix is constant, so it is LU-factorised once with
:func:`scipy.sparse.linalg.splu` and every step is one triangular solve — far
faster than an explicit scheme, whose stable step on the fast boundaries would
be ~0.02 s). Each step removes (charge, from the rows next to the electrolyte)
or adds (discharge) exactly ∫I dt / F, so Li is conserved to rounding error.
On discharge the returning Li is inserted from the collector side, the rows
nearest the collector first — a phenomenological choice that reproduces the
observation of Nomura et al. (2020) without modelling how Li gets there
(``discharge_inlet="electrolyte"`` gives the textbook alternative). The
reported flux includes the transport of that source Li from its side of the
film, so that continuity holds exactly on the pixel faces; ``flux_y``/``flux_x``
are cell-centred (the mean of each pixel's two faces).

References
----------
J. Crank, *The Mathematics of Diffusion*, 2nd ed., Oxford (1975) (anisotropic
diffusion tensors, finite differences).
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
(the observed behaviour this model reproduces: Li leaves toward the electrolyte
on charge, returns from the current-collector side on discharge, moves in-plane
and keeps moving at rest; a Li-poor ~20 nm LiCoO2 + Co3O4 interface layer).
K. Mizushima et al., Mater. Res. Bull. 15 (1980) 783,
doi:10.1016/0025-5408(80)90012-4 (LixCoO2 open-circuit voltage ≈ 3.9–4.2 V).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataValidationError
from ._checks import _check_float, _check_int, _check_shape, _seed_entropy
from ._film import CO3O4_RELATIVE_CO, RHO_CO_NM3, _microstructure, _operators, _smooth_noise  # noqa: F401

__all__ = ["li_transport"]

#: Faraday constant, C/mol (CODATA 2018, exact).
FARADAY = 96485.33212
#: Avogadro constant, 1/mol (exact).
AVOGADRO = 6.02214076e23

_STATES = ("charge", "rest", "discharge")


@dataclass
class _Protocol:
    """Piecewise-constant current: segment edges in s, state, signed current (A, + = charge)."""

    edges: np.ndarray
    states: list
    currents: np.ndarray

    def charge(self, t):
        """Cumulative charge ∫I dt (C) at times ``t`` — exact for piecewise-constant current."""
        t = np.asarray(t, dtype=float)
        seg_charge = np.diff(self.edges) * self.currents
        cum = np.concatenate([[0.0], np.cumsum(seg_charge)])
        k = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, len(self.states) - 1)
        return cum[k] + self.currents[k] * (np.minimum(t, self.edges[-1]) - self.edges[k])

    def state_at(self, t):
        t = np.asarray(t, dtype=float)
        k = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, len(self.states) - 1)
        return np.asarray(self.states, dtype=object)[k], self.currents[k]


def _parse_protocol(protocol, n_frames, frame_time_s):
    """Validate ``protocol`` and scale its durations (in frames) to ``n_frames`` frames."""
    try:
        steps = [(str(s), float(n)) for s, n in protocol]
    except (TypeError, ValueError):
        raise DataValidationError(
            f"protocol must be a sequence of (state, n_frames) pairs such as (('charge', 10), ('rest', 4)), "
            f"got {protocol!r}") from None
    if not steps:
        raise DataValidationError("protocol must hold at least one (state, n_frames) step")
    for state, n in steps:
        if state not in _STATES:
            raise DataValidationError(f"protocol state {state!r} unknown; expected one of {_STATES}")
        if not np.isfinite(n) or n <= 0:
            raise DataValidationError(f"protocol step ({state!r}, {n}) must last > 0 frames")
    total = sum(n for _, n in steps)
    # durations are in frames; when they do not add up to n_frames they are rescaled
    # proportionally, so a short test run keeps the charge/rest/discharge shape
    durations = np.array([n for _, n in steps]) * (n_frames / total) * frame_time_s
    edges = np.concatenate([[0.0], np.cumsum(durations)])
    edges[-1] = n_frames * frame_time_s
    return [s for s, _ in steps], edges


def _distribute(amount, room, *, from_top, max_share=0.5):
    """Split ``amount`` over pixels, filling rows in order from one side of the film.

    ``room`` is what each pixel can give (its Li, on charge) or take (its free sites, on
    discharge). Rows are used in order from the electrolyte (``from_top``) or from the
    collector; within a row the share is ∝ ``room`` and at most ``max_share · room``, so an
    implicit step never overdraws a pixel, and what one row cannot take goes to the next —
    Li is exchanged as close to the side where it enters or leaves as the content allows.
    The total is always exactly ``amount``.
    """
    out = np.zeros_like(room)
    left = float(amount)
    rows = range(room.shape[0]) if from_top else range(room.shape[0] - 1, -1, -1)
    for i in rows:
        r = np.clip(room[i], 0.0, None)
        capacity = max_share * float(r.sum())
        if capacity <= 0:
            continue
        take = min(left, capacity)
        out[i] = take * r / r.sum()
        left -= take
        if left <= 1e-12 * amount:
            return out
    raise DataValidationError(
        "the current moves more Li in one step than the film can exchange; lower current_a or raise substeps")


def _ocv(x):
    """Open-circuit voltage (V) of LixCoO2, a smooth fit of the 3.9–4.2 V plateau region."""
    x = np.clip(x, 1e-3, 1.0 - 1e-3)
    return 3.93 + 0.5 * (1.0 - x) + 0.0257 * np.log((1.0 - x) / x)


def _params(*, shape=(32, 48), n_frames=24, pixel_nm=5.0, frame_time_s=60.0,
            protocol=(("charge", 10), ("rest", 4), ("discharge", 10)), current_a=None, seed=0,
            grain_size_nm=50.0, diffusivity_nm2_s=(3.0, 0.15), boundary_diffusivity_nm2_s=300.0,
            layer_diffusivity_nm2_s=200.0, layer_nm=20.0, co3o4_fraction=0.6, thickness_nm=80.0,
            initial_occupancy=0.97, charge_depth=0.3, discharge_inlet="collector",
            resistance_ohm=None, substeps=8):
    """The transport problem's options, validated (the messages name the keyword); one namespace."""
    from types import SimpleNamespace

    ny, nx = _check_shape(shape)
    n_frames = _check_int(n_frames, "n_frames", 1)
    substeps = _check_int(substeps, "substeps", 2)
    substeps += substeps % 2  # even, so that a substep ends at every frame mid-time
    pixel_nm = _check_float(pixel_nm, "pixel_nm")
    frame_time_s = _check_float(frame_time_s, "frame_time_s")
    grain_size_nm = _check_float(grain_size_nm, "grain_size_nm")
    try:
        d_fast, d_slow = (float(v) for v in diffusivity_nm2_s)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"diffusivity_nm2_s must be a pair (along, across the CoO2 layers) in nm^2/s, got {diffusivity_nm2_s!r}"
        ) from None
    _check_float(d_fast, "diffusivity_nm2_s[0]")
    _check_float(d_slow, "diffusivity_nm2_s[1]")
    d_gb = _check_float(boundary_diffusivity_nm2_s, "boundary_diffusivity_nm2_s")
    d_layer = _check_float(layer_diffusivity_nm2_s, "layer_diffusivity_nm2_s")
    layer_nm = _check_float(layer_nm, "layer_nm", allow_zero=True)
    thickness_nm = _check_float(thickness_nm, "thickness_nm")
    f = _check_float(co3o4_fraction, "co3o4_fraction", allow_zero=True)
    if f >= 1.0:
        raise DataValidationError(f"co3o4_fraction must be in [0, 1), got {co3o4_fraction!r}")
    theta0 = np.asarray(initial_occupancy, dtype=float) if np.ndim(initial_occupancy) else None
    if theta0 is None:
        theta0 = np.full((ny, nx), _check_float(initial_occupancy, "initial_occupancy"))
    if theta0.shape != (ny, nx) or not np.all(np.isfinite(theta0)) or theta0.min() < 0 or theta0.max() > 1:
        raise DataValidationError(
            f"initial_occupancy must be a number or a {(ny, nx)} array with values in [0, 1], "
            f"got shape {theta0.shape}, range {np.nanmin(theta0):.3g}..{np.nanmax(theta0):.3g}")
    if discharge_inlet not in ("collector", "electrolyte"):
        raise DataValidationError(
            f"discharge_inlet must be 'collector' or 'electrolyte', got {discharge_inlet!r}")
    if 1.2 * layer_nm > (ny - 2) * pixel_nm:  # the layer is up to 20 % deeper where it is rough
        raise DataValidationError(
            f"layer_nm={layer_nm:g} leaves no film: with {ny} rows × {pixel_nm:g} nm, layer_nm must be "
            f"≤ {(ny - 2) * pixel_nm / 1.2:.3g} (more rows, a larger pixel_nm or a thinner layer_nm)")
    states, edges = _parse_protocol(protocol, n_frames, frame_time_s)
    return SimpleNamespace(
        ny=ny, nx=nx, n_frames=n_frames, substeps=substeps, pixel_nm=pixel_nm, frame_time_s=frame_time_s,
        grain_size_nm=grain_size_nm, d_fast=d_fast, d_slow=d_slow, d_gb=d_gb, d_layer=d_layer, layer_nm=layer_nm,
        thickness_nm=thickness_nm, f=f, theta0=theta0, discharge_inlet=discharge_inlet, states=states, edges=edges,
        protocol=protocol, current_a=current_a, charge_depth=charge_depth, resistance_ohm=resistance_ohm, seed=seed)


def _drive(p, total_li0, capacity_mol, n_ref, cap):
    """The protocol's current, the time grid of the implicit steps, the charge passed and the resistance."""
    # protocol current: default removes `charge_depth` of the Li over the charge steps
    charge_time = float(sum(np.diff(p.edges)[k] for k, s in enumerate(p.states) if s == "charge"))
    if p.current_a is None:
        if charge_time > 0:
            depth = _check_float(p.charge_depth, "charge_depth")
            current = depth * total_li0 * FARADAY / charge_time
        else:
            current = 0.05 * total_li0 * FARADAY / (p.n_frames * p.frame_time_s)
    else:
        current = _check_float(p.current_a, "current_a", allow_zero=True)
    sign = {"charge": 1.0, "rest": 0.0, "discharge": -1.0}
    prot = _Protocol(p.edges, p.states, np.array([sign[s] * current for s in p.states]))
    li_removed = prot.charge(p.edges) / FARADAY  # mol; extremes of a piecewise-linear charge are at edges
    if li_removed.max() > 0.98 * total_li0:
        raise DataValidationError(
            f"current_a={current:.3g} A would remove {li_removed.max():.3g} mol Li but the film holds "
            f"{total_li0:.3g} mol; lower current_a or charge_depth")
    if (total_li0 - li_removed.min()) > 0.98 * capacity_mol:
        raise DataValidationError(
            f"current_a={current:.3g} A would insert more Li than the film has sites for "
            f"({capacity_mol:.3g} mol); lower current_a or shorten the discharge")
    # at least enough steps that one step moves ≤ 1 % of the film's Li (short runs with the
    # default protocol pass a third of the Li in under a frame)
    per_frame = current * p.frame_time_s / FARADAY * AVOGADRO / n_ref / float(np.sum(cap))
    substeps = max(p.substeps, int(np.ceil(per_frame / 0.01)))
    substeps += substeps % 2
    times = p.edges[-1] * np.arange(p.n_frames * substeps + 1) / (p.n_frames * substeps)
    if p.resistance_ohm is None:
        # interface resistance giving a 60 mV IR drop at the protocol current
        resistance = 0.06 / current if current > 0 else 0.0
    else:
        resistance = _check_float(p.resistance_ohm, "resistance_ohm", allow_zero=True)
    return current, prot, substeps, times, prot.charge(times), resistance


def _march(p, *, cap, site, layer, n_ref, substeps, times, q, jy_op, jx_op, lap):
    """Backward Euler over every substep: Li per frame, mean fluxes, the surface occupancy and Li total."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import splu

    ny, nx, n_frames, pixel_nm = p.ny, p.nx, p.n_frames, p.pixel_nm
    dt = p.frame_time_s / substeps
    capv = cap.ravel()
    lu = splu((diags(capv / dt) - lap).tocsc())

    theta = p.theta0.ravel().copy()
    li = np.empty((n_frames, ny, nx), np.float32)
    flux_y = np.zeros((n_frames, ny, nx))
    flux_x = np.zeros((n_frames, ny, nx))
    fine_theta_surface = np.empty(times.size)
    fine_li_total = np.empty(times.size)
    surface = layer if layer.any() else (np.arange(ny) == 0)[:, None] & np.ones((1, nx), bool)
    surface_w = cap[surface]
    fine_theta_surface[0] = float(np.sum(p.theta0[surface] * surface_w) / surface_w.sum())
    fine_li_total[0] = float(np.sum(capv * theta)) * n_ref / AVOGADRO
    # Li leaves at the electrolyte side on charge and enters from the collector (or electrolyte)
    # side on discharge; _distribute keeps the exchange next to that side and 0 <= θ <= 1
    from_bottom = p.discharge_inlet == "collector"
    dq = np.diff(q) / FARADAY * AVOGADRO / n_ref  # reference columns of Li leaving per step (+ = out)
    from .._progress import progress

    for n in progress(range(times.size - 1), desc="Li transport", unit="step"):
        th2 = theta.reshape(ny, nx)
        amount = dq[n]
        if amount > 0:  # charge: Li leaves through the electrolyte interface, where Li is available
            src = -_distribute(amount, cap * np.clip(th2 - 0.01, 0.0, None), from_top=True)
            top_entry = True
        elif amount < 0:  # discharge: Li enters where sites are free
            # fill sites to at most 99 % (and drain them to 1 % above): the anisotropic
            # (cross-term) stencil is not monotone and would overshoot a pixel driven to 1 or 0
            src = _distribute(-amount, cap * np.clip(0.99 - th2, 0.0, None), from_top=not from_bottom)
            top_entry = not from_bottom
        else:
            src = np.zeros((ny, nx))
            top_entry = True
        theta = lu.solve(capv * theta / dt + src.ravel() / dt)
        frame, sub = divmod(n, substeps)
        # y-fluxes on the ny+1 faces (row i's upper face is i): diffusion inside, plus the
        # flux that carries the source Li from its side of the film to where it is inserted,
        # so that d(sθ)/dt = -div(flux) holds exactly in every pixel
        fy = np.zeros((ny + 1, nx))
        fy[1:-1] = -(jy_op @ theta).reshape(ny - 1, nx)
        if top_entry:
            fy[:-1] += pixel_nm / dt * np.cumsum(src[::-1], axis=0)[::-1]
        else:
            fy[1:] -= pixel_nm / dt * np.cumsum(src, axis=0)
        fx = np.zeros((ny, nx + 1))
        fx[:, 1:-1] = -(jx_op @ theta).reshape(ny, nx - 1)
        flux_y[frame] += 0.5 * (fy[:-1] + fy[1:]) / substeps
        flux_x[frame] += 0.5 * (fx[:, :-1] + fx[:, 1:]) / substeps
        if sub == substeps // 2 - 1:
            li[frame] = (theta.reshape(ny, nx) * site).astype(np.float32)
        th2 = theta.reshape(ny, nx)
        fine_theta_surface[n + 1] = float(np.sum(th2[surface] * surface_w) / surface_w.sum())
        fine_li_total[n + 1] = float(np.sum(capv * theta)) * n_ref / AVOGADRO
    return li, flux_y, flux_x, fine_theta_surface, fine_li_total


def _simulate(**kwargs):
    """Solve the transport problem; return (frame-level dict, fine-time log dict, attrs)."""
    p = _params(**kwargs)
    ny, nx, n_frames = p.ny, p.nx, p.n_frames
    rng = np.random.default_rng(_seed_entropy(p.seed))
    grains, boundaries, angles, layer, thick, co = _microstructure(
        rng, ny, nx, p.pixel_nm, p.grain_size_nm, p.layer_nm, p.thickness_nm, p.f)
    site = np.where(layer, 1.0 - p.f, 1.0)  # Li sites per Co
    cap = co * site * thick / p.thickness_nm  # capacity s, in reference-column units
    n_ref = RHO_CO_NM3 * p.thickness_nm * p.pixel_nm**2  # Li atoms in one reference column
    total_li0 = float(np.sum(cap * p.theta0)) * n_ref / AVOGADRO  # mol
    capacity_mol = float(np.sum(cap)) * n_ref / AVOGADRO
    current, prot, substeps, times, q, resistance = _drive(p, total_li0, capacity_mol, n_ref, cap)
    jy_op, jx_op, lap = _operators(p, grains, boundaries, angles, layer, cap)
    li, flux_y, flux_x, fine_theta_surface, fine_li_total = _march(
        p, cap=cap, site=site, layer=layer, n_ref=n_ref, substeps=substeps, times=times, q=q, jy_op=jy_op,
        jx_op=jx_op, lap=lap)

    fine_state, fine_current = prot.state_at(np.minimum(times, p.edges[-1] * (1 - 1e-12)))
    fine_voltage = _ocv(fine_theta_surface * 0.999) + fine_current * resistance
    mid = (np.arange(n_frames) + 0.5) * p.frame_time_s
    mid_idx = np.arange(n_frames) * substeps + substeps // 2
    state_mid, current_mid = prot.state_at(mid)
    frames = {
        "time": mid, "li": li, "flux_y": flux_y.astype(np.float32), "flux_x": flux_x.astype(np.float32),
        "grains": grains, "boundaries": boundaries, "interface_layer": layer,
        "co": co.astype(np.float32), "thickness_nm": thick.astype(np.float32),
        "voltage": fine_voltage[mid_idx], "current": current_mid, "state": state_mid.astype(str),
        "charge_c": q[mid_idx], "li_total_mol": fine_li_total[mid_idx],
        "fast_axis_deg": np.where(boundaries | layer, np.nan, np.degrees(angles[grains])).astype(np.float32),
    }
    log = {"time": times, "voltage": fine_voltage, "current": fine_current, "state": fine_state.astype(str),
           "charge_c": q, "li_total_mol": fine_li_total}
    attrs = {
        "pixel_nm": p.pixel_nm, "frame_time_s": p.frame_time_s, "electrolyte_side": "y0",
        "collector_side": f"y{ny - 1}", "faraday_c_per_mol": FARADAY, "avogadro_per_mol": AVOGADRO,
        "co_density_nm3": float(RHO_CO_NM3), "reference_thickness_nm": p.thickness_nm,
        "li_initial_mol": total_li0, "capacity_mol": capacity_mol, "current_a": current,
        "resistance_ohm": resistance,
        "seed": int(p.seed),
        "grain_size_nm": p.grain_size_nm, "diffusivity_nm2_s": [p.d_fast, p.d_slow],
        "boundary_diffusivity_nm2_s": p.d_gb, "layer_diffusivity_nm2_s": p.d_layer, "layer_nm": p.layer_nm,
        "co3o4_fraction": p.f, "discharge_inlet": p.discharge_inlet,
        "protocol": [[s, float(n)] for s, n in p.protocol],
        "flux_convention": ("flux_y/flux_x in nm/s of Li fraction: d(li*co*t/t_ref)/dt = -div(flux); "
                            "+y points from the electrolyte (y index 0) toward the current collector"),
        "current_convention": "current > 0 on charge (Li leaves the cathode); charge_c = integral of current dt",
    }
    return frames, log, attrs


def _frames_dataset(frames, attrs, ny, nx, pixel_nm):
    import xarray as xr

    y = (np.arange(ny) + 0.5) * pixel_nm
    x = (np.arange(nx) + 0.5) * pixel_nm
    coords = {"time": ("time", frames["time"], {"units": "s"}), "y": ("y", y, {"units": "nm"}),
              "x": ("x", x, {"units": "nm"})}
    tyx, yx, t = ("time", "y", "x"), ("y", "x"), ("time",)
    spec = {
        "li": (tyx, frames["li"], {"long_name": "Li fraction x in LixCoO2 (Li per Co), at frame mid-time",
                                   "units": "1"}),
        "flux_y": (tyx, frames["flux_y"], {"long_name": "Li flux along y, mean over the frame",
                                           "units": "nm/s", "positive": "toward the current collector"}),
        "flux_x": (tyx, frames["flux_x"], {"long_name": "Li flux along x, mean over the frame",
                                           "units": "nm/s", "positive": "increasing x"}),
        "co": (yx, frames["co"], {"long_name": "Co density relative to LiCoO2", "units": "1"}),
        "grains": (yx, frames["grains"], {"long_name": "grain label"}),
        "boundaries": (yx, frames["boundaries"], {"long_name": "grain-boundary fast paths"}),
        "interface_layer": (yx, frames["interface_layer"],
                            {"long_name": "Li-poor LiCoO2 + Co3O4 interface layer"}),
        "thickness_nm": (yx, frames["thickness_nm"], {"long_name": "specimen thickness", "units": "nm"}),
        "fast_axis_deg": (yx, frames["fast_axis_deg"],
                          {"long_name": "fast diffusion (CoO2 layer) direction, from +x toward +y; NaN where isotropic",
                           "units": "degree"}),
        "voltage": (t, frames["voltage"], {"units": "V"}),
        "current": (t, frames["current"], {"units": "A", "positive": "charge"}),
        "state": (t, frames["state"], {}),
        "charge_c": (t, frames["charge_c"], {"units": "C", "long_name": "cumulative charge passed"}),
        "li_total_mol": (t, frames["li_total_mol"], {"units": "mol", "long_name": "Li in the film"}),
    }
    return xr.Dataset({k: xr.Variable(*v) for k, v in spec.items()}, coords=coords, attrs=attrs)


def _log_dataset(log):
    import xarray as xr

    return xr.Dataset(
        {"voltage": ("time", log["voltage"], {"units": "V"}),
         "current": ("time", log["current"], {"units": "A", "positive": "charge"}),
         "state": ("time", log["state"]),
         "charge_c": ("time", log["charge_c"], {"units": "C"})},
        coords={"time": ("time", log["time"], {"units": "s"})},
        attrs={"title": "simulated electrochemistry log"},
    )


def li_transport(*, shape=(32, 48), n_frames=24, pixel_nm=5.0, frame_time_s=60.0,
                 protocol=(("charge", 10), ("rest", 4), ("discharge", 10)), current_a=None, seed=0, scene=None,
                 **options):
    """Finite-volume Li transport in a polycrystalline LiCoO2 film (charge → rest → discharge).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels; ``y`` runs through the film from the solid
        electrolyte (row 0) to the current collector (last row), ``x`` in-plane.
    n_frames : int
        Number of frames; frame ``k`` spans ``[k, k+1)·frame_time_s``.
    pixel_nm : float
        Pixel size in nm.
    frame_time_s : float
        Frame duration in s.
    protocol : sequence of (state, frames)
        States ``"charge"``, ``"rest"``, ``"discharge"`` with durations in frames;
        rescaled proportionally if they do not add up to ``n_frames``.
    current_a : float, optional
        Current magnitude in A (positive). Default: the current that removes
        ``charge_depth`` (0.3) of the film's Li over the charge steps.
    seed : int
        Seed of the microstructure (grains, orientations, layer roughness, thickness).
    **options
        ``grain_size_nm`` (50), ``diffusivity_nm2_s`` ((3.0, 0.15): along/across the
        CoO2 layers; 1 nm^2/s = 1e-14 cm^2/s, the low end of reported LiCoO2 values, chosen
        so that grain-scale contrast survives 1-min frames on a 5 nm grid),
        ``boundary_diffusivity_nm2_s`` (300), ``layer_diffusivity_nm2_s`` (200),
        ``layer_nm`` (20), ``co3o4_fraction`` (0.6 of the layer's Co),
        ``thickness_nm`` (80), ``initial_occupancy`` (0.97, or a (ny, nx) array of
        site occupancies), ``charge_depth`` (0.3), ``discharge_inlet``
        (``"collector"``, as observed by Nomura et al. 2020, or ``"electrolyte"``),
        ``resistance_ohm``
        (default: 60 mV IR drop), ``substeps`` (minimum backward-Euler steps per frame, 8;
        raised so that one step moves at most 1 % of the film's Li).
    scene : Scene, optional
        All of the above in one :class:`~ionscope.simulate.Scene` (its other fields are
        ignored); a keyword that differs from its default here overrides the scene's field.

    Returns
    -------
    xarray.Dataset
        ``li`` (time, y, x): Li fraction x in LixCoO2 (Li per Co) at each frame's
        mid-time; ``flux_y``, ``flux_x`` (time, y, x): true Li flux in nm/s of Li
        fraction, mean over the frame, with ``d(li·co·t/t_ref)/dt = −∇·flux`` and
        +y toward the collector (cell-centred: the mean of each pixel's two faces);
        ``co``, ``grains``, ``boundaries``, ``interface_layer``, ``thickness_nm``,
        ``fast_axis_deg`` (y, x); ``voltage`` (V: a smooth LixCoO2 open-circuit
        curve at the electrolyte-side occupancy plus I·R, so it relaxes at rest), ``current``
        (A, + on charge), ``state``, ``charge_c`` (C, ∫I dt), ``li_total_mol`` on
        ``time``; attrs ``pixel_nm``, ``electrolyte_side="y0"``,
        ``faraday_c_per_mol``, ``li_initial_mol``, ``seed``, ...
        Li is conserved: ``li_total_mol − li_initial_mol = −charge_c / F``.

    Raises
    ------
    DataValidationError
        A bad shape, protocol, diffusivity, or a current that would remove more
        Li than the film holds.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.
    J. Crank, The Mathematics of Diffusion, 2nd ed., Oxford (1975).

    Examples
    --------
    >>> ds = li_transport(shape=(16, 16), n_frames=6)
    >>> bool(abs(float(ds.li_total_mol[-1] - ds.attrs["li_initial_mol"]
    ...                + ds.charge_c[-1] / ds.attrs["faraday_c_per_mol"])) < 1e-6 * ds.attrs["li_initial_mol"])
    True
    """
    from ._scene import TRANSPORT_OPTIONS, from_scene, scene_options

    kw = from_scene(li_transport, scene, dict(shape=shape, n_frames=n_frames, pixel_nm=pixel_nm,
                                              frame_time_s=frame_time_s, protocol=protocol, current_a=current_a,
                                              seed=seed))
    options = scene_options(scene, TRANSPORT_OPTIONS.keys() - kw.keys(), options)
    _check_options(options, where="li_transport")
    frames, _, attrs = _simulate(**kw, **options)
    return _frames_dataset(frames, attrs, *_check_shape(kw["shape"]), float(kw["pixel_nm"]))


def _check_options(options, *, where):
    """Unknown keyword options give a DataValidationError naming the valid ones (not a TypeError)."""
    import inspect

    valid = set(inspect.signature(_params).parameters)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise DataValidationError(f"{where}: unknown option(s) {unknown}; expected some of {sorted(valid)}")


def transport_with_log(**kwargs):
    """:func:`li_transport` plus its finely sampled electrochemistry log (for operando_eels)."""
    _check_options(kwargs, where="transport")
    shape = _check_shape(kwargs.get("shape", (32, 48)))
    frames, log, attrs = _simulate(**kwargs)
    return _frames_dataset(frames, attrs, *shape, attrs["pixel_nm"]), _log_dataset(log)
