# SPDX-License-Identifier: GPL-3.0-or-later
"""bias_series' frame reader (chunk by chunk, read ahead) and map writer (behind): same frames, same store."""
from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from ionscope.errors import ShapeMismatchError
from ionscope.holography import _series
from ionscope.io import ZarrSeriesWriter, load


def _frames(n=11, ny=6, nx=5):
    return np.arange(n * ny * nx, dtype=np.float32).reshape(n, ny, nx)


@pytest.mark.parametrize("chunks, batch", [
    ((1, -1, -1), 1),     # one frame per chunk: each chunk's own task
    ((1, -1, -1), 4),     # several chunks grouped into a batch
    ((3, -1, -1), 4),     # chunks of 3 frames, a batch holds one
    ((3, -1, -1), 2),     # a chunk larger than a batch: sliced
    ((2, 3, -1), 4),      # frames split across chunks: sliced
    (None, 4),            # numpy
])
def test_time_blocks_give_every_frame_once_in_order(chunks, batch):
    arr = _frames()
    data = arr if chunks is None else dsa.from_array(arr, chunks=chunks)
    got = list(_series._time_blocks(xr.DataArray(data, dims=("time", "y", "x")), batch))
    starts = [s for s, _ in got]
    assert starts == sorted(starts) and all(1 <= b.shape[0] <= batch for _, b in got)
    assert all(isinstance(b, np.ndarray) for _, b in got)
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), arr)
    np.testing.assert_array_equal(starts, np.cumsum([0] + [b.shape[0] for _, b in got])[:-1])


def test_time_blocks_of_a_transposed_zarr_store(tmp_path):
    # a store read lazily and transposed (as bias_series does with its input): the chunk tasks include it
    arr = _frames()
    xr.Dataset({"h": (("y", "time", "x"), arr.transpose(1, 0, 2))}).to_zarr(tmp_path / "s.zarr",
                                                                             encoding={"h": {"chunks": (6, 1, 5)}})
    da = xr.open_zarr(tmp_path / "s.zarr")["h"].transpose("time", "y", "x")
    got = np.concatenate([b for _, b in _series._time_blocks(da, 3)])
    np.testing.assert_array_equal(got, arr)
    # opened without dask (lazily indexed backend array): read by slices
    lazy = xr.open_zarr(tmp_path / "s.zarr", chunks=None)["h"].transpose("time", "y", "x")
    assert lazy.chunks is None
    got = list(_series._time_blocks(lazy, 4))
    assert [b.shape[0] for _, b in got] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), arr)


def test_read_ahead_keeps_order_and_raises_read_errors():
    assert list(_series._read_ahead(iter(range(7)))) == list(range(7))
    assert list(_series._read_ahead(iter([]))) == []

    def broken():
        yield 1
        raise OSError("chunk unreadable")

    it = _series._read_ahead(broken())
    assert next(it) == 1
    with pytest.raises(OSError, match="unreadable"):
        next(it)


def _template(n=5):
    return xr.DataArray(dsa.zeros((n, 2, 4, 3), dtype=np.float32, chunks=-1), dims=("time", "component", "y", "x"),
                        coords={"time": np.arange(n) * 10.0}, name="maps")


def test_write_behind_stores_every_block_in_place(tmp_path):
    path = tmp_path / "m.zarr"
    with _series._WriteBehind(ZarrSeriesWriter(path, _template(), chunks={"time": 1})) as w:
        for k in range(5):
            w.write({"time": slice(k, k + 1)}, np.full((1, 2, 4, 3), k, np.float32))
    back = load(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.mean(("component", "y", "x")).values, np.arange(5))


def test_write_behind_failure_leaves_no_store(tmp_path):
    path = tmp_path / "m.zarr"
    with pytest.raises(ShapeMismatchError):
        with _series._WriteBehind(ZarrSeriesWriter(path, _template(), chunks={"time": 1})) as w:
            w.write({"time": slice(0, 1)}, np.zeros((1, 2, 4, 3), np.float32))
            w.write({"time": slice(1, 2)}, np.zeros((1, 2, 9, 9), np.float32))   # wrong shape: fails in the thread
    assert not path.exists() and not list(tmp_path.iterdir())
