# SPDX-License-Identifier: GPL-3.0-or-later
"""What a hologram's fringes say before any reconstruction: the carrier (:func:`estimate_sideband`) and the
fringe statistics (:func:`fringe_statistics`: contrast, spacing, signal-to-noise).

The sign convention and the canonical sideband are those of :mod:`ionscope.holography._fourier`.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data
from ._fourier import (
    _as_float_image,
    _image_da,
    _resolve_aperture,
    _workers,
    canonical_carrier,
    estimate_carrier_array,
)


@accepts_data("hologram")
def estimate_sideband(hologram, *, min_frequency=0.08):
    """Carrier frequency ``(qy, qx)`` in cycles/px of a 2-D hologram (canonical half-plane).

    Parameters
    ----------
    hologram : DataArray or ndarray
        One hologram ``(y, x)`` (for a stack, pass one frame or the reference).
    min_frequency : float
        Lowest frequency considered, cycles/px (default 0.08: fringes finer than 12.5 px).

    Returns
    -------
    tuple of float

    Raises
    ------
    DataValidationError
        No fringes.

    References
    ----------
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.

    Examples
    --------
    >>> from ionscope.simulate import hologram
    >>> holo, ref, truth = hologram(shape=(256, 256), carrier=(0.1, 0.2), seed=0)
    >>> [round(v, 3) for v in estimate_sideband(ref)]  # the vacuum reference gives the bare carrier
    [0.1, 0.2]
    """
    da = _image_da(hologram, "hologram")
    if len(da.dims) != 2:
        raise ShapeMismatchError(f"hologram: expected one (y, x) image, got dims {da.dims}")
    qy, qx, _ = estimate_carrier_array(np.asarray(da.transpose("y", "x").values), min_frequency=min_frequency)
    return qy, qx


@accepts_data("hologram")
def fringe_statistics(hologram, *, sideband=None, aperture=None, min_frequency=0.08):
    """Fringe carrier, spacing, direction and contrast of a hologram, or of each frame of a stack.

    The contrast uses the Fourier definition μ = 2·|c|/a₀, with |c|² the
    sideband power inside the aperture (Parseval) less the photon-noise power
    expected there (estimated from the spectrum far from both bands), and a₀
    the mean intensity.

    Parameters
    ----------
    hologram : DataArray or ndarray
        One hologram ``(y, x)``, or a stack ``(frame|time, y, x)`` (frames are
        read one at a time, so a dask-backed stack is never loaded whole).
    sideband, aperture : optional
        As in :func:`reconstruct`. Without ``sideband`` the carrier is
        estimated for each frame (so a biprism drift shows in the statistics).

    Returns
    -------
    dict or Dataset
        For one hologram a dict: ``carrier`` (qy, qx) cycles/px, ``spacing_px``,
        ``spacing_nm`` (None if uncalibrated), ``angle_deg`` (direction of q
        from the x axis), ``contrast``, ``mean_counts``, ``sideband_snr``.
        For a stack the same per frame: an :class:`xarray.Dataset` along the
        stack's dim (``carrier_qy``, ``carrier_qx`` and the other keys;
        ``spacing_nm`` NaN when uncalibrated) for DataArray input, a dict of
        1-D arrays (``carrier`` of shape (N, 2)) for numpy input.

    Raises
    ------
    DataValidationError
        No fringes (for a stack the message names the frame).

    References
    ----------
    H. Lichte and M. Lehmann, Rep. Prog. Phys. 71 (2008) 016102, doi:10.1088/0034-4885/71/1/016102.

    Examples
    --------
    >>> from ionscope.simulate import hologram
    >>> holo, _, truth = hologram(shape=(256, 256), contrast=0.3, seed=0)
    >>> abs(fringe_statistics(holo)["contrast"] - 0.3) < 0.05
    True
    """
    import xarray as xr

    da = _image_da(hologram, "hologram")
    if len(da.dims) == 2:
        return _fringe_statistics_2d(da, sideband=sideband, aperture=aperture, min_frequency=min_frequency)
    lead = [d for d in da.dims if d not in ("y", "x")]
    if len(lead) != 1:
        raise ShapeMismatchError(f"hologram: expected (y, x) or one stack dim (frame|time, y, x), got dims {da.dims}")
    dim = lead[0]
    rows = []
    for k in range(da.sizes[dim]):
        try:
            rows.append(_fringe_statistics_2d(da.isel({dim: k}), sideband=sideband, aperture=aperture,
                                              min_frequency=min_frequency))
        except DataValidationError as exc:
            raise DataValidationError(f"{dim} {k}: {exc}") from None
    keys = ("spacing_px", "angle_deg", "contrast", "mean_counts", "sideband_snr")
    carrier = np.array([r["carrier"] for r in rows], float)
    spacing_nm = np.array([np.nan if r["spacing_nm"] is None else r["spacing_nm"] for r in rows], float)
    if not isinstance(hologram, xr.DataArray):
        out = {"carrier": carrier, "spacing_nm": spacing_nm if np.isfinite(spacing_nm).any() else None}
        out.update({k: np.array([r[k] for r in rows], float) for k in keys})
        return out
    data = {"carrier_qy": carrier[:, 0], "carrier_qx": carrier[:, 1], "spacing_nm": spacing_nm}
    data.update({k: np.array([r[k] for r in rows], float) for k in keys})
    ds = xr.Dataset({k: (dim, v) for k, v in data.items()},
                    coords={dim: da.coords[dim]} if dim in da.coords else None)
    units = {"carrier_qy": "cycles/px", "carrier_qx": "cycles/px", "spacing_nm": "nm", "spacing_px": "px",
             "angle_deg": "deg", "mean_counts": "counts"}
    for k, u in units.items():
        ds[k].attrs["units"] = u
    return ds


def _fringe_statistics_2d(da, *, sideband, aperture, min_frequency):
    """Statistics of one (y, x) hologram DataArray (see :func:`fringe_statistics`)."""
    from scipy import fft

    img = _as_float_image(da.transpose("y", "x").values, "hologram").astype(np.float64)
    qy, qx, snr = estimate_carrier_array(img, min_frequency=min_frequency) if sideband is None \
        else (*canonical_carrier(sideband), float("nan"))
    radius, _ = _resolve_aperture((qy, qx), aperture, 0.0)
    ny, nx = img.shape
    spec = np.abs(fft.rfft2(img, workers=_workers(None))) ** 2
    ky = fft.fftfreq(ny)[:, None]
    kx = fft.rfftfreq(nx)[None, :]
    in_ap = np.hypot(ky - qy, kx - qx) <= radius
    in_ap |= np.hypot(ky + qy, kx + qx) <= radius  # the mirrored part when q is near the qx = 0 edge
    # noise floor: bins outside the centre band and both sidebands (white Poisson noise)
    far = (np.hypot(ky, kx) > 2 * radius) & (np.hypot(ky - qy, kx - qx) > 2 * radius) \
        & (np.hypot(ky + qy, kx + qx) > 2 * radius)
    noise = float(np.median(spec[far]) / math.log(2)) if np.any(far) else 0.0  # exponential: mean = median/ln 2
    n_ap = int(np.count_nonzero(in_ap))
    side_power = max(float(spec[in_ap].sum()) - n_ap * noise, 0.0)
    a0 = float(spec[0, 0] ** 0.5)
    contrast = 2.0 * math.sqrt(side_power) / a0 if a0 > 0 else float("nan")
    spacing = 1.0 / math.hypot(qy, qx)
    spacing_nm = None
    if "x" in da.coords and "y" in da.coords:
        from ..data import axis_scale

        try:
            sy_nm, sx_nm = axis_scale(da, "y", name="hologram"), axis_scale(da, "x", name="hologram")
            spacing_nm = 1.0 / math.hypot(qy / sy_nm, qx / sx_nm)
        except Exception:  # uncalibrated or irregular axes: report pixels only
            spacing_nm = None
    return {"carrier": (qy, qx), "spacing_px": spacing, "spacing_nm": spacing_nm,
            "angle_deg": math.degrees(math.atan2(qy, qx)), "contrast": contrast,
            "mean_counts": float(img.mean()), "sideband_snr": snr}
