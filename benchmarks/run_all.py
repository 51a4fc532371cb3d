# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every benchmark at its default (modest) size, one after the other.

    python benchmarks/run_all.py            # defaults: minutes on a 2-core machine
    python benchmarks/run_all.py --full     # the issues' full sizes (an hour or more, ~15 GB of disk)
    python benchmarks/run_all.py eels holography

Each script runs ionscope and its peer on the same data in the same run and
prints the ratio and the peer's version; record the figures in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("simulate", "eels", "eels_physics", "denoise", "holography", "operando")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help=f"which benchmarks, of {', '.join(BENCHES)} (default: all)")
    p.add_argument("--full", action="store_true", help="pass --full to every benchmark")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; expected some of {list(BENCHES)}")
    failed = []
    for name in args.names or BENCHES:
        cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *(["--full"] if args.full else [])]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
        print(f"===== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
