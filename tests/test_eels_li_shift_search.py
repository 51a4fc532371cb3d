# SPDX-License-Identifier: GPL-3.0-or-later
"""The cheap Li-K shift search (``eels/_li_shift_search.py``, issue 20): its shortcuts equal what they replace.

The search's χ² at every trial shift must be that of the full computation (:func:`._li_shift.family` per
reference, :func:`._li_shift.noise_gram` per pixel, every pixel fitted), so the measured shift does not move;
the night's own tests (tests/test_pipeline_li_shift.py) check it recovers the simulator's shift.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.eels import _li_shift, _li_shift_search


def test_the_interpolated_noise_gram_is_noise_gram():
    rng = np.random.default_rng(1)
    P, G, m, ng = 64, 7, 50, 5
    w = rng.random((P, m)) + 0.2
    w[3] = 0.0  # an unusable spectrum
    reps = rng.normal(size=(ng, G, m)) + rng.normal(size=(G, m))
    host = rng.normal(size=(ng, m))
    g, a = rng.integers(0, G - 1, P), rng.random(P)
    Lr = (1 - a)[None, :, None] * reps[:, g] + a[None, :, None] * reps[:, g + 1]
    for basis in (np.vander(np.linspace(-1, 1, m), 3), None):
        ref = _li_shift.noise_gram(w, Lr, host, basis)
        got = _li_shift_search.interpolated_noise_gram(w, g, a, reps, host, basis)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("delta", [0.37, 0.0, -0.42])
def test_one_solve_for_all_replicates_is_family_of_each(delta):
    rng = np.random.default_rng(2)
    e = np.arange(40.0, 80.0, 0.1)
    onset = 1 / (1 + np.exp(-(e[None, :, None] - np.array([55.0, 60.0])) / 0.8))
    stack = onset * (1 + 0.05 * rng.normal(size=(4, e.size, 2)))
    model = ([0.95, 1.0, 0.6, 1.0], delta, "Li", "Co")
    xg = _li_shift.X_GRID[::2]
    shapes, hosts = _li_shift_search.families(e, stack, ["Li", "Co"], model, xg)
    for r in range(stack.shape[0]):
        s_r, h_r, *_ = _li_shift.family(e, stack[r], ["Li", "Co"], model, x_grid=xg)
        np.testing.assert_allclose(shapes[r], s_r, rtol=0, atol=1e-9 * np.abs(s_r).max())
        np.testing.assert_allclose(hosts[r], h_r, rtol=0, atol=1e-9 * np.abs(h_r).max())


def test_only_pixels_within_the_smoothing_reach_are_fitted():
    keep = np.zeros((1, 30, 30), bool)
    keep[0, 15, 3] = True
    need = _li_shift_search.reach(keep.ravel(), keep.shape, 2.0).reshape(keep.shape)
    # σ 2 px: scipy's Gaussian reaches int(4·2 + 0.5) = 8 px along each axis
    assert need[0, 7:24, 0:12].all() and need.sum() == 17 * 12
    # what the χ² sees does not change when the pixels beyond the reach are left out
    from ionscope.eels._li_shift import _smoothed_ratio

    bg = np.random.default_rng(3).random((900, 4, 2)) + 0.5
    cut = np.where(need.ravel()[:, None, None], bg, 0.0)
    full = _smoothed_ratio(bg, keep.shape, 2.0)[keep.ravel()]
    part = _smoothed_ratio(cut, keep.shape, 2.0)[keep.ravel()]
    np.testing.assert_allclose(part, full, rtol=1e-12)
