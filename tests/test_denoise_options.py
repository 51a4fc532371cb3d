# SPDX-License-Identifier: GPL-3.0-or-later
"""One options object for sparse_coding, used by the in-memory and the out-of-core paths alike,
with the automatic choices recorded in the result's attrs."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.denoise import SparseCodingOptions, sparse_coding
from ionscope.errors import DataValidationError
from ionscope.simulate import limap_movie


@pytest.fixture(scope="module")
def movie():
    noisy, clean = limap_movie(shape=(40, 40), n_frames=6, counts=5.0, seed=3)
    return noisy, clean


def test_choices_recorded_and_equal_on_both_paths(movie):
    noisy, _ = movie
    eager = sparse_coding(noisy)
    lazy = sparse_coding(noisy.chunk({"time": 3}))
    assert eager.attrs["denoise_noise_model"] == "poisson"  # raw counts: Anscombe
    assert eager.attrs["denoise_passes"] == 3  # 5 counts/px: the low-SNR setting
    assert 0.6 < eager.attrs["denoise_sigma"] < 1.5  # unit noise after the Anscombe transform
    for key in ("denoise_noise_model", "denoise_passes", "denoise_method", "denoise_options"):
        assert lazy.attrs[key] == eager.attrs[key], key
    assert lazy.attrs["denoise_sigma"] == pytest.approx(eager.attrs["denoise_sigma"], rel=1e-6)
    np.testing.assert_allclose(lazy.compute().values, eager.values, atol=0.02 * float(eager.std()))


def test_options_object_and_keywords(movie):
    noisy, _ = movie
    opts = SparseCodingOptions(passes=1, noise="gaussian")
    a = sparse_coding(noisy, options=opts)
    b = sparse_coding(noisy, passes=1, noise="gaussian")
    np.testing.assert_array_equal(a.values, b.values)
    assert a.attrs["denoise_options"] == {"noise": "gaussian", "passes": 1}
    assert a.attrs["denoise_noise_model"] == "gaussian" and a.attrs["denoise_passes"] == 1
    c = sparse_coding(noisy, options=opts, passes=2)  # a keyword overrides the object
    assert c.attrs["denoise_passes"] == 2 and c.attrs["denoise_options"]["noise"] == "gaussian"


@pytest.mark.parametrize("bad, message", [
    (dict(method="bm3d"), "method must be one of"),
    (dict(patch=1), "patch must be an integer >= 2"),
    (dict(gain=0.0), "gain must be a finite number > 0"),
])
def test_bad_options_are_refused_once(bad, message, movie):
    with pytest.raises(DataValidationError, match=message):
        SparseCodingOptions(**bad)
    with pytest.raises(DataValidationError, match=message):
        sparse_coding(movie[0], **bad)
    with pytest.raises(DataValidationError, match="unknown option"):
        SparseCodingOptions().replace(pach=5)
