# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope watch``: live Li maps (EELS) or potential maps and ΔV per interface (holography) while the
microscope acquires, then the batch run."""
from __future__ import annotations


from ._common import add_alias, add_var, printable


def register(sub) -> None:
    p = sub.add_parser("watch", help="follow an acquisition live: Li maps + charge curve (EELS) or potential "
                                     "maps + ΔV per interface (holography) in the browser",
                       description="Follow the series folder and log named in CONFIG.toml while they are written; "
                                   "process each complete frame (EELS: energy drift, registration, Li map, causal "
                                   "denoising, sync with the log; holography, a [holography] holograms folder of "
                                   "one hologram file per time point: the plan once the zero-bias holograms are "
                                   "in, then ΔV per interface and the potential map of each hologram) and show it "
                                   "on a live dashboard; when the acquisition ends (a STOP file in the series "
                                   "folder, --timeout, or Ctrl-C) run the batch pipeline on the same frames "
                                   "(= ionscope run).")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="run configuration (TOML)")
    p.add_argument("--demo", action="store_true",
                   help="start a fake microscope writing a simulated acquisition in a temporary folder and watch it")
    p.add_argument("-o", "--out", metavar="DIR", help="output directory (overrides [output] dir; --demo: the acquisition "
                                                "folder, default a new temporary one)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1; any other "
                                                       "address requires a token)")
    p.add_argument("--port", type=int, default=8765, help="dashboard port (0: any free port; default 8765)")
    p.add_argument("--token", help="access token for the dashboard (generated when --host is not local)")
    p.add_argument("--no-serve", action="store_true", help="no dashboard (process and cache only)")
    add_var(p, default_hint="the only or main one; overrides [input] var")
    p.add_argument("--window-frames", type=int, default=6, metavar="N", dest="window",
                   help="frames in the causal denoising window (default 6)")
    add_alias(p, "--window", new="--window-frames", dest="window", type=int)
    p.add_argument("--timeout", type=float, metavar="S",
                   help="end when no new frame came for S seconds (no frame at all: exit status 2, saying what "
                        "was awaited)")
    p.add_argument("--settle", type=float, default=1.0, metavar="S",
                   help="a frame file is complete when its size did not change for S seconds (default 1)")
    p.add_argument("--stop-file", default="STOP", help="file (in the series folder) that ends the acquisition")
    p.add_argument("--frame-pattern", metavar="RE",
                   help="regular expression with one group (the frame number) that a frame file's name, without "
                        "extension, must match (overrides [input] frame_pattern; default: the last run of digits)")
    p.add_argument("--sidecar", metavar="SUFFIX", help="frame-done sidecar suffix written by the acquisition, "
                                                       "e.g. .done")
    p.add_argument("--expected-frames", type=int, metavar="N", help="frames to come (for the disk-space warning)")
    p.add_argument("--no-final", action="store_true", help="skip the batch run at the end")
    p.add_argument("--exit-when-done", action="store_true",
                   help="stop serving as soon as the final run is done (default: keep serving until Ctrl-C)")
    p.add_argument("--speed", type=float, default=30.0, help="--demo: experiment seconds per second (default 30: "
                                                             "a 1-min frame every 2 s)")
    p.add_argument("--frames", type=int, default=24, help="--demo: number of frames (default 24)")
    p.add_argument("--quick", action="store_true", help="--demo: a small, fast series with Gaussian denoising")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (of the final run)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the dashboard address "
                                                             "(implies --no-progress)")
    p.set_defaults(handler=run)


def _demo(args):
    """Start the fake microscope in the background; return (config, acquisition)."""
    import tempfile
    from pathlib import Path

    from ..errors import DataValidationError

    if args.frames < 1:  # refused before any folder is made
        raise DataValidationError(f"--frames {args.frames}: the fake microscope needs at least 1 frame")
    if args.speed <= 0:
        raise DataValidationError(f"--speed {args.speed:g}: expected experiment seconds per second > 0")
    made = not args.out
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ionscope-watch-demo-"))
    try:
        return _start_demo(args, root)
    except BaseException:
        if made:  # a demo that could not start leaves no temporary folder behind
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        raise


def _start_demo(args, root):
    from ..operando import load_config
    from ..simulate import acquire

    size = dict(shape=(16, 24), energy_step=0.2) if args.quick else dict(shape=(32, 48), energy_step=0.2)
    if not args.quiet:
        print(f"fake microscope: writing {args.frames} frames into {root}/frames at {args.speed:g}x real time")
    # what a microscope records: spectra from −5 eV with their zero-loss peak and plural scattering
    acq = acquire(root, n_frames=args.frames, speed=args.speed, block=False, seed=0, physics="realistic",
                  dose=1000.0, **size)
    cfg = load_config(acq.config_path)
    # x = (w_Li/w_Co)/k with k from the first frame's film beyond the Li-poor interface layer (x known here)
    truth = acq.truth
    ny, nx = truth.sizes["y"], truth.sizes["x"]
    y0 = int(-(-float(truth.attrs["layer_nm"]) // float(truth.attrs["pixel_nm"]))) + 1
    x0 = float(truth.x_li.isel(time=0, y=slice(y0, ny)).mean())
    cfg = cfg.replace(report={"movies": ["gif"]}, denoise={"method": "gaussian" if args.quick else "sparse_coding"},
                      register={"window_ev": [30.0, 50.0]},
                      limap={"references": "simulated-realistic", "fit_range": [45.0, 85.0],
                             "calibration": {"region": [y0, ny, 0, nx], "x": x0, "frame": 0}})
    return cfg, acq


def run(args) -> int:
    from pathlib import Path

    from ..errors import DataValidationError
    from ..live import watch

    if args.demo == bool(args.config):
        raise DataValidationError("give either CONFIG.toml or --demo")
    acq = None
    if args.demo:
        cfg, acq = _demo(args)
        expected = args.frames
    else:
        from ..operando import load_config

        cfg = load_config(args.config)
        if args.out:
            cfg = cfg.replace(output={"dir": str(Path(args.out).resolve())})
        expected = args.expected_frames
    holo = cfg.table == "holography"
    if args.frame_pattern:
        cfg = cfg.replace(**{"holography" if holo else "input": {"frame_pattern": args.frame_pattern}})

    if args.var:
        if holo:
            raise DataValidationError("--var: a [holography] night reads each hologram file's only variable")
        cfg = cfg.replace(input={"var": args.var})
    import threading

    stop = threading.Event()
    out_existed = Path(cfg.out_dir).exists()
    waiting: list[str] = []

    def wait(text):
        waiting[:] = [text]
        if not args.quiet:
            print(text, flush=True)

    def ready(url):
        if args.token:  # the user's own secret is never echoed (a terminal is often logged to a file)
            url = url.replace(f"token={args.token}", "token=<your --token>")
        print(f"live dashboard: {url}  (open it in a browser; Ctrl-C ends the acquisition watch)", flush=True)

    def frame(rec):
        if args.quiet:
            return
        if holo:
            steps = "  ".join(f"ΔV{i} {rec[f'step_v_{i}']:+.3f} V" if rec.get(f"step_v_{i}") is not None
                              else f"ΔV{i} -" for i in range(sum(k.startswith("step_v_") and "std" not in k
                                                                  for k in rec)))
            print(f"hologram {rec['frame']:>4}: bias {rec['bias_v']:+.3f} V  {steps}  latency "
                  f"{rec['latency_s']:.1f} s" + (f"  skipped: {rec['reason']}" if rec.get("reason") else ""),
                  flush=True)
            return
        v = f" {rec['voltage']:.3f} V" if rec.get("voltage") is not None else ""
        # the quantity the dashboard shows: x in LixCoO2 once calibrated, else the Li weight
        what = f"x {rec['x_mean']:.3f}" if rec.get("x_mean") is not None else f"Li weight {rec['li_mean']:.4g}"
        print(f"frame {rec['frame']:>4}: {what}  latency {rec['latency_s']:.1f} s{v}", flush=True)

    def end(result):
        if not result.frames and result.ended_by == "timeout":
            stop.set()  # nothing came: do not hold the dashboard, the command fails (below)
        if args.quiet:
            return
        print(f"acquisition ended ({result.ended_by}): {len(result.frames)} frames live, "
              f"{len(result.bad_frames)} bad")
        for bad in result.bad_frames:
            print(printable(f"bad frame {bad['frame']}: {bad['file'] or '-'}: {bad['reason']}"))
        if result.ignored_files:
            print(f"ignored {len(result.ignored_files)} file(s) not named like frames ([input] frame_pattern): "
                  + ", ".join(map(printable, result.ignored_files[:10])) + (" ..." if len(result.ignored_files) > 10 else ""))
        for name, msg in result.warnings.items():
            if name != "ignored":
                print(f"warning: {msg}")
        if result.run is not None:
            psnr = result.psnr_causal_vs_batch
            print(f"final batch run: outputs in {cfg.out_dir}/ ({', '.join(sorted(result.run.files))})"
                  + (f"; causal live movie vs batch-denoised PSNR {psnr:.1f} dB" if psnr is not None else ""))
        print(f"live cache and causal movie in {result.live_dir}/")
        if result.url and hold and not stop.is_set():
            print(f"dashboard still at {result.url} — Ctrl-C to quit", flush=True)

    hold = not (args.exit_when_done or args.no_serve)
    from ..report import holography_writers, operando_report_stage

    # the final run is ionscope run's, report stage (EELS) or report files (holography) included
    final_stages, writers = ((), holography_writers()) if holo else ((operando_report_stage(),), None)
    try:
        watch(cfg, serve=not args.no_serve, host=args.host, port=args.port, token=args.token, window=args.window,
              idle_timeout_s=args.timeout, settle_s=args.settle, stop_file=args.stop_file, sidecar=args.sidecar,
              expected_frames=expected, final=not args.no_final, final_stages=final_stages, hold=hold, on_ready=ready, on_frame=frame,
              on_end=end, show_progress=False if (args.quiet or args.no_progress) else None, on_wait=wait,
              stop_event=stop, writers=writers)
    finally:
        if acq is not None:
            acq.stop()
    if stop.is_set() and waiting:
        if not out_existed:  # a session that saw no frame leaves no output folder of its own behind
            from .._outdir import discard_folder

            # only what ionscope wrote there: frames or notes that arrived meanwhile stay (and the folder)
            discard_folder(cfg.out_dir)
        raise DataValidationError(f"--timeout {args.timeout:g} s passed with no usable frame: "
                                  f"{waiting[-1].split(': ', 1)[-1]}")
    return 0
