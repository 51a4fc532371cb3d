# SPDX-License-Identifier: GPL-3.0-or-later
"""The operando pipeline on real-style spectra: zero-loss peak, plural scattering, x, t/λ, dual EELS."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.errors import ConfigError
from ionscope.operando import run


@pytest.fixture(scope="module")
def real_style(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    # no specimen drift: the maps (registered to frame 0) and the truth (image frame) then cover the same
    # pixels, so film averages compare exactly (registration is tested on the ideal series)
    # no Li-K chemical shift either: with one Li-K reference it reads Li-poor frames ~0.04 low in x (a
    # property of the references, measured in test_eels_physics), which would hide the pipeline's own error
    si, truth, log = operando_eels(shape=(16, 24), n_frames=6, physics="realistic", dose=1000.0,
                                   energy_drift_ev=0.3, li_chemical_shift_ev=0.0, seed=5)
    root = tmp_path_factory.mktemp("real")
    iio.save(si, root / "series.zarr")
    return {"root": root, "store": root / "series.zarr", "si": si, "truth": truth, "log": log}


def _config(out, store, **limap):
    return {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(out)},
            "limap": {"fit_range": [45.0, 85.0], **limap}, "denoise": {"method": "gaussian"},
            "report": {"movies": [], "viewer": False, "figures": False}, "compute": {"frames_per_batch": 3}}


def _film_mean(da, truth):
    film = truth.co > 0.5
    return da.where(film).mean(("y", "x"))


def test_pipeline_maps_x_through_the_zero_loss_peak(real_style, tmp_path):
    truth = real_style["truth"]
    k = truth.attrs["k_li_co"]
    res = run(_config(tmp_path, real_style["store"], calibration={"k": k}), log=real_style["log"],
              show_progress=False)
    x = res.li_fraction
    assert x.attrs["quantity"] == "x" and x.attrs["units"] == "1"
    assert res.dataset("limap").attrs.get("plural_scattering", "fourier-log") == "fourier-log"
    # mean x of the film per frame, from summed weights (noise-robust)
    lim = res.dataset("limap")
    film = (truth.co > 0.5).values
    est = lim.li.values[:, film].sum(1) / lim.co.values[:, film].sum(1) / k
    sigma = np.sqrt((lim.li_std.values[:, film] ** 2).sum(1)) / lim.co.values[:, film].sum(1) / k
    w = truth.weights.values
    true = w[0][:, film].sum(1) / w[1][:, film].sum(1) / k
    # each frame within 3.5 σ of its propagated error (≈ 0.025 in x here), the frames together unbiased
    assert np.all(np.abs(est - true) < 3.5 * sigma)
    assert abs(np.mean(est - true)) < 3 * np.mean(sigma) / np.sqrt(est.size)
    # t/λ per frame in the fraction stage, the beam-thinning trend visible
    frac = res.dataset("fraction")
    t_mean = frac.thickness_mean.values
    assert np.allclose(t_mean, truth.thickness.mean(("y", "x")).values, rtol=0.03)
    assert frac.attrs["thickness_change"] < 0
    assert res.analysis.flux_y.attrs["units"] == "x·nm/s"
    # the energy drift is recorded from the zero-loss peak (not applied twice)
    e = res.dataset("energy_drift").energy_shift
    assert int(e.attrs["applied"]) == 0
    assert np.max(np.abs(e.values - e.values[0] - (truth.energy_shift.values - truth.energy_shift.values[0]))) < 0.1


def test_region_calibration_in_the_config(real_style, tmp_path):
    truth = real_style["truth"]
    x0 = truth.x_li.isel(time=0)
    y0 = int(np.argmax(x0.mean("x").values > 0.9)) + 1   # first rows past the Li-poor interface layer
    region = [y0, 16, 0, 24]
    known = float(x0.isel(y=slice(y0, 16)).mean())
    res = run(_config(tmp_path, real_style["store"], calibration={"region": region, "x": known, "frame": 0}),
              log=real_style["log"], show_progress=False)
    k = res.dataset("fraction").attrs["k"]
    k_std = res.dataset("fraction").attrs["k_std"]
    assert abs(k - truth.attrs["k_li_co"]) < 3 * k_std + 0.02 * truth.attrs["k_li_co"]


def test_references_are_required_for_real_data(real_style, tmp_path):
    import ionscope.io as iio

    si = real_style["si"].copy()
    si.attrs["title"] = "frame series from the microscope"
    iio.save(si, tmp_path / "measured.zarr")
    with pytest.raises(ConfigError, match="references: required"):
        run(_config(tmp_path / "out", tmp_path / "measured.zarr"), show_progress=False)
    with pytest.raises(ConfigError, match="model shapes do not describe measured spectra"):
        run(_config(tmp_path / "out", tmp_path / "measured.zarr", references="simulated"), show_progress=False)


def test_bad_calibration_is_refused_before_any_stage(real_style, tmp_path):
    with pytest.raises(ConfigError, match="calibration"):
        run(_config(tmp_path, real_style["store"], calibration={"kk": 1.0}), show_progress=False)
    with pytest.raises(ConfigError, match="region"):
        run(_config(tmp_path, real_style["store"], calibration={"region": [5, 2, 0, 3]}), show_progress=False)


def test_dual_eels_series(tmp_path):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    core, low, truth, log = operando_eels(shape=(16, 24), n_frames=3, physics="realistic", dual_eels=True,
                                          dose=1000.0, li_chemical_shift_ev=0.0, seed=6)
    iio.save(core, tmp_path / "core.zarr")
    iio.save(low, tmp_path / "low.zarr")
    cfg = _config(tmp_path / "out", tmp_path / "core.zarr", calibration={"k": truth.attrs["k_li_co"]})
    cfg["input"]["low_loss"] = str(tmp_path / "low.zarr")
    cfg["register"] = {"enabled": False}
    res = run(cfg, log=log, show_progress=False)
    lim = res.dataset("limap")
    film = (truth.co > 0.5).values
    est = lim.li.values[:, film].sum(1) / lim.co.values[:, film].sum(1)
    sigma = np.sqrt((lim.li_std.values[:, film] ** 2).sum(1)) / lim.co.values[:, film].sum(1)
    w = truth.weights.values
    true = w[0][:, film].sum(1) / w[1][:, film].sum(1)
    assert np.all(np.abs(est - true) < 3.5 * sigma)
    assert np.allclose(res.dataset("fraction").thickness_mean.values,
                       truth.thickness.mean(("y", "x")).values, rtol=0.05)
