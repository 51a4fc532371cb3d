# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope convert IN -o OUT``: between microscope files, Zarr, NetCDF and HyperSpy."""
from __future__ import annotations

from ._common import add_overwrite, add_progress, add_reader, check_out, say

SUFFIXES = (".zarr", ".nc", ".hspy")


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert dm3/dm4/emd/hspy/zarr/nc to .zarr, .nc or .hspy",
                       description="Read any supported file (calibration and metadata included) and write it as a "
                                   "Zarr store, a NetCDF file or a HyperSpy .hspy file. Multi-variable stores "
                                   "convert whole to .zarr/.nc; pick one variable with --var for .hspy.")
    p.add_argument("input", metavar="INPUT", help="file to read (.dm3/.dm4/.emd/.hspy/.hdf5/.msa/.zarr/.nc)")
    p.add_argument("output", metavar="OUTPUT", nargs="?", help="output path (same as -o/--out)")
    p.add_argument("-o", "--out", metavar="OUT", help=f"output path ({', '.join(SUFFIXES)}), written atomically")
    p.add_argument("--var", metavar="NAME", help="variable of a multi-variable store (default: all of them)")
    p.add_argument("--signal", type=int, default=0, metavar="N",
                   help="which signal of a file holding several, e.g. a Velox .emd (default 0)")
    add_reader(p)
    add_overwrite(p)
    add_progress(p)
    p.set_defaults(handler=run, out_suffixes=SUFFIXES)


def run(args) -> int:
    from ..errors import DataValidationError
    from ..io import load, save

    if (args.output is None) == (args.out is None):
        raise DataValidationError("give the output once: ionscope convert IN OUT (or -o OUT)")
    out = check_out(args, args.output or args.out)
    data = load(args.input, var=args.var, reader=args.reader, signal=args.signal, lazy=True)
    path = save(data, out)
    say(args, f"{args.input} -> {path}: {dict(data.sizes)}")
    return 0
