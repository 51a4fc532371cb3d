# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope run CONFIG.toml`` / ``ionscope run --demo``: the operando pipeline."""
from __future__ import annotations

from ._common import printable

_DEMO_TOML = """# written by `ionscope run --demo`: a simulated operando series and its log
[input]
series = "data/operando.zarr"
log = "data/log.csv"
frame_interval_s = {interval}
time_anchor = "mid"

[output]
dir = "."

[limap]
method = "mlls"
# the simulator's own single-scattering shapes; for real data: `ionscope refs regions ...` → refs.nc
references = "simulated-realistic"
fit_range = [45.0, 85.0]
plural_scattering = "fourier-log"   # the spectra hold their zero-loss peak: deconvolve each from its own
# x = (w_Li/w_Co)/k, k from the first frame's film beyond the Li-poor interface layer (known x)
calibration = {{ region = [{y0}, {ny}, 0, {nx}], x = {x0:.4f}, frame = 0 }}

[denoise]
method = "{denoise}"

[compute]
scheduler = "{scheduler}"
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="run the operando pipeline (frames → Li movie → flux → report)",
                       description="Run energy-drift correction, registration, Li maps, denoising, analysis "
                                   "and report; every stage is cached, so a re-run resumes. A configuration "
                                   "with a [holography] section runs a night of holograms under bias instead. "
                                   "The run writes only inside its output folder and never replaces a file it "
                                   "did not write (docs/guarantees.md).")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="run configuration (TOML)")
    p.add_argument("--demo", action="store_true", help="simulate a small experiment and run on it")
    p.add_argument("--var", metavar="NAME", help="variable of multi-variable frame files or series store "
                                                 "(overrides [input] var; default: the only or main one)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="output directory (overrides [output] dir; --demo: ionscope-run-demo)")
    p.add_argument("--scheduler", metavar="S", help="'threads', 'synchronous', 'local' (dask LocalCluster) "
                                                     "or 'tcp://HOST:PORT' (overrides [compute] scheduler)")
    p.add_argument("--frame-pattern", metavar="RE",
                   help="regular expression with one group (the frame number) that a frame file's name, without "
                        "extension, must match (overrides [input] frame_pattern; default: the last run of digits)")
    p.add_argument("--quick", action="store_true", help="with --demo: a smaller series")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (implies --no-progress)")
    p.add_argument("--wait", action="store_true",
                   help="if another run holds the output folder, wait for it instead of refusing")
    p.add_argument("--wait-max", type=float, metavar="SECONDS", help="with --wait: give up after SECONDS")
    p.set_defaults(handler=run)


def _demo_config(out: str, *, quick: bool, scheduler: str):
    """Simulate a series into ``out/data`` and write ``out/run.toml`` pointing at it."""
    from pathlib import Path

    import numpy as np

    from .. import io as iio
    from .._atomic import atomic_path
    from ..simulate import operando_eels

    out_dir = Path(out)
    size = dict(shape=(16, 24), n_frames=8) if quick else dict(shape=(32, 48), n_frames=24)
    store = out_dir / "data" / "operando.zarr"
    si, truth, log = operando_eels(**size, energy_step=0.2, physics="realistic", dose=1000.0, energy_drift_ev=0.3,
                                   specimen_drift_px=1.0, seed=0)
    iio.save(si, store)
    with atomic_path(out_dir / "data" / "log.csv") as tmp:
        log.to_dataframe().to_csv(tmp, float_format="%.9g")
    toml = out_dir / "run.toml"
    with atomic_path(toml) as tmp:
        ny, nx = truth.sizes["y"], truth.sizes["x"]
        y0 = int(np.ceil(float(truth.attrs["layer_nm"]) / float(truth.attrs["pixel_nm"]))) + 1
        tmp.write_text(_DEMO_TOML.format(interval=float(truth.attrs["frame_time_s"]), scheduler=scheduler,
                                         denoise="gaussian" if quick else "sparse_coding", y0=y0, ny=ny, nx=nx,
                                         x0=float(truth.x_li.isel(time=0, y=slice(y0, ny)).mean())))
    return toml


def run(args) -> int:
    from pathlib import Path

    from ..errors import DataValidationError
    from ..operando import load_config

    if args.demo == bool(args.config):
        raise DataValidationError("give either CONFIG.toml or --demo")
    if args.demo:
        from .._outdir import session

        # the demo's folder is its own: new or empty, or made by an earlier `run --demo` (then reused)
        with session(args.out or "ionscope-run-demo", fresh=True, what="demo folder"):
            cfg_path = _demo_config(args.out or "ionscope-run-demo", quick=args.quick,
                                    scheduler=args.scheduler or "threads")
            return _run_config(args, load_config(cfg_path))
    cfg = load_config(args.config)
    if args.out:
        cfg = cfg.replace(output={"dir": str(Path(args.out).resolve())})
    return _run_config(args, cfg)


def _run_config(args, cfg) -> int:
    from ..operando import run as run_pipeline

    if args.scheduler:
        cfg = cfg.replace(compute={"scheduler": args.scheduler})
    if cfg.table == "holography":  # the configuration names its night: no sniffing of the TOML
        return _run_holography(args, cfg)
    if getattr(args, "frame_pattern", None):
        cfg = cfg.replace(input={"frame_pattern": args.frame_pattern})

    if args.var:
        cfg = cfg.replace(input={"var": args.var})
    from ..report import operando_report_stage

    from ..errors import DataValidationError

    try:
        result = run_pipeline(cfg, show_progress=False if (args.no_progress or args.quiet) else None,
                              extra_stages=(operando_report_stage(),),
                              wait=(args.wait_max if args.wait_max is not None else True) if args.wait else False)
    except DataValidationError as exc:
        # the sync stage's refusal speaks of "log" (transport.sync_frames knows no file): name the file
        if cfg.input.log and str(exc).startswith("log does not cover"):
            raise DataValidationError(f"{cfg.path(cfg.input.log)} ([input] log): {exc}") from None
        raise
    if args.quiet:
        return 0
    for name, rec in result.stages.items():
        how = "cached" if rec.cached else ("resumed" if rec.resumed_batches else "done")
        print(f"{name:<13} {how:<8} {rec.seconds:>8.2f} s")
    for bad in result.bad_frames:
        print(printable(f"bad frame {bad['frame']}: {bad['file'] or '-'}: {bad['reason']}"))
    if result.ignored_files:
        print(f"ignored {len(result.ignored_files)} file(s) not named like frames ([input] frame_pattern): "
              + ", ".join(map(printable, result.ignored_files[:10])) + (" ..." if len(result.ignored_files) > 10 else ""))
    an = result.analysis.attrs
    unit = result.analysis.flux_y.attrs.get("units", "nm/s") if "flux_y" in result.analysis else "nm/s"
    print(f"through-film fraction {an.get('through_fraction', float('nan')):.3f}, "
          f"net flux toward the electrolyte {an.get('net_toward_electrolyte', float('nan')):.3g} {unit}")
    frac = result.dataset("fraction")
    if "k" in frac.attrs:
        print(f"x = (w_Li/w_Co)/k with k = {frac.attrs['k']:.4g} ± {frac.attrs['k_std']:.2g}")
    if "thickness_mean" in frac:
        t = frac.thickness_mean.values
        print(f"t/λ {t[0]:.3f} → {t[-1]:.3f} over the run ({100 * (t[-1] / t[0] - 1):+.1f} %)"
              + ("  WARNING: the film thins under the beam (> 5 %)" if frac.attrs.get("thinning_warning") else ""))
    from ..pipeline import references_noise_warning as warning_line

    if warning_line(frac.attrs):  # the references' own noise decides x (issue 19)
        print(warning_line(frac.attrs))
    print(f"outputs in {cfg.out_dir}/ ({', '.join(sorted(result.files))})")
    return 0


def _run_holography(args, cfg) -> int:
    """A ``[holography]`` config: the holography-under-bias table on the same runner."""
    from ..operando import run_holography
    from ..report import holography_writers

    if getattr(args, "frame_pattern", None) or args.var:
        from ..errors import DataValidationError

        raise DataValidationError("--frame-pattern and --var name EELS frames; a [holography] night reads the "
                                  "store [holography] holograms names")
    from ._common import naming

    opt = cfg.holography
    # bias_series names its arguments ("references: no fringes found"): the user named files under keys
    roles = {k: (f"[holography] {k}", cfg.path(opt[k])) for k in ("holograms", "references", "log")
             if isinstance(opt.get(k), str)}
    # the figures, GIF and viewer come from the report package, handed to the runner (as the EELS report stage)
    with naming(**roles):
        res = run_holography(cfg, show_progress=False if (args.no_progress or args.quiet) else None,
                             wait=(args.wait_max if args.wait_max is not None else True) if args.wait else False,
                             writers=holography_writers())
    if args.quiet:
        return 0
    for name, rec in res.records.items():
        print(f"{name:<13} {'cached' if rec.cached else 'done':<8} {rec.seconds:>8.2f} s")
    summary = res.summary or {}
    print(f"{summary.get('n_time_points', '?')} time points, method {summary.get('method', '?')}, "
          f"interfaces at {', '.join(f'{float(x):.1f}' for x in summary.get('interfaces_nm', [])) or '?'} nm")
    for bad in summary.get("bad_frames", []):  # skipped time points (NaN in the outputs) and steps not measured
        print(f"bad time point {bad['time_index']} (t = {bad['time_s']:g} s): {bad['reason']}")
    a = (summary.get("asymmetry") or {}).get("all")
    if a:
        print(f"asymmetry (positive vs negative side) {a['asymmetry']:.3g} ± {a['asymmetry_std']:.2g}, "
              f"sign right in {100 * a['sign_fraction']:.0f} % of {a['n_frames']} biased frames")
    d = summary.get("drift") or {}
    if d.get("mode") in ("auto", "given") and d.get("max_nm") is not None:
        print(f"specimen drift ({d['mode']}): up to {d['max_nm']:.2g} nm from zero bias, followed")
    for r in summary.get("relaxation", []):
        if r.get("tau_s") is not None:
            print(f"bias step {r['bias_step']} (interface {r['interface']}): τ = {r['tau_s']:.3g} ± "
                  f"{r['tau_s_std']:.2g} s → {r['final_v']:.3g} V")
    print(f"outputs in {res.output}/")
    if (res.output / "viewer.html").exists():
        print(f"viewer: {res.output / 'viewer.html'} (offline page: potential movie beside the bias, current, "
              "ΔV and width curves)")
    return 0
