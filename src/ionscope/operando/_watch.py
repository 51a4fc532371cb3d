# SPDX-License-Identifier: GPL-3.0-or-later
"""``operando.watch``: the live mode lives in :mod:`ionscope.live` (this module only re-exports it)."""
from __future__ import annotations

from ..live._watch import watch

__all__ = ["watch"]
