# SPDX-License-Identifier: GPL-3.0-or-later
"""bias_series' frame reader (a block of frames, chunk by chunk) and map writer: same frames, same store."""
from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from ionscope.errors import ShapeMismatchError
from ionscope.holography import _series
from ionscope.io import load


def _time_blocks(holo, batch):
    blocks = _series._Blocks(holo, batch)
    return [(s, blocks.read(b)) for b, (s, _) in enumerate(blocks.bounds)]


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
    got = list(_time_blocks(xr.DataArray(data, dims=("time", "y", "x")), batch))
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
    got = np.concatenate([b for _, b in _time_blocks(da, 3)])
    np.testing.assert_array_equal(got, arr)
    # opened without dask (lazily indexed backend array): read by slices
    lazy = xr.open_zarr(tmp_path / "s.zarr", chunks=None)["h"].transpose("time", "y", "x")
    assert lazy.chunks is None
    got = list(_time_blocks(lazy, 4))
    assert [b.shape[0] for _, b in got] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), arr)


class _Plan:
    """What the map writer reads of a plan."""

    def __init__(self, n=5):
        self.n_time, self.out_shape = n, (4, 3)
        self.times, self.y, self.x = np.arange(n) * 10.0, np.arange(4.0), np.arange(3.0)


class _Frame:
    def __init__(self, k, shape=(4, 3)):
        self.index, self.phase, self.potential = k, np.full(shape, k, np.float32), np.full(shape, -k, np.float32)


def test_map_writer_stores_every_block_in_place_and_drops_the_maps(tmp_path):
    path = tmp_path / "m.zarr"
    w = _series._MapWriter(path, _Plan())
    frames = [_Frame(k) for k in range(5)]
    w.write(0, frames[:2])
    w.write(2, frames[2:])
    w.blank([4])
    w.close(None)
    assert all(f.phase is None and f.potential is None for f in frames)  # written, not kept
    back = load(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.sel(component="phase").mean(("y", "x")).values, [0, 1, 2, 3, np.nan])
    np.testing.assert_array_equal(back.sel(component="potential").mean(("y", "x")).values, [0, -1, -2, -3, np.nan])


def test_map_writer_failure_leaves_no_store(tmp_path):
    path = tmp_path / "m.zarr"
    w = _series._MapWriter(path, _Plan())
    w.write(0, [_Frame(0)])
    with pytest.raises(ValueError):
        w.write(1, [_Frame(1, shape=(9, 9))])  # wrong shape
    w.close(ValueError("failed"))
    w.write(2, [_Frame(2)])  # a write still in flight after the failure is dropped
    assert not path.exists() and not list(tmp_path.iterdir())
