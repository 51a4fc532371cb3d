# SPDX-License-Identifier: GPL-3.0-or-later
"""Damaged Zarr chunks (issue 17, item 7): a FileFormatError naming the store and the chunk, wherever data are read.

A chunk file flipped or cut short makes the codec raise its own error
(``RuntimeError: error during blosc decompression``); ionscope names the
store, the array and the chunk instead — in ``io.load(..., lazy=False)``, when
a lazily loaded array is computed, in ``ionscope info``/``convert`` and inside
a run (where the frame is skipped, its reason naming the chunk).
"""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import xarray as xr

import ionscope.io as iio
from ionscope.data import calibrated
from ionscope.errors import FileFormatError


def _series(n=4):
    rng = np.random.default_rng(0)
    return calibrated(rng.poisson(20.0, (n, 6, 5, 40)).astype("f4"), ("time", "y", "x", "energy"),
                      scale={"energy": 0.5, "time": 60.0}, offset={"energy": 40.0})


def _damage(chunk, how):
    raw = bytearray(chunk.read_bytes())
    if how == "flip":
        raw[16:48] = bytes(b ^ 0xFF for b in raw[16:48])
    else:
        raw = raw[: len(raw) // 3]
    chunk.write_bytes(bytes(raw))


@pytest.fixture
def store(tmp_path):
    p = tmp_path / "s.zarr"
    iio.save(_series().chunk({"time": 1}), p)
    return p


def test_an_intact_store_reads_as_xarray_reads_it(store):
    ours = iio.load(store)
    theirs = xr.open_zarr(store)["data"]
    assert ours.chunks == theirs.chunks
    np.testing.assert_array_equal(ours.values, theirs.values)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ours)).values, theirs.values)  # to dask workers
    assert iio.load(store, chunks={"time": -1}).chunks[0] == (4,)
    assert isinstance(iio.load(store, lazy=False).data, np.ndarray)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_data_chunk_is_named(store, how):
    _damage(store / "data" / "2.0.0.0", how)
    pattern = rf"{store}: chunk data/2.0.0.0 of array 'data' .* the store is damaged"
    with pytest.raises(FileFormatError, match=pattern):
        iio.load(store, lazy=False)
    lazy = iio.load(store)  # opening reads no data
    with pytest.raises(FileFormatError, match=pattern):
        lazy.values
    with pytest.raises(FileFormatError, match=pattern):  # a block spanning several chunks names the bad one
        iio.load(store, chunks={"time": -1}).sum().values
    np.testing.assert_array_equal(lazy.isel(time=1).values, _series().isel(time=1).values)  # the rest reads


@pytest.mark.parametrize("coord", ["energy", "time"])  # time: 4 values, a chunk Blosc stores uncompressed
def test_a_damaged_coordinate_chunk_is_named_at_open_and_by_info(store, capsys, coord):
    from ionscope.cli import main

    _damage(store / coord / "0", "truncate")
    with pytest.raises(FileFormatError, match=rf"{store}: chunk {coord}/0 of array '{coord}' .* the store is damaged"):
        iio.load(store)
    assert main(["info", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"chunk {coord}/0 of array '{coord}'" in err and err.count("\n") == 1 and "Traceback" not in err


def test_convert_names_the_damaged_chunk_and_writes_nothing(store, tmp_path, capsys):
    from ionscope.cli import main

    _damage(store / "data" / "3.0.0.0", "flip")
    out = tmp_path / "copy.nc"
    assert main(["convert", str(store), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "chunk data/3.0.0.0 of array 'data'" in err and err.count("\n") == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".copy")]


def test_a_multi_variable_store_names_the_variable(tmp_path):
    ds = xr.Dataset({"li": _series().isel(energy=0, drop=True), "co": _series().isel(energy=1, drop=True)})
    p = tmp_path / "maps.zarr"
    iio.save(ds.chunk({"time": 1}), p)
    _damage(p / "co" / "1.0.0", "truncate")
    both = iio.load(p)
    np.testing.assert_array_equal(both["li"].values, ds["li"].values)
    with pytest.raises(FileFormatError, match=r"chunk co/1.0.0 of array 'co'"):
        both["co"].values


@pytest.fixture(scope="module")
def sim():
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(12, 16), n_frames=6, energy_step=0.5, dose=400.0, seed=5)
    return si, log


def _cfg(series, out):
    return {"input": {"series": str(series), "frame_interval_s": 60.0}, "output": {"dir": str(out)},
            "register": {"window_ev": [30.0, 50.0]}, "denoise": {"method": "gaussian"},
            "report": {"movies": [], "viewer": False, "figures": False}, "compute": {"frames_per_batch": 2}}


def test_inside_a_run_the_frame_is_skipped_and_its_reason_names_the_chunk(sim, tmp_path):
    from ionscope.operando import run

    si, log = sim
    store = tmp_path / "series.zarr"
    iio.save(si.chunk({"time": 1}), store)
    chunk = sorted((store / "si").glob("3.*"))[0]
    _damage(chunk, "flip")
    res = run(_cfg(store, tmp_path / "out"), log=log, show_progress=False)
    assert [b["frame"] for b in res.bad_frames] == [3]
    reason = res.bad_frames[0]["reason"]
    assert reason.startswith("data unreadable: ") and f"chunk si/{chunk.name} of array 'si'" in reason
    assert str(store) in reason and res.analysis.sizes["time"] == 5


def test_a_frame_store_in_a_folder_names_its_chunk(sim, tmp_path):
    from ionscope.operando import run

    si, log = sim
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(si.sizes["time"]):
        iio.save(si.isel(time=k).drop_vars("time"), folder / f"frame_{k:03d}.zarr")
    chunk = next(p for p in (folder / "frame_001.zarr" / "si").iterdir() if p.name[0].isdigit())
    _damage(chunk, "truncate")
    res = run(_cfg(folder, tmp_path / "out"), log=log, show_progress=False)
    bad = res.bad_frames
    assert [(b["frame"], b["file"]) for b in bad] == [(1, "frame_001.zarr")]
    assert f"frame_001.zarr: chunk si/{chunk.name} of array 'si' " in bad[0]["reason"]
    assert "the store is damaged" in bad[0]["reason"]
    shutil.rmtree(folder)
