# SPDX-License-Identifier: GPL-3.0-or-later
"""Compiled element-wise kernels of the batched Fourier-log + GLS kernel (issue 20, third pass).

Why our own: between its 16 transforms (``scipy.fft``, kept), the numpy version of
:mod:`._plural_fast` makes ~60 one-operation passes over every 64-pixel block. Measured on one
realistic 128×128×1024 frame, one thread (BENCHMARKS.md, "limap kernel, second pass"): the complex
log and filters 0.51 s against a 0.04 s floor, the zero-loss alignment and padding 0.36 s, the noise
weights' element-wise work 0.23 s and the sandwich's 0.17 s. Here each of those is one loop per
pixel that reads its inputs once, compiled by numba (LLVM). The third-pass numbers are in BENCHMARKS.md.

* ``nogil=True``: the kernel's pixel blocks run on threads (as the transforms do);
* ``cache=True``: the machine code is written next to this file, or where that is read-only to
  numba's user-wide cache folder (``NUMBA_CACHE_DIR``), so later processes load it (BENCHMARKS.md);
* no ``fastmath`` (but for :func:`zero_loss_sandwich`'s reassociated float32 dot products, sixth pass, which
  only σ depends on): IEEE arithmetic, the same operations as the numpy path, except that sums run in
  another order (sequential instead of numpy's pairwise; I0 and I_t move by ~1e-16) and that the
  float32 noise path's complex products round as the plain formula does, while numpy's vectorised
  complex64 product differs from it in the last bit for ~24 % of products (measured). The propagated
  variance then differs by ≤ 3e-6 relative (median 8e-8), the Li and Co maps by ≤ 4e-6 of their
  RMS, σ by ≤ 1.5e-6 relative — the float32 path's own budget (1e-5); ``tests/test_eels_plural_numba.py``
  compares the two paths.

This module imports numba at the top: it is imported only inside :mod:`._plural_fast`'s functions,
so ``import ionscope`` and ``import ionscope.eels`` never load numba.
"""
from __future__ import annotations

import math

import numba
import numpy as np


def _jit(fn, **options):
    """``numba.njit(cache=True, nogil=True, error_model="numpy")``; without a writable cache location (a read-only
    package and no writable user cache folder: numba raises at decoration) the kernels are compiled in each process
    instead. ``error_model="numpy"`` (sixth pass): a float division by zero gives inf/NaN as numpy's does instead of
    raising, so the compiler drops the per-division zero test that kept :func:`log_parts`' loops scalar — the same
    bits (tested), 0.14–0.155 → 0.105–0.108 CPU-s per realistic frame there (BENCHMARKS.md). No kernel here divides
    by a value that can be zero on usable spectra (the divisors are floored, positive pivots or constants)."""
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy", **options)(fn)
    except RuntimeError:
        return numba.njit(nogil=True, error_model="numpy", **options)(fn)


