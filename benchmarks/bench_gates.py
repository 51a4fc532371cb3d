# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost of the plausibility gates (issue 17): what the checks add to a night, measured side by side.

There is no peer that checks frames; the comparison is the same work without the checks, in the
same process, alternating, so that the shared machine's load hits both alike (load average printed).

Part A (EELS ``screen``): every frame of a Zarr series read once, batch by batch, as the ``screen``
stage does: the old screen (decode + NaN/Inf count) against the new one (the same read; total,
minimum, and NaN/Inf and negative counts where the total or minimum calls for them:
``_gates.block_statistics``). Also the ``fit_check`` stage's own time in
a pipeline run.

Part B (holography): ``bias_series`` on a series of off-axis holograms with ``frame_checks`` on
(each frame: NaN/Inf, constant, mean and level; the zero-bias frames read once more; without drift
correction their waves reconstructed once more for the coherence check) and off.

Run: ``python benchmarks/bench_gates.py`` (sized for a shared 2-core machine; ``--help``).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _old_screen(series, batch):
    """The screen before issue 17: NaN/Inf count per frame, one read (c94dbe8, _series.screen_frames)."""
    out = []
    for start in range(0, series.sizes["time"], batch):
        part = series.isel(time=slice(start, start + batch))
        out.append(np.asarray((~np.isfinite(part)).sum(("y", "x", "energy")).values))
    return np.concatenate(out)


def _new_screen(series, batch):
    from ionscope.io._series import screen_statistics

    return screen_statistics(series, batch=batch)


def eels(frames, shape, channels, repeats, tmp):
    import ionscope.io as iio
    from ionscope.operando import run
    from ionscope.simulate import operando_eels

    store = Path(tmp) / "series.zarr"
    si, truth, log = operando_eels(shape=shape, n_frames=frames, energy_step=102.4 / channels * 1.0,
                                   physics="realistic", dose=200.0, seed=0)
    iio.save(si.chunk({"time": 1}), store)
    series = iio.load(store, lazy=True)
    mb = series.nbytes / 2**20
    times = {"old": [], "new": []}
    for _ in range(repeats):
        for name, fn in (("old", _old_screen), ("new", _new_screen)):
            t0 = time.perf_counter()
            fn(series, 4)
            times[name].append(time.perf_counter() - t0)
    old, new = np.median(times["old"]), np.median(times["new"])
    print(f"A. EELS screen, {frames} frames × {shape[0]}×{shape[1]} px × {si.sizes['energy']} ch "
          f"({mb:.0f} MiB, Zarr): old {old:.3f} s, new {new:.3f} s, ratio {new / old:.2f} "
          f"(median of {repeats}; load {os.getloadavg()[0]:.1f})")
    res = run({"output": {"dir": str(Path(tmp) / "out")}, "denoise": {"method": "gaussian"}}, series=series, log=log,
              show_progress=False)
    total = sum(r.seconds for r in res.stages.values())
    print(f"   pipeline run: screen {res.stages['screen'].seconds:.2f} s, fit_check "
          f"{res.stages['fit_check'].seconds:.3f} s of {total:.1f} s over all stages "
          f"(load {os.getloadavg()[0]:.1f})")


def holography(size, frames, repeats):
    from ionscope.holography import bias_series
    from ionscope.simulate import biased_holograms

    holos, refs, log, truth = biased_holograms(programme=[("rest", 40), ("hold", 1.5, 10 * (frames - 4))],
                                               shape=(size, size), pixel_nm=0.5, seed=0)
    for drift in (None, "auto"):
        times = {True: [], False: []}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bias_series(holos, references=refs, log=log, thickness_nm=60.0, drift=drift)  # warm-up
            for _ in range(repeats):
                for checks in (False, True):
                    t0 = time.perf_counter()
                    bias_series(holos, references=refs, log=log, thickness_nm=60.0, drift=drift,
                                frame_checks=checks)
                    times[checks].append(time.perf_counter() - t0)
        off, on = np.median(times[False]), np.median(times[True])
        print(f"B. bias_series, {holos.sizes['time']} holograms {size}², drift={drift!r}: checks off {off:.2f} s, "
              f"on {on:.2f} s, ratio {on / off:.3f} (median of {repeats}; load {os.getloadavg()[0]:.1f})")
        # wall-clock A/B on a loaded machine is noisy; the checks' own time inside one run is not
        share, total = _profiled_share(lambda: bias_series(holos, references=refs, log=log, thickness_nm=60.0,
                                                           drift=drift))
        print(f"   the checks' own time inside one run (cProfile): {share:.2f} s of {total:.2f} s "
              f"({100 * share / total:.1f} %)")


def _profiled_share(fn):
    """(seconds in the frame checks, seconds of the whole call) from one profiled call."""
    import cProfile
    import pstats

    names = {("_series.py", "_screen_zero_bias"), ("_series.py", "_coherent_zero_bias"),
             ("_checks.py", "check_hologram"), ("_series.py", "push"), ("_series.py", "flush")}
    pr = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pr.enable()
        fn()
        pr.disable()
        total = time.perf_counter() - t0
    stats = pstats.Stats(pr).stats
    share = sum(v[3] for (file, _, func), v in stats.items() if (Path(file).name, func) in names)
    return share, total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--shape", type=int, nargs=2, default=(32, 48))
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--holo-size", type=int, default=512)
    p.add_argument("--holo-frames", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--part", choices=("all", "eels", "holography"), default="all")
    a = p.parse_args(argv)
    import ionscope

    print(f"ionscope {ionscope.__version__}, load average {os.getloadavg()}")
    if a.part in ("all", "eels"):
        with tempfile.TemporaryDirectory() as tmp:
            eels(a.frames, tuple(a.shape), a.channels, a.repeats, tmp)
    if a.part in ("all", "holography"):
        holography(a.holo_size, a.holo_frames, a.repeats)


if __name__ == "__main__":
    main()
