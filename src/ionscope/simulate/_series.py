# SPDX-License-Identifier: GPL-3.0-or-later
"""What the microscope records of the simulated film: the operando STEM-EELS series, block by block.

The pieces of :func:`~ionscope.simulate.operando_eels`, in the order they run:
:func:`plan` (the validated recording: energy axes, chunks, block rows),
:func:`specimen` (drift tracks, beam fluctuation, the per-pixel edge weights and
background in the image frame), :class:`Spectra` (the expected counts of a block
of pixels, ideal or realistic), :func:`record` (Poisson counts, to memory or
block by block to Zarr), :func:`low_loss` (the dual-EELS low-loss series) and
:func:`truth` (the ground truth beside it).

References
----------
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import DataValidationError
from . import _realistic
from ._checks import _check_float, _check_int, _check_shape, _pair, _seed_entropy, _validate_range
from ._spectra import E_REF, edge_references

# Edge strengths relative to the background, for x = 1 LiCoO2 of mean thickness:
# Li-K peak ≈ 10 % of the background at 62 eV, Co-M2,3 maximum ≈ 20 % of it at 67 eV.
# These give the weak, overlapping edges on a steep background seen in LiCoO2 low-loss data.
LI_EDGE_FRACTION = 0.10
CO_EDGE_FRACTION = 0.20
#: inelastic mean free path (nm) of LiCoO2 at 200 kV used to express thickness as t/λ
MFP_NM = 120.0
#: rows per generated block are chosen so that one block holds about this many bytes (float64)
_BLOCK_BYTES = 16 * 2**20
_DIMS = ("time", "y", "x", "energy")


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


def _check_realistic(kw, energy, energy_range, energy_step):
    """The realistic model's options, validated; the low-loss axis of dual EELS (else None)."""
    t_lo, t_hi = _pair(kw["thickness_range"], "thickness_range")
    if not 0 < t_lo <= t_hi < 5:
        raise DataValidationError(f"thickness_range: expected 0 < low ≤ high < 5 (t/λ), got {kw['thickness_range']!r}")
    thinning = _check_float(kw["thinning"], "thinning", allow_zero=True)
    if thinning >= 1:
        raise DataValidationError(f"thinning: expected 0 ≤ thinning < 1, got {thinning!r}")
    out = dict(thickness_range=(t_lo, t_hi), thickness_range_given=kw["thickness_range"], thinning=thinning, zlp_fwhm=_check_float(kw["zlp_fwhm"], "zlp_fwhm"),
               descan_ev=_check_float(kw["descan_ev"], "descan_ev", allow_zero=True),
               li_chemical_shift_ev=float(kw["li_chemical_shift_ev"]), ll_energy=None,
               low_loss_exposure=kw["low_loss_exposure"])
    if kw["dual_eels"]:
        out["ll_energy"], _ = _validate_range(kw["low_loss_range"], energy_step, allow_negative=True)
        out["low_loss_exposure"] = _check_float(kw["low_loss_exposure"], "low_loss_exposure")
        if energy[0] <= 5.0 or out["ll_energy"][0] >= -1.0:
            raise DataValidationError("dual_eels: energy_range must start above the zero-loss peak (> 5 eV) "
                                      "and low_loss_range must start below 0 eV")
    elif energy[0] >= -1.0:
        raise DataValidationError(
            f"energy_range {energy_range!r}: realistic spectra must start below 0 eV to hold the zero-loss peak "
            "(or pass dual_eels=True for a separate low-loss acquisition)")
    return out


def _chunking(chunks, out, full_shape, rows):
    """Zarr/dask chunks by dimension and the rows of a generated block."""
    if chunks is None:
        return {"time": 1, "y": rows, "x": full_shape[2], "energy": full_shape[3]}, rows
    unknown = sorted(set(chunks) - set(_DIMS))
    if unknown:
        raise DataValidationError(f"chunks: unknown dimension(s) {unknown}; expected some of {_DIMS}")
    chunk_map = {}
    for i, d in enumerate(_DIMS):
        c = chunks.get(d, 1 if d == "time" else -1)
        c = full_shape[i] if c in (-1, None) else _check_int(c, f"chunks[{d!r}]", 1)
        chunk_map[d] = min(c, full_shape[i])
    return chunk_map, (min(rows, chunk_map["y"]) if out is not None else rows)