@_jit
def prepare(J, near_lo, near_hi, lim, m, halves, emid1, emid2, e_end, step, log_e_ext,
            Jx, zx, i0, total, cut, amp):
    """Zero-loss cut, I0, the tail beyond the range, I_t and the padded spectra, one pass per pixel.

    The same steps as :func:`._plural_fast._prepare` (after the dark offset): the peak is the largest
    channel with ``|E| < 5 eV`` (``near_lo…near_hi``), the cut the first rising channel of the
    5-channel running mean (reflected edges, cumulative sums in numpy's order, so the same cut) at
    least one half-width above the half-maximum crossing, at most ``lim``; the tail the two-area power
    law of the last ``m`` channels. ``Jx`` gets the counts and, beyond them, the extension's exponent
    ``−r·ln E`` (the caller takes numpy's vectorised ``exp`` and multiplies by ``amp`` = A and the taper:
    a scalar ``exp`` here cost 0.1 s per frame); ``zx`` (zeroed by the caller) the zero-loss channels.
    Why our own: the numpy steps cost 0.27–0.28 s per realistic frame, this 0.14 s (BENCHMARKS.md).
    """
    P, n = J.shape
    n_ext = log_e_ext.size
    c = np.empty(lim + 8)
    acc = np.empty(8)
    for p in range(P):
        row = J[p]
        peak = near_lo
        for i in range(near_lo + 1, near_hi + 1):
            if row[i] > row[peak]:
                peak = i
        half = row[peak] / 2.0
        start = peak + 1
        for i in range(peak + 1, n):
            if row[i] < half:
                start = i
                break
        # cumulative sums of the reflected row (numpy's cumsum order), for the running mean up to lim + 1
        c[0] = 0.0
        for k in range(lim + 7):
            j = k - 2
            if j < 0:
                j = -j
            elif j > n - 1:
                j = 2 * (n - 1) - j
            c[k + 1] = c[k] + row[j]
        lo = start + (start - peak)
        ct = -1
        for i in range(max(lo, 0), lim + 1):
            if (c[i + 6] - c[i + 1]) / 5 > (c[i + 5] - c[i]) / 5:
                ct = i
                break
        if ct < 0:
            ct = min(lim, start + 3 * (start - peak))
        cut[p] = ct
        s0 = 0.0
        for i in range(ct + 1):
            s0 += row[i]
            zx[p, i] = row[i]
        i0[p] = s0
        a1 = 0.0
        for i in range(n - m, n - halves):
            a1 += row[i]
        a2 = 0.0
        for i in range(n - halves, n):
            a2 += row[i]
        a1 = max(a1, 1e-12)
        a2 = max(a2, 1e-12)
        r = min(max(math.log(a1 / a2) / math.log(emid2 / emid1), 1.5), 7.0)
        A = a2 / halves * emid2**r
        # the copy, then the sum in eight interleaved partial sums over a contiguous row view (both loops
        # vectorise; one sequential sum cannot): I_t moves by ~1e-16 relative
        xrow = Jx[p]
        for i in range(n):
            xrow[i] = row[i]
        for lane in range(8):
            acc[lane] = 0.0
        nb = n // 8
        for b in range(nb):
            seg = xrow[8 * b:8 * b + 8]
            for lane in range(8):
                acc[lane] += seg[lane]
        for i in range(8 * nb, n):
            acc[0] += xrow[i]
        s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        total[p] = s + A * e_end ** (1.0 - r) / (r - 1.0) / step
        amp[p] = A
        for k in range(n_ext):
            Jx[p, n + k] = -r * log_e_ext[k]


@_jit
def log_parts(jf, zf, kc, g_phase, qr, qi, ratio, h, hz):
    """The arguments of the log-spectrum and the noise filters, one pass over the two transforms.

    A transform whose ``|·|`` falls to ``1e-12·I0`` is floored there (as the reference). Writes
    ``q = j·(1/z)`` (its phase is arg(j/z)), ``|j|²/|z|²`` (½·its log is ln|j/z|), and the filters
    ``h = c/j``, ``h_z = c/j − c/z`` (``c = I0·g·phase``) in their arrays' precision, ``h_z`` as the
    difference of the two rounded filters (as the numpy path). Only the first ``kc`` frequencies.
    The logarithm and ``atan2`` are left to numpy's vectorised ufuncs: scalar libm calls here cost
    8× more (measured 1.7 vs 0.2 ms per 64×1025 block). Why our own: the log step with its filters cost
    0.46–0.47 s per realistic frame in numpy passes, 0.22–0.25 s with this and :func:`log_spectrum`.
    Three passes per pixel over row buffers (fourth pass): the floored parts, planar; the signal path's
    parts; the filters — each loop touches fewer arrays, the same operations (the same bits; 0.115 →
    0.100 s per frame).
    """
    P = jf.shape[0]
    gre, gim = np.empty(kc), np.empty(kc)
    for k in range(kc):
        gre[k] = g_phase[k].real
        gim[k] = g_phase[k].imag
    jr_, ji_, zr_, zi_ = np.empty(kc), np.empty(kc), np.empty(kc), np.empty(kc)
    a2j_, a2z_, izr_, izi_ = np.empty(kc), np.empty(kc), np.empty(kc), np.empty(kc)
    for p in range(P):
        i0f = zf[p, 0].real
        tiny = 1e-12 * abs(i0f)
        t2 = tiny * tiny
        jrow, zrow = jf[p], zf[p]
        for k in range(kc):
            jr, ji = jrow[k].real, jrow[k].imag
            a2j = jr * jr + ji * ji
            low = a2j <= t2
            jr_[k] = tiny if low else jr
            ji_[k] = 0.0 if low else ji
            a2j_[k] = t2 if low else a2j
            zr, zi = zrow[k].real, zrow[k].imag
            a2z = zr * zr + zi * zi
            low = a2z <= t2
            zr_[k] = tiny if low else zr
            zi_[k] = 0.0 if low else zi
            a2z_[k] = t2 if low else a2z
        qrr, qir, rr = qr[p], qi[p], ratio[p]
        for k in range(kc):
            rz = 1.0 / a2z_[k]
            izr, izi = zr_[k] * rz, -(zi_[k] * rz)
            izr_[k], izi_[k] = izr, izi  # 1/z, kept for the filters (sixth pass: one division less)
            qrr[k] = jr_[k] * izr - ji_[k] * izi
            qir[k] = jr_[k] * izi + ji_[k] * izr
            rr[k] = a2j_[k] / a2z_[k]
        hrow, hzrow = h[p], hz[p]
        for k in range(kc):
            rj = 1.0 / a2j_[k]
            ijr, iji = jr_[k] * rj, -(ji_[k] * rj)
            izr, izi = izr_[k], izi_[k]
            cr, ci = i0f * gre[k], i0f * gim[k]
            hrow[k] = complex(cr * ijr - ci * iji, cr * iji + ci * ijr)
            hzrow[k] = complex(cr * izr - ci * izi, cr * izi + ci * izr)
            hzrow[k] = hrow[k] - hzrow[k]


