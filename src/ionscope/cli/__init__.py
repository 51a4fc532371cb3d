# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``ionscope`` command line.

Each sub-command lives in its own module ``ionscope.cli._<name>`` exposing
``register(subparsers)``; the module is imported only to build the parser, and
each handler imports the science it needs when it runs, so ``ionscope --help``
stays fast. Every :class:`ionscope.IonscopeError` is printed as one line and
gives exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .. import __version__
from ..errors import IonscopeError

# Order of appearance in ``ionscope --help``.
COMMANDS = ("demo", "run", "info", "limap", "denoise", "holo", "linescan", "mva", "watch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ionscope",
        description="See ions move: operando STEM-EELS Li maps, denoising and electron holography.",
    )
    parser.add_argument("--version", action="version", version=f"ionscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        modname = f"{__name__}._{name}"
        if importlib.util.find_spec(modname) is None:
            continue  # command not built yet
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except IonscopeError as exc:
        print(f"ionscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ionscope {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
