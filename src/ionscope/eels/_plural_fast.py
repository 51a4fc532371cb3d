# SPDX-License-Identifier: GPL-3.0-or-later
"""The Fourier-log deconvolution + GLS MLLS kernel, batched over pixels (issue 20).

The same mathematics as :func:`ionscope.eels._plural.fourier_log_kernel` (kept as the
slow reference that the tests compare with)
(Egerton §4.2.1 deconvolution, generalised least squares weighted by the
propagated variance, the sandwich standard errors — see :mod:`._plural`),
organised for throughput:

* blocks of pixels on threads (``scipy.fft`` and numpy release the GIL), one
  BLAS thread each;
* the complex logarithm of ``j/z`` as ``½·ln|r|²`` and ``atan2`` (real float64
  ufuncs; numpy's complex ``log`` costs ~15× more);
* the normal equations ``XᵀWX`` and ``XᵀWy`` as products of the weights with a
  precomputed table of column products (one BLAS call each) instead of
  ``einsum``;
* float64 where the Li map is made — the transforms of the counts and the
  log-spectrum, the inverse transform to single scattering, the fit — and
  float32 for the second-order quantities: the variance of the deconvolved
  counts (it only sets the weights, whose relative rounding error ~1e-7
  moves a weight by ~1e-7·σ) and the sandwich standard errors. The measured
  differences from the reference kernel are in ``tests/test_eels_plural_speed.py``
  and BENCHMARKS.md (issue 20);
* the element-wise work between the transforms in loops compiled by numba
  (:mod:`._plural_jit`, third pass: medians 2.6–2.8 → 2.1–2.4 CPU s per realistic
  128×128×1024 frame on one thread at load 3.5–7.5, BENCHMARKS.md); ``_NUMBA = False`` runs the
  numpy steps, the reference they are tested against
  (``tests/test_eels_plural_numba.py``);
* fourth pass: the GLS normal equations, the rows of ``G⁻¹`` and the exact NNLS
  enumeration by Cholesky in one compiled pass per pixel
  (:func:`._plural_jit.gls_cholesky`; ``_CHOLESKY = False`` keeps numpy's batched
  LU), the three float64 transforms by ducc0 where it is installed
  (``_DUCC = False`` keeps ``scipy.fft``), float32 counts read without a
  float64 copy (``tests/test_eels_plural_gls.py``; BENCHMARKS.md "limap kernel,
  fourth pass").

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), §4.2,
doi:10.1007/978-1-4419-9583-4.
"""
from __future__ import annotations

import numpy as np

from . import _lowloss, _plural_f32
from ._kernels import block_workers
from ._plural import design
from ._solve import MAX_ENUMERATED, nnls_batched, single_threaded_blas

#: pixels per block: (block × 2048) float64 work arrays of 1 MB, about one core's L2 cache. Measured on
#: one realistic 128×128×1024 frame, one thread, load 4–6 (issue 20, second pass; BENCHMARKS.md): 2.5–2.9
#: CPU s per frame at 32–64 pixels, 4.5–4.9 s at 128–256 (~20 work arrays of 2–4 MB spill the L2 and, with
#: both cores and other jobs, the shared L3), 4.0–4.5 s at 16 (per-block call overhead). The arithmetic is
#: per pixel: the block size moves only the float32 noise path's rounding (≤ 1e-6 of the maps' RMS)
_BLOCK = 64

#: private switch: ``False`` runs the numpy path (the reference the compiled kernels of :mod:`._plural_jit`
#: are tested against, ``tests/test_eels_plural_numba.py``); also used where numba cannot be imported
_NUMBA = True

#: private switch: ``False`` solves the GLS normal equations with numpy's batched LU (``inv``, ``solve``)
#: also on the compiled path; ``True`` by Cholesky in :func:`._plural_jit.gls_cholesky` (fourth pass)
_CHOLESKY = True

#: private switch: ``False`` takes the sandwich's zero-loss part by two inverse transforms per reference row (as the
#: third pass) where :meth:`_Context._sandwich_jit` could sum it directly (fourth pass)
_DIRECT_SANDWICH = True