@_jit
def log_spectrum(zf, log_ratio, angle, g_phase, spec):
    """The reconvolved log-spectrum ``c·(½·ln(|j|²/|z|²) + i·arg(j/z))`` into the first columns of ``spec``."""
    P, kc = angle.shape
    for p in range(P):
        i0f = zf[p, 0].real
        for k in range(kc):
            lm = 0.5 * log_ratio[p, k]
            ang = angle[p, k]
            cr = i0f * g_phase[k].real
            ci = i0f * g_phase[k].imag
            spec[p, k] = complex(lm * cr - ang * ci, lm * ci + ang * cr)


@_jit
def count_variance(J, var_scale, cut, vn, vz):
    """The counts' Poisson variance split at the zero-loss cut: ``v_z`` (channels ≤ cut), ``v_n`` (the rest).

    ``max(J, 0)`` (times ``var_scale`` when it is not empty), rounded to the arrays' precision as the
    numpy path rounds it; ``vn`` and ``vz`` are zeroed by the caller. Why our own (with :func:`square`,
    :func:`multiply_add`, :func:`variance_at`): the noise weights' element-wise work cost 0.21–0.22 s per
    realistic frame in ~12 numpy passes, 0.08–0.10 s in these four loops.
    """
    P, n = J.shape
    scaled = var_scale.size > 0
    for p in range(P):
        ct = cut[p]
        for i in range(n):
            # written, then scaled in place: the rounding of numpy's clip-into-float32 and ``*=``
            out = vz if i <= ct else vn
            out[p, i] = max(J[p, i], 0.0)
            if scaled:
                out[p, i] = out[p, i] * var_scale[i]


@_jit
def multiply_add(a, b, c, d):
    """``a·b + c·d`` into ``a`` (the two convolutions' spectra summed), in the arrays' precision."""
    P, nf = a.shape
    for p in range(P):
        for k in range(nf):
            a[p, k] = a[p, k] * b[p, k] + c[p, k] * d[p, k]


@_jit
def square(x):
    """``x²`` in place."""
    P, n = x.shape
    for p in range(P):
        for i in range(n):
            x[p, i] = x[p, i] * x[p, i]


@_jit
def variance_at(full, grid, bound_eps, var, bound):
    """``max(full, 0)`` at the fit channels (as float64) and the float32 rounding bound per pixel.

    The bound is ``4·ε·max|full| / min(var)`` (see :meth:`._plural_fast._Context._noise`).
    """
    P, n_fft = full.shape
    acc = np.zeros(8, full.dtype)
    nb = n_fft // 8
    for p in range(P):
        # max|full| in eight interleaved running maxima over a contiguous row view (vectorises; a maximum
        # does not depend on the order: the same value, measured 24 → 13 ms per frame)
        row = full[p]
        acc[:] = 0
        for b in range(nb):
            seg = row[8 * b:8 * b + 8]
            for lane in range(8):
                a = abs(seg[lane])
                acc[lane] = a if a > acc[lane] else acc[lane]
        mx = 0.0
        for lane in range(8):
            if acc[lane] > mx:
                mx = acc[lane]
        for i in range(8 * nb, n_fft):
            a = abs(row[i])
            if a > mx:
                mx = a
        mn = np.inf
        for j in range(grid.size):
            x = full[p, grid[j]]
            v = np.float64(x) if x > 0 else 0.0
            var[p, j] = v
            if v < mn:
                mn = v
        bound[p] = bound_eps * mx / mn if mn > 0 else np.inf


