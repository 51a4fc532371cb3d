# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``ionscope denoise`` reports is true, against the truth of the simulated movie.

The command used to print "noise level 2.16 -> 0.00328" on the quick limap-movie: a white-noise estimate
applied to the smooth denoised output, ~25-100x below the true RMS error left (0.40 counts). The error left
is not measurable from the data alone, so the command reports what is: the input's noise σ and the RMS of
what it removed, on the input's grid (also with --upsample).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from ionscope.cli import main
from ionscope.io import load, save
from ionscope.simulate import limap_movie

NUMBER = r"([\d.]+(?:e[+-]?\d+)?)"


def _report(text):
    sigma = float(re.search(rf"noise σ ≈ {NUMBER}", text).group(1))
    removed = float(re.search(rf"removed RMS {NUMBER}", text).group(1))
    return sigma, removed


@pytest.mark.parametrize("seed", [0, 1])
def test_reported_numbers_match_the_truth(tmp_path, capsys, seed):
    noisy, clean = limap_movie(shape=(48, 48), n_frames=8, seed=seed)  # what `simulate limap-movie --quick` writes
    src = save(noisy, tmp_path / "m.nc")
    assert main(["denoise", str(src), "-o", str(tmp_path / "d.nc"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    sigma, removed = _report(text)
    true_noise = float(np.sqrt(((noisy - clean) ** 2).mean()))
    assert sigma == pytest.approx(true_noise, rel=0.1)
    assert removed == pytest.approx(true_noise, rel=0.1)  # it removed about the noise, not the signal
    assert "->" not in text and "not measurable without the truth" in text
    # the reason: the error left is far above what a white-noise estimate of the output reads
    den = load(tmp_path / "d.nc")
    true_left = float(np.sqrt(((den - clean) ** 2).mean()))
    assert 0.05 * true_noise < true_left < 0.5 * true_noise


def test_upsampled_run_reports_on_the_input_grid(tmp_path, capsys):
    noisy, _ = limap_movie(shape=(32, 32), n_frames=4, counts=5.0, seed=1)
    src = save(noisy, tmp_path / "m.nc")
    reports = {}
    for flag in ([], ["--upsample"]):
        assert main(["denoise", str(src), "-o", str(tmp_path / f"d{len(flag)}.nc"), "--no-progress", *flag]) == 0
        reports[bool(flag)] = _report(capsys.readouterr().out)
    assert reports[True] == reports[False]
