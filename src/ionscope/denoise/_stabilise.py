# SPDX-License-Identifier: GPL-3.0-or-later
"""Noise model of :func:`~ionscope.denoise.sparse_coding`: which variance stabilisation, which noise level.

Decided once for the whole movie (in memory, or in one streaming pass over a
dask-backed movie), so that every window is denoised with the same model and
the windowed result agrees with one-block processing.

References
----------
M. Mäkitalo, A. Foi, IEEE Trans. Image Process. 20 (2011) 99, doi:10.1109/TIP.2010.2056693
(exact unbiased inverse of the Anscombe transform).
J. Immerkær, Comput. Vis. Image Underst. 64 (1996) 300, doi:10.1006/cviu.1996.0060 (noise level).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError


class Stabiliser:
    """Forward/inverse variance stabilisation chosen once for the whole movie.

    ``kind``: ``"poisson"`` (Anscombe, exact unbiased inverse), ``"pg"``
    (generalised Anscombe for Poisson-Gaussian counts), ``"map"`` (divide by a
    per-pixel noise map) or ``"gaussian"`` (identity).
    """

    def __init__(self, kind, *, gain=1.0, read_noise=0.0):
        self.kind, self.gain, self.read_noise = kind, float(gain), float(read_noise)

    def forward(self, x, smap=None):
        from ._poisson import anscombe, generalized_anscombe

        if self.kind == "poisson":
            return anscombe(np.asarray(x, np.float64))
        if self.kind == "pg":
            return generalized_anscombe(np.asarray(x, np.float64), gain=self.gain, read_noise=self.read_noise)
        if self.kind == "map":
            return np.asarray(x, np.float64) / smap
        # float64 here (the filter works in float32) keeps the noise estimate
        # identical between in-memory and dask paths
        return np.asarray(x, np.float64)

    def inverse(self, est, smap=None):
        from ._poisson import inverse_anscombe, inverse_generalized_anscombe

        est = np.asarray(est, np.float64)
        if self.kind == "poisson":
            return inverse_anscombe(est)
        if self.kind == "pg":
            return inverse_generalized_anscombe(est, gain=self.gain, read_noise=self.read_noise)
        if self.kind == "map":
            return est * smap
        return est


def choose_model(xf, *, noise, sigma, smap, gain, read_noise):
    """The stabiliser, the stabilised data and the noise level in its domain, decided on the whole movie."""
    from ._metrics import noise_level_kernel
    from ._poisson import anscombe

    if smap is not None:
        model = Stabiliser("map")
    elif noise == "poisson-gaussian":
        model = Stabiliser("pg", gain=gain, read_noise=read_noise)
    elif noise == "poisson":
        model = Stabiliser("poisson")
    elif noise == "auto" and xf.min() >= 0 and 0.6 <= noise_level_kernel(anscombe(xf)) <= 1.5:
        # Raw Poisson counts have unit noise after the Anscombe transform (0.65-1
        # even below 1 count/px). Far from that, the data are not raw counts
        # (noise-free, scaled or already smoothed) and the Poisson-specific
        # unbiased inverse would bias them: treat them as Gaussian instead.
        model = Stabiliser("poisson")
    else:
        model = Stabiliser("gaussian")
    z = model.forward(xf, smap)
    # With a noise map the stabilised noise is ~1 by construction; it is still
    # estimated, so that a map that is right in shape but off in scale (e.g.
    # MLLS standard errors under a mis-set weighting) does no harm.
    s = noise_level_kernel(z) if (sigma is None or smap is not None) else float(sigma)
    return model, z, s


def broadcast_sigma(sigma, shape):
    """A per-pixel noise map broadcast to ``shape`` (float64), checked; None for a scalar/None sigma."""
    if sigma is None or np.ndim(sigma) == 0:
        return None
    smap = np.asarray(getattr(sigma, "values", sigma), dtype=np.float64)
    try:
        smap = np.broadcast_to(smap, shape)
    except ValueError:
        raise ShapeMismatchError(
            f"sparse_coding: sigma map of shape {smap.shape} does not broadcast to the data's shape {shape}"
        ) from None
    if not np.all(np.isfinite(smap)) or smap.min() <= 0:
        raise _bad_map()
    return smap


def _bad_map():
    return DataValidationError("sparse_coding: sigma map must hold finite values > 0 (a noise standard "
                               "deviation per pixel); found NaN/Inf or values <= 0")


def _map_with_model(noise):
    return DataValidationError(f"sparse_coding: a per-pixel sigma map replaces the noise model; use "
                               f"noise='auto' or 'gaussian' with it, not noise={noise!r}")


def _negative_counts(lo):
    return DataValidationError(f"sparse_coding: noise='poisson' needs non-negative counts, found minimum "
                               f"{lo:.3g}; use noise='gaussian' for background-subtracted maps")


def check_counts(xf, *, noise, smap) -> None:
    """Refuse what no noise model can take: NaN/Inf, a noise map with a Poisson model, negative Poisson counts."""
    if xf.size and not np.all(np.isfinite(xf)):
        n_bad = int(xf.size - np.count_nonzero(np.isfinite(xf)))
        raise DataValidationError(f"sparse_coding: data hold {n_bad} NaN/Inf value(s); expected finite counts")
    if noise in ("poisson", "poisson-gaussian") and smap is not None:
        raise _map_with_model(noise)
    if noise == "poisson" and xf.size and xf.min() < 0:
        raise _negative_counts(xf.min())


def immerkaer(x):
    """Immerkær's mean absolute Laplacian-difference response, scaled to sigma (dask or numpy)."""
    resp = (x[:, :-2, :-2] - 2 * x[:, :-2, 1:-1] + x[:, :-2, 2:]
            - 2 * x[:, 1:-1, :-2] + 4 * x[:, 1:-1, 1:-1] - 2 * x[:, 1:-1, 2:]
            + x[:, 2:, :-2] - 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:])
    return np.sqrt(np.pi / 2.0) * abs(resp).mean() / 6.0