@_jit
def times_conj(af, filt, out):
    """``af[p, j]·conj(filt[p])`` for every reference row ``j`` of every pixel ``p``.

    Why our own (with :func:`weighted_squares`): no broadcast temporaries of ``conj(filt)``; the sandwich's
    element-wise work cost 0.13–0.15 s per realistic frame in numpy, 0.09–0.13 s here.
    """
    P, M, nf = af.shape
    for p in range(P):
        for j in range(M):
            for k in range(nf):
                out[p, j, k] = af[p, j, k] * filt[p, k].conjugate()


@_jit
def weighted_squares(u, v, m, vb):
    """``vb[p, j] += Σ_{i<m} u[p, j, i]²·v[p, i]`` (the sandwich's diagonal), summed in float64."""
    P, M, _ = u.shape
    acc = np.zeros(8)
    nb = m // 8
    for p in range(P):
        vr = v[p]
        for j in range(M):
            # eight interleaved partial sums (i ≡ l mod 8), added pairwise at the end: the inner loop over
            # contiguous row views vectorises, where one sequential sum cannot (IEEE order); the same terms,
            # summed in another order (~1e-15 relative); measured 0.028 → 0.016 s per frame
            ur = u[p, j]
            acc[:] = 0.0
            for b in range(nb):
                seg = ur[8 * b:8 * b + 8]
                vs = vr[8 * b:8 * b + 8]
                for lane in range(8):
                    x = np.float64(seg[lane])
                    acc[lane] += x * x * np.float64(vs[lane])
            for i in range(8 * nb, m):
                x = np.float64(ur[i])
                acc[0] += x * x * np.float64(vr[i])
            vb[p, j] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))




@_jit
def _factor(G, free, nf, L):
    """Cholesky ``L`` of ``G[free][:, free]`` (the first ``nf`` entries of ``free``), with the relative 1e-12
    ridge on the diagonal (as :func:`._solve._ridge`); False where a pivot is not positive."""
    for j in range(nf):
        s = G[free[j], free[j]]
        s = s + 1e-12 * s
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, nf):
            s = G[free[i], free[j]]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / d
    return True


