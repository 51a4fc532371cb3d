# SPDX-License-Identifier: GPL-3.0-or-later
"""Stores written by other programs: coordinates in keV / µm / ms read in eV / nm / s, unknown units refused."""
import numpy as np
import pytest
import xarray as xr

from ionscope.errors import CalibrationError
from ionscope.io import load


def _store(tmp_path, suffix, *, e_units="keV", x_units="µm", t_units="ms"):
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.poisson(50, (2, 3, 4, 5)).astype("float32"), dims=("time", "y", "x", "energy"),
                      coords={"time": ("time", [0.0, 60000.0], {"units": t_units}),
                              "y": ("y", [0.0, 0.005, 0.010], {"units": x_units}),
                              "x": ("x", [0.0, 0.005, 0.010, 0.015], {"units": x_units}),
                              "energy": ("energy", [0.050, 0.0501, 0.0502, 0.0503, 0.0504], {"units": e_units})},
                      name="si")
    path = tmp_path / f"other{suffix}"
    if suffix == ".zarr":
        da.to_dataset().to_zarr(path)
    else:
        da.to_dataset().to_netcdf(path)
    return path


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_coordinates_in_other_units_are_converted(tmp_path, suffix):
    da = load(_store(tmp_path, suffix))
    np.testing.assert_allclose(da.energy.values, [50.0, 50.1, 50.2, 50.3, 50.4], rtol=1e-12)
    np.testing.assert_allclose(da.x.values, [0.0, 5.0, 10.0, 15.0], rtol=1e-12)
    np.testing.assert_allclose(da.time.values, [0.0, 60.0], rtol=1e-12)
    assert (da.energy.attrs["units"], da.x.attrs["units"], da.time.attrs["units"]) == ("eV", "nm", "s")


def test_an_unknown_unit_is_refused_naming_the_file_and_coordinate(tmp_path):
    path = _store(tmp_path, ".nc", e_units="furlong")
    with pytest.raises(CalibrationError, match=r"other\.nc: coordinate 'energy' has units 'furlong'; expected eV"):
        load(path)


def test_our_own_units_are_read_unchanged(tmp_path):
    path = _store(tmp_path, ".nc", e_units="eV", x_units="nm", t_units="s")
    da = load(path)
    assert da.energy.values[0] == 0.050 and da.x.values[1] == 0.005 and da.time.values[1] == 60000.0


def test_a_window_outside_an_axis_in_kev_labelled_ev_says_so():
    from ionscope.errors import DataValidationError
    from ionscope.eels._common import window

    kev_as_ev = np.linspace(-0.005, 0.0973, 1024)
    with pytest.raises(DataValidationError, match="is it in keV, labelled eV"):
        window(kev_as_ev, (45, 85), name="fit_range")
    # a genuinely narrow axis in eV (the zero-loss peak alone) is not second-guessed
    with pytest.raises(DataValidationError) as info:
        window(np.linspace(-1.0, 1.0, 201), (45, 85), name="fit_range")
    assert "keV" not in str(info.value)
