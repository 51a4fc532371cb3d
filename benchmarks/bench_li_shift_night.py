# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19 item 4, the night's Li-K shift: what measuring an open shift on the first usable frame costs a
night (``[limap] chemical_shift = "measure"``, :mod:`ionscope.pipeline._li_shift_night`), and what it gives.

``python benchmarks/bench_li_shift_night.py --shapes 24x32 48x64 --rounds 2``

A realistic night (``operando_eels(physics="realistic")``, 3 frames, seed 3, energy drift 0.3 eV, specimen drift
1 px; ``--dose 0``: noise-free), references from frame 0's pristine and charged rows with the shift left open
(``ionscope refs regions --chemical-shift open``). Per round, alternating in one process, new output folders:
the Li-map stage with the shift stored in the reference file (the measured value: the same fit, no
measurement) and with it open (measured on the first usable frame). Reported: the Li-map stage's seconds
each way, the measurement's own seconds (``li_k_shift_probe_seconds``), the shift (truth: the simulator's
0.6 eV per 0.5 in x between the regions' x) and the median x error beyond the regions (x 0.05–0.5; "open"
mode as the reference: the two rows as given), with ``os.getloadavg()``. No peer: no other package fits a
Li-K shift tied to x.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_pipeline_li_shift import FIT, _config, _regions, _x_bias  # noqa: E402


def night(root: Path, shape, dose: float):
    import ionscope.io as iio
    from ionscope.cli import main
    from ionscope.simulate import operando_eels

    kw = dict(noise=False) if dose <= 0 else dict(dose=dose)
    si, truth, log = operando_eels(shape=shape, n_frames=3, physics="realistic", seed=3, energy_drift_ev=0.3,
                                   specimen_drift_px=1.0, **kw)
    iio.save(si, root / "series.zarr")
    iio.save(si.isel(time=0), root / "frame0.zarr")
    args, true_delta = _regions(truth, root / "frame0.zarr")
    assert main(args + ["--chemical-shift", "open", "-o", str(root / "open.nc")]) == 0
    return truth, log, true_delta


def main(argv=None):
    import ionscope.io as iio
    from ionscope.pipeline import _li_shift_night, run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=["24x32", "48x64"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dose", type=float, default=0.0, help="counts scale of operando_eels (0: noise-free)")
    a = p.parse_args(argv)
    print(f"fit range {FIT} eV, dose {a.dose or 'noise-free'}")
    for spec in a.shapes:
        shape = tuple(int(v) for v in spec.split("x"))
        root = Path(tempfile.mkdtemp(prefix="bench_li_shift_night_"))
        truth, log, true_delta = night(root, shape, a.dose)
        rows = []
        stored_made = False
        for r in range(a.rounds):
            for mode in ("measure", "stored", "open"):
                if mode == "stored" and not stored_made:
                    continue
                _li_shift_night._MEMO.clear()
                refs = root / ("stored.nc" if mode == "stored" else "open.nc")
                out = f"{mode}-{r}"
                load = os.getloadavg()
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = run(_config(root, out, refs, **({"chemical_shift": "open"} if mode == "open" else {})),
                              log=log, show_progress=False, stages=("limap",))
                wall = time.perf_counter() - t0
                ds = res.dataset("limap").load()
                bias, n = _x_bias(ds, truth, 0.05, 0.5)
                rows.append((mode, r, res.stages["limap"].seconds, wall, ds.attrs.get("li_k_shift_probe_seconds"),
                             ds.attrs.get("li_k_shift_ev"), ds.attrs.get("li_k_shift_std_ev"), bias, n, load))
                if mode == "measure" and not stored_made:
                    refs_s = iio.load(root / "open.nc")
                    refs_s.attrs["li_k_shift_ev"] = float(ds.attrs["li_k_shift_ev"])
                    iio.save(refs_s, root / "stored.nc")
                    stored_made = True
        print(f"\n{spec} ({shape[0] * shape[1]} px per frame), true shift between the regions {true_delta:.3f} eV")
        print("| mode | round | limap stage s | run s | measuring s | shift eV | σ eV | x bias 0.05–0.5 (n) | load |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode, r, st, wall, probe, d, s, bias, n, load in rows:
            fmt = (lambda v: "—" if v is None else f"{v:.3f}")
            print(f"| {mode} | {r} | {st:.1f} | {wall:.1f} | {fmt(probe) if probe is None else f'{probe:.1f}'} | "
                  f"{fmt(d)} | {fmt(s)} | {bias:+.3f} ({n}) | {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} |")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