def plan(kw: dict, transport_kw: dict) -> SimpleNamespace:
    """The recording :func:`~ionscope.simulate.operando_eels` was asked for, validated (messages name the keyword)."""
    ny, nx = _check_shape(kw["shape"])
    n_frames = _check_int(kw["n_frames"], "n_frames", 1)
    seed, physics, dual_eels, out, chunks = kw["seed"], kw["physics"], kw["dual_eels"], kw["out"], kw["chunks"]
    _seed_entropy(seed)
    if physics not in ("ideal", "realistic"):
        raise DataValidationError(f"physics: expected 'ideal' or 'realistic', got {physics!r}")
    realistic = physics == "realistic"
    if dual_eels and not realistic:
        raise DataValidationError("dual_eels=True needs physics='realistic' (the ideal model has no low loss)")
    if dual_eels and out is not None:
        raise DataValidationError("dual_eels=True is simulated in memory only; leave out=None")
    energy_range = kw["energy_range"]
    if energy_range is None:
        energy_range = (-5.0, 97.4) if realistic and not dual_eels else (30.0, 132.0)
    energy, step = _validate_range(energy_range, kw["energy_step"], allow_negative=realistic)
    real = _check_realistic(kw, energy, energy_range, kw["energy_step"]) if realistic else {}
    p = SimpleNamespace(
        ny=ny, nx=nx, n_frames=n_frames, seed=seed, physics=physics, realistic=realistic, dual_eels=dual_eels,
        out=out, energy=energy, step=step, noise=kw["noise"], dose=_check_float(kw["dose"], "dose"),
        e_drift=_check_float(kw["energy_drift_ev"], "energy_drift_ev", allow_zero=True),
        s_drift=_check_float(kw["specimen_drift_px"], "specimen_drift_px", allow_zero=True),
        exponent=_check_float(kw["exponent"], "exponent"), **real)
    if out is not None and Path(out).suffix.lower() != ".zarr":
        raise DataValidationError(f"out={str(out)!r}: expected a path ending in .zarr")
    if chunks is not None and not isinstance(chunks, dict):
        raise DataValidationError(f"chunks must be a dict such as {{'time': 1}}, got {chunks!r}")
    for key in transport_kw:
        if key in ("shape", "n_frames", "seed"):
            raise DataValidationError(f"{key} is given twice")
    if not realistic and energy[0] - p.e_drift <= 0:
        raise DataValidationError(
            f"energy_drift_ev={p.e_drift:g} would shift the first channel ({energy[0]:g} eV) to ≤ 0 eV")
    p.full_shape = (n_frames, ny, nx, energy.size)
    rows = int(max(1, min(ny, _BLOCK_BYTES // (8 * nx * energy.size))))
    p.chunk_map, p.rows = _chunking(chunks, out, p.full_shape, rows)
    p.chunks = chunks
    if out is not None:  # say how much is coming before the minutes of writing start
        from ..io import warn_if_large

        warn_if_large(4.0 * n_frames * ny * nx * energy.size, out,
                      what=f"{n_frames} frames × {ny}×{nx} px × {energy.size} channels, float32")
    return p


def specimen(p, transport) -> SimpleNamespace:
    """Drift, beam and the per-pixel strengths of every frame in the image frame (drift applied)."""
    n_frames, ny, nx = p.n_frames, p.ny, p.nx
    rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(p.seed), spawn_key=(1,)))
    t_rel = transport.thickness_nm.values / float(transport.attrs["reference_thickness_nm"])
    thickness = transport.thickness_nm.values / MFP_NM
    energy_shift = _drift_track(rng, n_frames, p.e_drift)
    angle = rng.uniform(0, 2 * np.pi)
    track = _drift_track(rng, n_frames, p.s_drift)
    drift_y = track * np.sin(angle) + 0.05 * p.s_drift * _drift_track(rng, n_frames, 1.0)
    drift_x = track * np.cos(angle)
    beam = 1.0 + 0.01 * rng.standard_normal(n_frames)  # probe-current fluctuation between frames
    beam[0] = 1.0

    # per-pixel strengths in the specimen frame, for a fully lithiated mean-thickness column
    bg_62 = (62.0 / E_REF) ** -p.exponent
    bg_67 = (67.0 / E_REF) ** -p.exponent
    k_li = LI_EDGE_FRACTION * p.dose * bg_62
    k_co = CO_EDGE_FRACTION * p.dose * bg_67
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
        amp[t] = beam[t] * p.dose * th / t_mean
        expo[t] = p.exponent - 0.5 * (th - t_mean)
    spec = SimpleNamespace(energy_shift=energy_shift, drift_y=drift_y, drift_x=drift_x, beam=beam,
                           thickness=thickness, weights=weights, amp=amp, expo=expo, real=None)
    if not p.realistic:
        spec.refs = edge_references(p.energy)
        return spec
    spec.real = _realistic_parameters(
        transport, thickness_range=p.thickness_range, thinning=p.thinning, drift_y=drift_y, drift_x=drift_x,
        beam=beam, energy_shift=energy_shift, descan_ev=p.descan_ev, shift_ev=p.li_chemical_shift_ev,
        dose=p.dose, zlp_kw={"zlp_fwhm": p.zlp_fwhm}, step=p.step)
    spec.weights = spec.real["weights"]
    from ..data import calibrated

    spec.refs = calibrated(_realistic.true_references(p.energy), ("component", "energy"),
                           coords={"component": ["Li", "Co"], "energy": p.energy}, name="references",
                           attrs={"signal_type": "EELS", "title": "single-scattering Li-K and Co-M2,3 at x = 1"})
    return spec


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


class Spectra:
    """The expected counts of a block of pixels in one frame (ideal or realistic model)."""

    def __init__(self, p, spec):
        self.p, self.spec = p, spec
        self.kernels = {}
        if p.realistic:
            # one grid and one set of transforms for the whole series, covering every frame's
            # zero-loss positions and Li shifts (built here, before any thread uses them)
            m = spec.real["maps"]
            for e_axis in (p.energy, p.ll_energy) if p.dual_eels else (p.energy,):
                self.kernels[e_axis.size, e_axis[0]] = _realistic.make_kernel(
                    e_axis, valence_kw={}, zlp_kw=spec.real["zlp_kw"],
                    z_range=(float(m["zlp_centre"].min()), float(m["zlp_centre"].max())),
                    shift_range=(float(m["li_shift"].min()), float(m["li_shift"].max())))

    def __call__(self, t, sl, e_axis, exposure=1.0):
        spec = self.spec
        if self.p.realistic:
            p = {k: v[t, sl] for k, v in spec.real["maps"].items()}
            return exposure * _realistic.spectra(e_axis, **p, valence_kw={}, zlp_kw=spec.real["zlp_kw"],
                                                 kernel=self.kernels[e_axis.size, e_axis[0]]).reshape(
                                                     p["i0"].shape + (e_axis.size,))
        e_t = e_axis - spec.energy_shift[t]
        ref_t = edge_references(e_t).values if spec.energy_shift[t] else spec.refs.values
        block = spec.amp[t, sl, :, None] * np.exp(-spec.expo[t, sl, :, None].astype(float) * np.log(e_t / E_REF))
        block += spec.weights[0, t, sl, :, None] * ref_t[0] + spec.weights[1, t, sl, :, None] * ref_t[1]
        return block


def _blocks(p, expected):
    """Yield (t, row slice, float32 block) in order: each frame's noise from that frame's own generator."""
    frame_seeds = np.random.SeedSequence(_seed_entropy(p.seed), spawn_key=(2,)).spawn(p.n_frames)
    ny, rows = p.ny, p.rows
    if not p.realistic:
        for t in range(p.n_frames):
            gen = np.random.default_rng(frame_seeds[t])
            for r0 in range(0, ny, rows):
                sl = slice(r0, min(ny, r0 + rows))
                block = expected(t, sl, p.energy)
                if p.noise:
                    block = gen.poisson(block)
                yield t, sl, block.astype(np.float32)
        return
    from ._noise import realistic_block, threaded_blocks

    order = [(t, slice(r0, min(ny, r0 + rows))) for t in range(p.n_frames) for r0 in range(0, ny, rows)]
    yield from threaded_blocks(order, lambda t, sl: realistic_block(expected(t, sl, p.energy), frame_seeds[t],
                                                                    sl, p.noise))


def record(p, expected, coords, attrs):
    """The recorded series: in memory, or written block by block to ``p.out`` (Zarr) and opened lazily."""
    import xarray as xr

    from .._progress import progress

    bar_total = p.n_frames * int(np.ceil(p.ny / p.rows))
    if p.out is None:
        data = np.empty(p.full_shape, np.float32)
        for t, sl, block in progress(_blocks(p, expected), desc="simulate", total=bar_total, unit="block"):
            data[t, sl] = block
        si = xr.DataArray(data, dims=_DIMS, coords=coords, attrs=attrs, name="si")
        return si.chunk(p.chunk_map) if p.chunks is not None else si
    from concurrent.futures import ThreadPoolExecutor

    import dask.array as dsa

    from ..io import ZarrSeriesWriter, load

    template = xr.DataArray(dsa.zeros(p.full_shape, dtype=np.float32, chunks=-1), dims=_DIMS, coords=coords,
                            attrs=attrs, name="si")
    # one writer thread: Zarr compression and disk I/O release the GIL, so the next block
    # is simulated while the previous one is written; at most one block waits (bounded memory)
    with ZarrSeriesWriter(p.out, template, chunks=p.chunk_map) as writer, ThreadPoolExecutor(1) as pool:
        pending, start, job = [], None, None
        for t, sl, block in progress(_blocks(p, expected), desc=f"simulate → {Path(p.out).name}", total=bar_total,
                                     unit="block"):
            if start is None:
                start = sl.start
            pending.append(block)
            # write whole Zarr chunks at once (a region must not split a chunk between writes)
            if sl.stop == p.ny or (sl.stop - start) % p.chunk_map["y"] == 0:
                if job is not None:
                    job.result()
                job = pool.submit(writer.write, {"time": slice(t, t + 1), "y": slice(start, sl.stop)},
                                  np.concatenate(pending, axis=0)[None])
                pending, start = [], None
        if job is not None:
            job.result()
    return load(p.out)


def low_loss(p, expected, coords, attrs):
    """The dual-EELS low-loss series of the same frames (in memory), each frame with its own generator."""
    import xarray as xr

    ll = np.empty((p.n_frames, p.ny, p.nx, p.ll_energy.size), np.float32)
    ll_seeds = np.random.SeedSequence(_seed_entropy(p.seed), spawn_key=(5,)).spawn(p.n_frames)
    for t in range(p.n_frames):
        gen = np.random.default_rng(ll_seeds[t])
        for r0 in range(0, p.ny, p.rows):
            sl = slice(r0, min(p.ny, r0 + p.rows))
            block = expected(t, sl, p.ll_energy, exposure=p.low_loss_exposure)
            ll[t, sl] = gen.poisson(block) if p.noise else block
    ll_attrs = dict(attrs, exposure_ratio=float(p.low_loss_exposure),
                    title="simulated operando low-loss (dual EELS) of LiCoO2 (ionscope.simulate)")
    return xr.DataArray(ll, dims=_DIMS, name="low_loss", attrs=ll_attrs,
                        coords={**coords, "energy": ("energy", p.ll_energy, {"units": "eV"})})


def truth(p, spec, transport):
    """The ground truth beside the series: the transport, the exact weights, references, background, drift."""
    comp = ["Li", "Co"]
    out = transport.copy()
    out = out.assign_coords(component=("component", comp), energy=("energy", p.energy, {"units": "eV"}))
    out["weights"] = (("component", "time", "y", "x"), spec.weights,
                      {"long_name": "exact coefficients of `references` in each noise-free spectrum",
                       "units": "counts per unit reference"})
    out["references"] = (("component", "energy"), spec.refs.values, {"long_name": "edge_references(energy)"})
    out["background_amplitude"] = (("time", "y", "x"), spec.amp, {"units": "counts/channel at 55 eV"})
    out["background_exponent"] = (("time", "y", "x"), spec.expo, {"units": "1"})
    if p.realistic:
        real = spec.real
        out["weights"].attrs.update(
            long_name="Li-K and Co-M amounts in single-scattering counts (coefficients of `references` in I0·S(E))",
            units="counts per channel per unit reference")
        out["references"].attrs["long_name"] = "exact single-scattering edge shapes at x = 1 (with fine structure)"
        out["thickness"] = (("time", "y", "x"), real["thickness"],
                            {"long_name": "t/lambda (log-ratio definition, image frame)", "units": "1"})
        out["zero_loss"] = (("time", "y", "x"), real["maps"]["i0"].astype(np.float32),
                            {"long_name": "zero-loss intensity I0", "units": "counts"})
        out["zlp_position"] = (("time", "y", "x"), real["maps"]["zlp_centre"].astype(np.float32),
                               {"long_name": "zero-loss peak position (energy drift + de-scan)", "units": "eV"})
        out["li_shift"] = (("time", "y", "x"), real["maps"]["li_shift"].astype(np.float32),
                           {"long_name": "Li-K chemical shift", "units": "eV"})
        out["x_li"] = (("time", "y", "x"), real["x"].astype(np.float32),
                       {"long_name": "Li fraction x in LixCoO2 (image frame)", "units": "1"})
    else:
        out["thickness"] = (("y", "x"), spec.thickness.astype(np.float32), {"long_name": "t/lambda", "units": "1"})
    out["energy_shift"] = (("time",), spec.energy_shift, {"units": "eV"})
    out["drift_y"] = (("time",), spec.drift_y, {"units": "px"})
    out["drift_x"] = (("time",), spec.drift_x, {"units": "px"})
    out["beam_current_factor"] = (("time",), spec.beam, {"units": "1"})
    out.attrs.update(dose=p.dose, background_e0_ev=E_REF, mfp_nm=MFP_NM, li_edge_fraction=LI_EDGE_FRACTION,
                     co_edge_fraction=CO_EDGE_FRACTION, exponent=p.exponent, noise=bool(p.noise), physics=p.physics)
    if p.realistic:
        out.attrs.update(k_li_co=spec.real["k"], zlp_fwhm_ev=p.zlp_fwhm, descan_ev=p.descan_ev,
                         thinning=p.thinning, li_chemical_shift_ev=p.li_chemical_shift_ev,
                         total_counts=spec.real["total_counts"], thickness_range=list(p.thickness_range_given))
    return out
