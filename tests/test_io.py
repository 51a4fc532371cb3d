# SPDX-License-Identifier: GPL-3.0-or-later
"""I/O: real files load with correct dims and calibration; bad files fail clearly."""
from __future__ import annotations

import numpy as np
import pytest

import ionscope
import ionscope.io as iio
from ionscope.data import axis_scale, axis_values, calibrated
from ionscope.errors import CalibrationError, DataValidationError, FileFormatError, IonscopeError, ShapeMismatchError


# --- real files ------------------------------------------------------------------------------

def test_eels_sto_energy_axis(real_file):
    da = iio.load(real_file("EELS_STO.dm3"))
    assert da.dims == ("energy",)
    assert da.shape == (2048,)
    assert float(da.energy[0]) == pytest.approx(350.0)
    assert axis_scale(da, "energy") == pytest.approx(0.25)
    assert da.energy.attrs["units"] == "eV"
    assert da.attrs["dispersion_ev"] == pytest.approx(0.25)
    assert da.attrs["signal_type"] == "EELS"


def test_eels_si_dm4_is_y_x_energy(real_file):
    da = iio.load(real_file("EELS_SI.dm4"))
    assert da.dims == ("y", "x", "energy")
    assert da.shape == (2, 2, 2048)
    assert float(da.energy[0]) == pytest.approx(300.0)
    assert axis_scale(da, "energy") == pytest.approx(1.0)
    # the file stores µm; ionscope reports nm
    assert axis_scale(da, "x") == pytest.approx(1.99207, rel=1e-4)
    assert da.x.attrs["units"] == "nm"


def test_low_loss_al(real_file):
    da = iio.load(real_file("AL-DFoffset0.00.dm3"))
    assert da.dims == ("energy",)
    assert float(da.energy[0]) == pytest.approx(-3.609, abs=1e-3)
    assert axis_scale(da, "energy") == pytest.approx(0.020126, rel=1e-4)
    # the zero-loss peak is where the calibration says 0 eV is
    e_peak = float(da.energy[int(np.argmax(da.values))])
    assert abs(e_peak) < 0.5


def test_image_stack_dm3_frame_axis_uncalibrated(real_file):
    da = iio.load(real_file("test_stackbuilder_imagestack.dm3"))
    assert da.dims == ("frame", "y", "x")
    assert da.shape == (3, 2, 16)
    assert axis_scale(da, "x") == pytest.approx(59.9829, rel=1e-4)  # 0.05998 µm in nm
    with pytest.raises(CalibrationError, match="axis 'frame' has no calibration"):
        axis_values(da, "frame")


def test_velox_emd_time_series(real_file):
    da = iio.load(real_file("fei_example_tem_stack.emd"))
    assert da.dims == ("time", "y", "x")
    assert da.shape == (2, 3, 3)
    assert axis_scale(da, "time") == pytest.approx(0.8)
    assert da.time.attrs["units"] == "s"
    assert axis_scale(da, "x") == pytest.approx(8.172883e-3, rel=1e-5)  # pm → nm
    assert da.attrs["timestamp"].startswith("2019-12-05T10:03:44")


@pytest.mark.parametrize("name, offset", [("Cr_L_cl.hspy", 560.0), ("Cr_L_ll.hspy", -20.0)])
def test_hspy_spectra(real_file, name, offset):
    da = iio.load(real_file(name))
    assert da.dims == ("energy",)
    assert float(da.energy[0]) == pytest.approx(offset)
    assert axis_scale(da, "energy") == pytest.approx(0.1)
    assert da.attrs["beam_energy_kv"] == pytest.approx(200.0)
    assert da.attrs["convergence_angle_mrad"] == pytest.approx(21.0)
    assert da.attrs["collection_angle_mrad"] == pytest.approx(50.0)


@pytest.mark.parametrize("name", ["01_holo_Vbp_130V_0V_bin2_crop.hdf5", "00_ref_Vbp_130V_0V_bin2_crop.hdf5"])
def test_holograms_hdf5(real_file, name):
    da = iio.load(real_file(name))
    assert da.dims == ("y", "x")
    assert da.shape == (512, 512)
    assert axis_scale(da, "x") == pytest.approx(0.91975, rel=1e-4)
    assert da.attrs["beam_energy_kv"] == pytest.approx(300.0)
    assert da.attrs["exposure_s"] == pytest.approx(10.0)
    # forcing the reader, as the shared README suggests, gives the same result
    forced = iio.load(real_file(name), reader="HSPY")
    np.testing.assert_array_equal(forced.values, da.values)


