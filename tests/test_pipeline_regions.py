# SPDX-License-Identifier: GPL-3.0-or-later
"""pipeline._regions: a batched stage's direct region writes store what ``to_zarr(region=...)`` stores."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


def _dataset(n=7):
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"maps": (("time", "y", "x"), rng.normal(size=(n, 5, 6)).astype(np.float32)),
         "fit": (("time", "q"), rng.normal(size=(n, 3))),
         "code": (("time", "b"), rng.integers(0, 255, size=(n, 4), dtype=np.uint8)),
         "flag": ("time", rng.random(n) > 0.5),
         "const": (("y",), np.arange(5.0))},
        coords={"time": np.arange(n) * 10.0, "y": np.arange(5), "x": np.arange(6), "bias": ("time", np.linspace(0, 1, n))})
    ds["maps"][2] = np.nan  # a skipped frame: NaN row, like holo_frames'
    return ds


def _store(tmp_path, name, ds, direct):
    from ionscope.pipeline._regions import RegionWriter

    ds = ds.chunk({"time": 1})
    path = tmp_path / name
    ds.to_zarr(path, mode="w", compute=False, consolidated=False, zarr_format=3)
    region_vars = [v for v in ds.data_vars if "time" in ds[v].dims]
    if direct:
        w = RegionWriter(path, ds, "time", region_vars)
        assert w._direct is not None
        for a, b in ((0, 3), (3, 4), (4, 7)):
            w.write(a, b)
    else:
        for a, b in ((0, 3), (3, 4), (4, 7)):
            part = ds[region_vars].isel(time=slice(a, b))
            part = part.drop_vars([c for c in part.coords if "time" not in part[c].dims])
            part.to_zarr(path, region={"time": slice(a, b)}, consolidated=False)
    return xr.open_zarr(path, consolidated=False).load()


def test_direct_writes_equal_to_zarr_region_writes(tmp_path):
    ds = _dataset()
    old = _store(tmp_path, "old.zarr", ds, direct=False)
    new = _store(tmp_path, "new.zarr", ds, direct=True)
    assert set(old.variables) == set(new.variables)
    for v in old.variables:
        assert old[v].dtype == new[v].dtype, v
        np.testing.assert_array_equal(new[v].values, old[v].values, err_msg=v)
    np.testing.assert_array_equal(new["maps"].values, ds["maps"].values)  # and they are the data


def test_strings_and_dates_go_through_to_zarr(tmp_path):
    from ionscope.pipeline._regions import RegionWriter

    ds = _dataset()
    ds["when"] = ("time", np.datetime64("2026-01-01") + np.arange(7) * np.timedelta64(1, "s"))
    ds = ds.chunk({"time": 1})
    assert RegionWriter._plain(ds, "time", [v for v in ds.data_vars if "time" in ds[v].dims]) is None
    ds2 = _dataset().assign(reason=("time", np.array(["", "bad", "", "", "x", "", ""], object))).chunk({"time": 1})
    assert RegionWriter._plain(ds2, "time", ["maps", "reason"]) is None


def test_a_large_batch_streams_through_to_zarr(tmp_path, monkeypatch):
    from ionscope.pipeline import _regions

    calls = []
    real = xr.Dataset.to_zarr

    def spy(self, *a, **k):
        calls.append(k.get("region"))
        return real(self, *a, **k)

    monkeypatch.setattr(_regions, "MAX_BATCH_BYTES", 10)
    monkeypatch.setattr(xr.Dataset, "to_zarr", spy)
    ds = _dataset()
    got = _store(tmp_path, "big.zarr", ds, direct=True)
    assert [c for c in calls if c is not None] == [{"time": slice(a, b)} for a, b in ((0, 3), (3, 4), (4, 7))]
    np.testing.assert_array_equal(got["maps"].values, ds["maps"].values)


@pytest.mark.parametrize("executor", ["synchronous", "threads"])
def test_save_batched_resumes_with_direct_writes(tmp_path, executor):
    """A batch that fails leaves the finished ones; the rerun writes only the rest, and the result is whole."""
    import dask

    from ionscope.pipeline._stores import StageCache

    ds = _dataset(9).chunk({"time": 1})
    cache = StageCache(tmp_path / "cache.zarr")
    seen = []

    def boom(start):
        seen.append(start)
        if start == 4:
            raise RuntimeError("killed")

    with dask.config.set(scheduler=executor), pytest.raises(RuntimeError):
        cache.save_batched("st", "k1", ds, dim="time", batch=4, on_batch=boom)
    with dask.config.set(scheduler=executor):
        resumed = cache.save_batched("st", "k1", ds, dim="time", batch=4)
    assert seen == [0, 4] and resumed == 2
    got = cache.load("st").load()
    for v in ("maps", "fit", "code", "flag"):
        np.testing.assert_array_equal(got[v].values, ds[v].values, err_msg=v)