#: private switch: ``False`` keeps the float64 transforms of the compiled path in ``scipy.fft``
_DUCC = True


def _ducc():
    """``ducc0`` (imported here: ``import ionscope`` never loads it) where installed and enabled, else None."""
    if not _DUCC:
        return None
    try:
        import ducc0
    except ImportError:  # optional: scipy.fft gives the same transforms to rounding, ~1.8× slower
        return None
    return ducc0


def _rfft64(x):
    """``scipy.fft.rfft(x, axis=1)`` of float64 rows, by ducc0 where installed. Why: 1.8–1.9× faster on a 64 × 2048
    block here (0.19 against 0.35 ms, BENCHMARKS.md "limap kernel, fourth pass"), the same values to ~1e-16 of
    the largest; its float32 transforms were slower than scipy's (the noise path keeps scipy.fft)."""
    d = _ducc()
    if d is None:
        from scipy import fft

        return fft.rfft(x, axis=1, workers=1)
    return d.fft.r2c(x, axes=(1,), nthreads=1)


def _irfft64(c, n):
    """``scipy.fft.irfft(c, n=n, axis=1)`` of complex128 rows, by ducc0 where installed (see :func:`_rfft64`)."""
    d = _ducc()
    if d is None:
        from scipy import fft

        return fft.irfft(c, n=n, axis=1, workers=1)
    return d.fft.c2r(c, axes=(1,), lastsize=n, forward=False, inorm=2, nthreads=1)


def _compiled():
    """:mod:`._plural_jit` (numba, imported here so that ``import ionscope.eels`` never loads it), or None."""
    if not _NUMBA:
        return None
    try:
        from . import _plural_jit
    except ImportError:  # pragma: no cover - numba is a dependency; the numpy path gives the same results
        return None
    return _plural_jit


def fourier_log_kernel(spectra, *, energy, channels, refs_ext, inner, basis, constrained, resolution_fwhm,
                       blur_refs, tail_fit_ev, var_scale=None, shift_idx=(), workers=None):
    """Fourier-log deconvolution + GLS fit of ``(..., n_energy)`` spectra; outputs as the reference kernel."""
    lead = spectra.shape[:-1]
    J = spectra.reshape(-1, spectra.shape[-1])
    M = refs_ext.shape[1]
    D = len(shift_idx)
    nb = 0 if basis is None else basis.shape[1]
    n_out = 2 * M + 3 + D + nb
    out = np.full((J.shape[0], n_out), np.nan)
    step = float(energy[1] - energy[0])
    X = design(refs_ext, inner, basis, step=step, fwhm=resolution_fwhm, blur=blur_refs, shift_idx=shift_idx)
    ctx = _Context(energy, channels, X, M, D, shift_idx, constrained, resolution_fwhm, tail_fit_ev, var_scale)
    with np.errstate(all="ignore"):
        ok = np.isfinite(J).all(axis=1) & (J.sum(axis=1, dtype=float) > 0)
    sel = np.flatnonzero(ok)
    blocks = [sel[s:s + _BLOCK] for s in range(0, sel.size, _BLOCK)]

    def run(idx):
        with single_threaded_blas():
            out[idx] = ctx.block(_rows(J, idx))

    n_workers = block_workers(len(blocks), workers)
    if n_workers > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(run, blocks))
    else:
        for idx in blocks:
            run(idx)
    return out.reshape(lead + (n_out,))


