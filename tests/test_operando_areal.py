# SPDX-License-Identifier: GPL-3.0-or-later
"""Without a calibration, real-style series are mapped as Li per zero-loss intensity (areal Li).

The MLLS weight of a spectrum with its zero-loss peak is in single-scattering
counts, ∝ I0·e^(−t/λ)·t/λ·ρ_Li: it mirrors thickness and beam current. Divided
by the zero-loss intensity it is the Li areal density (× the Li-K cross section);
the fraction stage, the movie/viewer label and the summary say so.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.operando import run


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(16, 24), n_frames=3, physics="realistic", dose=1000.0,
                                   li_chemical_shift_ev=0.0, seed=7)
    root = tmp_path_factory.mktemp("areal")
    iio.save(si, root / "series.zarr")
    return root / "series.zarr", truth, log


def test_uncalibrated_map_is_li_per_zero_loss(series, tmp_path):
    store, truth, log = series
    cfg = {"input": {"series": str(store), "frame_interval_s": 60.0}, "output": {"dir": str(tmp_path)},
           "limap": {"fit_range": [45.0, 85.0]}, "denoise": {"method": "gaussian"},
           "register": {"enabled": False},
           "report": {"movies": [], "viewer": True, "figures": False}, "compute": {"frames_per_batch": 3}}
    res = run(cfg, log=log, show_progress=False)
    li = res.li_fraction
    assert li.attrs["quantity"] == "areal"
    assert "zero-loss" in li.attrs["long_name"] and "zero-loss" in li.attrs["units"]
    # film sums per frame against the truth's Li / I0, within 4σ of the propagated error
    film = (truth.co > 0.5).values
    frac = res.dataset("fraction")
    lim = res.dataset("limap")
    i0 = lim.zero_loss.values
    true_areal = 1e6 * truth.weights.sel(component="Li").values / truth.zero_loss.values
    est = np.nansum(frac.li.values[:, film], axis=1)
    sig = np.sqrt(np.nansum(frac.li_std.values[:, film] ** 2, axis=1))
    ref = true_areal[:, film].sum(1)
    assert np.all(np.abs(est - ref) < 4 * sig + 0.02 * ref)
    # the areal map no longer carries the zero-loss intensity: the fitted I0 agrees with the truth
    assert np.allclose(np.nanmedian(i0 / truth.zero_loss.values), 1.0, atol=0.02)
    from ionscope.report import write_run_report

    files = write_run_report(res, tmp_path / "report", show_progress=False)
    assert "viewer.html" in files
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert "zero-loss" in summary["map_quantity"] and "zero-loss" in summary["map_unit"]
    assert res.analysis.mean_li.attrs.get("long_name") == "mean areal Li"
