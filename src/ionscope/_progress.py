# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress bars (tqdm, imported lazily) shared by long jobs and the CLI."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def progress_enabled() -> bool:
    """Bars are shown on a terminal, hidden in CI/tests unless IONSCOPE_PROGRESS=1."""
    flag = os.environ.get("IONSCOPE_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[Any] | None = None, *, desc: str = "", total: int | None = None,
             enable: bool | None = None, unit: str = "it"):
    """Wrap ``iterable`` in a tqdm bar with ETA (a disabled bar, which only iterates, when disabled)."""
    disable = not (progress_enabled() if enable is None else enable)
    if disable:
        # tqdm.auto in a Jupyter kernel without ipywidgets warns "IProgress not found" on import, even
        # for a bar that is never shown (the docs' executed tutorials printed it): a hidden bar needs no widget
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, disable=disable, unit=unit, dynamic_ncols=True)
