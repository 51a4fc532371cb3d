# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope watch``: the demo end to end, and a real config with a timeout."""
from __future__ import annotations

import pytest

from ionscope.cli import main


def test_watch_demo_runs_to_the_final_outputs(tmp_path, capsys):
    code = main(["watch", "--demo", "--quick", "--frames", "3", "--speed", "200", "--port", "0", "--exit-when-done",
                 "--settle", "0.1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "live dashboard: http://127.0.0.1:" in out
    assert out.count("latency") == 3 and "acquisition ended (stop file): 3 frames live, 0 bad" in out
    assert "final batch run: outputs in" in out and (tmp_path / "ionscope-out" / "report.html").is_file()
    assert (tmp_path / "ionscope-out" / "live" / "causal.nc").is_file()


def test_watch_config_ends_on_timeout_without_a_stop_file(tmp_path, capsys):
    from ionscope.simulate import acquire

    acq = acquire(tmp_path, n_frames=2, shape=(16, 24), energy_step=0.5, speed=600.0)
    acq.stop_path.unlink()  # the software never says it is done
    code = main(["watch", str(acq.config_path), "--no-serve", "--no-final", "--timeout", "1", "--settle", "0.1"])
    assert code == 0
    assert "acquisition ended (timeout): 2 frames live" in capsys.readouterr().out
    # --quiet: nothing on stdout but errors (here none)
    code = main(["watch", str(acq.config_path), "--no-serve", "--no-final", "--timeout", "1", "--settle", "0.1",
                 "--quiet", "--out", str(tmp_path / "q")])
    assert code == 0 and capsys.readouterr().out == ""


def test_watch_needs_config_or_demo(capsys):
    assert main(["watch"]) == 2
    assert "give either CONFIG.toml or --demo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["watch", "--window", "x"])
