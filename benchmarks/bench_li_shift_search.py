# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19 item 4 / issue 20: the night's Li-K shift search — its cost, its σ's pulls, and what to fit with
when the first frame does not determine the shift.

``python benchmarks/bench_li_shift_search.py speed --shapes 24x32 48x64 [--old OLD_LI_SHIFT.py]`` (seed 3)
    the search (:func:`ionscope.eels._li_shift.estimate_delta`) on the first frame a night measures on (captured
    from ``run(stages=("limap",))``), CPU and wall seconds, with ``--old`` a previous ``eels/_li_shift.py``
    (``git show main:src/ionscope/eels/_li_shift.py > old.py``) timed alternately on the same probe.
``python benchmarks/bench_li_shift_search.py pull --shapes 64x128 --dose 1000 --seeds 101 109 [--jackknife]``
    the measured shift, its curvature σ and (δ − truth)/σ over noise draws (and a jackknife σ over the
    references' replicates).
``python benchmarks/bench_li_shift_search.py undetermined --shapes 24x32 --dose 1000 --seeds 3 9``
    median x − truth beyond / between the regions with the measured shift, the two rows (``off``), 0 eV, the
    simulator's shift and 1.5 eV.

Scenes: ``operando_eels(physics="realistic")``, references from frame 0's pristine and charged rows with the shift
left open (``tests/test_pipeline_li_shift.py``); ``os.getloadavg()`` with every row.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_pipeline_li_shift import _config, _regions, _x_bias  # noqa: E402


class _Captured(Exception):
    pass


def _scene(shape, dose, seed, n_frames, drift):
    import ionscope.io as iio
    from ionscope.cli import main
    from ionscope.simulate import operando_eels

    root = Path(tempfile.mkdtemp(prefix="bench_li_shift_search_"))
    kw = dict(dose=dose) if dose > 0 else dict(noise=False)
    if drift:
        kw.update(energy_drift_ev=0.3, specimen_drift_px=1.0)
    si, truth, log = operando_eels(shape=shape, n_frames=n_frames, physics="realistic", seed=seed, **kw)
    iio.save(si, root / "series.zarr")
    iio.save(si.isel(time=0), root / "frame0.zarr")
    args, true_delta = _regions(truth, root / "frame0.zarr")
    assert main(args + ["--chemical-shift", "open", "-o", str(root / "open.nc")]) == 0
    return root, truth, log, true_delta, [a for a in args if ",0:" in a]


def _probe(root, log):
    """The search's arguments as the night calls it on its first usable frame."""
    from ionscope.eels import _li_shift
    from ionscope.pipeline import _li_shift_night, run

    real, got = _li_shift.estimate_delta, {}

    def capture(probe, **kw):
        got.update(probe=probe, kw=kw)
        raise _Captured

    _li_shift.estimate_delta = capture
    _li_shift_night._MEMO.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(_config(root, "probe", root / "open.nc"), log=log, show_progress=False, stages=("limap",))
    except _Captured:
        pass
    finally:
        _li_shift.estimate_delta = real
    return got["probe"], got["kw"]


def main(argv=None):
    from ionscope.eels import _li_shift
    from ionscope.pipeline import _li_shift_night, run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("speed", "pull", "undetermined"))
    p.add_argument("--shapes", nargs="+", default=["24x32"])
    p.add_argument("--dose", type=float, default=0.0, help="counts scale of operando_eels (0: noise-free)")
    p.add_argument("--seeds", nargs=2, type=int, default=[3, 4], metavar=("FIRST", "END"), help="seeds FIRST…END−1")
    p.add_argument("--old", help="a previous eels/_li_shift.py to time beside this one (speed)")
    p.add_argument("--jackknife", action="store_true", help="pull: also the jackknife σ over the references' "
                   "replicates (the search repeated with each replicate as the references: ~8× the cost)")
    p.add_argument("--frames", type=int, help="frames simulated (default: speed 2, pull 1, undetermined 3; the "
                   "layer, so the regions, depends on it: 128x128 speed needs 1)")
    a = p.parse_args(argv)
    searches = {"new": _li_shift.estimate_delta}
    if a.old:
        spec = importlib.util.spec_from_file_location("ionscope.eels._li_shift_old", a.old)
        old = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = old
        spec.loader.exec_module(old)
        searches = {"old": old.estimate_delta, **searches}
    for spec_ in a.shapes:
        shape = tuple(int(v) for v in spec_.split("x"))
        for seed in range(*a.seeds):
            frames = a.frames or {"speed": 2, "pull": 1, "undetermined": 3}[a.what]
            root, truth, log, true_delta, regions = _scene(shape, a.dose, seed, frames, a.what == "speed")
            if a.what in ("speed", "pull"):
                probe, kw = _probe(root, log)
                for name, search in searches.items():
                    load, c0, w0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
                    d, tried, chis = search(probe, **kw)
                    std = _li_shift_night.curvature_std(tried, chis)
                    if a.jackknife and kw.get("reps") is not None:
                        dg = np.array([search(probe, **dict(kw, refs_ext=r))[0] for r in kw["reps"]])
                        jk = float(np.sqrt((dg.size - 1) / dg.size * np.sum((dg - dg.mean()) ** 2)))
                        print(f"  jackknife over {dg.size} replicates: σ {jk:.4f} eV, replicate δ {np.round(dg, 3)}")
                    print(f"{spec_} seed {seed} {name}: δ {d:.6f} (truth {true_delta:.3f}) σ {std:.4f} pull "
                          f"{(d - true_delta) / std:+.1f} CPU {time.process_time() - c0:.2f} s wall "
                          f"{time.perf_counter() - w0:.2f} s, {len(tried)} trials, regions {regions}, load {load:.1f}",
                          flush=True)
                shutil.rmtree(root, ignore_errors=True)  # the scene this script made
                continue
            row = []
            for mode in ("measure", "off", 0.0, float(true_delta), 1.5):
                _li_shift_night._MEMO.clear()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = run(_config(root, f"m{mode}", root / "open.nc", chemical_shift=mode), log=log,
                             show_progress=False, stages=("limap",)).dataset("limap").load()
                row.append(f"{mode}: {_x_bias(ds, truth, 0.05, 0.5)[0]:+.2f} / {_x_bias(ds, truth, 0.5, 0.85)[0]:+.2f}"
                           + (f" (δ {ds.attrs.get('li_k_shift_measured_ev', ds.attrs.get('li_k_shift_ev')):.2f})"
                              if mode == "measure" else ""))
            print(f"{spec_} seed {seed}, regions {regions}, load {os.getloadavg()[0]:.1f}: " + "; ".join(row),
                  flush=True)
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
