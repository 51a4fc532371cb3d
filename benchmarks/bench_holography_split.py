# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 18: ``bias_series`` split (plan → per-frame kernel → assembly) against the one-piece original.

Run: ``python benchmarks/bench_holography_split.py [--size 2048 --frames 8 --rounds 3]``.

The original is the frozen copy in ``tests/_holo_reference.py`` (branch h18 before the split, verbatim
but for its imports). Both run in this process on the same Zarr store of simulated 2048² off-axis
holograms (``simulate.biased_holograms``, 2 references, 100 counts/px), ``workers`` 1 and 2,
maps written to Zarr, alternating old/new in every round, after one untimed warm-up of each. Wall
time and process CPU time (every thread) of the whole call, set-up included; the CPU time is what a
shared machine's load disturbs least. Numbers must agree bit for bit (checked). The load average is
printed: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    import _holo_reference as old_code

    from ionscope.holography import bias_series
    from ionscope.io import load
    from ionscope.simulate import biased_holograms

    warnings.simplefilter("ignore", RuntimeWarning)
    tmp = Path(tempfile.mkdtemp(prefix="bench_split_"))
    try:
        n_rest = 30
        hold = 10 * (a.frames - n_rest // 10) + 5
        _, refs, log, truth = biased_holograms(programme=[("rest", n_rest), ("hold", 1.5, hold)],
                                               shape=(a.size, a.size), pixel_nm=0.5, dose=100.0, seed=0,
                                               out=tmp / "holos.zarr")
        holos = load(tmp / "holos.zarr")
        kw = dict(references=refs, log=log, thickness_nm=truth.thickness_nm.values)
        n = holos.sizes["time"]
        print(f"{n} frames of {a.size}², load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}, "
              f"{os.cpu_count()} cores")
        for w in (1, 2):
            fns = {"before": old_code.bias_series, "after": bias_series}
            res, times = {}, {k: [] for k in fns}
            for name, fn in fns.items():  # warm-up
                res[name] = fn(holos, workers=w, out=tmp / f"warm-{name}.zarr", **kw).load()
            for v in res["before"].data_vars:
                np.testing.assert_array_equal(res["after"][v].values, res["before"][v].values, err_msg=v)
            for r in range(a.rounds):
                for name, fn in (fns.items() if r % 2 == 0 else reversed(fns.items())):
                    out = tmp / f"{name}-{w}-{r}.zarr"
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn(holos, workers=w, out=out, **kw)
                    times[name].append((time.perf_counter() - t0, time.process_time() - c0))
                    shutil.rmtree(out, ignore_errors=True)
            for name, tt in times.items():
                wall, cpu = np.median(np.array(tt), axis=0)
                print(f"  workers={w} {name:>6}: wall {wall:6.2f} s ({1e3 * wall / n:6.1f} ms/frame), "
                      f"CPU {cpu:6.2f} s ({1e3 * cpu / n:6.1f} ms/frame), median of {len(tt)}")
            wb, cb = np.median(np.array(times["before"]), axis=0)
            wa, ca = np.median(np.array(times["after"]), axis=0)
            print(f"  workers={w} after/before: wall {wa / wb:.3f}, CPU {ca / cb:.3f}; "
                  f"load average now {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
