# SPDX-License-Identifier: GPL-3.0-or-later
"""``--overwrite`` replaces the paths typed on the command line, never a user's file the command names itself.

Found (s28seams): ``ionscope simulate operando -o s.zarr --overwrite`` replaced the user's own ``s_log.csv``
(the frame log it writes beside ``s.zarr``), and ``ionscope limap ... --out li.zarr --overwrite`` the user's
``li_Li.png`` (a preview it writes beside the maps) — the flag's help says it replaces OUT. Now such a file
is refused in one line before any work; OUT and ``--refs-out`` are replaced as asked.
"""
from __future__ import annotations

import pytest

from ionscope.cli import main


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_overwrite_never_replaces_a_file_written_beside_out(tmp_path, capsys):
    (tmp_path / "s_log.csv").write_text("my own log")
    (tmp_path / "refs.nc").write_text("my refs")
    args = ["simulate", "operando", "--quick", "-o", str(tmp_path / "s.zarr"), "--refs-out",
            str(tmp_path / "refs.nc"), "-q", "--overwrite"]
    assert main(args) == 2
    _one_line(capsys, "s_log.csv", "beside its output", "--overwrite replaces only")
    assert (tmp_path / "s_log.csv").read_text() == "my own log"
    assert (tmp_path / "refs.nc").read_text() == "my refs"


def test_overwrite_still_replaces_the_typed_paths(tmp_path):
    (tmp_path / "si.nc").write_text("mine")
    (tmp_path / "refs.nc").write_text("my refs")
    assert main(["simulate", "co-l", "--quick", "-o", str(tmp_path / "si.nc"), "--refs-out",
                 str(tmp_path / "refs.nc"), "-q", "--overwrite"]) == 0
    assert (tmp_path / "si.nc").read_bytes()[:4] != b"mine" and (tmp_path / "refs.nc").read_bytes()[:4] != b"my r"


@pytest.mark.parametrize("flag", [[], ["--overwrite"]])
def test_limap_preview_over_a_users_png(tmp_path, capsys, flag):
    assert main(["simulate", "co-l", "--quick", "-o", str(tmp_path / "si.nc"), "--refs-out",
                 str(tmp_path / "refs.nc"), "-q"]) == 0
    (tmp_path / "li_LiCoO2.png").write_text("my figure")
    args = ["limap", str(tmp_path / "si.nc"), "--refs", str(tmp_path / "refs.nc"), "--out",
            str(tmp_path / "li.zarr"), "--fit-range", "770", "800", "-q", *flag]
    code = main(args)
    capsys.readouterr()
    assert (tmp_path / "li_LiCoO2.png").read_text() == "my figure"
    assert code == 2 and not (tmp_path / "li.zarr").exists()
