# SPDX-License-Identifier: GPL-3.0-or-later
"""``simulate.acquire``: the fake microscope lives in :mod:`ionscope.live` (this module only re-exports it)."""
from __future__ import annotations

from ..live._acquire import acquire

__all__ = ["acquire"]
