# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope limap`` (``cli/_limap.py``): every method on a simulated series, its errors, per-component
non-negativity (the maps equal :func:`ionscope.eels.mlls` called directly)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope import eels
from ionscope.cli import main
from ionscope.io import load, save
from ionscope.simulate import operando_eels


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eels_cli")
    si, truth, _ = operando_eels(shape=(10, 6), n_frames=2, seed=1, layer_nm=10.0)
    save(si, d / "si.nc")
    save(truth.references, d / "refs.nc")
    return d, truth


@pytest.mark.parametrize("method", ["mlls", "sasb", "nmf"])
def test_cli_limap(files, method):
    d, truth = files
    out = d / f"li_{method}.zarr"
    assert main(["limap", str(d / "si.nc"), "--method", method, "--refs", str(d / "refs.nc"),
                 "--out", str(out)]) == 0
    ds = xr.open_zarr(out, consolidated=False)
    name = {"mlls": "Li", "sasb": "li_co", "nmf": "Li"}[method]
    assert name in ds and ds[name].dims == ("time", "y", "x")
    assert (d / f"li_{method}_{name}.png").stat().st_size > 1000
    if method == "mlls":
        np.testing.assert_allclose(ds.Li.values.mean(), truth.weights.sel(component="Li").values.mean(), rtol=0.1)
    assert load(d / "si.nc").sizes["energy"] > 0


def test_cli_limap_errors(files, capsys):
    d, _ = files
    assert main(["limap", str(d / "si.nc"), "--method", "mlls", "--out", str(d / "x.zarr")]) == 2
    assert "--refs is required" in capsys.readouterr().err
    assert main(["limap", str(d / "nope.dm4"), "--refs", str(d / "refs.nc"), "--out", str(d / "x.zarr")]) == 2
    assert "nope.dm4" in capsys.readouterr().err


def test_cli_limap_nonnegative_option(tmp_path, capsys):
    si, truth, _ = operando_eels(shape=(8, 6), n_frames=1, seed=4, dose=20.0)
    save(si, tmp_path / "si.nc")
    save(truth.references, tmp_path / "refs.nc")
    out = tmp_path / "li.zarr"
    assert main(["limap", str(tmp_path / "si.nc"), "--refs", str(tmp_path / "refs.nc"), "--out", str(out),
                 "--nonnegative", "Co"]) == 0
    ds = xr.open_zarr(out, consolidated=False)
    direct = eels.mlls(si, truth.references, fit_range=(float(si.energy[0]), float(si.energy[-1])),
                       nonnegative=["Co"])
    np.testing.assert_allclose(ds.Li.values, direct.Li.values, rtol=1e-10)
    assert main(["limap", str(tmp_path / "si.nc"), "--refs", str(tmp_path / "refs.nc"), "--out", str(out),
                 "--nonnegative", "Mn"]) == 2
    assert "nonnegative: components ['Mn']" in capsys.readouterr().err
