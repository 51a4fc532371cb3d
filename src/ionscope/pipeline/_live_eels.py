# SPDX-License-Identifier: GPL-3.0-or-later
"""One EELS frame through the EELS table's own per-frame stages (the frames executor's per-frame work).

:func:`process_frame` runs the table's ``energy_drift``, ``register`` and
``limap`` stages (and ``fraction`` for x) on one frame, with the batch run's
block shapes and one BLAS thread, so a frame's live Li map is the one the
batch run computes whenever the computation is the same:

* with ``[register] reference = "first"`` (the default; causal already) the
  frame runs through the batch stages *unchanged*, beside the first frame
  (``first=``): its rows are then the batch run's rows, bit for bit, and
  written into the run's stage cache under their per-frame keys
  (:class:`LiveStore`), where the final batch run finds them;
* ``"previous"`` chains to the last frame and ``"mean"`` registers onto the
  mean of the frames so far (a *running* reference, :class:`Reference`): the
  live maps are then the causal version, and the final run computes its own.

Quantities beyond the Li map plug in as *frame hooks* (:data:`FRAME_HOOKS`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataValidationError, IonscopeError
from ..io import accepts_data


@dataclass
class FrameContext:
    """What a frame hook sees: the frame at every step of :func:`process_frame`.

    Parameters
    ----------
    index : int
        The frame number.
    frame : xarray.DataArray
        The raw (y, x, energy) spectrum image.
    corrected : xarray.DataArray
        The energy- and drift-corrected (time=1, y, x, energy) series restricted to the fit window.
    fit : xarray.Dataset
        The mapping result (``li``, ``li_std``, ``chi2``).
    config : Config
        The run's :class:`~ionscope.pipeline.Config`.
    references : xarray.DataArray
        The reference spectra (component, energy) the frame was fitted with.

    Examples
    --------
    >>> ctx = FrameContext(index=0, frame=None, corrected=None, fit=None, config=None, references=None)
    >>> ctx.index
    0
    """

    index: int
    frame: Any
    corrected: Any
    fit: Any
    config: Any
    references: Any


def pre_edge_intensity(ctx: FrameContext) -> dict:
    """Mean counts per channel in the 5 eV below the fit window's start.

    Proportional to thickness × probe current; a *trend* that falls while the
    probe current is steady means the region thins under the beam. It is not
    t/λ (that needs the zero-loss peak: :func:`ionscope.eels` thickness when
    available) and is labelled as such on the dashboard.
    """
    lo = float(ctx.config.limap.fit_range[0])
    e = ctx.frame.energy.values
    sel = (e >= lo - 5.0) & (e < lo)
    if not sel.any():
        sel = e < e[0] + 5.0
    img = np.asarray(ctx.frame.values[..., sel], float).mean(axis=-1)
    return {"scalars": {"pre_edge_counts": float(img.mean())}}


#: name → hook(FrameContext) → {"maps": {name: (y, x)}, "scalars": {name: float}}.
#: Every returned map is cached, selectable on the dashboard and written to the
#: causal movie file; every scalar is stored per frame. A hook returning
#: ``maps={"x": ...}``, ``scalars={"x_mean": ...}`` and ``scalars={"t_over_lambda_mean": ...}``
#: makes the page plot the x and t/λ trends (instead of the Li weight and the
#: pre-edge proxy) and the thinning warning use t/λ.
FRAME_HOOKS: dict[str, Callable[[FrameContext], dict]] = {"pre_edge": pre_edge_intensity}


@dataclass
class Reference:
    """The running registration reference (what the next frame is registered onto)."""

    mode: str
    first: np.ndarray | None = None      # the first frame's image
    previous: np.ndarray | None = None   # the last frame's image ("previous")
    previous_shift: np.ndarray | None = None
    total: np.ndarray | None = None      # sum of the images so far ("mean")
    count: int = 0
    spectrum: np.ndarray | None = None   # first frame's summed spectrum (energy drift "edge")
    fraction_k: dict | None = None       # x calibration {"k", "k_std"} once known (from a region form)
    li_k_shift: dict | None = None       # the night's Li-K shift once measured (pipeline._li_shift_night)

    def update(self, image: np.ndarray, shift: np.ndarray, spectrum: np.ndarray | None = None) -> None:
        image = np.asarray(image)
        if self.first is None:
            self.first = image
            self.spectrum = spectrum
        self.previous, self.previous_shift = image, np.asarray(shift, float)
        self.total = image.astype(float) if self.total is None else self.total + image
        self.count += 1


def _register_shift(image: np.ndarray, ref: Reference, rc) -> np.ndarray:
    """(dy, dx) of this frame, with the arithmetic of the batch stage where it is causal."""
    from ..transport import estimate_shifts

    if ref.first is None or not rc.enabled:
        return np.zeros(2)
    up = rc.upsample_factor
    if rc.reference == "first":
        return estimate_shifts(np.stack([ref.first, image]), reference="first", upsample_factor=up)[1]
    if rc.reference == "previous":
        return ref.previous_shift + estimate_shifts(np.stack([ref.previous, image]), reference="first",
                                                    upsample_factor=up)[1]
    mean = ref.total / ref.count  # "mean": the mean of the frames so far, relative to the first frame
    s = estimate_shifts(np.stack([mean, ref.first, image]), reference="first", upsample_factor=up)
    return s[2] - s[1]


@dataclass
class First:
    """The frame a "first"-referenced registration is measured against, as the batch run sees it."""

    frame: Any      # (y, x, energy) DataArray, loaded
    time_s: float
    number: int
    key: str        # its content key (pipeline._framekeys.frame_key)
    energy_shift: float | None = None  # its energy shift (eV) once estimated (not estimated again per frame)


def exact(cfg, references=None) -> bool:
    """Whether the batch table's own per-frame stages are causal for this configuration (then the live
    rows are the batch rows, and go into the stage cache)."""
    opts = dict(cfg.energy_drift.options)
    edge_mean = cfg.energy_drift.enabled and opts.get("method") == "edge" and "reference" not in opts
    return (cfg.register.reference == "first" or not cfg.register.enabled) and not edge_mean and \
        not cfg.input.low_loss


@accepts_data("frame")
def process_frame(frame, *, config, reference: Reference | None = None, references=None, index: int = 0,
                  time_s: float = 0.0, hooks: dict | None = None, first: First | None = None, key: str | None = None,
                  store=None) -> dict:
    """One frame through energy drift → registration → Li map → hooks.

    Parameters
    ----------
    frame : xarray.DataArray (y, x, energy)
        A calibrated spectrum image.
    config : Config
        The run configuration (``[energy_drift]``, ``[register]``, ``[limap]`` used).
    reference : Reference, optional
        Running registration reference; updated in place. None: a new one.
    references : xarray.DataArray (component, energy), optional
        Edge references (default ``[limap] references``).
    index, time_s : int, float
        Frame number and time coordinate (s).
    hooks : dict, optional
        Frame hooks (default :data:`FRAME_HOOKS`).
    first : First, optional
        The first frame of the series (the frames executor gives it): with a
        causal configuration (:func:`exact`) the frame then goes through the
        batch table's stages beside it, bit for bit the batch run's rows.
    key : str, optional
        The frame's content key (with ``first``).
    store : optional
        Where the stages' results go (default: memory; the frames executor
        gives a :class:`LiveStore`, which keeps the rows in the stage cache).

    Returns
    -------
    dict
        ``maps`` ({"li", "li_std", "chi2", ...}: (y, x) float32), ``scalars``
        (``energy_shift``, ``dy``, ``dx``, ``li_mean``, ``chi2_mean``, ...),
        ``image`` (the registration image).

    References
    ----------
    M. Guizar-Sicairos et al., Opt. Lett. 33 (2008) 156, doi:10.1364/OL.33.000156 (registration);
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> from ionscope.simulate import operando_eels
    >>> from ionscope.pipeline import from_dict
    >>> si, truth, _ = operando_eels(shape=(8, 12), n_frames=1, energy_step=0.5)
    >>> out = process_frame(si.isel(time=0), config=from_dict({}))
    >>> out["maps"]["li"].shape, sorted(out["scalars"])[:3]
    ((8, 12), ['chi2_mean', 'dx', 'dy'])
    """
    import xarray as xr

    cfg = config
    if not isinstance(frame, xr.DataArray) or set(frame.dims) != {"y", "x", "energy"}:
        raise DataValidationError(f"process_frame: frame {index}: expected a DataArray with dims (y, x, energy)")
    frame = frame.transpose("y", "x", "energy")
    reference = Reference(cfg.register.reference) if reference is None else reference
    hooks = FRAME_HOOKS if hooks is None else hooks
    if first is not None and exact(cfg):
        ctx, t = _run_exact(frame, cfg, first=first, key=key, index=index, time_s=time_s, references=references,
                            store=store, reference=reference)
    else:
        ctx, t = _run_causal(frame, cfg, index=index, time_s=time_s, references=references, reference=reference,
                             store=store, key=key)
    return _outputs(ctx, t, frame, cfg, reference, index, hooks)


def _sources(cfg, series, references, table, ref_state=None) -> dict:
    """The per-frame run's sources: the frames, the references; every other input the table reads is absent
    (the log, a dual-EELS low loss, ... are not followed frame by frame: the final run uses them)."""
    from ._eels_sources import _reference_source

    sources = {"series": (series, "live-frames"), "references": _reference_source(cfg, references, series)}
    if ref_state is not None:
        sources["screen"] = sources.pop("series")
        sources["reference_state"] = (ref_state, f"{ref_state.mode}-{ref_state.count}")
    stages = {st.name for st in table}
    for name in {i for st in table for i in st.inputs} - stages - set(sources):
        # absent inputs keyed as the batch run keys them when absent (pipeline._eels_sources): the rows'
        # global keys are then the batch run's, and the final run reuses the rows computed here
        sources[name] = (None, _ABSENT.get(name, f"no-{name}"))
    return sources


#: the keys :func:`ionscope.pipeline._eels_sources._sources` gives inputs a night does not have
_ABSENT = {"low_loss": "no-low-loss", "log": "no-log", "segmentation": "", "truth": ""}


def _run_exact(frame, cfg, *, first: First, key, index, time_s, references, store, reference):
    """The batch table itself on [first frame, this frame] (one frame when it is the first)."""
    import xarray as xr

    from ._eels import TABLE, _canonical_chunks
    from ._framekeys import row_id
    from ._graph import Context, run_stages

    frames = [(first.frame, first.time_s, first.number, first.key)]
    if float(time_s) != float(first.time_s):
        frames.append((frame, float(time_s), int(index), key))
    # the series as the batch reader (ionscope.io.read_series) makes it from the folder: its coordinates,
    # their units and its attributes enter the rows' keys, so the final run finds these rows again
    keep = ("y", "x", "energy")
    series = xr.concat([f.drop_vars([c for c in f.coords if c not in keep]).expand_dims(time=1) for f, *_ in frames],
                       dim="time", coords="minimal", compat="override", join="override")
    series = series.assign_coords(time=("time", [float(t) for _, t, _, _ in frames], {"units": "s"}),
                                  frame_index=("time", np.asarray([n for _, _, n, _ in frames], int)))
    series.attrs = {**dict(first.frame.attrs),
                    **({"source_file": str(cfg.path(cfg.input.series))} if cfg.input.series else {})}
    series = _canonical_chunks(series.transpose("time", "y", "x", "energy"))
    fraction = _fraction_wanted(cfg)
    store = store if store is not None else MemoryStore()
    ctx = Context(cache=store, config=cfg, show_progress=False, batch=cfg.compute.frames_per_batch,
                  result=_Result())
    ctx.info["frame_keys"] = {"series": {row_id(t): k for _, t, _, k in frames}}
    if first.energy_shift is not None and len(frames) > 1:  # the first frame's shift, as estimated then
        ctx.info["known_energy_shift"] = {float(first.time_s): float(first.energy_shift)}
    # the rows computed are this frame's (the first frame's, when not known yet, stay lazy: read on demand)
    focus = getattr(store, "focus", False)
    if focus is not False and key is not None:
        store.focus = {key}
    try:
        ctx = run_stages(TABLE, cache=ctx.cache, sources=_sources(cfg, series, references, TABLE), ctx=ctx,
                         targets=("fraction",) if fraction else ("limap",))
    finally:
        if focus is not False:
            store.focus = focus
    return ctx, float(time_s)


class _Result:
    """What the table's stages report on (bad frames) in a per-frame run."""

    def __init__(self):
        self.bad_frames: list = []
        self.flagged_pixels: list = []  # the night keeps its own count (_live_eels_night: a live warning)


