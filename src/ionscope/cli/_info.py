# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope info FILE``: dims, shape, calibration and metadata of a file."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("info", help="print dims, shape, calibration and metadata of a file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--reader", help="force a rosettasciio plugin, e.g. HSPY")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..io import info

    for i, path in enumerate(args.files):
        if i:
            print()
        print(info(path, reader=args.reader))
    return 0
