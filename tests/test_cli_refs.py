# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope refs regions`` (``cli/_refs.py``) then ``ionscope limap`` through the zero-loss peak: measured
references from two regions of known x give x within 0.03 of the simulator's truth."""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.simulate import operando_eels


@pytest.fixture(scope="module")
def clean():
    # noise-free, no chemical shift (as in tests/test_eels_physics.py)
    return operando_eels(shape=(24, 32), n_frames=2, physics="realistic", noise=False, seed=3,
                         li_chemical_shift_ev=0.0)


def test_cli_refs_regions_then_limap_through_the_zero_loss_peak(tmp_path, clean):
    import ionscope.io as iio
    from ionscope.cli import main

    si, truth, _ = clean
    iio.save(si.isel(time=0), tmp_path / "frame.zarr")
    x0 = truth.x_li.isel(time=0)
    rows_rich = np.flatnonzero((x0 > 0.9).all("x").values)
    rows_poor = np.flatnonzero((x0 < 0.75).all("x").values)
    assert rows_rich.size >= 3 and rows_poor.size >= 3
    rich = f"rich={rows_rich[0]}:{rows_rich[-1] + 1},0:{si.sizes['x']}"
    poor = f"poor={rows_poor[0]}:{rows_poor[-1] + 1},0:{si.sizes['x']}"
    xr_ = float(x0.isel(y=slice(rows_rich[0], rows_rich[-1] + 1)).mean())
    xp = float(x0.isel(y=slice(rows_poor[0], rows_poor[-1] + 1)).mean())
    assert main(["refs", "regions", str(tmp_path / "frame.zarr"), "--region", rich, "--region", poor,
                 "--composition", f"rich:Li={xr_},Co=1", "--composition", f"poor:Li={xp},Co=1",
                 "--fit-range", "45", "85", "-q", "-o", str(tmp_path / "refs.nc")]) == 0
    k_true = truth.attrs["k_li_co"]
    assert main(["limap", str(tmp_path / "frame.zarr"), "--refs", str(tmp_path / "refs.nc"), "-q", "--no-progress",
                 "--calibration-k", "1.0", "-o", str(tmp_path / "maps.zarr")]) == 0
    maps = iio.load(tmp_path / "maps.zarr")
    assert "thickness" in maps and "li_fraction" in maps
    # measured references carry their own k: calibrate the CLI's x on the rich rows
    ratio = maps.Li / maps.Co
    k = float(ratio.isel(y=slice(rows_rich[0], rows_rich[-1] + 1)).mean()) / xr_
    x = ratio / k
    err = (x - truth.x_li.isel(time=0)).where(truth.co > 0.5)
    assert abs(float(err.mean())) < 0.03
    assert k_true > 0
