# SPDX-License-Identifier: GPL-3.0-or-later
"""The night's Li-K chemical shift: measured once, on the night's own first usable frame (issue 19, item 4).

References made from a pristine and a charged region (``ionscope refs regions``,
:func:`ionscope.eels.references_from_regions`) carry two Li-K shapes and a
shift model; the shift between the regions' Li-K shapes is either stored in
the reference file (``li_k_shift_ev``) or left open (NaN: ``--chemical-shift
open``, or references made by a script). A night's fit is planned once, before
any frame is fitted, and a live session's rows are reused by the final run, so
an open shift must be fixed for the whole night. ``[limap] chemical_shift``
says how:

* ``"measure"`` (default): a stored shift is used as stored (the maps are
  those of a run without this step, bit for bit); an open one is measured on
  the night's first usable frame — the first frame the screen kept, its energy
  drift and specimen drift undone as the fit sees it — with
  :func:`ionscope.eels.mlls_plan` (``shift_probe=``), before the Li-map plan is
  made, and every frame is fitted with it;
* ``"open"``: as before this key: the fused fit warns and fits the two rows as
  given (a stage-by-stage run lets :func:`ionscope.eels.mlls` measure it on its
  whole input);
* ``"off"``: the two rows as given, even with a stored shift;
* a number (eV): that shift, whatever the file says.

The measured shift is stored in the run's stage cache (group ``li_shift``)
under a key made of the reference file's content, the fit's settings and the
first usable frame's identity (its content key for a folder of frames): a
resumed run, and the final run after a live session, take the stored value
instead of measuring again; a changed reference file measures again. The Li
maps carry it in their attributes (``li_k_shift_ev``, ``li_k_shift_std_ev``,
``li_k_shift_measured_on``, ...), and ``summary.json`` / ``report.html`` show
them. A shift the first frame does not determine (at the end of the searched
range, or a σ not smaller than the shift; :func:`determined`) warns, and the
night is fitted with :data:`UNDETERMINED_EV` (0 eV: the regions' Li-K shapes as
they are) instead of the search's end value; the maps' attributes and
``summary.json`` say so (``li_k_shift_determined = 0``, the measured value in
``li_k_shift_measured_ev``). The σ (``li_k_shift_std_ev``, from the χ²
curvature) is the data's noise only: it leaves out the references' own noise
and the model's error (``li_k_shift_std_note``).

Why one frame: live mode fits the first frame as soon as it arrives, and the
live rows are the final run's rows, so the shift can only depend on frames the
live session has when it needs it. A whole frame is needed (the estimate
smooths x over neighbouring pixels); only pixels whose x lies beyond the
regions' decide it (:func:`ionscope.eels._li_shift.estimate_delta`).
"""
from __future__ import annotations

import numpy as np

#: the words ``[limap] chemical_shift`` takes besides a number of eV
MODES = ("measure", "open", "off")
#: the stage cache's group of the measured shift
GROUP = "li_shift"
#: bump when what the record holds or how the shift is measured changes
_LAYOUT = 2  # 2: an undetermined shift is fitted as 0 eV and flagged (the maps and their attrs change)
#: shifts measured in this process by runs without a stage cache (per-frame runs in memory), by key
_MEMO: dict = {}


def check_mode(value, where: str = "config [limap] chemical_shift"):
    """``value`` as a mode: one of :data:`MODES` or a finite float (eV); ConfigError otherwise.

    Examples
    --------
    >>> check_mode("measure"), check_mode(0.3)
    ('measure', 0.3)
    """
    from ..errors import ConfigError

    if isinstance(value, str) and value in MODES:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    raise ConfigError(f"{where}: expected one of {list(MODES)} or a Li-K shift in eV, got {value!r}")


def _active(refs) -> tuple | None:
    """The shift model of two-row references the fit would use (``eels.mlls_plan``'s rule), or None."""
    from ..eels import _li_shift

    if refs is None or not hasattr(refs, "attrs"):
        return None
    model = _li_shift.model_of(refs)
    names = [str(c) for c in refs["component"].values] if "component" in getattr(refs, "dims", ()) else []
    if model is None or len(names) != 2 or model[2] not in names or model[3] not in names:
        return None
    return model


def _changes(cfg, refs) -> str | None:
    """What the night's step does for these references: None (nothing: the fit is planned as without it),
    or a word for the Li-map stage's key ("measure", "off" or the given shift)."""
    lc = cfg.limap
    if lc.method != "mlls":
        return None
    model = _active(refs)
    if model is None:
        return None
    mode = lc.chemical_shift
    if mode == "open" or (mode == "measure" and np.isfinite(model[1])):
        return None
    return str(mode)


