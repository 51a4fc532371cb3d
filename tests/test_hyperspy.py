# SPDX-License-Identifier: GPL-3.0-or-later
"""HyperSpy interop: orientation, axes and metadata of every kind of data ionscope handles, both ways.

HyperSpy (and exspy, holospy) are part of the ``test`` extra, so these run in CI.
"""
from __future__ import annotations

import numpy as np
import pytest

import ionscope.io as iio
from ionscope.data import calibrated

hs = pytest.importorskip("hyperspy.api", reason="HyperSpy is in the test extra: pip install -e '.[test]'")

META = {"beam_energy_kv": 300.0, "exposure_s": 0.5, "title": "a title", "doi": "10.1063/1.4916609",
        "timestamp": "2019-12-05T10:03:44"}


def _da(dims, *, dtype=float, **attrs):
    shape = {"time": 3, "frame": 2, "y": 3, "x": 4, "energy": 5, "position": 6, "component": 2}
    sh = tuple(shape[d] for d in dims)
    data = np.arange(np.prod(sh), dtype=float).reshape(sh)
    if dtype is complex:
        data = data + 1j * data[::-1]
    scale = {"time": 60.0, "y": 0.5, "x": 0.5, "energy": 0.25, "position": 0.2}
    offset = {"time": 30.0, "y": 183.95, "x": -2.0, "energy": 50.0, "position": 1.0}
    return calibrated(data, dims, scale={d: scale[d] for d in dims if d in scale},
                      offset={d: offset[d] for d in dims if d in offset}, attrs={**META, **attrs}, name="li")


CASES = {
    "spectrum": (("energy",), 1, 0),
    "line scan": (("position", "energy"), 1, 1),
    "image": (("y", "x"), 2, 0),
    "spectrum image": (("y", "x", "energy"), 1, 2),
    "movie": (("time", "y", "x"), 2, 1),
    "series of spectrum images": (("time", "y", "x", "energy"), 1, 3),
    "frame stack": (("frame", "y", "x"), 2, 1),
}


@pytest.mark.parametrize("name", CASES)
def test_round_trip_is_exact(name):
    dims, n_sig, n_nav = CASES[name]
    da = _da(dims)
    s = iio.to_hyperspy(da)
    am = s.axes_manager
    assert (am.signal_dimension, am.navigation_dimension) == (n_sig, n_nav)
    assert s.data.shape == da.shape  # ionscope's array order is HyperSpy's: no transposition
    back = iio.from_hyperspy(s)
    assert back.dims == da.dims and back.name == da.name
    np.testing.assert_array_equal(back.values, da.values)
    for d in dims:
        np.testing.assert_allclose(back[d].values, da[d].values, rtol=1e-12, atol=1e-9)
        assert back[d].attrs.get("units") == da[d].attrs.get("units")
    expected = {**da.attrs}
    if "energy" in dims:
        expected["dispersion_ev"] = 0.25
    assert {k: back.attrs[k] for k in expected} == expected
    assert set(back.attrs) <= set(expected) | {"signal_type"}


def test_image_orientation_matches_hyperspy_conventions():
    da = _da(("y", "x"))  # 3 × 4
    s = iio.to_hyperspy(da)
    assert s.data.shape == (3, 4)
    assert [a.name for a in s.axes_manager.signal_axes] == ["x", "y"]  # HyperSpy lists x first
    assert s.axes_manager.signal_axes[0].size == 4 and s.axes_manager.signal_axes[1].offset == pytest.approx(183.95)
    for iy in range(3):
        for ix in range(4):
            assert s.isig[ix, iy].data.item() == float(da[iy, ix])
    # x in nm, as HyperSpy's float indexing uses calibrated units
    assert s.isig[-2.0 + 0.5, 183.95].data.item() == float(da[0, 1])


def test_movie_navigates_in_time_and_spectrum_image_in_space():
    mv = iio.to_hyperspy(_da(("time", "y", "x")))
    assert mv.axes_manager.navigation_axes[0].name == "time"
    assert mv.axes_manager.navigation_axes[0].units == "s"
    np.testing.assert_array_equal(mv.inav[2].data, _da(("time", "y", "x"))[2].values)
    si = _da(("y", "x", "energy"))
    s = iio.to_hyperspy(si)
    np.testing.assert_array_equal(s.inav[3, 1].data, si[1, 3].values)  # inav: x first
    assert s.metadata.Signal.signal_type == "EELS"


