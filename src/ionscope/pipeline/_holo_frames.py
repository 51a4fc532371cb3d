# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography table's per-frame stage (``holo_frames``): the kernel on every hologram, as a dask graph.

One task per time point runs :func:`ionscope.holography.bias_frame` with the
plan as one graph key; a hologram a live session already measured under the
same plan comes from its cache (:mod:`ionscope.pipeline._holo_reuse`). The
stage table itself is in :mod:`ionscope.pipeline._holography`.
"""
from __future__ import annotations


def _frames(ctx):
    """``holo_frames``: :func:`ionscope.holography.bias_frame` on every time point, as a lazy Dataset.

    One dask task per time point (its hologram read as a task of its own), so
    the store writes it batch by batch on the run's executor and a killed run
    resumes at the next batch. The plan (ψ₀, masks, reference waves: the
    large read-only state) enters the graph as one key: a cluster ships it
    once per worker, not once per frame. A hologram a live session measured
    under the same plan (``ctx.info["holo_live"]``, :mod:`ionscope.pipeline._holo_reuse`)
    is taken from its cache instead of being measured again.
    """
    import dask
    import dask.base
    import dask.array as dsa
    import xarray as xr
    from dask.highlevelgraph import HighLevelGraph

    from ..holography import BiasFrame

    plan = ctx["holo_plan"]
    holo = ctx["holograms"]
    holo = holo.transpose("time", "y", "x") if plan.method == "fourier" else holo.transpose("time", "frame", "y", "x")
    if holo.chunks is None:
        # numpy or a lazily indexed store: one task per time point, nothing read here
        holo = holo.chunk({"time": 1})
    data = holo.data
    from ._framekeys import row_id
    from ._holo_reuse import Deferred, plan_digest

    n = plan.n_time
    # one chunk per time point: a frame's task reads its whole hologram (as data[k] did)
    data = data.rechunk((1,) + tuple(-1 for _ in data.shape[1:]))
    plan_d = dask.delayed(plan, name=f"holo-plan-{ctx.keys['holo_plan']}", traverse=False)
    layout, coords = BiasFrame.layout(plan)
    live = ctx.info.get("holo_live") or {}
    digest = plan_digest(plan) if live else None
    entries = [live.get(row_id(t)) for t in plan.times]
    entries = [e if e is not None and e["plan_digest"] == digest else None for e in entries]
    ctx.info["holo_live_reused"] = sum(e is not None for e in entries)
    # The graph is written out (a frame task per time point, a row task per variable and time point) rather
    # than made with dask.delayed(pure=True) + from_delayed + stack: those tokenized the functions and their
    # arguments and merged graphs once per task (11 a frame), ~40 ms a frame profiled. The keys are named from
    # the plan's key and the holograms' dask name, both content hashes (and the live entries reused).
    tok = dask.base.tokenize(ctx.keys["holo_plan"], data.name, digest,
                             [None if e is None else e["fingerprint"] for e in entries])
    fname, zeros = f"holo-frame-{tok}", (0,) * (data.ndim - 1)
    fft = _fft_workers()

    def task(k):
        if entries[k] is None:
            return (_frame_variables, plan_d.key, (data.name, k, *zeros), k, fft)
        # a hologram measured live is not read (it is only read again if its cache entry fails to load)
        return (_frame_variables, plan_d.key, Deferred(data[k:k + 1]), k, fft, entries[k], digest)

    frames = HighLevelGraph.from_collections(fname, {(fname, k): task(k) for k in range(n)},
                                             dependencies=[data, plan_d])
    data_vars = {}
    for v, (dims, shape, dtype) in layout.items():
        vname = f"holo-frames-{v}-{tok}"
        rows = {(vname, k, *(0,) * len(shape)): (_row, (fname, k), v) for k in range(n)}
        graph = HighLevelGraph({**frames.layers, vname: rows}, {**frames.dependencies, vname: {fname}})
        arr = dsa.Array(graph, vname, chunks=((1,) * n, *((s_,) for s_ in shape)), dtype=dtype)
        data_vars[v] = (("time",) + dims, arr)
    return xr.Dataset(data_vars, coords={"time": plan.times, **coords})


def _row(variables, name):
    """One variable of a frame as a row of the stacked array (a leading ``time`` axis of 1)."""
    return variables[name][None]


def _frame_variables(plan, block, index, fft_workers=1, live=None, digest=None):
    """The kernel on one time point (``block``: its chunk, a leading axis of 1), or its live measurement."""
    from ._holo_reuse import frame_variables

    return frame_variables(plan, block, index, live, digest, fft_workers=fft_workers)


def _fft_workers():
    """FFT threads of a frame task: every core where the executor runs one task at a time, else 1.

    Inline (dask "synchronous") or one thread: a frame's FFTs would leave the
    other cores idle, as ``bias_series(workers=1)`` does not. The numbers do
    not depend on it (:func:`~ionscope.holography.bias_frame`).
    """
    import dask

    scheduler = dask.config.get("scheduler", None)
    one_at_a_time = scheduler in ("synchronous", "sync", "single-threaded") or (
        scheduler in ("threads", "threading") and dask.config.get("num_workers", None) == 1)
    return None if one_at_a_time else 1