def limap_params(ctx, series) -> dict:
    """What the Li-map stage's key adds for the night's shift: ``{}`` whenever the maps are those of a run
    without this step (one Li-K shape, a stored shift, ``"open"``), so such caches stay valid."""
    from ._eels_adapters import _plural_mode

    cfg = ctx.config
    if cfg.limap.method != "mlls" or "references" not in ctx or cfg.input.low_loss or \
            ctx.values.get("low_loss") is not None or _plural_mode(cfg, series) != "fourier-log":
        return {}  # the step runs only where the fit deconvolves each spectrum's own zero-loss peak
    word = _changes(ctx.config, ctx["references"](np.asarray(series.energy.values, float)))
    return {} if word is None else {"chemical_shift": word, "li_shift_layout": _LAYOUT}


def _with_shift(refs, delta: float | None):
    """A copy of ``refs`` with its Li-K shift set (None: the shift model removed: the two rows as given)."""
    out = refs.copy()
    out.attrs = dict(refs.attrs)
    if delta is None:
        out.attrs.pop("li_k_shift_components", None)
    else:
        out.attrs["li_k_shift_ev"] = float(delta)
    return out


def night_references(ctx, *, series, plural: str, frame_block, probe=None):
    """The references the night's Li maps are fitted with, and the attributes the maps get.

    Parameters
    ----------
    ctx : ionscope.pipeline._graph.Context
        The run (``config``, ``references``, the stage cache, frame keys).
    series : xarray.DataArray (time, y, x, energy)
        The frames the screen kept (the first is the one measured on).
    plural : str
        The resolved ``[limap] plural_scattering``.
    frame_block : callable () -> ndarray (y, x, energy)
        The first usable frame as the fit sees it (energy and specimen drift undone).
    probe : ndarray or callable () -> ndarray, optional
        Spectra to measure the zero-loss width on (as for the fit; called only to measure).

    Returns
    -------
    (callable energy -> references, dict)
        The references (``ctx["references"]`` itself when nothing changes) and attributes for the maps.
    """
    cfg = ctx.config
    refs_of = ctx["references"]
    if cfg.limap.method != "mlls" or plural != "fourier-log":
        return refs_of, {}
    refs = refs_of(np.asarray(series.energy.values, float))
    word = _changes(cfg, refs)
    if word is None:
        return refs_of, {}
    mode = cfg.limap.chemical_shift
    if mode == "off":
        return (lambda energy: _with_shift(refs_of(energy), None)), {"li_k_shift_source": "off ([limap] chemical_shift)"}
    if not isinstance(mode, str):
        return (lambda energy: _with_shift(refs_of(energy), mode)), {
            "li_k_shift_ev": float(mode), "li_k_shift_source": "given ([limap] chemical_shift)"}
    rec = _record(ctx, series=series, plural=plural, frame_block=frame_block, probe=probe, refs_of=refs_of)
    measured, std = float(rec["li_k_shift_ev"]), float(rec["li_k_shift_std_ev"])
    ok = determined(measured, std, bool(rec["at_bound"]))
    delta = measured if ok else UNDETERMINED_EV
    if not ok:
        _warn_undetermined(measured, std, rec)
    source = "measured on the night's first usable frame ([limap] chemical_shift = \"measure\")" if ok else (
        f"NOT DETERMINED by the night's first usable frame (measured {measured:+.3f} eV, "
        + ("at the end of the searched range" if rec["at_bound"] else f"σ {std:.3g} eV") + f"): fitted with "
        f"{UNDETERMINED_EV:g} eV (the two regions' Li-K shapes, no shift between them); give the shift with "
        "[limap] chemical_shift = EV")
    return (lambda energy: _with_shift(refs_of(energy), delta)), {
        "li_k_shift_ev": delta, "li_k_shift_std_ev": std, "li_k_shift_source": source,
        "li_k_shift_measured_on": str(rec["measured_on"]), "li_k_shift_frames": str(rec["frames"]),
        "li_k_shift_at_bound": int(rec["at_bound"]), "li_k_shift_probe_seconds": float(rec["seconds"]),
        "li_k_shift_determined": int(ok), "li_k_shift_measured_ev": measured, "li_k_shift_std_note": STD_NOTE}


