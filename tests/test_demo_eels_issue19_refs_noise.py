# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's two-Li-K-shape x bias: its s.e. holds the region references' own noise.

Every pixel is fitted with the same references, made from the regions' noisy pixels, so their noise moves
the x of every unit (frame × strip) together: the units' spread cannot show it. Measured on the demo's movie
(BENCHMARKS.md, "Issue 19 — two Li-K shapes at 100–400 counts, pinned"): jackknife σ 0.016–0.024 against a
units' s.e. of 0.004–0.006. :func:`ionscope.demo._eels_issue19.references_noise_se` estimates it by refitting
with the references' delete-a-group jackknife replicates; here it is checked against the spread of x over
independent Poisson draws of the same scene.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope import eels
from ionscope.demo import _eels_issue19 as i19
from ionscope.simulate import operando_eels
from test_eels_li_shift import _two_regions

FIT = (45.0, 85.0)


def test_no_replicates_no_references_noise():
    si, truth, _ = operando_eels(shape=(8, 12), n_frames=2, physics="realistic", seed=2, noise=False)
    film = truth.co > 0.5
    se = i19.references_noise_se(si, truth.references, si.isel(energy=0), truth, [film, film], [1])
    assert se == [0.0, 0.0]


def test_x_bias_adds_a_common_error_in_quadrature():
    si, truth, _ = operando_eels(shape=(8, 12), n_frames=3, physics="realistic", seed=2, noise=False)
    film = truth.co > 0.5
    maps = truth.weights.to_dataset("component")
    maps["Li_std"] = maps.Li * 0 + 1e-3
    maps["Co_std"] = maps.Co * 0 + 1e-3
    a = i19.x_bias(maps, truth, film, [0, 1, 2])
    b = i19.x_bias(maps, truth, film, [0, 1, 2], common_se=0.02)
    assert b["value"] == pytest.approx(a["value"])
    assert b["se"] == pytest.approx(np.hypot(a["se"], 0.02))


@pytest.mark.slow
def test_references_noise_se_matches_the_spread_over_draws():
    """400 counts per 0.1 eV, 24×32 × 3 frames, regions in frames 0 and 1, x judged on frame 2 (4 strips),
    the true Li-K shift given; 6 independent draws. The jackknife σ of the references' noise must match
    the draws' spread of frame 2's x error (within the scatter of 6 draws: factor 0.45–2.2), and be the
    larger part of it (the units' own s.e. is well below)."""
    si0, truth, _ = operando_eels(shape=(24, 32), n_frames=3, physics="realistic", seed=1, noise=False)
    film, pristine, charged, xp, xc = _two_regions(truth)
    comp = {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}}
    delta = float(truth.attrs["li_chemical_shift_ev"]) / 0.5 * (xp - xc)
    lam = np.asarray(si0.values, float) * 400.0 / 1000.0
    err, jk, unit_se = [], [], []
    for seed in range(6):
        si = si0.copy(data=np.random.default_rng(50 + seed).poisson(lam).astype(np.float32))
        refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged}, comp, fit_range=FIT)
        refs.attrs["li_k_shift_ev"] = delta
        maps = eels.mlls(si.isel(time=[2]), refs, fit_range=FIT, plural_scattering="fourier-log",
                         nonnegative=False)
        tr = truth.isel(time=[2])
        s = i19.x_bias(maps, tr, film, [0], strips=4)
        (se,) = i19.references_noise_se(si.isel(time=[2]), refs, maps, tr, [film], [0], strips=4)
        err.append(s["value"])
        unit_se.append(s["se"])
        jk.append(se)
    sd = float(np.std(err, ddof=1))
    rms_jk = float(np.sqrt(np.mean(np.square(jk))))
    assert np.all(np.isfinite(jk)) and min(jk) > 0
    assert 0.45 < sd / rms_jk < 2.2, (sd, rms_jk, err, jk)
    assert rms_jk > 1.5 * float(np.sqrt(np.mean(np.square(unit_se)))), (jk, unit_se)
