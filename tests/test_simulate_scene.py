# SPDX-License-Identifier: GPL-3.0-or-later
"""simulate.Scene: one object for the film simulators' options; keywords keep working, outputs are the same bit
for bit whichever way the options come."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError
from ionscope.simulate import (
    Scene,
    co_l_spectrum_image,
    li_transport,
    limap_movie,
    operando_eels,
    tem_eels_linescan,
)


def _identical(a, b):
    """Every array bit for bit (NaN where NaN), every coordinate, name and attribute."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _identical(x, y)
        return
    xr.testing.assert_identical(a, b)
    for name in (a.variables if isinstance(a, xr.Dataset) else [None]):
        va = a[name] if name is not None else a
        vb = b[name] if name is not None else b
        if va.dtype.kind == "f":
            assert np.array_equal(va.values, vb.values, equal_nan=True), name
            assert va.values.tobytes() == vb.values.tobytes(), name


# (simulator, keywords): each run once with keywords, once with the same values as a Scene
CASES = [
    (operando_eels, dict(shape=(8, 12), n_frames=3, energy_step=0.5, energy_drift_ev=0.5, specimen_drift_px=1.0,
                         seed=3, dose=80.0, pixel_nm=4.0, protocol=(("charge", 2), ("rest", 1)),
                         grain_size_nm=30.0, layer_nm=8.0)),
    (operando_eels, dict(shape=(8, 8), n_frames=2, physics="realistic", energy_step=0.25, dual_eels=True,
                         energy_range=(30.0, 90.0), noise=False, thinning=0.1, layer_nm=5.0)),
    (li_transport, dict(shape=(12, 14), n_frames=5, seed=2, layer_nm=10.0, discharge_inlet="electrolyte",
                        substeps=4, frame_time_s=30.0)),
    (limap_movie, dict(shape=(24, 20), n_frames=4, counts=3.0, seed=1, drift_px=1.0)),
    (tem_eels_linescan, dict(n_positions=50, seed=4, enhancement=0.4, energy_step=0.5)),
    (co_l_spectrum_image, dict(shape=(26, 8), seed=2, layer_width_nm=10.0, dose=100.0)),
]


@pytest.mark.parametrize("func, kw", CASES, ids=[f"{f.__name__}-{i}" for i, (f, _) in enumerate(CASES)])
def test_scene_gives_the_keywords_results_bit_for_bit(func, kw):
    by_keywords = func(**kw)
    _identical(func(scene=Scene(**kw)), by_keywords)
    # a keyword beside a scene overrides its field; the scene's other fields still count
    first, *rest = kw.items()
    partial = Scene(**dict(rest))
    _identical(func(scene=partial, **dict([first])), by_keywords)


def test_one_scene_drives_every_simulator_of_the_film():
    scene = Scene(shape=(12, 12), n_frames=3, seed=5, pixel_nm=4.0, layer_nm=8.0, energy_step=0.5, dose=40.0,
                  counts=4.0, n_positions=40, layer_width_nm=6.0)
    si, truth, log = operando_eels(scene=scene)
    film = li_transport(scene=scene)  # ignores the recording fields (dose, energy_step, ...)
    assert np.array_equal(film.li.values, truth.li.values)
    assert si.attrs["dose"] == 40.0 and si.sizes["time"] == 3
    noisy, clean = limap_movie(scene=scene)
    assert noisy.sizes == {"time": 3, "y": 12, "x": 12} and float(clean.mean()) == pytest.approx(4.0, rel=1e-6)
    data, _ = tem_eels_linescan(scene=scene)
    assert data.sizes["position"] == 40 and data.attrs["dose"] == 40.0


def test_defaults_and_bad_scenes():
    # an empty scene is the simulator's defaults
    _identical(li_transport(scene=Scene(), shape=(10, 10), n_frames=3), li_transport(shape=(10, 10), n_frames=3))
    assert Scene(dose=5.0).replace(seed=2).explicit() == {"seed": 2, "dose": 5.0}
    with pytest.raises(DataValidationError, match="unknown field"):
        Scene().replace(doze=5.0)
    with pytest.raises(DataValidationError, match="scene must be an ionscope.simulate.Scene"):
        operando_eels(scene={"dose": 5.0})
    # a scene's bad value is refused with the keyword's own message
    with pytest.raises(DataValidationError, match="n_frames must be an integer >= 1"):
        li_transport(scene=Scene(n_frames=0))
