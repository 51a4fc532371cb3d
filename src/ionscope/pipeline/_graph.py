# SPDX-License-Identifier: GPL-3.0-or-later
"""A declared stage graph and the one runner that walks it.

A pipeline is a *table*: a tuple of :class:`Stage` in execution order. Each
stage says what it is called, which upstream results it reads (``inputs``:
names of earlier stages or of *sources*), which parameters its result depends
on (``params``) and how to compute it (``compute``). :func:`run_stages` walks
the table:

* it keeps only the stages the requested targets need (the ancestors of the
  targets along ``inputs``), so ``targets=("denoise",)`` never runs ``sync``;
* each stage's cache key hashes its name, ``params(ctx)`` and the keys of its
  inputs, so changing a parameter redoes exactly that stage and what reads it;
* a stage whose key is stored (and verified, see
  :class:`~ionscope.pipeline._stores.StageCache`) is loaded instead of
  computed; otherwise ``compute(ctx)`` runs and its result is written under
  the key — batch by batch and resumable when ``batched`` names a dimension.

Sources are the run's inputs, opened before any stage (series, log,
references, ...): ``{name: (value, key)}``. Inside ``compute`` and ``params``,
``ctx[name]`` is an input's value: a source's value, or a stage's stored
result (a lazy Dataset) as transformed by the stage's ``view`` (e.g. a stage
that stores only shifts can hand downstream stages the shifted series).

Adding a stage is a table edit::

    from ionscope.pipeline._graph import Stage, run_stages

    table = (
        Stage("smooth", inputs=("movie",), params=lambda ctx: {"sigma": 1.0},
              compute=lambda ctx: ctx["movie"].rolling(time=3).mean().to_dataset(name="v")),
    )
    ctx = run_stages(table, cache=StageCache(path), sources={"movie": (movie, "movie-v1")})
    ctx["smooth"]  # the cached result

Stages can carry their own ``store`` (anything with ``has(name, key)``,
``save(name, key, value)`` and ``load(name)``) — the operando report stage
publishes a set of files that way instead of writing into the Zarr cache —
and an ``after(ctx, value)`` hook that runs whether the stage was computed or
loaded (to collect side information such as frames marked bad). The same
runner serves a frame-by-frame (watch) mode: call it again with a longer
source; only stages whose keys changed are redone.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataValidationError
from ._rows import frame_rows
from ._stores import StageRecord, Timer, stage_key


@dataclass(frozen=True)
class Stage:
    """One unit of a pipeline (see the module docstring).

    Parameters
    ----------
    name : str
        Unique within its table; the cache group's name.
    compute : callable(ctx) -> result
        Builds the result (an ``xarray.Dataset`` for the Zarr cache; lazy is fine).
    inputs : tuple of str
        Earlier stages or sources read by ``compute``; their keys enter this key.
    params : callable(ctx) -> JSON-able, optional
        The parameters the result depends on (typically config sections).
    batched : str or callable(ctx) -> str or None, optional
        Dimension along which a large result is written batch by batch (resumable).
    view : callable(ctx, stored) -> value, optional
        What downstream stages see as ``ctx[name]`` (default: the stored result).
    after : callable(ctx, value), optional
        Runs after the stage is available, computed or loaded.
    store : object or callable(ctx) -> object, optional
        Where the result lives (default: the run's cache).
    outputs : callable(ctx) -> iterable of str, optional
        Names (relative to the output folder) the stage writes there; a run
        checks them before any stage runs, and refuses names that exist and
        were not written by ionscope (:mod:`ionscope._outdir`).

    Examples
    --------
    >>> import xarray as xr
    >>> st = Stage("double", inputs=("x",), params=lambda ctx: {"factor": 2},
    ...            compute=lambda ctx: xr.Dataset({"v": ("t", 2 * ctx["x"])}))
    >>> st.name, st.inputs, st.batched
    ('double', ('x',), None)
    """

    name: str
    compute: Callable[["Context"], Any]
    inputs: tuple[str, ...] = ()
    params: Callable[["Context"], Any] | None = None
    batched: str | Callable[["Context"], str | None] | None = None
    view: Callable[["Context", Any], Any] | None = None
    after: Callable[["Context", Any], None] | None = None
    store: Any = None
    outputs: Callable[["Context"], Any] | None = None


@dataclass
class Context:
    """What stages see while a table runs: config, inputs' values and keys, records.

    Parameters
    ----------
    cache : StageCache
        The run's default store.
    config : Config, optional
        The run's configuration (stages read their sections).
    show_progress : bool, optional
        Progress bars (default: on a terminal only).
    batch : int
        Steps per write of a batched stage.
    values, keys : dict of str
        Each source's and finished stage's value and cache key, by name.
    records : dict of str to StageRecord
        What happened to each stage so far.
    result : optional
        The caller's result object (e.g. :class:`~ionscope.pipeline.RunResult`).
    info : dict
        Table-specific side data (e.g. each frame's file).

    Examples
    --------
    >>> ctx = Context(cache=None, values={"x": 3})
    >>> ctx["x"], "y" in ctx
    (3, False)
    """

    cache: Any
    config: Any = None
    show_progress: bool | None = None
    batch: int = 4
    values: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    records: dict[str, StageRecord] = field(default_factory=dict)
    result: Any = None  # the caller's result object (e.g. RunResult), for stages that report on the run
    info: dict[str, Any] = field(default_factory=dict)  # table-specific side data (e.g. each frame's file)

    def __getitem__(self, name: str):
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def bar(self, items, desc: str):
        """A progress bar over ``items`` labelled ``desc`` (hidden unless enabled)."""
        from .._progress import progress

        return progress(items, desc=f"{desc:<22}", enable=self.show_progress, unit="batch")


def check_table(table: Sequence[Stage], sources: Iterable[str] = ()) -> None:
    """Refuse duplicate names and inputs that are neither a source nor an earlier stage."""
    known = set(sources)
    for st in table:
        if st.name in known:
            raise DataValidationError(f"stage table: {st.name!r} is defined twice (or is also a source)")
        missing = [i for i in st.inputs if i not in known]
        if missing:
            raise DataValidationError(f"stage table: stage {st.name!r} reads {missing}, which no earlier stage "
                                      f"or source provides")
        known.add(st.name)


def needed(table: Sequence[Stage], targets: Iterable[str]) -> list[Stage]:
    """The stages ``targets`` depend on (themselves included), in table order."""
    by_name = {st.name: st for st in table}
    unknown = [t for t in targets if t not in by_name]
    if unknown:
        raise DataValidationError(f"run: unknown stage(s) {unknown}; expected names from {tuple(by_name)}")
    want: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in want or name not in by_name:
            continue  # sources are not stages
        want.add(name)
        todo.extend(by_name[name].inputs)
    return [st for st in table if st.name in want]


def run_stages(table: Sequence[Stage], *, cache, sources: dict[str, tuple[Any, str]] | None = None,
               targets: Iterable[str] | None = None, config=None, show_progress: bool | None = None,
               batch: int = 4, on_stage: Callable[[str, StageRecord], None] | None = None,
               result=None, ctx: Context | None = None) -> Context:
    """Walk ``table`` (see the module docstring) and return the :class:`Context`.

    Parameters
    ----------
    table : sequence of Stage
    cache : StageCache
        Default store of every stage.
    sources : dict name -> (value, key)
        The run's inputs.
    targets : iterable of str, optional
        Stages wanted (default: all); their ancestors run as needed.
    on_stage : callable(name, record), optional
        Called after each stage; raising from it stops the run there.
    batch : int
        Steps per write of a ``batched`` stage.
    config : Config, optional
        Handed to the stages as ``ctx.config``.
    show_progress : bool, optional
        Progress bars (default: on a terminal only).
    result : optional
        The caller's result object, as ``ctx.result``.
    ctx : Context, optional
        Continue in this context (a live session calling again with a longer source).

    Returns
    -------
    Context
        Every stage's value (``ctx[name]``), key and :class:`StageRecord` (``ctx.records``).

    Examples
    --------
    >>> import tempfile, numpy as np, xarray as xr
    >>> from ionscope.pipeline._stores import StageCache
    >>> cache = StageCache(tempfile.mkdtemp() + "/c.zarr")
    >>> table = (Stage("double", inputs=("x",), compute=lambda c: xr.Dataset({"v": ("t", 2 * c["x"])})),)
    >>> ctx = run_stages(table, cache=cache, sources={"x": (np.arange(3.0), "x1")})
    >>> ctx["double"].v.values.tolist(), ctx.records["double"].cached
    ([0.0, 2.0, 4.0], False)
    >>> run_stages(table, cache=cache, sources={"x": (np.arange(3.0), "x1")}).records["double"].cached
    True
    """
    sources = dict(sources or {})
    check_table(table, sources)
    plan = needed(table, [st.name for st in table] if targets is None else list(targets))
    if ctx is None:
        ctx = Context(cache=cache, config=config, show_progress=show_progress, batch=batch, result=result)
    for name, (value, key) in sources.items():
        ctx.values[name], ctx.keys[name] = value, str(key)
    for st in plan:
        rec = _run_one(st, ctx)
        ctx.records[st.name] = rec
        if on_stage is not None:
            on_stage(st.name, rec)
    return ctx


def _run_one(st: Stage, ctx: Context) -> StageRecord:
    store = st.store if st.store is not None else ctx.cache
    if not hasattr(store, "has"):  # a factory: the store depends on the run (e.g. its output folder)
        store = store(ctx)
    params = st.params(ctx) if st.params is not None else None
    key = stage_key(st.name, params, [ctx.keys[i] for i in st.inputs])
    rec = StageRecord(name=st.name, key=key)
    dim = st.batched(ctx) if callable(st.batched) else st.batched
    rows = None  # per-frame keys of a batched stage's rows (pipeline._rows): rows already computed are reused
    with Timer() as timer:
        if store.has(st.name, key):
            rec.cached = True
            rows = store.rows(st.name) if dim is not None and hasattr(store, "rows") else None
        elif dim is not None:
            from threadpoolctl import threadpool_limits

            # One BLAS thread per dask task: dask already runs one task per
            # core, so multi-threaded BLAS inside each task only
            # oversubscribes the cores; it also makes float sums independent
            # of the thread count, which is what lets a cluster run (its
            # workers are single-threaded) match the threaded run bit for bit.
            with threadpool_limits(limits=1):
                value = st.compute(ctx)
                rows = frame_rows(ctx).plan(st, ctx, params, value, dim)
                rec.resumed_batches = store.save_batched(
                    st.name, key, value, dim=dim, batch=ctx.batch,
                    progress=lambda items: ctx.bar(items, f"{st.name}: write"),
                    **({"rows": rows} if rows is not None else {}))
                rec.info.update(getattr(store, "row_stats", {}).get(st.name, {}) if rows is not None else {})
                if rows is not None and hasattr(store, "rows"):
                    rows = store.rows(st.name) or rows  # as written (a live session keeps carried rows' keys)
        else:
            store.save(st.name, key, st.compute(ctx))
        stored = store.load(st.name)
    rec.seconds = timer.seconds
    ctx.keys[st.name] = key
    frame_rows(ctx).note(st, ctx, params, stored, dim, rows)
    ctx.values[st.name] = st.view(ctx, stored) if st.view is not None else stored
    if st.after is not None:
        st.after(ctx, ctx.values[st.name])
    return rec
