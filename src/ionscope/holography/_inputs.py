# SPDX-License-Identifier: GPL-3.0-or-later
"""What a bias series starts from: the holograms, the bias per time point, the references, the vacuum.

Checked and brought into one shape here, before :func:`plan_bias_series` works
on them (:mod:`ionscope.holography._plan`). :func:`vacuum_mask` is public: the
field-free region where the leakage ramp is fitted.
"""
from __future__ import annotations

import numpy as np

from ..data import as_dataarray, require_dims
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data


# --------------------------------------------------------------------------- masks
@accepts_data("wave")
def vacuum_mask(wave, *, smooth_px=2.0, border_px=3, erode_px=None):
    """Vacuum pixels of a reconstructed wave, from its amplitude.

    The amplitude (Gaussian-smoothed by ``smooth_px``) is split into a bright
    (vacuum) and a dark (specimen: inelastic and high-angle scattering) class
    by Otsu's threshold; pixels within 30 % of the vacuum level (of the gap
    between the class medians) are vacuum, so the thin end of a wedge is not;
    small isolated patches are dropped and the vacuum is eroded by ``erode_px`` (the
    transition region and the ringing of a Fourier reconstruction at edges
    are not field-free vacuum) and a ``border_px`` frame is left out.

    Parameters
    ----------
    wave : DataArray or ndarray
        Complex wave ``(y, x)`` (ideally reference-normalised) or its amplitude.
    smooth_px, border_px, erode_px : float, int, int
        Smoothing, excluded border and erosion in pixels; the erosion
        defaults to 2 % of the image side (≥ 2 px): the amplitude of a wedge's
        first few nanometres is within the noise of vacuum, but its phase
        already carries the specimen's potential.

    Returns
    -------
    ndarray of bool (y, x)

    Raises
    ------
    DataValidationError
        No contrast between vacuum and specimen (e.g. an all-vacuum image).

    References
    ----------
    N. Otsu, IEEE Trans. Syst. Man Cybern. 9 (1979) 62, doi:10.1109/TSMC.1979.4310076.

    Examples
    --------
    >>> import numpy as np
    >>> amp = np.ones((64, 64)); amp[40:] = 0.7
    >>> m = vacuum_mask(amp)
    >>> bool(m[10, 30]), bool(m[50, 30])
    (True, False)
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    da = as_dataarray(wave, kind="image", name="wave")
    require_dims(da, ["y", "x"], name="wave")
    if len(da.dims) != 2:
        raise DataValidationError(f"wave: expected one (y, x) wave, got dims {da.dims}")
    arr = np.asarray(da.transpose("y", "x").values)
    amp = np.abs(arr).astype(float)
    if not np.all(np.isfinite(amp)):
        raise DataValidationError("wave: holds NaN/Inf values")
    amp = ndimage.gaussian_filter(amp, smooth_px) if smooth_px > 0 else amp
    # the threshold comes from the interior, clipped: a Fourier reconstruction
    # rings at the field's border (the image is not periodic) with outliers
    b = max(int(border_px), 0)
    inner = amp[b:amp.shape[0] - b, b:amp.shape[1] - b] if b else amp
    lo, hi = np.percentile(inner, [1, 99])
    if not hi > 1.05 * lo:
        raise DataValidationError("wave: the amplitude has no vacuum/specimen contrast; pass a vacuum mask")
    clipped = np.clip(inner, lo, hi)
    split = threshold_otsu(clipped)
    vac_level, spec_level = np.median(clipped[clipped > split]), np.median(clipped[clipped <= split])
    # close to the vacuum level, not midway: the thin end of a wedge is specimen
    # (its bias-induced phase is not leakage), midway would call ~1/3 of it vacuum
    mask = amp > vac_level - 0.3 * (vac_level - spec_level)
    # isolated noise pixels inside the specimen are not vacuum: keep large components only
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        mask = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))
    if erode_px is None:
        erode_px = max(2, int(round(0.02 * min(amp.shape))))
    if erode_px > 0:
        mask = ndimage.binary_erosion(mask, iterations=int(erode_px), border_value=1)
    if b > 0:
        mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = False, False, False, False
    if np.count_nonzero(mask) < 64:
        raise DataValidationError("wave: fewer than 64 vacuum pixels found; pass a vacuum mask")
    return mask



# --------------------------------------------------------------------------- inputs
def _series_da(obj, method):
    da = as_dataarray(obj, kind="image", name="holograms")
    require_dims(da, ["time", "y", "x"], name="holograms")
    want = ("time", "y", "x") if method == "fourier" else ("time", "frame", "y", "x")
    if set(da.dims) != set(want):
        raise ShapeMismatchError(f"holograms: method {method!r} expects dims {want}, got {da.dims}")
    if da.dtype.kind not in "uif":
        raise DataValidationError(f"holograms: expected real intensities, got dtype {da.dtype}")
    return da.transpose(*want)


def _bias_per_frame(da, bias_v, log, times):
    n = da.sizes["time"]
    if bias_v is not None:
        b = np.asarray(getattr(bias_v, "values", bias_v), float)
        if b.shape != (n,):
            raise ShapeMismatchError(f"bias_v: expected {n} values (one per time point), got shape {b.shape}")
    elif log is not None:
        from ..io import voltage_log

        log = voltage_log(log)
        lt = np.asarray(log["time"].values, float)
        if np.any(times < lt[0] - 1e-9) or np.any(times > lt[-1] + 1e-9):
            raise DataValidationError(f"log: covers {lt[0]:g}–{lt[-1]:g} s, the holograms "
                                      f"{times[0]:g}–{times[-1]:g} s; expected the log to span the series")
        b = np.interp(times, lt, np.asarray(log["voltage"].values, float))
    elif "bias_v" in da.coords:
        b = np.asarray(da.coords["bias_v"].values, float)
    else:
        raise DataValidationError("bias_v/log: give the bias per time point (bias_v), a bias log (log), "
                                  "or holograms with a 'bias_v' coordinate")
    if not np.all(np.isfinite(b)):
        raise DataValidationError("bias_v: holds NaN/Inf; expected the bias in V for every time point")
    return b


def _references(references, method, shape):
    """References as (n_ref, [frame,] y, x) numpy-readable DataArray and their times (or None)."""
    if references is None:
        return None, None
    da = as_dataarray(references, kind="image", name="references")
    require_dims(da, ["y", "x"], name="references")
    if (da.sizes["y"], da.sizes["x"]) != shape:
        raise ShapeMismatchError(f"references: (y, x) = ({da.sizes['y']}, {da.sizes['x']}) does not match the "
                                 f"holograms' {shape}")
    lead = [d for d in da.dims if d not in ("y", "x", "frame")]
    if method == "phase-shifting" and "frame" not in da.dims:
        raise ShapeMismatchError("references: phase shifting needs reference groups with a 'frame' dim")
    if method == "fourier" and "frame" in da.dims:
        raise ShapeMismatchError("references: the Fourier method takes single references, not 'frame' groups")
    if len(lead) > 1:
        raise ShapeMismatchError(f"references: expected ([time,] {'frame, ' if method != 'fourier' else ''}y, x), "
                                 f"got dims {da.dims}")
    if not lead:
        da = da.expand_dims(time=[0.0])
        times = None
    else:
        if lead[0] != "time":
            da = da.rename({lead[0]: "time"})
        times = np.asarray(da["time"].values, float) if "time" in da.coords else None
    core = ("frame", "y", "x") if method != "fourier" else ("y", "x")
    return da.transpose("time", *core), times


def _resample_map(m, src_y, src_x, dst_y, dst_x, order=1):
    """A (y, x) map on the hologram grid → the wave grid (Fourier: coarser, same field)."""
    from scipy import ndimage

    if m.shape == (dst_y.size, dst_x.size):
        return m
    fy = np.interp(dst_y, src_y, np.arange(src_y.size))
    fx = np.interp(dst_x, src_x, np.arange(src_x.size))
    gy, gx = np.meshgrid(fy, fx, indexing="ij")
    return ndimage.map_coordinates(np.asarray(m, float), [gy, gx], order=order, mode="nearest")


def _block_mean(a, f):
    """Mean over f×f blocks (the part of ``a`` divisible by f)."""
    ny, nx = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return a[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))


