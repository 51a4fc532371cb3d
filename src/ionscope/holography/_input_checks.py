# SPDX-License-Identifier: GPL-3.0-or-later
"""What :func:`ionscope.holography.reconstruct` checks of its inputs before it reconstructs.

A hologram holds counts (not all zero, not negative on average), and when the carrier is taken from a
vacuum reference the hologram's own fringes must lie there too: a reference of another biprism setting
would otherwise be divided in without a word. Each check is one line naming the input and what was
expected (:class:`~ionscope.errors.DataValidationError`).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataValidationError
from . import _fourier


def _first_frame(da):
    for dim in [d for d in da.dims if d not in ("y", "x")]:
        da = da.isel({dim: 0})
    return np.asarray(da.transpose("y", "x").values)


def check_counts(holo) -> None:
    """An in-memory hologram (each frame of a stack) holds counts: not all zero, not negative on average.

    Found (s28seams): with a vacuum reference, whose fringes give the carrier, an all-zero hologram was
    reconstructed into a flat wave (phase 0: "no potential") and a negated one into a wave shifted by π,
    both without a word.
    """
    if holo.chunks is not None:
        return  # a lazy stack is not read here (a night's frames are judged as read: holography._checks)
    v = np.asarray(holo.transpose(*[d for d in holo.dims if d not in ("y", "x")], "y", "x").values)
    frames = v.reshape((-1,) + v.shape[-2:])
    lead = [d for d in holo.dims if d not in ("y", "x")]
    for i, f in enumerate(frames):
        where = f" (frame {i} of {lead[0]})" if lead else ""
        if not np.any(f):
            raise DataValidationError(f"hologram{where}: all zero (an empty or failed acquisition); expected "
                                      "counts with fringes")
        mean = float(np.mean(f, dtype=np.float64))
        if np.isfinite(mean) and not mean > 0:  # NaN/Inf: refused by the reconstruction itself, by name
            raise DataValidationError(f"hologram{where}: mean intensity {mean:.4g} ≤ 0; counts cannot be "
                                      "negative (a negated or wrongly offset hologram)")


def check_same_fringes(holo, q_ref, min_frequency) -> None:
    """The hologram's own fringes lie where the reference's do (the carrier is taken from the reference).

    Found (s28seams): a reference of another biprism setting (other fringe spacing or orientation, or the
    image transposed) was divided into the hologram without a word, giving a meaningless phase. The
    hologram's own sideband (searched at a third of the usual threshold: it only has to confirm the
    reference's) must lie within 3 frequency bins or 25 % of |q| of the reference's carrier: the specimen's
    own phase gradient moves the hologram's peak (7 % of |q| on the simulated biased specimen), a change of
    biprism setting or a rotation of the image moves it further.
    """
    frame = _first_frame(holo)
    try:
        qy, qx, _ = _fourier.estimate_carrier_array(frame, min_frequency=min_frequency,
                                                    min_snr=_fourier._MIN_SIDEBAND_SNR / 3, name="hologram")
    except DataValidationError as exc:
        raise DataValidationError(f"{exc} (the reference has fringes at (qy, qx) = ({q_ref[0]:.4g}, "
                                  f"{q_ref[1]:.4g}) cycles/px; the hologram has none there)") from None
    side = min(min(frame.shape), _fourier._SEARCH_SIDE)
    tol = max(3.0 / side, 0.25 * math.hypot(*q_ref))
    if math.hypot(qy - q_ref[0], qx - q_ref[1]) > tol:
        raise DataValidationError(
            f"reference: its fringes are at (qy, qx) = ({q_ref[0]:.4g}, {q_ref[1]:.4g}) cycles/px, the "
            f"hologram's at ({qy:.4g}, {qx:.4g}): a reference of another biprism setting (or rotated/"
            f"transposed); record the vacuum reference with the hologram's setting, or pass sideband=(qy, qx) "
            f"to impose one")
