# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando STEM-EELS series and Li-map movies with ground truth.

:func:`operando_eels` turns the Li transport of :func:`li_transport` into what
the microscope records: one spectrum image per frame, each pixel a power-law
background plus the Li-K and Co-M2,3 edges weighted by the Li and Co in the
column, with optional energy drift, specimen drift and Poisson noise.
:func:`limap_movie` gives the Li-map movie directly (for denoising work).

Frames are generated one block of rows at a time, so a series far larger than
memory is written to Zarr with bounded memory; the random numbers of each
frame come from that frame's own generator (realistic physics: one generator
per image row, spawned from the frame's seed), so the data do not depend on the
block size or on whether the series goes to memory or to disk. Realistic frames
are computed two blocks at a time on threads (the plural-scattering kernel and
the Poisson sampler release the GIL).

References
----------
Y. Nomura et al., Nano Lett. 18 (2018) 5892, doi:10.1021/acs.nanolett.8b02436;
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
(the operando STEM-EELS experiment this simulates).
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011),
doi:10.1007/978-1-4419-9583-4 (power-law background, thickness dependence).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataValidationError
from . import _realistic
from ._spectra import E_REF, edge_references
from ._transport import _check_float, _check_int, _check_shape, _seed_entropy, _smooth_noise, transport_with_log

__all__ = ["operando_eels", "limap_movie"]

# Edge strengths relative to the background, for x = 1 LiCoO2 of mean thickness:
# Li-K peak ≈ 10 % of the background at 62 eV, Co-M2,3 maximum ≈ 20 % of it at 67 eV.
# These give the weak, overlapping edges on a steep background seen in LiCoO2 low-loss data.
LI_EDGE_FRACTION = 0.10
CO_EDGE_FRACTION = 0.20
#: inelastic mean free path (nm) of LiCoO2 at 200 kV used to express thickness as t/λ
MFP_NM = 120.0
#: rows per generated block are chosen so that one block holds about this many bytes (float64)
_BLOCK_BYTES = 16 * 2**20


def _drift_track(rng, n, magnitude):
    """A smooth random track starting at 0 whose largest excursion is ``magnitude``."""
    if magnitude == 0 or n < 2:
        return np.zeros(n)
    steps = rng.standard_normal(n)
    steps[0] = 0.0
    track = np.cumsum(steps) + np.linspace(0.0, 1.0, n) * rng.choice([-1.0, 1.0]) * np.sqrt(n)
    track -= track[0]
    return magnitude * track / np.abs(track).max()


def _shift_map(values, dy, dx):
    """Image of the specimen map under a drift of (dy, dx) px (bilinear, edge pixels repeated)."""
    from scipy.ndimage import shift

    if dy == 0 and dx == 0:
        return values
    return shift(values, (dy, dx), order=1, mode="nearest")


