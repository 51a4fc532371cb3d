# SPDX-License-Identifier: GPL-3.0-or-later
"""A stage-cache marker copied into a user's Zarr store does not make the store ionscope's.

Found (s28seams): `[output] cache` pointing at a user's store whose root attributes carried
``ionscope_stage_cache`` (copied from a cache) was taken as a cache, and the run replaced the user's arrays
``limap`` and ``screen`` by its stage results (exit 0). Now every entry of a marked cache must be a stage group
ionscope keyed; otherwise the run is refused before anything is written.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from ionscope.errors import OutputPathError
from ionscope.pipeline._stores import StageCache, cache_state


def _forged(path):
    g = zarr.open_group(str(path), mode="w")
    a = g.create_array("limap", shape=(4,), dtype="f8")
    a[:] = np.arange(4.0)
    g.attrs["ionscope_stage_cache"] = 1
    return path


def test_a_copied_marker_is_no_proof(tmp_path):
    store = _forged(tmp_path / "mine.zarr")
    assert cache_state(store).startswith("foreign: a Zarr store marked as a stage cache but holding limap")
    with pytest.raises(OutputPathError, match="holding limap, which ionscope did not write"):
        StageCache(store)
    assert zarr.open_group(str(store), mode="r")["limap"][:].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_real_cache_stays_ours(tmp_path):
    cache = StageCache(tmp_path / "cache.zarr")
    cache.save("screen", "k1", xr.Dataset({"v": ("t", np.arange(3.0))}))
    assert cache_state(tmp_path / "cache.zarr") == "ours"
    assert StageCache(tmp_path / "cache.zarr").has("screen", "k1")


@pytest.mark.parametrize("damage", ["metadata", "marker-only"])
def test_a_damaged_stage_keeps_its_cache_ours(tmp_path, damage):
    """A stage whose metadata was damaged since is discarded and recomputed (as before), not a reason to refuse."""
    cache = StageCache(tmp_path / "cache.zarr")
    cache.save("screen", "k1", xr.Dataset({"v": ("t", np.arange(3.0))}))
    meta = tmp_path / "cache.zarr" / "screen" / "zarr.json"
    if damage == "metadata":
        meta.write_text("{not json")
        (tmp_path / "cache.zarr" / ".screen.complete.json").unlink()
    else:  # readable, key gone, but its completion marker is there
        meta.write_text(meta.read_text().replace("ionscope_stage_key", "other"))
    assert cache_state(tmp_path / "cache.zarr") == "ours"
    reopened = StageCache(tmp_path / "cache.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the marker-only case warns that it discards the stage
        assert not reopened.has("screen", "k1")
    reopened.save("screen", "k1", xr.Dataset({"v": ("t", np.arange(3.0))}))  # recomputed in place
    assert reopened.has("screen", "k1")
