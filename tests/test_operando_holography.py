# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography-under-bias stage table: files in, movie + curves + summary out, cached and resumable."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ionscope.errors import ConfigError
from ionscope.operando._holography import STAGES, run_holography
from ionscope.simulate import biased_holograms

PROGRAMME = [("rest", 30), ("hold", 1.5, 150), ("hold", -1.5, 150)]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A simulated night on disk: holograms and references (Zarr), bias log (CSV), thickness map, config."""
    from ionscope.io import save

    d = tmp_path_factory.mktemp("night")
    holos, refs, log, truth = biased_holograms(programme=PROGRAMME, shape=(256, 256), pixel_nm=1.0, dose=1000.0,
                                               seed=2, out=d / "holos.zarr")
    save(refs, d / "refs.zarr")
    save(truth["thickness_nm"], d / "thickness.nc")
    log.to_dataframe().reset_index().rename(columns={"time": "time (s)", "voltage": "voltage (V)",
                                                    "current": "current (A)"}).to_csv(d / "bias.csv", index=False)
    (d / "run.toml").write_text(
        '[holography]\nholograms = "holos.zarr"\nreferences = "refs.zarr"\nlog = "bias.csv"\n'
        'thickness_nm = "thickness.nc"\noutput = "out"\nmethod = "fourier"\n')
    return d, truth


def test_run_produces_movie_curves_and_summary(night):
    d, truth = night
    res = run_holography(d / "run.toml")
    out = d / "out"
    assert res.output == out and set(res.records) == set(STAGES)
    for f in ("summary.json", "figures/holo_steps.png", "figures/holo_potential.png", "potential_movie.gif",
              "curves.csv"):
        assert (out / f).stat().st_size > 0, f
    assert not (out / ".holo_maps.zarr").exists()
    s = json.loads((out / "summary.json").read_text())
    assert s["n_time_points"] == truth.sizes["time"] and s["method"] == "fourier"
    # the movie is in the cache, (time, y, x), in V
    assert res.series["potential"].dims == ("time", "y", "x") and res.series["potential"].attrs["units"] == "V"
    # asymmetry recovered (simulator: 0.3, positive side larger) with its σ
    a = s["asymmetry"]["all"]
    assert abs(a["asymmetry"] - 0.3) < 3 * a["asymmetry_std"] + 0.05
    assert a["step_positive_v"] > a["step_negative_v"]
    # relaxation: three steps (0 → +1.5, +1.5 → −1.5) × two interfaces; τ = 40 s within 3.5σ or 30 %
    taus = [(r["tau_s"], r["tau_s_std"]) for r in s["relaxation"] if r["tau_s"] is not None]
    assert len(taus) >= 3
    for tau, sd in taus:
        assert abs(tau - 40.0) < max(3.5 * sd, 12.0)
    # ΔV per frame vs truth (the curves the report plots)
    err = res.series["step_v"].values - truth["step_v"].values
    assert np.sqrt(np.mean(err ** 2)) < 0.1


def test_rerun_is_cached_and_a_changed_option_redoes_the_series(night):
    d, _ = night
    again = run_holography(d / "run.toml")
    assert all(r.cached for r in again.records.values())
    import tomllib

    cfg = tomllib.loads((d / "run.toml").read_text())
    cfg["holography"]["window_nm"] = 20.0
    cfg["holography"] = {k: (str(d / v) if k in ("holograms", "references", "log", "thickness_nm") else v)
                         for k, v in cfg["holography"].items()}
    changed = run_holography(cfg, output=d / "out")
    assert not changed.records["holo_series"].cached and not changed.records["holo_report"].cached
    assert changed.series.attrs["window_nm"] == 20.0


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no \\[holography\\]"):
        run_holography({"input": {}})
    with pytest.raises(ConfigError, match="unknown option"):
        run_holography({"holography": {"thickness_nm": 60, "colour": "red"}})
    with pytest.raises(ConfigError, match="thickness_nm"):
        run_holography({"holography": {"holograms": "x.zarr"}})
    with pytest.raises(ConfigError, match="does not exist"):
        run_holography({"holography": {"holograms": str(tmp_path / "missing.zarr"), "thickness_nm": 60}},
                       output=tmp_path / "o")
    with pytest.raises(ConfigError, match="method"):
        run_holography({"holography": {"thickness_nm": 60, "method": "holospy"}})


def test_ionscope_run_routes_a_holography_config(night, tmp_path, capsys):
    from ionscope.cli import main

    d, _ = night
    assert main(["run", str(d / "run.toml"), "--no-progress", "-o", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "asymmetry" in out and (tmp_path / "cli" / "summary.json").exists()
    # one run per folder, as for the EELS pipeline
    from ionscope.operando._lock import folder_lock

    with folder_lock(tmp_path / "cli"):
        assert main(["run", str(d / "run.toml"), "--no-progress", "-o", str(tmp_path / "cli")]) != 0
    err = capsys.readouterr().err
    assert "in use by" in err and "Traceback" not in err
