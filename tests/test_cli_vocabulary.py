# SPDX-License-Identifier: GPL-3.0-or-later
"""One vocabulary across the commands: the same option name means the same thing with the same unit,
units are in the names where a quantity could be read two ways, ``--var`` wherever a store is read,
``--refs`` only for reference spectra (``--vacuum`` for holograms), old spellings still work with a
warning, and ``--debug`` keeps the exit status."""
from __future__ import annotations

import argparse
import json

import pytest

from ionscope.cli import build_parser, main


def _commands():
    """(name, parser) of every command and sub-command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        children = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
        yield name, sp
        for action in children:
            for child, sp2 in action.choices.items():
                yield f"{name} {child}", sp2


def _visible(sp):
    return {o: a for a in sp._actions for o in a.option_strings if a.help != argparse.SUPPRESS}


def _hidden(sp):
    return {o: a for a in sp._actions for o in a.option_strings if a.help == argparse.SUPPRESS}


#: commands that read a data store or frame files (so pick a variable with --var)
READERS = {"info", "convert", "limap", "denoise", "linescan", "mva", "refs", "refs regions", "holo reconstruct",
           "holo phase-shift", "holo profile", "watch", "run"}


def test_var_wherever_a_store_is_read():
    commands = dict(_commands())
    for name in READERS:
        assert "--var" in _visible(commands[name]), f"ionscope {name} has no --var"


def test_refs_means_reference_spectra_and_vacuum_means_holograms():
    for name, sp in _commands():
        visible = _visible(sp)
        if name.startswith("holo "):
            assert "--refs" not in visible, f"ionscope {name}: --refs is for spectra; holograms use --vacuum"
            if name in ("holo reconstruct", "holo phase-shift"):
                assert "--vacuum" in visible and "--refs" in _hidden(sp)  # the old spelling still parses
        elif "--refs" in visible:
            assert "spectra" in visible["--refs"].help or "(component, energy)" in visible["--refs"].help, name


def test_units_are_in_the_names():
    """No visible option whose unit could be read two ways goes without a unit suffix."""
    ambiguous = ("--window", "--region", "--start", "--end", "--width", "--ramp-box", "--pre-edge")
    for name, sp in _commands():
        for opt in _visible(sp):
            assert opt not in ambiguous, f"ionscope {name} {opt}: say the unit (-ev, -frames, -nm, -px)"
        for opt in _visible(sp):
            if opt.startswith("--window"):
                assert opt in ("--window-ev", "--window-frames", "--window-nm"), (name, opt)


@pytest.mark.parametrize("argv,dest,value,old", [
    (["linescan", "a.nc", "-o", "p.nc", "--window-ev", "50", "70"], "window", [50.0, 70.0], None),
    (["linescan", "a.nc", "-o", "p.nc", "--window", "50", "70"], "window", [50.0, 70.0], "--window"),
    (["linescan", "a.nc", "-o", "p.nc", "--pre-edge", "30", "45"], "pre_edge", [30.0, 45.0], "--pre-edge"),
    (["denoise", "a.zarr", "-o", "b.zarr", "--window-frames", "4"], "window_t", 4, None),
    (["denoise", "a.zarr", "-o", "b.zarr", "--window-t", "4"], "window_t", 4, "--window-t"),
    (["watch", "c.toml", "--window-frames", "3"], "window", 3, None),
    (["watch", "c.toml", "--window", "3"], "window", 3, "--window"),
    (["refs", "regions", "s.zarr", "-o", "r.nc", "--region-px", "a=0:2,0:2", "--region", "b=2:4,0:2",
      "--composition", "a:Li=1", "--fit-range", "45", "85"], "region", ["a=0:2,0:2", "b=2:4,0:2"], "--region"),
    (["holo", "reconstruct", "h.hdf5", "-o", "w.nc", "--vacuum", "r.hdf5"], "vacuum", "r.hdf5", None),
    (["holo", "reconstruct", "h.hdf5", "-o", "w.nc", "--refs", "r.hdf5"], "vacuum", "r.hdf5", "--refs"),
    (["holo", "phase-shift", "h.zarr", "-o", "w.nc", "--references", "r.zarr"], "vacuum", "r.zarr", "--references"),
    (["holo", "profile", "w.nc", "--start", "1", "2", "--end-nm", "3", "4"], "start", [1.0, 2.0], "--start"),
    (["holo", "profile", "w.nc", "--start-px", "1", "2", "--end-px", "3", "4", "--ramp-box", "0", "0", "5", "5"],
     "ramp_box", [0.0, 0.0, 5.0, 5.0], "--ramp-box"),
])
def test_new_and_old_spellings(argv, dest, value, old, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    if old:
        assert f"{old} is deprecated; use" in err
    else:
        assert "deprecated" not in err


def test_debug_keeps_the_exit_status(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.dm4"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("ionscope info: error:")
    assert main(["info", str(tmp_path / "nope.dm4")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_holo_profile_in_pixels_and_in_nm_agree(tmp_path, capsys):
    from ionscope.holography import reconstruct, unwrap_phase
    from ionscope.io import save
    from ionscope.simulate import hologram

    holo, ref, _ = hologram(shape=(128, 128), seed=0)
    phase = unwrap_phase(reconstruct(holo, ref, full_size=True))
    save(phase, tmp_path / "phase.nc")
    y, x = phase.y.values, phase.x.values
    step = float(x[1] - x[0])
    nm = ["holo", "profile", str(tmp_path / "phase.nc"), "--start-nm", str(y[64]), str(x[10]),
          "--end-nm", str(y[64]), str(x[117]), "--width-nm", str(3 * step)]
    px = ["holo", "profile", str(tmp_path / "phase.nc"), "--start-px", "64", "10", "--end-px", "64", "117",
          "--width-px", "3"]
    assert main(nm) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(px) == 0
    b = json.loads(capsys.readouterr().out)
    for k in ("step", "width", "center"):
        assert a[k] == pytest.approx(b[k], rel=1e-9), k
    assert b["given"]["start"] == "--start-px 64 10"
    assert main([*px[:3], "--start-px", "64", "10", "--start-nm", "1", "1", "--end-px", "64", "117"]) == 2
    assert "give the line start once" in capsys.readouterr().err


def test_linescan_help_names_the_li_variables_and_units(capsys):
    with pytest.raises(SystemExit):
        main(["linescan", "--help"])
    out = capsys.readouterr().out
    assert "Li, Li_std" in " ".join(out.split()) and "--window-ev" in out and "--window " not in out


def test_run_and_watch_read_the_variable_named_by_var(tmp_path):
    import xarray as xr

    from ionscope.errors import FileFormatError
    from ionscope.io import save
    from ionscope.operando import from_dict, read_series
    from ionscope.simulate import operando_eels

    si, _, _ = operando_eels(shape=(8, 8), n_frames=2, energy_step=0.5)
    save(xr.Dataset({"counts": si, "other": si * 0}), tmp_path / "two.zarr")
    assert read_series(tmp_path / "two.zarr", var="counts")[0].name == "counts"
    with pytest.raises(FileFormatError, match=r"name the spectra with \[input\] var \(or --var NAME\)"):
        read_series(tmp_path / "two.zarr")
    assert from_dict({"input": {"var": "counts"}}).input.var == "counts"
    args = build_parser().parse_args(["run", "c.toml", "--var", "counts"])
    assert args.var == "counts"
    args = build_parser().parse_args(["watch", "c.toml", "--var", "counts"])
    assert args.var == "counts"
