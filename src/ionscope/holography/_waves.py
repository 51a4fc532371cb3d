# SPDX-License-Identifier: GPL-3.0-or-later
"""The waves of a bias series: one hologram (or phase-shifting group) → its complex wave, over its reference.

:class:`WaveMaker` holds what every time point's reconstruction shares — the
method, the carrier, the aperture, the output grid and the reference waves —
and nothing that belongs to one call: it is part of a
:class:`~ionscope.holography.BiasPlan`, travels with it to cluster workers,
and reconstructs one frame at a time (:meth:`WaveMaker.wave`). The zero-bias
state ψ₀ is the complex mean of the zero-bias waves (:func:`zero_state`).
"""
from __future__ import annotations

import numpy as np

from . import _fourier
from ._inputs import _block_mean
from ._potential import _unwrap_kernel

#: Order of the polynomial describing how a reference changes from the base reference.
_REF_CHANGE_ORDER = 3


def _smooth_change(wave, base, order=_REF_CHANGE_ORDER):
    """exp(P) with P a polynomial (log-amplitude + i·phase) fitted to log(wave/base) on a coarse grid."""
    ny, nx = wave.shape
    f = max(1, min(ny, nx) // 64)
    ratio = _block_mean(wave * np.conj(base), f)
    mag = np.abs(_block_mean(base, f)) ** 2
    ok = mag > 0.05 * np.median(mag)
    ratio = np.where(ok, ratio / np.where(ok, mag, 1.0), 1.0)
    phase = _unwrap_kernel(ratio[None])[0]
    logamp = np.log(np.clip(np.abs(ratio), 1e-6, None))
    cy, cx = ratio.shape
    yy = np.linspace(-1.0, 1.0, cy)[:, None] * np.ones((1, cx))
    xx = np.ones((cy, 1)) * np.linspace(-1.0, 1.0, cx)[None, :]
    terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    a = np.stack([(yy ** i * xx ** j)[ok] for i, j in terms], axis=1)
    coef_p, *_ = np.linalg.lstsq(a, phase[ok], rcond=None)
    coef_a, *_ = np.linalg.lstsq(a, logamp[ok], rcond=None)
    # evaluated at the block centres' coordinates, extended to the full grid
    fy = (np.arange(ny) + 0.5) / f - 0.5
    fx = (np.arange(nx) + 0.5) / f - 0.5
    ty = (fy / max(cy - 1, 1) * 2 - 1)[:, None]
    tx = (fx / max(cx - 1, 1) * 2 - 1)[None, :]
    p = sum(c * ty ** i * tx ** j for c, (i, j) in zip(coef_p, terms))
    la = sum(c * ty ** i * tx ** j for c, (i, j) in zip(coef_a, terms))
    return np.exp(la + 1j * p)


class WaveMaker:
    """Reconstructs the wave of one time point (Fourier or phase shifting), divided by its reference.

    Parameters
    ----------
    method : {"fourier", "phase-shifting"}
    q : (float, float)
        Carrier (cycles/px, y and x).
    shape : (int, int)
        The holograms' ``(y, x)``.
    aperture : float, optional
        Fourier aperture radius (cycles/px; default |q|/3, :func:`reconstruct`).
    radius, edge : float, optional
        The resolved aperture (as stored in a plan; instead of ``aperture``).
    ref_waves : ndarray (n_ref, oy, ox) complex64, optional
        The reference waves (:meth:`reference_waves`), or None (no references).

    Notes
    -----
    Derived arrays (the phase-shifting carrier, the guarded reference
    denominators) are computed on first use and never pickled: a cluster
    worker computes them once for its copy.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.simulate import hologram
    >>> holo, ref = hologram(shape=(64, 64), seed=0)[:2]
    >>> maker = WaveMaker(method="fourier", q=(0.125, 0.25), shape=(64, 64))
    >>> maker.wave(np.asarray(holo.values), -1).shape == maker.out_shape
    True
    """

    def __init__(self, *, method, q, shape, aperture=None, radius=None, edge=None, ref_waves=None):
        self.method = method
        self.q = (float(q[0]), float(q[1]))
        self.shape = (int(shape[0]), int(shape[1]))
        if method == "fourier":
            if radius is None:
                radius, edge = _fourier._resolve_aperture(self.q, aperture, None)
            self.radius, self.edge = float(radius), float(edge)
            self.out_shape = tuple(int(v) for v in _fourier._plan(self.shape, self.q, self.radius, self.edge,
                                                                  False)["out"])
        else:
            self.radius = self.edge = None
            self.out_shape = self.shape
        self.ref_waves = ref_waves
        self._derived = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_derived"] = {}  # recomputed where it is used (a cluster worker): not shipped
        return state

    def raw(self, arr, fft_workers=1):
        """The wave of one hologram (or group) before any reference: complex64 on the output grid."""
        if self.method == "fourier":
            return _fourier.sideband_kernel(arr, q=self.q, radius=self.radius, edge=self.edge, full_size=False,
                                            workers=fft_workers)
        from ._phase_shifting import estimate_shifts_array, solve_weights

        frames = np.ascontiguousarray(arr, dtype=np.float32)
        theta, _ = estimate_shifts_array(frames, q=self.q, iterations=3)
        # c = Σ w_n·I_n (Ru et al. 1994; as _phase_shifting.solve_kernel) as two real
        # matrix–vector products over frames-first data: ~50× faster than a complex
        # matmul over a frames-last view at 1k²
        w = solve_weights(theta)[1]
        flat = frames.reshape(frames.shape[0], -1)
        c = (w.real.astype(np.float32) @ flat) + 1j * (w.imag.astype(np.float32) @ flat)
        # carrier removed here (not only by the reference) so that a reference can be smoothed
        return c.reshape(frames.shape[1:]).astype(np.complex64) * self._decarrier()

    def _decarrier(self):
        got = self._derived.get("decarrier")
        if got is None:
            from ._phase_shifting import _carrier_basis

            cos, sin = _carrier_basis(self.shape, self.q)
            got = self._derived["decarrier"] = (cos - 1j * sin).astype(np.complex64)
        return got

    def _denominator(self, i):
        """Reference wave ``i`` with its near-zero samples replaced (the same numbers every frame)."""
        got = self._derived.get(("ref", i))
        if got is None:
            ref = self.ref_waves[i]
            mag = np.abs(ref)
            got = self._derived[("ref", i)] = np.where(mag > 1e-12 * mag.max(), ref, 1e-12 * mag.max())
        return got

    def wave(self, arr, ref_index, fft_workers=1):
        """The wave of one hologram over reference wave ``ref_index`` (−1: none)."""
        c = self.raw(arr, fft_workers)
        if ref_index >= 0:
            return c / self._denominator(int(ref_index))
        return c

    def reference_waves(self, refs, ref_times, base_time, fft_workers=1):
        """The reference wave of each reference time: one base reference, changed smoothly.

        ``refs`` is a ``(time, [frame,] y, x)`` DataArray. A reference carries
        only smooth information (biprism and lens distortions, the carrier),
        and its photon noise enters ΔV — smoothing with a small kernel does
        not help there: the noise at the scale of the bulk regions, which sets
        the steps, passes any local smoothing. So the reference nearest to the
        zero-bias state (``base_time``) is smoothed (it cancels in
        Δφ = arg ψ_t·ψ₀* wherever both use it), and every other reference
        enters only through its *change* from the base, taken as a 3rd-order
        polynomial in log-amplitude and phase (what drifts over a night —
        carrier, biprism, lens — is smooth): a polynomial fitted to a whole
        field carries almost no noise. Measured on simulated Fourier series:
        frames referred through a second, Gaussian-smoothed reference had ~1.4×
        the ΔV scatter of those on the base reference.

        Returns
        -------
        ndarray (n_ref, oy, ox) complex64
        """
        from scipy import ndimage

        raw = [self.raw(np.asarray(refs.isel(time=i).values), fft_workers) for i in range(refs.sizes["time"])]
        base = 0 if ref_times is None else int(np.argmin(np.abs(np.asarray(ref_times) - base_time)))
        sigma = 2.0 if self.method == "fourier" else 4.0
        b = raw[base]
        smooth = (ndimage.gaussian_filter(b.real, sigma, mode="nearest")
                  + 1j * ndimage.gaussian_filter(b.imag, sigma, mode="nearest")).astype(np.complex64)
        out = [smooth if i == base else (smooth * _smooth_change(w, b)).astype(np.complex64)
               for i, w in enumerate(raw)]
        return np.stack(out)


def nearest_reference(times, ref_times, n_refs):
    """Index of the reference nearest in time to each time point (−1 everywhere without references)."""
    times = np.atleast_1d(np.asarray(times, float))
    if n_refs == 0:
        return np.full(times.size, -1)
    if ref_times is None or n_refs == 1:
        return np.zeros(times.size, int)
    return np.argmin(np.abs(times[:, None] - np.asarray(ref_times, float)[None, :]), axis=1)


class SeriesWaves:
    """``waves(k)``: the wave of time point ``k`` of a series (read on demand), as the plan's helpers call it."""

    def __init__(self, maker, holo, nearest, fft_workers=1):
        self.maker, self.holo, self.nearest, self.w = maker, holo, nearest, fft_workers
        self.out_shape = maker.out_shape

    def __call__(self, k, frame=None):
        frame = np.asarray(self.holo.isel(time=k).values) if frame is None else frame
        return self.maker.wave(frame, self.nearest[k], self.w)


def _align_constant(z, vac, ref=None):
    """Remove the constant phase of z (relative to ``ref``) over the vacuum: fringe-phase drift, gauge."""
    s = np.sum(z[vac] if ref is None else z[vac] * np.conj(ref[vac]))
    return z * np.conj(s / abs(s)) if abs(s) > 0 else z


def zero_state(waves, idx, vac):
    """Complex mean of the zero-bias waves after aligning their constant phases on the first."""
    first = waves(int(idx[0]))
    acc = first.astype(np.complex128)
    for k in idx[1:]:
        acc += _align_constant(waves(int(k)), vac, first)
    return (acc / len(idx)).astype(np.complex64)
