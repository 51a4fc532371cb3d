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

__all__ = ["li_transport"]

#: Faraday constant, C/mol (CODATA 2018, exact).
FARADAY = 96485.33212
#: Avogadro constant, 1/mol (exact).
AVOGADRO = 6.02214076e23
#: Co (and Li-site) number density of LiCoO2 in nm^-3: Z = 3 formula units in the
#: hexagonal cell a = 2.816 Å, c = 14.05 Å (Mizushima 1980; V = 96.5 Å^3).
RHO_CO_NM3 = 3.0 / (np.sqrt(3.0) / 2.0 * 0.2816**2 * 1.405)
#: Co density of Co3O4 relative to LiCoO2 (24 Co in a = 8.08 Å spinel cell).
CO3O4_RELATIVE_CO = (24.0 / 0.808**3) / RHO_CO_NM3

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


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataValidationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(value, name, *, positive=True, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or (positive and (v < 0 or (v == 0 and not allow_zero))):
        expected = ">= 0" if allow_zero else "> 0"
        raise DataValidationError(f"{name} must be a finite number {expected}, got {value!r}")
    return v


def _seed_entropy(seed):
    """The user's seed as SeedSequence entropy; only non-negative integers keep runs reproducible."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise DataValidationError(f"seed must be a non-negative integer (results must be reproducible), got {seed!r}")


def _check_shape(shape):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)):
        raise DataValidationError(f"shape must be a pair of integers (ny, nx), got {shape!r}")
    if min(shape) < 4:
        raise DataValidationError(f"shape must be at least (4, 4) pixels, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


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


def _smooth_noise(rng, shape, scale_px):
    """Unit-variance, zero-mean random field with correlation length ~scale_px (Gaussian filtered)."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), scale_px, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _microstructure(rng, ny, nx, pixel_nm, grain_size_nm, layer_nm, thickness_nm, f_co3o4):
    """Voronoi grains, 1-px boundaries, interface layer, thickness and Co density maps."""
    from scipy.spatial import cKDTree

    n_grains = max(1, int(round(ny * nx * pixel_nm**2 / grain_size_nm**2)))
    seeds = rng.uniform([0.0, 0.0], [ny, nx], size=(n_grains, 2))
    yy, xx = np.meshgrid(np.arange(ny) + 0.5, np.arange(nx) + 0.5, indexing="ij")
    _, grains = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    grains = grains.reshape(ny, nx).astype(np.int32)
    boundaries = np.zeros((ny, nx), bool)
    dy = grains[1:, :] != grains[:-1, :]
    dx = grains[:, 1:] != grains[:, :-1]
    boundaries[1:, :] |= dy
    boundaries[:, 1:] |= dx
    # CoO2-layer orientation of each grain in the image plane
    angles = rng.uniform(0.0, np.pi, n_grains)
    # interface layer depth: layer_nm with a gentle roughness of ±20 % along x
    rough = 1.0 + 0.2 * np.clip(_smooth_noise(rng, (1, nx), max(nx / 8.0, 1.0))[0], -1.5, 1.5) / 1.5
    depth_nm = layer_nm * rough
    layer = (yy * pixel_nm) <= depth_nm[None, :]
    # the layer holds Co3O4 where Li sites are absent; no grain boundaries are resolved inside it
    boundaries &= ~layer
    # specimen thickness: a FIB wedge along x plus mild roughness
    thick = thickness_nm * (1.0 + 0.15 * (xx / nx - 0.5) + 0.04 * _smooth_noise(rng, (ny, nx), 3.0))
    # Co density relative to LiCoO2: Co3O4 holds more Co per volume
    co = np.where(layer, (1.0 - f_co3o4) + f_co3o4 * CO3O4_RELATIVE_CO, 1.0)
    return grains, boundaries, angles, layer, thick, co


def _face_operators(ny, nx, h):
    """Sparse gradient operators on y- and x-faces, and transverse gradients averaged onto them."""
    import scipy.sparse as sp

    idx = np.arange(ny * nx).reshape(ny, nx)
    # y-faces between (i, j) and (i+1, j)
    a, b = idx[:-1, :].ravel(), idx[1:, :].ravel()
    nfy = a.size
    rows = np.arange(nfy)
    gy = sp.csr_matrix((np.r_[-np.ones(nfy), np.ones(nfy)] / h, (np.r_[rows, rows], np.r_[a, b])),
                       shape=(nfy, ny * nx))
    # ∂θ/∂x on a y-face: centred difference, averaged over the two cells (one-sided at the x edges)
    jj = np.broadcast_to(np.arange(nx), (ny - 1, nx))
    ii = np.broadcast_to(np.arange(ny - 1)[:, None], (ny - 1, nx))
    jp, jm = np.minimum(jj + 1, nx - 1), np.maximum(jj - 1, 0)
    w = (1.0 / (2.0 * (jp - jm) * h)).ravel()
    r4 = np.tile(rows, 4)
    c4 = np.r_[idx[ii, jp].ravel(), idx[ii + 1, jp].ravel(), idx[ii, jm].ravel(), idx[ii + 1, jm].ravel()]
    cxy = sp.csr_matrix((np.r_[w, w, -w, -w], (r4, c4)), shape=(nfy, ny * nx))
    # x-faces between (i, j) and (i, j+1)
    a, b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    nfx = a.size
    rows = np.arange(nfx)
    gx = sp.csr_matrix((np.r_[-np.ones(nfx), np.ones(nfx)] / h, (np.r_[rows, rows], np.r_[a, b])),
                       shape=(nfx, ny * nx))
    ii = np.broadcast_to(np.arange(ny)[:, None], (ny, nx - 1))
    jj = np.broadcast_to(np.arange(nx - 1), (ny, nx - 1))
    ip, im = np.minimum(ii + 1, ny - 1), np.maximum(ii - 1, 0)
    w = (1.0 / (2.0 * (ip - im) * h)).ravel()
    r4 = np.tile(rows, 4)
    c4 = np.r_[idx[ip, jj].ravel(), idx[ip, jj + 1].ravel(), idx[im, jj].ravel(), idx[im, jj + 1].ravel()]
    cyx = sp.csr_matrix((np.r_[w, w, -w, -w], (r4, c4)), shape=(nfx, ny * nx))
    return gy, cxy, gx, cyx


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


def _simulate(*, shape=(32, 48), n_frames=24, pixel_nm=5.0, frame_time_s=60.0,
              protocol=(("charge", 10), ("rest", 4), ("discharge", 10)), current_a=None, seed=0,
              grain_size_nm=50.0, diffusivity_nm2_s=(3.0, 0.15), boundary_diffusivity_nm2_s=300.0,
              layer_diffusivity_nm2_s=200.0, layer_nm=20.0, co3o4_fraction=0.6, thickness_nm=80.0,
              initial_occupancy=0.97, charge_depth=0.3, discharge_inlet="collector",
              resistance_ohm=None, substeps=8):
    """Solve the transport problem; return (frame-level dict, fine-time log dict, attrs)."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import splu

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

    rng = np.random.default_rng(_seed_entropy(seed))
    grains, boundaries, angles, layer, thick, co = _microstructure(
        rng, ny, nx, pixel_nm, grain_size_nm, layer_nm, thickness_nm, f)
    site = np.where(layer, 1.0 - f, 1.0)  # Li sites per Co
    cap = co * site * thick / thickness_nm  # capacity s, in reference-column units
    n_ref = RHO_CO_NM3 * thickness_nm * pixel_nm**2  # Li atoms in one reference column
    total_li0 = float(np.sum(cap * theta0)) * n_ref / AVOGADRO  # mol

    # protocol current: default removes `charge_depth` of the Li over the charge steps
    charge_time = float(sum(np.diff(edges)[k] for k, s in enumerate(states) if s == "charge"))
    if current_a is None:
        if charge_time > 0:
            depth = _check_float(charge_depth, "charge_depth")
            current = depth * total_li0 * FARADAY / charge_time
        else:
            current = 0.05 * total_li0 * FARADAY / (n_frames * frame_time_s)
    else:
        current = _check_float(current_a, "current_a", allow_zero=True)
    sign = {"charge": 1.0, "rest": 0.0, "discharge": -1.0}
    prot = _Protocol(edges, states, np.array([sign[s] * current for s in states]))
    li_removed = prot.charge(edges) / FARADAY  # mol; extremes of a piecewise-linear charge are at edges
    if li_removed.max() > 0.98 * total_li0:
        raise DataValidationError(
            f"current_a={current:.3g} A would remove {li_removed.max():.3g} mol Li but the film holds "
            f"{total_li0:.3g} mol; lower current_a or charge_depth")
    capacity_mol = float(np.sum(cap)) * n_ref / AVOGADRO
    if (total_li0 - li_removed.min()) > 0.98 * capacity_mol:
        raise DataValidationError(
            f"current_a={current:.3g} A would insert more Li than the film has sites for "
            f"({capacity_mol:.3g} mol); lower current_a or shorten the discharge")
    # at least enough steps that one step moves ≤ 1 % of the film's Li (short runs with the
    # default protocol pass a third of the Li in under a frame)
    per_frame = current * frame_time_s / FARADAY * AVOGADRO / n_ref / float(np.sum(cap))
    substeps = max(substeps, int(np.ceil(per_frame / 0.01)))
    substeps += substeps % 2
    times = edges[-1] * np.arange(n_frames * substeps + 1) / (n_frames * substeps)
    q = prot.charge(times)
    if resistance_ohm is None:
        # interface resistance giving a 60 mV IR drop at the protocol current
        resistance = 0.06 / current if current > 0 else 0.0
    else:
        resistance = _check_float(resistance_ohm, "resistance_ohm", allow_zero=True)

    # diffusion tensor field (nm^2/s): rotated (fast, slow) per grain; isotropic on boundaries/layer
    phi = angles[grains]
    c, s_ = np.cos(phi), np.sin(phi)
    dxx = d_fast * c**2 + d_slow * s_**2
    dyy = d_fast * s_**2 + d_slow * c**2
    dxy = (d_fast - d_slow) * c * s_
    for mask, d_iso in ((boundaries, d_gb), (layer, d_layer)):
        dxx = np.where(mask, d_iso, dxx)
        dyy = np.where(mask, d_iso, dyy)
        dxy = np.where(mask, 0.0, dxy)
    k = {name: cap * d for name, d in (("xx", dxx), ("yy", dyy), ("xy", dxy))}
    # face coefficients: harmonic mean of the two cells' s·D for the normal component (fluxes
    # across a face pass through both half-cells in series, so a fast boundary pixel does not
    # speed up its slow neighbour), arithmetic mean for the transverse (cross) term
    def harmonic(a, b):
        return 2.0 * a * b / (a + b)

    kyy_f = harmonic(k["yy"][:-1], k["yy"][1:])
    kyx_f = 0.5 * (k["xy"][:-1] + k["xy"][1:])
    kxx_f = harmonic(k["xx"][:, :-1], k["xx"][:, 1:])
    kxy_f = 0.5 * (k["xy"][:, :-1] + k["xy"][:, 1:])
    gy, cxy, gx, cyx = _face_operators(ny, nx, pixel_nm)
    jy_op = (diags(kyy_f.ravel()) @ gy + diags(kyx_f.ravel()) @ cxy).tocsr()  # -J_y on y-faces
    jx_op = (diags(kxx_f.ravel()) @ gx + diags(kxy_f.ravel()) @ cyx).tocsr()  # -J_x on x-faces
    lap = -(gy.T @ jy_op + gx.T @ jx_op)  # ∇·(sD∇θ)
    dt = frame_time_s / substeps
    capv = cap.ravel()
    lu = splu((diags(capv / dt) - lap).tocsc())

    theta = theta0.ravel().copy()
    li = np.empty((n_frames, ny, nx), np.float32)
    flux_y = np.zeros((n_frames, ny, nx))
    flux_x = np.zeros((n_frames, ny, nx))
    fine_theta_surface = np.empty(times.size)
    fine_li_total = np.empty(times.size)
    surface = layer if layer.any() else (np.arange(ny) == 0)[:, None] & np.ones((1, nx), bool)
    surface_w = cap[surface]
    fine_theta_surface[0] = float(np.sum(theta0[surface] * surface_w) / surface_w.sum())
    fine_li_total[0] = float(np.sum(capv * theta)) * n_ref / AVOGADRO
    # Li leaves at the electrolyte side on charge and enters from the collector (or electrolyte)
    # side on discharge; _distribute keeps the exchange next to that side and 0 <= θ <= 1
    from_bottom = discharge_inlet == "collector"
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

    fine_state, fine_current = prot.state_at(np.minimum(times, edges[-1] * (1 - 1e-12)))
    fine_voltage = _ocv(fine_theta_surface * 0.999) + fine_current * resistance
    mid = (np.arange(n_frames) + 0.5) * frame_time_s
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
        "pixel_nm": pixel_nm, "frame_time_s": frame_time_s, "electrolyte_side": "y0",
        "collector_side": f"y{ny - 1}", "faraday_c_per_mol": FARADAY, "avogadro_per_mol": AVOGADRO,
        "co_density_nm3": float(RHO_CO_NM3), "reference_thickness_nm": thickness_nm,
        "li_initial_mol": total_li0, "capacity_mol": capacity_mol, "current_a": current,
        "resistance_ohm": resistance,
        "seed": int(seed),
        "grain_size_nm": grain_size_nm, "diffusivity_nm2_s": [d_fast, d_slow],
        "boundary_diffusivity_nm2_s": d_gb, "layer_diffusivity_nm2_s": d_layer, "layer_nm": layer_nm,
        "co3o4_fraction": f, "discharge_inlet": discharge_inlet,
        "protocol": [[s, float(n)] for s, n in protocol],
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
                 protocol=(("charge", 10), ("rest", 4), ("discharge", 10)), current_a=None, seed=0, **options):
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
        raised so that one step moves at most 1 % of the film's Li)
        (8 backward-Euler steps per frame).

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
    _check_options(options, where="li_transport")
    frames, _, attrs = _simulate(shape=shape, n_frames=n_frames, pixel_nm=pixel_nm, frame_time_s=frame_time_s,
                                 protocol=protocol, current_a=current_a, seed=seed, **options)
    return _frames_dataset(frames, attrs, *_check_shape(shape), float(pixel_nm))


def _check_options(options, *, where):
    """Unknown keyword options give a DataValidationError naming the valid ones (not a TypeError)."""
    import inspect

    valid = set(inspect.signature(_simulate).parameters)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise DataValidationError(f"{where}: unknown option(s) {unknown}; expected some of {sorted(valid)}")


def transport_with_log(**kwargs):
    """:func:`li_transport` plus its finely sampled electrochemistry log (for operando_eels)."""
    _check_options(kwargs, where="transport")
    shape = _check_shape(kwargs.get("shape", (32, 48)))
    frames, log, attrs = _simulate(**kwargs)
    return _frames_dataset(frames, attrs, *shape, attrs["pixel_nm"]), _log_dataset(log)