def test_protochips_log(real_file):
    log = iio.read_log(real_file("protochips_electrical.csv"))
    assert log.sizes["time"] == 154
    assert log.time.attrs["units"] == "s"
    assert float(log.time[-1]) == pytest.approx(15.276)  # 15276 ms
    assert np.all(np.diff(log.time.values) > 0)
    assert log.voltage.attrs["units"] == "V" and log.current.attrs["units"] == "A"
    assert float(log.voltage.max()) == pytest.approx(40.09, abs=0.01)
    assert log.attrs["timestamp"] == "2014-10-08T16:26:51.738000"


def test_lazy_load_matches_eager(real_file):
    eager = iio.load(real_file("EELS_SI.dm4"))
    lazy = iio.load(real_file("EELS_SI.dm4"), lazy=True)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, eager.values)


# --- native formats ----------------------------------------------------------------------------

def _series():
    rng = np.random.default_rng(0)
    return calibrated(rng.poisson(5.0, (3, 4, 5, 16)).astype("float32"), ("time", "y", "x", "energy"),
                      scale={"time": 60.0, "y": 2.0, "x": 2.0, "energy": 0.5}, offset={"energy": 40.0},
                      attrs={"beam_energy_kv": 200.0, "exposure_s": 0.01, "extra": {"a": [1, 2]}})


