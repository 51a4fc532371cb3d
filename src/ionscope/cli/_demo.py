# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope demo --out DIR``: simulate a small operando experiment and analyse it."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="run every analysis on an embedded simulated experiment")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default: demo-out)")
    p.add_argument("--quick", action="store_true", help="smaller data, for tests")
    p.add_argument("--steps", nargs="+", metavar="STEP", help="run only these steps")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..demo import run_demo

    summary = run_demo(args.out, quick=args.quick, steps=args.steps,
                       show_progress=False if args.no_progress else True)
    for name, step in summary["steps"].items():
        line = f"{name:<11} {step['status']:<7} {step['seconds']:>7.1f} s"
        if step.get("error"):
            line += f"  {step['error']}"
        print(line)
    print(f"results in {args.out}/ ({len(summary['files'])} files, numbers in summary.json); "
          f"open {args.out}/report.html")
    return 0 if summary["ok"] else 1
