# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan of a bias series: everything its time points share, decided once from the zero-bias frames.

:func:`plan_bias_series` reads the holograms' metadata, the bias, the
references and the zero-bias frames (only those), and returns a
:class:`BiasPlan`: the zero-bias state ψ₀, the vacuum mask, the thickness map,
the profile rows, the interfaces and their tilt, the reference waves, the
frame checks' intensity level, the drift mode. The per-frame kernel
(:func:`~ionscope.holography.bias_frame`) needs nothing else, so a plan can be
stored (:meth:`BiasPlan.to_dataset`), shipped once to each cluster worker, or
made from the first frames of a night that is still being recorded.

:class:`StepFitOptions` bundles how the steps are found and fitted (the
interfaces, the window, the step model, the background, the tilt, the ramp
order); :func:`~ionscope.holography.bias_series` and the ``[holography]``
configuration take the same options, as keywords or as one object.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data, acquisition_value
from . import _checks, _drift
from ._fourier import canonical_carrier, estimate_carrier_array
from ._geometry import (_shear_plan, interface_slope, locate_interfaces, profile_rows, thickness_map)
from ._inputs import _bias_per_frame, _block_mean, _references, _resample_map, _series_da, vacuum_mask
from ._potential import _plane_design, _unwrap_kernel, interaction_constant
from ._step_fit import StepFitOptions, tilt_slope
from ._waves import SeriesWaves, WaveMaker, nearest_reference, zero_state


