# SPDX-License-Identifier: GPL-3.0-or-later
"""Metadata in, metadata out: every reader keeps the acquisition metadata HyperSpy reads from the same
file, in the one schema (``ionscope.data.METADATA_SCHEMA``); ``info`` shows it, ``convert`` writes it
where ``hs.load`` finds it, and functions that need a beam energy take it from the data and refuse a
contradicting argument."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import ionscope.io as iio
from ionscope.cli import main
from ionscope.data import METADATA_KEYS, METADATA_SCHEMA
from ionscope.errors import DataValidationError
from ionscope.io._convert import METADATA_MAP

hs = pytest.importorskip("hyperspy.api", reason="HyperSpy is in the test extra: pip install -e '.[test]'")

REAL = ["EELS_STO.dm3", "AL-DFoffset0.00.dm3", "EELS_SI.dm4", "fei_example_tem_stack.emd",
        "test_stackbuilder_imagestack.dm3", "Cr_L_cl.hspy", "Cr_L_ll.hspy",
        "01_holo_Vbp_130V_0V_bin2_crop.hdf5", "00_ref_Vbp_130V_0V_bin2_crop.hdf5"]


def _hs_load(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hs.load(str(path), file_format="HSPY") if path.suffix == ".hdf5" else hs.load(str(path))


def _reader(path):
    return "HSPY" if path.suffix == ".hdf5" else None


def _hs_value(md, key):
    """The value HyperSpy holds for a schema key: the first of its paths present (readers' order)."""
    for path in METADATA_MAP[key]:
        if md.has_item(path):
            value = md.get_item(path)
            if value is not None and value != "":
                return value
    return None


@pytest.mark.parametrize("name", REAL)
def test_every_reader_keeps_what_hyperspy_reads(real_file, name):
    path = real_file(name)
    da = iio.load(path, reader=_reader(path))
    md = _hs_load(path).metadata
    compared = 0
    for key in METADATA_MAP:
        want = _hs_value(md, key)
        if want is None:
            assert key not in da.attrs or key == "title", f"{name}: {key} not in HyperSpy's metadata"
            continue
        assert key in da.attrs, f"{name}: HyperSpy reads {key} = {want!r}, io.load dropped it"
        if METADATA_SCHEMA[key][0] == "text":
            assert da.attrs[key] == str(want), (name, key)
        else:
            assert math.isclose(float(da.attrs[key]), float(want), rel_tol=1e-12), (name, key)
        compared += 1
    if md.has_item("General.date"):
        stamp = str(md.General.date) + ("T" + str(md.General.time) if md.has_item("General.time") else "")
        assert da.attrs["timestamp"].startswith(stamp[:19]), name
    assert compared >= (3 if path.suffix in (".dm3", ".dm4", ".emd") else 1), (name, compared)


def test_dm_files_carry_the_acquisition(real_file):
    si = iio.load(real_file("EELS_SI.dm4"))
    assert si.attrs["beam_energy_kv"] == 200.0 and si.attrs["convergence_angle_mrad"] == 21.0
    assert si.attrs["collection_angle_mrad"] == 62.0 and si.attrs["microscope"] == "FEI Titan"
    assert si.attrs["timestamp"] == "2019-05-14T20:50:13" and si.attrs["title"] == "EELS_SI"
    sto = iio.load(real_file("EELS_STO.dm3"))
    assert sto.attrs["exposure_s"] == 20.0 and sto.attrs["frames_summed"] == 10
    emd = iio.load(real_file("fei_example_tem_stack.emd"))
    assert emd.attrs["beam_energy_kv"] == 300.0 and emd.attrs["microscope"] == "Titan"


def test_lazy_reading_keeps_metadata_and_gets_no_dask_name(real_file):
    path = real_file("Cr_L_ll.hspy")
    lazy, eager = iio.load(path, lazy=True), iio.load(path)
    assert lazy.attrs == eager.attrs and lazy.name is None
    assert lazy.attrs["beam_energy_kv"] == 200.0


def test_schema_is_one_table():
    assert set(METADATA_KEYS) == set(METADATA_SCHEMA)
    assert set(METADATA_MAP) <= set(METADATA_SCHEMA)
    for key, (kind, unit, meaning, paths) in METADATA_SCHEMA.items():
        assert kind in ("text", "float", "int") and meaning, key
        suffix = {"_kv": "kV", "_mrad": "mrad", "_s": "s", "_v": "V", "_mm": "mm", "_ev": "eV"}
        for end, u in suffix.items():
            if key.endswith(end):
                assert unit == u, key


def test_info_shows_the_acquisition(real_file, capsys):
    assert main(["info", str(real_file("EELS_SI.dm4"))]) == 0
    out = capsys.readouterr().out
    for line in ("beam_energy_kv: 200.0", "convergence_angle_mrad: 21.0", "collection_angle_mrad: 62.0",
                 "microscope: FEI Titan", "timestamp: 2019-05-14T20:50:13", "title: EELS_SI"):
        assert line in out, line


@pytest.mark.parametrize("name", ["EELS_SI.dm4", "EELS_STO.dm3", "fei_example_tem_stack.emd", "Cr_L_ll.hspy"])
def test_convert_writes_what_hyperspy_reads_back(real_file, tmp_path, name, capsys):
    src = real_file(name)
    out = tmp_path / "x.hspy"
    assert main(["convert", str(src), str(out), "-q"]) == 0
    original, converted = _hs_load(src).metadata, _hs_load(out).metadata
    assert str(converted.General.title) == str(original.General.title)  # Cr_L_ll: "", not a dask key
    assert not str(converted.General.title).startswith("array-")
    for key in METADATA_MAP:
        if key == "title":
            continue
        want = _hs_value(original, key)
        got = _hs_value(converted, key)
        if want is None:
            continue
        assert got is not None, f"{name}: convert lost {key}"
        if METADATA_SCHEMA[key][0] == "text":
            assert str(got) == str(want)
        else:
            assert math.isclose(float(got), float(want), rel_tol=1e-12), (key, got, want)
    if original.has_item("Acquisition_instrument.TEM.beam_energy"):
        assert converted.Acquisition_instrument.TEM.beam_energy == pytest.approx(
            float(original.Acquisition_instrument.TEM.beam_energy))
    if original.has_item("General.date"):
        assert str(converted.General.date) == str(original.General.date)


def test_acquisition_value_takes_the_file_and_refuses_a_contradiction():
    import xarray as xr

    da = xr.DataArray(np.zeros(3), dims="x", attrs={"beam_energy_kv": 300.0, "source_file": "h.dm4"})
    assert iio.acquisition_value(da, "beam_energy_kv") == 300.0
    assert iio.acquisition_value(da, "beam_energy_kv", 300.5) == 300.5  # within 1 %: the caller's value
    with pytest.raises(DataValidationError, match=r"voltage_kv=200 kV contradicts h.dm4 \(beam_energy_kv = 300 kV\)"):
        iio.acquisition_value(da, "beam_energy_kv", 200, argument="voltage_kv")
    with pytest.raises(DataValidationError, match="records no beam_energy_kv"):
        iio.acquisition_value(np.zeros(3), "beam_energy_kv", argument="voltage_kv")
    assert iio.acquisition_value(np.zeros(3), "beam_energy_kv", required=False) is None
    # a zero beam energy is an unset field (DM writes 0 for unknown values), not a measurement
    unset = xr.DataArray(np.zeros(3), dims="x", attrs={"beam_energy_kv": 0.0})
    assert iio.acquisition_value(unset, "beam_energy_kv", 200) == 200.0


def test_holography_takes_the_beam_energy_from_the_data():
    from ionscope.holography import interaction_constant, to_potential
    from ionscope.simulate import hologram

    holo, _, _ = hologram(shape=(64, 64), seed=0)
    assert holo.attrs["beam_energy_kv"] == 200.0
    phase = holo.copy(data=np.full(holo.shape, 0.5)).assign_attrs(units="rad")
    v = to_potential(phase, thickness_nm=50.0)  # no voltage_kv: the data's 200 kV
    assert float(v.mean()) == pytest.approx(0.5 / (interaction_constant(200.0) * 50.0), rel=1e-12)
    with pytest.raises(DataValidationError, match="contradicts"):
        to_potential(phase, voltage_kv=300.0, thickness_nm=50.0)
    with pytest.raises(DataValidationError, match="records no beam_energy_kv"):
        to_potential(np.full((4, 4), 0.5), thickness_nm=50.0)


def test_bias_difference_converts_with_the_data_voltage():
    from ionscope.holography import bias_difference, reconstruct
    from ionscope.simulate import hologram

    h0, r0, t0 = hologram(shape=(96, 96), seed=0)
    h1, r1, _ = hologram(shape=(96, 96), bias_v=1.0, seed=1)
    w0, w1 = reconstruct(h0, r0, full_size=True), reconstruct(h1, r1, full_size=True)
    out = bias_difference(w1, w0, mask=t0.vacuum.values, align=False, thickness_nm=60.0)
    explicit = bias_difference(w1, w0, mask=t0.vacuum.values, align=False, thickness_nm=60.0, voltage_kv=200.0)
    np.testing.assert_allclose(out.potential_difference, explicit.potential_difference)
    with pytest.raises(DataValidationError, match="contradicts"):
        bias_difference(w1, w0, mask=t0.vacuum.values, align=False, thickness_nm=60.0, voltage_kv=300.0)


def test_holo_profile_refuses_a_voltage_that_contradicts_the_file(real_file, tmp_path, capsys):
    wave = tmp_path / "wave.nc"
    assert main(["holo", "reconstruct", str(real_file("01_holo_Vbp_130V_0V_bin2_crop.hdf5")), "--vacuum",
                 str(real_file("00_ref_Vbp_130V_0V_bin2_crop.hdf5")), "--reader", "HSPY", "-o", str(wave),
                 "--no-preview", "-q"]) == 0
    assert iio.load(wave).attrs["beam_energy_kv"] == 300.0  # the hologram's metadata travel with the wave
    capsys.readouterr()
    args = ["holo", "profile", str(wave), "--start-px", "10", "60", "--end-px", "110", "60", "--thickness-nm", "50"]
    assert main([*args, "--voltage-kv", "200"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--voltage-kv 200 kV contradicts" in err and "300 kV" in err
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["voltage_kv"] == 300.0 and result["quantity"] == "potential"


def test_maps_keep_the_acquisition_of_their_spectrum_image(real_file, tmp_path):
    assert main(["mva", str(real_file("EELS_SI.dm4")), "-o", str(tmp_path / "pca.zarr"), "-q"]) == 0
    attrs = iio.load(tmp_path / "pca.zarr").attrs
    assert attrs["beam_energy_kv"] == 200.0 and attrs["microscope"] == "FEI Titan"
    assert attrs["timestamp"] == "2019-05-14T20:50:13" and attrs["collection_angle_mrad"] == 62.0


def test_the_data_model_page_is_current():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "make_data_model.py"
    spec = importlib.util.spec_from_file_location("make_data_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.PAGE.read_text() == mod.render(), "run: PYTHONPATH=src python docs/make_data_model.py"
