# SPDX-License-Identifier: GPL-3.0-or-later
"""The fused per-frame EELS work (issue 20): one read of each frame for the Li maps, same results.

``[compute] fused = true`` (the default) makes the MLLS Li maps straight from
each frame as read (:mod:`ionscope.pipeline._eels_fused`); ``false`` makes them
from the energy- and drift-corrected series, stage by stage, as before. Both
are run here on small simulated nights with energy and specimen drift — the
realistic one (zero-loss peak: Fourier-log deconvolution + GLS fit) and the
ideal one (core loss only: the Fourier energy shift is undone per frame) — on
threads and on a LocalCluster, and their maps compared.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.errors import ConfigError
from ionscope.pipeline import from_dict, run


def _night(root, **kw):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(**kw)
    iio.save(si, root / "series.zarr")
    return {"store": root / "series.zarr", "si": si, "truth": truth, "log": log}


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    # zero-loss peak, plural scattering, an energy drift and a specimen drift of a few px
    return _night(tmp_path_factory.mktemp("realistic"), shape=(16, 24), n_frames=5, physics="realistic",
                  dose=500.0, energy_drift_ev=0.3, specimen_drift_px=1.5, seed=11)


@pytest.fixture(scope="module")
def ideal(tmp_path_factory):
    return _night(tmp_path_factory.mktemp("ideal"), shape=(16, 24), n_frames=5, energy_range=(30.0, 90.0),
                  energy_step=0.25, energy_drift_ev=0.4, specimen_drift_px=1.5, seed=12)


def _config(out, store, *, limap=None, **compute):
    return {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(out)},
            "limap": {"fit_range": [45.0, 85.0], **(limap or {})}, "register": {"window_ev": [40.0, 60.0]},
            "denoise": {"method": "none"}, "report": {"movies": [], "viewer": False, "figures": False},
            "compute": {"frames_per_batch": 2, **compute}}


def _limap(night, out, **compute):
    res = run(_config(out, night["store"], **compute), log=night["log"], show_progress=False,
              stages=("limap",))
    return res.dataset("limap").load(), res


def _assert_same_maps(a, b, *, rtol=1e-5):
    """Li maps within ``rtol`` of the map's largest value, σ and χ² unchanged (to float rounding)."""
    scale = float(np.nanmax(np.abs(b.li.values)))
    assert np.nanmax(np.abs(a.li.values - b.li.values)) <= rtol * scale
    np.testing.assert_allclose(a.li_std.values, b.li_std.values, rtol=1e-6, atol=0)
    np.testing.assert_allclose(a.chi2.values, b.chi2.values, rtol=1e-6, atol=0)
    assert np.isnan(a.li.values).sum() == np.isnan(b.li.values).sum() == 0


@pytest.fixture(scope="module")
def realistic_runs(realistic, tmp_path_factory):
    fused, res = _limap(realistic, tmp_path_factory.mktemp("fused"))
    staged, _ = _limap(realistic, tmp_path_factory.mktemp("staged"), fused=False)
    kept, _ = _limap(realistic, tmp_path_factory.mktemp("kept"), fused=False, cache_spectra=True)
    return {"fused": fused, "staged": staged, "kept": kept, "result": res}


def test_realistic_fused_maps_equal_the_stage_by_stage_maps(realistic_runs):
    fused, staged, kept = realistic_runs["fused"], realistic_runs["staged"], realistic_runs["kept"]
    assert fused.attrs.get("plural_scattering", "fourier-log") == "fourier-log"
    for name in ("li", "li_std", "co", "thickness", "zero_loss"):
        assert name in fused, name
    _assert_same_maps(fused, staged)
    _assert_same_maps(fused, kept)
    # the t/λ and I0 maps too
    np.testing.assert_allclose(fused.thickness.values, staged.thickness.values, rtol=1e-6)
    np.testing.assert_allclose(fused.zero_loss.values, staged.zero_loss.values, rtol=1e-6)


