# SPDX-License-Identifier: GPL-3.0-or-later
"""Whole-run error bars (the block jackknife over frames) and per-region statistics of a Li-map movie,
for :func:`ionscope.transport.analyse`."""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError, ShapeMismatchError


def block_jackknife(stat, n: int, *, blocks: int = 8) -> float:
    """σ of a whole-run number by the delete-a-block jackknife over its ``n`` frames.

    ``stat(keep)`` computes the number from the frames where the boolean mask
    ``keep`` is true; the run is cut into ``blocks`` consecutive blocks and the
    number recomputed with each left out. Blocks of consecutive frames keep
    frame-to-frame correlation (a denoising window, slow changes) inside a
    block, where a delete-one jackknife would underrate it. The σ says how much
    the run average depends on the frames it is made of — noise and the real
    changes between charge, rest and discharge together.

    Parameters
    ----------
    stat : callable
        ``stat(keep) -> float`` from a boolean frame mask ``keep`` of length ``n``.
    n : int
        Number of frames.
    blocks : int
        Number of consecutive blocks left out in turn (at most ``n``).

    Returns
    -------
    float
        The jackknife standard error of ``stat(all frames)``.

    References
    ----------
    H. R. Künsch, Ann. Stat. 17 (1989) 1217, doi:10.1214/aos/1176347265.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.random.default_rng(0).normal(0.0, 1.0, 400)
    >>> ratio = block_jackknife(lambda k: v[k].mean(), v.size) * np.sqrt(v.size)  # ≈ 1 for white noise
    >>> bool(0.5 < ratio < 1.6)   # 8 blocks: the σ itself is known to about ±25 %
    True
    """
    nb = min(int(blocks), int(n))
    if nb < 2:
        return float("nan")
    edges = np.linspace(0, n, nb + 1).round().astype(int)
    vals = []
    import warnings

    # a block that holds every frame of a kind (all the rest frames) leaves an empty mean: NaN, skipped
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for a, b in zip(edges[:-1], edges[1:]):
            keep = np.ones(n, bool)
            keep[a:b] = False
            try:
                vals.append(float(stat(keep)))
            except (ZeroDivisionError, ValueError):
                vals.append(float("nan"))
    v = np.asarray(vals, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    return float(np.sqrt((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2)))


def region_statistics(c: np.ndarray, dcdt: np.ndarray, labels: np.ndarray, t: np.ndarray):
    """Mean Li per region and frame, and each region's mean rate (grains > 0, boundaries = 0).

    Returns a Dataset on ``component`` (region names ``boundary``, ``grain_1`` ...).
    """
    import xarray as xr

    labels = np.asarray(labels)
    if labels.shape != c.shape[1:]:
        raise ShapeMismatchError(f"segmentation has shape {labels.shape}, expected the map shape {c.shape[1:]}")
    if labels.dtype.kind not in "iub":
        raise DataValidationError(f"segmentation: expected integer labels, got dtype {labels.dtype}")
    ids = np.unique(labels)
    names = ["boundary" if i == 0 else f"grain_{int(i)}" for i in ids]
    flat = labels.ravel()
    li = np.stack([c.reshape(c.shape[0], -1)[:, flat == i].mean(axis=1) for i in ids], axis=1)
    rate = np.array([np.abs(dcdt.reshape(dcdt.shape[0], -1)[:, flat == i]).mean() for i in ids])
    npx = np.array([(flat == i).sum() for i in ids])
    return xr.Dataset(
        {"region_li": (("time", "component"), li), "region_rate": ("component", rate, {"units": "1/s"}),
         "region_pixels": ("component", npx)},
        coords={"component": ("component", names)},
    )