def _fraction_wanted(cfg) -> bool:
    """x live where the calibration is known frame by frame: ``{k = ...}`` or a region (on the first frame)."""
    cal = dict(cfg.limap.calibration or {})
    return bool(cal) and ("k" in cal or ("region" in cal and int(cal.get("frame", 0)) == 0))


def _run_causal(frame, cfg, *, index, time_s, references, reference: Reference, store=None, key=None):
    """The frame alone, registration onto the running reference (``"previous"``, ``"mean"``). Its rows stay in
    memory; the night's stage cache (``store``, when the session holds one) keeps only what the final run must
    reuse rather than redo: the night's Li-K shift, measured on the first frame (pipeline._li_shift_night)."""
    from ._eels import _canonical_chunks
    from ._framekeys import row_id
    from ._graph import Context, run_stages

    series = _canonical_chunks(frame.expand_dims(time=[float(time_s)]).chunk())
    opts = dict(cfg.energy_drift.options)
    if opts.get("method") == "edge" and "reference" not in opts and reference.spectrum is not None:
        # causal: align to the first frame's spectrum (the batch default, the series mean, is the future too)
        cfg = cfg.replace(energy_drift={"options": {**opts, "reference": reference.spectrum.tolist()}})
    cfg, fraction = _fraction_plan(cfg, reference, index)
    table = live_table(fraction=fraction)
    ctx = Context(cache=MemoryStore(), config=cfg, show_progress=False, batch=cfg.compute.frames_per_batch,
                  result=_Result())
    if store is not None:
        ctx.info["li_shift_cache"] = store
    if key is not None:  # the frame's content key: what the final run knows this frame by
        ctx.info["li_shift_frame_keys"] = {row_id(float(time_s)): key}
    ctx = run_stages(table, cache=ctx.cache, sources=_sources(cfg, series, references, table, reference), ctx=ctx,
                     targets=("fraction",) if fraction else ("limap",))
    return ctx, float(time_s)


