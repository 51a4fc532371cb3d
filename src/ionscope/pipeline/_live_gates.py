# SPDX-License-Identifier: GPL-3.0-or-later
"""The pipeline's plausibility gates, frame by frame, while the microscope acquires.

The same kernels and ``[screen]`` thresholds as ``ionscope run``
(:mod:`ionscope.pipeline._gates`): a frame that is all zero, holds NaN/Inf or
a negative signal is refused as it arrives; the series-relative gates
(negative values, total counts, χ² of the fit) compare the new frame with
the median of the frames accepted so far — from the moment ``min_frames`` of
them exist. The first frames, accepted before a median could judge them,
are reviewed together as soon as there are enough: one that is far off the
others' median is marked bad then (it may already have shaped the causal
movie of its neighbours; the final batch run never sees it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LiveGates:
    """Per-frame gate verdicts with the running medians of the accepted frames.

    Parameters
    ----------
    screen : ScreenConfig
        ``[screen]`` of the run configuration.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.operando import from_dict
    >>> g = LiveGates(from_dict({}).screen)
    >>> g.counts(np.zeros((2, 2, 8)))[1]
    'all values are zero (no signal)'
    """

    screen: object
    accepted: list = field(default_factory=list)  # {"frame", "total_counts", "negative_fraction", "chi2_mean"}
    pending: list = field(default_factory=list)   # frames accepted before a median could judge them
    spectra: dict = field(default_factory=dict)   # frame -> its summed spectrum (the energy-reversal gate)
    _last_spectrum: object = None

    @property
    def judging(self) -> bool:
        """Whether a new frame is compared with the median of the frames seen so far."""
        return len(self.accepted) >= self.screen.min_frames

    def _reference(self) -> dict:
        return {"total": [a["total_counts"] for a in self.accepted],
                "negative_fraction": [a["negative_fraction"] for a in self.accepted]}

    def _options(self) -> dict:
        sc = self.screen
        return {"enabled": sc.enabled, "count_ratio": sc.count_ratio, "min_frames": sc.min_frames,
                "max_negative_fraction": sc.max_negative_fraction, "negative_below": sc.negative_below}

    def counts(self, values: np.ndarray) -> tuple[dict, str]:
        """``(statistics, reason)`` of one (y, x, energy) frame; reason "" when it passes."""
        import xarray as xr

        from ._gates import frame_reasons, frame_statistics

        da = xr.DataArray(np.asarray(values)[None], dims=("time", "y", "x", "energy"))
        stats = frame_statistics(da, negative_below=self.screen.negative_below)
        reason = frame_reasons(**stats, **self._options(), reference=self._reference())[0]
        arr = np.asarray(values)
        spectrum = arr.sum(axis=tuple(range(arr.ndim - 1)), dtype=np.float64)  # no float64 copy of the frame
        self._last_spectrum = spectrum
        if not reason and self.screen.enabled and self.judging:
            reason = self._reversed([spectrum])[0]
        frac = float(stats["negative"][0]) / max(float(stats["size"][0]), 1.0)
        return {"total_counts": float(stats["total"][0]), "negative_fraction": frac}, reason

    def _reversed(self, spectra) -> list[str]:
        """The energy-reversal gate against the median spectrum of the accepted frames."""
        from ._gates import reversal_reasons

        ref = [self.spectra[a["frame"]] for a in self.accepted if a["frame"] in self.spectra]
        if len(ref) < self.screen.min_frames:
            return [""] * len(spectra)
        return reversal_reasons(np.asarray(spectra), reference=np.median(np.asarray(ref), axis=0))

    def fit(self, chi2_mean) -> str:
        """Reason the fit of a frame is implausible (its mean χ² against the frames so far), or ""."""
        from ._gates import chi2_reasons

        if chi2_mean is None or not self.screen.enabled:
            return ""
        ref = [a["chi2_mean"] for a in self.accepted if a.get("chi2_mean") is not None]
        return chi2_reasons([chi2_mean], ratio=self.screen.chi2_ratio, min_frames=self.screen.min_frames,
                            reference=ref)[0]

    def accept(self, rec: dict, *, judged: bool) -> None:
        """Take a frame's record (``total_counts``, ``negative_fraction``, ``chi2_mean``) into the medians."""
        self.accepted.append({"frame": rec["frame"], "total_counts": rec.get("total_counts", np.nan),
                              "negative_fraction": rec.get("negative_fraction", 0.0),
                              "chi2_mean": rec.get("chi2_mean")})
        if self._last_spectrum is not None:
            self.spectra[rec["frame"]] = self._last_spectrum
            self._last_spectrum = None
        if not judged:
            self.pending.append(rec["frame"])

    def review(self) -> list[tuple[int, str]]:
        """Frames accepted unjudged that the median of all accepted frames now finds implausible.

        Runs once enough frames are accepted; the frames it returns leave the medians.
        """
        from ._gates import chi2_reasons, frame_reasons

        if not self.pending or not self.judging:
            return []
        acc = self.accepted
        stats = {"total": np.array([a["total_counts"] for a in acc], float),
                 "negative": np.array([a["negative_fraction"] for a in acc], float), "size": np.ones(len(acc)),
                 "nonfinite": np.zeros(len(acc)), "minimum": np.ones(len(acc))}
        why = frame_reasons(**stats, **self._options())
        chi = [a["chi2_mean"] if a.get("chi2_mean") is not None else np.nan for a in acc]
        if self.screen.enabled:
            why = ["; ".join(r for r in pair if r) for pair in zip(why, chi2_reasons(
                chi, ratio=self.screen.chi2_ratio, min_frames=self.screen.min_frames))]
        if self.screen.enabled and all(a["frame"] in self.spectra for a in acc):
            flipped = self._reversed([self.spectra[a["frame"]] for a in acc])
            why = ["; ".join(r for r in pair if r) for pair in zip(why, flipped)]
        out = [(a["frame"], w) for a, w in zip(acc, why) if w and a["frame"] in self.pending]
        self.pending = []
        flagged = {f for f, _ in out}
        self.accepted = [a for a in acc if a["frame"] not in flagged]
        return out
