# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope linescan`` (``cli/_linescan.py``): the layer width from a simulated scan, ideal and realistic
(zero-loss peak, plural scattering; the truth is a 13 nm layer)."""
from __future__ import annotations

import pytest

from ionscope.cli import main
from ionscope.io import save
from ionscope.simulate import tem_eels_linescan


def test_cli_linescan_prints_the_layer_width_and_draws_the_profile(tmp_path, capsys):
    ls, truth = tem_eels_linescan(n_positions=80, seed=1)
    save(ls, tmp_path / "ls.nc")
    save(truth.references, tmp_path / "lsrefs.nc")
    assert main(["linescan", str(tmp_path / "ls.nc"), "--refs", str(tmp_path / "lsrefs.nc"),
                 "--out", str(tmp_path / "p.nc")]) == 0
    assert "layer width" in capsys.readouterr().out
    assert (tmp_path / "p.png").exists()


def test_cli_on_simulated_realistic_linescan(tmp_path, capsys):
    data, refs, prof = tmp_path / "ls.nc", tmp_path / "refs.nc", tmp_path / "prof.nc"
    assert main(["simulate", "linescan", "--physics", "realistic", "-o", str(data), "--refs-out", str(refs)]) == 0
    capsys.readouterr()
    assert main(["linescan", str(data), "--refs", str(refs), "-o", str(prof)]) == 0
    out = capsys.readouterr().out
    width = float(out.split("layer width ")[1].split(" ")[0])
    assert width == pytest.approx(13.0, abs=1.0)
    assert prof.exists() and prof.with_suffix(".png").exists()
    assert main(["linescan", str(data), "-o", str(tmp_path / "p2.nc"), "--plural-scattering", "fourier-log"]) == 0