def lazy_sigma_map(da, sigma, shape):
    """A per-pixel noise map as a dask array of ``shape`` (float64); None for a scalar/None sigma."""
    import dask.array as dsa

    if sigma is None or np.ndim(sigma) == 0:
        return None
    s_arr = sigma.broadcast_like(da).transpose(*da.dims).data if hasattr(sigma, "dims") else sigma
    try:
        return dsa.broadcast_to(dsa.asarray(s_arr, dtype=np.float64), shape)
    except ValueError:
        raise ShapeMismatchError(f"sparse_coding: sigma map of shape {np.shape(s_arr)} does not broadcast "
                                 f"to the data's shape {shape}") from None


def lazy_model(x, smap, *, noise, gain, read_noise):
    """:func:`choose_model` for a dask movie, from whole-movie statistics in one pass over the chunks.

    Returns ``(model, noise level, stabilised variance, stabilised std, value range)``; ``model`` is None
    when the data are constant (nothing to denoise).
    """
    import dask
    import dask.array as dsa

    from ._poisson import anscombe

    # minimum, Anscombe-domain Immerkær mean response, variances, in one pass (bounded memory)
    a = anscombe(x) if smap is None else x / smap
    lo, ptp, imm_a, var_a, imm_x, var_x, std_x, bad = dask.compute(
        x.min(), x.max() - x.min(), immerkaer(a), a.var(), immerkaer(x), x.var(), x.std(),
        (~dsa.isfinite(x)).sum())
    if bad:
        raise DataValidationError(f"sparse_coding: data hold {int(bad)} NaN/Inf value(s); expected finite counts")
    if ptp == 0 or min(x.shape[1:]) < 2:
        return None, 0.0, 0.0, 0.0, ptp
    if smap is not None:
        if noise in ("poisson", "poisson-gaussian"):
            raise _map_with_model(noise)
        if bool(dsa.any(~dsa.isfinite(smap) | (smap <= 0)).compute()):
            raise _bad_map()
        return Stabiliser("map"), imm_a, var_a, np.sqrt(var_a), ptp
    if noise in ("poisson-gaussian", "poisson") or (noise == "auto" and lo >= 0 and 0.6 <= imm_a <= 1.5):
        if noise == "poisson" and lo < 0:
            raise _negative_counts(lo)
        if noise == "poisson-gaussian":
            from ._poisson import generalized_anscombe

            ga = generalized_anscombe(x, gain=gain, read_noise=read_noise)
            imm_a, var_a = dask.compute(immerkaer(ga), ga.var())
            return Stabiliser("pg", gain=gain, read_noise=read_noise), imm_a, var_a, np.sqrt(var_a), ptp
        return Stabiliser("poisson"), imm_a, var_a, np.sqrt(var_a), ptp
    return Stabiliser("gaussian"), imm_x, var_x, std_x, ptp
