# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line: clear one-line errors and non-zero exit codes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ionscope.cli import main


def test_info_real_file(real_file, capsys):
    assert main(["info", str(real_file("EELS_SI.dm4"))]) == 0
    out = capsys.readouterr().out
    assert "('y', 'x', 'energy')" in out and "from 300, step 1 eV" in out


def test_info_log(real_file, capsys):
    assert main(["info", str(real_file("protochips_electrical.csv"))]) == 0
    assert "154 rows" in capsys.readouterr().out


def test_info_missing_file_exits_nonzero(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.dm4")]) == 2
    err = capsys.readouterr().err
    assert "missing.dm4: no such file" in err and "Traceback" not in err


def test_python_m_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ionscope", "info", str(tmp_path / "x.zzz")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "x.zzz: no such file" in out.stderr and "Traceback" not in out.stderr


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "info"):
        assert cmd in out