@_jit
def _substitute(L, nf, y):
    """``y ← (LLᵀ)⁻¹ y`` on its first ``nf`` entries (forward, then back substitution)."""
    for i in range(nf):
        s = y[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    for i in range(nf - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, nf):
            s -= L[k, i] * y[k]
        y[i] = s / L[i, i]


@_jit
def gls_cholesky(Gu, iu0, iu1, b, M, cons, beta, ginv, ok):
    """The GLS coefficients (exact NNLS for the unknowns ``cons``) and the first ``M`` rows of ``G⁻¹`` per pixel.

    ``G`` (K×K, symmetric) is filled from its upper triangle ``Gu[p]`` (entries at ``iu0``, ``iu1``);
    every system gets the relative 1e-12 ridge of :func:`._solve._ridge` and is solved by Cholesky.
    Where the unconstrained optimum has a negative constrained unknown, the active sets are enumerated as
    :func:`._solve.nnls_batched` does (the same candidates in the same order, the feasible one with the
    lowest ``−bᵀx``). ``ok[p]`` is False where a pivot is not positive (the caller solves those pixels with
    numpy's LU). Why our own: numpy's batched ``inv``, ``solve`` and the enumeration's masked solves cost
    ~0.15 s per realistic 128×128 frame, mostly per-call and per-matrix overhead on 7×7 systems; this is
    one pass per pixel. The result is the LU solution's to rounding (~cond·ε).
    """
    P, K = b.shape
    m = cons.size
    G = np.empty((K, K))
    L = np.zeros((K, K))
    y = np.empty(K)
    free = np.arange(K)
    fmap = np.empty(K, np.intp)
    zeroed = np.zeros(K, np.bool_)
    for p in range(P):
        for t in range(iu0.size):
            G[iu0[t], iu1[t]] = Gu[p, t]
            G[iu1[t], iu0[t]] = Gu[p, t]
        for i in range(K):
            free[i] = i
        ok[p] = _factor(G, free, K, L)
        if not ok[p]:
            continue
        for r in range(M):
            for i in range(K):
                y[i] = 1.0 if i == r else 0.0
            _substitute(L, K, y)
            for i in range(K):
                ginv[p, r, i] = y[i]
        for i in range(K):
            y[i] = b[p, i]
        _substitute(L, K, y)
        feasible = True
        for i in range(K):
            beta[p, i] = y[i]
        for c in range(m):
            if y[cons[c]] < 0.0:
                feasible = False
        if feasible:
            continue
        # the 2**m active sets, in itertools.product((False, True), repeat=m) order (the first unknown slowest)
        best_obj = np.inf
        for i in range(K):
            beta[p, i] = 0.0
        for t in range(2 ** m):
            for i in range(K):
                zeroed[i] = False
            for c in range(m):
                zeroed[cons[c]] = (t >> (m - 1 - c)) & 1 == 1
            nf = 0
            for i in range(K):
                if not zeroed[i]:
                    free[nf] = i
                    fmap[nf] = i
                    nf += 1
            if nf > 0:
                if not _factor(G, free, nf, L):
                    ok[p] = False
                    break
                for j in range(nf):
                    y[j] = b[p, free[j]]
                _substitute(L, nf, y)
            obj = 0.0
            good = True
            for j in range(nf):
                obj -= b[p, fmap[j]] * y[j]
            for c in range(m):
                if not zeroed[cons[c]]:
                    for j in range(nf):
                        if fmap[j] == cons[c] and y[j] < 0.0:
                            good = False
            if good and obj < best_obj:
                best_obj = obj
                for i in range(K):
                    beta[p, i] = 0.0
                for j in range(nf):
                    beta[p, fmap[j]] = y[j]


def _zero_loss_sandwich(A, kz, vz, cut, g0, vb):
    """``vb[p, k] += Σ_{i ≤ cut[p]} v_z[p, i]·u[i]²``, ``u[i] = Σ_j A[p, k, j]·K_z[p, g0 + j − i]``: the zero-loss
    counts' part of the sandwich, the correlation of the fit's rows with ``K_z`` summed directly over the
    zero-loss channels (``u`` in the arrays' precision, as the transforms it replaces; the squares' sum in float64).

    Why our own: ``v_z`` lives on the channels up to the zero-loss cut (~73 on realistic spectra), so the
    correlation is needed there only: ~51k products per pixel against two inverse transforms of 2048 channels
    per reference row. Sixth pass: each ``u[i]`` is one dot product over contiguous rows of ``A`` and ``K_z``,
    compiled with reassociation allowed (``fastmath={"reassoc", "contract"}``: the dot products vectorise; each
    row of ``A``, a strided view, copied first), 0.116 → 0.075 CPU-s per realistic frame in the kernel. ``u`` is
    then summed in another order than the fourth pass's sequential sums: this part of σ² moves by its float32
    rounding (≤ 1.6e-5 of itself; it is ~1e-6 of σ²), σ by ≤ 4e-11 relative (measured on a realistic frame;
    tested against the transforms, tests/test_eels_plural_gls.py).
    """
    P, M, m = A.shape
    a_row = np.empty(m, A.dtype)  # a contiguous copy: A is a strided view (the window of the padded rows)
    for p in range(P):
        ct = cut[p]
        krow = kz[p]
        vrow = vz[p]
        for k in range(M):
            a_row[:] = A[p, k]
            s = 0.0
            for i in range(ct + 1):
                seg = krow[g0 - i:g0 - i + m]
                acc = a_row.dtype.type(0.0)
                for j in range(m):
                    acc += a_row[j] * seg[j]
                x = np.float64(acc)
                s += x * x * np.float64(vrow[i])
            vb[p, k] += s


zero_loss_sandwich = _jit(_zero_loss_sandwich, fastmath={"reassoc", "contract"})