@pytest.mark.parametrize("ext", [".zarr", ".nc", ".hspy"])
def test_save_load_roundtrip(tmp_path, ext):
    da = _series()
    out = iio.save(da, tmp_path / f"s{ext}")
    back = iio.load(out)
    assert back.dims == da.dims
    np.testing.assert_array_equal(back.values, da.values)
    for dim in ("time", "y", "x", "energy"):
        np.testing.assert_allclose(axis_values(back, dim), axis_values(da, dim))
    assert back.attrs["beam_energy_kv"] == 200.0
    if ext != ".hspy":
        assert back.attrs["extra"] == {"a": [1, 2]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_zarr_is_lazy_and_chunked(tmp_path):
    da = _series()
    iio.save(da, tmp_path / "s.zarr", chunks={"time": 1})
    back = iio.load(tmp_path / "s.zarr")
    assert back.chunks is not None and back.chunks[0] == (1, 1, 1)


def test_complex_netcdf_roundtrip(tmp_path):
    z = calibrated(np.exp(1j * np.linspace(0, 3, 12)).reshape(3, 4), ("y", "x"))
    iio.save(z, tmp_path / "c.nc")
    np.testing.assert_allclose(iio.load(tmp_path / "c.nc").values, z.values)


def test_series_writer_bounded_and_atomic(tmp_path):
    template = calibrated(np.zeros((4, 8, 8), "f4"), ("time", "y", "x"), scale={"time": 60.0})
    path = tmp_path / "w.zarr"
    with pytest.raises(RuntimeError):
        with iio.ZarrSeriesWriter(path, template, chunks={"time": 1}) as w:
            w.write({"time": slice(0, 1)}, np.ones((1, 8, 8)))
            raise RuntimeError("killed while writing")
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written
    with iio.ZarrSeriesWriter(path, template, chunks={"time": 1}) as w:
        for t in range(4):
            w.write({"time": slice(t, t + 1)}, np.full((1, 8, 8), t))
    back = iio.load(path)
    np.testing.assert_array_equal(back.mean(("y", "x")).values, [0, 1, 2, 3])
    np.testing.assert_allclose(axis_values(back, "time"), [0, 60, 120, 180])


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    da = _series()
    path = iio.save(da, tmp_path / "s.nc")
    before = path.read_bytes()
    import xarray as xr

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(OSError):
        iio.save(da * 2, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.nc"]


# --- bad inputs --------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        iio.load(tmp_path / "nope.dm3")


def test_truncated_dm3(real_file, tmp_path):
    data = real_file("EELS_STO.dm3").read_bytes()
    bad = tmp_path / "truncated.dm3"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"truncated\.dm3: could not read the file as \.dm3"):
        iio.load(bad)


def test_not_a_dm3(tmp_path):
    bad = tmp_path / "notes.dm3"
    bad.write_text("this is a text file")
    with pytest.raises(FileFormatError, match="notes.dm3"):
        iio.load(bad)


def test_empty_file(tmp_path):
    bad = tmp_path / "empty.dm4"
    bad.write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty.dm4: the file is empty"):
        iio.load(bad)


def test_wrong_extension(real_file, tmp_path):
    bad = tmp_path / "spectrum.txt"
    bad.write_bytes(real_file("EELS_STO.dm3").read_bytes())
    with pytest.raises(FileFormatError, match=r"spectrum.txt: unsupported file extension '\.txt'"):
        iio.load(bad)


def test_nan_counts_rejected(tmp_path):
    da = _series()
    da[0, 0, 0, 3] = np.nan
    iio.save(da, tmp_path / "nan.hspy")
    with pytest.raises(DataValidationError, match=r"nan.hspy \(field 'data'\): 1 NaN/Inf"):
        iio.load(tmp_path / "nan.hspy")
    assert np.isnan(iio.load(tmp_path / "nan.hspy", allow_nonfinite=True).values).sum() == 1


def test_uncalibrated_axis(tmp_path):
    import xarray as xr

    iio.save(xr.DataArray(np.ones((3, 50), "f4"), dims=("frame", "energy")), tmp_path / "raw.hspy")
    da = iio.load(tmp_path / "raw.hspy")
    assert da.dims == ("frame", "energy")
    with pytest.raises(CalibrationError, match="axis 'energy' has no calibration; expected coordinates in eV"):
        axis_values(da, "energy")


def test_save_rejects_unknown_dims_and_formats(tmp_path):
    import xarray as xr

    with pytest.raises(DataValidationError, match="unknown dimension name"):
        iio.save(xr.DataArray(np.zeros(3), dims=["wavelength"]), tmp_path / "a.zarr")
    with pytest.raises(FileFormatError, match="cannot save as '.tif'"):
        iio.save(_series(), tmp_path / "a.tif")
    with pytest.raises(DataValidationError, match="expected an xarray.DataArray"):
        iio.save(np.zeros(3), tmp_path / "a.zarr")


def test_bad_log(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match="no 'time' column"):
        iio.read_log(p)
    p.write_text("time (min),voltage (mV),current (uA)\n0,3700,1\n1,3800,1\n2,3900,1\n")
    log = iio.read_log(p)
    np.testing.assert_allclose(log.time, [0, 60, 120])
    np.testing.assert_allclose(log.voltage, [3.7, 3.8, 3.9])
    np.testing.assert_allclose(log.current, [1e-6] * 3)


def test_errors_are_one_family():
    for cls in (FileFormatError, CalibrationError, DataValidationError):
        assert issubclass(cls, IonscopeError)
    assert ionscope.IonscopeError is IonscopeError


def test_hyperspy_roundtrip():
    pytest.importorskip("hyperspy", reason="HyperSpy is an optional extra (pip install 'ionscope[hyperspy]')")
    da = _series()
    s = iio.to_hyperspy(da)
    assert s.axes_manager.signal_dimension == 1
    assert s.axes_manager.signal_axes[0].offset == pytest.approx(40.0)
    back = iio.from_hyperspy(s)
    assert back.dims == da.dims
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_allclose(axis_values(back, "energy"), axis_values(da, "energy"))
    np.testing.assert_allclose(axis_values(back, "time"), axis_values(da, "time"))


def test_msa_spectrum(tmp_path):
    from rsciio.msa import file_writer

    data = np.linspace(1.0, 2.0, 64).astype("f4")
    file_writer(str(tmp_path / "s.msa"), {
        "data": data,
        "axes": [{"name": "Energy", "size": 64, "scale": 0.5, "offset": 45.0, "units": "eV", "navigate": False}],
        "metadata": {"General": {"title": "test"}, "Signal": {"signal_type": "EELS"},
                     "Acquisition_instrument": {"TEM": {"beam_energy": 200.0}}},
        "original_metadata": {}})
    da = iio.load(tmp_path / "s.msa")
    assert da.dims == ("energy",)
    assert float(da.energy[0]) == pytest.approx(45.0) and axis_scale(da, "energy") == pytest.approx(0.5)
    np.testing.assert_allclose(da.values, data, rtol=1e-5)


# ---- loader validation: bad axis metadata, empty and non-numeric data name the file and the field ---------------


def _signal(data, **axis):
    ax = [{"name": "Energy", "size": np.shape(data)[-1], "scale": 0.5, "offset": 45.0, "units": "eV",
           "navigate": False, **axis}]
    return {"data": data, "axes": ax, "metadata": {}}


@pytest.mark.parametrize("field, value, message", [
    ("scale", float("nan"), "field 'scale' is nan"),
    ("scale", 0.0, "field 'scale' is 0.0; expected a positive step"),
    ("scale", -0.5, "field 'scale' is -0.5"),
    ("offset", float("inf"), "field 'offset' is inf"),
    ("size", 7, "field 'size' is 7"),
])
def test_bad_axis_metadata_is_a_calibration_error(field, value, message):
    from ionscope.io._convert import signal_dict_to_dataarray

    with pytest.raises(CalibrationError, match=message) as exc:
        signal_dict_to_dataarray(_signal(np.ones(16), **{field: value}), source="f.msa")
    assert "f.msa: axis 0 (Energy)" in str(exc.value)


def test_empty_or_string_data_are_refused():
    from ionscope.io._convert import signal_dict_to_dataarray

    with pytest.raises(DataValidationError, match="f.dm3: field 'data' is empty"):
        signal_dict_to_dataarray(_signal(np.ones(0)), source="f.dm3")
    with pytest.raises(DataValidationError, match="dtype <U1; expected numbers"):
        signal_dict_to_dataarray(_signal(np.array(list("abcd"))), source="f.dm3")


def test_bad_axis_in_a_real_hspy_file(real_file, tmp_path):
    import shutil

    import h5py

    path = tmp_path / "bad.hspy"
    shutil.copy(real_file("Cr_L_cl.hspy"), path)
    with h5py.File(path, "r+") as f:
        f["Experiments/__unnamed__/axis-0"].attrs["scale"] = np.nan
    with pytest.raises(CalibrationError, match="bad.hspy.*field 'scale' is nan"):
        iio.load(path)


def test_multi_variable_stores_round_trip(tmp_path):
    """What limap/mva/the simulator write (several variables, Zarr v3) loads as a Dataset and saves again."""
    import xarray as xr

    from ionscope.data import calibrated

    li = calibrated(np.random.default_rng(0).random((2, 3, 4)), ("time", "y", "x"),
                    scale={"time": 60.0, "y": 5.0, "x": 5.0})
    ds = xr.Dataset({"Li": li, "Li_std": li * 0.1, "ok": li > 0.5}, attrs={"method": "mlls", "fit_range_ev": [30, 80]})
    ds = ds.assign_coords(component=("component", ["Li", "Co"]))
    ds["w"] = xr.DataArray(np.ones((2, 2)), dims=("component", "time"))
    ds.chunk({"time": 1}).to_zarr(tmp_path / "v3.zarr", zarr_format=3, consolidated=False)
    ds.to_zarr(tmp_path / "v2.zarr", zarr_format=2)
    for src in ("v3.zarr", "v2.zarr"):
        back = iio.load(tmp_path / src)
        assert isinstance(back, xr.Dataset) and set(back.data_vars) == {"Li", "Li_std", "ok", "w"}
        for out in ("copy.zarr", "copy.nc"):
            iio.save(back, tmp_path / out)
            again = iio.load(tmp_path / out)
            xr.testing.assert_identical(again.load(), back.load())
        one = iio.load(tmp_path / src, var="Li")
        assert one.attrs["method"] == "mlls" and one.attrs["fit_range_ev"] == [30, 80]
        iio.save(one, tmp_path / "one.zarr")
        np.testing.assert_array_equal(iio.load(tmp_path / "one.zarr").values, li.values)
    with pytest.raises(FileFormatError, match="has no variable 'Mn'; it holds"):
        iio.load(tmp_path / "v2.zarr", var="Mn")
    with pytest.raises(FileFormatError, match=".hspy holds one signal"):
        iio.save(back, tmp_path / "x.hspy")


def test_series_writer_rejects_a_block_of_the_wrong_shape(tmp_path):
    template = calibrated(np.zeros((4, 8, 8), "f4"), ("time", "y", "x"))
    with pytest.raises(ShapeMismatchError):
        with iio.ZarrSeriesWriter(tmp_path / "w.zarr", template, chunks={"time": 1}) as w:
            w.write({"time": slice(0, 1)}, np.ones((1, 8, 9)))
    with pytest.raises(ShapeMismatchError):
        with iio.ZarrSeriesWriter(tmp_path / "w.zarr", template, chunks={"time": 1}) as w:
            w.write({"energy": slice(0, 1)}, np.ones((1, 8, 8)))
    assert not list(tmp_path.iterdir())
