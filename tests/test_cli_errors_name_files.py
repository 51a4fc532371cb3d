# SPDX-License-Identifier: GPL-3.0-or-later
"""A wrong file given to a command is named in its one-line error, with the option it came through.

The science functions name their arguments ("references: needs dims ..."); a user passed files. Each case:
exit 2, one line, the file and the option named, nothing written.
"""
from __future__ import annotations

import pytest

from ionscope.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    assert main(["simulate", "linescan", "-o", str(d / "ls.nc"), "--refs-out", str(d / "refs.nc"), "-q"]) == 0
    assert main(["simulate", "hologram", "--quick", "-o", str(d / "holo.nc"), "--refs-out", str(d / "vac.nc"),
                 "-q"]) == 0
    return d


CASES = [
    (["limap", "{d}/ls.nc", "--refs", "{d}/holo.nc"], "holo.nc (--refs)", "('component', 'energy')"),
    (["linescan", "{d}/holo.nc", "--refs", "{d}/refs.nc"], "holo.nc (INPUT)", "('position', 'energy')"),
    (["linescan", "{d}/ls.nc", "--refs", "{d}/vac.nc"], "vac.nc (--refs)", "reference spectra"),
    (["holo", "reconstruct", "{d}/ls.nc"], "ls.nc (HOLOGRAM)", "without an energy axis"),
    (["holo", "reconstruct", "{d}/holo.nc", "--vacuum", "{d}/refs.nc"], "refs.nc (--vacuum)", "hologram"),
    (["holo", "phase-shift", "{d}/holo.nc"], "holo.nc (HOLOGRAMS)", "(frame, y, x)"),
]


@pytest.mark.parametrize("argv,names,expects", CASES, ids=[" ".join(c[0][:2]) + " " + c[1] for c in CASES])
def test_error_names_the_file_and_option(files, tmp_path, capsys, argv, names, expects):
    out = tmp_path / ("out.json" if "profile" in argv else "out.nc")
    code = main([a.format(d=files) for a in argv] + ["-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "error:" in err[0], err
    assert names in err[0] and expects in err[0], err[0]
    assert str(files) in err[0]  # the path as given
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_naming_leaves_messages_that_name_the_file_alone():
    from ionscope.cli._common import naming
    from ionscope.errors import DataValidationError

    with pytest.raises(DataValidationError, match=r"^a\.nc \(--refs\): bad$"):
        with naming(references=("--refs", "a.nc")):
            raise DataValidationError("references: bad")
    with pytest.raises(DataValidationError, match=r"^a\.nc: references bad$"):
        with naming(references=("--refs", "a.nc")):
            raise DataValidationError("a.nc: references bad")
    with pytest.raises(DataValidationError, match=r"^other: bad$"):
        with naming(references=("--refs", "a.nc")):
            raise DataValidationError("other: bad")


def test_holography_run_names_the_key_and_file_of_a_single_hologram(files, tmp_path, capsys):
    toml = tmp_path / "night.toml"
    toml.write_text(f'[holography]\nholograms = "{files / "holo.nc"}"\nthickness_nm = 60.0\n')
    assert main(["run", str(toml), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config [holography] holograms" in err[0] and "holo.nc" in err[0], err
    assert "(time, y, x)" in err[0]
    assert not (tmp_path / "out").exists()  # refused before the folder is made


def test_run_names_the_log_that_does_not_cover_the_frames(tmp_path, capsys):
    assert main(["simulate", "operando", "--quick", "-o", str(tmp_path / "series.zarr"), "--refs-out",
                 str(tmp_path / "refs.nc"), "-q"]) == 0
    toml = tmp_path / "run.toml"  # frames start 100 min after the log: the 6-min log covers none of them
    toml.write_text('[input]\nseries = "series.zarr"\nlog = "series_log.csv"\nstart_s = 6000.0\n'
                    '[limap]\nreferences = "refs.nc"\n[denoise]\nmethod = "none"\n[report]\nmovies = []\n')
    assert main(["run", str(toml), "--out", str(tmp_path / "out"), "-q", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'series_log.csv'} ([input] log): log does not cover" in err[0], err
    assert "[sync] allow_uncovered" in err[0]


def test_holography_run_names_the_file_of_a_wrong_reference(files, tmp_path, capsys):
    from ionscope.simulate import biased_holograms

    biased_holograms(programme=[("rest", 20), ("hold", 1.0, 20)], shape=(64, 64), pixel_nm=1.0, dose=200.0,
                     seed=0, out=str(tmp_path / "night.zarr"))
    toml = tmp_path / "night.toml"  # a spectrum file where the vacuum references belong
    toml.write_text(f'[holography]\nholograms = "night.zarr"\nreferences = "{files / "refs.nc"}"\n'
                    'thickness_nm = 60.0\n')
    assert main(["run", str(toml), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{files / 'refs.nc'} ([holography] references): " in err[0], err


@pytest.mark.parametrize("fit_range,expects", [(("80", "40"), "--fit-range: expected start < end"),
                                               (("-5", "80"), "--fit-range=(-5, 80) eV lies outside")])
def test_a_wrong_option_value_is_named_as_the_option_typed(files, tmp_path, capsys, fit_range, expects):
    out = tmp_path / "out.nc"
    code = main(["limap", str(files / "ls.nc"), "--refs", str(files / "refs.nc"), "--plural-scattering", "none",
                 "--fit-range", *fit_range, "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expects in err[0], err
    assert not out.exists()


def test_an_unknown_reader_is_refused_for_every_kind_of_file(files, capsys):
    # a misspelt --reader used to be ignored silently for stores and logs
    code = main(["info", str(files / "ls.nc"), "--reader", "XYZ"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "'XYZ' is not a rosettasciio plugin" in err and "DigitalMicrograph" in err
    assert main(["info", str(files / "ls.nc"), "--reader", "netcdf"]) == 0