def _rows(J, idx):
    """``J[idx]`` for a block's sorted row indices: a view where they are one run (the usual case: every
    spectrum usable), so that a float32 frame is neither gathered nor converted before the compiled loops."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1:
        return np.ascontiguousarray(J[idx[0]:idx[-1] + 1])
    return np.ascontiguousarray(J[idx])


class _Context:
    """What every block shares: the FFT grid, filters, the design and its column-product table."""

    def __init__(self, energy, channels, X, M, D, shift_idx, constrained, resolution_fwhm, tail_fit_ev,
                 var_scale):
        e = np.asarray(energy, float)
        self.e = e
        self.n = n = e.size
        self.step = step = float(e[1] - e[0])
        self.n_fft = n_fft = _lowloss._next_pow2(2 * n)
        nu = np.fft.rfftfreq(n_fft, d=step)
        g = _lowloss.gaussian_ft(nu, resolution_fwhm)
        self.kc = kc = max(8, int(np.count_nonzero(g > 1e-18)))
        m0 = int(np.floor(e[0] / step + 1e-9))
        f = e[0] / step - m0
        # the reconvolution Gaussian and the sub-channel phase of the recorded axis, as one factor
        self.g_phase = g[:kc] * np.exp(2j * np.pi * f * step * nu[:kc])
        self.grid_idx = (m0 + np.asarray(channels)) % n_fft
        gi = self.grid_idx
        if gi.size and np.array_equal(gi, np.arange(gi[0], gi[0] + gi.size)):
            # a contiguous window (no wrap): a slice picks the same values as the index array without a
            # gather (a view for the SSD and the variance, a block copy for the sandwich)
            self.grid_idx = slice(int(gi[0]), int(gi[0]) + gi.size)
        # the window's first grid channel, where it is one run beyond the zero-loss channels (the sandwich's
        # direct zero-loss sums read K_z at g0 − cut … g0 + m − 1 without wrapping); else None
        self.g0 = None
        if isinstance(self.grid_idx, slice) and self.grid_idx.start >= _first_channels(e):
            self.g0 = self.grid_idx.start
        self.channels = np.asarray(channels)
        self.X = X
        self.XT = np.ascontiguousarray(X.T)
        m, K = X.shape
        self.K = K
        # precomputed normal-equation factors: XᵀWX = w @ (X_k·X_l), its K(K+1)/2 distinct entries for
        # every pixel in one product
        self.iu = np.triu_indices(K)
        self.XX = X[:, self.iu[0]] * X[:, self.iu[1]]
        self.M, self.D = M, D
        self.shift_idx = list(shift_idx)
        self.cons = np.concatenate([np.asarray(constrained, bool), np.zeros(K - len(constrained), bool)])
        self.cons_idx = np.flatnonzero(self.cons)
        self.tail_fit_ev = tail_fit_ev
        self.var_scale = None if var_scale is None else np.asarray(var_scale, float)
        self.idx = np.arange(n_fft)
        # the zero-loss peak and its cut lie within the first L channels (zlp_cut searches up to lim + 1)
        self.L = _first_channels(e)
        self.dof = max(1, self.channels.size - K)
        self.geom = _jit_geometry(e, n_fft, tail_fit_ev)
        self.grid_arr = np.asarray(gi, np.intp)
        self.scale_arr = np.empty(0) if self.var_scale is None else self.var_scale

    def block(self, J):
        jit = _compiled()
        if jit is None or self.geom is None:
            return self._block_numpy(np.asarray(J, float))
        # the compiled loops read float32 counts as they are (each value converts exactly to float64)
        return self._block_jit(jit, J if J.dtype in (np.float32, np.float64) else np.asarray(J, float))

    def _block_jit(self, jit, J):
        """:meth:`_block_numpy` with its element-wise passes in compiled loops (:mod:`._plural_jit`)."""
        n_fft, kc, nf = self.n_fft, self.kc, self.n_fft // 2 + 1
        J, i0, total, cut, Jx, zx = self._prepare_jit(jit, J)
        jf = _rfft64(Jx)
        zf = _rfft64(zx)
        del Jx, zx
        spec, h, hz = self._log_jit(jit, jf, zf)
        ssd = _irfft64(spec, n_fft)[:, self.grid_idx]
        # the noise in float32 where its rounding stays within budget, float64 for the rest (see _noise)
        var, filters, ok = self._noise_jit(jit, h, hz, J, cut)
        redo = np.flatnonzero(~ok)
        if redo.size:
            h64, hz64 = np.zeros((redo.size, nf), complex), np.zeros((redo.size, nf), complex)
            scratch = np.empty((3, redo.size, kc))
            jit.log_parts(jf[redo], zf[redo], kc, self.g_phase, *scratch, h64, hz64)
            var64, filters64, _ = self._noise_jit(jit, h64, hz64, J[redo], cut[redo])
            var[redo] = var64
        out, A = self._fit(ssd, var, i0, np.log(total / i0))
        vb = self._sandwich_jit(jit, A, *filters)
        if redo.size:
            vb[redo] = self._sandwich_jit(jit, A[redo], *filters64)
        out[:, self.M:2 * self.M] = np.sqrt(vb)
        return out

    def _prepare_jit(self, jit, J):
        """:func:`_prepare` (and the zero-loss part of the counts), compiled; the extension's ``exp`` by numpy."""
        g = self.geom
        if not g["no_dark"]:
            J = np.asarray(J, float)
            off = _lowloss.dark_offset(J, self.e)
            if np.any(off):
                J = J - off[:, None]
        P, n = J.shape
        Jx = np.empty((P, self.n_fft))
        zx = np.zeros((P, self.n_fft))
        i0, total, cut, amp = np.empty(P), np.empty(P), np.empty(P, np.intp), np.empty(P)
        jit.prepare(J, g["near_lo"], g["near_hi"], g["lim"], g["m"], g["halves"], g["emid1"], g["emid2"],
                    g["e_end"], self.step, g["log_e_ext"], Jx, zx, i0, total, cut, amp)
        ext = Jx[:, n:]
        np.exp(ext, out=ext)
        ext *= amp[:, None]
        ext *= g["taper"]
        return J, i0, total, cut, Jx, zx

    def _log_jit(self, jit, jf, zf):
        """The reconvolved log-spectrum (complex128) and the float32 noise filters h, h_z from the transforms."""
        P, kc, nf = jf.shape[0], self.kc, self.n_fft // 2 + 1
        h, hz = np.zeros((P, nf), np.complex64), np.zeros((P, nf), np.complex64)
        q_re, q_im, ratio = np.empty((P, kc)), np.empty((P, kc)), np.empty((P, kc))
        jit.log_parts(jf, zf, kc, self.g_phase, q_re, q_im, ratio, h, hz)
        # the transcendental functions with numpy's vectorised ufuncs, on contiguous arrays (see log_parts)
        np.arctan2(q_im, q_re, out=q_im)
        np.log(ratio, out=ratio)
        spec = np.zeros((P, nf), complex)
        jit.log_spectrum(zf, ratio, q_im, self.g_phase, spec)
        return spec, h, hz

    def _noise_jit(self, jit, h, hz, J, cut):
        """:meth:`_noise` from the filters, in their precision, with compiled element-wise steps."""
        from . import _plural_f32 as fft  # scipy.fft's transforms, bit for bit, without its per-call overhead

        P, n_fft = J.shape[0], self.n_fft
        dtype = h.real.dtype
        vn, vz = np.zeros((P, n_fft), dtype), np.zeros((P, n_fft), dtype)
        jit.count_variance(J, self.scale_arr, cut, vn, vz)
        spectra = []
        kz = None
        for filt, v in ((h, vn), (hz, vz)):
            k2 = fft.irfft(filt, n=n_fft, axis=1, workers=1)
            if filt is hz and self.g0 is not None and _DIRECT_SANDWICH:
                kz = k2.copy()  # K_z itself, for the sandwich's direct zero-loss sums
            jit.square(k2)
            spectra += [fft.rfft(k2, axis=1, workers=1), fft.rfft(v, axis=1, workers=1)]
        jit.multiply_add(*spectra)
        full = fft.irfft(spectra[0], n=n_fft, axis=1, workers=1)
        var, bound = np.empty((P, self.grid_arr.size)), np.empty(P)
        jit.variance_at(full, self.grid_arr, 4.0 * float(np.finfo(np.float32).eps), var, bound)
        ok = bound <= 5e-5 if dtype == np.float32 else np.ones(P, bool)
        return var, (h, hz, vn, vz, kz, cut), ok

    def _sandwich_jit(self, jit, A, h, hz, vn, vz, kz, cut):
        """:meth:`_sandwich` with compiled products and weighted squares (float64 sums). With ``kz`` (``K_z``, fourth
        pass) the zero-loss part is summed directly over the zero-loss channels
        (:func:`._plural_jit.zero_loss_sandwich`) instead of by two inverse transforms per reference row: σ moves by
        rounding only (tested)."""
        from . import _plural_f32 as fft  # scipy.fft's transforms, bit for bit, without its per-call overhead

        P, n_fft = A.shape[0], self.n_fft
        full = np.zeros((P, self.M, n_fft), vn.dtype)
        full[:, :, self.grid_idx] = A
        af = fft.rfft(full, axis=2, workers=1)
        prod = np.empty_like(af)
        vb = np.zeros((P, self.M))
        parts = ((h, vn, self.n),) if kz is not None else ((h, vn, self.n), (hz, vz, self.L))
        for filt, v, m in parts:
            jit.times_conj(af, filt, prod)
            u = fft.irfft(prod, n=n_fft, axis=2, workers=1)
            jit.weighted_squares(u, v, m, vb)
        if kz is not None:
            jit.zero_loss_sandwich(full[:, :, self.grid_idx], kz, vz, cut, self.g0, vb)
        return vb

    def _block_numpy(self, J):
        from scipy import fft

        # the steps of _lowloss.fourier_log_block, in the same order (see _prepare for the first ones)
        n_fft, kc, nf, L = self.n_fft, self.kc, self.n_fft // 2 + 1, self.L
        J, i0, total, cut, Jx = _prepare(J, self.e, n_fft=n_fft, tail_fit_ev=self.tail_fit_ev)
        P = J.shape[0]
        zmask = self.idx[None, :L] <= cut[:, None]
        zx = np.zeros((P, n_fft))
        zx[:, :L] = np.where(zmask, J[:, :L], 0.0)
        jf = fft.rfft(Jx, axis=1, workers=1)[:, :kc]
        zf = fft.rfft(zx, axis=1, workers=1)[:, :kc]
        i0f = zf[:, :1].real
        # a transform can vanish by chance: floor |·| at 1e-12·I0 (as the reference; compared squared)
        tiny = 1e-12 * np.abs(i0f)
        a2j = jf.real**2 + jf.imag**2
        a2z = zf.real**2 + zf.imag**2
        for f, a2 in ((jf, a2j), (zf, a2z)):
            low = a2 <= tiny**2
            if low.any():
                f[low] = np.broadcast_to(tiny, f.shape)[low]
                a2[low] = np.broadcast_to(tiny**2, a2.shape)[low]
        # 1/j and 1/z (the deconvolution filters below use them too)
        inv_j = _conj_over(jf, a2j)
        inv_z = _conj_over(zf, a2z)
        # the principal log of j/z with real ufuncs: ln|j/z| = ½·ln(|j|²/|z|²), arg(j/z) = arg(j·(1/z)),
        # written into the spectrum's parts directly (no temporaries)
        spec = np.zeros((P, nf), complex)
        s = spec[:, :kc]
        q = jf * inv_z
        np.arctan2(q.imag, q.real, out=s.imag)
        # the modulus on contiguous arrays (numpy's strided loops are scalar), then into the real parts
        r = np.divide(a2j, a2z)
        np.log(r, out=r)
        r *= 0.5
        s.real = r
        c = i0f * self.g_phase
        s *= c
        ssd = fft.irfft(spec, n=n_fft, axis=1, workers=1)[:, self.grid_idx]
        # the noise, float32 for the pixels whose rounding stays within budget, float64 for the rest
        var, filters, ok = self._noise(np.float32, c, inv_j, inv_z, J, zmask)
        redo = np.flatnonzero(~ok)
        if redo.size:
            var64, filters64, _ = self._noise(np.float64, c[redo], inv_j[redo], inv_z[redo], J[redo], zmask[redo])
            var[redo] = var64
        out, A = self._fit(ssd, var, i0, np.log(total / i0))
        vb = self._sandwich(A, *filters)
        if redo.size:
            vb[redo] = self._sandwich(A[redo], *filters64)
        out[:, self.M:2 * self.M] = np.sqrt(vb)
        return out

    def _noise(self, dtype, c, inv_j, inv_z, J, zmask):
        """Variance of the deconvolved counts at the fit channels, the filters, and which pixels it holds for.

        δSSD = c·(δj/j − δz/z): the filter h = c/j acts on the counts outside the zero-loss
        peak (v_n), h_z = c/j − c/z on those inside it (v_z); the variance is
        ``K² ⊛ v_n + K_z² ⊛ v_z`` with K, K_z the impulse responses. In float32 an FFT
        convolution's rounding is ≲ 4·ε·(its largest value) in every channel (measured
        1.5–3.5·ε), so the fit channels, far below the zero-loss channels' variance, get
        4·ε·max/min relative error: float32 holds for a pixel when that bound is ≤ 5e-5 (it
        moves the GLS weights, hence the maps by ≲ 1e-5 of their RMS, measured in
        tests/test_eels_plural_speed.py); the caller redoes the other pixels in float64. The
        decision is per pixel, so results do not depend on how pixels are grouped.
        """
        from scipy import fft

        P, n, n_fft, kc, L = J.shape[0], self.n, self.n_fft, self.kc, self.L
        nf = n_fft // 2 + 1
        c_t = np.result_type(dtype, np.complex64)
        h = np.zeros((P, nf), c_t)
        hz = np.zeros((P, nf), c_t)
        np.multiply(c, inv_j, out=h[:, :kc], casting="same_kind")
        np.multiply(c, inv_z, out=hz[:, :kc], casting="same_kind")
        np.subtract(h[:, :kc], hz[:, :kc], out=hz[:, :kc])
        vn = np.zeros((P, n_fft), dtype)
        np.clip(J, 0.0, None, out=vn[:, :n], casting="same_kind")
        if self.var_scale is not None:
            vn[:, :n] *= self.var_scale
        vz = np.zeros((P, n_fft), dtype)
        vz[:, :L] = np.where(zmask, vn[:, :L], 0.0)
        vn[:, :L] -= vz[:, :L]
        acc = None
        for filt, v in ((h, vn), (hz, vz)):
            k2 = fft.irfft(filt, n=n_fft, axis=1, workers=1)
            k2 *= k2
            t = fft.rfft(k2, axis=1, workers=1)
            t *= fft.rfft(v, axis=1, workers=1)
            acc = t if acc is None else acc.__iadd__(t)
        full = fft.irfft(acc, n=n_fft, axis=1, workers=1)
        var = np.clip(full[:, self.grid_idx], 0.0, None).astype(float)
        ok = np.ones(P, bool)
        if dtype == np.float32:
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = 4 * np.finfo(np.float32).eps * np.abs(full).max(axis=1) / var.min(axis=1)
            ok = bound <= 5e-5
        return var, (h, hz, vn, vz), ok

    def _sandwich(self, A, h, hz, vn, vz):
        """Variance of ``A @ SSD`` per pixel (A: (P, M, m)): the sandwich A·K·diag(J)·Kᵀ·Aᵀ,
        as :func:`_lowloss.sandwich_variance`, in the precision of the filters."""
        from scipy import fft

        P, n_fft = A.shape[0], self.n_fft
        full = np.zeros((P, self.M, n_fft), vn.dtype)
        full[:, :, self.grid_idx] = A
        af = fft.rfft(full, axis=2, workers=1)
        vb = np.zeros((P, self.M))
        # the counts' variance is zero beyond the recorded channels (v_n) and the zero-loss channels
        # (v_z): square and sum only where it is not (the same terms, a float32 sum in another order)
        for filt, v, m in ((h, vn, self.n), (hz, vz, self.L)):
            u = fft.irfft(af * np.conj(filt)[:, None, :], n=n_fft, axis=2, workers=1)[..., :m]
            np.square(u, out=u)
            vb += (u @ v[:, :m, None])[..., 0]
        return vb

    def _fit(self, y, var, i0, thickness):
        M, D, K, X = self.M, self.D, self.K, self.X
        P = y.shape[0]
        # weights: inverse propagated variance, smoothed (no noise-weight correlation) and floored so a
        # channel can never dominate — as the reference kernel (_ssdfit.weight_variance; its transforms in float32)
        var = _plural_f32.weight_variance(var, self.channels, self.step)
        w = 1.0 / var
        Gu = w @ self.XX
        b = (w * y) @ X
        jit = _compiled() if _CHOLESKY and self.cons_idx.size <= MAX_ENUMERATED else None
        if jit is None:
            beta, Ginv = self._solve(Gu, b)
        else:
            # every pixel by Cholesky, NNLS included (compiled); where a pivot fails, numpy's LU as before
            beta, Ginv, ok = np.empty((P, K)), np.empty((P, M, K)), np.empty(P, bool)
            jit.gls_cholesky(Gu, self.iu[0], self.iu[1], b, M, self.cons_idx, beta, Ginv, ok)
            redo = np.flatnonzero(~ok)
            if redo.size:
                beta[redo], Ginv[redo] = self._solve(Gu[redo], b[redo])
        # A = G⁻¹XᵀW (rows of the references): coefficients as linear functionals of the SSD
        A = (Ginv[:, :M, :] @ self.XT) * w[:, None, :]
        resid = y - beta @ self.XT
        out = np.empty((P, M + 3 + K))
        out[:, :M] = beta[:, :M]
        out[:, 2 * M] = np.einsum("pn,pn->p", w, resid * resid) / self.dof
        out[:, 2 * M + 1] = thickness
        out[:, 2 * M + 2] = i0
        for j, i in enumerate(self.shift_idx):
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, 2 * M + 3 + j] = -beta[:, M + j] / beta[:, i]
        out[:, 2 * M + 3 + D:] = beta[:, M + D:]
        return out, A

    def _solve(self, Gu, b):
        """The GLS coefficients (NNLS where constrained) and the first M rows of ``G⁻¹`` with numpy's LU."""
        P, K = b.shape
        G = np.empty((P, K, K))
        G[:, self.iu[0], self.iu[1]] = Gu
        G[:, self.iu[1], self.iu[0]] = Gu
        Ginv = np.linalg.inv(G + 1e-12 * np.einsum("pii->pi", G)[:, :, None] * np.eye(K))
        if self.cons.any():
            beta = nnls_batched(G, b, self.cons)
        else:
            # the unconstrained solution with the same 1e-12 ridge as nnls_batched's solve
            beta = (Ginv @ b[:, :, None])[..., 0]
        return beta, Ginv[:, :self.M]


