# SPDX-License-Identifier: GPL-3.0-or-later
"""li_shift_check finds a Li-K chemical shift that moves with x, without being told (issue 19, second pass).

Truth from ``simulate.operando_eels(physics="realistic")`` with and without its
0.6 eV Li-K chemical shift between x = 1 and 0.5. Measured (BENCHMARKS.md,
"Issue 19 — second pass"): noise-free always detected with the shift and never
without; with noise at 1000 counts/channel on 32×48×4 spectra, 1 of 3 seeds
detected (block 8; 2 of 3 with block 16) and no false detection in 6 runs
without a shift. Tolerances here: noise-free detection and its sign, no false
detection without the shift (noise-free and at 1000 counts/channel, two seeds).
"""
from __future__ import annotations

import warnings

import pytest

from ionscope.errors import DataValidationError
from ionscope.eels import li_shift_check
from ionscope.simulate import operando_eels


def _si(shift, noise=False, seed=1, shape=(16, 24), frames=3):
    si, truth, _ = operando_eels(shape=shape, n_frames=frames, physics="realistic", noise=noise, dose=1000.0,
                                 seed=seed, li_chemical_shift_ev=shift)
    return si, truth


def test_detects_the_shift_noise_free_and_warns():
    si, truth = _si(0.6)
    with pytest.warns(RuntimeWarning, match="references_from_regions"):
        r = li_shift_check(si, truth.references, block=4)
    assert r["detected"]
    # the simulator's edge moves up as x falls: the shift falls as Li/Co rises
    assert r["shift_per_li_co_ev"] < -5 * r["shift_per_li_co_ev_std"]
    assert r["shift_spread_ev"] < -0.1


def test_no_shift_no_detection():
    si, truth = _si(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = li_shift_check(si, truth.references, block=4)
    assert not r["detected"] and abs(r["shift_spread_ev"]) < 0.05


@pytest.mark.parametrize("seed", [1, 2])
def test_no_false_detection_with_noise(seed):
    si, truth = _si(0.0, noise=True, seed=seed, shape=(32, 48), frames=4)
    r = li_shift_check(si, truth.references, warn=False)
    assert not r["detected"], r["shift_spread_ev"]


def test_bad_input():
    si, truth = _si(0.6)
    with pytest.raises(DataValidationError, match="block"):
        li_shift_check(si, truth.references, block=1)
    with pytest.raises(DataValidationError, match="y and x"):
        li_shift_check(si.isel(x=0), truth.references)
