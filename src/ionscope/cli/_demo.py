# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope demo -o DIR``: simulate a small operando experiment and analyse it."""
from __future__ import annotations

from ._common import add_out, add_progress, say, show_progress


def register(sub) -> None:
    from ..demo import STEPS

    p = sub.add_parser("demo", help="run every analysis on an embedded simulated experiment",
                       description="Simulate a small operando experiment, run every analysis on it and write "
                                   "maps, movies, figures, summary.json and report.html to DIR.")
    add_out(p, suffixes=None, what="output directory", metavar="DIR", default="demo-out")
    p.add_argument("--quick", action="store_true", help="smaller data (seconds instead of about two minutes on 2 cores), for tests")
    p.add_argument("--steps", nargs="+", metavar="STEP", help=f"run only these steps, from: {', '.join(STEPS)}")
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..demo import available_steps, run_demo
    from ..errors import DataValidationError

    if args.steps:
        known = available_steps()
        bad = [s for s in args.steps if s not in known]
        if bad:
            raise DataValidationError(f"--steps: unknown step(s) {bad}; choose from {known}")
    summary = run_demo(args.out, quick=args.quick, steps=args.steps, show_progress=show_progress(args))
    for name, step in summary["steps"].items():
        line = f"{name:<11} {step['status']:<7} {step['seconds']:>7.1f} s"
        if step.get("error"):
            line += f"  {step['error']}"
        say(args, line)
    report = "" if "report" not in summary["steps"] else f"; open {args.out}/report.html"
    say(args, f"results in {args.out}/ ({len(summary['files'])} files, numbers in summary.json){report}")
    return 0 if summary["ok"] else 1
