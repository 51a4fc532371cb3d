# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-frame kernel of a bias series: one hologram (or phase-shifting group) → Δφ, ΔV, leakage, steps.

:func:`bias_frame` needs only the :class:`~ionscope.holography.BiasPlan` and
one time point's intensities: it reads nothing, writes nothing and keeps no
state between calls, so the frames of a night may be computed in any order,
on any executor, or one by one as they arrive (live mode). Its result, a
:class:`BiasFrame`, holds the maps and every per-frame number
:func:`~ionscope.holography.assemble_bias_series` needs — including the step
fit's Jacobian and inverse curvature, so that the errors can be recomputed
with the noise correlation pooled over all frames. :meth:`BiasFrame.to_variables`
and :meth:`BiasFrame.layout` turn it into fixed-shape arrays (a Zarr store
of frames; :meth:`BiasFrame.from_variables` reads them back bit for bit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from . import _checks
from ._geometry import _region_rows, _shear_plan
from ._inputs import _block_mean
from ._potential import _unwrap_kernel
from ._profiles import StepFit
from ._steps import StepsFit, fit_steps
from ._waves import _align_constant, nearest_reference

#: Per-frame numbers stored in ``frame_scalars`` (see :meth:`BiasFrame.layout`).
SCALARS = ("leak_rms", "resid_rms", "vac_rms", "leak_pv", "leak_inside", "drift_y_nm", "drift_x_nm",
           "drift_y_nm_std", "drift_x_nm_std", "fitted", "chi2_reduced", "n_linear", "n_gamma")
#: Per-interface step-fit numbers stored in ``step_fit``.
FIT_QUANTITIES = ("step", "step_err", "width", "width_err", "center", "center_err", "slope")
#: Bytes of the UTF-8 reason a time point was skipped (``skip_reason``).
REASON_BYTES = 512


@dataclass
class BiasFrame:
    """What :func:`bias_frame` measured on one time point.

    Parameters
    ----------
    index : int
        The time index.
    phase, potential : ndarray (y, x) float32 or None
        Δφ (rad, ramp removed) and ΔV (V) on the wave grid; NaN for a skipped
        time point; None when not kept (already written elsewhere).
    ramp : ndarray (term,)
        Leakage ramp coefficients (rad per half field).
    leak_rms, resid_rms, vac_rms, leak_pv, leak_inside : float
        Leakage statistics (see :func:`~ionscope.holography.bias_series`).
    drift_nm, drift_nm_std : ndarray (2,)
        Specimen displacement (y, x) from zero bias and its 1σ (NaN: not followed).
    steps : StepsFit or None
        The joint step fit at every boundary (None: no fit).
    noise_gamma : ndarray or None
        The noise autocovariance the fit measured (pooled by the assembly).
    reason : str
        Why the time point was skipped ("" when it was used).

    Examples
    --------
    >>> import numpy as np
    >>> fr = BiasFrame(index=3, phase=None, potential=None, ramp=np.zeros(3), reason="no fringes")
    >>> fr.index, fr.reason, fr.drift_nm.shape
    (3, 'no fringes', (2,))
    """

    index: int
    phase: np.ndarray | None
    potential: np.ndarray | None
    ramp: np.ndarray
    leak_rms: float = math.nan
    resid_rms: float = math.nan
    vac_rms: float = math.nan
    leak_pv: float = math.nan
    leak_inside: float = math.nan
    drift_nm: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    drift_nm_std: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    steps: StepsFit | None = None
    noise_gamma: np.ndarray | None = None
    reason: str = ""

    @classmethod
    def skipped(cls, plan, index, reason) -> "BiasFrame":
        """A time point that is not used: NaN maps and numbers, and why."""
        nan = np.full(plan.out_shape, np.nan, np.float32)
        return cls(index=int(index), phase=nan, potential=nan, ramp=np.full(plan.n_terms, np.nan), reason=reason)

    def result(self) -> dict:
        """The frame as the frame checks' result dict (:mod:`ionscope.holography._checks`)."""
        r = {"phase": self.phase, "potential": self.potential, "coef": self.ramp, "leak_rms": self.leak_rms,
             "resid_rms": self.resid_rms, "vac_rms": self.vac_rms, "leak_pv": self.leak_pv,
             "leak_inside": self.leak_inside, "steps": self.steps, "gamma": self.noise_gamma,
             "drift": (self.drift_nm, self.drift_nm_std)}
        if self.reason:
            r["bad"] = self.reason
        return r

    # -- fixed-shape arrays (a store of frames) ----------------------------------------
    @staticmethod
    def layout(plan) -> tuple[dict, dict]:
        """``({name: (dims, shape, dtype)}, coords)`` of :meth:`to_variables` for this plan (no ``time``)."""
        n_b, (oy, ox) = plan.interfaces.size, plan.out_shape
        p = _max_params(n_b)
        variables = {"phase": (("y", "x"), (oy, ox), np.float32), "potential": (("y", "x"), (oy, ox), np.float32),
                     "ramp": (("term",), (plan.n_terms,), np.float64),
                     "frame_scalars": (("quantity",), (len(SCALARS),), np.float64),
                     "step_fit": (("boundary", "fit_quantity"), (n_b, len(FIT_QUANTITIES)), np.float64),
                     "step_cov": (("boundary", "boundary_b"), (n_b, n_b), np.float64),
                     "noise_gamma": (("lag",), (_max_lag(ox) + 1,), np.float64),
                     "fit_jacobian": (("position", "param"), (ox, p), np.float64),
                     "fit_inverse": (("param", "param_b"), (p, p), np.float64),
                     "skip_reason": (("reason_byte",), (REASON_BYTES,), np.uint8)}
        coords = {"y": plan.y, "x": plan.x, "quantity": list(SCALARS), "fit_quantity": list(FIT_QUANTITIES),
                  "boundary": plan.interfaces}
        return variables, coords

    def to_variables(self, plan) -> dict:
        """Every number of the frame as the fixed-shape arrays of :meth:`layout` (padding NaN)."""
        shapes, _ = self.layout(plan)
        out = {name: np.full(shape, np.nan, dtype) if dtype != np.uint8 else np.zeros(shape, dtype)
               for name, (_, shape, dtype) in shapes.items()}
        if self.phase is not None:
            out["phase"][...] = self.phase
            out["potential"][...] = self.potential
        out["ramp"][...] = self.ramp
        st, gam = self.steps, self.noise_gamma
        vals = {"leak_rms": self.leak_rms, "resid_rms": self.resid_rms, "vac_rms": self.vac_rms,
                "leak_pv": self.leak_pv, "leak_inside": self.leak_inside, "drift_y_nm": self.drift_nm[0],
                "drift_x_nm": self.drift_nm[1], "drift_y_nm_std": self.drift_nm_std[0],
                "drift_x_nm_std": self.drift_nm_std[1], "fitted": float(st is not None),
                "chi2_reduced": st.chi2_reduced if st is not None else np.nan,
                "n_linear": st._n_lin if st is not None else 0, "n_gamma": 0 if gam is None else gam.size}
        out["frame_scalars"][...] = [vals[k] for k in SCALARS]
        if st is not None:
            out["step_fit"][...] = [[getattr(f, q) for q in FIT_QUANTITIES] for f in st.fits]
            out["step_cov"][...] = st.step_cov
            g, m = st._g, st._m
            out["fit_jacobian"][:, :g.shape[1]] = g
            out["fit_inverse"][:m.shape[0], :m.shape[1]] = m
        if gam is not None:
            out["noise_gamma"][:gam.size] = gam
        raw = self.reason.encode("utf-8")[:REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")
        out["skip_reason"][:len(raw)] = np.frombuffer(raw, np.uint8)
        return out

    @classmethod
    def from_variables(cls, plan, index, variables) -> "BiasFrame":
        """The frame back from :meth:`to_variables` (maps None when ``phase`` is not given)."""
        s = dict(zip(SCALARS, np.asarray(variables["frame_scalars"], float)))
        reason = bytes(np.asarray(variables["skip_reason"], np.uint8)).rstrip(b"\0").decode("utf-8")
        steps = None
        if s["fitted"]:
            n_b = plan.interfaces.size
            n_lin = int(s["n_linear"])
            p = n_lin + 2 * n_b
            fit = np.asarray(variables["step_fit"], float)
            fits = [StepFit(model=plan.step_fit.model, offset=math.nan, offset_err=math.nan,
                            residual_rms=math.nan, n_points=0, position=None, fitted=None,
                            **{q: float(v) for q, v in zip(FIT_QUANTITIES, row)}) for row in fit]
            steps = StepsFit(fits=fits, step_cov=np.asarray(variables["step_cov"], float),
                             background=plan.step_fit.background, chi2_reduced=float(s["chi2_reduced"]),
                             _g=np.ascontiguousarray(np.asarray(variables["fit_jacobian"], float)[:, :p]),
                             _m=np.ascontiguousarray(np.asarray(variables["fit_inverse"], float)[:p, :p]),
                             _n_lin=n_lin)
        n_g = int(s["n_gamma"])
        gamma = np.asarray(variables["noise_gamma"], float)[:n_g].copy() if n_g else None
        if steps is not None:
            steps.noise_gamma = gamma
        phase = variables.get("phase")
        return cls(index=int(index), phase=None if phase is None else np.asarray(phase),
                   potential=None if phase is None else np.asarray(variables["potential"]),
                   ramp=np.asarray(variables["ramp"], float), leak_rms=s["leak_rms"], resid_rms=s["resid_rms"],
                   vac_rms=s["vac_rms"], leak_pv=s["leak_pv"], leak_inside=s["leak_inside"],
                   drift_nm=np.array([s["drift_y_nm"], s["drift_x_nm"]]),
                   drift_nm_std=np.array([s["drift_y_nm_std"], s["drift_x_nm_std"]]), steps=steps,
                   noise_gamma=gamma, reason=reason)


def _max_params(n_b):
    """Most parameters of a joint fit of n_b steps: offset, slope, a kink and a step, centre and width each."""
    return 2 + 4 * n_b


def _max_lag(n_points):
    """The longest noise-correlation lag :func:`fit_steps` uses on a profile of n_points."""
    return int(min(64, max(2, n_points // 8)))


# --------------------------------------------------------------------------- the kernel
def bias_frame(plan, hologram, *, index, time=None, reference=None, fft_workers=1) -> BiasFrame:
    """Measure one time point of a bias series: Δφ and ΔV maps, leakage, the joint step fit.

    Parameters
    ----------
    plan : BiasPlan
        From :func:`~ionscope.holography.plan_bias_series`.
    hologram : ndarray or DataArray
        The time point's intensities, ``(y, x)`` (Fourier) or ``(frame, y, x)`` (phase shifting).
    index : int
        Its time index in the series (the plan's zero-bias frames, given drift and references are by index).
    time : float, optional
        Its time (s), for a time point beyond the plan's (live mode): it then
        uses the reference nearest in time.
    reference : int, optional
        Use this reference (index into the plan's references) instead.
    fft_workers : int or None
        Threads of each FFT (None: all cores; the numbers do not depend on it).

    Returns
    -------
    BiasFrame
        NaN maps and a ``reason`` when the frame checks (``plan.frame_checks``)
        skip it: NaN/Inf pixels, all zero, a mean intensity ≤ 0 or 10× off the
        zero-bias frames', a reconstruction that fails. (The step fit's χ²
        check compares frames with each other: the assembly does it.)

    Raises
    ------
    ShapeMismatchError
        A hologram of another shape than the plan's.

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> from ionscope.holography import plan_bias_series
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 30)], seed=0)
    >>> plan = plan_bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> fr = bias_frame(plan, holos.isel(time=5), index=5)
    >>> fr.potential.shape == plan.out_shape, bool(abs(fr.steps.fits[1].step - truth.step_v[5, 1]) < 0.1)
    (True, True)
    """
    k = int(index)
    if k in plan.skipped:
        return BiasFrame.skipped(plan, k, plan.skipped[k])
    frame = np.asarray(getattr(hologram, "values", hologram))
    want = plan.waves.shape if plan.method == "fourier" else (None,) + plan.waves.shape
    if frame.ndim != len(want) or frame.shape[-2:] != plan.waves.shape:
        raise ShapeMismatchError(f"hologram: expected {'(y, x)' if plan.method == 'fourier' else '(frame, y, x)'} "
                                 f"with (y, x) = {plan.waves.shape}, got shape {frame.shape}")
    ref = _reference_of(plan, k, time, reference)
    if not plan.frame_checks:
        return _measure(plan, k, frame, ref, fft_workers)
    why = _checks.check_hologram(frame, level=plan.level)
    if why is None:
        try:
            return _measure(plan, k, frame, ref, fft_workers)
        except (ValueError, ArithmeticError, IndexError, np.linalg.LinAlgError) as exc:
            # one frame's failure (e.g. "zero-size array" of a frame moved off the field) skips that frame
            text = str(exc).splitlines()[0][:160] if str(exc) else ""
            why = f"reconstruction failed ({type(exc).__name__}: {text})"
    return BiasFrame.skipped(plan, k, why)


def _reference_of(plan, k, time, reference):
    if reference is not None:
        return int(reference)
    if k < plan.n_time:
        return int(plan.nearest[k])
    n_refs = 0 if plan.waves.ref_waves is None else len(plan.waves.ref_waves)
    if time is None and n_refs > 1 and plan.ref_times is not None:
        raise DataValidationError(f"index: {k} is beyond the plan's {plan.n_time} time points; give its time "
                                  f"(s) to choose its reference, or plan.with_times(...)")
    return int(nearest_reference([0.0 if time is None else time], plan.ref_times, n_refs)[0])


def _measure(plan, k, frame, ref, fft_workers):
    """The frame's wave, and ψ₀ and the masks moved with the specimen when it drifts."""
    wave = plan.waves.wave(frame, ref, fft_workers)
    kw = plan.kernel_options()
    tracker = plan.tracker()
    if tracker is None:
        return _frame_kernel(k, wave, plan.psi0, plan, **kw)
    given = None
    if plan.given_drift is not None:
        if k >= plan.given_drift.shape[0]:
            raise DataValidationError(f"index: the drift was given for {plan.given_drift.shape[0]} time points, "
                                      f"not for time point {k}")
        given = plan.given_drift[k]
    # the specimen drifts: ψ₀ and the masks follow it into this frame (_drift.py says why not the reverse)
    psi_k, kw_k, d = tracker.frame(wave, plan.psi0, kw, given)
    if kw["shear"] is not None and kw_k["region_rows"] is not kw["region_rows"]:
        # tilted interfaces: a y drift moves them along x too, and the rows averaged changed
        rows_k = np.flatnonzero(kw_k["region_rows"])
        dy = float(np.nan_to_num(d[0][0])) / tracker.spacing[0]
        off = plan.slope * (rows_k.mean() - np.flatnonzero(plan.region_rows).mean() - dy) * plan.pitch
        kw_k = {**kw_k, "shear": _shear_plan(kw_k["region_rows"], plan.out_shape[1], plan.slope),
                "interfaces": kw_k["interfaces"] + off}
    out = _frame_kernel(k, wave, psi_k, plan, **kw_k)
    out.drift_nm, out.drift_nm_std = np.asarray(d[0], float), np.asarray(d[1], float)
    return out


#: Side (px) of the coarse grid on which large difference waves are unwrapped.
_COARSE_SIDE = 64


def _unwrap_difference(z):
    """Unwrapped phase of a difference wave z = ψ_t·ψ₀*.

    Small grids are unwrapped directly (:func:`unwrap_phase`'s kernel). A large
    one is averaged over f×f blocks (complex mean: noise drops, the smooth
    leakage phase survives), the coarse phase is unwrapped, brought back to
    full size (nearest), and the full-resolution phase is that estimate plus
    the wrapped remainder arg(z·e^{−i·estimate}): exact wherever the fine
    detail stays within ±π of the block's mean phase (steps of a few radians
    over several pixels, noise), at a fraction of the cost (measured 0.22 s →
    ~0.03 s at 512², 23 → ~3 ms at 211²).
    """
    ny, nx = z.shape
    f = min(ny, nx) // _COARSE_SIDE
    if f < 2:
        return _unwrap_kernel(z[None])[0]
    coarse = _unwrap_kernel(_block_mean(z, f)[None])[0]

    def full(a):
        a = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
        return np.pad(a, ((0, ny - a.shape[0]), (0, nx - a.shape[1])), mode="edge")

    # e^{−i·estimate} on the coarse grid, then enlarged: the same numbers as on the
    # full grid, where the complex exponential cost most of this function (5 of 7 ms at 400²)
    return full(coarse) + np.angle(z * full(np.exp(-1j * coarse).astype(np.complex64)))


def _column_mean(rows):
    """``np.nanmean(rows, axis=0)``, NaN for an all-NaN column, without a warning.

    (``warnings.catch_warnings`` is process-wide state: frames computed in
    threads must not use it.) The empty columns are filled with zeros and
    then set to NaN, rather than left out: numpy's reduction along rows
    vectorises by the array's width, so a narrower array can give other last
    bits (measured on the step errors: 1e-14 V, amplified to 2e-5 nm in an
    ill-determined width) — the full width gives ``np.nanmean``'s own numbers.
    """
    empty = ~np.isfinite(rows).any(axis=0)
    if empty.all():
        return np.full(rows.shape[1], np.nan)
    if not empty.any():
        return np.nanmean(rows, axis=0)
    filled = np.array(rows, copy=True)
    filled[:, empty] = 0.0
    out = np.nanmean(filled, axis=0)
    out[empty] = np.nan
    return out


def _column_sem(rows):
    """Standard error of each column's mean (``nanstd(ddof=1)/√n``), NaN below two values, without a warning.

    Computed over the full width, as :func:`_column_mean` (the same numbers as numpy on the whole array).
    """
    n = np.sum(np.isfinite(rows), axis=0)
    few = n < 2
    if few.all():
        return np.full(rows.shape[1], np.nan)
    if few.any():
        rows = np.array(rows, copy=True)
        rows[:, few] = 0.0   # ≥ 2 values: no "degrees of freedom ≤ 0" warning; set to NaN below
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.nanstd(rows, axis=0, ddof=1) / np.sqrt(n)
    out[few] = np.nan
    return out


def _row_noise(rows, block=None):
    """A signal-free realisation of the noise of the row mean: alternating blocks of rows, differenced.

    Blocks (not single rows) so that noise correlated between neighbouring rows
    (a smoothed reference, the Fourier aperture) is kept; equal numbers of rows
    with each sign, so a signal that is the same in every row cancels exactly.
    """
    n = rows.shape[0]
    if block is None:
        # long enough to hold the noise's correlation between rows (a Fourier
        # aperture: ~2 rows, a smoothed reference: ~8 px), while ≥ 8 blocks keep
        # a smooth change of the signal along y from leaking in
        block = min(64, max(8, n // 8))
    block = max(1, min(block, n // 2))
    sign = np.where((np.arange(n) // block) % 2 == 0, 1.0, -1.0)
    n_pos, n_neg = int(np.sum(sign > 0)), int(np.sum(sign < 0))
    if min(n_pos, n_neg) < 1:
        return None
    # mean₊ − mean₋ has variance σ²(1/n₊ + 1/n₋); the row mean σ²/n: rescale to match
    e = _column_mean(rows[sign > 0]) - _column_mean(rows[sign < 0])
    return e / math.sqrt(n * (1 / n_pos + 1 / n_neg))


def _frame_kernel(k, wave, psi0, plan, *, vac, region_rows, t_map, interfaces, margin, shear):
    """Δφ, ΔV, leakage and the joint step fit of one time point (numpy in, a BiasFrame out)."""
    import xarray as xr

    z = _align_constant(wave * np.conj(psi0), vac)
    dphi = _unwrap_difference(z)
    coef = plan.ramp_pinv(vac) @ dphi[vac]
    ramp = plan.design @ coef
    # leakage statistics on a coarse grid (block means): noise and any fringe
    # ripple average out, a ramp does not
    f = plan.coarse_f
    cvac = plan.coarse_vacuum(vac)
    before = _block_mean(dphi, f)[cvac]
    dphi = dphi - ramp
    after = _block_mean(dphi, f)[cvac]
    with np.errstate(invalid="ignore", divide="ignore"):
        pot = dphi / (plan.interaction_constant * t_map)
    rows = _region_rows(pot, region_rows, shear)   # sheared columns at the edges are all-NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        prof, sem = _column_mean(rows), _column_sem(rows)
        noise = _row_noise(rows) if rows.shape[0] >= 4 else None
    profile = xr.DataArray(prof, dims=("position",), coords={"position": plan.x, "sem": ("position", sem)})
    opts = plan.step_fit
    try:
        # the fit measures the noise's correlation on the points it uses, standardised
        # as in its covariance; the assembly pools it over frames
        steps = fit_steps(profile, centers=interfaces, model=opts.model, background=opts.background,
                          window=opts.window_nm, max_width=plan.max_width, margin=margin, noise=noise)
        gamma = steps.noise_gamma
    except DataValidationError:
        steps, gamma = None, None
    in_region = ramp[region_rows]
    return BiasFrame(index=int(k), phase=dphi.astype(np.float32), potential=pot.astype(np.float32), ramp=coef,
                     leak_rms=float(np.std(before)) if before.size > 1 else np.nan,
                     resid_rms=float(np.std(after)) if after.size > 1 else np.nan,
                     vac_rms=float(np.std(dphi[vac])), leak_pv=float(np.ptp(ramp[vac])),
                     leak_inside=float(np.ptp(in_region)), steps=steps, noise_gamma=gamma)
