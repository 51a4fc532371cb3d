# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope denoise`` (``cli/_denoise.py``); the demo step: tests/test_demo_steps.py."""
from __future__ import annotations

import pytest

from ionscope.cli import main
from ionscope.denoise import psnr
from ionscope.io import load, save
from ionscope.simulate import limap_movie


@pytest.fixture(scope="module")
def movie_file(tmp_path_factory):
    noisy, clean = limap_movie(shape=(40, 40), n_frames=6, counts=5.0, seed=7)
    path = tmp_path_factory.mktemp("den") / "movie.zarr"
    save(noisy, path)
    return path, noisy, clean


def test_cli_denoises_and_writes_atomically(movie_file, tmp_path, capsys):
    path, noisy, clean = movie_file
    out = tmp_path / "den.nc"
    assert main(["denoise", str(path), "--out", str(out), "--no-progress"]) == 0
    res = load(out)
    assert res.dims == noisy.dims and res.shape == noisy.shape
    assert psnr(res, clean) > psnr(noisy, clean) + 8
    assert "denoised_by" in res.attrs
    assert "wrote" in capsys.readouterr().out
    # no temporary left behind (the ledger records what ionscope wrote here: the file is ours to replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ionscope.manifest.json", "den.nc"]


def test_cli_lazy_windowed(movie_file, tmp_path, capsys):
    path, noisy, clean = movie_file
    out = tmp_path / "den.zarr"
    args = ["denoise", str(path), "--out", str(out), "--lazy", "--window-t", "4", "--tile", "20", "--no-progress"]
    assert main(args) == 0
    res = load(out)
    assert res.shape == noisy.shape
    assert psnr(res, clean) > psnr(noisy, clean) + 8
    assert "window by window" in capsys.readouterr().out


def test_cli_upsample(movie_file, tmp_path):
    path, noisy, _ = movie_file
    out = tmp_path / "up.zarr"
    assert main(["denoise", str(path), "--out", str(out), "--upsample", "--no-progress"]) == 0
    assert load(out).shape == (6, 80, 80)


def test_cli_errors(movie_file, tmp_path, capsys):
    path, _, _ = movie_file
    assert main(["denoise", str(path), "--out", str(tmp_path / "x.png")]) == 2
    assert "expected a .zarr, .nc or .hspy path" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "x.nc")]) == 2
    assert main(["denoise", str(path), "--out", str(tmp_path / "x.nc"), "--patch", "1"]) == 2
    assert "patch must be an integer >= 2" in capsys.readouterr().err
