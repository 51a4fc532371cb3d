# SPDX-License-Identifier: GPL-3.0-or-later
"""Run configuration: TOML parsing and validation messages."""
from __future__ import annotations

import pytest

from ionscope.errors import DataValidationError, FileFormatError
from ionscope.operando import from_dict, load_config


def test_defaults_and_paths_resolve_against_the_toml_folder(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('[input]\nseries = "frames"\nlog = "log.csv"\n[denoise]\nmethod = "none"\n'
                 '[compute]\nscheduler = "tcp://10.0.0.1:8786"\n')
    cfg = load_config(p)
    assert cfg.denoise.method == "none"
    assert cfg.path(cfg.input.series) == tmp_path / "frames"
    assert cfg.cache_path == tmp_path / "ionscope-run" / "cache.zarr"
    assert cfg.compute.scheduler.startswith("tcp://")
    assert cfg.limap.fit_range == (45.0, 80.0)


@pytest.mark.parametrize("raw, match", [
    ({"inptu": {}}, r"unknown section \[inptu\]"),
    ({"input": {"serie": "x"}}, r"\[input\]: unknown key 'serie'"),
    ({"denoise": {"method": "bm3d"}}, r"\[denoise\] method: expected one of"),
    ({"compute": {"frames_per_batch": 0}}, r"\[compute\] frames_per_batch: expected an integer >= 1"),
    ({"compute": {"frames_per_batch": 2.5}}, r"frames_per_batch: expected an integer"),
    ({"register": {"enabled": "yes"}}, r"\[register\] enabled: expected true or false"),
    ({"limap": {"fit_range": [80, 45]}}, r"\[limap\] fit_range: expected \[low_eV, high_eV\]"),
    ({"report": {"movies": ["avi"]}}, r"\[report\] movies"),
    ({"compute": {"scheduler": "slurm"}}, r"\[compute\] scheduler: expected 'threads'"),
    ({"input": {"frame_interval_s": -1}}, r"frame_interval_s: expected > 0"),
])
def test_bad_values_name_section_and_key(raw, match):
    with pytest.raises(DataValidationError, match=match):
        from_dict(raw)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[input\nseries = 1\n")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        load_config(p)
    p.write_text('[denoise]\nmethod = 3\n')
    with pytest.raises(DataValidationError, match=r"bad.toml: config \[denoise\] method: expected a string"):
        load_config(p)


def test_replace_changes_one_section_and_revalidates():
    cfg = from_dict({"denoise": {"method": "gaussian"}})
    new = cfg.replace(denoise={"method": "none"})
    assert new.denoise.method == "none" and cfg.denoise.method == "gaussian"
    assert new.limap == cfg.limap
    with pytest.raises(DataValidationError, match="unknown section"):
        cfg.replace(nonsense={})


@pytest.mark.parametrize("raw, match", [
    ({"limap": {"options": {"max_itr": 3}}}, r"\[limap\] options: unknown option 'max_itr' for method 'mlls'"),
    ({"limap": {"options": {"max_iter": "many"}}}, r"\[limap\] options: max_iter = 'many' has the wrong type"),
    ({"limap": {"options": {"fit_range": [1, 2]}}}, r"unknown option 'fit_range'"),  # set by [limap] itself
    ({"limap": {"method": "nmf"}}, r"method 'nmf' needs \['n_components'\]"),
    ({"denoise": {"options": {"n_atom": 3}}}, r"\[denoise\] options: unknown option 'n_atom'"),
    ({"denoise": {"options": {"n_atoms": 10**9}}}, r"n_atoms = 1000000000 is too large"),
    ({"denoise": {"method": "gaussian", "options": {"sigma": "wide"}}}, r"sigma = 'wide' has the wrong type"),
    ({"denoise": {"method": "none", "options": {"sigma": 1}}}, r"unknown option 'sigma' for method 'none'"),
    ({"energy_drift": {"options": {"max_shift": 3}}}, r"\[energy_drift\] options: unknown option 'max_shift'"),
    ({"register": {"upsample_factor": 100000000}}, r"\[register\] upsample_factor: expected an integer <= 1000"),
    ({"input": {"min_good_fraction": 1.5}}, r"min_good_fraction: expected a fraction"),
    ({"input": {"log_missing": "guess"}}, r"\[input\] log_missing: expected one of"),
    ({"sync": {"capacity_c": float("nan")}}, r"\[sync\] capacity_c: expected a finite number"),
])
def test_option_tables_and_sizes_are_checked_up_front(raw, match):
    from ionscope.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        from_dict(raw)


def test_valid_option_tables_pass():
    cfg = from_dict({"limap": {"options": {"max_iter": 10, "tol": 1e-5, "nonnegative": False}},
                     "denoise": {"options": {"n_atoms": 64, "sigma": 0.1}},
                     "energy_drift": {"options": {"method": "zlp", "window": [-5, 5], "target": 0.0}}})
    assert cfg.limap.options["max_iter"] == 10