def _conj_over(f, a2):
    """``conj(f) / a2`` for a real ``a2 > 0``, as numpy's complex division computes it.

    numpy divides by ``a2 + 0j`` with Smith's method, which for a zero imaginary
    part multiplies each part by ``1 / a2``; here with real ufuncs on the parts,
    without casting ``a2`` to complex (measured 1.4× faster on a 64-pixel block;
    the same values, bit for bit).
    """
    r = np.divide(1.0, a2)
    out = np.empty(f.shape, f.dtype)
    np.multiply(f.real, r, out=out.real)
    np.multiply(f.imag, r, out=out.imag)
    np.negative(out.imag, out=out.imag)
    return out


def _jit_geometry(e, n_fft, tail_fit_ev, *, search_ev=5.0, max_cut_ev=15.0):
    """What :func:`._plural_jit.prepare` needs of the axis (as :func:`_prepare`'s steps compute it), or None
    where the compiled path does not apply (no channel near 0 eV: the numpy path raises the error)."""
    near = np.flatnonzero(np.abs(e) < search_ev)
    n = e.size
    if near.size == 0 or n < 16 or not np.array_equal(near, np.arange(near[0], near[-1] + 1)):
        return None
    step = float(e[1] - e[0])
    lim = min(n - 2, int(near[-1] + max_cut_ev / step))
    m = min(max(8, int(round(tail_fit_ev / step))), n // 4)
    halves = m // 2
    extra = n_fft - n
    e_ext = e[-1] + step * np.arange(1, extra + 1)
    taper = np.ones(extra)
    k = extra // 2
    taper[k:] = 0.5 * (1 + np.cos(np.pi * np.arange(extra - k) / max(1, extra - k)))
    # no spectrum can have dark_offset's 20 channels 10 eV below its peak (which lies in near): its offset is 0
    no_dark = bool(np.all(np.diff(e) > 0) and np.searchsorted(e, e[near[-1]] - 10.0) < 20)
    return {"no_dark": no_dark, "near_lo": int(near[0]), "near_hi": int(near[-1]), "lim": lim, "m": m, "halves": halves,
            "emid1": float(np.sqrt(e[-m] * e[-halves - 1])), "emid2": float(np.sqrt(e[-halves] * e[-1])),
            "e_end": float(e[-1] + 0.5 * step), "log_e_ext": np.log(e_ext), "taper": taper}


def _first_channels(e, *, search_ev=5.0, max_cut_ev=15.0):
    """Channels that hold every zero-loss peak and its cut (:func:`_lowloss.zlp_cut`'s search limit + 4)."""
    near = np.flatnonzero(np.abs(e) < search_ev)
    if near.size == 0:
        return e.size
    step = float(e[1] - e[0])
    lim = min(e.size - 2, int(near[-1] + max_cut_ev / step))
    return min(e.size, lim + 4)


def _zlp_cut(J, e, L):
    """:func:`_lowloss.zlp_cut` on the first ``L`` channels only (the cut never lies beyond them).

    The smoothed spectrum at channel i uses channels i − 2 … i + 2, and the cut
    search compares channels up to ``lim + 1``, so the first ``lim + 4`` channels
    give the same cut; rows whose half-maximum crossing lies beyond them
    (no zero-loss peak there) are redone on the whole row.
    """
    if L >= e.size:
        return _lowloss.zlp_cut(J, e)
    peak, cut = _lowloss.zlp_cut(J[:, :L], e[:L])
    # the reference searches the whole row for the half-maximum crossing
    rows = np.arange(J.shape[0])
    half = J[rows, peak] / 2.0
    idx = np.arange(L)
    found = ((J[:, :L] < half[:, None]) & (idx[None] > peak[:, None])).any(axis=1)
    redo = np.flatnonzero(~found)
    if redo.size:
        peak[redo], cut[redo] = _lowloss.zlp_cut(J[redo], e)
    return peak, cut


def _prepare(J, e, *, n_fft, tail_fit_ev):
    """Dark offset, I0, I_t, the zero-loss cut and the extended spectra — :func:`_lowloss.fourier_log_block`'s
    first steps, on the channels each needs (same results to rounding)."""
    off = _lowloss.dark_offset(J, e)
    if np.any(off):
        J = J - off[:, None]
    L = _first_channels(e)
    _, cut = _zlp_cut(J, e, L)
    i0 = np.where(np.arange(L)[None] <= cut[:, None], J[:, :L], 0.0).sum(axis=1)
    step = float(e[1] - e[0])
    a1, a2, emid1, emid2, halves = _lowloss._tail_windows(J, e, tail_fit_ev)
    tail = _tail(a1, a2, emid1, emid2, halves, e, step)
    total = J.sum(axis=1) + tail
    P, n = J.shape
    Jx = np.empty((P, n_fft))
    Jx[:, :n] = J
    extra = n_fft - n
    if extra > 0:
        A, r = _lowloss._two_area(a1, a2, emid1, emid2, halves)
        e_ext = e[-1] + step * np.arange(1, extra + 1)
        taper = np.ones(extra)
        k = extra // 2
        taper[k:] = 0.5 * (1 + np.cos(np.pi * np.arange(extra - k) / max(1, extra - k)))
        # A·E^−r as exp(−r·ln E) (one exp per value; a per-row power costs ~10× more)
        ext = np.multiply.outer(-r, np.log(e_ext))
        np.exp(ext, out=ext)
        ext *= A[:, None]
        ext *= taper
        Jx[:, n:] = ext
    return J, i0, total, cut, Jx


def _tail(a1, a2, emid1, emid2, halves, e, step):
    """:func:`_lowloss.tail_beyond`'s tail (counts beyond the last channel), from its window sums."""
    A, r = _lowloss._two_area(a1, a2, emid1, emid2, halves)
    e_end = e[-1] + 0.5 * step
    return A * e_end ** (1.0 - r) / (r - 1.0) / step
