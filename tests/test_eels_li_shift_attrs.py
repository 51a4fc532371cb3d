# SPDX-License-Identifier: GPL-3.0-or-later
"""A reference file's stored Li-K shift model is checked before it is used (``_li_shift.model_of``).

A hand-edited or corrupt file (a shift of 50 eV, text where a number belongs, components the file does not
hold) gave a deep traceback or, worse, a silently wrong fit of every pixel of a night.
"""
import numpy as np
import pytest
import xarray as xr

from ionscope.eels import _li_shift
from ionscope.errors import DataValidationError

GOOD = {"li_k_shift_ev": 0.3, "li_k_shift_amounts": [1.0, 1.0, 0.6, 1.0], "li_k_shift_components": ["Li", "Co"]}


def _refs(**attrs):
    return xr.DataArray(np.ones((2, 5)), dims=("component", "energy"),
                        coords={"component": ["Li", "Co"], "energy": np.arange(5.0)}, attrs={**GOOD, **attrs})


def test_a_good_model_and_an_open_shift_are_read():
    assert _li_shift.model_of(_refs()) == ([1.0, 1.0, 0.6, 1.0], 0.3, "Li", "Co")
    assert np.isnan(_li_shift.model_of(_refs(li_k_shift_ev=float("nan")))[1])
    assert _li_shift.model_of(_refs(li_k_shift_ev=-0.6))[1] == -0.6  # either sign
    assert _li_shift.model_of(xr.DataArray(np.ones((2, 5)), dims=("component", "energy"))) is None


@pytest.mark.parametrize("attrs, key", [
    ({"li_k_shift_ev": 50.0}, "li_k_shift_ev"),
    ({"li_k_shift_ev": float("inf")}, "li_k_shift_ev"),
    ({"li_k_shift_ev": "soon"}, "li_k_shift_ev"),
    ({"li_k_shift_amounts": [1.0, 1.0, 0.6]}, "li_k_shift_amounts"),
    ({"li_k_shift_amounts": [1.0, 0.0, 0.6, 1.0]}, "li_k_shift_amounts"),
    ({"li_k_shift_amounts": [1.0, 1.0, 1.0, 1.0]}, "li_k_shift_amounts"),  # the same Li/host twice
    ({"li_k_shift_amounts": "a lot"}, "li_k_shift_amounts"),
    ({"li_k_shift_components": ["Li", "Ni"]}, "li_k_shift_components"),
    ({"li_k_shift_components": "LiCo"}, "li_k_shift_components"),
    ({"li_k_shift_components": ["Li", "Li"]}, "li_k_shift_components"),
])
def test_an_impossible_model_is_refused_naming_the_attribute(attrs, key):
    with pytest.raises(DataValidationError, match=rf"references\.attrs\['{key}'\].*expected"):
        _li_shift.model_of(_refs(**attrs))
