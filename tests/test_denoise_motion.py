# SPDX-License-Identifier: GPL-3.0-or-later
"""Whole-pixel jitter alignment before non-local denoising (``sparse_coding(motion=...)``, issue 20)."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.denoise import SparseCodingOptions, anscombe, psnr, sparse_coding
from ionscope.denoise._motion import align, frame_shifts, unalign
from ionscope.errors import DataValidationError
from ionscope.simulate import limap_movie

# frame-to-frame jitter (dy, dx) in whole pixels, zero-median, no slow trend
JITTER = np.array([[0, 0], [0, 2], [0, 0], [-1, 0], [0, 0], [1, -1], [0, 0], [0, 0],
                   [0, 1], [0, 0], [2, 0], [0, 0], [0, -2], [0, 0], [-1, 1], [0, 0]])


def _jittered(counts, *, seed=3, size=64):
    """A simulator movie without drift whose frames are then rolled by JITTER (truth and Poisson draw)."""
    _, clean = limap_movie(shape=(size, size), n_frames=len(JITTER), counts=counts, seed=seed, drift_px=0.0)
    c = np.stack([np.roll(f, tuple(s), axis=(0, 1)) for f, s in zip(clean.values, JITTER)]).astype(np.float64)
    noisy = np.random.default_rng(seed).poisson(c).astype(np.float32)
    return noisy, c


@pytest.mark.parametrize("counts", [5.0, 20.0])
@pytest.mark.parametrize("seed", [3, 4])
def test_frame_shifts_recovers_known_jitter_from_noisy_counts(counts, seed):
    noisy, _ = _jittered(counts, seed=seed)
    est = frame_shifts(anscombe(noisy.astype(np.float64)))
    # Whole pixels, never the wrong way, off by at most one pixel; the misalignment left after
    # aligning is at most half the jitter's (RMS). Not exact: the running-mean detrend takes a
    # part of each jump, and the 3/4-px dead zone then keeps some 1-px jumps in place (measured
    # 8-12 of 12 px recovered, 0-2 frames moved that should not have been).
    assert est.dtype.kind == "i" and est.shape == JITTER.shape
    assert not np.any(est * JITTER < 0)
    assert np.abs(est - JITTER).max() <= 1
    assert np.sqrt(np.mean((est - JITTER) ** 2)) <= 0.5 * np.sqrt(np.mean(JITTER ** 2))


def test_align_then_unalign_is_exact_and_aligns_the_content():
    rng = np.random.default_rng(0)
    scene = rng.random((40, 48))
    stack = np.stack([np.roll(scene, tuple(s), axis=(0, 1)) for s in JITTER[:6]])
    canvas, m = align(stack, JITTER[:6])
    assert m == 2 and canvas.shape == (6, 44, 52)
    assert align(stack, np.zeros((6, 2), int))[1] == 0
    inner = canvas[:, 6:-6, 6:-6]  # away from the wrapped and padded edges
    assert np.array_equal(inner, np.broadcast_to(inner[0], inner.shape))
    assert np.array_equal(unalign(canvas, JITTER[:6], m, stack.shape), stack)


def test_no_jitter_or_small_frames_mean_identical_output():
    # 64x64 at 20 counts/px without drift: no shift found; 48x48: too small to estimate one
    for shape, counts in (((64, 64), 20.0), ((48, 48), 5.0)):
        noisy, _ = limap_movie(shape=shape, n_frames=8, counts=counts, seed=1, drift_px=0.0)
        assert not frame_shifts(anscombe(noisy.values.astype(np.float64))).any()
    on = sparse_coding(noisy)
    off = sparse_coding(noisy, motion=False)
    np.testing.assert_array_equal(on.values, off.values)
    assert off.attrs["denoise_options"] == {"motion": False}
    assert on.attrs["denoise_options"] == {}


@pytest.fixture(scope="module")
def jittered20():
    """The 20-counts/px jittered movie (seed 3) and its default (aligned) denoising as a DataArray, made once:
    shared by the next two tests, which each denoised it (issue 20, third pass: ~2.6 CPU-s)."""
    import xarray as xr

    noisy, clean = _jittered(20.0)
    return noisy, clean, sparse_coding(xr.DataArray(noisy, dims=("time", "y", "x")))


def test_alignment_helps_a_jittered_movie(jittered20):
    noisy, clean, aligned = jittered20
    on = psnr(np.asarray(aligned.values, np.float64), clean)
    off = psnr(np.asarray(sparse_coding(noisy, motion=False), np.float64), clean)
    # aligned 16-frame movie vs the same frames left jittered (measured ~+2 dB here)
    assert on > off + 0.5, (on, off)


def test_motion_option_is_validated():
    with pytest.raises(DataValidationError, match="motion must be True or False"):
        SparseCodingOptions(motion="yes")
    assert SparseCodingOptions(motion=False).explicit() == {"motion": False}


def test_low_snr_movies_are_not_aligned_high_snr_ones_are(jittered20):
    import xarray as xr

    low = xr.DataArray(_jittered(5.0)[0], dims=("time", "y", "x"))
    on = sparse_coding(low)
    assert "denoise_aligned_frames" not in on.attrs  # below ~10 counts/px the shifts are not trusted
    np.testing.assert_array_equal(on.values, sparse_coding(low, motion=False).values)
    high = jittered20[2]  # sparse_coding(xr.DataArray(_jittered(20.0)[0], dims=("time", "y", "x")))
    assert 1 <= high.attrs["denoise_aligned_frames"] <= np.count_nonzero(JITTER.any(axis=1))
