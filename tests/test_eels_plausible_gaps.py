# SPDX-License-Identifier: GPL-3.0-or-later
"""The plausibility rule on the three EELS routes it did not cover: ``thickness``, ``sasb`` without the
zero-loss peak, ``nmf``.

Measured before (one corrupt channel, simulated Poisson spectra): ``thickness`` read t/λ 0.546 at a pixel
whose clean value is 0.603 (−10⁴ counts in one channel) and NaN without a word (−10⁶); the classic SA/SB
route read Li/Co −2.26 (clean 0.47); ``nmf`` clipped −10⁶ to 0 and fitted it (maps moved elsewhere by
0.2 % of the maximum). Now each refuses it naming the pixel and channel, or (``implausible="mask"``) gives
NaN there; a dask input stays lazy until computed.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import xarray as xr

from ionscope import eels
from ionscope.errors import DataValidationError


@functools.lru_cache(maxsize=None)
def _lowloss():
    from ionscope.simulate import plural_scattering, valence_loss

    e = np.arange(-5.0, 150.0, 0.1)
    j = plural_scattering(e, i0=np.full(12, 1e5), components=[(np.full(12, 0.6), valence_loss, None)])
    j = np.random.default_rng(0).poisson(j).astype(float).reshape(3, 4, -1)
    return xr.DataArray(j, dims=("y", "x", "energy"), coords={"energy": e}, name="ll")


@functools.lru_cache(maxsize=None)
def _coreloss():
    from ionscope.simulate import edge_references

    e = np.arange(35.0, 100.0, 0.1)
    refs = edge_references(e)
    y = 1e4 * (e / 35) ** -3 + 300 * refs.sel(component="Li") + 600 * refs.sel(component="Co")
    counts = np.random.default_rng(1).poisson(np.broadcast_to(y.values, (3, 4, e.size))).astype(float)
    return xr.DataArray(counts, dims=("y", "x", "energy"), coords={"energy": e}), refs


@functools.lru_cache(maxsize=None)
def _mixture():
    rng = np.random.default_rng(2)
    H = np.stack([np.linspace(1, 0, 50), np.linspace(0, 1, 50)])
    X = rng.poisson(rng.uniform(0, 100, (6, 6, 2)) @ H).astype(float)
    return xr.DataArray(X, dims=("y", "x", "energy"), coords={"energy": np.arange(50.0)})


def _bad(da, where, value):
    out = da.copy(data=da.values.copy())
    out.values[where] = value
    return out


def _masked(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        res = fn(*args, implausible="mask", **kwargs)
    assert any("implausible raw counts set to NaN" in str(w.message) for w in got)
    return res


@pytest.mark.parametrize("value", [-1e4, -1e6, np.nan])
def test_thickness_refuses_or_masks_an_impossible_channel(value):
    da = _lowloss()
    bad = _bad(da, (1, 2, 800), value)
    with pytest.raises(DataValidationError, match=r"ll: pixel \(y=1, x=2\) .*channel 800 \(75 eV\)"):
        eels.thickness(bad)
    t0, tm = eels.thickness(da), _masked(eels.thickness, bad)
    assert np.isnan(tm.values[1, 2]) and np.isnan(tm.thickness_std.values[1, 2])
    keep = np.ones((3, 4), bool)
    keep[1, 2] = False
    assert np.array_equal(tm.values[keep], t0.values[keep])
    assert abs(float(t0.values[1, 2]) - 0.6) < 0.02  # the clean pixel itself is right
    lazy = eels.thickness(bad.chunk({"y": 1}))  # built without reading
    with pytest.raises(DataValidationError, match=r"pixel \(y=1, x=2\)"):
        lazy.compute()


def test_thickness_dark_offset_route_and_dual_low_loss_are_checked():
    da = _lowloss()
    bad = _bad(da, (0, 3, 20), -1e6)  # a channel below the peak: the one the dark offset is measured from
    with pytest.raises(DataValidationError, match=r"pixel \(y=0, x=3\)"):
        eels.thickness(bad, dark_offset=0)
    with pytest.raises(DataValidationError, match=r"ll: pixel \(y=0, x=3\)"):
        eels.thickness(da * 0 + 1.0, low_loss=bad)
    with pytest.raises(DataValidationError, match="implausible: expected 'raise' or 'mask'"):
        eels.thickness(da, implausible="ignore")


def test_sasb_without_zero_loss_peak_refuses_or_masks():
    s, refs = _coreloss()
    bad = _bad(s, (0, 1, 250), -1e5)
    with pytest.raises(DataValidationError, match=r"pixel \(y=0, x=1\) holds -1e\+05 counts at channel 250"):
        eels.sasb(bad, references=refs, method="exact")
    r0 = eels.sasb(s, references=refs, method="exact")
    rm = _masked(eels.sasb, bad, references=refs, method="exact")
    assert np.isnan(rm.li_co.values[0, 1]) and np.isnan(rm.li_co_std.values[0, 1])
    keep = np.ones((3, 4), bool)
    keep[0, 1] = False
    # the others as on clean data (the block's power-law fits iterate together: 1e-15 rounding)
    np.testing.assert_allclose(rm.li_co.values[keep], r0.li_co.values[keep], rtol=1e-12)
    np.testing.assert_allclose(float(r0.li_co.mean()), 0.5, atol=0.1)
    # a masked pixel is a dead pixel: the same result as a pixel NaN in every channel
    dead = _bad(s, (0, 1), np.nan)
    rd = eels.sasb(dead, references=refs, method="exact", implausible="mask")
    assert np.array_equal(rd.li_co.values, rm.li_co.values, equal_nan=True)
    with pytest.raises(DataValidationError, match="NaN/Inf"):  # and refused, as before, by default
        eels.sasb(dead, references=refs, method="exact")
    lazy = eels.sasb(bad.chunk({"y": 1}), references=refs, method="exact")
    with pytest.raises(DataValidationError, match=r"pixel \(y=0, x=1\)"):
        lazy.li_co.compute()


def test_nmf_refuses_or_masks_instead_of_clipping():
    X = _mixture()
    bad = _bad(X, (2, 3, 10), -1e6)
    with pytest.raises(DataValidationError, match=r"pixel \(y=2, x=3\) holds -1e\+06 counts at channel 10"):
        eels.nmf(bad, n_components=2)
    # small negative counts (dark subtraction) are still clipped, not refused
    eels.nmf(X - 1.0, n_components=2)
    m = _masked(eels.nmf, bad, n_components=2)
    nan = np.isnan(m.maps.values).any(-1)
    assert nan.sum() == 1 and nan[2, 3] and np.isnan(m.maps.values[2, 3]).all()
    # the masked spectrum takes no part: the same spectra as a fit without that pixel
    dead = _bad(X, (2, 3), np.nan)
    md = eels.nmf(dead, n_components=2, implausible="mask")
    np.testing.assert_array_equal(md.spectra.values, m.spectra.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning comes from the blocks as they are read
        lazy = eels.nmf(bad.chunk({"y": 2}), n_components=2, implausible="mask")
        assert hasattr(lazy.maps.data, "dask")
        assert np.isnan(lazy.maps.values).any(-1).sum() == 1
    with pytest.raises(DataValidationError, match=r"pixel \(y=2, x=3\)"):
        eels.nmf(bad.chunk({"y": 2}), n_components=2)


def test_pipeline_nmf_takes_its_required_n_components():
    """``[limap] method = "nmf"`` needs ``n_components``, and giving it was refused as an unknown option."""
    from ionscope.errors import ConfigError
    from ionscope.pipeline import from_dict

    cfg = from_dict({"limap": {"method": "nmf", "options": {"n_components": 3}}})
    assert cfg.limap.options["n_components"] == 3
    with pytest.raises(ConfigError, match=r"needs \['n_components'\]"):
        from_dict({"limap": {"method": "nmf"}})
    with pytest.raises(ConfigError, match="n_components = 'x' has the wrong type"):
        from_dict({"limap": {"method": "nmf", "options": {"n_components": "x"}}})
