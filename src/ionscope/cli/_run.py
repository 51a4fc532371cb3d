# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope run CONFIG.toml`` / ``ionscope run --demo``: the operando pipeline."""
from __future__ import annotations

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
references = "simulated"
fit_range = [45.0, 80.0]

[denoise]
method = "{denoise}"

[compute]
scheduler = "{scheduler}"
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="run the operando pipeline (frames → Li movie → flux → report)",
                       description="Run energy-drift correction, registration, Li maps, denoising, analysis "
                                   "and report; every stage is cached, so a re-run resumes.")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="run configuration (TOML)")
    p.add_argument("--demo", action="store_true", help="simulate a small experiment and run on it")
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir; --demo: ionscope-run-demo)")
    p.add_argument("--scheduler", metavar="S", help="'threads', 'synchronous', 'local' (dask LocalCluster) "
                                                     "or 'tcp://HOST:PORT' (overrides [compute] scheduler)")
    p.add_argument("--quick", action="store_true", help="with --demo: a smaller series")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--wait", action="store_true",
                   help="if another run holds the output folder, wait for it instead of refusing")
    p.add_argument("--wait-max", type=float, metavar="SECONDS", help="with --wait: give up after SECONDS")
    p.set_defaults(handler=run)


def _demo_config(out: str, *, quick: bool, scheduler: str):
    """Simulate a series into ``out/data`` and write ``out/run.toml`` pointing at it."""
    from pathlib import Path

    from .. import io as iio
    from .._atomic import atomic_path
    from ..simulate import operando_eels

    out_dir = Path(out)
    size = dict(shape=(16, 24), n_frames=8) if quick else dict(shape=(32, 48), n_frames=24)
    store = out_dir / "data" / "operando.zarr"
    si, truth, log = operando_eels(**size, energy_step=0.2, energy_drift_ev=0.3, specimen_drift_px=1.0, seed=0)
    iio.save(si, store)
    with atomic_path(out_dir / "data" / "log.csv") as tmp:
        log.to_dataframe().to_csv(tmp, float_format="%.9g")
    toml = out_dir / "run.toml"
    with atomic_path(toml) as tmp:
        tmp.write_text(_DEMO_TOML.format(interval=float(truth.attrs["frame_time_s"]), scheduler=scheduler,
                                         denoise="gaussian" if quick else "sparse_coding"))
    return toml


def run(args) -> int:
    from pathlib import Path

    from ..errors import DataValidationError
    from ..operando import load_config, run as run_pipeline

    if args.demo == bool(args.config):
        raise DataValidationError("give either CONFIG.toml or --demo")
    if args.demo:
        cfg_path = _demo_config(args.out or "ionscope-run-demo", quick=args.quick,
                                scheduler=args.scheduler or "threads")
        cfg = load_config(cfg_path)
    else:
        cfg = load_config(args.config)
        if args.out:
            cfg = cfg.replace(output={"dir": str(Path(args.out).resolve())})
    if args.scheduler:
        cfg = cfg.replace(compute={"scheduler": args.scheduler})
    from ..report import operando_report_stage

    result = run_pipeline(cfg, show_progress=False if args.no_progress else None,
                          extra_stages=(operando_report_stage(),),
                          wait=(args.wait_max if args.wait_max is not None else True) if args.wait else False)
    for name, rec in result.stages.items():
        how = "cached" if rec.cached else ("resumed" if rec.resumed_batches else "done")
        print(f"{name:<13} {how:<8} {rec.seconds:>8.2f} s")
    for bad in result.bad_frames:
        print(f"bad frame {bad['frame']}: {bad['file'] or '-'}: {bad['reason']}")
    an = result.analysis.attrs
    print(f"through-film fraction {an.get('through_fraction', float('nan')):.3f}, "
          f"net flux toward the electrolyte {an.get('net_toward_electrolyte', float('nan')):.3g} nm/s")
    print(f"outputs in {cfg.out_dir}/ ({', '.join(sorted(result.files))})")
    return 0
