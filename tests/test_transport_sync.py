# SPDX-License-Identifier: GPL-3.0-or-later
"""Frames ↔ electrochemistry log."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError
from ionscope.operando import interval_means, sync_frames


def _log(t, current, voltage=None, state=None):
    data = {"current": ("time", np.asarray(current, float))}
    if voltage is not None:
        data["voltage"] = ("time", np.asarray(voltage, float))
    if state is not None:
        data["state"] = ("time", np.asarray(state))
    return xr.Dataset(data, coords={"time": np.asarray(t, float)})


def test_interval_means_are_exact_for_piecewise_linear_signals():
    t = np.linspace(0, 100, 101)
    v = 3.0 + 0.01 * t  # linear: the mean over [a, b] is the value at the midpoint
    a, b = np.array([0.0, 12.5, 40.0]), np.array([10.0, 37.5, 40.0])
    np.testing.assert_allclose(interval_means(t, v, a, b), 3.0 + 0.01 * np.array([5.0, 25.0, 40.0]), rtol=1e-12)


def test_sync_recovers_simulator_log_values():
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(12, 8), n_frames=8, energy_step=1.0, seed=3)
    interval = float(truth.attrs["frame_time_s"])
    s = sync_frames(si.time.values - interval / 2, log, duration_s=interval)
    assert [str(v) for v in s.state.values] == [str(v) for v in truth.state.values]
    # charge passed at the frame midpoint: the simulator records exactly that
    np.testing.assert_allclose(s.charge_c.values, truth.charge_c.values, rtol=1e-6, atol=1e-18)
    # interval mean voltage vs the value at mid-frame: within the voltage change across one frame
    dv = np.abs(np.diff(truth.voltage.values)).max()
    assert np.abs(s.voltage.values - truth.voltage.values).max() <= dv
    assert s.soc.min() >= -1e-9 and s.soc.max() <= 1 + 1e-9
    assert bool(s.covered.all())


def test_states_from_current_sign_and_charge_integral():
    t = np.arange(0, 300.001, 0.01)  # fine log: a current step costs < 5e-4 of the charge
    current = np.where(t < 100, 2e-9, np.where(t < 200, 0.0, -2e-9))
    s = sync_frames(np.array([0.0, 100.0, 200.0]), _log(t, current), duration_s=100.0)
    assert list(map(str, s.state.values)) == ["charge", "rest", "discharge"]
    np.testing.assert_allclose(s.charge_c.values, [1e-7, 2e-7, 1e-7], rtol=5e-4)


def test_log_not_covering_frames_is_refused_or_marked():
    t = np.arange(0, 100.0)
    log = _log(t, np.ones_like(t) * 1e-9, voltage=np.full_like(t, 4.0))
    starts = np.array([0.0, 60.0, 120.0, 180.0])
    with pytest.raises(DataValidationError, match=r"log does not cover 2 of 4 frame\(s\): #2 \[120, 150\] s.*"
                                                  r"the log spans \[0, 99\] s"):
        sync_frames(starts, log, duration_s=30.0)
    s = sync_frames(starts, log, duration_s=30.0, allow_uncovered=True)
    assert list(s.covered.values) == [True, True, False, False]
    assert np.isnan(s.voltage.values[2]) and list(map(str, s.state.values))[2] == "uncovered"


def test_bad_inputs():
    log = _log(np.arange(10.0), np.zeros(10))
    with pytest.raises(DataValidationError, match="frame start times must increase"):
        sync_frames([5.0, 2.0], log)
    with pytest.raises(DataValidationError, match="neither 'voltage' nor 'current'"):
        sync_frames([0.0], xr.Dataset({"x": ("time", np.zeros(3))}, coords={"time": [0.0, 1, 2]}))
    with pytest.raises(DataValidationError, match="must be an xarray.Dataset"):
        sync_frames([0.0], {"time": [0, 1]})


def test_real_protochips_log(real_file):
    from ionscope.io import read_log

    log = read_log(real_file("protochips_electrical.csv"))
    t = log.time.values
    starts = np.linspace(t[0], t[-1], 5)[:-1]
    s = sync_frames(starts, log, duration_s=float(starts[1] - starts[0]))
    assert s.sizes["time"] == 4 and np.all(np.isfinite(s.voltage.values))
    # each interval mean lies within the log's range over that interval
    for a, b, v in zip(starts, starts + (starts[1] - starts[0]), s.voltage.values):
        inside = log.voltage.values[(t >= a) & (t <= b)]
        assert inside.min() - 1e-9 <= v <= inside.max() + 1e-9
