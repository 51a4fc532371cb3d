# SPDX-License-Identifier: GPL-3.0-or-later
"""The layer width's σ is honest, and a width the data do not constrain is called "not resolved".

Truth from ``simulate.tem_eels_linescan(physics="realistic")`` (a 13 nm Li-rich
layer, +60 %, 200 positions at 0.5 nm). Measured over 24 seeds per dose
(BENCHMARKS.md, "Issue 19 — second pass"): at 20 000 counts/channel (the demo,
``ionscope simulate linescan --physics realistic``) RMS error 0.34 nm, width
pull 0.60, all resolved; at 8000 pull 1.23, 23/24 resolved; at 500 (the
function's default dose) 0/24 resolved. Tolerances here, on fewer seeds: at
20 000 every width within 1 nm and within 3σ, pull RMS 0.3–1.5; at 500 every
scan "not resolved", with a warning.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ionscope import eels
from ionscope.simulate import tem_eels_linescan


def _width(dose, seed):
    data, truth = tem_eels_linescan(n_positions=200, physics="realistic", dose=dose, seed=seed)
    prof = eels.li_profile(data, references=truth.references)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = eels.layer_width(prof)
    return w, truth.attrs["layer_width_nm"], caught


def test_width_and_sigma_at_the_demo_dose():
    pulls = []
    for seed in range(4):
        w, true, caught = _width(20000.0, seed)
        assert w["resolved"] and not w["problems"], w["problems"]
        assert not [c for c in caught if "layer_width" in str(c.message)]
        assert w["width_nm"] == pytest.approx(true, abs=1.0)
        lo, hi = w["width_interval95_nm"]
        assert lo <= w["width_nm"] <= hi
        pulls.append((w["width_nm"] - true) / w["width_std_nm"])
    pulls = np.asarray(pulls)
    assert np.all(np.abs(pulls) < 3.0)
    assert 0.3 < np.sqrt(np.mean(pulls**2)) < 1.5


def test_low_dose_says_not_resolved():
    """At the function's default dose (500) the old fit reported e.g. 56 ± 2 nm for a true 13 nm."""
    for seed in (1, 10):  # seed 10 is the scan with a narrow wrong minimum near 31 nm
        w, true, caught = _width(500.0, seed)
        assert not w["resolved"]
        assert any("not resolved" in p or "not detected" in p or "no significant" in p for p in w["problems"])
        assert any("layer_width" in str(c.message) for c in caught)
        lo, hi = w["width_interval95_nm"]
        assert np.isfinite(lo) and lo < hi  # an interval is still given (seed 10's misses the truth: not resolved)


def test_sigma_is_not_the_curvature_alone():
    """A noisy synthetic layer: the reported σ covers the spread over noise draws (pull RMS ≤ 1.5)."""
    from scipy.special import erf

    x = np.arange(0.0, 100.0, 0.5)
    truth = 17.7 * 0.5 * (1 + erf((x - 33.2) / 0.42)) * (1 + 0.6 * 0.5 * (1 + erf((46.2 - x) / 0.7)))
    rng = np.random.default_rng(5)
    pulls = []
    for _ in range(8):
        y = truth + rng.normal(0.0, 6.0, x.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = eels.layer_width(y, std=np.full(x.size, 6.0), position=x)
        if r["resolved"]:
            pulls.append((r["width_nm"] - 13.0) / r["width_std_nm"])
    assert len(pulls) >= 4
    assert np.sqrt(np.mean(np.square(pulls))) < 1.5


def test_cli_says_not_resolved(tmp_path, capsys):
    from ionscope.cli import main
    from ionscope.io import save

    data, truth = tem_eels_linescan(n_positions=200, physics="realistic", dose=500.0, seed=1)
    src, refs, out = tmp_path / "ls.nc", tmp_path / "refs.nc", tmp_path / "prof.nc"
    save(data, src)
    save(truth.references, refs)
    assert main(["linescan", str(src), "--refs", str(refs), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "layer width not resolved (95 % interval" in captured.out
    assert "warning" in captured.err
