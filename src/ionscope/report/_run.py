# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything a pipeline run shows: movies, figures, viewer, summary and one report page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._atomic import atomic_path


def _captions(times, sync) -> list[str]:
    """'t = 12.5 min · 4.021 V · charge' per frame (what the movie annotates)."""
    out = []
    volt = sync.voltage.values if "voltage" in sync else None
    states = [str(s) for s in sync.state.values] if "state" in sync else None
    for i, t in enumerate(times):
        parts = [f"t = {t / 60:.1f} min"]
        if volt is not None and np.isfinite(volt[i]):
            parts.append(f"{volt[i]:.3f} V")
        if states is not None:
            parts.append(states[i])
        out.append(" · ".join(parts))
    return out


def write_run_report(result, out_dir, *, show_progress: bool | None = None) -> dict[str, Path]:
    """Write the outputs of a finished :func:`ionscope.operando.run` into ``out_dir``.

    Files: ``movie.mp4`` / ``movie.gif`` (raw beside denoised Li maps, with
    time, voltage and state), ``figures/*.png`` (charge curve, mean Li, flux
    components, profiles, flux map, rest activity), ``viewer.html`` (the
    interactive offline viewer), ``summary.json`` and ``report.html``.

    Parameters
    ----------
    result : ionscope.pipeline.RunResult
        A finished EELS night.
    out_dir : str or Path
        The folder to write into (created).
    show_progress : bool, optional
        A progress bar (default: on a terminal only).

    Returns
    -------
    dict of str to Path
        The files written, by name relative to ``out_dir``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope.simulate import operando_eels
    >>> from ionscope.pipeline import run
    >>> si, truth, log = operando_eels(shape=(8, 12), n_frames=3, energy_step=0.5, seed=1)
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> res = run({"output": {"dir": str(out / "night")}, "denoise": {"method": "gaussian"},
    ...            "register": {"enabled": False}, "report": {"movies": [], "figures": False}},
    ...           series=si, log=log, executor="synchronous")
    >>> sorted(write_run_report(res, out / "report", show_progress=False))
    ['report.html', 'summary.json', 'viewer.html']
    """
    from .._progress import progress
    from . import _figures as figs
    from . import _style
    from ._html import write_html_report
    from ._movie import li_movie
    from ._viewer import write_viewer

    cfg = result.config.report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    an = result.analysis.load()
    sync_all = result.sync.load()
    covered = np.asarray(sync_all.covered.values, bool)
    sync = sync_all.isel(time=covered)
    # the mapped quantity before and after denoising: x with a calibration, else the Li weight
    frac = result.dataset("fraction").load()
    raw = np.asarray(frac["li"].values, float)[covered]
    den = np.asarray(result.li_denoised.values, float)[covered]
    label = _map_label(result.config, frac)
    # x in LixCoO2 lies in [0, 1]: colour scales stop there and the share of pixels beyond is reported
    bounds = _style.bounds_of(frac["li"])
    times = np.asarray(an.time.values, float)
    captions = _captions(times, sync)
    files: dict[str, Path] = {}
    jobs = [f"movie.{ext}" for ext in cfg.movies] + (["figures"] if cfg.figures else []) + (
        ["viewer.html"] if cfg.viewer else [])
    for job in progress(jobs, desc=f"{'report: write':<22}", enable=show_progress, unit="file"):
        if job.startswith("movie."):
            pixel = float(abs(an.x.values[1] - an.x.values[0])) if "x" in an.coords and an.sizes["x"] > 1 else None
            files[job] = li_movie(out / job, {"raw": raw, "denoised": den}, captions, fps=cfg.fps, label=label,
                                  pixel_nm=pixel, bounds=bounds)
        elif job == "figures":
            made = {"charge_curve": figs.charge_curve(sync), "mean_li": figs.mean_li(an, raw=raw.mean(axis=(1, 2))),
                    "flux_components": figs.flux_components(an), "profiles": figs.profiles(an),
                    "flux_map": figs.flux_map(an)}
            if "rest_activity" in an:
                made["rest_activity"] = figs.rest_activity(an)
            if "thickness_mean" in frac:
                made["thickness"] = figs.thickness_trend(times, frac.thickness_mean.values[covered],
                                                         sync.state.values if "state" in sync else None)
            for name, fig in made.items():
                files[f"figures/{name}.png"] = figs.save_figure(fig, out / "figures" / f"{name}.png")
        else:
            pixel = float(abs(an.x.values[1] - an.x.values[0])) if "x" in an.coords and an.sizes["x"] > 1 else 1.0
            x0 = float(an.x.values[0]) - 0.5 * pixel if "x" in an.coords else 0.0
            y0 = float(an.y.values[0]) - 0.5 * pixel if "y" in an.coords else 0.0
            files[job] = write_viewer(out / job, raw=raw, denoised=den, times=times,
                                      voltage=sync.voltage.values if "voltage" in sync else None,
                                      soc=sync.soc.values if "soc" in sync else None,
                                      current=sync.current.values if "current" in sync else None,
                                      charge=sync.charge_c.values if "charge_c" in sync else None,
                                      states=sync.state.values, pixel_nm=pixel, x0_nm=x0, y0_nm=y0,
                                      title="ionscope operando viewer: Li map and charge curve",
                                      label=label, bounds=bounds)
    summary = result.summary()
    summary["map_quantity"] = label
    summary["map_unit"] = "x" if frac["li"].attrs.get("quantity") == "x" else str(frac["li"].attrs.get("units", ""))
    from ..pipeline import REFERENCES_NOISE_KEYS as refs_noise_keys

    for key in ("k", "k_std", "thickness_change", "thinning_warning", "undefined_pixels") + refs_noise_keys:
        if key in frac.attrs:
            summary[key] = frac.attrs[key]
    for key in ("thinning_warning", "references_noise_warning"):
        if key in summary:
            summary[key] = bool(summary[key])  # a yes/no answer, not a count
    if bounds is not None:
        summary["x_outside_0_1"] = {f"{name}_{side}": round(100 * getattr(_style.colour_scale(v, bounds=bounds),
                                                                         attr), 4)
                                    for name, v in (("raw", raw), ("denoised", den))
                                    for side, attr in (("below_0", "below_bound"), ("above_1", "above_bound"))}
    if "thickness_mean" in frac:
        summary["thickness_per_frame"] = [round(float(v), 4) for v in frac.thickness_mean.values]
    summary["bad_frames_detail"] = result.bad_frames
    summary["implausible_pixels_detail"] = getattr(result, "flagged_pixels", [])
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
    files["summary.json"] = out / "summary.json"
    sections = [
        {"title": "Li transport", "numbers": {k: v for k, v in summary.items()
                                              if not isinstance(v, list) and k != "stage_seconds"},
         "figures": [p for k, p in files.items() if k.startswith("figures/")]},
        {"title": "Movies (raw | denoised)", "movies": [files[k] for k in files if k.startswith("movie.")]},
    ]
    if "viewer.html" in files:
        sections.append({"title": "Viewer", "viewer": files["viewer.html"]})
    if result.bad_frames:
        sections.append({"title": "Frames marked bad", "table": result.bad_frames})
    if getattr(result, "flagged_pixels", None):
        sections.append({"title": "Pixels with impossible raw counts (NaN in the maps)", "table": result.flagged_pixels})
    sections.append({"title": "Stages", "table": [
        {"stage": n, "cached": r.cached, "seconds": round(r.seconds, 2), "resumed batches": r.resumed_batches}
        for n, r in result.stages.items()]})
    files["report.html"] = write_html_report(out / "report.html", title="ionscope operando run", sections=sections)
    return files


