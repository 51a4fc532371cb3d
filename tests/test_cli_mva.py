# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope mva`` (``cli/_mva.py``) on a simulated line scan."""
from __future__ import annotations

import xarray as xr

from ionscope.cli import main
from ionscope.io import save
from ionscope.simulate import tem_eels_linescan


def test_cli_mva_pca_on_a_simulated_linescan(tmp_path):
    ls, _ = tem_eels_linescan(n_positions=80, seed=1)
    save(ls, tmp_path / "ls.nc")
    assert main(["mva", str(tmp_path / "ls.nc"), "--method", "pca", "--out", str(tmp_path / "pca.zarr")]) == 0
    assert xr.open_zarr(tmp_path / "pca.zarr", consolidated=False).sizes
