# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate docs/cli.md from the commands' own --help: `PYTHONPATH=src python docs/make_cli.py`."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

os.environ["COLUMNS"] = "110"  # argparse wraps at the terminal width: fix it for a stable page

from ionscope.cli import build_parser  # noqa: E402

HEAD = """# The `ionscope` command line

Generated from the commands' own `--help` by `docs/make_cli.py` (`ionscope COMMAND --help`
prints the same). Every command writes its output atomically, refuses an output suffix it would
not write, prints one line and exits non-zero on an error (`--debug` shows the traceback).
"""


def _help(parser) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        parser.print_help()
    return buf.getvalue().rstrip()


def main() -> None:
    parser = build_parser()
    parts = [HEAD, f"## ionscope\n\n```text\n{_help(parser)}\n```\n"]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        parts.append(f"## ionscope {name}\n\n```text\n{_help(sp)}\n```\n")
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, sp2 in action.choices.items():
                    parts.append(f"## ionscope {name} {child}\n\n```text\n{_help(sp2)}\n```\n")
    (Path(__file__).parent / "cli.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
