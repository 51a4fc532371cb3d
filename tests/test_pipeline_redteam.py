# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 17, red team second pass: plausibility gaps of the run (``ionscope.pipeline``).

* a series whose ``energy`` coordinate is descending was refused by a misleading
  ``[limap] fit_range`` message (or, with a wide window, could pair channels with the
  wrong energies): now one line naming the file and the ``energy`` coordinate;
* a hologram night had no ``on_bad_frame = "error"`` (the EELS night has it): now
  ``[holography] on_bad_frame`` = "skip" | "error", the same vocabulary.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.cli import main


def _toml(path, root, out, *, series="series.zarr"):
    path.write_text(f'[input]\nseries = "{root / series}"\nlog = "{root / "log.csv"}"\nframe_interval_s = 60.0\n'
                    f'[output]\ndir = "{out}"\n[register]\nwindow_ev = [30.0, 50.0]\n[denoise]\nmethod = "gaussian"\n'
                    f'[report]\nmovies = []\nviewer = false\nfigures = false\n')
    return path


@pytest.fixture(scope="module")
def eels(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    root = tmp_path_factory.mktemp("eels")
    si, _, log = operando_eels(shape=(12, 16), n_frames=5, energy_step=0.5, dose=400.0, seed=5)
    iio.save(si.isel(energy=slice(None, None, -1)).chunk({"time": 1}), root / "descending.zarr")
    e = si.energy.values.copy()
    e[40], e[41] = e[41], e[40]  # two channels swapped: not increasing at one place
    iio.save(si.assign_coords(energy=e).chunk({"time": 1}), root / "swapped.zarr")
    log.to_dataframe().to_csv(root / "log.csv", float_format="%.9g")
    return root


@pytest.mark.parametrize("series, expected", [
    ("descending.zarr", r"coordinate 'energy' is descending \(131.5 → 30 eV\)"),
    ("swapped.zarr", r"coordinate 'energy' is not increasing at channel 41 "),
])
def test_energy_axis_not_increasing_is_refused_naming_file_and_field(eels, tmp_path, capsys, series, expected):
    import re

    out = tmp_path / "out"
    code = main(["run", str(_toml(tmp_path / "run.toml", eels, out, series=series)), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert str(eels / series) in err and re.search(expected, err), err
    assert "fit_range" not in err  # (the misleading message of before)
    assert not out.exists()  # refused before the output folder is made


def test_energy_axis_refused_for_an_in_memory_series(eels, tmp_path):
    import ionscope.io as iio
    from ionscope.errors import DataValidationError
    from ionscope.pipeline import run

    si = iio.load(eels / "descending.zarr")
    cfg = {"input": {"log": str(eels / "log.csv"), "frame_interval_s": 60.0}, "output": {"dir": str(tmp_path / "o")},
           "register": {"window_ev": [30.0, 50.0]}, "denoise": {"method": "gaussian"},
           "report": {"movies": [], "viewer": False, "figures": False}}
    with pytest.raises(DataValidationError, match=r"^series: coordinate 'energy' is descending"):
        run(cfg, series=si)


# --------------------------------------------------------------------------- holography on_bad_frame


@pytest.fixture(scope="module")
def holo_night(tmp_path_factory):
    import ionscope.io as iio
    from ionscope.simulate import biased_holograms

    root = tmp_path_factory.mktemp("holo")
    holos, refs, log, _ = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    h = holos.copy(deep=True)
    h.values[6] = 0.0  # a biased time point with no signal
    iio.save(h, root / "h.zarr")
    iio.save(refs, root / "r.zarr")
    log.to_dataframe().to_csv(root / "bias.csv", float_format="%.9g")
    return root


def _holo_toml(root, tmp_path, **extra):
    lines = [f'holograms = "{root / "h.zarr"}"', f'references = "{root / "r.zarr"}"', f'log = "{root / "bias.csv"}"',
             "thickness_nm = 60.0", f'output = "{tmp_path / "out"}"'] + [f"{k} = {json.dumps(v)}"
                                                                        for k, v in extra.items()]
    p = tmp_path / "h.toml"
    p.write_text("[holography]\n" + "\n".join(lines) + "\n")
    return p


def test_holography_on_bad_frame_error_names_the_time_point(holo_night, tmp_path, capsys):
    code = main(["run", str(_holo_toml(holo_night, tmp_path, on_bad_frame="error")), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert str(holo_night / "h.zarr") in err and "time index 6 (t = 60 s): all pixels are zero" in err, err
    assert 'on_bad_frame = "skip"' in err
    assert not (tmp_path / "out" / "summary.json").exists()  # no result published
    # the default ("skip") lists the time point and finishes (the series stage is reused, not redone)
    assert main(["run", str(_holo_toml(holo_night, tmp_path)), "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(b["time_index"], b["skipped"]) for b in summary["bad_frames"]] == [(6, True)]


@pytest.mark.parametrize("value", ["stop", True, 1])
def test_holography_on_bad_frame_refuses_other_values(tmp_path, value):
    from ionscope.errors import ConfigError
    from ionscope.operando import run_holography

    with pytest.raises(ConfigError, match=r'^config \[holography\] on_bad_frame: expected "skip" or "error", got '):
        run_holography({"holography": {"thickness_nm": 60.0, "on_bad_frame": value}}, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_holography_on_bad_frame_default_is_skip():
    from ionscope.pipeline._holo_config import holography_section

    assert holography_section({"thickness_nm": 60.0})["on_bad_frame"] == "skip"
    assert holography_section({"thickness_nm": 60.0, "on_bad_frame": "error"})["on_bad_frame"] == "error"


@pytest.mark.parametrize("k", [0, 2])  # (the first frame: before, the whole watch stopped without a file name)
def test_live_watch_refuses_a_frame_with_a_descending_energy_axis(tmp_path, k):
    import ionscope.io as iio
    from ionscope.operando import load_config, watch
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", n_frames=4, shape=(16, 24), energy_step=0.5, speed=600.0)
    bad = acq.frames_dir / f"frame_{k:04d}.nc"
    da = iio.load(bad).load()
    bad.unlink()
    iio.save(da.isel(energy=slice(None, None, -1)), bad)  # the same spectra, stored with a descending axis
    cfg = load_config(acq.config_path).replace(
        denoise={"method": "gaussian"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [30.0, 50.0]}, output={"dir": str(tmp_path / "out")})
    res = watch(cfg, serve=False, settle_s=0.1, poll_s=0.03, late_s=0.3, final=False)
    reasons = {b["frame"]: b["reason"] for b in res.bad_frames}
    assert sorted(reasons) == [k], reasons
    assert "coordinate 'energy' is not strictly increasing" in reasons[k]
    assert [r["frame"] for r in res.frames] == [i for i in range(4) if i != k]
