# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando holography under bias: a series of holograms → ΔV(t), width(t) at each interface, leakage.

Per time point the hologram (or phase-shifting group) is reconstructed with
the nearest vacuum reference, its phase is referred to the zero-bias state
(Δφ = arg ψ_t·ψ₀*, so the mean inner potential and the thickness cancel,
SCIENCE.md §4), unwrapped, the leakage ramp is fitted over the vacuum and
removed, Δφ is turned into ΔV = Δφ/(C_E·t), and the potential is averaged
along the interfaces (which run along ``y``) into a profile across them, to
which the steps at all interfaces are fitted jointly (erf or tanh, on a
piecewise-linear background for what is left of the leakage field inside
the specimen), with errors from the noise's own correlation along the
profile, measured in every frame and pooled (:func:`fit_steps`).

Three plain functions do the work; :func:`bias_series` is plan → kernel over
the frames → assembly:

* :func:`~ionscope.holography.plan_bias_series` (``_plan.py``) → :class:`~ionscope.holography.BiasPlan`:
  what every time point shares, from the zero-bias frames, the references
  and the bias (ψ₀, vacuum mask, thickness map, profile rows, interfaces and
  tilt, reference waves, drift mode). Options of the step fit travel as one
  :class:`~ionscope.holography.StepFitOptions`.
