# SPDX-License-Identifier: GPL-3.0-or-later
"""Results cached by another release of ionscope are redone, never reused.

Found (s28seams): a stage's key held its parameters and inputs but not the code that computed it, so a run
resumed after upgrading ionscope (a fix in the Li maps, say) loaded the old release's maps silently.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ionscope
import ionscope.io as iio
from ionscope.pipeline import run
from ionscope.pipeline._stores import stage_key


def test_the_key_holds_the_version(monkeypatch):
    before = stage_key("limap", {"a": 1}, ["x"])
    assert stage_key("limap", {"a": 1}, ["x"]) == before  # stable within a release
    monkeypatch.setattr(ionscope, "__version__", "9.9.9")
    assert stage_key("limap", {"a": 1}, ["x"]) != before


@pytest.mark.slow  # three runs: ~7 s
def test_a_run_of_another_release_is_redone(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.poisson(20.0, (3, 4, 5, 24)).astype(np.float32), dims=("time", "y", "x", "energy"),
                      coords={"energy": ("energy", np.arange(24.0) + 50.0, {"units": "eV"})})
    store = iio.save(da, tmp_path / "night.zarr")
    refs = xr.DataArray(rng.uniform(1, 2, (2, 24)), dims=("component", "energy"),
                        coords={"component": ["Li", "Co"], "energy": da.energy})
    iio.save(refs, tmp_path / "refs.nc")
    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(tmp_path / "out")},
           "limap": {"fit_range": [52.0, 70.0], "references": str(tmp_path / "refs.nc")}}
    first = run(cfg, show_progress=False, stages=("screen",))
    assert not first.stages["screen"].cached
    assert run(cfg, show_progress=False, stages=("screen",)).stages["screen"].cached
    monkeypatch.setattr(ionscope, "__version__", "9.9.9")
    assert not run(cfg, show_progress=False, stages=("screen",)).stages["screen"].cached