@dataclass(eq=False)
class BiasPlan:
    """What every time point of a bias series shares (made by :func:`plan_bias_series`).

    Parameters
    ----------
    method : str
        "fourier" or "phase-shifting".
    times, bias_v : ndarray (time,)
        Time (s) and bias of the right electrode (V) of every time point.
    voltage_kv, interaction_constant : float
        Accelerating voltage and C_E (rad V⁻¹ nm⁻¹).
    waves : WaveMaker
        Reconstruction (carrier, aperture, output grid) and the reference waves.
    ref_times : ndarray or None
        Times of the references; *nearest* (time,) the reference each time
        point uses (−1: none).
    zero_bias : ndarray of int
        Time indices averaged into ψ₀; *skipped* {index: reason}: zero-bias
        frames left out by the checks; *level*: their median mean intensity.
    y, x : ndarray
        The wave grid's coordinates (nm).
    vacuum : ndarray bool (y, x)
        Where the leakage ramp is fitted; *psi0* (y, x) complex64 the
        zero-bias state; *thickness* (y, x) nm (NaN where thin);
        *region_rows* (y,) the rows averaged into the profile.
    interfaces : ndarray
        Every boundary fitted (nm); *reported* the indices of those asked for.
    slope, tilt_deg, tilt_deg_std : float
        The interfaces' dx/dy and angle (± 1σ) they are averaged along.
    max_width, margin : float
        Largest step width and the profile's excluded ends (nm).
    coarse_f : int
        Block size of the leakage statistics.
    step_fit : StepFitOptions
    drift : str
        "none", "auto" (measured per frame) or "given";
        *given_drift* (time, 2) nm relative to the first zero-bias frame.
    frame_checks : bool
    min_good_fraction : float

    Notes
    -----
    Arrays derived from the plan that every frame needs (the ramp's design
    and pseudo-inverse, the drift tracker's reference) are computed on first
    use, once per plan object (under a lock; never pickled), so a cluster
    worker computes them once for its copy of the plan.

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30)], shape=(128, 128), seed=0)
    >>> plan = plan_bias_series(holos, references=refs, bias_v=[0.0] * holos.sizes["time"], thickness_nm=60.0)
    >>> plan.method, plan.n_time == holos.sizes["time"], plan.psi0.shape == plan.out_shape
    ('fourier', True, True)
    """

    method: str
    times: np.ndarray
    bias_v: np.ndarray
    voltage_kv: float
    interaction_constant: float
    waves: WaveMaker
    ref_times: np.ndarray | None
    nearest: np.ndarray
    zero_bias: np.ndarray
    skipped: dict
    level: float | None
    y: np.ndarray
    x: np.ndarray
    vacuum: np.ndarray
    psi0: np.ndarray
    thickness: np.ndarray
    region_rows: np.ndarray
    interfaces: np.ndarray
    reported: np.ndarray
    slope: float
    tilt_deg: float
    tilt_deg_std: float
    max_width: float
    margin: float
    coarse_f: int
    step_fit: StepFitOptions
    drift: str = "none"
    given_drift: np.ndarray | None = None
    frame_checks: bool = True
    min_good_fraction: float = 0.5
    _derived: dict = field(default_factory=dict, repr=False)
    _lock: object = field(default_factory=threading.RLock, repr=False)

    # -- shapes -----------------------------------------------------------------
    @property
    def n_time(self) -> int:
        return int(self.times.size)

    @property
    def out_shape(self) -> tuple[int, int]:
        return (int(self.y.size), int(self.x.size))

    @property
    def n_terms(self) -> int:
        return 3 if self.step_fit.order == 1 else 6

    @property
    def pitch(self) -> float:
        return abs(float(self.x[1] - self.x[0])) if self.x.size > 1 else 1.0

    # -- derived, once per plan object ----------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_derived"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()  # re-entrant: one derived array may need another

    def _get(self, name, make):
        got = self._derived.get(name)
        if got is None:
            with self._lock:
                got = self._derived.get(name)
                if got is None:
                    got = self._derived[name] = make()
        return got

    @property
    def design(self):
        """The leakage ramp's design matrix (y, x, term)."""
        return self._get("design", lambda: _plane_design(*self.out_shape, self.step_fit.order))

    def ramp_pinv(self, vac):
        """Pseudo-inverse of the ramp's design over ``vac`` (the plan's own mask: computed once).

        With it each frame's ramp fit is one n_terms × n product (measured
        2.0 → 0.4 ms per 400² frame against a least-squares solve).
        """
        if vac is self.vacuum:
            return self._get("ramp-pinv", lambda: np.linalg.pinv(self.design[vac]))
        return np.linalg.pinv(self.design[vac])

    def coarse_vacuum(self, vac):
        """Blocks of coarse_f × coarse_f pixels that are all vacuum, for the leakage statistics."""
        f = self.coarse_f
        if vac is self.vacuum:
            return self._get("coarse-vacuum", lambda: _block_mean(vac.astype(float), f) > 0.999)
        return _block_mean(vac.astype(float), f) > 0.999

    @property
    def shear(self):
        """Gather plan of the profile rows along tilted interfaces (None when they run along y)."""
        if self.slope == 0:
            return None
        return self._get("shear", lambda: _shear_plan(self.region_rows, self.out_shape[1], self.slope))

    def tracker(self):
        """The drift tracker (:class:`~ionscope.holography._drift.SpecimenDrift`), or None without drift."""
        if self.drift == "none":
            return None

        def make():
            y, x = self.y, self.x
            spacing = (y[1] - y[0] if y.size > 1 else 1.0, x[1] - x[0] if x.size > 1 else 1.0)
            tr = _drift.SpecimenDrift(spacing=spacing, shape=self.out_shape, method=self.method)
            if self.drift == "auto":
                tr.set_reference(self.psi0)
            return tr

        return self._get("tracker", make)

    def kernel_options(self) -> dict:
        """The per-frame kernel's options that follow the specimen when it drifts."""
        return dict(vac=self.vacuum, region_rows=self.region_rows, t_map=self.thickness,
                    interfaces=self.interfaces, margin=self.margin, shear=self.shear)

    # -- a night that goes on ----------------------------------------------------------
    def with_times(self, times, bias_v) -> "BiasPlan":
        """The plan for a series with these time points (s) and biases (V), e.g. more frames in live mode.

        The reference of each time point is the one nearest in time; the
        derived arrays are shared with this plan.

        Examples
        --------
        >>> from ionscope.simulate import biased_holograms
        >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30)], shape=(128, 128), seed=0)
        >>> plan = plan_bias_series(holos, references=refs, bias_v=[0.0] * holos.sizes["time"], thickness_nm=60.0)
        >>> longer = plan.with_times([*plan.times, 40.0], [*plan.bias_v, 1.5])
        >>> longer.n_time - plan.n_time, int(longer.nearest[-1]) >= 0
        (1, True)
        """
        t = np.atleast_1d(np.asarray(times, float))
        b = np.atleast_1d(np.asarray(getattr(bias_v, "values", bias_v), float))
        if t.ndim != 1 or b.shape != t.shape:
            raise ShapeMismatchError(f"bias_v: expected one bias per time point ({t.size}), got shape {b.shape}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(b))):
            raise DataValidationError("times/bias_v: hold NaN/Inf; expected a time (s) and bias (V) per point")
        if self.zero_bias.size and int(self.zero_bias.max()) >= t.size:
            raise DataValidationError(f"times: {t.size} time points do not reach the zero-bias frames "
                                      f"{self.zero_bias.tolist()}")
        if self.given_drift is not None and t.size != self.n_time:
            raise ShapeMismatchError(f"times: the drift was given for {self.n_time} time points, not {t.size}")
        n_refs = 0 if self.waves.ref_waves is None else len(self.waves.ref_waves)
        new = dataclasses.replace(self, times=t, bias_v=b, nearest=nearest_reference(t, self.ref_times, n_refs))
        new._derived = self._derived  # the same ψ₀, masks and design: the same derived arrays
        return new

    # -- storage ------------------------------------------------------------------------
    def to_dataset(self):
        """The plan as an xarray Dataset (for a Zarr store: the pipeline's ``holo_plan`` stage).

        :meth:`from_dataset` gives back a plan whose frames are bit-identical.
        """
        import xarray as xr

        w = self.waves
        data = {"bias_v": ("time", self.bias_v), "nearest": ("time", np.asarray(self.nearest, np.int64)),
                "psi0": (("y", "x"), self.psi0), "vacuum": (("y", "x"), self.vacuum),
                "thickness": (("y", "x"), self.thickness), "region_rows": ("y", self.region_rows),
                "interfaces": ("boundary", self.interfaces),
                "reported": ("interface", np.asarray(self.reported, np.int64)),
                "zero_bias": ("zero_frame", np.asarray(self.zero_bias, np.int64))}
        if self.given_drift is not None:
            data["given_drift"] = (("time", "axis"), self.given_drift)
        if w.ref_waves is not None:
            data["ref_waves"] = (("reference", "y", "x"), w.ref_waves)
            if self.ref_times is not None:
                data["ref_times"] = ("reference", self.ref_times)
        meta = {"method": self.method, "voltage_kv": self.voltage_kv, "interaction_constant": self.interaction_constant,
                "q": list(w.q), "hologram_shape": list(w.shape), "radius": w.radius, "edge": w.edge,
                "skipped": {str(k): v for k, v in self.skipped.items()}, "level": self.level, "slope": self.slope,
                "tilt_deg": self.tilt_deg, "tilt_deg_std": self.tilt_deg_std, "max_width": self.max_width,
                "margin": self.margin, "coarse_f": self.coarse_f, "step_fit": self.step_fit.to_dict(),
                "drift": self.drift, "frame_checks": self.frame_checks, "min_good_fraction": self.min_good_fraction}
        return xr.Dataset(data, coords={"time": self.times, "y": self.y, "x": self.x},
                          attrs={"bias_plan": json.dumps(meta)})

    @classmethod
    def from_dataset(cls, ds) -> "BiasPlan":
        """The plan stored by :meth:`to_dataset` (everything read into memory)."""
        meta = json.loads(ds.attrs["bias_plan"])

        def arr(name, default=None):
            return np.asarray(ds[name].values) if name in ds.variables else default

        waves = WaveMaker(method=meta["method"], q=meta["q"], shape=meta["hologram_shape"], radius=meta["radius"],
                          edge=meta["edge"], ref_waves=arr("ref_waves"))
        fit = meta["step_fit"]
        return cls(method=meta["method"], times=arr("time"), bias_v=arr("bias_v"), voltage_kv=meta["voltage_kv"],
                   interaction_constant=meta["interaction_constant"], waves=waves, ref_times=arr("ref_times"),
                   nearest=arr("nearest").astype(int), zero_bias=arr("zero_bias").astype(int),
                   skipped={int(k): v for k, v in meta["skipped"].items()}, level=meta["level"], y=arr("y"),
                   x=arr("x"), vacuum=arr("vacuum"), psi0=arr("psi0"), thickness=arr("thickness"),
                   region_rows=arr("region_rows"), interfaces=arr("interfaces"), reported=arr("reported").astype(int),
                   slope=meta["slope"], tilt_deg=meta["tilt_deg"], tilt_deg_std=meta["tilt_deg_std"],
                   max_width=meta["max_width"], margin=meta["margin"], coarse_f=meta["coarse_f"],
                   step_fit=StepFitOptions(**fit), drift=meta["drift"], given_drift=arr("given_drift"),
                   frame_checks=meta["frame_checks"], min_good_fraction=meta["min_good_fraction"])


# --------------------------------------------------------------------------- the plan
@accepts_data("holograms", "references")
def plan_bias_series(holograms, *, bias_v=None, log=None, references=None, voltage_kv=None, thickness_nm,
                     vacuum=None, method="fourier", zero_bias=None, region=None, step_fit=None, interfaces_nm=None,
                     window_nm=None, model=None, background=None, interface_tilt_deg=None, order=None, sideband=None,
                     aperture=None, drift=None, frame_checks=True, min_good_fraction=0.5) -> BiasPlan:
    """Plan a bias series: ψ₀, masks, interfaces, references — what every time point shares.

    Reads the zero-bias frames (and, with ``frame_checks``, checks them), the
    references and the metadata; no other frame is read. The parameters are
    those of :func:`~ionscope.holography.bias_series` (see there); the
    step-fit options come as ``step_fit`` (a :class:`StepFitOptions`) or as
    the separate keywords ``interfaces_nm``, ``window_nm``, ``model``,
    ``background``, ``interface_tilt_deg``, ``order``.

    Parameters
    ----------
    holograms : DataArray
        ``(time, y, x)`` (Fourier) or ``(time, frame, y, x)`` (phase shifting).
    bias_v, log, references, voltage_kv, thickness_nm, vacuum, method, zero_bias, region, sideband, aperture, \
drift, frame_checks, min_good_fraction
        As in :func:`~ionscope.holography.bias_series`.
    step_fit : StepFitOptions, optional
    interfaces_nm, window_nm, model, background, interface_tilt_deg, order : optional
        The step-fit options one by one (a keyword that contradicts ``step_fit`` is refused).

    Returns
    -------
    BiasPlan

    Raises
    ------
    DataValidationError, ShapeMismatchError
        As :func:`~ionscope.holography.bias_series`.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 30)], seed=0)
    >>> plan = plan_bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> plan.zero_bias.tolist(), plan.psi0.shape == plan.out_shape, plan.reported.size
    ([0, 1, 2, 3], True, 2)
    """
    fit = StepFitOptions.merged(step_fit, interfaces_nm=interfaces_nm, window_nm=window_nm, model=model,
                                background=background, interface_tilt_deg=interface_tilt_deg, order=order)
    # every option's type and range before anything is read (one line naming it)
    _checks.check_options(thickness_nm=thickness_nm, voltage_kv=voltage_kv, interfaces_nm=fit["interfaces_nm"],
                          window_nm=fit["window_nm"], model=fit["model"], background=fit["background"],
                          order=fit["order"], zero_bias=zero_bias, method=method, min_good_fraction=min_good_fraction)
    given_slope = tilt_slope(fit["interface_tilt_deg"])
    fit = StepFitOptions(**fit)
    holo = _series_da(holograms, method)
    n_t = holo.sizes["time"]
    drift = _drift.parse_drift(drift, n_t)
    times = np.asarray(holo["time"].values, float) if "time" in holo.coords else np.arange(n_t, dtype=float)
    bias = _bias_per_frame(holo, bias_v, log, times)
    voltage_kv = acquisition_value(holo, "beam_energy_kv", voltage_kv, argument="voltage_kv", source="the holograms")
    try:
        _checks.check_options(thickness_nm=1.0, voltage_kv=voltage_kv)
    except DataValidationError as exc:
        raise DataValidationError(f"{exc} (the holograms' beam_energy_kv attribute)") from None
    refs, ref_times = _references(references, method, (holo.sizes["y"], holo.sizes["x"]))
    zero_idx = _zero_bias_indices(bias, zero_bias, n_t)
    skipped: dict[int, str] = {}  # time index -> why it is not used (frame_checks)
    level = None
    if frame_checks:
        zero_idx, level = _checks.screen_zero_bias(holo, zero_idx, skipped)
    maker, nearest = _wave_maker(holo, refs, ref_times, times, method, sideband, aperture, zero_idx)
    waves = SeriesWaves(maker, holo, nearest, fft_workers=None)
    if frame_checks and drift is None and zero_idx.size >= 3:
        # (with drift correction the zero-bias frames are registered onto each other instead)
        zero_idx = _checks.coherent_zero_bias(waves, zero_idx, skipped)
    grid = _wave_grid(holo, maker.out_shape)
    vac, psi0, tracker, given = _zero_bias_state(waves, zero_idx, vacuum, drift, method, grid, fit.order)
    t_map, t_is_map = thickness_map(thickness_nm, grid)
    region_rows = profile_rows(region, t_map=t_map, t_is_map=t_is_map, psi0=psi0, vac=vac, grid=grid)
    t_map = np.where(t_map > 0.05 * np.max(t_map), t_map, np.nan)
    plan = BiasPlan(
        method=method, times=times, bias_v=bias, voltage_kv=float(voltage_kv),
        interaction_constant=interaction_constant(float(voltage_kv)), waves=maker, ref_times=ref_times,
        nearest=nearest, zero_bias=zero_idx, skipped=skipped, level=level, y=grid[2], x=grid[3], vacuum=vac,
        psi0=psi0, thickness=t_map, region_rows=region_rows, step_fit=fit, frame_checks=bool(frame_checks),
        min_good_fraction=float(min_good_fraction), coarse_f=_coarse_factor(vac),
        drift="none" if tracker is None else ("given" if given is not None else "auto"), given_drift=given,
        **_interface_geometry(psi0, region_rows, grid[3], fit, given_slope))
    if tracker is not None:
        plan._derived["tracker"] = tracker  # set up on the zero-bias frames already
    return plan


def _zero_bias_indices(bias, zero_bias, n_t):
    """The zero-bias time points: given, or the leading frames at |V| < 1 mV before the first biased one."""
    if zero_bias is None:
        biased = np.flatnonzero(np.abs(bias) >= 1e-3)
        first = biased[0] if biased.size else n_t
        zero_idx = np.arange(first)
        if zero_idx.size == 0:
            raise DataValidationError("bias_v: the series starts biased; no zero-bias frames to refer ΔV to — "
                                      "record a few frames at 0 V first or pass zero_bias=[indices]")
        return zero_idx
    zero_idx = np.atleast_1d(np.asarray(zero_bias, int))
    if zero_idx.size == 0 or zero_idx.min() < 0 or zero_idx.max() >= n_t:
        raise DataValidationError(f"zero_bias: expected time indices in [0, {n_t}), got {zero_bias!r}")
    return zero_idx


def _wave_maker(holo, refs, ref_times, times, method, sideband, aperture, zero_idx):
    """The reconstruction (carrier from the first reference or zero-bias frame) and each time point's reference."""
    if sideband is not None:
        q = canonical_carrier(sideband)
    else:
        src = refs.isel(time=0) if refs is not None else holo.isel(time=int(zero_idx[0]))
        if method != "fourier":
            src = src.isel(frame=0)
        q = estimate_carrier_array(np.asarray(src.values), name="references" if refs is not None else "holograms")[:2]
        if refs is not None:  # the holograms' own fringes must be there too (not another biprism setting)
            from ._input_checks import check_same_fringes

            check_same_fringes(holo.isel(time=int(zero_idx[0])), q, 0.08)
    maker = WaveMaker(method=method, q=q, shape=(holo.sizes["y"], holo.sizes["x"]), aperture=aperture)
    nearest = nearest_reference(times, ref_times, 0 if refs is None else refs.sizes["time"])
    if refs is not None:
        maker.ref_waves = maker.reference_waves(refs, ref_times, float(times[zero_idx[0]]), fft_workers=None)
    return maker, nearest


def _wave_grid(holo, out_shape):
    """``(y_holo, x_holo, y_w, x_w)``: the holograms' and the waves' coordinates (the same field)."""
    ny, nx = holo.sizes["y"], holo.sizes["x"]
    oy, ox = out_shape
    y_holo = np.asarray(holo["y"].values, float) if "y" in holo.coords else np.arange(ny, dtype=float)
    x_holo = np.asarray(holo["x"].values, float) if "x" in holo.coords else np.arange(nx, dtype=float)
    y_w = y_holo[0] + (y_holo[-1] - y_holo[0]) / max(ny - 1, 1) * (ny / oy) * np.arange(oy)
    x_w = x_holo[0] + (x_holo[-1] - x_holo[0]) / max(nx - 1, 1) * (nx / ox) * np.arange(ox)
    return y_holo, x_holo, y_w, x_w


def _zero_bias_state(waves, zero_idx, vacuum, drift, method, grid, order):
    """The vacuum mask, ψ₀, and the drift tracker and given drift (None without drift correction)."""
    y_holo, x_holo, y_w, x_w = grid
    ny, nx = y_holo.size, x_holo.size
    oy, ox = waves.out_shape
    w_first = waves(int(zero_idx[0]))
    small = min(oy, ox) < 128   # a cropped Fourier grid: a few px of margin are many nm
    mask_kw = dict(smooth_px=1.0 if small else max(2.0, min(oy, ox) / 256), border_px=2 if small else 3)
    if vacuum is not None:
        vm = np.asarray(getattr(vacuum, "values", vacuum))
        if vm.shape != (ny, nx) or vm.dtype != bool:
            raise ShapeMismatchError(f"vacuum: expected a boolean (y, x) = {(ny, nx)} mask on the hologram grid, "
                                     f"got {vm.dtype} {vm.shape}")
        vac = _resample_map(vm.astype(float), y_holo, x_holo, y_w, x_w) > 0.99
    else:
        vac = vacuum_mask(w_first, **mask_kw)
    if np.count_nonzero(vac) < 6 * order * 4:
        raise DataValidationError(f"vacuum: {np.count_nonzero(vac)} pixels on the wave grid; too few for a ramp fit")
    tracker = given = None
    if drift is None:
        psi0 = zero_state(waves, zero_idx, vac)
    else:
        tracker, psi0, given = _drift_setup(drift, waves, zero_idx, vac, method, y_w, x_w)
    if vacuum is None and zero_idx.size > 1:
        # the mean of the zero-bias frames is less noisy than one frame: a cleaner mask
        vac = vacuum_mask(psi0, **mask_kw)
    return vac, psi0, tracker, given


def _drift_setup(drift, waves, zero_idx, vac, method, y_w, x_w):
    """The drift tracker, the zero-bias state aligned with it, and given positions relative to it (or None)."""
    spacing = (y_w[1] - y_w[0] if y_w.size > 1 else 1.0, x_w[1] - x_w[0] if x_w.size > 1 else 1.0)
    tracker = _drift.SpecimenDrift(spacing=spacing, shape=(y_w.size, x_w.size), method=method)
    given = None if isinstance(drift, str) else drift - drift[int(zero_idx[0])]
    try:
        psi0, _ = _drift.aligned_zero_state(waves, zero_idx, vac, tracker, given)
    except DataValidationError as exc:
        if given is not None:
            raise
        # "auto" on a specimen without edges to register on: carry on as without drift correction
        warnings.warn(f"{exc}; the drift is not corrected", RuntimeWarning, stacklevel=5)
        return None, zero_state(waves, zero_idx, vac), None
    return tracker, psi0, given


def _coarse_factor(vac):
    """Block size for the leakage statistics: coarse, but leaving ≥ 16 whole blocks of vacuum."""
    coarse_f = max(1, min(vac.shape) // 64)
    while coarse_f > 1 and np.count_nonzero(_block_mean(vac.astype(float), coarse_f) > 0.999) < 16:
        coarse_f //= 2
    return coarse_f


def _interface_geometry(psi0, region_rows, x_w, fit, given_slope) -> dict:
    """Interfaces (where the zero-bias phase — the mean inner potential — steps), tilt, step bounds, margin."""
    ph0 = _unwrap_kernel(psi0[None])[0]
    interfaces, reported, gaps = locate_interfaces(ph0, region_rows, x_w, fit.interfaces_nm)
    # interfaces that do not run exactly along y: average along them, not along y
    # (a 1° tilt over 400 nm of rows would widen every step by 7 nm)
    slope, tilt_sd = interface_slope(ph0, region_rows, interfaces, gaps, x_w, given_slope)
    pitch = abs(float(x_w[1] - x_w[0])) if x_w.size > 1 else 1.0
    # a step much wider than a space-charge layer is a slope; the bound keeps the fit local
    max_width = float(min(0.45 * np.min(gaps), 40.0))
    if fit.window_nm is not None:
        max_width = min(max_width, fit.window_nm)
    # the ringing edge of a Fourier reconstruction (and any drift margin) is not specimen
    margin = max(3 * pitch, 0.02 * abs(float(x_w[-1] - x_w[0])))
    return dict(interfaces=interfaces, reported=reported, slope=float(slope), tilt_deg=math.degrees(math.atan(slope)),
                tilt_deg_std=float(tilt_sd), max_width=max_width, margin=float(margin))