def _map_label(config, frac=None) -> str:
    """Name and unit of the mapped quantity, for the viewer's colour bar, the movie and the readout."""
    lc = config.limap
    attrs = frac["li"].attrs if frac is not None and "li" in frac else {}
    if attrs.get("quantity") == "x":
        return "Li fraction x in LixCoO2"
    if attrs.get("quantity") == "areal":
        return f"{attrs.get('long_name', 'Li per zero-loss intensity')} ({attrs.get('units', '')})"
    if lc.method == "mlls":
        unit = attrs.get("units", "")
        return f"{lc.component} weight (MLLS, {unit or '× reference'})"
    return f"{lc.component} ({lc.method.upper()})"


# --------------------------------------------------------------------------- the report as a pipeline stage

_SET = "report"  # the manifest is OUT/report.json


def _report_compute(ctx):
    from ..pipeline import FileSetStore

    staging = FileSetStore(ctx.config.out_dir, _SET).staging()
    return staging, write_run_report(ctx.result, staging, show_progress=ctx.show_progress)


def _report_after(ctx, files) -> None:
    ctx.result.files = dict(files)


def operando_report_stage():
    """The report as a stage of :func:`ionscope.operando.run` (``ionscope run`` adds it).

    Movies, figures, viewer, ``summary.json`` and ``report.html`` are written
    into a staging folder and published into ``[output] dir`` as one set; the
    stage is skipped when its key (report settings, bad frames, upstream
    results) and files are unchanged.

    Returns
    -------
    ionscope.pipeline.Stage
        The ``report`` stage (inputs ``analysis`` and ``limap``), for ``run(..., extra_stages=...)``.

    Examples
    --------
    >>> from ionscope.report import operando_report_stage
    >>> operando_report_stage().name
    'report'
    >>> # run(config, extra_stages=(operando_report_stage(),))
    """
    from ..pipeline import Stage

    return Stage("report", _report_compute, inputs=("analysis", "limap"),
                 params=lambda ctx: [ctx.config.section("report"), json.dumps(ctx.result.bad_frames)]
                 + ([json.dumps(ctx.result.flagged_pixels)] if getattr(ctx.result, "flagged_pixels", None) else []),
                 after=_report_after, store=lambda ctx: _file_set(ctx), outputs=_planned)


def _file_set(ctx):
    from ..pipeline import FileSetStore

    return FileSetStore(ctx.config.out_dir, _SET)


#: figures every report has (others depend on the data: rest activity, thickness)
_FIGURES = ("charge_curve", "mean_li", "flux_components", "profiles", "flux_map")


def _planned(ctx) -> list[str]:
    """The names the report will publish (checked before the run starts: new, or written by ionscope)."""
    cfg = ctx.config.report
    names = [f"movie.{ext}" for ext in cfg.movies] + (["viewer.html"] if cfg.viewer else [])
    names += [f"figures/{f}.png" for f in _FIGURES] if cfg.figures else []
    return names + ["summary.json", "report.html", f"{_SET}.json", f".{_SET}.publish.json"]