#: the shift a night fits with when its first frame does not determine it (:func:`determined`): δ = 0, the two
#: regions' Li-K shapes as they are (no shift between them), within the shift model (so with the correction for
#: the references' noise). Measured (BENCHMARKS.md, "the night's Li-K shift: ... not determined"): on small
#: noisy regions the search's end value either is 0 (the same fit) or is the far end (1.5 eV), which put x
#: 0.5–1 low between the regions; the two rows fitted as given ("off") read x higher beyond the regions
UNDETERMINED_EV = 0.0
#: what li_k_shift_std_ev is and what it leaves out (in the maps' attributes and summary.json)
STD_NOTE = ("σ from the χ² curvature of the first frame's fit: the data's noise only; it leaves out the "
            "references' own noise and the model's error, so it understates the shift's uncertainty (measured, "
            "64×128 frames at 1000 counts, regions of ~4000 and 256–384 pixels: the shift scattered by 0.27 eV "
            "over 8 draws, σ 0.002–0.004 eV; noise-free 0.04 eV off for σ 0.009; BENCHMARKS.md)")


def determined(delta: float, std: float, at_bound: bool) -> bool:
    """Whether the first frame determined the shift: a minimum inside the searched range whose χ² curvature
    gives a finite σ smaller than the shift itself.

    Examples
    --------
    >>> determined(0.2, 0.05, False), determined(0.0, float("nan"), True), determined(0.1, 0.2, False)
    (True, False, False)
    """
    return (not at_bound) and bool(np.isfinite(std)) and std < abs(delta)


def _warn_undetermined(delta: float, std: float, rec: dict) -> None:
    import warnings

    from ..eels import _li_shift

    scan = _li_shift.DELTA_SCAN_EV
    why = (f"lies at the end of the searched range ({scan[0]:g}…{scan[-1]:g} eV)" if rec["at_bound"] else
           f"has a σ of {std:.3g} eV (χ² curvature), not smaller than the shift itself")
    warnings.warn(f"the Li-K shift measured on the night's first usable frame ({rec['measured_on']}), "
                  f"{delta:+.2f} eV, {why}: the frame does not determine it (too few pixels beyond the regions' x, "
                  f"or regions too small?); the night is fitted with {UNDETERMINED_EV:g} eV (the regions' shapes "
                  "as they are) and summary.json says li_k_shift_determined = 0; give it with "
                  "[limap] chemical_shift = EV (or store it: `ionscope refs regions --chemical-shift EV`)",
                  RuntimeWarning, stacklevel=3)


def _identity(ctx, t) -> str:
    """A frame's identity: its content key (a folder of frames, a live session), else the series' key and time."""
    from ._framekeys import row_id

    keys = (ctx.info.get("frame_keys") or {}).get("series") or ctx.info.get("li_shift_frame_keys") or {}
    rid = row_id(t)
    if rid in keys:
        return str(keys[rid])
    src = ctx.keys.get("series", ctx.keys.get("screen", ""))
    return f"{src}@{rid}"


def _key(ctx, plural: str) -> str:
    from ._stores import stage_key

    lc = ctx.config.limap
    params = {"fit_range": list(lc.fit_range), "plural": plural, "options": dict(lc.options),
              "component": lc.component, "layout": _LAYOUT}
    return stage_key(GROUP, params, [ctx.keys.get("references", "")])


def _stage_cache(ctx):
    """The run's StageCache (a live session's :class:`LiveStore` writes through to it; a causal live session,
    whose rows stay in memory, names the night's in ``ctx.info["li_shift_cache"]``), or None."""
    from ._stores import StageCache

    for store in (ctx.cache, ctx.info.get("li_shift_cache")):
        if isinstance(store, StageCache):
            return store
        inner = getattr(store, "cache", None)
        if isinstance(inner, StageCache):
            return inner
    return None


def _load(cache, key: str, idents: set):
    if cache is None or not cache.has(GROUP, key):
        return None
    ds = cache.load(GROUP).load()
    rec = {k: ds.attrs[k] for k in ("measured_on", "frames", "frame_identity", "at_bound", "seconds")
           if k in ds.attrs}
    if rec.get("frame_identity") not in idents:
        return None
    rec.update(li_k_shift_ev=float(ds.li_k_shift_ev.values), li_k_shift_std_ev=float(ds.li_k_shift_std_ev.values))
    return rec


