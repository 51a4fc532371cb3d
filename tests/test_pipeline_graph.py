# SPDX-License-Identifier: GPL-3.0-or-later
"""The declared stage graph: only what a target needs runs; keys follow params and inputs; layering."""
from __future__ import annotations



import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError
from ionscope.operando import STAGES, TABLE, Stage, run, run_stages
from ionscope.pipeline._stores import StageCache



def _table(calls):
    def make(name, factor):
        def compute(ctx):
            calls.append(name)
            src = ctx["x"] if name == "a" else ctx["a"].v.values
            return xr.Dataset({"v": ("t", np.asarray(src, float) * factor)})
        return compute

    return (Stage("a", make("a", 2.0), inputs=("x",), params=lambda ctx: {"f": 2.0}),
            Stage("b", make("b", 3.0), inputs=("a",), params=lambda ctx: ctx.config["b"]),
            Stage("c", make("c", 5.0), inputs=("a",)))


def test_targets_run_only_their_ancestors_and_keys_follow_params(tmp_path):
    calls = []
    cache = StageCache(tmp_path / "c.zarr")
    src = {"x": (np.arange(4.0), "x-1")}
    ctx = run_stages(_table(calls), cache=cache, sources=src, targets=("b",), config={"b": 1})
    assert calls == ["a", "b"] and list(ctx.records) == ["a", "b"]
    np.testing.assert_array_equal(ctx["b"].v.values, np.arange(4.0) * 6)
    calls.clear()
    ctx = run_stages(_table(calls), cache=cache, sources=src, config={"b": 1})  # all: only c is new
    assert calls == ["c"] and [r.cached for r in ctx.records.values()] == [True, True, False]
    calls.clear()
    run_stages(_table(calls), cache=cache, sources=src, config={"b": 2})      # a param of b changed
    assert calls == ["b"]
    calls.clear()
    run_stages(_table(calls), cache=cache, sources={"x": (np.ones(4), "x-2")}, config={"b": 2})  # new input
    assert calls == ["a", "b", "c"]


def test_bad_tables_are_refused(tmp_path):
    cache = StageCache(tmp_path / "c.zarr")
    with pytest.raises(DataValidationError, match="reads \\['nope'\\]"):
        run_stages((Stage("a", lambda c: None, inputs=("nope",)),), cache=cache)
    with pytest.raises(DataValidationError, match="defined twice"):
        run_stages((Stage("a", lambda c: None), Stage("a", lambda c: None)), cache=cache)
    with pytest.raises(DataValidationError, match="unknown stage"):
        run_stages((Stage("a", lambda c: None),), cache=cache, targets=("z",))


def test_denoise_target_does_not_run_sync(tmp_path):
    from ionscope.simulate import operando_eels

    si, _, log = operando_eels(shape=(8, 12), n_frames=4, energy_step=0.5, seed=3)
    cfg = {"output": {"dir": str(tmp_path)}, "denoise": {"method": "none"}, "energy_drift": {"enabled": False},
           "register": {"enabled": False}, "compute": {"frames_per_batch": 2}}
    res = run(cfg, series=si, log=log, stages=("denoise",), show_progress=False)
    assert list(res.stages) == ["screen", "energy_drift", "register", "limap", "fit_check", "fraction", "denoise"]
    with pytest.raises(DataValidationError, match="added by ionscope.report"):
        run(cfg, series=si, stages=("report",), show_progress=False)


def test_table_is_the_single_source_of_stage_names():
    assert STAGES == tuple(st.name for st in TABLE)
    assert STAGES == ("screen", "energy_drift", "register", "limap", "fit_check", "fraction", "denoise", "sync",
                      "analysis")
