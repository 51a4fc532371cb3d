# SPDX-License-Identifier: GPL-3.0-or-later
"""``bias_series`` split into plan → per-frame kernel → assembly gives the numbers of the one-piece original.

The original (branch h18 before issue 18 split it) is kept verbatim in
``tests/_holo_reference.py``. Every number must be bit-identical (the issue
allows 1e-7 V; the split keeps numpy's own reduction order, so none is needed).
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _holo_reference as reference  # noqa: E402

from ionscope.holography import (BiasFrame, BiasPlan, assemble_bias_series, bias_frame, bias_series,  # noqa: E402
                                 plan_bias_series)
from ionscope.simulate import biased_holograms  # noqa: E402

@pytest.fixture(scope="module")
def night():
    holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 40), ("hold", -1.0, 30)],
                                               shape=(128, 128), specimen_drift_nm_per_s=(0.0, 0.03), seed=3)
    return holos, refs, log, truth


def _same(old, new):
    assert set(old.variables) == set(new.variables)
    assert json.dumps(old.attrs, sort_keys=True) == json.dumps(new.attrs, sort_keys=True)  # NaN == NaN
    for v in old.variables:
        np.testing.assert_array_equal(new[v].values, old[v].values, err_msg=v)


@pytest.mark.parametrize("options", [{}, {"drift": "auto"}, {"workers": 2, "model": "tanh", "order": 2}],
                         ids=["plain", "drift", "workers-tanh-order2"])
def test_split_equals_the_original(night, options):
    holos, refs, log, truth = night
    kw = dict(references=refs, log=log, thickness_nm=truth.thickness_nm.values, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        old = reference.bias_series(holos, **kw)
        new = bias_series(holos, **kw)
    _same(old, new)


def test_lazy_input_and_zarr_out_equal_the_original(night, tmp_path):
    holos, refs, log, truth = night
    kw = dict(references=refs, log=log, thickness_nm=60.0)
    old = reference.bias_series(holos, **kw)
    new = bias_series(holos.chunk({"time": 1}), out=tmp_path / "maps.zarr", **kw)
    assert hasattr(new["potential"].data, "dask")  # read back from the store, lazily
    _same(old, new.load())


def test_plan_kernel_assembly_by_hand_through_a_stored_plan(night, tmp_path):
    """Frames computed one by one (any order) from a plan stored and read back, through their stored
    variables, assemble to the same series: what the pipeline's holo_plan/holo_frames/holo_series do."""
    import xarray as xr

    holos, refs, log, truth = night
    kw = dict(references=refs, log=log, thickness_nm=60.0, drift="auto")
    whole = bias_series(holos, **kw)
    plan = plan_bias_series(holos, **kw)
    plan.to_dataset().to_zarr(tmp_path / "plan.zarr", zarr_format=3, consolidated=False)
    plan = BiasPlan.from_dataset(xr.open_zarr(tmp_path / "plan.zarr", consolidated=False))
    layout, _ = BiasFrame.layout(plan)
    rows = {}
    for k in reversed(range(plan.n_time)):
        rows[k] = bias_frame(plan, holos.isel(time=k), index=k).to_variables(plan)
    frames = xr.Dataset({v: (("time",) + layout[v][0], np.stack([rows[k][v] for k in range(plan.n_time)]))
                         for v in layout})
    ds = assemble_bias_series(plan, frames, maps=(frames["phase"].values, frames["potential"].values))
    for v in whole.data_vars:
        np.testing.assert_array_equal(ds[v].values, whole[v].values, err_msg=v)


def test_the_kernel_refuses_a_hologram_of_another_shape(night):
    from ionscope.errors import ShapeMismatchError

    holos, refs, log, truth = night
    plan = plan_bias_series(holos, references=refs, log=log, thickness_nm=60.0)
    with pytest.raises(ShapeMismatchError, match="hologram: expected"):
        bias_frame(plan, holos.isel(time=0).values[:64], index=0)


def test_on_a_distributed_client_equals_the_original(night):
    """A ``distributed`` Client current: the frames run on its worker processes, same numbers."""
    distributed = pytest.importorskip("distributed")
    holos, refs, log, truth = night
    kw = dict(references=refs, log=log, thickness_nm=60.0)
    old = reference.bias_series(holos, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster):
        new = bias_series(holos, **kw)
    _same(old, new)