def test_energy_first_input_is_put_last():
    da = _da(("y", "x", "energy")).transpose("energy", "y", "x")
    s = iio.to_hyperspy(da)
    assert s.axes_manager.signal_axes[0].name == "energy" and s.data.shape == (3, 4, 5)


def test_metadata_map_to_hyperspy_paths():
    da = _da(("y", "x"), signal_type="hologram", biprism_voltage_v=130.0, convergence_angle_mrad=10.0)
    md = iio.to_hyperspy(da).metadata
    assert md.Acquisition_instrument.TEM.beam_energy == 300.0
    assert md.Acquisition_instrument.TEM.Biprism.voltage == 130.0
    assert md.Acquisition_instrument.TEM.Detector.Camera.exposure == 0.5  # an image: camera exposure
    assert md.General.doi == "10.1063/1.4916609" and md.General.title == "a title"
    assert md.General.date == "2019-12-05" and md.General.time == "10:03:44"
    assert md.Signal.signal_type == "hologram"
    spec = iio.to_hyperspy(_da(("y", "x", "energy"), collection_angle_mrad=20.0)).metadata
    assert spec.Acquisition_instrument.TEM.Detector.EELS.exposure == 0.5
    assert spec.Acquisition_instrument.TEM.Detector.EELS.collection_angle == 20.0


def test_complex_wave_is_a_complex_signal():
    wave = _da(("y", "x"), dtype=complex, signal_type="electron wave")
    s = iio.to_hyperspy(wave)
    assert "Complex" in type(s).__name__
    back = iio.from_hyperspy(s)
    np.testing.assert_array_equal(back.values, wave.values)
    assert back.attrs["signal_type"] == "electron wave"


def test_real_hologram_file_both_ways(real_file, tmp_path):
    path = real_file("01_holo_Vbp_130V_0V_bin2_crop.hdf5")
    da = iio.load(path, reader="HSPY")
    assert da.attrs["biprism_voltage_v"] == 130.0 and da.attrs["exposure_s"] == 10.0
    assert da.attrs["doi"] == "10.1063/1.4916609" and da.attrs["beam_energy_kv"] == 300.0
    s_hs = hs.load(path, reader="HSPY")  # HyperSpy's own reading of the file
    s = iio.to_hyperspy(da)
    np.testing.assert_array_equal(s.data, s_hs.data)
    for mine, theirs in zip(s.axes_manager.signal_axes, s_hs.axes_manager.signal_axes):
        assert (mine.name, mine.size, mine.units) == (theirs.name, theirs.size, theirs.units)
        assert mine.scale == pytest.approx(theirs.scale) and mine.offset == pytest.approx(theirs.offset)
    back = iio.from_hyperspy(s_hs)
    assert back.dims == ("y", "x")
    np.testing.assert_array_equal(back.values, da.values)
    assert back.attrs["biprism_voltage_v"] == 130.0
    iio.save(da, tmp_path / "h.hspy")
    again = iio.load(tmp_path / "h.hspy")
    assert {k: again.attrs[k] for k in ("biprism_voltage_v", "exposure_s", "doi", "title")} == \
        {k: da.attrs[k] for k in ("biprism_voltage_v", "exposure_s", "doi", "title")}


def test_real_spectrum_image_matches_hyperspy(real_file):
    path = real_file("EELS_SI.dm4")
    da = iio.load(path)
    s_hs = hs.load(path)
    s = iio.to_hyperspy(da)
    np.testing.assert_array_equal(s.data, s_hs.data)
    assert s.axes_manager.signal_axes[0].scale == pytest.approx(s_hs.axes_manager.signal_axes[0].scale)
    assert s.axes_manager.signal_axes[0].offset == pytest.approx(s_hs.axes_manager.signal_axes[0].offset)
    assert iio.from_hyperspy(s_hs).dims == ("y", "x", "energy")
