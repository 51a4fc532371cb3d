# SPDX-License-Identifier: GPL-3.0-or-later
"""Lazy (dask-backed) holography gives the in-memory result on the threaded scheduler and on a
dask.distributed LocalCluster (in-process: one worker, two threads), as a LiberTEM-style
out-of-core reconstruction of a hologram stack would be run."""
from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

from ionscope.holography import fringe_statistics, phase_shifting, reconstruct
from ionscope.simulate import hologram, phase_shifting_series


@pytest.fixture(scope="module")
def stack():
    pairs = [hologram(shape=(128, 128), bias_v=b, dose=200, seed=k) for k, b in enumerate((0.0, 0.5, 1.0, 1.5))]
    holo = xr.concat([p[0] for p in pairs], dim="time")
    return holo, pairs[0][1]


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        yield client


def _lazy_results(holo, ref, series, refs):
    lazy = reconstruct(holo.chunk({"time": 1}), ref)
    assert lazy.chunks is not None  # nothing computed yet
    wave_ps, est = phase_shifting(series.chunk({"frame": 2}), references=refs.chunk({"frame": 2}))
    return lazy.compute(), wave_ps.compute(), est, fringe_statistics(holo.chunk({"time": 1}))


def test_lazy_threaded_and_distributed_match_in_memory(stack, cluster_client):
    holo, ref = stack
    series, refs, _ = phase_shifting_series(n=6, shape=(96, 96), dose=100, image_drift_px=(1.0, 2.0), seed=5)
    eager = reconstruct(holo, ref)
    eager_ps, eager_est = phase_shifting(series, references=refs)
    eager_stats = fringe_statistics(holo)
    # the default scheduler of a Client is the cluster; the threaded one is asked for explicitly
    with dask.config.set(scheduler="threads"):
        threaded = _lazy_results(holo, ref, series, refs)
    distributed_run = _lazy_results(holo, ref, series, refs)
    for wave, wave_ps, est, stats in (threaded, distributed_run):
        # same kernels on the same blocks: identical up to float32 FFT rounding
        np.testing.assert_allclose(wave.values, eager.values, rtol=0, atol=1e-5 * float(np.abs(eager).max()))
        np.testing.assert_allclose(wave_ps.values, eager_ps.values, rtol=0,
                                   atol=1e-4 * float(np.abs(eager_ps).max()))
        for k in ("shift", "drift_x", "drift_y"):
            np.testing.assert_allclose(est[k].values, eager_est[k].values, atol=1e-6)
        np.testing.assert_allclose(stats["contrast"].values, eager_stats["contrast"].values, rtol=1e-6)
    assert cluster_client.scheduler_info()["workers"]  # the cluster really ran
