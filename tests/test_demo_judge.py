# SPDX-License-Identifier: GPL-3.0-or-later
"""How the demo judges an issue-19 number (``demo/_judge.py``): a bias is the mean error over units with an honest
standard error, and "inside" needs both the value within the target and an s.e. small enough to tell."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.demo._judge import INSIDE, OUTSIDE, UNRESOLVED, bias_stats, correlation, judge, pull, slope


@pytest.mark.parametrize("value, se, verdict", [
    (0.004, 0.003, INSIDE),          # within, resolved
    (-0.009, 0.005, INSIDE),         # |bias| ≤ L, s.e. exactly L/2
    (0.004, 0.0051, UNRESOLVED),     # within, but the s.e. cannot tell
    (0.02, 0.004, OUTSIDE),          # resolved and outside
    (0.09, 0.02, UNRESOLVED),        # outside, but too few units to judge: not a verdict either way
])
def test_a_bias_is_inside_only_when_within_and_resolved(value, se, verdict):
    j = judge(value, se=se, target="≤ 0.01", kind="abs_max", bound=0.01, conditions="test")
    assert j["verdict"] == verdict
    assert j["inside"] == (verdict == INSIDE) and j["resolved"] == (se <= 0.005)
    assert j["rule"] == {"kind": "abs_max", "bound": 0.01, "se_needed": 0.005} and j["se_needed"] == 0.005


def test_one_estimate_without_an_se_is_judged_on_its_value():
    j = judge(-0.4, target="|error| < 1 nm", kind="abs_max", bound=1.0, conditions="test", value_std=0.6)
    assert j["verdict"] == INSIDE and j["value_std"] == 0.6 and "se" not in j and j["rule"]["se_needed"] is None


def test_bias_stats_error_bars_are_honest():
    # units with a known bias and known σ: (mean − bias)/s.e. has unit spread over many repeats, the pull is ≈ 1
    rng = np.random.default_rng(7)
    bias, sigma, n = 0.003, 0.02, 24
    z, pulls = [], []
    for _ in range(600):
        e = bias + sigma * rng.standard_normal(n)
        s = bias_stats(e, np.full(n, sigma))
        z.append((s["value"] - bias) / s["se"])
        pulls.append(s["unit_pull"])
        assert s["units"] == n and s["worst_unit"] == pytest.approx(np.abs(e).max())
    assert 0.9 < np.std(z) < 1.2   # t-distributed with 23 dof: spread √(23/21) ≈ 1.05
    assert abs(np.mean(z)) < 0.15
    assert 0.95 < np.mean(pulls) < 1.02
    # σ stated 2× too small: the pull says so
    assert bias_stats(bias + sigma * rng.standard_normal(400), np.full(400, sigma / 2))["unit_pull"] > 1.8


def test_a_common_calibration_error_enters_the_se():
    e = np.array([0.01, 0.012, 0.008, 0.01])
    alone = bias_stats(e)["se"]
    assert bias_stats(e, common_se=0.02)["se"] == pytest.approx(np.hypot(alone, 0.02))
    # non-finite units are left out; none left: no verdict possible
    assert bias_stats([np.nan, 0.01, 0.01])["units"] == 2
    empty = bias_stats([np.nan])
    assert empty["units"] == 0 and judge(empty["value"], se=empty["se"], target="≤ 0.01", kind="abs_max",
                                         bound=0.01, conditions="test")["verdict"] == UNRESOLVED


def test_pulls_and_correlations_carry_their_se():
    assert pull(1.05, n=10_000, conditions="t")["verdict"] == INSIDE
    assert pull(1.5, n=10_000, conditions="t")["verdict"] == OUTSIDE
    assert pull(1.05, n=20, conditions="t")["verdict"] == UNRESOLVED      # s.e. 0.17 > 0.1
    c = correlation(0.9453, n=704, target="≥ 0.95", bound=0.95, conditions="t")
    assert c["se"] == pytest.approx((1 - 0.9453**2) / np.sqrt(701)) and c["verdict"] == OUTSIDE
    assert correlation(0.96, n=30, target="≥ 0.95", bound=0.95, conditions="t")["verdict"] == INSIDE  # s.e. 0.015
    assert correlation(0.96, n=10, target="≥ 0.95", bound=0.95, conditions="t")["verdict"] == UNRESOLVED


def test_slope_recovers_a_known_leak():
    rng = np.random.default_rng(3)
    t = rng.uniform(0.3, 1.2, 5000)
    rel = 0.015 * (t - 0.75) + 0.05 * rng.standard_normal(t.size)
    s, se = slope(rel, t)
    assert abs(s - 1.5) < 3 * se and 0.2 < se < 0.35  # % per unit t/λ: 5 %/(√5000 · std t/λ 0.26) ≈ 0.27
