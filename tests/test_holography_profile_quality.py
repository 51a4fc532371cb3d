# SPDX-License-Identifier: GPL-3.0-or-later
"""A step fit says when it is not a measurement: no step, a width on its bound, χ² far from 1 — in the JSON, a
warning line and the figure of ``holo profile``; and the profile's s.e.m. that χ² is taken against is right."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.holography import fit_step, line_profile


@pytest.mark.parametrize("width, start, end", [(20, (60, 10), (60, 100)), (9, (60, 10), (60, 100)),
                                               (20, (30.3, 10.7), (90.2, 100.1))])
def test_profile_sem_describes_the_noise_of_interpolated_samples(width, start, end):
    """(profile − truth)/sem of white noise has unit spread; bilinear samples between pixel rows used to make the
    s.e.m. 1.5–2× too small (an even width puts every sample between two rows)."""
    rng = np.random.default_rng(7)
    pulls = []
    for _ in range(25):
        p = line_profile(rng.normal(0.0, 1.0, (128, 128)), start=start, end=end, width=width)
        pulls.append(np.asarray(p.values) / np.asarray(p.sem.values))
    spread = float(np.std(np.concatenate(pulls)))
    # a σ estimated from `width` samples: Student-t spread √((n−1)/(n−3)) ≈ 1.06 (20) … 1.15 (9), a little more
    # for the correlation the interpolation leaves
    assert 0.95 < spread < 1.3, spread


def _write(tmp_path, name, values):
    from ionscope.data import calibrated
    from ionscope.io import save

    da = calibrated(values, ("y", "x"), scale={"y": 0.5, "x": 0.5}, name="potential")
    da.attrs["units"] = "V"
    return save(da, tmp_path / name)


def test_holo_profile_says_when_there_is_no_step(tmp_path, capsys):
    """The issue: 'step −1.14 ± 17 V, width 89.7 ± 1.2e+03 nm' on a profile without a step, exit 0, silent."""
    from ionscope.cli import main

    rng = np.random.default_rng(1)
    flat = _write(tmp_path, "flat.nc", rng.normal(0, 0.05, (120, 120)))
    out = tmp_path / "flat.json"
    assert main(["holo", "profile", str(flat), "--start-nm", "30", "10", "--end-nm", "30", "50", "--width-nm", "10",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["warnings"] and data["warnings"][0].startswith("no step")
    assert "warning:" in err and "no step" in err
    # a clean step: no warning, χ² against the corrected s.e.m. near 1
    step = _write(tmp_path, "step.nc", rng.normal(0, 0.05, (120, 120)) + 1.2 * (np.arange(120) * 0.5 > 30))
    out2 = tmp_path / "step.json"
    assert main(["holo", "profile", str(step), "--start-nm", "30", "10", "--end-nm", "30", "50", "--width-nm", "10",
                 "-o", str(out2)]) == 0
    assert "warning:" not in capsys.readouterr().err
    good = json.loads(out2.read_text())
    assert good["warnings"] == [] and 0.5 < good["chi2_reduced"] < 2.0
    assert abs(good["step"] - 1.2) < 4 * good["step_err"]


def test_fit_problems_cover_bounds_and_chi2():
    x = np.linspace(-20, 20, 81)
    rng = np.random.default_rng(2)
    ramp = 0.02 * x + rng.normal(0, 0.01, x.size)          # a slope, not a step
    fit = fit_step(ramp, position=x, max_width=10.0)
    assert any("bound" in p or "no step" in p for p in fit.problems())
    from scipy.special import erf

    clean = 0.5 * (1 + erf(x / 3.0))
    sem = np.full(x.size, 0.01)
    import xarray as xr

    noisy = clean + rng.normal(0, 0.05, x.size)               # scatter 5× the stated s.e.m.
    prof = xr.DataArray(noisy, dims="position", coords={"position": x, "sem": ("position", sem)})
    bad = fit_step(prof)
    assert bad.chi2_reduced > 10 and any("χ²" in p for p in bad.problems())
    ok = xr.DataArray(clean + rng.normal(0, 0.01, x.size), dims="position",
                      coords={"position": x, "sem": ("position", sem)})
    assert fit_step(ok).problems() == []
