# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography table on every executor, and a SIGKILLed night that resumes mid-series.

The series stage is batched over time (``holo_plan`` → ``holo_frames``, one
per-frame kernel task per time point written batch by batch → ``holo_series``):
the same outputs inline, on threads and on a Dask LocalCluster (2 worker
processes, loopback), equal to :func:`ionscope.holography.bias_series`; a
``ionscope run`` killed after its first batch of frames resumes at the next
batch (the frames already written are not computed again) and ends
bit-identical to an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from ionscope.pipeline._holography import run_holography

SRC = Path(__file__).resolve().parents[1] / "src"
PROGRAMME = [("rest", 30), ("hold", 1.5, 40), ("hold", -1.0, 30)]   # 11 time points, 10 s apart
SERIES_VARS = ("potential", "phase", "step_v", "step_v_std", "width_nm", "position_nm", "asymmetry",
               "leakage_ramp", "drift_nm", "frame_good", "frame_reason")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A tiny simulated night on disk (128² holograms, Zarr), its bias log (CSV) and a config."""
    from ionscope.io import save
    from ionscope.simulate import biased_holograms

    d = tmp_path_factory.mktemp("holo_night")
    holos, refs, log, truth = biased_holograms(programme=PROGRAMME, shape=(128, 128), seed=4,
                                               out=d / "holos.zarr")
    save(refs, d / "refs.zarr")
    log.to_dataframe().reset_index().rename(columns={"time": "time (s)", "voltage": "voltage (V)",
                                                    "current": "current (A)"}).to_csv(d / "bias.csv", index=False)
    (d / "run.toml").write_text('[holography]\nholograms = "holos.zarr"\nreferences = "refs.zarr"\n'
                                'log = "bias.csv"\nthickness_nm = 60.0\n\n[compute]\nframes_per_batch = 3\n')
    return d


@pytest.fixture(scope="module")
def inline(night, tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "out"
    return run_holography(night / "run.toml", output=out, stages=("holo_analysis",), executor="synchronous")


def _assert_same(a, b):
    for v in SERIES_VARS:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_inline_equals_bias_series(night, inline):
    from ionscope.holography import bias_series
    from ionscope.io import load, read_log

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = bias_series(load(night / "holos.zarr"), references=load(night / "refs.zarr"),
                          log=read_log(night / "bias.csv"), thickness_nm=60.0, drift="auto")
    _assert_same(inline.series, ref)
    assert set(inline.records) == {"holo_plan", "holo_frames", "holo_series", "holo_analysis"}
    # the maps are stored once (holo_frames), not copied into holo_series
    cache = inline.output / "cache.zarr"
    assert (cache / "holo_frames" / "potential").is_dir() and not (cache / "holo_series" / "potential").exists()


# the LocalCluster case starts worker processes (~20 s on 2 loaded cores): slow tier (issue 20); the fast tier
# keeps the holography table on worker processes through tests/test_pipeline_executors.py's [holography-remote]
# and the LocalCluster executor through its [eels-local]
@pytest.mark.parametrize("executor", ["threads", pytest.param("local", marks=pytest.mark.slow)])
def test_every_executor_gives_identical_outputs(night, inline, tmp_path, executor):
    if executor == "local":
        pytest.importorskip("distributed")
        from ionscope.pipeline import DaskExecutor

        executor = DaskExecutor(n_workers=2, worker_timeout_s=60.0)   # LocalCluster: processes on loopback
    res = run_holography(night / "run.toml", output=tmp_path / "out", stages=("holo_analysis",), executor=executor)
    _assert_same(inline.series, res.series)
    for v in inline.analysis.data_vars:
        np.testing.assert_array_equal(inline.analysis[v].values, res.analysis[v].values, err_msg=v)


def test_the_plan_is_one_key_of_the_frames_graph(night, inline):
    """ψ₀, masks and reference waves enter the per-frame graph once, not once per frame."""
    from ionscope.pipeline._graph import Context
    from ionscope.pipeline._holography import _frames

    ctx = Context(cache=None)
    ctx.values.update(holo_plan=_stored_plan(inline), holograms=_holograms(night))
    ctx.keys.update(holo_plan="p", holograms="h")
    ds = _frames(ctx)
    graph = dict(ds["potential"].data.__dask_graph__())
    plans = [k for k in graph if str(k).startswith("holo-plan-")]
    assert len(plans) == 1
    kernels = [k for k, t in graph.items() if "_frame_variables" in str(t)]
    assert len(kernels) == ds.sizes["time"]


def _stored_plan(res):
    import xarray as xr

    from ionscope.holography import BiasPlan

    return BiasPlan.from_dataset(xr.open_zarr(res.output / "cache.zarr" / "holo_plan", consolidated=False))


def _holograms(night):
    from ionscope.io import load

    return load(night / "holos.zarr")


# --------------------------------------------------------------------------- SIGKILL mid-series
# The child: `ionscope run CONFIG`, killed (SIGKILL) after the first batch of frames is written; every
# frame the kernel computes is recorded, to show what a resumed run computes again.
CHILD = textwrap.dedent('''
    import os, signal, sys
    import ionscope.holography as holo
    import ionscope.pipeline._stores as st
    kernel, log = holo.bias_frame, os.environ["IONSCOPE_TEST_FRAMES"]
    def bias_frame(plan, hologram, *, index, **kw):
        with open(log, "a") as f:
            f.write(f"{index}\\n")
        return kernel(plan, hologram, index=index, **kw)
    holo.bias_frame = bias_frame
    if os.environ.get("IONSCOPE_TEST_KILL"):
        save = st.StageCache.save_batched
        def save_batched(self, name, key, ds, **kw):
            if name == "holo_frames":
                kw["on_batch"] = lambda start: os.kill(os.getpid(), signal.SIGKILL) if start > 0 else None
            return save(self, name, key, ds, **kw)
        st.StageCache.save_batched = save_batched
    from ionscope.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def _ionscope(tmp, toml, out, *, kill, frames_log):
    script = tmp / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(SRC), "IONSCOPE_PROGRESS": "0", "MPLBACKEND": "Agg",
           "IONSCOPE_TEST_FRAMES": str(frames_log), "IONSCOPE_TEST_KILL": "1" if kill else ""}
    proc = subprocess.run([sys.executable, str(script), "run", str(toml), "-o", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    return proc.returncode, proc.stderr


def _computed(frames_log):
    return [int(v) for v in frames_log.read_text().split()] if frames_log.exists() else []


@pytest.mark.slow  # fault injection in child processes (two full runs, ~45 s on 2 loaded cores): slow tier
def test_sigkill_mid_series_resumes_at_the_next_batch(night, tmp_path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    rc, err = _ionscope(tmp_path, night / "run.toml", out, kill=True, frames_log=tmp_path / "killed.txt")
    assert rc == -signal.SIGKILL, err[-2000:]
    done_file = next((out / "cache.zarr").glob(".holo_frames.partial-*.done.json"))
    done = json.loads(done_file.read_text())
    n = 11
    assert 0 < len(done) < n   # killed mid-series: some batches written, not all
    rc, err = _ionscope(tmp_path, night / "run.toml", out, kill=False, frames_log=tmp_path / "resumed.txt")
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    # the resumed run computed only the frames the killed one had not written
    assert sorted(_computed(tmp_path / "resumed.txt")) == sorted(set(range(n)) - set(done))
    rc, err = _ionscope(tmp_path, night / "run.toml", clean, kill=False, frames_log=tmp_path / "clean.txt")
    assert rc == 0, err[-3000:]
    assert sorted(_computed(tmp_path / "clean.txt")) == list(range(n))
    from ionscope.pipeline._stores import StageCache

    a, b = StageCache(out / "cache.zarr"), StageCache(clean / "cache.zarr")
    for stage in ("holo_plan", "holo_frames", "holo_series", "holo_analysis"):
        x, y = a.load(stage), b.load(stage)
        assert set(x.variables) == set(y.variables), stage
        for v in x.variables:
            np.testing.assert_array_equal(x[v].values, y[v].values, err_msg=f"{stage}.{v}")
    for rel in ("curves.csv", "summary.json"):
        assert (out / rel).read_bytes() == (clean / rel).read_bytes(), rel
    assert not list((out / "cache.zarr").glob(".holo_frames.partial-*"))