def test_realistic_drift_and_registration_from_the_screens_read(realistic, realistic_runs):
    """The energy drift and the specimen drift come from the screen's summaries (no read of their own):
    the same numbers as measured directly on the series with the public functions."""
    import dask

    from ionscope import eels
    from ionscope.transport import estimate_shifts

    res = realistic_runs["result"]
    si = realistic["si"]
    with dask.config.set(scheduler="synchronous"):
        # through the zero-loss peak: every channel, the zero-loss window ±5 eV clipped to the axis
        direct = eels.estimate_shift(si.sum(("y", "x")), method="zlp", window=(-4.9, 5.0)).values
        image = si.sel(energy=slice(40.0, 60.0)).sum("energy").values
    recorded = res.dataset("energy_drift").energy_shift.values
    drift = res.dataset("register").drift.values
    truth = realistic["truth"]
    np.testing.assert_allclose(drift, estimate_shifts(image, reference="first", upsample_factor=20), atol=0.02)
    # the simulator's drift, relative to frame 0 (the registration moves frames back onto frame 0)
    true_drift = np.stack([truth.drift_y.values, truth.drift_x.values], 1)
    assert np.max(np.abs(drift + (true_drift - true_drift[0]))) < 0.3
    np.testing.assert_allclose(recorded, direct, atol=1e-6)


@pytest.mark.slow  # a LocalCluster of worker processes (~17 s on 2 loaded cores); fast tier: test_pipeline_executors
def test_realistic_fused_on_a_local_cluster(realistic, realistic_runs, tmp_path):
    pytest.importorskip("distributed")
    cluster, _ = _limap(realistic, tmp_path, scheduler="local", n_workers=2)
    for name in ("li", "li_std", "chi2", "thickness"):
        np.testing.assert_array_equal(cluster[name].values, realistic_runs["fused"][name].values)


def test_ideal_fused_maps_equal_the_stage_by_stage_maps(ideal, tmp_path):
    fused, res = _limap(ideal, tmp_path / "fused")
    staged, _ = _limap(ideal, tmp_path / "staged", fused=False)
    assert np.ptp(res.dataset("energy_drift").energy_shift.values) > 0.1  # the energy correction is exercised
    assert np.ptp(res.dataset("register").drift.values) > 0.5  # and the registration
    _assert_same_maps(fused, staged)
    np.testing.assert_allclose(fused.co.values, staged.co.values, rtol=1e-6,
                               atol=1e-6 * float(np.abs(staged.co.values).max()))


def test_fused_is_a_compute_option(tmp_path):
    assert from_dict({}).compute.fused is True
    assert from_dict({"compute": {"fused": False}}).compute.fused is False
    with pytest.raises(ConfigError, match=r"\[compute\] fused: expected true or false"):
        from_dict({"compute": {"fused": "yes"}})
    # not part of any stage's key: switching it reuses the cached maps (they are the same maps)
    assert "fused" not in from_dict({}).section("limap")


def test_probe_spectra_from_the_screens_windows_equal_a_read_of_the_registered_series():
    """The zero-loss width's spectra: shifted from the screen's raw windows, or read again (large drift)."""
    import xarray as xr

    from ionscope.pipeline._eels_fused import lazy_probe, probe_layout, registered_probe
    from ionscope.transport import apply_shifts

    rng = np.random.default_rng(0)
    n, ny, nx, ne = 4, 12, 10, 7
    series = xr.DataArray(rng.random((n, ny, nx, ne)).astype(np.float32), dims=("time", "y", "x", "energy"))
    pixels, origins, (wy, wx) = probe_layout(n, ny, nx)
    windows = np.stack([series.values[t, oy:oy + wy, ox:ox + wx] for (t, _, _), (oy, ox) in zip(pixels, origins)])
    probe = {"pixels": pixels, "origins": origins, "windows": windows}
    small = np.array([[0.0, 0.0], [0.4, -1.3], [-2.2, 0.7], [1.0, 2.5]])
    expected = lazy_probe(apply_shifts(series, small))
    np.testing.assert_array_equal(registered_probe(probe, small, (ny, nx)), expected)
    assert registered_probe(probe, small * 10, (ny, nx)) is None  # beyond the windows: the caller reads again
