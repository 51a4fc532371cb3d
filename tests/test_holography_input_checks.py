# SPDX-License-Identifier: GPL-3.0-or-later
"""``holography.reconstruct`` (and ``ionscope holo reconstruct``) refuse holograms no camera gives and a vacuum
reference of another biprism setting.

Found (s28seams), all with exit 0 from the command line: with a vacuum reference (whose fringes give the
carrier) an all-zero hologram became a flat wave ("no potential"), a negated one a wave shifted by π; a
reference with other fringes (another carrier, or the image transposed) was divided in without a word.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from ionscope.errors import DataValidationError
from ionscope.holography import reconstruct
from ionscope.simulate import hologram


@functools.lru_cache(maxsize=None)
def _pair(carrier=(0.1, 0.22), seed=0):
    holo, ref, _ = hologram(shape=(128, 128), carrier=carrier, seed=seed)
    return holo, ref


@pytest.mark.parametrize("bad, match", [
    (lambda h: h * 0, "hologram: all zero"),
    (lambda h: -h, r"hologram: mean intensity -\d+.* ≤ 0; counts cannot be negative"),
    (lambda h: h * 0 + 65535.0, "no fringes found .*the hologram has none there"),
])
def test_a_hologram_no_camera_gives_is_refused_even_with_a_reference(bad, match):
    holo, ref = _pair()
    with pytest.raises(DataValidationError, match=match):
        reconstruct(bad(holo), ref)


def test_a_stack_names_its_empty_frame():
    holo, ref = _pair()
    import xarray as xr

    stack = xr.concat([holo, holo * 0, holo], dim="time")
    with pytest.raises(DataValidationError, match=r"hologram \(frame 1 of time\): all zero"):
        reconstruct(stack, ref)


def test_a_reference_of_another_biprism_setting_is_refused():
    holo, ref = _pair()
    other = _pair(carrier=(0.05, 0.3), seed=1)[1]
    with pytest.raises(DataValidationError, match=r"reference: its fringes are at \(qy, qx\) = \(0\.05"):
        reconstruct(holo, other)
    transposed = ref.copy(data=np.ascontiguousarray(ref.values.T))
    with pytest.raises(DataValidationError, match="another biprism setting"):
        reconstruct(holo, transposed)
    # the same setting passes (the specimen's phase moves the hologram's peak by 7 % of |q| here) ...
    good = reconstruct(holo, ref)
    assert np.isfinite(np.angle(good.values)).all()
    # ... and an imposed carrier is the user's decision: not second-guessed
    reconstruct(holo, other, sideband=(0.1, 0.22))


def test_a_bias_night_refuses_references_of_another_setting():
    """The night's carrier comes from its first reference: the zero-bias hologram's fringes must agree."""
    from ionscope.holography import plan_bias_series
    from ionscope.simulate import biased_holograms

    holos, refs, _, _ = biased_holograms(programme=[("rest", 30)], shape=(128, 128), seed=0)
    other = refs.copy(data=np.ascontiguousarray(np.swapaxes(refs.values, -1, -2)))
    with pytest.raises(DataValidationError, match="another biprism setting"):
        plan_bias_series(holos, references=other, bias_v=[0.0] * holos.sizes["time"], thickness_nm=60.0)
    plan = plan_bias_series(holos, references=refs, bias_v=[0.0] * holos.sizes["time"], thickness_nm=60.0)
    assert plan.n_time == holos.sizes["time"]
