# SPDX-License-Identifier: GPL-3.0-or-later
"""The data model: vocabulary, calibration, and one code path in memory and out of core."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ionscope.data import (
    DIMS,
    apply_kernel,
    as_dataarray,
    axis_scale,
    calibrated,
    check_finite,
    like_input,
)
from ionscope.errors import CalibrationError, DataValidationError, ShapeMismatchError


def _pre_edge_mean(spectra, *, n):
    """A toy kernel: mean of the first n channels of each spectrum (last axis)."""
    return spectra[..., :n].mean(axis=-1)


def test_vocabulary_is_fixed():
    assert DIMS == ("time", "frame", "y", "x", "energy", "position", "component")
    with pytest.raises(DataValidationError, match="unknown dimension name"):
        calibrated(np.zeros(3), ("wavelength",))
    with pytest.raises(ShapeMismatchError, match="name 2 axes but the data have 1"):
        calibrated(np.zeros(3), ("y", "x"))


def test_calibrated_units_and_values():
    da = calibrated(np.zeros((2, 5)), ("position", "energy"), scale={"energy": 0.5, "position": 2.0},
                    offset={"energy": 50.0})
    assert da.energy.attrs["units"] == "eV" and da.position.attrs["units"] == "nm"
    np.testing.assert_allclose(da.energy, [50, 50.5, 51, 51.5, 52])
    assert axis_scale(da, "energy") == 0.5


def test_non_uniform_axis_rejected():
    da = calibrated(np.zeros(4), ("energy",), coords={"energy": [0, 1, 2, 4]})
    with pytest.raises(CalibrationError, match="not uniformly sampled"):
        axis_scale(da, "energy")


def test_plain_arrays_get_default_dims():
    assert as_dataarray(np.zeros((2, 3, 10))).dims == ("y", "x", "energy")
    assert as_dataarray(np.zeros((4, 3, 3)), kind="image").dims == ("time", "y", "x")
    with pytest.raises(ShapeMismatchError, match="must have"):
        as_dataarray(np.zeros((1, 2, 3, 4, 5)))
    arr = np.ones(3)
    assert like_input(as_dataarray(arr), arr) is not None and isinstance(like_input(as_dataarray(arr), arr),
                                                                          np.ndarray)


def test_check_finite_message():
    with pytest.raises(DataValidationError, match="frame 3: 2 NaN/Inf"):
        check_finite(np.array([1.0, np.nan, np.inf]), name="frame 3")


def test_apply_kernel_same_result_in_memory_and_out_of_core():
    """LiberTEM-style check: the same computation on two executors agrees exactly."""
    rng = np.random.default_rng(1)
    da = calibrated(rng.poisson(20, (6, 8, 9, 40)).astype("f8"), ("time", "y", "x", "energy"),
                    scale={"energy": 0.1}, offset={"energy": 40})
    eager = apply_kernel(_pre_edge_mean, da, input_core_dims=[["energy"]], kwargs={"n": 10})
    lazy_in = da.chunk({"time": 2, "y": 4, "energy": 7})  # energy split on purpose: core dims get one chunk
    lazy = apply_kernel(_pre_edge_mean, lazy_in, input_core_dims=[["energy"]], kwargs={"n": 10})
    assert lazy.chunks is not None  # still lazy
    assert lazy.chunks[0] == (2, 2, 2)  # loop-dim chunks kept
    np.testing.assert_array_equal(lazy.compute().values, eager.values)
    import dask

    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(lazy.compute().values, eager.values)


def test_import_is_light():
    """``import ionscope`` must not pull numpy/xarray/dask (they load lazily)."""
    code = ("import sys, ionscope; heavy = [m for m in ('numpy', 'xarray', 'dask', 'scipy', 'sklearn') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
