# SPDX-License-Identifier: GPL-3.0-or-later
"""The realistic spectrum model of the operando simulator (``physics="realistic"``).

Per pixel the single-scattering distribution per zero-loss electron is

    S(E) = τ·v(E) + a_Li·L(E − δ_Li) + a_Co·C(E)

with ``v`` the unit-area valence loss (plasmon near 23 eV), ``τ`` its t/λ,
``L``/``C`` the Li-K and Co-M2,3 shapes *with* near-edge fine structure (not
the smooth shapes of :func:`edge_references`, so a fit with model references
meets a real reference mismatch), ``δ_Li`` the Li-K chemical shift that grows
as Li leaves LiCoO2, and ``a_Li = τ·c_Li·x·ρ_Co``, ``a_Co = τ·c_Co·ρ_Co`` (edge
intensities proportional to the atoms in the column). The recorded spectrum
adds the zero-loss peak and every order of plural scattering
(:func:`~ionscope.simulate._lowloss.plural_scattering`), a de-scan shift that
depends on the scan position, and Poisson noise.

The truth is in single-scattering counts: ``w = I0·Δ·a`` is the coefficient of
the unit-maximum shape in ``I0·S(E)`` per channel, the quantity a correct
deconvolution + fit returns; ``x = (w_Li/w_Co) / k`` with ``k = c_Li/c_Co``.

References
----------
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011),
doi:10.1007/978-1-4419-9583-4 (§3.7.1, §4.2, §5.1).
M. Saitoh et al., PCCP 20 (2018) 25052, doi:10.1039/c8cp03390k (Li-K of Li
battery materials).
"""
from __future__ import annotations

import numpy as np

from ._lowloss import valence_loss
from ._spectra import co_m_edge, li_k_edge

#: Li-K peak and Co-M maximum as fractions of the single-scattering valence tail at 62 / 67 eV (x = 1);
#: in the recorded (plurally scattered) spectrum of a t/λ ≈ 0.7 film the Li-K peak is then ~4 % of the counts
LI_SSD_FRACTION = 0.20
CO_SSD_FRACTION = 0.25


def li_k_fine(e):
    """Li-K with near-edge structure: the 62 eV peak plus a pre-peak at 58 eV and a wiggle at 66 eV."""
    e = np.asarray(e, float)
    base = li_k_edge(np.maximum(e, 1e-6))
    extra = 0.18 * np.exp(-0.5 * ((e - 58.2) / 0.7) ** 2) + 0.10 * np.exp(-0.5 * ((e - 66.0) / 1.2) ** 2)
    step = 0.5 * (1 + np.tanh((e - 55.0) / 0.5))
    return np.where(e > 0, base + extra * step, 0.0) / 1.0


def co_m_fine(e):
    """Co-M2,3 with a weak multiplet shoulder near 63 eV."""
    e = np.asarray(e, float)
    base = co_m_edge(np.maximum(e, 1e-6))
    extra = 0.12 * np.exp(-0.5 * ((e - 63.0) / 0.9) ** 2)
    return np.where(e > 0, base + extra, 0.0)


def _unit_max(f):
    grid = np.linspace(40.0, 140.0, 10001)
    peak = float(f(grid).max())
    return lambda e: f(e) / peak


LI_SHAPE = _unit_max(li_k_fine)
CO_SHAPE = _unit_max(co_m_fine)


def edge_strengths(valence_kw):
    """(c_Li, c_Co): edge heights per unit t/λ relative to a unit-area valence loss."""
    v = valence_loss(np.array([62.0, 67.0]), **valence_kw)
    return LI_SSD_FRACTION * float(v[0]), CO_SSD_FRACTION * float(v[1])


def true_references(energy):
    """The exact single-scattering edge shapes at x = 1 (unit maximum), rows Li, Co."""
    e = np.asarray(energy, float)
    return np.stack([LI_SHAPE(e), CO_SHAPE(e)])


def make_kernel(energy, *, valence_kw, zlp_kw, z_range=(0.0, 0.0), shift_range=(0.0, 0.0), dtype=np.float32):
    """The plural-scattering kernel of this model on ``energy`` (valence, Li-K shifted, Co-M)."""
    from ._lowloss import zero_loss_peak
    from ._plural_kernel import PluralKernel

    zlp_kw = dict(zlp_kw)
    zlp = {"fwhm": zlp_kw.pop("zlp_fwhm", 0.8), "asymmetry": zlp_kw.pop("zlp_asymmetry", 0.25),
           "tail": zlp_kw.pop("zlp_tail", 0.02)}
    if zlp_kw:
        raise TypeError(f"unknown zero-loss options {sorted(zlp_kw)}")
    return PluralKernel(np.asarray(energy, float), [lambda e: valence_loss(e, **valence_kw), LI_SHAPE, CO_SHAPE],
                        [False, True, False], lambda e: zero_loss_peak(e, **zlp), z_range=z_range,
                        shift_range=shift_range, margin_ev=300.0, dtype=dtype)


