# SPDX-License-Identifier: GPL-3.0-or-later
"""The energy-drift stage on spectra with their zero-loss peak honours ``[energy_drift]`` options (issue 20).

It used a fixed (−5, 5) eV zero-loss window and ignored the options, so spectra
starting above −5 eV were refused (``window=(-5, 5) eV lies outside the data's
energy axis``). The window now defaults to ±5 eV clipped to the data's axis and
the options (window, target, method) are passed through.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.operando import run
from ionscope.pipeline._eels import _zlp_drift_options


@pytest.fixture(scope="module")
def starts_at_minus_4(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(12, 16), n_frames=3, physics="realistic", dose=1000.0,
                                   energy_range=(-4.0, 98.4), energy_drift_ev=0.4, li_chemical_shift_ev=0.0,
                                   seed=8)
    root = tmp_path_factory.mktemp("drift")
    iio.save(si, root / "series.zarr")
    return root / "series.zarr", truth, log


def _config(out, store, **drift):
    return {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(out)},
            "limap": {"fit_range": [45.0, 85.0]}, "denoise": {"method": "gaussian"},
            "energy_drift": drift,
            "report": {"movies": [], "viewer": False, "figures": False}, "compute": {"frames_per_batch": 3}}


@pytest.fixture(scope="module")
def default_run(starts_at_minus_4, tmp_path_factory):
    store, _, log = starts_at_minus_4
    return run(_config(tmp_path_factory.mktemp("default"), store), log=log, show_progress=False)


def test_default_window_is_clipped_to_the_axis(starts_at_minus_4, default_run):
    _, truth, _ = starts_at_minus_4
    shift = default_run.dataset("energy_drift").energy_shift.values
    true = truth.energy_shift.values
    # recorded zero-loss position per frame (frame sums; de-scan averages to 0): its changes within a
    # fifth of a channel of the true drift (the absolute position carries the peak's asymmetry, ~0.03 eV)
    np.testing.assert_allclose(shift - shift[0], true - true[0], atol=0.02)
    assert abs(shift[0] - true[0]) < 0.05
    assert np.isfinite(default_run.li_raw.values).mean() > 0.99


def test_options_are_honoured(starts_at_minus_4, default_run, tmp_path):
    store, _, log = starts_at_minus_4
    res = run(_config(tmp_path, store, options={"window": [-3.0, 3.0], "target": 0.25}), log=log,
              show_progress=False)
    shift = res.dataset("energy_drift").energy_shift.values
    # the same zero-loss maxima (inside both windows), reported relative to the target
    np.testing.assert_allclose(shift + 0.25, default_run.dataset("energy_drift").energy_shift.values, atol=1e-9)


def test_zlp_options_unit():
    e = np.arange(-4.0, 98.4, 0.1)
    assert _zlp_drift_options({}, e) == {"method": "zlp", "window": (pytest.approx(-3.9), 5.0)}
    assert _zlp_drift_options({"window": (-2, 2)}, e)["window"] == (-2, 2)
    e2 = np.arange(-10.0, 90.0, 0.1)
    assert _zlp_drift_options({}, e2)["window"] == (-5.0, 5.0)
    assert _zlp_drift_options({"method": "model"}, e2) == {"method": "model"}
