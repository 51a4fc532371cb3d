# SPDX-License-Identifier: GPL-3.0-or-later
"""Energy calibration and drift correction: estimate and undo per-spectrum shifts; crop; rebin.

Shifts are estimated to a fraction of a channel either from the zero-loss
peak (ZLP: parabola through the logarithm of the three highest channels, exact
for a Gaussian peak) or from an edge (cross-correlation of the spectrum's
derivative with a reference's derivative, refined by a parabola through the
correlation peak). Pass a frame-averaged series (e.g. ``si.mean(("y", "x"))``)
to estimate one shift per frame, or the full spectrum image for one per pixel.

Shifts are undone with a Fourier phase ramp (band-limited interpolation):
unlike linear interpolation it neither smooths the Poisson noise nor makes
neighbouring channels correlated, and it conserves the total counts (apart from
what moves across the ends of the energy axis). To avoid
wrap-around ringing, the straight line joining the first and last channel is
removed before the FFT and shifted analytically.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import apply_kernel, check_finite, like_input
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data
from . import _common


def _parabola_peak(ym, y0, yp):
    den = ym - 2 * y0 + yp
    return np.where(np.abs(den) > 1e-300, 0.5 * (ym - yp) / np.where(den != 0, den, 1.0), 0.0)


def _zlp_kernel(spectra, *, channels, step):
    Y = np.asarray(spectra, float)[..., channels]
    i = np.argmax(Y, axis=-1)
    i = np.clip(i, 1, Y.shape[-1] - 2)
    take = lambda k: np.take_along_axis(Y, (i + k)[..., None], -1)[..., 0]  # noqa: E731
    logs = [np.log(np.maximum(take(k), 1e-12)) for k in (-1, 0, 1)]
    frac = np.clip(_parabola_peak(*logs), -1, 1)
    return (channels[0] + i + frac) * step


def _xcorr_kernel(spectra, *, channels, ref, max_shift, n_refine=8):
    """Shift (in channels) of each spectrum against ``ref`` within ``channels``.

    A coarse integer lag from the cross-correlation of the derivatives, then
    Gauss–Newton refinement of the linearised model y ≈ a·ref(E − s) + b
    (1-D Lucas–Kanade), vectorised over spectra. Parabolic interpolation of the
    correlation peak alone is biased towards whole channels when the peak is
    broad, which is why the refinement is needed for sub-channel accuracy.
    """
    Y = np.asarray(spectra, float)
    lead = Y.shape[:-1]
    Y = Y.reshape(-1, Y.shape[-1])
    n_all = Y.shape[-1]
    g = np.gradient(Y[:, channels], axis=-1)
    g = g - g.mean(-1, keepdims=True)
    rg = np.gradient(ref[channels])
    rg = rg - rg.mean()
    n = g.shape[-1]
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(g, nfft) * np.conj(np.fft.rfft(rg, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_shift + 1), np.arange(-max_shift, 0)])
    s = lags[np.argmax(c[:, lags], axis=-1)].astype(float)
    yw = Y[:, channels]
    for _ in range(n_refine):
        moved = _shift_kernel(np.broadcast_to(ref, (Y.shape[0], n_all)), -s)[:, channels]
        d = np.gradient(moved, axis=-1)
        # least squares for (a, b, c) in y = a·moved + b + c·d; the shift update is −c/a
        X = np.stack([moved, np.ones_like(moved), d], axis=-1)
        G = np.einsum("pnk,pnl->pkl", X, X)
        rhs = np.einsum("pnk,pn->pk", X, yw)
        sol = np.linalg.solve(G + 1e-12 * np.eye(3) * np.einsum("pii->p", G)[:, None, None], rhs[..., None])[..., 0]
        a = np.where(np.abs(sol[:, 0]) > 1e-300, sol[:, 0], 1.0)
        step = np.clip(-sol[:, 2] / a, -1.0, 1.0)
        s = np.clip(s + step, -max_shift, max_shift)
        if np.max(np.abs(step), initial=0.0) < 1e-6:
            break
    return s.reshape(lead)


def _model_kernel(spectra, *, channels, lnx, refs_full, e_full, grid, weights):
    """χ² of the power-law + shifted-references model on a grid of shifts; sub-grid minimum."""
    from ._kernels import fit_kernel

    lead = spectra.shape[:-1]
    e_fit = e_full[channels]
    chi2 = []
    for s in grid:
        S = np.stack([np.interp(e_fit - s, e_full, r) for r in refs_full], axis=1)
        out = fit_kernel(spectra, channels=channels, lnx=lnx, refs=S, background="powerlaw", basis=None,
                         nonnegative=True, weights=weights, n_iter=30, tol=1e-8)
        chi2.append(out[..., -1])
    c = np.stack(chi2, axis=-1).reshape(-1, grid.size)
    k = np.clip(np.argmin(c, axis=-1), 1, grid.size - 2)
    take = lambda idx: np.take_along_axis(c, idx[:, None], -1)[:, 0]  # noqa: E731
    frac = np.clip(_parabola_peak(-take(k - 1), -take(k), -take(k + 1)), -1, 1)
    return (grid[k] + frac * (grid[1] - grid[0])).reshape(lead)


@accepts_data("si")
def estimate_shift(si: Any, *, method: str = "zlp", window=None, reference: Any = None,
                   references: Any = None, max_shift_ev: float = 5.0, grid_step_ev: float | None = None,
                   energy: Any = None):
    """Energy shift of every spectrum, in eV (sub-channel).

    Parameters
    ----------
    si : xarray.DataArray or array_like
        Spectra (``energy`` last).
    method : {"zlp", "edge", "model"}
        ``"zlp"``: the absolute position of the zero-loss peak maximum (a
        shift relative to 0 eV). ``"edge"``: the shift against the
        ``reference`` spectrum (default: the mean spectrum) within ``window``
        — use an edge onset; assumes the spectra differ only by the shift and
        a scale. ``"model"``: the shift of the edge ``references``
        (component, energy) that minimises the χ² of a power-law + MLLS fit in
        ``window`` — absolute, and robust to composition changes between
        spectra (use it for operando series).
    window : (float, float), optional
        Energy window (eV); default the whole axis.
    reference : array_like or DataArray, optional
        Reference spectrum on the same energy axis (``"edge"`` only).
    references : xarray.DataArray, optional
        Edge references for ``"model"``.
    max_shift_ev : float
        Largest shift searched (``"edge"``, ``"model"``).
    grid_step_ev : float, optional
        Grid of trial shifts for ``"model"`` (default: one channel); the minimum
        is refined by a parabola.

    Returns
    -------
    same type as ``si`` without the energy axis
        Shift in eV (positive: features appear at higher energy than in the reference).

    References
    ----------
    .. [1] R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron
       Microscope*, 3rd ed. (2011), §2.6 and §4.1, doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(-5.0, 5.0, 0.05)
    >>> zlp = np.exp(-0.5 * ((e - 0.123) / 0.3) ** 2)
    >>> round(float(estimate_shift(zlp, energy=e)), 6)
    0.123
    """
    if method not in ("zlp", "edge", "model"):
        raise DataValidationError(f"method: expected 'zlp', 'edge' or 'model', got {method!r}")
    da = _common.spectra(si, energy=energy)
    check_finite(da.data, name="si")
    e = np.asarray(da.coords["energy"].values, float)
    step = float(np.median(np.diff(e)))
    ch = (np.arange(e.size) if window is None
          else _common.window(e, window, name="window", min_channels=5))
    if method == "model":
        if references is None:
            raise DataValidationError("references: required for method='model' (component, energy)")
        if window is None:
            raise DataValidationError("window: required for method='model' (fit window in eV)")
        _, R = _common.references(references, e)
        gs = step if grid_step_ev is None else float(grid_step_ev)
        grid = np.arange(-max_shift_ev, max_shift_ev + 0.5 * gs, gs)
        out = apply_kernel(_model_kernel, da, input_core_dims=[["energy"]], output_dtypes=[np.float64],
                           kwargs={"channels": ch, "lnx": np.log(e[ch] / e[ch[0]]), "refs_full": R.T,
                                   "e_full": e, "grid": grid, "weights": "poisson"})
    elif method == "zlp":
        out = apply_kernel(_zlp_kernel, da, input_core_dims=[["energy"]], output_dtypes=[np.float64],
                           kwargs={"channels": ch, "step": step})
        out = out + e[0]
    else:
        if reference is None:
            ref = da.mean(dim=[d for d in da.dims if d != "energy"]) if da.ndim > 1 else da
            ref = np.asarray(ref.values, float)
        else:
            ref = np.asarray(getattr(reference, "values", reference), float).ravel()
            if ref.size != e.size:
                raise DataValidationError(f"reference: {ref.size} channels, expected {e.size} like si")
        max_shift = int(min(max(1, round(max_shift_ev / step)), ch.size // 2 - 1))
        out = apply_kernel(_xcorr_kernel, da, input_core_dims=[["energy"]], output_dtypes=[np.float64],
                           kwargs={"channels": ch, "ref": ref, "max_shift": max_shift}) * step
    out.attrs = {"units": "eV", "long_name": f"energy shift ({method})"}
    out.name = "energy_shift"
    return like_input(out, si)


def _shift_kernel(spectra, shift_channels):
    """Band-limited shift of every spectrum by ``−shift_channels`` (Fourier phase ramp).

    Float32 input is transformed in single precision (complex64): its rounding
    error (~1e-7 of the largest count) is far below the Poisson noise of any
    count, and it halves the memory traffic of this memory-bound kernel.
    Float64 input stays in double precision. ``scipy.fft`` is used instead of
    ``numpy.fft`` because it keeps float32 as float32 and transforms in place
    (``overwrite_x``); measured 3–5× faster than the float64 numpy version on
    64×64×1024 frames (benchmarks/bench_eels.py, BENCHMARKS.md).
    """
    import scipy.fft as sfft

    Y = np.asarray(spectra)
    dt = np.float32 if Y.dtype == np.float32 else np.float64
    n = Y.shape[-1]
    s = np.asarray(shift_channels, float)[..., None]
    idx = np.arange(n, dtype=dt)
    # remove the line through the end points so the periodic FFT sees no jump; the
    # line itself is shifted analytically (a linear function moves exactly)
    first = Y[..., :1].astype(dt)
    slope = (Y[..., -1:].astype(dt) - first) / dt(max(n - 1, 1))
    line = first + slope * idx
    work = np.subtract(Y, line, dtype=dt)
    # Zero-pad to an FFT-friendly length: cropped windows often have a prime number of
    # channels (e.g. 1021), where the transform is 5–7× slower than at 1024 (measured).
    # The detrended spectrum is 0 at both ends, so the padding adds no jump.
    m = sfft.next_fast_len(n, real=True)
    f = sfft.rfft(work, n=m, axis=-1, overwrite_x=True)
    del work
    k = np.fft.rfftfreq(m)
    # moving features from E + s to E: multiply by exp(+2πi k s). The phase table has
    # the shape of the shifts (one row per frame for a per-frame drift), not of the data.
    if dt == np.float32:
        # single-precision phase from the angle reduced modulo one turn in float64 (so its
        # error stays ~1e-7 however large the shift); cos/sin of float32 is 4–7× cheaper
        # than a complex128 exp, which dominated for per-pixel shifts (measured)
        turns = np.mod(k * s, 1.0)
        ang = (2 * np.pi * turns).astype(np.float32)
        phase = np.empty(ang.shape, np.complex64)
        np.cos(ang, out=phase.real)
        np.sin(ang, out=phase.imag)
        f *= phase
    else:
        f *= np.exp(2j * np.pi * k * s)
    shifted = sfft.irfft(f, m, axis=-1, overwrite_x=True)[..., :n]
    out = np.add(shifted, line, out=line)  # reuse the line's buffer: contiguous, length n
    out += slope * s.astype(dt, copy=False)
    return out


@accepts_data("si")
def shift_energy(si: Any, shift: Any, *, energy: Any = None):
    """Move every spectrum by ``−shift`` eV (undo a measured drift), band-limited.

    ``shift`` is a scalar or broadcasts against ``si``'s leading dims (e.g. the
    output of :func:`estimate_shift`). The energy axis itself is unchanged.

    Parameters
    ----------
    si : DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    shift : float or array_like
        Shift (eV) to undo, per spectrum.
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.

    Returns
    -------
    same type as ``si``
        The shifted spectra (Fourier shift: band-limited, counts conserved).

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(0.0, 20.0, 0.1)
    >>> y = np.exp(-0.5 * ((e - 10.3) / 1.0) ** 2)
    >>> out = shift_energy(y, 0.3, energy=e)
    >>> round(float(e[np.argmax(out)]), 1)
    10.0
    """
    import xarray as xr

    da = _common.spectra(si, energy=energy)
    e = np.asarray(da.coords["energy"].values, float)
    step = float(np.median(np.diff(e)))
    if isinstance(shift, xr.DataArray):
        sh = shift
    else:
        arr = np.asarray(shift, float)
        if arr.ndim > len(da.dims) - 1:
            raise ShapeMismatchError(
                f"shift: shape {arr.shape} does not broadcast against si's leading shape {da.shape[:-1]}")
        # keep the shift's own shape (a scalar stays 0-d): the phase table is then one row
        # per distinct shift, not one per pixel
        dims = da.dims[:-1][len(da.dims) - 1 - arr.ndim:]
        try:
            np.broadcast_shapes(arr.shape, da.shape[:-1])
        except ValueError:
            raise ShapeMismatchError(
                f"shift: shape {arr.shape} does not broadcast against si's leading shape {da.shape[:-1]}") from None
        if any(n == 1 and da.sizes[d] != 1 for n, d in zip(arr.shape, dims)):
            arr = np.broadcast_to(arr, tuple(da.sizes[d] for d in dims))
        sh = xr.DataArray(arr, dims=dims)
    if not np.all(np.isfinite(np.asarray(sh))):
        raise DataValidationError("shift: NaN/Inf values; expected finite shifts in eV")
    out = apply_kernel(_shift_kernel, da, sh / step, input_core_dims=[["energy"], []],
                       output_core_dims=[["energy"]],
                       output_dtypes=[np.float32 if da.dtype == np.float32 else np.float64])
    out = out.transpose(*da.dims)
    out.attrs = dict(da.attrs)
    return like_input(out, si)


@accepts_data("si")
def align_energy(si: Any, *, method: str = "zlp", window=None, reference: Any = None, target: float = 0.0,
                 energy: Any = None):
    """Estimate and undo the energy drift; returns ``(aligned, shift)``.

    With ``method="zlp"`` the ZLP is moved to ``target`` eV (default 0).

    Parameters
    ----------
    si : DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    method : {"zlp", "edge"}
        How the shift is measured (see :func:`estimate_shift`): ``"zlp"`` (the zero-loss peak's
        position), or ``"edge"`` (the shift against ``reference`` within ``window``).
    window : (float, float), optional
        Energy window (eV) the shift is measured in.
    reference : DataArray or array_like, optional
        Reference spectrum for ``method="edge"`` (default: the mean spectrum).
    target : float
        Where ``method="zlp"`` puts the zero-loss peak (eV).
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.

    Returns
    -------
    aligned : same type as ``si``
        The spectra moved by minus their shift (the energy axis unchanged).
    shift : ndarray or DataArray
        The measured shift (eV) of each spectrum.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(-5.0, 5.0, 0.05)
    >>> zlp = np.exp(-0.5 * ((e[None] - np.array([[0.1], [-0.2]])) / 0.3) ** 2)
    >>> aligned, shift = align_energy(zlp, energy=e)
    >>> np.round(shift, 3).tolist()
    [0.1, -0.2]
    """
    shift = estimate_shift(si, method=method, window=window, reference=reference, energy=energy)
    move = shift - target if method == "zlp" else shift
    return shift_energy(si, move, energy=energy), shift


@accepts_data("si")
def crop(si: Any, *, energy_range, energy: Any = None):
    """Keep the channels inside ``energy_range`` (eV, inclusive).

    Parameters
    ----------
    si : DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    energy_range : (float, float)
        First and last energy kept (eV).
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.

    Returns
    -------
    same type as ``si``
        The spectra over the channels in ``energy_range``.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(40.0, 50.0, 0.5)
    >>> crop(np.ones((2, e.size)), energy_range=(42, 44), energy=e).shape
    (2, 5)
    """
    da = _common.spectra(si, energy=energy)
    e = np.asarray(da.coords["energy"].values, float)
    ch = _common.window(e, energy_range, name="energy_range")
    return like_input(da.isel(energy=slice(ch[0], ch[-1] + 1)), si)


@accepts_data("si")
def rebin(si: Any, *, factor: int, energy: Any = None):
    """Sum groups of ``factor`` energy channels (counts stay Poisson); the remainder is dropped.

    Parameters
    ----------
    si : DataArray or array_like
        Spectra, ``energy`` last (plain arrays need ``energy=``).
    factor : int
        Channels summed into one.
    energy : array_like, optional
        Energy axis (eV) of a plain-array ``si``.

    Returns
    -------
    same type as ``si``
        ``energy // factor`` channels; a DataArray's energy is the mean of each group.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(40.0, 50.0, 0.5)
    >>> out = rebin(np.ones((2, e.size)), factor=4, energy=e)
    >>> out.shape, float(out[0, 0])
    ((2, 5), 4.0)
    """
    if int(factor) != factor or factor < 1:
        raise DataValidationError(f"factor: expected a positive integer, got {factor!r}")
    da = _common.spectra(si, energy=energy)
    factor = int(factor)
    n = (da.sizes["energy"] // factor) * factor
    if n == 0:
        raise DataValidationError(f"factor={factor} exceeds the {da.sizes['energy']} energy channels")
    out = da.isel(energy=slice(0, n)).coarsen(energy=factor).sum()
    out = out.assign_coords(energy=("energy", da.coords["energy"].values[:n].reshape(-1, factor).mean(1),
                                    {"units": "eV"}))
    return like_input(out, si)
