# SPDX-License-Identifier: GPL-3.0-or-later
"""The dose-adaptive block-matching width of sparse_coding (issue 20): 4 px at low signal-to-noise,
6 px at high, recorded in attrs, the same on the in-memory and the out-of-core paths; an explicit
``search`` is always honoured."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.denoise import SparseCodingOptions, psnr, sparse_coding
from ionscope.simulate import limap_movie


@pytest.fixture(scope="module")
def bright():
    # 200 counts/px on a small movie: structure well above the noise (high signal-to-noise)
    return limap_movie(shape=(40, 40), n_frames=8, counts=200.0, seed=1)


def test_low_dose_keeps_search_4():
    noisy, _ = limap_movie(shape=(40, 40), n_frames=6, counts=5.0, seed=3)
    auto = sparse_coding(noisy)
    assert auto.attrs["denoise_search"] == 4 and auto.attrs["denoise_passes"] == 3
    np.testing.assert_array_equal(auto.values, sparse_coding(noisy, search=4).values)


def test_high_dose_widens_search_and_does_not_lose(bright):
    noisy, clean = bright
    auto = sparse_coding(noisy)
    assert auto.attrs["denoise_search"] == 6 and auto.attrs["denoise_passes"] == 2
    assert "search" not in auto.attrs["denoise_options"]  # chosen, not asked for
    narrow = sparse_coding(noisy, search=4)
    assert narrow.attrs["denoise_search"] == 4 and narrow.attrs["denoise_options"] == {"search": 4}
    # a wider search can only add candidates to each group: not worse than 4 px beyond 0.1 dB here
    assert psnr(auto, clean) > psnr(narrow, clean) - 0.1
    assert psnr(auto, clean) > psnr(noisy, clean) + 3.0


def test_lazy_path_chooses_the_same(bright):
    noisy, _ = bright
    eager = sparse_coding(noisy)
    lazy = sparse_coding(noisy.chunk({"time": 4}))
    assert lazy.attrs["denoise_search"] == eager.attrs["denoise_search"] == 6
    np.testing.assert_allclose(lazy.compute().values, eager.values, atol=0.02 * float(eager.std()))


def test_explicit_search_is_kept_in_options():
    assert SparseCodingOptions().search is None
    assert SparseCodingOptions(search=5).explicit() == {"search": 5}
