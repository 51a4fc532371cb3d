# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line: clear one-line errors and non-zero exit codes."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# ---- the README's chain, and one vocabulary across commands ------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """simulate → refs → limap → denoise, as a new user runs them from the README."""
    d = tmp_path_factory.mktemp("chain")
    assert main(["simulate", "operando", "--quick", "-o", str(d / "series.zarr"),
                 "--refs-out", str(d / "refs.nc"), "-q"]) == 0
    assert main(["limap", str(d / "series.zarr"), "--refs", str(d / "refs.nc"), "-o", str(d / "limaps.zarr"),
                 "--no-progress", "-q"]) == 0
    return d


def test_limap_output_chains_into_denoise_and_info(chain, capsys):
    assert main(["denoise", str(chain / "limaps.zarr"), "-o", str(chain / "den.zarr"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "using variable 'Li'" in captured.err and "wrote" in captured.out
    from ionscope.io import load

    den = load(chain / "den.zarr")
    li = load(chain / "limaps.zarr", var="Li")
    assert den.dims == ("time", "y", "x") and den.shape == li.shape
    assert np.allclose(den.x, li.x) and den.attrs["method"] == "mlls"  # provenance kept
    assert main(["info", str(chain / "limaps.zarr")]) == 0
    out = capsys.readouterr().out
    assert "variables (9)" in out and "Li_std" in out and "step 5 nm" in out
    assert main(["denoise", str(chain / "limaps.zarr"), "--var", "Co", "-o", str(chain / "co.nc"), "-q"]) == 0
    assert capsys.readouterr().out == ""  # --quiet
    assert (chain / "limaps_Li.png").is_file()


def test_limap_writes_netcdf_and_refuses_other_suffixes(chain, capsys):
    assert main(["limap", str(chain / "series.zarr"), "--refs", str(chain / "refs.nc"), "-o",
                 str(chain / "maps.nc"), "-q"]) == 0
    from ionscope.io import load

    assert set(load(chain / "maps.nc").data_vars) >= {"Li", "Li_std", "Co"}
    assert main(["limap", str(chain / "series.zarr"), "--refs", str(chain / "refs.nc"), "-o",
                 str(chain / "maps.png")]) == 2
    assert "expected a .zarr or .nc path" in capsys.readouterr().err
    assert not (chain / "maps.png").exists()


def test_old_option_spellings_still_work(chain, tmp_path):
    # --reference / --references are hidden aliases of --refs; --out and -o are one option
    h, r, _ = __import__("ionscope.simulate", fromlist=["hologram"]).hologram(shape=(96, 96), seed=1)
    from ionscope.io import save

    save(h, tmp_path / "h.nc")
    save(r, tmp_path / "r.nc")
    assert main(["holo", "reconstruct", str(tmp_path / "h.nc"), "--reference", str(tmp_path / "r.nc"),
                 "--out", str(tmp_path / "w.nc"), "-q"]) == 0
    assert (tmp_path / "w_phase.png").is_file() and (tmp_path / "w_amplitude.png").is_file()


def test_help_documents_every_option():
    from ionscope.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []

    def walk(p, prefix):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, f"{prefix} {name}")
            elif a.help is None and not isinstance(a, argparse._HelpAction):
                missing.append(f"{prefix}: {a.option_strings or a.dest}")

    for name, p in sub.choices.items():
        walk(p, name)
        opts = {s for a in p._actions for s in a.option_strings}
        if name != "holo":
            assert {"--no-progress", "--quiet"} <= opts, name
    assert not missing, missing


@pytest.mark.parametrize("argv, needle", [
    (["demo", "--steps", "bogus"], "unknown step(s) ['bogus']"),
    (["refs", "--energy", "50", "40", "0.1", "-o", "{d}/r.nc"], "expected START < STOP"),
])
def test_bad_arguments_are_one_line(argv, needle, tmp_path, capsys):
    argv = [a.format(d=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_limap_on_a_hologram_and_denoise_on_a_spectrum_image(chain, real_file, capsys):
    holo = real_file("01_holo_Vbp_130V_0V_bin2_crop.hdf5")
    assert main(["limap", str(holo), "--reader", "HSPY", "--refs", str(chain / "refs.nc"),
                 "-o", str(chain / "x.zarr")]) == 2
    assert "no energy axis" in capsys.readouterr().err
    assert main(["denoise", str(chain / "series.zarr"), "-o", str(chain / "x.zarr")]) == 2
    err = capsys.readouterr().err
    assert "denoise takes a Li-map movie" in err and not (chain / "x.zarr").exists()


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from ionscope.cli import _info

    def boom(args):
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(_info, "run", boom)
    assert main(["info", "x"]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError: deep inside (rerun with --debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["info", "x", "--debug"])


def test_info_piped_into_head_is_quiet(real_file):
    # `ionscope info X | head -1`: the reader leaves early; no BrokenPipeError traceback
    cmd = f"{sys.executable} -m ionscope info {real_file('EELS_SI.dm4')} {real_file('EELS_STO.dm3')} | head -1"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert out.stdout.startswith("file:") and "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_info_lists_groups_of_a_run_cache(tmp_path, capsys):
    from ionscope.data import calibrated
    from ionscope.io import save

    a = calibrated(np.zeros((2, 3, 4), "f4"), ("time", "y", "x"), scale={"time": 60.0, "y": 2.0, "x": 2.0},
                   name="li").to_dataset()
    for g in ("limap", "denoise"):
        a.to_zarr(tmp_path / "cache.zarr", group=g, mode="a")
    assert main(["info", str(tmp_path / "cache.zarr")]) == 0
    out = capsys.readouterr().out
    assert "groups: ['denoise', 'limap']" in out and "[limap]" in out and "li " in out
    save(a, tmp_path / "copy.zarr")  # a Dataset saves whole


@pytest.mark.parametrize("name, reader", [("EELS_SI.dm4", None), ("EELS_STO.dm3", None),
                                          ("fei_example_tem_stack.emd", None), ("Cr_L_cl.hspy", None),
                                          ("01_holo_Vbp_130V_0V_bin2_crop.hdf5", "HSPY"),
                                          ("test_stackbuilder_imagestack.dm3", None)])
def test_convert_real_files_round_trip(name, reader, real_file, tmp_path):
    """dm3/dm4/emd/hspy → zarr → hspy → nc: data, axes and metadata unchanged."""
    from ionscope.io import load

    src = real_file(name)
    extra = ["--reader", reader] if reader else []
    assert main(["convert", str(src), str(tmp_path / "a.zarr"), "-q", *extra]) == 0
    assert main(["convert", str(tmp_path / "a.zarr"), "-o", str(tmp_path / "a.hspy"), "-q"]) == 0
    assert main(["convert", str(tmp_path / "a.hspy"), str(tmp_path / "a.nc"), "-q"]) == 0
    a, b = load(src, reader=reader), load(tmp_path / "a.nc")
    assert a.dims == b.dims and np.array_equal(a.values, b.values)
    for d in a.dims:
        assert (d in a.coords) == (d in b.coords)
        if d in a.coords:
            np.testing.assert_allclose(a[d].values, b[d].values, rtol=1e-9)
    drop = {"source_file", "n_signals_in_file"}
    assert {k: v for k, v in b.attrs.items() if k not in drop} == {k: v for k, v in a.attrs.items() if k not in drop}


def test_convert_refuses_unknown_output(real_file, tmp_path, capsys):
    assert main(["convert", str(real_file("EELS_SI.dm4")), str(tmp_path / "si.tif")]) == 2
    assert "expected a .zarr, .nc or .hspy path" in capsys.readouterr().err


def test_ci_script_refuses_to_run_without_real_data(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "CI": "1", "IONSCOPE_REAL_DATA": str(tmp_path / "absent")}
    out = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "real data folder" in out.stderr


@pytest.fixture(scope="module")
def offset_wave(tmp_path_factory):
    """A reconstructed wave whose y axis starts at 100 nm, as in the real holograms (offset 183.95 nm)."""
    from ionscope.io import load, save
    from ionscope.simulate import hologram

    d = tmp_path_factory.mktemp("holo")
    h, r, truth = hologram(shape=(128, 128), mip_v=(15.0, 15.0), dose=800, seed=2)
    h = h.assign_coords(y=h.y + 100.0)
    r = r.assign_coords(y=r.y + 100.0)
    save(h, d / "h.nc")
    save(r, d / "r.nc")
    assert main(["holo", "reconstruct", str(d / "h.nc"), "--refs", str(d / "r.nc"), "--full-size",
                 "-o", str(d / "wave.nc"), "-q"]) == 0
    assert float(load(d / "wave.nc").y[0]) >= 100.0
    return d, truth


def test_holo_profile_coordinates_units_and_outputs(offset_wave, capsys):
    import json

    d, truth = offset_wave
    x1 = truth.attrs["interface_x_nm"][0]
    common = ["--width", "8", "--no-progress"]
    assert main(["holo", "profile", str(d / "wave.nc"), "--start", "158", str(x1 - 10), "--end", "158",
                 str(x1 + 10), *common, "-o", str(d / "fit.json")]) == 0
    img = json.loads(capsys.readouterr().out)
    assert main(["holo", "profile", str(d / "wave.nc"), "--origin", "corner", "--start", "58", str(x1 - 10),
                 "--end", "58", str(x1 + 10), *common]) == 0
    corner = json.loads(capsys.readouterr().out)
    assert corner["step"] == pytest.approx(img["step"], rel=1e-9)  # the same line, two origins
    assert img["step"] == pytest.approx(7.288e-3 * 60 * 1.3, rel=0.1)
    assert img["units"]["step"] == "rad" and img["units"]["width"] == "nm" and img["quantity"] == "phase"
    assert "offset included" in img["coordinates"] and img["image_extent"]["y"][0] >= 100.0
    assert json.loads((d / "fit.json").read_text())["step"] == img["step"] and (d / "fit.png").is_file()
    # a point given from the corner while the image starts at 100 nm: refused, both ranges named
    assert main(["holo", "profile", str(d / "wave.nc"), "--start", "58", "10", "--end", "58", "40"]) == 2
    err = capsys.readouterr().err
    assert "lies outside" in err and "in the image's own coordinates" in err and "--origin corner" in err


def test_holo_profile_ramp_removal_and_potential(offset_wave, capsys):
    import json

    d, truth = offset_wave
    x1 = truth.attrs["interface_x_nm"][0]
    args = ["holo", "profile", str(d / "wave.nc"), "--start", "158", str(x1 - 10), "--end", "158", str(x1 + 10),
            "--width", "8", "--voltage-kv", "200", "--thickness-nm", "60"]
    assert main(args + ["--ramp-box", "100", "0", "110", "60"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["units"]["step"] == "V" and fit["ramp_removed"] is True
    assert fit["step"] == pytest.approx(1.3, rel=0.15)  # ΔV of the simulated interface
    assert main(args + ["--ramp-box", "100", "0", "100.1", "0.1"]) == 2
    assert "a ramp needs at least 3" in capsys.readouterr().err


def test_to_potential_without_thickness_is_a_clear_error():
    from ionscope.errors import DataValidationError
    from ionscope.holography import to_potential

    with pytest.raises(DataValidationError, match="thickness_nm is required"):
        to_potential(np.zeros((4, 4)), voltage_kv=200)
