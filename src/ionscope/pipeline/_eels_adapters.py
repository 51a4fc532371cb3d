# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS table's adapters: one small function per science step, and the series' chunks and windows.

Plain functions of arrays and the :class:`~ionscope.pipeline.Config` (no stage
context): the stages of :mod:`ionscope.pipeline._eels` call the science
packages (:mod:`ionscope.eels`, :mod:`ionscope.denoise`) only through them, so
those can evolve without touching the table; live mode
(:mod:`ionscope.live`) calls the same ones.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError
from ._config import Config


# --------------------------------------------------------------------------- adapters (one per science step)


def _reduce_in_batches(da, *, batch: int, bar):
    """Compute a lazy per-frame reduction batch by batch along ``time``.

    Same result as ``da.compute()``; the loop gives the stage a progress bar
    with ETA and keeps at most ``batch`` frames in flight.
    """
    import xarray as xr

    if da.chunks is None:
        return da
    n = da.sizes["time"]
    parts = [da.isel(time=slice(s, min(s + batch, n))).compute() for s in bar(list(range(0, n, batch)))]
    return xr.concat(parts, dim="time")


def _estimate_energy_drift(si, options: dict, references, fit_range, *, batch: int = 4,
                           bar=lambda items: items, frame_sum=None) -> np.ndarray:
    """Energy shift (eV) of every frame of a (time, y, x, energy) series.

    The shift is estimated once per frame on the frame's summed spectrum (a
    single pixel is far too noisy for it), by default with the EELS issue's
    ``"model"`` method (shift of the edge references minimising the fit χ²,
    robust to the Li content changing between frames). ``frame_sum``: those
    spectra (time, energy), already summed (by the screen's read); else they
    are summed here (one read).
    """
    from .. import eels

    opts = dict(options)
    method = opts.pop("method", "model")
    window = tuple(opts.pop("window", fit_range))
    target = float(opts.pop("target", 0.0))
    if method == "model":
        opts.setdefault("references", references)
    if frame_sum is None:
        frame_sum = _reduce_in_batches(si.sum(("y", "x")), batch=batch, bar=bar)  # one read; (time, energy) is small
    # one frame per kernel call: a frame's shift then does not depend on which frames it was fitted beside
    # (vectorised solvers differ in the last bits with the batch), so rows computed live are reused by batch
    frame_sum = frame_sum.chunk({"time": 1})
    shift = eels.estimate_shift(frame_sum, method=method, window=window, **opts)
    values = np.asarray(shift.values, float)
    return values - target if method == "zlp" else values


def _undo_energy_drift(si, shifts: np.ndarray):
    """Move every pixel of each frame back by the frame's shift (lazy for dask input)."""
    import xarray as xr

    from .. import eels

    shift = xr.DataArray(np.asarray(shifts, float), dims=("time",))
    if si.chunks is not None:  # match the series' time chunks so the shift maps block by block
        shift = shift.chunk({"time": si.chunksizes["time"]})
    return eels.shift_energy(si, shift).astype(si.dtype)


def _li_maps(si, references, cfg, *, plural="none", low_loss=None):
    """Li map (and its standard error, χ²) per frame from the EELS issue's mapping methods."""
    from .. import eels

    lc = cfg.limap
    background = None if lc.background == "none" else lc.background
    if lc.method == "mlls":
        weights = None if lc.weights == "none" else lc.weights
        options = dict(lc.options)
        # The movie is averaged by the denoiser and the analysis, so the mapped component must not
        # be clipped at zero (clipping noisy Li-poor pixels biases the mean by ~+3 % at dose 200);
        # the other components keep their physical non-negativity.
        options.setdefault("nonnegative",
                           [str(c) for c in references["component"].values if str(c) != lc.component])
        # one corrupt pixel neither stops the night nor is analysed: NaN there (the screen reports it)
        options.setdefault("implausible", "mask")
        if plural != "none":
            # real spectra: through each spectrum's own zero-loss peak (the background is the basis)
            options.pop("weights", None)
            ds = eels.mlls(si, references, fit_range=tuple(lc.fit_range), plural_scattering=plural,
                           low_loss=low_loss, **options)
        else:
            ds = eels.mlls(si, references, fit_range=tuple(lc.fit_range), background=background, weights=weights,
                           **options)
    elif lc.method == "sasb":
        ds = eels.sasb(si, **{"implausible": "mask", **lc.options})
    else:
        ds = eels.nmf(si, **{"implausible": "mask", **lc.options})
    return _select_maps(ds, cfg)


def _refs_sigma_maps(lc):
    """(stage name, fit column) of the references' part of σ (references from regions with their jackknife
    replicates: :mod:`ionscope.eels._refs_sigma`; read by :mod:`ionscope.pipeline._refs_noise`)."""
    return (("li_std_references", f"{lc.component}_std_references"),
            ("co_std_references", f"{lc.co_component}_std_references"),
            ("references_corr", "references_corr"), ("references_rho", "references_rho"),
            ("ratio_std_references", "ratio_std_references"))


