# SPDX-License-Identifier: GPL-3.0-or-later
"""The Li-K chemical shift, handled by references measured on one pristine and one charged region.

The realistic simulator moves the Li-K fine structure by 0.6 eV between x = 1
and x = 0.5. One Li-K shape for all x (the exact x = 1 shape here) reads the
shifted edge partly as Co: x −0.02 (noise-free). References unmixed from a
pristine and a charged region (``references_from_regions`` with components Li
and Co) carry both shapes — the unmixed Co reference holds the difference of
the two Li-K shapes, so the fit is exact at both regions' x and nearly so in
between. Tolerances (issue 19): x bias ≤ 0.01, areal Li leak < 1 %/unit t/λ.
"""
from __future__ import annotations

import _realistic_scenes
import numpy as np
import pytest
import xarray as xr

from ionscope import eels
from ionscope.simulate import operando_eels

FIT = (45.0, 85.0)


def _regions(truth):
    x = truth.x_li
    film = (truth.co > 0.5) & (truth.y > 25)
    pristine = xr.zeros_like(x, dtype=bool)
    pristine[0] = (x.isel(time=0) > 0.9) & film
    charged = xr.zeros_like(x, dtype=bool)
    charged[1] = (x.isel(time=1) < 0.65) & film
    return film, pristine, charged, float(x.where(pristine).mean()), float(x.where(charged).mean())


def _x_blocks(maps, truth, film, k, b=4):
    filmb = film.broadcast_like(maps.Li)
    c = maps[["Li", "Co"]].where(filmb).coarsen(y=b, x=b, boundary="trim").sum()
    w = truth.weights.where(filmb).coarsen(y=b, x=b, boundary="trim").sum()
    xe = (c.Li / c.Co).values.ravel() / k
    xt = (w.sel(component="Li") / w.sel(component="Co")).values.ravel() / truth.attrs["k_li_co"]
    ok = np.isfinite(xe) & np.isfinite(xt)
    return xe[ok], xt[ok]


def _areal_leak(maps, truth, film):
    """Slope of the relative error of Li/zero_loss against t/λ (% per unit), after one overall scale."""
    m = film.broadcast_like(maps.Li).values.ravel()
    a = (maps.Li / maps.zero_loss).values.ravel()[m]
    at = (truth.weights.sel(component="Li") / truth.zero_loss).values.ravel()[m]
    t = truth.thickness.values.ravel()[m]
    at = at * a.sum() / at.sum()
    rel = (a - at) / at.mean()
    tc = t - t.mean()
    return 100 * float((tc * rel).sum() / (tc**2).sum())


@pytest.fixture(scope="module")
def clean():
    si, truth, _ = operando_eels(shape=(24, 32), n_frames=2, physics="realistic", dose=400.0, noise=False, seed=1)
    return si, truth


def test_pristine_plus_charged_references_remove_the_shift_bias(clean):
    si, truth = clean
    film, pristine, charged, xp, xc = _regions(truth)
    refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged},
                                        {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}},
                                        fit_range=FIT)
    maps = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    k = eels.li_fraction(maps, calibration={"region": pristine, "x": xp}).attrs["k"]
    xe, xt = _x_blocks(maps, truth, film, k)
    # measured: −0.004 mean, 0.009 RMS on 4×4 blocks
    assert abs(np.mean(xe - xt)) <= 0.01
    assert np.sqrt(np.mean((xe - xt) ** 2)) < 0.02
    assert abs(_areal_leak(maps, truth, film)) < 1.0  # measured +0.15 %/unit t/λ

    # one Li-K shape (the exact x = 1 one) reads the shift as Co: the bias the regions remove
    one = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    k1 = eels.li_fraction(one, calibration={"region": pristine, "x": xp}).attrs["k"]
    x1, xt1 = _x_blocks(one, truth, film, k1)
    assert abs(np.mean(x1 - xt1)) > 2 * abs(np.mean(xe - xt))


def test_without_a_chemical_shift_both_agree():
    si, truth, _ = operando_eels(shape=(24, 32), n_frames=2, physics="realistic", noise=False, seed=1,
                                 li_chemical_shift_ev=0.0)
    film, pristine, charged, xp, xc = _regions(truth)
    one = eels.mlls(si, truth.references, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    k1 = eels.li_fraction(one, calibration={"region": pristine, "x": xp}).attrs["k"]
    x1, xt1 = _x_blocks(one, truth, film, k1)
    assert abs(np.mean(x1 - xt1)) < 0.005


def test_with_noise_x_within_its_error():
    """Dose 1000: the per-frame x (ratio of summed weights over the film) within 3σ (σ with k's error)."""
    si, truth, _ = _realistic_scenes.scene(2)  # 24×32×4, dose 1000, seed 2: shared with the NMF tests (read-only)
    film, pristine, charged, xp, xc = _regions(truth)
    refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged},
                                        {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}},
                                        fit_range=FIT)
    maps = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
    f = eels.li_fraction(maps, calibration={"region": pristine, "x": xp})
    k, ks = f.attrs["k"], f.attrs["k_std"]
    filmb = film.broadcast_like(maps.Li)
    L, C = maps.Li.where(filmb).sum(("y", "x")), maps.Co.where(filmb).sum(("y", "x"))
    sL = np.sqrt((maps.Li_std**2).where(filmb).sum(("y", "x")))
    sC = np.sqrt((maps.Co_std**2).where(filmb).sum(("y", "x")))
    x = L / C / k
    sx = np.sqrt((sL / C) ** 2 + (L * sC / C**2) ** 2 + (x * ks) ** 2) / k
    w = truth.weights.where(filmb).sum(("y", "x"))
    xt = w.sel(component="Li") / w.sel(component="Co") / truth.attrs["k_li_co"]
    assert np.all(np.abs((x - xt) / sx).values < 3.0)
