# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope run``: the demo, a config file, resuming, and error messages."""
from __future__ import annotations

import json


from ionscope.cli import main


def test_run_demo_then_rerun_from_its_config(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["run", "--demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "through-film fraction" in text and "report.html" in text
    for name in ("report.html", "viewer.html", "movie.mp4", "movie.gif", "summary.json", "figures/charge_curve.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == 8 and 0 < summary["through_fraction"] <= 1
    # the same config again: every stage comes from the cache
    assert main(["run", str(out / "run.toml"), "--no-progress"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.split() and l.split()[0] in
             ("energy_drift", "register", "limap", "denoise", "sync", "analysis", "report")]
    assert len(lines) == 7 and all(l.split()[1] == "cached" for l in lines)


def test_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert main(["run"]) == 2
    assert "give either CONFIG.toml or --demo" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "none.toml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\nseries = "nowhere"\n')
    assert main(["run", str(bad)]) == 2
    assert "no such series" in capsys.readouterr().err
    assert main(["run", str(bad), "--scheduler", "pbs"]) == 2
    assert "[compute] scheduler" in capsys.readouterr().err