def spectra(energy, *, i0, tau, a_li, a_co, li_shift, zlp_centre, valence_kw, zlp_kw, batch=None, kernel=None,
            dtype=np.float32):
    """Expected counts ``(P, n_energy)`` for flat per-pixel parameters.

    ``kernel`` (from :func:`make_kernel`) is reused across calls when given; it must
    cover the zero-loss positions and Li shifts passed; otherwise one is made with ``dtype``.
    ``batch`` is ignored (kept for callers).
    """
    shape = np.shape(i0)
    i0 = np.asarray(i0, float).ravel()
    tau, a_li, a_co, li_shift, zlp_centre = (np.broadcast_to(np.asarray(v, float), shape).ravel()
                                             for v in (tau, a_li, a_co, li_shift, zlp_centre))
    if kernel is None:
        kernel = make_kernel(energy, valence_kw=valence_kw, zlp_kw=zlp_kw,
                             z_range=(float(zlp_centre.min()), float(zlp_centre.max())),
                             shift_range=(float(li_shift.min()), float(li_shift.max())), dtype=dtype)
    return kernel(i0, np.stack([tau, a_li, a_co]), li_shift[None], zlp_centre)


def thickness_map(thick_nm, thickness_range):
    """t/λ map spanning ``thickness_range`` with the ordering of the specimen's thickness in nm."""
    lo, hi = thickness_range
    span = float(thick_nm.max() - thick_nm.min())
    rel = (thick_nm - thick_nm.min()) / span if span > 0 else np.full_like(thick_nm, 0.5)
    return lo + (hi - lo) * rel


def descan_map(ny, nx, amplitude):
    """De-scan: the zero-loss position drifts linearly with the scan position (eV), mean 0."""
    yy, xx = np.meshgrid(np.linspace(-0.5, 0.5, ny), np.linspace(-0.5, 0.5, nx), indexing="ij")
    return amplitude * (xx + 0.3 * yy)


def convolve_low_loss(values, step, tau, *, zlp_kw=None, valence_kw=None, workers=2):
    """Spectra (P, n) treated as single scattering, convolved with their unit-area low loss.

    ``(S ⊛ L/I0)(E)`` with ``L/I0 = R ⊛ exp*(τ·v)``: the zero-loss peak and every
    order of valence scattering. Exact to first order in the core loss — the
    right model for a core-loss window far above the plasmons (Egerton §3.7.1):
    each edge gets its plasmon replicas. ``values`` must start ≥ 100 eV below
    the window the caller keeps (the replicas come from below).

    The per-pixel kernel ``r(ν)·exp(τ·v(ν))`` is built as ``exp`` of its real part times
    ``cos``/``sin`` of its imaginary part in float32 (SIMD loops; the arguments are bounded
    by τ + π), and the transforms are float32 real FFTs on blocks of pixels spread over
    ``workers`` threads (pocketfft and numpy release the GIL). Changed in issue 20 from a
    float64 evaluation: the spectra differ by ≲ 1e-5 relative (float32 rounding).
    """
    from scipy import fft

    from ._lowloss import LossGrid, zero_loss_peak

    zlp_kw = {"zlp_fwhm": 0.8} if zlp_kw is None else zlp_kw
    values = np.asarray(values, float)
    tau = np.asarray(tau, float).ravel()
    P, n = values.shape
    grid = LossGrid(step, n * step, margin_ev=300.0, e_min=-30.0)
    v_ft = grid.transform(np.where(grid.energy > 0, valence_loss(np.maximum(grid.energy, 1e-9),
                                                                  **(valence_kw or {})), 0.0))
    z_ft = grid.transform(zero_loss_peak(grid.energy, fwhm=zlp_kw.get("zlp_fwhm", 0.8)))
    f32 = np.float32
    rows_re = np.vstack([v_ft.real, np.log(np.maximum(np.abs(z_ft), np.finfo(f32).tiny))]).astype(f32)
    rows_im = np.vstack([v_ft.imag, np.angle(z_ft)]).astype(f32)
    out = np.empty((P, n))

    def run(sl):
        coef = np.stack([tau[sl], np.ones(sl.stop - sl.start)], axis=1).astype(f32)
        re = coef @ rows_re
        im = coef @ rows_im
        np.exp(re, out=re)
        kern = np.empty(re.shape, np.complex64)
        np.multiply(re, np.cos(im), out=kern.real)
        np.multiply(re, np.sin(im, out=im), out=kern.imag)
        spec = fft.rfft(values[sl].astype(f32), n=grid.n, axis=1, workers=1)
        spec *= kern
        out[sl] = fft.irfft(spec, n=grid.n, axis=1, workers=1)[:, :n]

    blocks = [slice(s, min(P, s + 64)) for s in range(0, P, 64)]
    if workers > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, blocks))
    else:
        for sl in blocks:
            run(sl)
    return out


def realistic_references(energy):
    """The single-scattering Li-K and Co-M2,3 shapes of ``physics="realistic"`` (unit maximum).

    The references that describe the realistic simulator's spectra exactly
    (``truth.references``); for simulated data only — real data need references
    measured on the data (:func:`ionscope.eels.references_from_regions`).

    Parameters
    ----------
    energy : array_like
        Energy loss in eV (values ≤ 0 give 0).

    Returns
    -------
    xarray.DataArray
        Dims ``("component", "energy")``, components ``["Li", "Co"]``.

    Examples
    --------
    >>> import numpy as np
    >>> realistic_references(np.arange(-5.0, 97.4, 0.1)).component.values.tolist()
    ['Li', 'Co']
    """
    from ..data import calibrated

    e = np.asarray(getattr(energy, "values", energy), float)
    return calibrated(true_references(e), ("component", "energy"), coords={"component": ["Li", "Co"], "energy": e},
                      name="references", attrs={"signal_type": "EELS",
                                                "title": "single-scattering Li-K and Co-M2,3 (realistic model)"})