def _outputs(ctx, t: float, frame, cfg, reference: Reference, index: int, hooks: dict) -> dict:
    """Maps and numbers of the frame at time ``t`` from a per-frame run; hooks; the running reference."""
    from ._eels import _fit_window

    shape = frame.shape[:2]
    fit = ctx["limap"].sel(time=[t]).compute()
    e_shift = float(np.asarray(ctx.cache.load("energy_drift").energy_shift.sel(time=t).values))
    reg = ctx.cache.load("register")
    shift = np.asarray(reg.drift.sel(time=t).values, float)
    image = np.asarray(reg.image.sel(time=t).values) if "image" in reg else _image(frame, cfg)
    spectrum = np.asarray(_fit_window(frame, cfg).sum(("y", "x")).values)
    reference.update(image, shift, spectrum)
    # native dtype (the batch run's): a live map can be compared with the batch one bit for bit
    maps = {name: np.asarray(fit[name].values).reshape(shape) for name in ("li", "li_std", "chi2") if name in fit}
    li = maps["li"]
    scalars = {"energy_shift": e_shift, "dy": float(shift[0]), "dx": float(shift[1]), "li_mean": float(np.nanmean(li))}
    frac = ctx["fraction"].sel(time=[t]).compute() if "fraction" in ctx else None
    if frac is None and "zero_loss" in fit:
        # uncalibrated real spectra: Li per zero-loss intensity (areal Li), as the batch fraction stage shows
        i0 = np.asarray(fit["zero_loss"].values, float).reshape(shape)
        i0 = np.where(i0 > 0, i0, np.nan) / 1e6  # per 10⁶ zero-loss counts, as the batch fraction stage
        maps["li_areal"] = (li / i0).astype(np.float32)
        if "li_std" in maps:
            maps["li_areal_std"] = (maps["li_std"] / i0).astype(np.float32)
        scalars["li_areal_mean"] = float(np.nanmean(maps["li_areal"]))
    if "chi2" in maps:
        scalars["chi2_mean"] = float(np.nanmean(maps["chi2"]))
    if "thickness" in fit:  # t/λ from the mapping's plural-scattering deconvolution (the batch limap stage)
        maps["t_over_lambda"] = np.asarray(fit["thickness"].values).reshape(shape)
        scalars["t_over_lambda_mean"] = float(np.nanmean(maps["t_over_lambda"]))
    if frac is not None and frac["li"].attrs.get("quantity") == "x":  # the batch fraction stage: x in LixCoO2
        maps["x"] = np.asarray(frac["li"].values).reshape(shape)
        if "li_std" in frac:
            maps["x_std"] = np.asarray(frac["li_std"].values).reshape(shape)
        scalars["x_mean"] = float(np.nanmean(maps["x"]))
        if reference.fraction_k is None and "k" in frac.attrs:
            reference.fraction_k = {"k": float(frac.attrs["k"]), "k_std": float(frac.attrs.get("k_std", 0.0))}
        scalars["x_k"] = reference.fraction_k["k"] if reference.fraction_k else float("nan")
    if "ratio_std_references" in fit:  # the references' own noise (issue 19): the dashboard says when it decides x
        from ._refs_noise import assess, x_std_references

        k = reference.fraction_k["k"] if reference.fraction_k else 1.0
        scalars.update(assess(fit, x_std_references(fit, k), k=k))
    fctx = FrameContext(index=index, frame=frame, corrected=ctx["register"].sel(time=[t]), fit=fit, config=cfg,
                        references=ctx["references"](ctx["register"].energy.values))
    for name, hook in hooks.items():
        try:
            got = hook(fctx) or {}
        except IonscopeError as exc:  # a hook that cannot run on this frame: record why, go on
            scalars[f"{name}_error"] = str(exc)
            continue
        maps.update({k: np.asarray(v) for k, v in got.get("maps", {}).items()})
        scalars.update({k: float(v) for k, v in got.get("scalars", {}).items()})
    return {"maps": maps, "scalars": scalars, "image": image.astype(np.float32)}


