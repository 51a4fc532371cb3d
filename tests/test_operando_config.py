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
