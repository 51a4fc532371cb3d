# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando STEM-EELS series and Li-map movies with ground truth.

:func:`operando_eels` turns the Li transport of :func:`li_transport` into what
the microscope records: one spectrum image per frame, each pixel a power-law
background plus the Li-K and Co-M2,3 edges weighted by the Li and Co in the
column, with optional energy drift, specimen drift and Poisson noise.
:func:`limap_movie` gives the Li-map movie directly (for denoising work).

Frames are generated one block of rows at a time, so a series far larger than
memory is written to Zarr with bounded memory; the random numbers of each
frame come from that frame's own generator, so the data do not depend on the
block size or on whether the series goes to memory or to disk.

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


def _validate_range(energy_range, energy_step):
    try:
        e_lo, e_hi = (float(v) for v in energy_range)
    except (TypeError, ValueError):
        raise DataValidationError(f"energy_range must be a pair (start, stop) in eV, got {energy_range!r}") from None
    step = _check_float(energy_step, "energy_step")
    if not (0 < e_lo < e_hi) or not np.isfinite(e_hi):
        raise DataValidationError(f"energy_range must satisfy 0 < start < stop (eV), got {energy_range!r}")
    n = int(np.floor((e_hi - e_lo) / step + 1e-9))
    if n < 8:
        raise DataValidationError(f"energy_range {energy_range!r} with energy_step={step:g} gives {n} channels; "
                                  "expected at least 8")
    return e_lo + step * np.arange(n), step


def operando_eels(*, shape=(32, 48), n_frames=24, energy_range=(30.0, 132.0), energy_step=0.1, dose=200.0,
                  energy_drift_ev=0.0, specimen_drift_px=0.0, noise=True, seed=0, out=None, chunks=None,
                  exponent=3.0, **transport_kw):
    """Simulate an operando STEM-EELS series of a LiCoO2 film (charge → rest → discharge).

    Every pixel's spectrum is

        I(E) = A·(E/55 eV)^−r + w_Li·ref_Li(E) + w_Co·ref_Co(E)

    with ``ref = edge_references(energy)``, evaluated at ``E − energy_shift[t]``
    in frame ``t``, on the pixel's specimen position moved by the specimen
    drift, then Poisson noise.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels (``y`` through the film, electrolyte at row 0).
    n_frames : int
        Number of frames (spectrum images).
    energy_range : (float, float)
        Start and stop energy loss in eV (stop excluded).
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
    energy, step = _validate_range(energy_range, energy_step)
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
    if energy[0] - e_drift <= 0:
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

    refs = edge_references(energy)
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

    def frames():
        """Yield (t, row slice, float32 block) in order."""
        for t in range(n_frames):
            e_t = energy - energy_shift[t]
            ref_t = edge_references(e_t).values if energy_shift[t] else refs.values
            gen = np.random.default_rng(frame_seeds[t])
            for r0 in range(0, ny, rows):
                sl = slice(r0, min(ny, r0 + rows))
                block = amp[t, sl, :, None] * np.exp(-expo[t, sl, :, None].astype(float) * np.log(e_t / E_REF))
                block += weights[0, t, sl, :, None] * ref_t[0] + weights[1, t, sl, :, None] * ref_t[1]
                if noise:
                    block = gen.poisson(block)
                yield t, sl, block.astype(np.float32)

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

    comp = ["Li", "Co"]
    truth = transport.copy()
    truth = truth.assign_coords(component=("component", comp), energy=("energy", energy, {"units": "eV"}))
    truth["weights"] = (("component", "time", "y", "x"), weights,
                        {"long_name": "exact coefficients of `references` in each noise-free spectrum",
                         "units": "counts per unit reference"})
    truth["references"] = (("component", "energy"), refs.values, {"long_name": "edge_references(energy)"})
    truth["background_amplitude"] = (("time", "y", "x"), amp, {"units": "counts/channel at 55 eV"})
    truth["background_exponent"] = (("time", "y", "x"), expo, {"units": "1"})
    truth["thickness"] = (("y", "x"), thickness.astype(np.float32), {"long_name": "t/lambda", "units": "1"})
    truth["energy_shift"] = (("time",), energy_shift, {"units": "eV"})
    truth["drift_y"] = (("time",), drift_y, {"units": "px"})
    truth["drift_x"] = (("time",), drift_x, {"units": "px"})
    truth["beam_current_factor"] = (("time",), beam, {"units": "1"})
    truth.attrs.update(dose=dose, background_e0_ev=E_REF, mfp_nm=MFP_NM, li_edge_fraction=LI_EDGE_FRACTION,
                       co_edge_fraction=CO_EDGE_FRACTION, exponent=exponent, noise=bool(noise))
    return si, truth, log


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
