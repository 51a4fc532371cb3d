# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19, "never mislead": a run whose x beyond the regions is decided by the references' own noise says so.

References from small noisy regions (``ionscope refs regions`` on one frame at 1000 counts per 0.1 eV
channel) carry one realisation of noise common to every pixel; ``ionscope run`` prints a warning (``watch``'s
dashboard and end-of-night list show it, from each live frame), and ``summary.json`` and ``report.html`` say in plain words that x beyond the regions is not
determined by these references (:mod:`ionscope.pipeline._refs_noise`). Large, noise-free regions raise no
flag (tests/test_pipeline_li_shift.py). Whole nights and 17-s fits: slow tier.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from test_pipeline_li_shift import FIT, _config, _regions

pytestmark = pytest.mark.slow


def test_a_night_with_small_noisy_regions_is_flagged(tmp_path):
    import ionscope.io as iio
    from ionscope.cli import main
    from ionscope.pipeline import run
    from ionscope.pipeline import _li_shift_night as night_shift
    from ionscope.report import write_run_report
    from ionscope.simulate import operando_eels

    si, truth, log = operando_eels(shape=(24, 32), n_frames=3, physics="realistic", noise=True, seed=3)
    iio.save(si, tmp_path / "series.zarr")
    iio.save(si.isel(time=0), tmp_path / "frame0.zarr")
    args, true_delta = _regions(truth, tmp_path / "frame0.zarr")
    assert main(args + ["--chemical-shift", f"{true_delta:.4f}", "-o", str(tmp_path / "refs.nc")]) == 0
    night_shift._MEMO.clear()
    res = run(_config(tmp_path, "out", tmp_path / "refs.nc"), log=log, show_progress=False)
    frac = res.dataset("fraction").attrs
    assert frac["references_noise_warning"] == 1
    assert frac["references_x_std_beyond"] > 0.05 or frac["references_rho"] > 0.5
    files = write_run_report(res, tmp_path / "report", show_progress=False)
    summary = json.loads(files["summary.json"].read_text())
    assert summary["references_noise_warning"] is True
    assert "x beyond the regions is not determined by these references" in summary["references_noise_note"]
    assert f"{frac['references_x_std_beyond']:.2g}" in summary["references_noise_note"]
    page = files["report.html"].read_text()
    assert "not determined by these references" in page and "make them from more pixels" in page
    from ionscope.pipeline._refs_noise import warning_line

    assert warning_line(frac).startswith("WARNING: x beyond the regions is not determined")


def test_the_flag_follows_the_regions_counts():
    """One scene (24×32×3, regions of 408 and 198 pixels), fitted at 1000 and at 20000 counts per 0.1 eV:
    the references' σ of x beyond the regions (measured 0.090 / 0.017, ρ 0.88 / 0.04) is flagged at 1000
    counts only."""
    from ionscope import eels
    from ionscope.pipeline import _refs_noise
    from ionscope.simulate import operando_eels
    from test_eels_li_shift import _two_regions

    out = {}
    for dose in (1000.0, 20000.0):
        si, truth, _ = operando_eels(shape=(24, 32), n_frames=3, physics="realistic", seed=1, noise=True, dose=dose)
        film, pristine, charged, xp, xc = _two_regions(truth)
        refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged},
                                            {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}},
                                            fit_range=tuple(FIT))
        refs.attrs["li_k_shift_ev"] = truth.attrs["li_chemical_shift_ev"] / 0.5 * (xp - xc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = eels.mlls(si, refs, fit_range=tuple(FIT), plural_scattering="fourier-log", nonnegative=["Co"])
        ds = m.rename({"Li": "li", "Co": "co"})
        out[dose] = _refs_noise.assess(ds, ds["ratio_std_references"])
        assert np.isfinite(m.ratio_std_references.values[m.Co.values > 0]).all()
    assert out[1000.0]["references_noise_warning"] == 1 and out[20000.0]["references_noise_warning"] == 0
    assert out[20000.0]["references_x_std_beyond"] < 0.5 * out[1000.0]["references_x_std_beyond"]
