# SPDX-License-Identifier: GPL-3.0-or-later
"""The raw-count plausibility rule (``eels/_plausible.py``) on every EELS route that takes raw counts.

One spectrum with an impossible value (−10⁶ counts in one channel, a pixel stored negated, NaN among
finite channels) used to be analysed silently: the NMF route's Li at that pixel read 2148 (clean 9.5) and
moved the map's mean Li from 11.36 to 12.28; SA/SB read Li/Co −0.60 (clean 0.83); the line scan's
profile −273 (clean 24); the deconvolution a negative single-scattering sum. Now every route refuses it
with the pixel and the channel, or — ``implausible="mask"`` — gives NaN there and leaves the rest as it
was. Dark-subtracted data with zero-mean read noise dip below zero legitimately: not refused.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

from ionscope import eels
from ionscope.eels._plausible import NOISE_SIGMAS, implausible_rows, noise_level, screen_block
from ionscope.errors import DataValidationError

FIT = (45.0, 85.0)
T, Y, X, CH = 1, 5, 7, 300  # the corrupt spectrum and channel


@functools.lru_cache(maxsize=None)
def _scene():
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=(12, 16), n_frames=2, physics="realistic", dose=1000.0, seed=5)
    return si, truth


def _corrupt(si, kind="channel"):
    bad = si.copy(data=si.values.copy())
    if kind == "channel":
        bad.values[T, Y, X, CH] = -1e6
    elif kind == "negated":
        bad.values[T, Y, X] = -bad.values[T, Y, X]
    else:
        bad.values[T, Y, X, CH] = np.nan
    return bad


def _dead(si):
    dead = si.copy(data=si.values.copy())
    dead.values[T, Y, X] = np.nan
    return dead


# --------------------------------------------------------------------------- the rule itself


def test_the_rule_flags_impossible_values_and_not_dead_pixels():
    rng = np.random.default_rng(0)
    J = rng.poisson(50.0, (6, 400)).astype(float)
    J[1, 17] = -1e6                   # one channel
    J[2] = -J[2]                      # a spectrum stored negated
    J[3, 5] = np.nan                  # NaN among finite channels
    J[4] = np.nan                     # a dead pixel: NaN everywhere (not implausible)
    J[5, 9] = np.inf
    bad, first = implausible_rows(J)
    assert bad.tolist() == [False, True, True, True, False, True]
    assert first[:3] == (1, 17, -1e6) and first[3] == pytest.approx(-NOISE_SIGMAS * noise_level(J[1:2])[0])
    # the noise level comes from the data: the same −60 is impossible in a 50-count spectrum (σ≈7)
    # and possible in a 5000-count one (σ≈70)
    lo, hi = rng.poisson(50.0, (1, 400)).astype(float), rng.poisson(5000.0, (1, 400)).astype(float)
    lo[0, 3] = hi[0, 3] = -60.0
    assert implausible_rows(lo)[0][0] and not implausible_rows(hi)[0][0]


def test_dark_subtracted_counts_with_read_noise_are_not_refused():
    """Zero-mean read noise on Poisson counts from ~0 to ~10⁴: 2·10⁷ channels, none refused."""
    rng = np.random.default_rng(1)
    n, m = 20000, 1024
    level = np.exp(np.linspace(np.log(0.02), np.log(1e4), m))[None, :] * rng.uniform(0.1, 1.0, (n, 1))
    for read in (0.3, 3.0, 10.0):
        J = rng.poisson(level).astype(np.float32) + rng.normal(0.0, read, (n, m)).astype(np.float32)
        assert (J < 0).mean() > 0.01  # the data do dip below zero
        bad, first = implausible_rows(J)
        assert not bad.any(), first


def test_realistic_spectra_with_read_noise_are_not_refused():
    """The realistic simulator's spectra at 1/500 of the dose (high-loss channels near 0 counts), Poisson
    counted, with zero-mean read noise added: nothing refused."""
    si, _ = _scene()
    rng = np.random.default_rng(2)
    for read in (1.0, 5.0):
        noisy = (rng.poisson(np.clip(si.values, 0, None) / 500.0) + rng.normal(0.0, read, si.shape)).astype(np.float32)
        assert (noisy < 0).mean() > 0.01
        out, n = screen_block(noisy, implausible="raise", dims=("time", "y", "x"))
        assert n == 0 and out is noisy


@pytest.mark.parametrize("name", ["EELS_SI.dm4", "EELS_STO.dm3", "Cr_L_cl.hspy", "Cr_L_ll.hspy"])
def test_real_spectra_are_not_refused(real_data, name):
    """Real files (EELS_SI.dm4 dips to −27.7 counts: dark-subtracted with read noise)."""
    import ionscope.io as iio

    path = real_data / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    da = iio.load(path).transpose(..., "energy")
    a = np.asarray(da.values, float)
    bad, first = implausible_rows(a.reshape(-1, a.shape[-1]))
    assert not bad.any(), first


def test_a_bad_option_is_named():
    si, truth = _scene()
    with pytest.raises(DataValidationError, match="implausible: expected 'raise' or 'mask'"):
        eels.deconvolve(si, implausible="ignore")


# --------------------------------------------------------------------------- every route refuses


def _routes(truth):
    import xarray as xr

    x = truth.x_li
    film = truth.co > 0.5
    rich = xr.zeros_like(x, dtype=bool)
    rich[0] = (x.isel(time=0) > 0.9) & film
    poor = xr.zeros_like(x, dtype=bool)
    poor[1] = (x.isel(time=1) > 0.5) & (x.isel(time=1) < 0.8) & film
    regions = {"rich": rich, "poor": poor}
    comp = {"rich": {"Li": float(x.where(rich).mean()), "Co": 1.0}, "poor": {"Li": float(x.where(poor).mean()),
                                                                            "Co": 1.0}}
    refs = truth.references
    return {
        "mlls": lambda d, **k: eels.mlls(d, refs, fit_range=FIT, plural_scattering="fourier-log", **k),
        "mlls_convolve": lambda d, **k: eels.mlls(d, refs, fit_range=FIT, plural_scattering="convolve", **k),
        "sasb": lambda d, **k: eels.sasb(d, references=refs, plural_scattering="fourier-log", **k),
        "nmf_li": lambda d, **k: eels.nmf_li(d, refs, fit_pixels=200, **k),
        "li_profile": lambda d, **k: eels.li_profile(d.isel(time=T, x=X).rename(y="position"), references=refs,
                                                     **k),
        "deconvolve": lambda d, **k: eels.deconvolve(d, **k),
        "references_from_regions": lambda d, **k: eels.references_from_regions(d, regions, comp, fit_range=FIT,
                                                                                 **k),
    }


@pytest.mark.parametrize("kind", ["channel", "negated", "partial-nan"])
@pytest.mark.parametrize("route", ["mlls", "mlls_convolve", "sasb", "nmf_li", "li_profile", "deconvolve",
                                   "references_from_regions"])
def test_every_route_refuses_an_impossible_spectrum_naming_pixel_and_channel(route, kind):
    si, truth = _scene()
    where = r"pixel \(position=5\)" if route == "li_profile" else r"pixel \(time=1, y=5, x=7\)"
    channel = "channel 300 " if kind != "negated" else r"channel \d+ "
    with pytest.raises(DataValidationError, match=rf"^si: {where} holds .* at {channel}\(.* eV\).*"
                                                  rf"implausible='mask'") as err:
        _routes(truth)[route](_corrupt(si, kind))
    assert "\n" not in str(err.value)


def test_the_plain_poisson_route_names_the_pixel_too():
    from ionscope.simulate import operando_eels

    si, truth, _ = operando_eels(shape=(12, 8), n_frames=1, dose=200.0, seed=2)
    bad = si.copy(data=si.values.copy())
    bad.values[0, 2, 3, 300] = -1e6
    # in memory it keeps its stricter refusal (anything below −1, any NaN/Inf), which now names the pixel too
    with pytest.raises(DataValidationError, match=r"si: holds negative counts \(down to -1e\+06, pixel \(time=0, y=2, "
                                                  r"x=3\) channel 300\)"):
        eels.mlls(bad, truth.references, fit_range=(50.0, 85.0))
    m = eels.mlls(bad.chunk({"y": 6}), truth.references, fit_range=(50.0, 85.0))  # lazy: the rule, per block
    with pytest.raises(DataValidationError, match=r"si: pixel \(time=0, y=2, x=3\) holds -1e\+06 counts at channel 300"):
        m.Li.compute()
    # weights=None declares signed data (background removed): no rule, as before
    eels.mlls(bad, truth.references, fit_range=(50.0, 85.0), weights=None, background=None, nonnegative=False)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        m = eels.mlls(bad, truth.references, fit_range=(50.0, 85.0), implausible="mask")
    ref = eels.mlls(si, truth.references, fit_range=(50.0, 85.0))
    assert any("1 spectra with implausible raw counts" in str(w.message) for w in got)
    li, li0 = m.Li.values.copy(), ref.Li.values.copy()
    assert np.isnan(li[0, 2, 3])
    li[0, 2, 3] = li0[0, 2, 3] = 0.0
    np.testing.assert_allclose(li, li0, rtol=1e-12, atol=0)  # the batched solve's rounding: 1e-14


# --------------------------------------------------------------------------- mask mode


@pytest.mark.parametrize("route", ["mlls", "sasb", "li_profile", "deconvolve"])
def test_mask_gives_nan_at_the_pixel_and_the_clean_result_elsewhere(route):
    """Masked = that pixel dead (NaN in every channel), bit for bit; elsewhere the clean run's maps (to 1e-6:
    the deconvolution kernel's batches of 256 spectra round a little differently around a NaN row, 3e-7
    measured, as they did for a dead pixel before; the line scan to 1e-3, see below)."""
    si, truth = _scene()
    f = _routes(truth)[route]
    clean, dead = f(si), f(_dead(si))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        masked = f(_corrupt(si), implausible="mask")
    msgs = [str(w.message) for w in got if "implausible raw counts" in str(w.message)]
    assert msgs and "1 spectra" in msgs[0] and ("y=5, x=7" in msgs[0] or "position=5" in msgs[0])
    at = {"position": Y} if route == "li_profile" else {"time": T, "y": Y, "x": X}
    for name, var in clean.data_vars.items():
        a, b = masked[name], var
        np.testing.assert_array_equal(a.values, dead[name].values, err_msg=name)
        assert bool(np.isnan(a.isel(**at)).all()), name
        a_rest, b_rest = a.values.copy(), b.values.copy()
        sel = tuple(at.get(d, slice(None)) for d in a.dims)
        a_rest[sel] = b_rest[sel] = 0.0
        # a 12-spectrum line: the zero-loss width is measured on all its spectra, one fewer when one is NaN
        rtol = 1e-3 if route == "li_profile" else 1e-6
        np.testing.assert_allclose(a_rest, b_rest, rtol=rtol, atol=1e-9 * np.nanmax(np.abs(b_rest)), err_msg=name)


def test_mask_on_a_route_across_pixels_is_the_dead_pixel_run():
    """NMF trains on many pixels and pools Co over time: masked = that pixel dead (NaN), exactly; close to clean."""
    si, truth = _scene()
    f = _routes(truth)["nmf_li"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masked = f(_corrupt(si), implausible="mask")
        dead = f(_dead(si))
        clean = f(si)
    np.testing.assert_array_equal(masked.Li.values, dead.Li.values)
    assert np.isnan(masked.Li.values[T, Y, X]) and np.isfinite(np.delete(masked.Li.values.ravel(),
                                                                          np.ravel_multi_index((T, Y, X),
                                                                                               si.shape[:3]))).all()
    # without the rule the corrupt pixel moved the mean Li by +8 %; masked, it is the clean mean within 1 %
    assert float(masked.Li.mean()) == pytest.approx(float(clean.Li.mean()), rel=0.01)


# --------------------------------------------------------------------------- lazy input


def test_lazy_input_stays_lazy_and_raises_at_compute_with_the_same_message():
    import dask

    si, truth = _scene()
    for y in (5, 9):  # blocks (1, 0) and (1, 1): the message gives the whole array's y
        bad = si.copy(data=si.values.copy())
        bad.values[T, y, X, CH] = -1e6
        m = eels.mlls(bad.chunk({"time": 1, "y": 6}), truth.references, fit_range=FIT,
                      plural_scattering="fourier-log", resolution_fwhm=0.6)
        assert dask.is_dask_collection(m.Li.data)
        with pytest.raises(DataValidationError, match=rf"^si: pixel \(time=1, y={y}, x=7\) holds -1e\+06 counts at "
                                                      r"channel 300 \(25 eV\)"):
            m.Li.compute()


def test_a_lazy_route_that_reads_a_sample_first_raises_there_with_the_same_message():
    """deconvolve measures the zero-loss width on 64 spectra spread over the input: reading them applies the
    rule to their blocks (the corrupt pixel's too), so the error comes at the call — never a map."""
    import dask

    si, _ = _scene()
    assert dask.is_dask_collection(eels.deconvolve(si.chunk({"time": 1})).ssd.data)  # clean: lazy
    with pytest.raises(DataValidationError, match=r"^si: pixel \(time=1, y=5, x=7\) holds -1e\+06 counts at channel "
                                                  r"300"):
        eels.deconvolve(_corrupt(si).chunk({"time": 1, "y": 6})).ssd.compute()
    # with the width given nothing is read at the call: the error comes at compute
    out = eels.deconvolve(_corrupt(si).chunk({"time": 1, "y": 6}), resolution_fwhm=0.6)
    assert dask.is_dask_collection(out.ssd.data)
    with pytest.raises(DataValidationError, match=r"^si: pixel \(time=1, y=5, x=7\) holds -1e\+06 counts"):
        out.ssd.compute()


def test_lazy_mask_gives_nan_there_at_compute():
    si, truth = _scene()
    f = _routes(truth)["deconvolve"]
    clean = f(si, resolution_fwhm=0.6)
    out = f(_corrupt(si).chunk({"time": 1}), resolution_fwhm=0.6, implausible="mask")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        ssd = out.ssd.values
    assert any("implausible raw counts" in str(w.message) for w in got)
    assert np.isnan(ssd[T, Y, X]).all()
    ssd[T, Y, X] = clean.ssd.values[T, Y, X]
    np.testing.assert_array_equal(ssd, clean.ssd.values)


def test_a_nan_pixel_does_not_darken_its_neighbours_smoothed_co():
    """li_fraction(smooth_co=): a masked pixel's NaN Co was read as 0 by the smoothing (its neighbours' x +3.7 %
    on a ±10 % Co field, σ 2 px); now it is left out of their mean (≤ 0.2 %: one sample fewer)."""
    import xarray as xr

    rng = np.random.default_rng(0)
    co = rng.uniform(90.0, 110.0, (1, 12, 12))
    maps = xr.Dataset({"Li": (("time", "y", "x"), 0.5 * co), "Co": (("time", "y", "x"), co)})
    clean = eels.li_fraction(maps, calibration=1.0, smooth_co=2.0).li_fraction.values
    holed = maps.copy(deep=True)
    holed["Li"].values[0, 5, 5] = holed["Co"].values[0, 5, 5] = np.nan
    x = eels.li_fraction(holed, calibration=1.0, smooth_co=2.0).li_fraction.values
    assert np.argwhere(np.isnan(x)).tolist() == [[0, 5, 5]]
    assert np.nanmax(np.abs(x / clean - 1)) < 0.002
