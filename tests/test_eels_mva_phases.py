# SPDX-License-Identifier: GPL-3.0-or-later
"""eels.phase_map's total (Σ of the phase weights) has an honest σ and its own name; `mva --method phases`
writes every share with its σ."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope import eels
from ionscope.simulate import co_l_spectrum_image


@pytest.mark.parametrize("seed", [0, 1])
def test_total_std_has_unit_pull_spread(seed):
    # The LiCoO2 and Co3O4 weights are strongly anti-correlated (similar Co-L shapes): their σ added in
    # quadrature read the σ of the sum 3x too large (pull spread 0.33); the full covariance gives ~1.
    co_l, truth = co_l_spectrum_image(seed=seed)
    pm = eels.phase_map(co_l, truth.spectra, background=True)
    true_total = truth.weights.sum("component")
    pull = ((pm.total - true_total) / pm.total_std).values.ravel()
    assert abs(pull.mean()) < 0.1
    assert 0.9 < pull.std() < 1.1, pull.std()
    assert pm.total.attrs["long_name"].startswith("sum of the phase weights")
    assert "LiCoO2" not in pm.total.attrs.get("long_name", "")
    assert set(pm.total_std.attrs) == {"long_name"}  # not the spectra's acquisition metadata


def test_total_std_stays_lazy_and_matches_in_memory():
    co_l, truth = co_l_spectrum_image(shape=(30, 20), layer_width_nm=10.0, seed=0)
    eager = eels.phase_map(co_l, truth.spectra, background=True)
    lazy = eels.phase_map(co_l.chunk({"y": 5}), truth.spectra, background=True)
    assert lazy.total_std.chunks is not None
    np.testing.assert_allclose(lazy.total_std.values, eager.total_std.values, rtol=1e-10)


def test_cli_mva_phases_writes_shares_with_sigma(tmp_path, monkeypatch, capsys):
    import ionscope.io as iio
    from ionscope.cli import main

    # the command line in this process (relative paths from the folder, as a user types them): two child
    # interpreters cost ~8 s at load 7 and add nothing here (`python -m ionscope` is tested in test_cli.py)
    monkeypatch.chdir(tmp_path)

    def cli(*args):
        assert main([*args]) == 0, capsys.readouterr().err

    cli("simulate", "co-l", "-o", "co_l.nc", "--refs-out", "refs.nc")
    cli("mva", "co_l.nc", "--method", "phases", "--refs", "refs.nc", "-o", "phases.zarr")
    ds = iio.load(tmp_path / "phases.zarr").load()
    for name in ("LiCoO2", "Co3O4", "total"):
        assert f"{name}_std" in ds, sorted(ds.data_vars)
        assert float(ds[f"{name}_std"].median()) > 0
    assert ds.total.attrs["long_name"].startswith("sum of the phase weights")
    assert ds.attrs.get("long_name") is None
    assert not (tmp_path / "phases_total_std.png").exists()  # σ maps are data, not previews