def _record(ctx, *, series, plural, frame_block, probe, refs_of) -> dict:
    """The stored measurement of this night and references, or a new one (stored)."""
    t_all = list(np.asarray(ctx["series"].time.values)) if "series" in ctx and ctx["series"] is not None else []
    t_all = t_all or list(np.asarray(series.time.values))
    idents = {_identity(ctx, t) for t in t_all}
    key = _key(ctx, plural)
    state = ctx.values.get("reference_state")  # a causal live session: measured once, kept with its reference
    kept = getattr(state, "li_k_shift", None)
    if kept is not None and kept.get("key") == key:
        return kept
    cache = _stage_cache(ctx)
    rec = _load(cache, key, idents)
    if rec is not None:
        return rec
    rec = next((r for (k, i), r in _MEMO.items() if k == key and i in idents), None)
    if rec is not None:
        _save(cache, key, rec)
        return rec
    if cache is not None and cache.stored_key(GROUP) == key:
        import warnings

        warnings.warn("the Li-K shift stored for these references was measured on a frame this night does not "
                      "hold: measuring it again on this night's first usable frame", RuntimeWarning, stacklevel=4)
    rec = _measure(ctx, series=series, plural=plural, frame_block=frame_block, probe=probe, refs_of=refs_of)
    _save(cache, key, rec)
    if len(_MEMO) > 16:
        _MEMO.clear()
    _MEMO[(key, rec["frame_identity"])] = rec
    if state is not None and hasattr(state, "li_k_shift"):
        state.li_k_shift = dict(rec, key=key)
    return rec


def _measure(ctx, *, series, plural, frame_block, probe, refs_of) -> dict:
    """Measure the shift on the first frame of ``series`` (:func:`ionscope.eels.mlls_plan`, ``shift_probe=``)."""
    import time

    from ..eels import _li_shift
    from ._eels_frame import frame_plan

    t0 = series.time.values[0]
    number = int(series.frame_index.values[0]) if "frame_index" in series.coords else 0
    files = ctx.info.get("frame_files")
    good = np.flatnonzero(np.asarray(ctx.cache.load("screen").good.values, bool)) if "screen" in ctx.records else [0]
    file = files[int(good[0])] if files and len(good) else ""
    where = f"frame {number} (t = {float(t0):g} s" + (f", {file}" if file else "") + ")"
    start = time.perf_counter()
    block = np.asarray(frame_block(), float)
    probe = probe() if callable(probe) else probe
    plan = frame_plan(ctx.config, energy=series.energy.values, references=refs_of, probe=probe, plural=plural,
                      shift_probe=lambda: block[None])
    seconds = time.perf_counter() - start
    shift = plan.fit.kwargs.get("shift_of_x") if plan.fit is not None else None
    if shift is None:  # e.g. [limap] options chemical_shift = "off": nothing measured
        delta, std = 0.0, float("nan")
    else:
        delta, std = float(shift[0]), curvature_std(*plan.fit.info.get("li_k_shift_scan", ((), ())))
    scan = _li_shift.DELTA_SCAN_EV
    return {"li_k_shift_ev": delta, "li_k_shift_std_ev": std, "measured_on": where, "frames": str(number),
            "frame_identity": _identity(ctx, t0), "at_bound": int(not scan[0] < delta < scan[-1]),
            "seconds": seconds}


def _save(cache, key: str, rec: dict) -> None:
    if cache is None:
        return
    import xarray as xr

    cache.save(GROUP, key, xr.Dataset(
        {"li_k_shift_ev": ((), rec["li_k_shift_ev"], {"units": "eV"}),
         "li_k_shift_std_ev": ((), rec["li_k_shift_std_ev"], {"units": "eV"})},
        attrs={k: rec[k] for k in ("measured_on", "frames", "frame_identity", "at_bound", "seconds")}))


def curvature_std(tried, chi2) -> float:
    """σ of the shift from the curvature of the probe's χ² around its minimum (Δχ² = 1), or NaN.

    The χ² is that of the propagated (Poisson) variance of the deconvolved spectra, so this is the data's
    noise only: the references' own noise (their regions' finite pixels) is not in it.

    Examples
    --------
    >>> t = np.array([0.0, 0.25, 0.5, 0.325, 0.4])
    >>> round(curvature_std(t, 100 * (t - 0.3) ** 2 + 7), 3)
    0.1
    """
    t, c = np.asarray(tried, float), np.asarray(chi2, float)
    if t.size < 3 or not np.isfinite(c).all():
        return float("nan")
    best = t[int(np.argmin(c))]
    near = np.abs(t - best) <= 0.2
    if near.sum() < 3:
        return float("nan")
    a2 = np.polyfit(t[near] - best, c[near], 2)[0]
    return float(1.0 / np.sqrt(a2)) if a2 > 0 else float("nan")