def _select_maps(ds, cfg):
    """The maps the later stages read (``li``, ``li_std``, ``chi2``, ``thickness``, ``co``, ...) of a mapping result."""
    lc = cfg.limap
    if hasattr(ds, "data_vars"):
        if lc.component not in ds:
            raise DataValidationError(f"config [limap] component: {lc.component!r} is not among the maps "
                                      f"{list(ds.data_vars)}")
        out = {"li": ds[lc.component]}
        if f"{lc.component}_std" in ds:
            out["li_std"] = ds[f"{lc.component}_std"]
        for name, key in (("chi2", "chi2"), ("thickness", "thickness"), ("co", lc.co_component),
                          ("co_std", f"{lc.co_component}_std"), ("zero_loss", "zero_loss")) + _refs_sigma_maps(lc):
            if key in ds:
                out[name] = ds[key]
        import xarray as xr

        # the fit's settings (e.g. the zero-loss width measured across the frames) stay with the maps: the
        # per-frame keys of the rows see them (pipeline._rows)
        return xr.Dataset(out, attrs=dict(ds.attrs))
    return ds.to_dataset(name="li")


def _denoise(li, cfg, li_std=None, show_progress=None):
    """Denoise the (time, y, x) Li-map movie.

    Li maps are fitted weights, not counts: their noise is not Poisson in the
    map's own units. The mapping step's standard errors give the noise level
    directly, so sparse coding is told ``noise="gaussian"`` with that sigma
    (measured on the simulator: 24.6 dB vs 19.6 dB with the Poisson default).
    """
    method, options = cfg.denoise.method, dict(cfg.denoise.options)
    if method == "none":
        return li.copy()
    if method == "gaussian":
        from scipy import ndimage

        sigma = options.get("sigma", (1.0, 1.0, 1.0))
        return li.copy(data=ndimage.gaussian_filter(np.asarray(li.values, float), sigma=sigma, mode="nearest"))
    from .. import denoise

    if li_std is not None and "noise" not in options and "sigma" not in options:
        std = np.asarray(li_std, float)
        std = std[np.isfinite(std)]
        if std.size:
            options.update(noise="gaussian", sigma=float(np.median(std)))
    if "progress" not in options:  # the denoiser's own bar (with ETA) is this stage's bar
        from .._progress import progress_enabled

        options["progress"] = progress_enabled() if show_progress is None else bool(show_progress)
    return denoise.sparse_coding(li, **options)




# --------------------------------------------------------------------------- chunks and windows


#: Largest frame kept whole in one dask chunk (bytes).
_WHOLE_FRAME_BYTES = 256 * 2**20


def _canonical_chunks(series):
    """One frame per chunk (whole frames up to 256 MB, else split along y).

    Every stage then sees the same block shapes whatever the store's own
    chunking, so results do not depend on how the input happened to be
    chunked (vectorised solvers give last-bit differences for different
    block shapes) and memory per task stays bounded.
    """
    frame = series.dtype.itemsize * series.sizes["y"] * series.sizes["x"] * series.sizes["energy"]
    rows = series.sizes["y"] if frame <= _WHOLE_FRAME_BYTES else max(
        1, int(series.sizes["y"] * _WHOLE_FRAME_BYTES // frame))
    return series.chunk({"time": 1, "y": rows, "x": -1, "energy": -1})


def _fit_window(series, cfg: Config):
    """The channels the Li maps need: MLLS fits only ``fit_range``, so the
    energy correction, the registration shift and the fit run on
    ``fit_range ± crop_margin_ev`` (the margin keeps the FFT energy shift's
    edge effects out of the fit window). Other mapping methods keep every channel.
    """
    lc = cfg.limap
    if lc.method != "mlls" or lc.crop_margin_ev < 0 or _plural_mode(cfg, series) != "none":
        return series  # (through the zero-loss peak every channel is needed)
    lo, hi = lc.fit_range[0] - lc.crop_margin_ev, lc.fit_range[1] + lc.crop_margin_ev
    e = series.energy.values
    if lo <= e.min() and hi >= e.max():
        return series
    cropped = series.sel(energy=slice(lo, hi))
    if cropped.sizes["energy"] < 10:
        raise DataValidationError(f"config [limap] fit_range {list(lc.fit_range)} eV holds fewer than 10 channels "
                                  f"of the series ({e.min():.4g}..{e.max():.4g} eV)")
    return cropped


def _holds_zero_loss(series) -> bool:
    e = np.asarray(series.energy.values, float)
    return bool(e.min() < 0 < e.max())


def _plural_mode(cfg: Config, series, *, low_loss=None) -> str:
    """``[limap] plural_scattering`` resolved: "auto" → "fourier-log" for spectra with their zero-loss
    peak (or a dual-EELS low loss), else "none"."""
    mode = cfg.limap.plural_scattering
    if mode != "auto":
        return mode
    return "fourier-log" if (low_loss is not None or cfg.input.low_loss or _holds_zero_loss(series)) else "none"