def _image(frame, cfg) -> np.ndarray:
    """The registration image of a frame: the ``[register] window_ev`` sum, as the batch stage makes it."""
    rc = cfg.register
    window = frame.sel(energy=slice(*rc.window_ev)) if rc.window_ev else frame
    return np.asarray(window.sum("energy").values)


# --------------------------------------------------------------------------- the causal per-frame table


class MemoryStore:
    """A store for :func:`~ionscope.pipeline.run_stages` that keeps one frame's results in memory.

    Results are materialised (as the batch run's Zarr store materialises
    them, float32 stays float32) and re-chunked one frame per chunk along the
    batched dimension, as reading them back from the batch cache would give.
    """

    def __init__(self):
        self._results: dict[str, tuple[str, Any]] = {}
        self.focus: set | None = None  # frame keys of the rows computed (None: all); the others stay lazy

    def has(self, name: str, key: str) -> bool:
        return name in self._results and self._results[name][0] == key

    def save(self, name: str, key: str, value) -> None:
        self._results[name] = (key, value.compute() if hasattr(value, "compute") else value)

    def save_batched(self, name: str, key: str, ds, *, dim: str, batch: int, progress=None, on_batch=None,
                     rows=None) -> int:
        import xarray as xr

        keep = None if self.focus is None or rows is None else [i for i, f in enumerate(rows.frames)
                                                                  if f in self.focus]
        from ._live_store import in_this_thread

        if keep is None or len(keep) == ds.sizes[dim]:
            value = ds.compute(**in_this_thread(ds.sizes[dim] if dim == "time" else 0))
        else:  # the other frames' rows (the first frame's beside this one) are computed only if read
            done = ds.isel({dim: keep}).compute(**in_this_thread(len(keep)))
            value = xr.concat([done.isel({dim: [keep.index(i)]}) if i in keep else ds.isel({dim: [i]})
                               for i in range(ds.sizes[dim])], dim=dim, data_vars="minimal", coords="minimal",
                              compat="override", join="override")
            value.attrs = dict(ds.attrs)
        self._results[name] = (key, value.chunk({dim: 1}))
        return 0

    def load(self, name: str):
        return self._results[name][1]