* :func:`~ionscope.holography.bias_frame` (``_frame.py``) → :class:`~ionscope.holography.BiasFrame`:
  one time point, from the plan and its intensities only (no I/O, no state):
  Δφ and ΔV maps, leakage, the joint step fit with what the assembly needs
  to redo its errors. Live mode calls it as each hologram arrives, once the
  zero-bias frames gave the plan (:meth:`BiasPlan.with_times` extends the
  plan's time axis).
* :func:`~ionscope.holography.assemble_bias_series` (``_assemble.py``) →
  the Dataset: the step-fit χ² check across frames, the noise correlation
  pooled over frames, asymmetry, leakage, the reasons frames were skipped.

Here the frames run as one dask graph (on dask's threads, or on the scheduler
the caller made current); the holograms are read a few frames at a time, so a
dask/Zarr-backed night of 2k × 2k holograms never has to fit in memory, and
the maps are written frame by frame to ``out`` (Zarr). The pipeline's
holography table runs the same kernel batch by batch through its stage cache
(:mod:`ionscope.pipeline._holography`).
"""
from __future__ import annotations

import uuid

import numpy as np

from ..io import accepts_data
from . import _checks
from ._assemble import assemble_bias_series, with_maps
from ._frame import bias_frame
from ._inputs import _series_da
from ._plan import plan_bias_series
from ._step_fit import StepFitOptions


@accepts_data("holograms", "references")
def bias_series(holograms, *, bias_v=None, log=None, references=None, voltage_kv=None, thickness_nm,
                vacuum=None, interfaces_nm=None, method="fourier", zero_bias=None, region=None, window_nm=None,
                model=None, background=None, interface_tilt_deg=None, order=None, sideband=None, aperture=None,
                workers=1, out=None, drift=None, min_good_fraction=0.5, frame_checks=True, step_fit=None):
    """Reconstruct a hologram series recorded under changing bias: ΔV maps and interface steps per frame.

    Parameters
    ----------
    holograms : DataArray
        ``(time, y, x)`` off-axis holograms (``method="fourier"``) or
        ``(time, frame, y, x)`` phase-shifting groups, with a ``time``
        coordinate in s; numpy- or dask/Zarr-backed (read one time point at a
        time).
    bias_v : array_like, optional
        Bias of the right electrode (V; left grounded) per time point.
    log : Dataset or path, optional
        Bias log (``voltage`` on ``time`` in s, :func:`ionscope.io.read_log`),
        interpolated at the holograms' times; used when ``bias_v`` is not
        given (else the holograms' ``bias_v`` coordinate).
    references : DataArray, optional
        Vacuum references ``([time,] y, x)`` (or ``([time,] frame, y, x)``
        groups); each time point uses the reference nearest in time.
    voltage_kv : float, optional
        Accelerating voltage in kV (default: the holograms' ``beam_energy_kv``; a
        value that contradicts it is refused).
    thickness_nm : float or array_like
        Specimen thickness (nm): a scalar or a ``(y, x)`` map on the hologram grid.
    vacuum : ndarray of bool (y, x), optional
        Field-free vacuum (or shielded) region on the hologram grid where the
        leakage ramp is fitted; default :func:`vacuum_mask` of the zero-bias wave.
    interfaces_nm : sequence of float, optional
        x positions (nm) of the interfaces (they run along y); default the two
        strongest mean-inner-potential steps of the zero-bias phase. Any
        other clear boundary of the zero-bias phase (a gradient peak ≥ 30 % of
        the weakest interface's) gets a step of its own in the fit, so that a
        bias-induced change there is not read as background; it is not reported.
    method : {"fourier", "phase-shifting"}
    zero_bias : array_like of int, optional
        Time indices forming the zero-bias state; default the leading frames
        with zero bias (|V| < 1 mV) before the first biased one.
    region : ndarray of bool (y, x) or (float, float), optional
        Pixels (or a y range in nm) averaged into the profile across the
        interfaces; default: the specimen rows of full thickness (from the
        thickness map, or from the zero-bias amplitude).
    window_nm : float, optional
        Use only profile points within ±window_nm of an interface (default:
        the whole profile, less a margin at the field's edges: every point of
        a bulk region fixes its level, which is what the step is measured
        against; see :func:`fit_steps`).
    model : {"erf", "tanh"}
        Step model (see :func:`fit_steps`).
    background : {"piecewise", "linear", "constant"}
        Background under the steps, fitted jointly with them: ``"piecewise"``
        (default) is continuous with its own slope in each region between
        interfaces (the residue of the leakage field, a field in the bulk
        electrolyte); ``"linear"`` one slope; ``"constant"`` none.
    interface_tilt_deg : float, optional
        Angle of the interfaces from the y axis (degrees, positive: x grows with
        y); the profile then averages along the interfaces. Default: measured
        on the zero-bias phase (the position of each interface's mean inner
        potential step in blocks of rows, one common slope) and used when it
        moves an interface by ≥ ½ px across the rows averaged and is ≥ 3σ;
        ``0`` averages straight along y.
    order : {1, 2}
        Order of the leakage ramp fitted over the vacuum.
    step_fit : StepFitOptions, optional
        ``interfaces_nm``, ``window_nm``, ``model``, ``background``,
        ``interface_tilt_deg`` and ``order`` as one object (the keywords are
        still accepted; one that contradicts ``step_fit`` is refused).
    sideband, aperture : optional
        As in :func:`reconstruct` (default: estimated from the first reference).
    workers : int
        Time points computed at the same time (each FFT single-threaded when > 1).
        The frames run as a dask graph: on dask's threaded scheduler with
        ``workers`` frame threads plus one that reads the next frames of a lazy
        (dask/Zarr) series and one that writes the maps to ``out``, overlapping
        the work — or on the scheduler the caller made current
        (``dask.config.set(scheduler=...)``, a ``distributed`` Client).
    out : path, optional
        Write the ``phase`` and ``potential`` maps to this Zarr store frame by
        frame (atomic) and return them lazily from it. Without it, maps of
        numpy input are returned in memory; of dask input, lazily (each access
        recomputes them).
    drift : {None, "auto"} or array_like (time, 2), optional
        Specimen drift relative to the field of view (see
        :mod:`ionscope.holography._drift`). ``None`` (default): the specimen is
        taken not to move. ``"auto"``: its displacement from the zero-bias
        state is measured in every time point (sub-pixel registration of the
        phase-gradient magnitude, which shows the mean-inner-potential edges)
        and the zero-bias wave ψ₀, the vacuum mask, the profile rows, the
        thickness map and the interface windows are moved onto it; the
        zero-bias frames are aligned before they are averaged. An array gives
        the specimen position (y, x) in nm per time point instead (only
        differences from the first zero-bias frame matter). Masks and maps
        passed in (``vacuum``, ``region``, ``thickness_nm``) describe the
        specimen at the first zero-bias frame. ``None`` is the default because
        the measurement is not free (measured at 1024² on a shared 2-core
        machine: +15–20 ms per frame, +30–55 %, for the Fourier method; up to
        +50 % for phase shifting) and a call without it stays as it was, bit
        for bit; the pipeline (``[holography] drift``) defaults to ``"auto"``. A frame
        whose drift cannot be measured (1σ above 0.2 wave samples) is left
        uncorrected with NaN and a warning; a specimen without edges to
        register on falls back to ``None`` with a warning.
    min_good_fraction : float
        Stop with an error when fewer than this fraction of the time points
        are usable (see ``frame_checks``).
    frame_checks : bool
        Check every time point (:mod:`ionscope.holography._checks`): a frame
        with NaN/Inf pixels, all zero, a mean intensity ≤ 0 or 10× off the
        zero-bias frames', a zero-bias frame that does not match the others
        (without drift correction), a step fit whose χ² is 10× off the frames
        so far, or one whose reconstruction fails is skipped — NaN maps and
        steps, ``frame_reason`` says why, a warning lists them. False: every
        frame is used (a bad one then raises or spoils the fits, as before).

    Returns
    -------
    Dataset
        ``phase`` (time, y, x), rad, Δφ relative to zero bias with the ramp
        removed; ``potential`` (time, y, x), V; per (time, interface)
        ``step_v``, ``step_v_std``, ``width_nm``, ``width_nm_std``,
        ``position_nm``, ``position_nm_std`` (NaN where |ΔV| < 3σ: no step, no
        width), ``slope_v_per_nm`` (the background's slope at the interface); per time
        ``bias_v``, ``asymmetry``, ``asymmetry_std`` ((|ΔV₊| − |ΔV₋|)/(|ΔV₊| + |ΔV₋|),
        positive = interface at the higher-potential electrode),
        ``positive_interface``, ``reference_index``, ``leakage_ramp``
        (time, term; rad per half field), ``leakage_pv_rad`` (fitted ramp,
        peak to valley over the vacuum), ``leakage_inside_rad`` (its projected
        contribution across the profile region, removed), ``leakage_removed_fraction``
        (1 − leakage left in the vacuum after removal, noise subtracted using
        the zero-bias frames), ``vacuum_rms_rad``; coords ``time``, ``y``, ``x``
        (the wave grid), ``interface``, ``interface_nm``; ``vacuum`` and
        ``region`` masks (zero-bias specimen position); ``drift_nm`` and
        ``drift_nm_std`` (time, axis ``y``, ``x``): the specimen's displacement
        from the first zero-bias frame and its 1σ (NaN where not measured;
        σ 0 for a given drift); ``position_nm`` is then where the interface is
        in the field of view (it follows the specimen), and the maps stay in
        the field-of-view frame (the specimen moves across them);
        ``frame_good`` and ``frame_reason`` (time): whether the time point was
        used, and why not ("" where it was); a step reported as NaN because
        its fitted σ was 0 or not finite is named there too.

    Raises
    ------
    DataValidationError
        No zero-bias frames, bad bias/log, no fringes, bad thickness.
    ShapeMismatchError
        References, masks or maps that do not match the holograms.

    References
    ----------
    Y. Nomura et al., Microscopy 67 (2018) 178, doi:10.1093/jmicro/dfy020.
    K. Yamamoto et al., Angew. Chem. Int. Ed. 49 (2010) 4414, doi:10.1002/anie.201000339.
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.

    Examples
    --------
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    >>> ds.step_v.dims, bool(abs(ds.step_v[-1, 1] - truth.step_v[-1, 1]) < 0.1)
    (('time', 'interface'), True)

    A specimen drifting 0.05 nm/s along x (4.5 nm by the last frame), measured and followed:

    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)],
    ...                                             specimen_drift_nm_per_s=(0.0, 0.05), seed=0)
    >>> ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values, drift="auto")
    >>> err = ds.step_v[-1, 1] - truth.step_v[-1, 1]
    >>> bool(abs(ds.drift_nm[-1, 1] - truth.drift_nm[-1, 1]) < 0.2), bool(abs(err) < 3 * ds.step_v_std[-1, 1])
    (True, True)
    """
    fit = StepFitOptions.merged(step_fit, interfaces_nm=interfaces_nm, window_nm=window_nm, model=model,
                                background=background, interface_tilt_deg=interface_tilt_deg, order=order)
    # every option's type and range before anything is read (one line naming it)
    _checks.check_options(thickness_nm=thickness_nm, voltage_kv=voltage_kv, interfaces_nm=fit["interfaces_nm"],
                          window_nm=fit["window_nm"], model=fit["model"], background=fit["background"],
                          order=fit["order"], workers=workers, zero_bias=zero_bias, method=method,
                          min_good_fraction=min_good_fraction)
    plan = plan_bias_series(holograms, bias_v=bias_v, log=log, references=references, voltage_kv=voltage_kv,
                            thickness_nm=thickness_nm, vacuum=vacuum, method=method, zero_bias=zero_bias,
                            region=region, sideband=sideband, aperture=aperture, drift=drift,
                            frame_checks=frame_checks, min_good_fraction=min_good_fraction, **fit)
    holo = _series_da(holograms, method)
    writer = _MapWriter(out, plan) if out is not None else None
    try:
        frames = run_frames(plan, holo, workers=workers, writer=writer,
                            keep_maps=out is None and holo.chunks is None)
        ds = assemble_bias_series(plan, frames)
        if writer is not None:
            # frames the χ² check skipped were written before it ran: NaN, as in the returned maps
            writer.blank([k for k in range(plan.n_time) if not ds["frame_good"].values[k] and not frames[k].reason])
    except BaseException as exc:
        if writer is not None:
            writer.close(exc)
        raise
    if writer is not None:
        writer.close(None)
        from ..io import load

        stored = load(out)
        return with_maps(ds, stored.sel(component="phase", drop=True).data,
                         stored.sel(component="potential", drop=True).data)
    if "phase" in ds:
        return ds
    return with_maps(ds, *_lazy_maps(plan, holo, ds["frame_good"].values, workers))


# --------------------------------------------------------------------------- frames on dask
def run_frames(plan, holo, *, workers=1, writer=None, keep_maps=True):
    """:func:`bias_frame` on every time point of ``holo``, as one dask graph; the frames in time order.

    In-process (no scheduler current, or dask's threaded or synchronous one):
    ``workers`` chains of kernels (frame k waits for frame k − workers, so at
    most ``workers`` run at once), blocks of frames read at most one block
    ahead and maps written in order by ``writer`` — on dask's threaded
    scheduler with ``workers`` + 2 threads unless a scheduler is current.
    A ``distributed`` Client current: the frames run on its workers a round
    at a time and the maps are written here.
    """
    import dask

    sched = dask.base.get_scheduler()
    fft = None if workers == 1 else 1   # one frame at a time: its FFTs use every core
    blocks = _Blocks(holo)
    if sched is not None and sched not in _in_process():
        return _rounds(plan, blocks, writer, keep_maps, fft)
    plan_d = dask.delayed(plan, name=f"bias-plan-{uuid.uuid4().hex}", traverse=False)
    src = dask.delayed(blocks, name=f"bias-holograms-{uuid.uuid4().hex}", traverse=False)
    kern, tokens, writes = [], [], []
    for b, (s, e) in enumerate(blocks.bounds):
        after = []
        if b >= 2:
            # read block b once every frame before block b − 1 is done (and block b − 2 written)
            prev = blocks.bounds[b - 1][0]
            after = tokens[max(0, prev - workers):prev] + (writes[b - 2:b - 1] if writer is not None else [])
        block = dask.delayed(_read, pure=False)(src, b, after)
        for k in range(s, e):
            chain = tokens[k - workers] if k >= workers else None
            kern.append(dask.delayed(_kernel, pure=False)(plan_d, block, k - s, k, chain, fft,
                                                          keep_maps or writer is not None))
            tokens.append(dask.delayed(_token, pure=False)(kern[-1]))
        if writer is not None:
            writes.append(dask.delayed(writer.write, pure=False)(s, kern[s:e], writes[-1] if writes else None))
    targets = writes if writer is not None else kern
    if sched is None:
        (out,) = dask.compute(targets, scheduler="threads", num_workers=workers + 2)
    else:
        (out,) = dask.compute(targets)
    return [f for part in out for f in part] if writer is not None else list(out)


def _in_process():
    import dask.local
    import dask.threaded

    return (dask.threaded.get, dask.local.get_sync)


def _read(blocks, b, after):
    return blocks.read(b)


def _kernel(plan, block, j, k, after, fft_workers, keep_maps):
    frame = bias_frame(plan, block[j], index=k, fft_workers=fft_workers)
    if not keep_maps:
        frame.phase = frame.potential = None
    return frame


def _token(_):
    return None


def _rounds(plan, blocks, writer, keep_maps, fft):
    """Frames on a scheduler outside this process (a cluster): 8 blocks at a time, read and written here."""
    import dask

    plan_d = dask.delayed(plan, name=f"bias-plan-{uuid.uuid4().hex}", traverse=False)
    out, per_round = [], 8
    for r in range(0, len(blocks.bounds), per_round):
        tasks = []
        for b in range(r, min(r + per_round, len(blocks.bounds))):
            s, e = blocks.bounds[b]
            block = dask.delayed(blocks.read(b), name=f"bias-block-{uuid.uuid4().hex}", traverse=False)
            tasks += [dask.delayed(_kernel, pure=False)(plan_d, block, k - s, k, None, fft,
                                                        keep_maps or writer is not None) for k in range(s, e)]
        part = list(dask.compute(tasks)[0])
        out.extend(writer.write(part[0].index, part, None) if writer is not None else part)
    return out


class _Blocks:
    """A series' frames read a block at a time (≤ 8 time points, ≤ 16 MiB), synchronously.

    Reading is a task of its own: the frames are already the unit of
    parallel work, and dask's thread pool around a 1k² frame's read adds ~4×
    its time (measured). When the input's chunks hold whole frames (one chunk
    across the other axes, as in a Zarr series of one frame per chunk), each
    chunk's own task is run (``dask.get`` on the graph, materialised once)
    instead of slicing and computing, which optimises a graph, schedules it
    and copies the result: measured 19.5 → 10.9 ms of CPU per 2048² float32 frame.
    """

    def __init__(self, holo, batch=None):
        self.holo = holo
        if batch is None:
            frame_bytes = int(np.prod([holo.sizes[d] for d in holo.dims if d != "time"])) * holo.dtype.itemsize
            batch = int(max(1, min(8, (16 << 20) // max(frame_bytes, 1))))
        n_t = holo.shape[0]
        chunks = holo.chunks   # None unless dask-backed (holo.data of a lazy backend array would load it all)
        self.graph = None
        if chunks is not None and all(len(c) == 1 for c in chunks[1:]) and max(chunks[0]) <= batch:
            data = holo.data
            self.graph = dict(data.__dask_graph__())
            keys = []
            for key in data.__dask_keys__():
                while isinstance(key, list):
                    key = key[0]
                keys.append(key)
            bounds = np.cumsum((0,) + tuple(chunks[0]))
            self.bounds, self.keys = [], []
            i = 0
            while i < len(keys):
                j = i + 1
                while j < len(keys) and bounds[j + 1] - bounds[i] <= batch:
                    j += 1
                self.bounds.append((int(bounds[i]), int(bounds[j])))
                self.keys.append(keys[i:j])
                i = j
        else:
            self.bounds = [(s, min(s + batch, n_t)) for s in range(0, n_t, batch)]

    def read(self, b):
        """Block ``b``: a numpy array of its time points."""
        if self.graph is not None:
            import dask

            parts = [np.asarray(dask.get(self.graph, key)) for key in self.keys[b]]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        s, e = self.bounds[b]
        block = self.holo[s:e].data
        if hasattr(block, "compute"):
            block = block.compute(scheduler="synchronous")
        return np.asarray(block)


class _MapWriter:
    """The ``phase`` and ``potential`` maps written to a Zarr store block by block, in order; atomic.

    Thread-safe: after :meth:`close` (a failed run) a write still in flight
    in another thread finishes first and later ones are dropped, so the
    half-written store is removed whole.
    """

    def __init__(self, out, plan):
        import threading

        import dask.array as dsa
        import xarray as xr

        from ..io import ZarrSeriesWriter

        oy, ox = plan.out_shape
        tmpl = xr.DataArray(dsa.zeros((plan.n_time, 2, oy, ox), dtype=np.float32, chunks=-1),
                            dims=("time", "component", "y", "x"),
                            coords={"time": plan.times, "component": ["phase", "potential"], "y": plan.y,
                                    "x": plan.x}, name="maps")
        self._writer = ZarrSeriesWriter(out, tmpl, chunks={"time": 1})
        self._lock, self._open = threading.Lock(), False
        self._shape = (oy, ox)
        self._writer.__enter__()
        self._open = True

    def write(self, start, frames, _after=None):
        """Write the maps of ``frames`` (time points ``start`` …); return them without maps."""
        block = np.stack([np.stack([f.phase, f.potential]) for f in frames])
        with self._lock:
            if self._open:
                self._writer.write({"time": slice(start, start + len(frames))}, block)
        for f in frames:
            f.phase = f.potential = None
        return frames

    def blank(self, indices):
        """NaN maps at these time points."""
        nan = np.full((1, 2, *self._shape), np.nan, np.float32)
        with self._lock:
            for k in indices:
                self._writer.write({"time": slice(k, k + 1)}, nan)

    def close(self, exc):
        with self._lock:
            was, self._open = self._open, False
        if was:
            self._writer.__exit__(*((type(exc), exc, exc.__traceback__) if exc is not None else (None,) * 3))


def _lazy_maps(plan, holo, good, workers):
    """Maps of a lazy series computed on access (each access recomputes its frame)."""
    import dask
    import dask.array as dsa

    fft = None if workers == 1 else 1
    plan_d = dask.delayed(plan, name=f"bias-plan-{uuid.uuid4().hex}", traverse=False)
    phase, pot = [], []
    for k in range(plan.n_time):
        if not good[k]:
            nan = dsa.full(plan.out_shape, np.nan, dtype=np.float32)
            phase.append(nan)
            pot.append(nan)
            continue
        fr = dask.delayed(bias_frame, pure=True)(plan_d, holo.data[k], index=k, fft_workers=fft)
        phase.append(dsa.from_delayed(dask.delayed(_attr)(fr, "phase"), plan.out_shape, np.float32))
        pot.append(dsa.from_delayed(dask.delayed(_attr)(fr, "potential"), plan.out_shape, np.float32))
    return dsa.stack(phase), dsa.stack(pot)


def _attr(obj, name):
    return getattr(obj, name)