def _pair(value, name):
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataValidationError(f"{name} must be a pair of numbers, got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise DataValidationError(f"{name} must be finite, got {value!r}")
    return a, b


def _validate_range(energy_range, energy_step, *, allow_negative=False):
    try:
        e_lo, e_hi = (float(v) for v in energy_range)
    except (TypeError, ValueError):
        raise DataValidationError(f"energy_range must be a pair (start, stop) in eV, got {energy_range!r}") from None
    step = _check_float(energy_step, "energy_step")
    if not ((allow_negative or 0 < e_lo) and e_lo < e_hi) or not np.isfinite(e_hi) or not np.isfinite(e_lo):
        raise DataValidationError(f"energy_range must satisfy {'' if allow_negative else '0 < '}start < stop (eV), "
                                  f"got {energy_range!r}")
    n = int(np.floor((e_hi - e_lo) / step + 1e-9))
    if n < 8:
        raise DataValidationError(f"energy_range {energy_range!r} with energy_step={step:g} gives {n} channels; "
                                  "expected at least 8")
    return e_lo + step * np.arange(n), step


def operando_eels(*, shape=(32, 48), n_frames=24, energy_range=None, energy_step=0.1, dose=200.0,
                  energy_drift_ev=0.0, specimen_drift_px=0.0, noise=True, seed=0, out=None, chunks=None,
                  exponent=3.0, physics="ideal", thickness_range=(0.3, 1.2), thinning=0.05, zlp_fwhm=0.8,
                  descan_ev=0.3, li_chemical_shift_ev=0.6, dual_eels=False, low_loss_range=(-5.0, 51.2),
                  low_loss_exposure=0.01, **transport_kw):
    """Simulate an operando STEM-EELS series of a LiCoO2 film (charge → rest → discharge).

    ``physics="ideal"`` (the default, for unit tests of the fitting code):
    every pixel's spectrum is

        I(E) = A·(E/55 eV)^−r + w_Li·ref_Li(E) + w_Co·ref_Co(E)

    with ``ref = edge_references(energy)``, evaluated at ``E − energy_shift[t]``
    in frame ``t``, on the pixel's specimen position moved by the specimen
    drift, then Poisson noise.

    ``physics="realistic"`` (the demo's and the operando demo's): what a
    microscope records — a zero-loss peak of finite, asymmetric width
    (``zlp_fwhm``), a valence-loss spectrum with the bulk plasmon near 23 eV,
    every order of plural scattering by the Poisson/Fourier relation at a
    t/λ that varies in space over ``thickness_range`` and thins slowly in time
    (``thinning``), Li-K and Co-M2,3 edges with near-edge fine structure and a
    Li-K chemical shift of ``li_chemical_shift_ev`` between x = 1 and x = 0.5,
    a de-scan shift of the whole spectrum across the scan (``descan_ev``) and
    Poisson noise. ``energy_range`` then starts below 0 eV so that the
    spectra hold their own zero-loss peak; with ``dual_eels=True`` a separate
    low-loss acquisition (``low_loss_range``, exposure ``low_loss_exposure``
    times the core loss) is returned beside a core-loss series without it.
    ``truth.weights`` are then the Li-K and Co-M amounts in single-scattering
    counts (the coefficients of ``truth.references`` in ``I0·S(E)`` per
    channel), ``truth.thickness`` is t/λ per frame and ``truth.li`` is x.
    See :mod:`ionscope.simulate._realistic`.

    .. versionchanged:: issue 20
       ``physics="realistic"`` is ~15× faster (the batched kernel of
       :mod:`ionscope.simulate._plural_kernel`, row-wise Poisson generators on two
       threads). Its outputs changed: the expected counts by ≲ 3e-4 relative in the
       zero-loss peak's far left tail and ≲ 6e-5 elsewhere (closer to a converged
       evaluation than before), the truth arrays by ≲ 3e-6 relative (the dose
       normalisation), and the Poisson draws come from other streams of the same
       seed (same statistics, different numbers). ``physics="ideal"`` is unchanged.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels (``y`` through the film, electrolyte at row 0).
    n_frames : int
        Number of frames (spectrum images).
    energy_range : (float, float), optional
        Start and stop energy loss in eV (stop excluded); default (30, 132)
        for ``physics="ideal"``, (−5, 97.4) for ``"realistic"`` (1024
        channels at 0.1 eV holding the zero-loss peak), (30, 132) for the core
        loss of ``dual_eels``.
    energy_step : float
        Dispersion in eV per channel.
    dose : float
        Expected background counts per channel at 55 eV in a pixel of mean
        thickness (the Li-K onset, i.e. the pre-edge signal every Li map is made
        from). The edges scale with it: at x = 1 the Li-K peak is 10 % and the
        Co-M2,3 maximum 20 % of the local background.
    energy_drift_ev : float
        Largest energy-axis shift over the series (a smooth random track from 0).
    specimen_drift_px : float
        Largest specimen drift in pixels (a smooth random track from 0).
    noise : bool
        Draw Poisson counts (True) or return the expected counts (False).
    seed : int
        Seed of everything (microstructure, drift, noise).
    out : str or Path, optional
        A ``.zarr`` path: the series is written frame by frame (bounded memory,
        atomic) and the returned ``si`` is the lazy store.
    chunks : dict, optional
        Zarr/dask chunks by dimension, default ``{"time": 1, "energy": -1}`` with
        ``y`` split so that a chunk holds ≲ 64 MB. In memory, a given ``chunks``
        returns a dask-backed ``si``.
    exponent : float
        Mean background exponent r; thicker pixels get a smaller r (plural
        scattering flattens the background): ``r = exponent − 0.5·(t/λ − mean t/λ)``.
    physics : {"ideal", "realistic"}
        Spectrum model (see above).
    thickness_range : (float, float)
        Realistic physics: t/λ of the thinnest and thickest pixels.
    thinning : float
        Realistic physics: relative loss of thickness over the series (beam damage).
    zlp_fwhm : float
        Realistic physics: zero-loss peak FWHM in eV.
    descan_ev : float
        Realistic physics: peak-to-peak shift of the whole spectrum across the scan (eV).
    li_chemical_shift_ev : float
        Realistic physics: Li-K shift (eV, to higher loss) at x = 0.5 relative to x = 1; linear in x.
    dual_eels : bool
        Realistic physics: return ``(core_loss, low_loss, truth, log)`` — a core-loss series
        over ``energy_range`` without the zero-loss peak and a low-loss series over
        ``low_loss_range`` recorded with ``low_loss_exposure`` times the dose (in memory only).
    low_loss_range : (float, float)
        Energy range of the dual-EELS low-loss spectra (eV, stop excluded).
    low_loss_exposure : float
        Exposure of the low-loss relative to the core-loss acquisition.
    **transport_kw
        Passed to :func:`ionscope.simulate.li_transport` (``pixel_nm``,
        ``frame_time_s``, ``protocol``, ``current_a``, ...).

    Returns
    -------
    si : xarray.DataArray
        ``(time, y, x, energy)`` float32 counts; ``time`` = frame mid-time (s),
        ``y``/``x`` in nm, ``energy`` in eV; attrs ``beam_energy_kv``,
        ``dispersion_ev``, ``exposure_s`` (pixel dwell), ``signal_type="EELS"``,
        convergence/collection angles, ``dose``.
    truth : xarray.Dataset
        The :func:`li_transport` variables plus ``weights`` (component, time,
        y, x) — the exact coefficients of ``references`` in every noise-free
        spectrum (before the energy shift) —, ``references`` (component,
        energy), ``background_amplitude`` (counts/channel at 55 eV) and
        ``background_exponent`` (time, y, x), ``thickness`` (y, x) t/λ in the
        specimen frame, ``energy_shift`` (time) eV, ``drift_y``/``drift_x``
        (time) px. ``li``, ``co``, ``thickness`` are in the specimen frame;
        ``weights`` and the background maps are in the image frame (drift
        applied), i.e. they match ``si`` pixel by pixel.
    log : xarray.Dataset
        The electrochemistry log on its own finely sampled ``time`` (s):
        ``voltage`` (V), ``current`` (A, + on charge), ``state``, ``charge_c`` (C).

    Raises
    ------
    DataValidationError
        Bad sizes, ranges, dose or transport options (the message names the argument).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> si, truth, log = operando_eels(shape=(8, 12), n_frames=3, energy_step=0.5, noise=False)
    >>> si.dims, si.dtype.name
    (('time', 'y', 'x', 'energy'), 'float32')
    >>> truth.weights.component.values.tolist()
    ['Li', 'Co']
    """
    import xarray as xr

    ny, nx = _check_shape(shape)
    n_frames = _check_int(n_frames, "n_frames", 1)
    _seed_entropy(seed)
    if physics not in ("ideal", "realistic"):
        raise DataValidationError(f"physics: expected 'ideal' or 'realistic', got {physics!r}")
    realistic = physics == "realistic"
    if dual_eels and not realistic:
        raise DataValidationError("dual_eels=True needs physics='realistic' (the ideal model has no low loss)")
    if dual_eels and out is not None:
        raise DataValidationError("dual_eels=True is simulated in memory only; leave out=None")
    if energy_range is None:
        energy_range = (-5.0, 97.4) if realistic and not dual_eels else (30.0, 132.0)
    energy, step = _validate_range(energy_range, energy_step, allow_negative=realistic)
    if realistic:
        t_lo, t_hi = _pair(thickness_range, "thickness_range")
        if not 0 < t_lo <= t_hi < 5:
            raise DataValidationError(f"thickness_range: expected 0 < low ≤ high < 5 (t/λ), got {thickness_range!r}")
        thinning = _check_float(thinning, "thinning", allow_zero=True)
        if thinning >= 1:
            raise DataValidationError(f"thinning: expected 0 ≤ thinning < 1, got {thinning!r}")
        zlp_fwhm = _check_float(zlp_fwhm, "zlp_fwhm")
        descan_ev = _check_float(descan_ev, "descan_ev", allow_zero=True)
        li_chemical_shift_ev = float(li_chemical_shift_ev)
        ll_energy = None
        if dual_eels:
            ll_energy, _ = _validate_range(low_loss_range, energy_step, allow_negative=True)
            low_loss_exposure = _check_float(low_loss_exposure, "low_loss_exposure")
            if energy[0] <= 5.0 or ll_energy[0] >= -1.0:
                raise DataValidationError("dual_eels: energy_range must start above the zero-loss peak (> 5 eV) "
                                          "and low_loss_range must start below 0 eV")
        elif energy[0] >= -1.0:
            raise DataValidationError(
                f"energy_range {energy_range!r}: realistic spectra must start below 0 eV to hold the zero-loss peak "
                "(or pass dual_eels=True for a separate low-loss acquisition)")
    dose = _check_float(dose, "dose")
    e_drift = _check_float(energy_drift_ev, "energy_drift_ev", allow_zero=True)
    s_drift = _check_float(specimen_drift_px, "specimen_drift_px", allow_zero=True)
    exponent = _check_float(exponent, "exponent")
    if out is not None and Path(out).suffix.lower() != ".zarr":
        raise DataValidationError(f"out={str(out)!r}: expected a path ending in .zarr")
    if chunks is not None and not isinstance(chunks, dict):
        raise DataValidationError(f"chunks must be a dict such as {{'time': 1}}, got {chunks!r}")
    for key in transport_kw:
        if key in ("shape", "n_frames", "seed"):
            raise DataValidationError(f"{key} is given twice")
    if not realistic and energy[0] - e_drift <= 0:
        raise DataValidationError(
            f"energy_drift_ev={e_drift:g} would shift the first channel ({energy[0]:g} eV) to ≤ 0 eV")
    dims = ("time", "y", "x", "energy")
    full_shape = (n_frames, ny, nx, energy.size)
    rows = int(max(1, min(ny, _BLOCK_BYTES // (8 * nx * energy.size))))
    if chunks is None:
        chunk_map = {"time": 1, "y": rows, "x": nx, "energy": energy.size}
    else:
        unknown = sorted(set(chunks) - set(dims))
        if unknown:
            raise DataValidationError(f"chunks: unknown dimension(s) {unknown}; expected some of {dims}")
        chunk_map = {}
        for i, d in enumerate(dims):
            c = chunks.get(d, 1 if d == "time" else -1)
            c = full_shape[i] if c in (-1, None) else _check_int(c, f"chunks[{d!r}]", 1)
            chunk_map[d] = min(c, full_shape[i])
        rows = min(rows, chunk_map["y"]) if out is not None else rows
    if out is not None:  # say how much is coming before the minutes of writing start
        from ..io import warn_if_large

        warn_if_large(4.0 * n_frames * ny * nx * energy.size, out,
                      what=f"{n_frames} frames × {ny}×{nx} px × {energy.size} channels, float32")

    transport, log = transport_with_log(shape=(ny, nx), n_frames=n_frames, seed=seed, **transport_kw)
    rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(seed), spawn_key=(1,)))
    t_rel = transport.thickness_nm.values / float(transport.attrs["reference_thickness_nm"])
    thickness = transport.thickness_nm.values / MFP_NM
    energy_shift = _drift_track(rng, n_frames, e_drift)
    angle = rng.uniform(0, 2 * np.pi)
    track = _drift_track(rng, n_frames, s_drift)
    drift_y = track * np.sin(angle) + 0.05 * s_drift * _drift_track(rng, n_frames, 1.0)
    drift_x = track * np.cos(angle)
    beam = 1.0 + 0.01 * rng.standard_normal(n_frames)  # probe-current fluctuation between frames
    beam[0] = 1.0

    # per-pixel strengths in the specimen frame, for a fully lithiated mean-thickness column
    bg_62 = (62.0 / E_REF) ** -exponent
    bg_67 = (67.0 / E_REF) ** -exponent
    k_li = LI_EDGE_FRACTION * dose * bg_62
    k_co = CO_EDGE_FRACTION * dose * bg_67
    co = transport.co.values.astype(float)
    li = transport.li.values.astype(float)
    t_mean = float(thickness.mean())
    weights = np.empty((2, n_frames, ny, nx), np.float32)
    amp = np.empty((n_frames, ny, nx), np.float32)
    expo = np.empty((n_frames, ny, nx), np.float32)
    for t in range(n_frames):
        dy, dx = drift_y[t], drift_x[t]
        weights[0, t] = beam[t] * k_li * _shift_map(li[t] * co * t_rel, dy, dx)
        weights[1, t] = beam[t] * k_co * _shift_map(co * t_rel, dy, dx)
        th = _shift_map(thickness, dy, dx)
        amp[t] = beam[t] * dose * th / t_mean
        expo[t] = exponent - 0.5 * (th - t_mean)

    if not realistic:
        refs = edge_references(energy)
    else:
        real = _realistic_parameters(
            transport, thickness_range=(t_lo, t_hi), thinning=thinning, drift_y=drift_y, drift_x=drift_x,
            beam=beam, energy_shift=energy_shift, descan_ev=descan_ev, shift_ev=li_chemical_shift_ev,
            dose=dose, zlp_kw={"zlp_fwhm": zlp_fwhm}, step=step)
        weights = real["weights"]
        from ..data import calibrated

        refs = calibrated(_realistic.true_references(energy), ("component", "energy"),
                          coords={"component": ["Li", "Co"], "energy": energy}, name="references",
                          attrs={"signal_type": "EELS", "title": "single-scattering Li-K and Co-M2,3 at x = 1"})
    frame_time = float(transport.attrs["frame_time_s"])
    attrs = {
        "signal_type": "EELS", "beam_energy_kv": 200.0, "dispersion_ev": step,
        "convergence_angle_mrad": 10.0, "collection_angle_mrad": 20.0,
        "exposure_s": frame_time / (ny * nx), "dose": dose,
        "dose_definition": "expected background counts per channel at 55 eV, mean-thickness pixel",
        "title": "simulated operando STEM-EELS of LiCoO2 (ionscope.simulate)", "seed": int(seed),
        "frame_time_s": frame_time,
    }
    coords = {"time": ("time", transport.time.values, {"units": "s"}),
              "y": ("y", transport.y.values, {"units": "nm"}), "x": ("x", transport.x.values, {"units": "nm"}),
              "energy": ("energy", energy, {"units": "eV"})}
    frame_seeds = np.random.SeedSequence(_seed_entropy(seed), spawn_key=(2,)).spawn(n_frames)

    kernels = {}
    if realistic:
        # one grid and one set of transforms for the whole series, covering every frame's
        # zero-loss positions and Li shifts (built here, before any thread uses them)
        m = real["maps"]
        for e_axis in (energy, ll_energy) if dual_eels else (energy,):
            kernels[e_axis.size, e_axis[0]] = _realistic.make_kernel(
                e_axis, valence_kw={}, zlp_kw=real["zlp_kw"],
                z_range=(float(m["zlp_centre"].min()), float(m["zlp_centre"].max())),
                shift_range=(float(m["li_shift"].min()), float(m["li_shift"].max())))

    def expected(t, sl, e_axis, exposure=1.0):
        if realistic:
            p = {k: v[t, sl] for k, v in real["maps"].items()}
            return exposure * _realistic.spectra(e_axis, **p, valence_kw={}, zlp_kw=real["zlp_kw"],
                                                 kernel=kernels[e_axis.size, e_axis[0]]).reshape(
                                                     p["i0"].shape + (e_axis.size,))
        e_t = e_axis - energy_shift[t]
        ref_t = edge_references(e_t).values if energy_shift[t] else refs.values
        block = amp[t, sl, :, None] * np.exp(-expo[t, sl, :, None].astype(float) * np.log(e_t / E_REF))
        block += weights[0, t, sl, :, None] * ref_t[0] + weights[1, t, sl, :, None] * ref_t[1]
        return block

    def frames():
        """Yield (t, row slice, float32 block) in order."""
        order = [(t, slice(r0, min(ny, r0 + rows))) for t in range(n_frames) for r0 in range(0, ny, rows)]
        if not realistic:
            for t in range(n_frames):
                gen = np.random.default_rng(frame_seeds[t])
                for r0 in range(0, ny, rows):
                    sl = slice(r0, min(ny, r0 + rows))
                    block = expected(t, sl, energy)
                    if noise:
                        block = gen.poisson(block)
                    yield t, sl, block.astype(np.float32)
            return
        from ._noise import realistic_block, threaded_blocks

        yield from threaded_blocks(order, lambda t, sl: realistic_block(expected(t, sl, energy), frame_seeds[t],
                                                                        sl, noise))

    from .._progress import progress

    bar_total = n_frames * int(np.ceil(ny / rows))
    if out is None:
        data = np.empty(full_shape, np.float32)
        for t, sl, block in progress(frames(), desc="simulate", total=bar_total, unit="block"):
            data[t, sl] = block
        si = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="si")
        if chunks is not None:
            si = si.chunk(chunk_map)
    else:
        import dask.array as dsa

        from ..io import ZarrSeriesWriter, load

        template = xr.DataArray(dsa.zeros(full_shape, dtype=np.float32, chunks=-1), dims=dims, coords=coords,
                                attrs=attrs, name="si")
        from concurrent.futures import ThreadPoolExecutor

        # one writer thread: Zarr compression and disk I/O release the GIL, so the next block
        # is simulated while the previous one is written; at most one block waits (bounded memory)
        with ZarrSeriesWriter(out, template, chunks=chunk_map) as writer, ThreadPoolExecutor(1) as pool:
            pending, start, job = [], None, None
            for t, sl, block in progress(frames(), desc=f"simulate → {Path(out).name}", total=bar_total,
                                         unit="block"):
                if start is None:
                    start = sl.start
                pending.append(block)
                # write whole Zarr chunks at once (a region must not split a chunk between writes)
                if sl.stop == ny or (sl.stop - start) % chunk_map["y"] == 0:
                    if job is not None:
                        job.result()
                    job = pool.submit(writer.write, {"time": slice(t, t + 1), "y": slice(start, sl.stop)},
                                      np.concatenate(pending, axis=0)[None])
                    pending, start = [], None
            if job is not None:
                job.result()
        si = load(out)

    low_loss = None
    if realistic and dual_eels:
        ll = np.empty((n_frames, ny, nx, ll_energy.size), np.float32)
        ll_seeds = np.random.SeedSequence(_seed_entropy(seed), spawn_key=(5,)).spawn(n_frames)
        for t in range(n_frames):
            gen = np.random.default_rng(ll_seeds[t])
            for r0 in range(0, ny, rows):
                sl = slice(r0, min(ny, r0 + rows))
                block = expected(t, sl, ll_energy, exposure=low_loss_exposure)
                ll[t, sl] = gen.poisson(block) if noise else block
        ll_attrs = dict(attrs, exposure_ratio=float(low_loss_exposure),
                        title="simulated operando low-loss (dual EELS) of LiCoO2 (ionscope.simulate)")
        low_loss = xr.DataArray(ll, dims=dims, name="low_loss", attrs=ll_attrs,
                                coords={**coords, "energy": ("energy", ll_energy, {"units": "eV"})})

    comp = ["Li", "Co"]
    truth = transport.copy()
    truth = truth.assign_coords(component=("component", comp), energy=("energy", energy, {"units": "eV"}))
    truth["weights"] = (("component", "time", "y", "x"), weights,
                        {"long_name": "exact coefficients of `references` in each noise-free spectrum",
                         "units": "counts per unit reference"})
    truth["references"] = (("component", "energy"), refs.values, {"long_name": "edge_references(energy)"})
    truth["background_amplitude"] = (("time", "y", "x"), amp, {"units": "counts/channel at 55 eV"})
    truth["background_exponent"] = (("time", "y", "x"), expo, {"units": "1"})
    if realistic:
        truth["weights"].attrs.update(
            long_name="Li-K and Co-M amounts in single-scattering counts (coefficients of `references` in I0·S(E))",
            units="counts per channel per unit reference")
        truth["references"].attrs["long_name"] = "exact single-scattering edge shapes at x = 1 (with fine structure)"
        truth["thickness"] = (("time", "y", "x"), real["thickness"],
                              {"long_name": "t/lambda (log-ratio definition, image frame)", "units": "1"})
        truth["zero_loss"] = (("time", "y", "x"), real["maps"]["i0"].astype(np.float32),
                              {"long_name": "zero-loss intensity I0", "units": "counts"})
        truth["zlp_position"] = (("time", "y", "x"), real["maps"]["zlp_centre"].astype(np.float32),
                                 {"long_name": "zero-loss peak position (energy drift + de-scan)", "units": "eV"})
        truth["li_shift"] = (("time", "y", "x"), real["maps"]["li_shift"].astype(np.float32),
                             {"long_name": "Li-K chemical shift", "units": "eV"})
        truth["x_li"] = (("time", "y", "x"), real["x"].astype(np.float32),
                      {"long_name": "Li fraction x in LixCoO2 (image frame)", "units": "1"})
    else:
        truth["thickness"] = (("y", "x"), thickness.astype(np.float32), {"long_name": "t/lambda", "units": "1"})
    truth["energy_shift"] = (("time",), energy_shift, {"units": "eV"})
    truth["drift_y"] = (("time",), drift_y, {"units": "px"})
    truth["drift_x"] = (("time",), drift_x, {"units": "px"})
    truth["beam_current_factor"] = (("time",), beam, {"units": "1"})
    truth.attrs.update(dose=dose, background_e0_ev=E_REF, mfp_nm=MFP_NM, li_edge_fraction=LI_EDGE_FRACTION,
                       co_edge_fraction=CO_EDGE_FRACTION, exponent=exponent, noise=bool(noise), physics=physics)
    if realistic:
        truth.attrs.update(k_li_co=real["k"], zlp_fwhm_ev=zlp_fwhm, descan_ev=descan_ev, thinning=thinning,
                           li_chemical_shift_ev=li_chemical_shift_ev, total_counts=real["total_counts"],
                           thickness_range=list(thickness_range))
        si.attrs["physics"] = "realistic"
    if low_loss is not None:
        return si, low_loss, truth, log
    return si, truth, log


def _realistic_parameters(transport, *, thickness_range, thinning, drift_y, drift_x, beam, energy_shift,
                          descan_ev, shift_ev, dose, zlp_kw, step):
    """Per-frame, per-pixel parameters of the realistic model in the image frame (drift applied)."""
    n_frames = transport.sizes["time"]
    ny, nx = transport.co.shape
    tau0 = _realistic.thickness_map(transport.thickness_nm.values.astype(float), thickness_range)
    co = transport.co.values.astype(float)
    li = transport.li.values.astype(float)
    c_li, c_co = _realistic.edge_strengths({})
    descan = _realistic.descan_map(ny, nx, descan_ev)
    # total beam counts per pixel from the dose: counts/channel at 55 eV in a mean-thickness, x = 1 pixel
    tau_m = float(tau0.mean())
    probe = _realistic.spectra(np.array([55.0 - step, 55.0, 55.0 + step]), i0=np.array([1.0]), tau=tau_m,
                               a_li=tau_m * c_li, a_co=tau_m * c_co, li_shift=0.0, zlp_centre=0.0,
                               valence_kw={}, zlp_kw=zlp_kw, dtype=np.float64)
    total = dose / float(probe[0, 1]) * np.exp(tau_m)
    shape = (n_frames, ny, nx)
    maps = {k: np.empty(shape) for k in ("i0", "tau", "a_li", "a_co", "li_shift", "zlp_centre")}
    x_img = np.empty(shape)
    thick = np.empty(shape, np.float32)
    frac = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    li_area = np.trapezoid(_realistic.LI_SHAPE(np.arange(40, 400, 0.01)), dx=0.01)
    co_area = np.trapezoid(_realistic.CO_SHAPE(np.arange(40, 400, 0.01)), dx=0.01)
    for t in range(n_frames):
        dy, dx = drift_y[t], drift_x[t]
        tau = _shift_map(tau0, dy, dx) * (1.0 - thinning * frac[t])
        x = _shift_map(li[t], dy, dx)
        rho = _shift_map(co, dy, dx)
        maps["tau"][t] = tau
        maps["a_li"][t] = tau * c_li * x * rho
        maps["a_co"][t] = tau * c_co * rho
        maps["i0"][t] = total * beam[t] * np.exp(-tau)
        # Li leaving LiCoO2 moves the Li-K fine structure up in energy (0 at x = 1)
        maps["li_shift"][t] = shift_ev * (1.0 - x) / 0.5
        maps["zlp_centre"][t] = energy_shift[t] + descan
        x_img[t] = x
        thick[t] = tau + maps["a_li"][t] * li_area + maps["a_co"][t] * co_area
    weights = np.stack([maps["i0"] * step * maps["a_li"], maps["i0"] * step * maps["a_co"]]).astype(np.float32)
    return {"maps": maps, "weights": weights, "thickness": thick, "x": x_img, "k": c_li / c_co,
            "zlp_kw": {"zlp_fwhm": zlp_kw["zlp_fwhm"]}, "total_counts": float(total)}


def limap_movie(*, shape=(128, 128), n_frames=32, counts=5.0, seed=0, drift_px=2.0, pixel_nm=2.0,
                frame_time_s=60.0):
    """A Li-map movie: grains, boundaries, a moving delithiation front and specimen drift.

    The Li content comes from :func:`li_transport` during a constant-current
    charge (a front of Li loss moving in from the electrolyte side, row 0, and
    running ahead along grain boundaries); each grain gets its own contrast
    (orientation-dependent channelling), boundaries are slightly dark, and the
    frame moves by the specimen drift.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels.
    n_frames : int
        Frames in the movie.
    counts : float
        Mean expected counts per pixel over the movie (the dose of the Li map).
    seed : int
        Seed of the microstructure, drift and noise.
    drift_px : float
        Largest specimen drift in pixels.
    pixel_nm, frame_time_s : float
        Sampling of the underlying transport simulation.

    Returns
    -------
    noisy, clean : xarray.DataArray
        ``(time, y, x)`` float32; ``clean`` the expected counts (mean ``counts``),
        ``noisy`` = Poisson(clean). Non-dimension coordinates ``drift_y``,
        ``drift_x`` (px) on ``time``; ``clean.attrs`` hold the seed and counts.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> noisy, clean = limap_movie(shape=(32, 32), n_frames=4, counts=5.0)
    >>> noisy.dims, round(float(clean.mean()), 3)
    (('time', 'y', 'x'), 5.0)
    """
    import xarray as xr

    ny, nx = _check_shape(shape)
    n_frames = _check_int(n_frames, "n_frames", 1)
    counts = _check_float(counts, "counts")
    drift_px = _check_float(drift_px, "drift_px", allow_zero=True)
    entropy = _seed_entropy(seed)
    ds = transport_with_log(shape=(ny, nx), n_frames=n_frames, seed=seed, pixel_nm=pixel_nm,
                            frame_time_s=frame_time_s, protocol=(("charge", n_frames),), charge_depth=0.5,
                            layer_nm=min(20.0, 0.2 * ny * pixel_nm))[0]
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(3,)))
    n_grains = int(ds.grains.max()) + 1
    contrast = 1.0 + 0.12 * rng.standard_normal(n_grains)  # per-grain channelling contrast
    base = contrast[ds.grains.values] * (1.0 - 0.15 * ds.boundaries.values)
    base *= 1.0 + 0.05 * _smooth_noise(rng, (ny, nx), 4.0)
    signal = ds.li.values * ds.co.values * base[None]
    angle = rng.uniform(0, 2 * np.pi)
    track = _drift_track(rng, n_frames, drift_px)
    dy, dx = track * np.sin(angle), track * np.cos(angle)
    clean = np.stack([_shift_map(signal[t], dy[t], dx[t]) for t in range(n_frames)])
    clean *= counts / clean.mean()
    noisy = rng.poisson(clean).astype(np.float32)
    coords = {"time": ("time", ds.time.values, {"units": "s"}), "y": ("y", ds.y.values, {"units": "nm"}),
              "x": ("x", ds.x.values, {"units": "nm"}), "drift_y": ("time", dy, {"units": "px"}),
              "drift_x": ("time", dx, {"units": "px"})}
    attrs = {"signal_type": "limap", "counts": counts, "seed": entropy, "units": "counts",
             "title": "simulated Li-map movie (ionscope.simulate.limap_movie)"}
    return (xr.DataArray(noisy, dims=("time", "y", "x"), coords=coords, attrs=attrs, name="limap"),
            xr.DataArray(clean.astype(np.float32), dims=("time", "y", "x"), coords=coords, attrs=dict(attrs),
                         name="limap_clean"))
