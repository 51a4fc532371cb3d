# SPDX-License-Identifier: GPL-3.0-or-later
"""layer_width says when its fit found no layer (the full demo's line scan: 'layer 7.6 ± 0.0 nm, true 13')."""
from __future__ import annotations

import numpy as np

from ionscope.eels import layer_width


def _profile(enhancement, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(0.0, 100.0, 0.5)
    bulk = 20.0 * (x > 33)
    layer = np.where((x > 33) & (x < 46), enhancement, 0.0)
    truth = bulk * (1 + layer)
    return x, truth + rng.normal(0, 3.0, x.size), np.full(x.size, 3.0)


def test_a_clear_layer_has_no_problems():
    x, y, s = _profile(0.6)
    r = layer_width(y, std=s, position=x)
    assert r["problems"] == [] and abs(r["width_nm"] - 13.0) < 3 * r["width_std_nm"] + 1.0


def test_no_layer_is_said_so():
    x, y, s = _profile(0.0, seed=3)
    r = layer_width(y, std=s, position=x)
    assert r["problems"], r
    assert any(w in r["problems"][0] for w in ("no Li-rich layer", "no significant layer", "bound"))
