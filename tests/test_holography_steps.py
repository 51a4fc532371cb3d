# SPDX-License-Identifier: GPL-3.0-or-later
"""fit_steps: joint step fit over a whole profile recovers known steps, with honest errors for correlated noise."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import convolve1d
from scipy.special import erf

from ionscope.errors import DataValidationError
from ionscope.holography import fit_steps

X = np.arange(0.0, 400.0, 0.5)          # nm
CENTERS, STEPS, WIDTHS = (120.0, 280.0), (0.8, -0.45), (7.0, 9.0)


def _profile(background=None):
    y = np.zeros_like(X)
    for x0, d, w in zip(CENTERS, STEPS, WIDTHS):
        y += d * 0.5 * (1 + erf((X - x0) / (np.sqrt(2) * w / 2.5631)))
    return y if background is None else y + background


def _correlated_noise(rng, sd, length=6, size=X.size):
    """Noise correlated along the profile (a moving average over ``length`` points), standard deviation sd."""
    k = np.ones(length) / np.sqrt(length)
    return sd * convolve1d(rng.normal(size=size), k, mode="wrap")


def test_recovers_steps_widths_and_centres():
    r = fit_steps(_profile(0.002 * X), position=X, centers=[118, 283])
    np.testing.assert_allclose([f.step for f in r.fits], STEPS, atol=1e-4)
    np.testing.assert_allclose([f.width for f in r.fits], WIDTHS, atol=0.01)
    np.testing.assert_allclose([f.center for f in r.fits], CENTERS, atol=0.01)
    assert r.step_cov.shape == (2, 2)


def test_piecewise_background_absorbs_a_bulk_field_that_a_single_slope_does_not():
    # a field in the electrolyte only (between the interfaces): 1 mV/nm, continuous
    bulk = np.clip(X - CENTERS[0], 0, CENTERS[1] - CENTERS[0]) * 1e-3
    y = _profile(bulk)
    pw = fit_steps(y, position=X, centers=CENTERS, background="piecewise")
    lin = fit_steps(y, position=X, centers=CENTERS, background="linear")
    err_pw = max(abs(f.step - s) for f, s in zip(pw.fits, STEPS))
    err_lin = max(abs(f.step - s) for f, s in zip(lin.fits, STEPS))
    assert err_pw < 5e-4 and err_lin > 10 * err_pw   # the single slope is biased by the unmodelled field


def test_errors_honest_for_correlated_noise_with_a_realisation():
    rng = np.random.default_rng(3)
    sd = 0.02
    pulls_with, pulls_without = [], []
    for _ in range(120):
        y = _profile() + _correlated_noise(rng, sd)
        sem = np.full(X.size, sd)
        import xarray as xr

        prof = xr.DataArray(y, dims="position", coords={"position": X, "sem": ("position", sem)})
        # independent realisations of the same noise (what bias_series gets from alternating row blocks,
        # pooled over frames)
        noise = np.stack([_correlated_noise(rng, sd) for _ in range(8)])
        a = fit_steps(prof, centers=CENTERS, noise=noise)
        b = fit_steps(prof, centers=CENTERS)
        pulls_with += [(f.step - s) / f.step_err for f, s in zip(a.fits, STEPS)]
        pulls_without += [(f.step - s) / f.step_err for f, s in zip(b.fits, STEPS)]
    # 6-point moving average: the error of a mean is √6 ≈ 2.4× that of independent points
    assert 0.8 < np.std(pulls_with) < 1.2
    assert abs(np.mean(pulls_with)) < 0.25
    assert np.std(pulls_without) > 1.6


def test_window_margin_and_one_interface():
    y = _profile()
    r = fit_steps(y, position=X, centers=[120.0], window=60.0)
    assert abs(r.fits[0].step - 0.8) < 1e-3 and r.fits[0].n_points < X.size / 3
    r = fit_steps(y, position=X, centers=CENTERS, margin=20.0)
    assert r.fits[0].n_points == np.count_nonzero((X >= 20) & (X <= X[-1] - 20))


def test_line_spread_recovers_the_specimen_width():
    y = _profile()
    psf = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)   # a 2 nm (σ) blur on the 0.5 nm grid
    psf /= psf.sum()
    blurred = convolve1d(y, psf, mode="nearest")
    plain = fit_steps(blurred, position=X, centers=CENTERS)
    deblurred = fit_steps(blurred, position=X, centers=CENTERS, psf=psf)
    assert plain.fits[0].width > WIDTHS[0] + 0.5
    np.testing.assert_allclose([f.width for f in deblurred.fits], WIDTHS, atol=0.05)


@pytest.mark.parametrize("kw, match", [
    (dict(centers=[]), "centers"),
    (dict(centers=[500.0]), "centers"),
    (dict(centers=CENTERS, background="cubic"), "background"),
    (dict(centers=CENTERS, model="gauss"), "model"),
    (dict(centers=CENTERS, max_width=-1.0), "max_width"),
    (dict(centers=CENTERS, noise=np.zeros(5)), "noise"),
    (dict(centers=CENTERS, psf=np.ones(4) / 4), "psf"),
])
def test_bad_input(kw, match):
    with pytest.raises(DataValidationError, match=match):
        fit_steps(_profile(), position=X, **kw)
