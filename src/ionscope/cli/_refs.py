# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope refs``: reference spectra files (the ``--refs`` of limap, linescan and mva)."""
from __future__ import annotations

from ._common import add_out, add_progress, add_var, check_out, load_input, say

SUFFIXES = (".nc", ".zarr")


def register(sub) -> None:
    p = sub.add_parser("refs", help="write reference spectra (component, energy) for --refs",
                       description="Write a (component, energy) reference file for `limap --refs`, `linescan "
                                   "--refs` and `mva --refs`: the simulator's model edges (Li-K + Co-M2,3, or "
                                   "Co-L2,3 of LiCoO2 + Co3O4), on the energy axis of your data (--like) or on "
                                   "a given grid (--energy). References measured on regions of a real spectrum "
                                   "image: see README, 'Reference and example data'.")
    p.add_argument("--kind", choices=("li-co", "co-l"), default="li-co",
                   help="li-co: Li-K and Co-M2,3 edges (30-132 eV; default); co-l: Co-L2,3 of LiCoO2 and Co3O4 "
                        "(760-820 eV)")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--like", metavar="FILE",
                      help="use the energy axis (eV) of this spectrum image / series / line scan")
    grid.add_argument("--energy", nargs=3, type=float, metavar=("START", "STOP", "STEP"),
                      help="energy grid in eV (default: 30 132 0.1 for li-co, 760 820 0.25 for co-l)")
    add_var(p, default_hint="the only variable, or 'si'")
    add_out(p, suffixes=SUFFIXES, what="output reference file")
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from ..errors import DataValidationError
    from ..io import save
    from ..simulate import co_l_references, edge_references

    out = check_out(args)
    if args.like:
        data = load_input(args.like, var=args.var, prefer=("si", "data"), lazy=True, what="spectrum image")
        if "energy" not in data.coords:
            raise DataValidationError(f"--like {args.like}: no calibrated energy axis (dims {tuple(data.dims)})")
        energy = np.asarray(data.energy.values, float)
    else:
        lo, hi, step = args.energy or ((30.0, 132.0, 0.1) if args.kind == "li-co" else (760.0, 820.0, 0.25))
        if not (step > 0 and hi > lo):
            raise DataValidationError(f"--energy {lo} {hi} {step}: expected START < STOP and STEP > 0 (eV)")
        energy = np.arange(lo, hi + step / 2, step)
    refs = (edge_references if args.kind == "li-co" else co_l_references)(energy)
    refs.name = "references"
    refs.attrs.setdefault("source", f"ionscope.simulate ({args.kind} model edges)")
    save(refs, out)
    names = ", ".join(map(str, refs.component.values))
    say(args, f"wrote {out}: components {names}, {energy.size} channels {energy[0]:.4g}..{energy[-1]:.4g} eV")
    return 0
