# SPDX-License-Identifier: GPL-3.0-or-later
"""The Fourier-log + GLS kernel's third pass (issue 20): its element-wise work in compiled loops (numba).

:mod:`ionscope.eels._plural_jit` replaces the numpy passes between the transforms of
:mod:`ionscope.eels._plural_fast`; the numpy path stays as the reference
(``_plural_fast._NUMBA = False``). On small realistic frames through the per-frame pipeline path
(``frame_plan`` → ``frame_columns``, the default configuration: non-negative Co, the Li-K shift
column), the two paths must give Li and Co within 1e-5 of the map's RMS, their σ and χ² within
1e-5 relative, t/λ and I0 to rounding (the compiled sums run in another order), and the same
zero-loss cut (the compiled running mean repeats numpy's cumulative sums). ``import ionscope.eels``
must not load numba.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ionscope.eels import _plural_fast
from ionscope.pipeline._eels_frame import frame_columns
from ionscope.simulate import operando_eels
from test_eels_plural_fast import _col, assert_same_maps, realistic_frame


def _both(x, plan, monkeypatch, **kw):
    fast = frame_columns(x, plan=plan, **kw)
    with monkeypatch.context() as m:
        m.setattr(_plural_fast, "_NUMBA", False)
        ref = frame_columns(x, plan=plan, **kw)
    return fast, ref


@pytest.mark.parametrize("seed, dose, drift", [(5, 200.0, (0.0, 0.0)), (7, 30.0, (0.3, -0.2))])
def test_compiled_path_equals_the_numpy_path(seed, dose, drift, monkeypatch):
    pytest.importorskip("numba")
    x, plan, truth = realistic_frame(seed, dose)
    assert _plural_fast._compiled() is not None
    fast, ref = _both(x, plan, monkeypatch, drift=drift)
    assert_same_maps(plan, fast, ref)
    np.testing.assert_allclose(_col(plan, fast, "chi2"), _col(plan, ref, "chi2"), rtol=1e-5)
    if drift != (0.0, 0.0):
        return  # the sub-pixel registration interpolates the noise: no unit pull against the unshifted truth
    # the maps are the physics, not only the numpy path: Li against the truth has unit pull spread
    li_t = truth.weights.sel(component="Li").values[0]
    pull = (_col(plan, fast, "Li") - li_t) / _col(plan, fast, "Li_std")
    assert 0.8 < np.std(pull) < 1.2


def test_zero_loss_cut_and_padding_equal_numpy(monkeypatch):
    """The compiled alignment gives numpy's cut, I0, I_t and extended spectra, also on imperfect spectra."""
    pytest.importorskip("numba")
    from ionscope.eels import _plural_jit

    x, plan, _ = realistic_frame(5, 200.0)
    e = plan.fit.kwargs["energy"]
    J = x.reshape(-1, x.shape[-1]).astype(float)[:96].copy()
    rng = np.random.default_rng(1)
    J[:8] += rng.normal(0, 3, J[:8].shape)          # read noise: non-integer counts, ties broken differently
    J[8:12, 40:] = 0.0                              # a spectrum that never rises after its peak
    J[12:14] = J[12:14, ::-1].copy()                # no zero-loss peak where expected
    n_fft = 2048
    geom = _plural_fast._jit_geometry(e, n_fft, 20.0)
    P = J.shape[0]
    Jx, zx = np.empty((P, n_fft)), np.zeros((P, n_fft))
    i0, total, cut, amp = np.empty(P), np.empty(P), np.empty(P, np.intp), np.empty(P)
    g = geom
    _plural_jit.prepare(J, g["near_lo"], g["near_hi"], g["lim"], g["m"], g["halves"], g["emid1"], g["emid2"],
                        g["e_end"], float(e[1] - e[0]), g["log_e_ext"], Jx, zx, i0, total, cut, amp)
    n = J.shape[1]
    Jx[:, n:] = np.exp(Jx[:, n:]) * amp[:, None] * g["taper"]
    J0, i0_ref, total_ref, cut_ref, Jx_ref = _plural_fast._prepare(J, e, n_fft=n_fft, tail_fit_ev=20.0)
    np.testing.assert_array_equal(cut, cut_ref)
    np.testing.assert_allclose(i0, i0_ref, rtol=1e-12)
    np.testing.assert_allclose(total, total_ref, rtol=1e-12)
    np.testing.assert_allclose(Jx, Jx_ref, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(zx[:, :cut.max() + 1] != 0, (np.arange(cut.max() + 1) <= cut[:, None])
                                  & (J[:, :cut.max() + 1] != 0))


def test_import_eels_does_not_load_numba():
    code = "import sys, ionscope, ionscope.eels; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_local_cluster_workers_run_the_compiled_kernel(tmp_path, monkeypatch):
    """Worker processes of a LocalCluster load (or compile) the kernels and give the threaded run's maps, bit
    for bit; the numpy path's maps differ from both by rounding, so the workers did run the compiled path."""
    pytest.importorskip("numba")
    pytest.importorskip("distributed")
    import ionscope.io as iio
    from ionscope.pipeline import run

    si, truth, log = operando_eels(shape=(12, 16), n_frames=2, physics="realistic", dose=200.0, seed=3)
    iio.save(si, tmp_path / "series.zarr")

    def li(executor, name):
        cfg = {"input": {"series": str(tmp_path / "series.zarr"), "frame_interval_s": 60.0},
               "output": {"dir": str(tmp_path / name)}, "denoise": {"method": "gaussian"}}
        res = run(cfg, executor=executor, show_progress=False, stages=("energy_drift", "register", "limap"),
                  log=log, truth=truth)
        ds = res.dataset("limap")
        return np.asarray(ds["li"].values), np.asarray(ds["li_std"].values)

    threads = li("threads", "threads")
    local = li("local", "local")
    with monkeypatch.context() as m:
        m.setattr(_plural_fast, "_NUMBA", False)
        numpy_path = li("threads", "numpy")
    for a, b, c in zip(threads, local, numpy_path):
        np.testing.assert_array_equal(b, a)
        assert not np.array_equal(c, a)
        assert np.max(np.abs(c - a)) <= 1e-5 * np.sqrt(np.mean(c**2))
