# SPDX-License-Identifier: GPL-3.0-or-later
"""The Fourier-log + GLS kernel's second pass (issue 20): cache-sized pixel blocks, the fit window as a slice.

The batched kernel (:mod:`ionscope.eels._plural_fast`) now runs 64-pixel blocks and
picks the fit window from the FFT grid with a slice. On a small realistic frame,
through the per-frame pipeline path (``frame_plan`` → ``frame_columns``: the
default configuration, with its non-negativity and Li-K shift column), the Li and
Co maps must equal the all-float64 reference kernel
(:func:`ionscope.eels._plural.fourier_log_kernel`) within 1e-5 of the map's RMS,
their σ within 1e-5 relative, t/λ and I0 to rounding; and the block size must not
move the maps beyond that budget (the arithmetic is per pixel).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ionscope.eels import _plural, _plural_fast
from ionscope.pipeline import from_dict
from ionscope.pipeline._eels_frame import frame_columns, frame_plan, probe_spectra
from ionscope.simulate import operando_eels


def realistic_frame(seed, dose):
    """One small realistic frame and its default per-frame plan (also used by test_eels_plural_numba)."""
    si, truth, _ = operando_eels(shape=(20, 24), n_frames=1, physics="realistic", dose=dose, seed=seed)
    x = si.values[0]
    plan = frame_plan(from_dict({}), energy=si.energy.values, references=truth.references,
                      probe=probe_spectra(x))
    return x, plan, truth


@pytest.fixture(scope="module")
def frame():
    return realistic_frame(5, 200.0)


def _col(plan, out, name):
    return out[..., plan.fit.columns.index(name)]


def assert_same_maps(plan, fast, ref):
    """Li and Co within 1e-5 of the map's RMS, their σ within 1e-5 relative, t/λ and I0 to rounding."""
    for name in ("Li", "Co"):
        a, b = _col(plan, fast, name), _col(plan, ref, name)
        assert np.isfinite(a).all()
        assert np.max(np.abs(a - b)) <= 1e-5 * np.sqrt(np.mean(b**2)), name
        sa, sb = _col(plan, fast, f"{name}_std"), _col(plan, ref, f"{name}_std")
        assert np.max(np.abs(sa / sb - 1)) <= 1e-5, f"{name}_std"
    for name in ("thickness", "zero_loss"):
        np.testing.assert_allclose(_col(plan, fast, name), _col(plan, ref, name), rtol=1e-12)


def test_fast_path_equals_the_float64_reference_on_a_realistic_frame(frame):
    x, plan, truth = frame
    fast = frame_columns(x, plan=plan)
    assert plan.fit.kernel is _plural_fast.fourier_log_kernel
    slow = dataclasses.replace(plan, fit=dataclasses.replace(plan.fit, kernel=_plural.fourier_log_kernel))
    ref = frame_columns(x, plan=slow)
    assert_same_maps(plan, fast, ref)
    # the maps are the physics, not only the reference: Li against the truth has unit pull spread
    li_t = truth.weights.sel(component="Li").values[0]
    pull = (_col(plan, fast, "Li") - li_t) / _col(plan, fast, "Li_std")
    assert 0.8 < np.std(pull) < 1.2


def test_block_size_does_not_move_the_maps(frame, monkeypatch):
    x, plan, _ = frame
    small = frame_columns(x, plan=plan)
    with monkeypatch.context() as m:
        m.setattr(_plural_fast, "_BLOCK", 256)
        big = frame_columns(x, plan=plan)
    for name in ("Li", "Co", "Li_std", "Co_std"):
        a, b = _col(plan, small, name), _col(plan, big, name)
        # per-pixel arithmetic; only the float32 noise path's rounding depends on how pocketfft groups
        # rows for SIMD (a partial last block: measured ≤ 1e-6 of the RMS here, 0 on whole 64-pixel blocks)
        assert np.max(np.abs(a - b)) <= 1e-5 * np.sqrt(np.mean(b**2)), name
