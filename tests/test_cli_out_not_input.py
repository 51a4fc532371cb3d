# SPDX-License-Identifier: GPL-3.0-or-later
"""An output path never replaces what the same command reads or writes (issue "Never lose").

A store that ionscope wrote (``simulate``, ``convert``) is "ours" to replace, so before this check
``ionscope refs regions night.zarr -o night.zarr`` replaced the night by its references and
``simulate -o s.zarr --refs-out s.zarr`` kept only the references, both with exit status 0.
"""
import hashlib

import pytest

from ionscope.cli import main


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    d = tmp_path_factory.mktemp("night")
    assert main(["simulate", "operando", "--quick", "-q", "-o", str(d / "si.zarr")]) == 0
    return d


@pytest.mark.parametrize("argv, said", [
    (["refs", "regions", "{si}", "--region-px", "a=0:4,0:4", "--region-px", "b=4:8,0:4", "--composition",
      "a:Li=1,Co=1", "--composition", "b:Li=0.5,Co=1", "--fit-range", "45", "85", "-o", "{si}"], "is the input"),
    (["refs", "regions", "{si}", "--region-px", "a=0:4,0:4", "--region-px", "b=4:8,0:4", "--composition",
      "a:Li=1,Co=1", "--composition", "b:Li=0.5,Co=1", "--fit-range", "45", "85", "-o", "{si}", "--overwrite"],
     "is the input"),
    (["convert", "{si}", "{si}"], "is the input"),
    (["denoise", "{si}", "-o", "{si}/inner.zarr"], "is inside the input"),
])
def test_an_output_onto_the_input_is_refused_and_the_input_is_unchanged(night, capsys, argv, said):
    si = night / "si.zarr"
    before = _digest(si)
    argv = [a.replace("{si}", str(si)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and str(si) in err and "nothing was changed" in err
    assert _digest(si) == before
    assert not (si / "inner.zarr").exists()


def test_two_outputs_of_one_command_are_never_the_same_path(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert main(["simulate", "operando", "--quick", "-q", "-o", str(out), "--refs-out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and not out.exists()
    log = tmp_path / "s_log.csv"
    assert main(["simulate", "operando", "--quick", "-q", "-o", str(out), "--refs-out", str(log)]) == 2
    assert "frame log" in capsys.readouterr().err and not out.exists() and not log.exists()
    # distinct paths still work, and write both
    assert main(["simulate", "operando", "--quick", "-q", "-o", str(out), "--refs-out", str(tmp_path / "r.nc")]) == 0
    assert out.exists() and (tmp_path / "r.nc").exists() and log.exists()
