# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope info FILE``: dims, shape, calibration and metadata of a file."""
from __future__ import annotations

from ._common import add_reader


def register(sub) -> None:
    p = sub.add_parser("info", help="print dims, shape, calibration and metadata of a file",
                       description="Print the dims, shape, dtype, calibrated axes (eV, nm, s) and metadata of any "
                                   "file ionscope reads: microscope files, .zarr/.nc stores (every variable of a "
                                   "multi-variable store, every group of a run's cache.zarr) and CSV logs.")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to describe (.dm3/.dm4/.emd/.hspy/.zarr/.nc/.csv)")
    p.add_argument("--var", metavar="NAME", help="describe only this variable of a multi-variable store")
    add_reader(p)
    p.add_argument("--no-progress", action="store_true", help="accepted for symmetry (info shows no bar)")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted for symmetry (info only prints)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..io import info

    for i, path in enumerate(args.files):
        if i:
            print()
        print(info(path, reader=args.reader, var=args.var))
    return 0