def _live_register(ctx):
    """Registration onto the running reference (``ctx["reference_state"]``), not onto the whole series."""
    import xarray as xr

    from ..transport import apply_shifts
    from ._eels import _keep

    cfg, full, si_e, ref = ctx.config, ctx["screen"], ctx["energy_drift"], ctx["reference_state"]
    rc = cfg.register
    window = full.sel(energy=slice(*rc.window_ev)) if rc.window_ev else full
    image = window.sum("energy").compute()
    shift = _register_shift(np.asarray(image.values)[0], ref, rc)[None, :]
    ds = xr.Dataset({"drift": (("time", "component"), shift, {"units": "px"}), "image": image},
                    coords={"component": ["dy", "dx"], "time": si_e.time})
    if _keep(ctx):
        ds["si"] = apply_shifts(si_e, shift) if rc.enabled else si_e
    return ds


def _live_register_view(ctx, ds):
    # the batch stage's view: what downstream stages see of a registered frame is the same live and batch
    from ._eels import _register_view

    return _register_view(ctx, ds)


def _fraction_plan(cfg, reference: Reference, index: int):
    """Whether a causal frame gets x, and with which calibration: ``{"k": ...}`` as given; a region form
    calibrates k once, on its frame, and later frames use that k (as the batch run does); the charge form
    needs the whole series (the final run computes it) — live maps then stay Li weights."""
    cal = dict(getattr(cfg.limap, "calibration", {}) or {})
    if not cal or "k" in cal:
        return cfg, bool(cal)
    if "region" in cal:
        if reference.fraction_k is not None:
            return cfg.replace(limap={"calibration": dict(reference.fraction_k)}), True
        if index == int(cal.get("frame", 0)):
            region = dict(cal, frame=0)  # the live series holds this one frame
            return cfg.replace(limap={"calibration": region}), True
    return cfg, False


def live_table(*, fraction: bool = False) -> tuple:
    """The causal per-frame stage table: the batch table's own ``energy_drift`` and ``limap`` (and, for x,
    ``fraction``) stages, with ``register`` replaced by registration onto the running reference;
    ``screen`` (the frame, already read and checked by the watcher) and ``reference_state`` are sources."""
    from ._eels import TABLE, _keep, _spectra_dim
    from ._graph import Stage

    by_name = {st.name: st for st in TABLE}
    register = Stage("register", _live_register, inputs=("screen", "energy_drift", "reference_state"),
                     params=lambda ctx: [ctx.config.section("register"), _keep(ctx)], batched=_spectra_dim,
                     view=_live_register_view)
    table = (by_name["energy_drift"], register, by_name["limap"])
    return table + (by_name["fraction"],) if fraction else table
