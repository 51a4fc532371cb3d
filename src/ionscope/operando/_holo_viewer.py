# SPDX-License-Identifier: GPL-3.0-or-later
"""Moved: the holography viewer lives in :mod:`ionscope.report._holo_viewer` (all viewers are in ``report``).

Names are forwarded on first use (no import of ``report`` when this module is
imported), so ``from ionscope.operando._holo_viewer import write_holo_viewer``
keeps working.
"""
from __future__ import annotations


def __getattr__(name: str):
    import importlib

    module = importlib.import_module("ionscope.report._holo_viewer")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
