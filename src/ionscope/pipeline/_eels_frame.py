# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS night's per-frame work: every frame read once, its maps out (issue 20).

Plain functions on numpy frames, no I/O and no scheduling — the batch table
(:mod:`ionscope.pipeline._eels`) maps them over the frames with the executor
(one task per frame), and live mode calls them frame by frame::

    plan = frame_plan(config, energy=energy, references=references, probe=probe)
    summary = frame_summary(frame, plan=plan)
    maps = frame_maps(frame, plan=plan, energy_shift=0.0, drift=(0.0, 0.0))

``frame`` is one frame as read: a numpy ``(y, x, energy)`` array on
``plan.energy`` (the series' whole energy axis).

* :func:`frame_plan` ``(config, *, energy, references, probe=None, resolution_fwhm=None) -> FramePlan``:
  what every frame shares, built once — the channels the maps need, whether the
  energy drift is undone and the frame registered, and the Li-map fit
  (:func:`ionscope.eels.mlls_plan`: design, references on the axis, the
  zero-loss width measured on ``probe`` spectra; see :func:`probe_spectra`).
* :func:`frame_summary` ``(frame, *, plan) -> dict``: the first read (the
  ``screen`` stage) — ``statistics`` (the plausibility gates' numbers:
  total, minimum, NaN/Inf, negative, size), ``spectrum`` (the frame summed over
  its pixels: what the energy drift is measured on) and ``image`` (the
  ``[register] window_ev`` sum: what the specimen drift is measured on).
* :func:`frame_maps` ``(frame, *, plan, energy_shift=0.0, drift=(0.0, 0.0)) -> dict``:
  the second read (the ``limap`` stage) — energy drift undone (spectra
  without their zero-loss peak; with it, each spectrum is aligned on its own
  peak by the deconvolution), the frame moved by the specimen drift
  ``(dy, dx)`` px, and the Li map fitted. Returns ``(y, x)`` float64 maps:
  ``li``, ``li_std``, ``chi2``, and where the method gives them ``co``,
  ``co_std``, ``thickness`` (t/λ), ``zero_loss`` (I0).

The energy shift and the drift are series quantities (a frame's drift is
measured against the first frame, or the mean): the batch table estimates
them from the summaries of every frame (``energy_drift`` and ``register``
stages, no read of the spectra), live mode against its running reference.
The arithmetic is the one the table used before the fusion (the Fourier
energy shift of :func:`ionscope.eels.shift_energy`, the bilinear shift of
:func:`ionscope.transport.apply_shifts`, the kernel of
:func:`ionscope.eels.mlls`): the maps are identical, bit for bit
(``tests/test_pipeline_eels_fused.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: spectra mlls measures the zero-loss width on (spread evenly over its input)
PROBE_SPECTRA = 64


@dataclass(frozen=True)
class FramePlan:
    """What every frame of a night shares (see :func:`frame_plan`).

    Attributes
    ----------
    energy : ndarray
        The series' energy axis (eV); frames hold these channels.
    channels : slice
        The channels the maps are made from (MLLS without plural
        scattering: ``fit_range`` ± ``crop_margin_ev``; else every channel).
    correct_energy : bool
        Undo the energy shift of each frame before the fit.
    register : bool
        Move each frame by its specimen drift before the fit.
    register_channels : slice
        The channels summed into the registration image.
    negative_below : float
        Values below minus this count as negative (``[screen]``).
    fit : ionscope.eels.MllsPlan or None
        The Li-map fit (None: a method that is not per frame, e.g. NMF).
    names : dict
        Map name → the fit's output column (``li`` → ``"Li"``, ...).
    """

    energy: np.ndarray
    channels: slice
    correct_energy: bool
    register: bool
    register_channels: slice
    negative_below: float
    fit: Any
    names: dict


def _channel_slice(energy: np.ndarray, lo: float, hi: float) -> slice:
    """The channels of ``energy`` in [lo, hi] (as ``DataArray.sel(energy=slice(lo, hi))`` picks them)."""
    idx = np.flatnonzero((energy >= lo) & (energy <= hi))
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def frame_plan(config, *, energy, references, probe=None, resolution_fwhm: float | None = None,
               plural: str | None = None, shift_probe=None) -> FramePlan:
    """What every frame of a night shares, from the run configuration.

    Parameters
    ----------
    config : ionscope.pipeline.Config
        ``[limap]``, ``[energy_drift]``, ``[register]``, ``[screen]`` are read.
    energy : array_like
        The series' energy axis (eV).
    references : xarray.DataArray (component, energy), callable or None
        Reference spectra (MLLS), resampled onto the axis as :func:`ionscope.eels.mlls` does, or a
        callable ``energy -> references`` (called with the channels the maps are made from); None:
        no fit (the plan then serves :func:`frame_summary` only).
    probe : array_like (n, energy), optional
        Spectra (registered, on ``energy``) to measure the zero-loss width from, for
        spectra holding their zero-loss peak (see :func:`probe_spectra`); or
        ``resolution_fwhm`` (eV).
    plural : str, optional
        ``[limap] plural_scattering`` resolved ("none", "fourier-log", "convolve");
        default: resolved from the energy axis ("auto": "fourier-log" when it holds 0 eV).
    shift_probe : array_like or callable, optional
        Frames to measure a Li-K shift the references leave open on (``ionscope.eels.mlls_plan``'s
        ``shift_probe``; the night's step is :mod:`ionscope.pipeline._li_shift_night`).

    Returns
    -------
    FramePlan

    Examples
    --------
    >>> from ionscope.pipeline import from_dict
    >>> from ionscope.simulate import edge_references, operando_eels
    >>> si, _, _ = operando_eels(shape=(8, 6), n_frames=1, energy_step=0.5, seed=0)
    >>> e = si.energy.values
    >>> plan = frame_plan(from_dict({}), energy=e, references=edge_references(e))
    >>> maps = frame_maps(si.values[0], plan=plan)
    >>> sorted(maps), maps["li"].shape
    (['chi2', 'co', 'co_std', 'li', 'li_std'], (8, 6))
    """
    from .. import eels
    from ..errors import DataValidationError

    e = np.asarray(energy, float)
    lc = config.limap
    if plural is None:
        plural = lc.plural_scattering if lc.plural_scattering != "auto" else (
            "fourier-log" if e.min() < 0 < e.max() else "none")
    channels = slice(0, e.size)
    if lc.method == "mlls" and lc.crop_margin_ev >= 0 and plural == "none":
        lo, hi = lc.fit_range[0] - lc.crop_margin_ev, lc.fit_range[1] + lc.crop_margin_ev
        if not (lo <= e.min() and hi >= e.max()):
            channels = _channel_slice(e, lo, hi)
            if channels.stop - channels.start < 10:
                raise DataValidationError(f"config [limap] fit_range {list(lc.fit_range)} eV holds fewer than 10 "
                                          f"channels of the series ({e.min():.4g}..{e.max():.4g} eV)")
    rc = config.register
    reg = _channel_slice(e, *rc.window_ev) if rc.window_ev else slice(0, e.size)
    fit, names = None, {}
    if callable(references) and not hasattr(references, "dims"):
        references = references(e[channels])
    if lc.method == "mlls" and references is not None:
        options = dict(lc.options)
        # the mapped component is not clipped at zero (the table's rule, see pipeline._eels._li_maps)
        options.setdefault("nonnegative", [str(c) for c in references["component"].values if str(c) != lc.component])
        e_map = e[channels]
        if plural != "none":
            options.pop("weights", None)
            if resolution_fwhm is not None:
                options.setdefault("resolution_fwhm", resolution_fwhm)
            fit = eels.mlls_plan(references, energy=e_map, fit_range=tuple(lc.fit_range), plural_scattering=plural,
                                 probe=probe, **({"shift_probe": shift_probe} if shift_probe is not None else {}),
                                 **options)
        else:
            fit = eels.mlls_plan(references, energy=e_map, fit_range=tuple(lc.fit_range),
                                 background=None if lc.background == "none" else lc.background,
                                 weights=None if lc.weights == "none" else lc.weights, **options)
        from ._eels_adapters import _refs_sigma_maps

        cols = fit.columns
        if lc.component not in cols:
            raise DataValidationError(f"config [limap] component: {lc.component!r} is not among the maps "
                                      f"{[c for c in cols if not c.startswith('basis')]}")
        for name, key in (("li", lc.component), ("li_std", f"{lc.component}_std"), ("chi2", "chi2"),
                          ("thickness", "thickness"), ("co", lc.co_component), ("co_std", f"{lc.co_component}_std"),
                          ("zero_loss", "zero_loss")) + _refs_sigma_maps(lc):
            if key in cols:
                names[name] = key
    return FramePlan(energy=e, channels=channels, correct_energy=bool(config.energy_drift.enabled and plural == "none"),
                     register=bool(rc.enabled), register_channels=reg, negative_below=float(config.screen.negative_below),
                     fit=fit, names=names)


def frame_summary(frame, *, plan: FramePlan) -> dict:
    """The first read of a frame: the gates' statistics, its summed spectrum and its registration image.

    Parameters
    ----------
    frame : ndarray (y, x, energy)
    plan : FramePlan

    Returns
    -------
    dict
        ``statistics`` (5,) float64: total, minimum, NaN/Inf count, negative count,
        values (:func:`ionscope.pipeline._gates.block_statistics`); ``implausible``
        — how many spectra break the raw-count plausibility rule
        (:func:`implausible_pixels`; the Li-map read makes them NaN); ``spectrum``
        (energy,) — the frame summed over its pixels, in the frame's dtype;
        ``image`` (y, x) — the sum over ``plan.register_channels``.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.pipeline import from_dict
    >>> e = np.arange(30.0, 60.0, 0.5)
    >>> plan = frame_plan(from_dict({"limap": {"method": "sasb"}, "register": {"window_ev": [30, 31]}}),
    ...                   energy=e, references=None)
    >>> s = frame_summary(np.ones((2, 3, e.size), np.float32), plan=plan)
    >>> s["statistics"].tolist(), s["spectrum"][:2].tolist(), s["image"].tolist()
    ([360.0, 1.0, 0.0, 0.0, 360.0], [6.0, 6.0], [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]])
    """
    from ._gates import block_statistics

    block = np.asarray(frame)[None]
    # the same reductions, on the same (1, y, x, energy) block, as the dask expressions the stages
    # used before the fusion: the same float32 sums, bit for bit
    stats = block_statistics(block, negative_below=plan.negative_below)[0]
    # the statistics' minimum spares the rule's pass over a finite frame with nothing below −8 counts
    bad = implausible_pixels(frame, finite_minimum=float(stats[1]) if stats[2] == 0 else None)
    if bad is not None and stats[2] == 0:
        # a finite frame with corrupt spectra: they enter neither the energy drift's spectrum nor the
        # registration image (counted as zero there; the maps make them NaN)
        block = block.copy()
        block[0][bad] = 0
    return {"statistics": stats, "implausible": 0 if bad is None else int(bad.sum()),
            "spectrum": np.sum(block, axis=(1, 2))[0],
            "image": np.sum(block[..., plan.register_channels], axis=3)[0]}


def implausible_pixels(frame, *, finite_minimum=None):
    """Which spectra of a frame ``(y, x, energy)`` break the raw-count plausibility rule
    (:func:`ionscope.eels.implausible_spectra`); None when none does (one ``min`` and one ``max`` pass)."""
    from ..eels import implausible_spectra

    bad = implausible_spectra(frame, finite_minimum=finite_minimum)
    return bad if bad.any() else None


def frame_maps(frame, *, plan: FramePlan, energy_shift: float = 0.0, drift=(0.0, 0.0)) -> dict:
    """The second read of a frame: energy drift undone, specimen drift undone, the Li map fitted.

    Parameters
    ----------
    frame : ndarray (y, x, energy)
        As read, on ``plan.energy``.
    plan : FramePlan
    energy_shift : float
        The frame's energy shift (eV; undone when ``plan.correct_energy``).
    drift : (float, float)
        The frame's specimen drift (dy, dx) in px (undone when ``plan.register``).

    Returns
    -------
    dict of ndarray (y, x) float64
        ``li``, ``li_std``, ``chi2`` and, as the method gives them, ``co``,
        ``co_std``, ``thickness``, ``zero_loss``.
    """
    cols = frame_columns(frame, plan=plan, energy_shift=energy_shift, drift=drift)
    return {name: cols[..., plan.fit.columns.index(key)] for name, key in plan.names.items()}


def frame_columns(frame, *, plan: FramePlan, energy_shift: float = 0.0, drift=(0.0, 0.0)) -> np.ndarray:
    """:func:`frame_maps` as the fit's raw output ``(y, x, len(plan.fit.columns))`` (what the batch stage stores)."""
    block = corrected_frame(frame, plan=plan, energy_shift=energy_shift, drift=drift)
    return plan.fit(block)


def corrected_frame(frame, *, plan: FramePlan, energy_shift: float = 0.0, drift=(0.0, 0.0)) -> np.ndarray:
    """The frame's spectra as the fit sees them: implausible spectra NaN, cropped, energy and specimen drift undone.

    A spectrum that breaks the raw-count plausibility rule (:mod:`ionscope.eels._plausible`; the screen
    counts them per frame and the run reports them) is made NaN before anything mixes it with others:
    NaN in the maps there (and, through the registration's bilinear shift, at its neighbours), never
    analysed. A frame without one is used as it is (one ``min`` pass; the same maps bit for bit).
    """
    frame = np.asarray(frame)
    bad = implausible_pixels(frame)
    if bad is not None:
        frame = frame.astype(np.result_type(frame.dtype, np.float32), copy=True)
        frame[bad] = np.nan
    block = frame[..., plan.channels]
    if plan.correct_energy:
        block = _shift_energy(block, plan.energy[plan.channels], float(energy_shift))
    if plan.register:
        block = _shift_frame(block, float(drift[0]), float(drift[1]))
    return block


def _shift_energy(block: np.ndarray, energy: np.ndarray, shift: float) -> np.ndarray:
    """:func:`ionscope.eels.shift_energy` of one frame, shaped as the batch stage's blocks (1, y, x, energy)."""
    import xarray as xr

    from .. import eels

    da = xr.DataArray(block[None], dims=("time", "y", "x", "energy"), coords={"energy": energy})
    out = eels.shift_energy(da, xr.DataArray(np.array([shift]), dims=("time",)))
    return np.asarray(out.data).astype(block.dtype)[0]


def _linear_index(n: int, shift: float):
    # as ionscope.transport's bilinear shift: source positions clamped to the frame, floor and weight
    src = np.clip(np.arange(n) - shift, 0, n - 1)
    i0 = np.floor(src).astype(np.intp)
    return i0, np.minimum(i0 + 1, n - 1), src - i0


#: private switch: ``False`` shifts frames with the numpy steps (the reference :mod:`._shift_jit` is tested against)
_COMPILED_SHIFT = True


def _shift_frame(frame: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift a (y, x, energy) frame by (dy, dx) px: :func:`ionscope.transport.apply_shifts` (order 1).

    The same element-wise arithmetic as the transport kernel (rows first, then
    columns; weights in the frame's dtype), so the result is identical to the
    bit; done on the (y, x, energy) layout the frame is read in, whole spectra
    at a time, instead of the transport kernel's (energy, y, x) view
    (measured: 2–4× fewer cycles on 128×128×1024 frames).
    """
    y0, y1, wy = _linear_index(frame.shape[0], dy)
    x0, x1, wx = _linear_index(frame.shape[1], dx)
    if _COMPILED_SHIFT and frame.ndim == 3 and frame.dtype in (np.float32, np.float64):
        # the same arithmetic in one compiled pass (0.13 → ~0.03 CPU s per 128×128×1024 float32 frame)
        try:
            from ._shift_jit import bilinear_shift
        except ImportError:  # pragma: no cover - numba is a dependency; the numpy steps give the same bits
            bilinear_shift = None
        if bilinear_shift is not None:
            out = np.empty(frame.shape, frame.dtype)
            bilinear_shift(np.ascontiguousarray(frame), y0, y1, wy.astype(frame.dtype), x0, x1,
                           wx.astype(frame.dtype), out)
            return out
    wy = wy[:, None, None].astype(frame.dtype, copy=False)
    wx = wx[None, :, None].astype(frame.dtype, copy=False)
    top = np.take(frame, y0, axis=0)
    rows = np.take(frame, y1, axis=0)
    rows -= top
    rows *= wy
    rows += top
    del top
    left = np.take(rows, x0, axis=1)
    out = np.take(rows, x1, axis=1)
    out -= left
    out *= wx
    out += left
    return out


def probe_positions(n_frames: int, ny: int, nx: int, n: int = PROBE_SPECTRA) -> np.ndarray:
    """Flat indices (over time, y, x) of the spectra :func:`ionscope.eels.mlls` measures the zero-loss width on."""
    total = n_frames * ny * nx
    step = max(1, total // n)
    return np.arange(0, total, step)[:n]


def probe_spectra(frames) -> np.ndarray:
    """The spectra of a (time, y, x, energy) numpy series (or one (y, x, energy) frame) that
    :func:`ionscope.eels.mlls` measures the zero-loss width on: ``frame_plan(probe=...)``."""
    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[None]
    idx = probe_positions(*a.shape[:3])
    return np.asarray(a.reshape(-1, a.shape[-1])[idx], float)
