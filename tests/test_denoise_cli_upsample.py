# SPDX-License-Identifier: GPL-3.0-or-later
"""``denoise --upsample`` reports the residual noise where it is measured: on the input's grid (the issue: a 2×
bicubic grid read ~10× too low, because interpolation is not white noise)."""
from __future__ import annotations

import re

from ionscope.cli import main
from ionscope.io import save
from ionscope.simulate import limap_movie


def test_upsampled_run_reports_the_same_residual_noise(tmp_path, capsys):
    noisy, _ = limap_movie(shape=(32, 32), n_frames=4, counts=5.0, seed=1)
    src = save(noisy, tmp_path / "m.nc")
    levels = {}
    for flag in ([], ["--upsample"]):
        assert main(["denoise", str(src), "-o", str(tmp_path / f"d{len(flag)}.nc"), "--no-progress", *flag]) == 0
        text = capsys.readouterr().out
        levels[bool(flag)] = float(re.search(r"noise level [\d.e+-]+ -> ([\d.e+-]+)", text).group(1))
        if flag:
            assert "before the bicubic 2x upsampling" in text
    assert levels[True] == levels[False]
