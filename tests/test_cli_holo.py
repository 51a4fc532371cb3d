# SPDX-License-Identifier: GPL-3.0-or-later
"""Holography CLI (`ionscope holo ...`, ``cli/_holo.py``) on small simulated files; the demo step: tests/test_demo_steps.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.cli import main
from ionscope.io import load, save
from ionscope.simulate import hologram, phase_shifting_series


@pytest.fixture
def holo_files(tmp_path):
    h, r, truth = hologram(shape=(128, 128), mip_v=(15.0, 15.0), dose=800, seed=2)
    save(h, tmp_path / "h.nc")
    save(r, tmp_path / "r.nc")
    return tmp_path, truth


def test_cli_reconstruct_and_profile(holo_files, capsys):
    d, truth = holo_files
    assert main(["holo", "reconstruct", str(d / "h.nc"), "--reference", str(d / "r.nc"), "--full-size",
                 "-o", str(d / "wave.nc")]) == 0
    out = capsys.readouterr().out
    assert "carrier (qy, qx)" in out and (d / "wave.nc").exists()
    qy, qx = (float(v) for v in out.split("= (")[1].split(")")[0].split(","))
    assert qy == pytest.approx(0.1, abs=0.001) and qx == pytest.approx(0.22, abs=0.001)
    wave = load(d / "wave.nc")
    assert np.iscomplexobj(wave.values) and wave.shape == (128, 128)
    x1 = truth.attrs["interface_x_nm"][0]
    assert main(["holo", "profile", str(d / "wave.nc"), "--start", "58", str(x1 - 10), "--end", "58",
                 str(x1 + 10), "--width", "8"]) == 0
    fit = json.loads(capsys.readouterr().out)
    # full thickness (60 nm) at y = 58 nm: a phase step C_E·t·ΔV = 7.288e-3 · 60 · 1.3 rad
    assert fit["step"] == pytest.approx(7.288e-3 * 60 * 1.3, rel=0.1)


def test_cli_phase_shift(tmp_path, capsys):
    h, r, truth = phase_shifting_series(n=4, shape=(64, 64), seed=1)
    save(h, tmp_path / "s.nc")
    save(r, tmp_path / "rs.nc")
    assert main(["holo", "phase-shift", str(tmp_path / "s.nc"), "--references", str(tmp_path / "rs.nc"),
                 "--no-register", "-o", str(tmp_path / "ps.nc")]) == 0
    out = capsys.readouterr().out
    assert out.count("frame ") == 4 and "±" in out and "drift (y, x) (+0.00, +0.00) px" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    noise = np.random.default_rng(0).poisson(20, (64, 64)).astype(np.float32)
    from ionscope.data import calibrated

    save(calibrated(noise, ("y", "x")), tmp_path / "n.nc")
    assert main(["holo", "reconstruct", str(tmp_path / "n.nc"), "-o", str(tmp_path / "w.nc")]) == 2
    err = capsys.readouterr().err
    assert "no fringes" in err and "Traceback" not in err
    assert not (tmp_path / "w.nc").exists()
