# SPDX-License-Identifier: GPL-3.0-or-later
"""An output folder that is ours, and only ours (issue 17): every red-team case of ``ionscope run`` as a test.

Each fault checks: no loss (the user's files keep their bytes), no file outside
OUT touched, the expected one-line error (exit 2) or warning, and — once the
planted thing is moved away — a later plain run bit-identical to a clean run.
Set ``IONSCOPE_FAULT_LOG=path.jsonl`` to record the outcomes (RELIABILITY.md counts).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ionscope.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
from ionscope.operando import STAGES  # noqa: E402  (the table is the one source of stage names)
OURS = {".ionscope.lock", ".ionscope.manifest.json"}


def record(fault: str, outcome: str = "clean") -> None:
    path = os.environ.get("IONSCOPE_FAULT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"group": "issue17-output-folder", "fault": fault, "outcome": outcome}) + "\n")


def snapshot(root: Path, *, skip: Path | None = None) -> dict:
    """path → SHA-256 of every file (symlinks by target, folders by name) under ``root``, ``skip`` excluded."""
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "/"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def cfg_path(tmp_path: Path) -> Path:
    """Where a test's run.toml goes: beside its folder, so that snapshots of the folder exclude it."""
    return tmp_path.parent / f"{tmp_path.name}-run.toml"


def write_toml(path: Path, data: Path, out: Path, **extra) -> Path:
    sections = {
        "input": {"series": str(data / "series.zarr"), "log": str(data / "log.csv"), "frame_interval_s": 60.0},
        "output": {"dir": str(out)},
        "register": {"window_ev": [30.0, 50.0]},
        "denoise": {"method": "gaussian"},
        "report": {"movies": [], "viewer": False, "figures": False},
    }
    for k, v in extra.items():
        sections[k] = {**sections.get(k, {}), **v}
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_series(root: Path, **simulate) -> Path:
    """A simulated series (one Zarr chunk per frame) and its log in ``root``: what a run's [input] names."""
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    si, _, log = operando_eels(energy_step=0.5, dose=400.0, **simulate)
    iio.save(si.chunk({"time": 1}), root / "series.zarr")
    log.to_dataframe().to_csv(root / "log.csv", float_format="%.9g")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("data"), shape=(12, 16), n_frames=5, seed=5)


@pytest.fixture(scope="module")
def clean(data, tmp_path_factory):
    """A clean run: what every faulted folder must reproduce bit for bit."""
    tmp = tmp_path_factory.mktemp("clean")
    assert main(["run", str(write_toml(tmp / "run.toml", data, tmp / "out")), "-q"]) == 0
    return tmp / "out"


def stage_arrays(out: Path) -> dict:
    from ionscope.pipeline._stores import StageCache

    cache = StageCache(out / "cache.zarr")
    return {f"{s}/{v}": np.asarray(ds[v].values) for s in STAGES for ds in [cache.load(s)] for v in ds.variables}


def same_as_clean(out: Path, clean: Path, *, report: bool = True) -> None:
    a, b = stage_arrays(out), stage_arrays(clean)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k
    if not report:
        return
    files = json.loads((out / "report.json").read_text())["files"]
    assert files == json.loads((clean / "report.json").read_text())["files"]
    for rel in files.values():
        if rel not in ("summary.json", "report.html"):  # these also list stage times and cache use
            assert (out / rel).read_bytes() == (clean / rel).read_bytes(), rel
    s = {k: v for k, v in json.loads((out / "summary.json").read_text()).items()
         if k not in ("stage_seconds", "stages_cached")}
    assert s == {k: v for k, v in json.loads((clean / "summary.json").read_text()).items()
                 if k not in ("stage_seconds", "stages_cached")}


def mark_pending(out: Path, rel: str) -> None:
    """The ledger state a kill leaves between renaming ``rel`` into place and recording it: claimed by a
    session (now dead) with the checksum of the temporary taken just before the rename (``expect``)."""
    from ionscope._outdir import OutputFolder, _file_record

    with OutputFolder(out)._edit() as ledger:
        ledger["entries"][rel] = {"kind": "file", "token": "0123456789ab", "expect": _file_record(out / rel)}


def copy_of(clean: Path, dest: Path) -> Path:
    """An output folder made by ionscope (a copy of the clean one: new mtimes, same bytes)."""
    shutil.copytree(clean, dest)
    return dest


@pytest.fixture
def victim(tmp_path):
    """Files beside the output folder that no run may touch."""
    v = tmp_path / "victim"
    (v / "dir").mkdir(parents=True)
    (v / "file").write_text("precious")
    (v / "dir" / "a.txt").write_text("precious too")
    (tmp_path / "x").write_text("beside OUT")
    return v


# --------------------------------------------------------------------------- deletes outside the output folder


def test_crafted_publication_journal_naming_outside_paths(data, clean, tmp_path, victim, capsys):
    out = copy_of(clean, tmp_path / "out")
    toml = write_toml(cfg_path(tmp_path), data, out, report={"fps": 3.0})  # the report is redone
    journal = {"staging": "../victim", "files": ["../../x", str(victim / "file")],
               "remove": [str(victim / "dir"), str(victim / "file"), "../x", "../../x"], "manifest": {}}
    (out / ".report.publish.json").write_text(json.dumps(journal))
    before = snapshot(tmp_path, skip=out)
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, ".report.publish.json", "not written by ionscope")
    assert snapshot(tmp_path, skip=out) == before
    assert json.loads((out / ".report.publish.json").read_text()) == journal  # not ours: not even removed
    (out / ".report.publish.json").unlink()
    assert main(["run", str(write_toml(cfg_path(tmp_path), data, out)), "-q"]) == 0
    same_as_clean(out, clean)
    record("crafted .report.publish.json naming /abs/dir, /abs/file, ../../x")


def test_stale_journal_of_ours_with_outside_paths_is_ignored_with_a_warning(data, clean, tmp_path, victim, capsys):
    out = copy_of(clean, tmp_path / "out")
    # a journal that names things outside OUT ...
    (out / ".report.publish.json").write_text(json.dumps(
        {"staging": ".report.staging-0123abcd", "files": ["a.txt"], "remove": [str(victim / "file"), "../x"],
         "manifest": {"key": "x", "files": {}}}))
    # ... that the ledger lists as ours but unfinished (a kill right after it was renamed into place)
    mark_pending(out, ".report.publish.json")
    before = snapshot(tmp_path, skip=out)
    with pytest.warns(UserWarning, match=r"publish.json: .*(absolute|leaves the folder).*ignored and removed"):
        code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out), "-q")
    assert code == 0, err
    assert snapshot(tmp_path, skip=out) == before
    assert not (out / ".report.publish.json").exists()
    same_as_clean(out, clean)
    record("stale journal of ours naming outside paths (ignored with a warning)")


@pytest.mark.parametrize("entry", ["abs", "dotdot"])
def test_report_manifest_naming_outside_paths(data, clean, tmp_path, victim, capsys, entry):
    out = copy_of(clean, tmp_path / "out")
    name = str(victim / "file") if entry == "abs" else "../victim/file"
    manifest = json.loads((out / "report.json").read_text())
    manifest["files"]["evil"] = name
    (out / "report.json").write_text(json.dumps(manifest))  # no longer the bytes ionscope wrote
    before = snapshot(tmp_path, skip=out)
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, report={"fps": 3.0}), "-q")
    one_line(code, err, "report.json", "not written by ionscope")
    assert snapshot(tmp_path, skip=out) == before
    # the same entries in a manifest the ledger still counts as ours (written, then the kill): not trusted
    mark_pending(out, "report.json")
    with pytest.warns(UserWarning, match=r"report.json: not trusted"):
        code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out), "-q")
    assert code == 0, err
    assert snapshot(tmp_path, skip=out) == before
    same_as_clean(out, clean)
    record(f"report.json entry {'/abs/file' if entry == 'abs' else '../../x'}")


@pytest.mark.slow  # ~10 s: full runs
def test_symlink_inside_out_leading_outside_is_refused(data, clean, tmp_path, victim, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").symlink_to(victim / "dir", target_is_directory=True)
    toml = write_toml(cfg_path(tmp_path), data, out, report={"figures": True})
    before = snapshot(tmp_path, skip=out)
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, "symbolic link", "figures")
    assert snapshot(tmp_path, skip=out) == before
    assert sorted(p.name for p in out.iterdir()) == ["figures"]  # refused before anything was made
    (out / "figures").unlink()
    assert main(["run", str(toml), "-q"]) == 0
    same_as_clean(out, clean, report=False)
    record("OUT/figures a symlink to a folder outside OUT")


# --------------------------------------------------------------------------- user data inside the folder


@pytest.mark.slow  # ~10 s: full runs
def test_user_files_named_like_temporaries_survive_runs_and_kills(data, clean, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = {".notes.tmp-deadbeef": "notes", ".report.staging-folder/important.txt": "important",
            ".summary.json.tmp-0123abcd": "looks like ours", ".x.tmp-0123456789ab-0123abcd": "also",
            ".report.staging-0123abcd/keep.txt": "keep"}
    for rel, text in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    toml = write_toml(cfg_path(tmp_path), data, out)
    assert main(["run", str(toml), "-q"]) == 0
    assert all((out / rel).read_text() == text for rel, text in mine.items())
    same_as_clean(out, clean)
    # a run killed while its report was staged leaves its own temporaries: the next run removes those only
    child = ("import os, sys\nimport ionscope.report._run as rr\nfrom ionscope._outdir import session_for\n"
             "real = rr.write_run_report\n"
             "def die(result, out_dir, **kw):\n"
             "    real(result, out_dir, **kw)\n"
             "    session_for(out_dir).temp_name(session_for(out_dir).root / 'summary.json').write_text('half')\n"
             "    os._exit(9)\n"
             "rr.write_run_report = die\n"
             "from ionscope.cli import main\nmain(sys.argv[1:])\n")
    killed = write_toml(cfg_path(tmp_path), data, out, report={"fps": 3.0})
    proc = subprocess.run([sys.executable, "-c", child, "run", str(killed), "-q"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.returncode == 9, proc.stderr
    staged = [p.name for p in out.iterdir() if ".staging-" in p.name or ".tmp-" in p.name]
    assert len(staged) == len({rel.split("/")[0] for rel in mine}) + 2, staged  # + its staging and its .tmp-
    with pytest.warns(UserWarning, match="taking over the lock"):
        assert main(["run", str(write_toml(cfg_path(tmp_path), data, out)), "-q"]) == 0
    assert all((out / rel).read_text() == text for rel, text in mine.items())
    left = sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name not in OURS)
    assert left == sorted({rel.split("/")[0] for rel in mine})
    same_as_clean(out, clean)
    record("user files .notes.tmp-deadbeef, .report.staging-folder/important.txt in OUT")


@pytest.mark.slow  # ~10 s: full runs
def test_user_outputs_in_out_are_never_overwritten(data, clean, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    mine = {"summary.json": "{\"mine\": 1}", "report.html": "<p>my report</p>", "figures/x.png": "my figure",
            "notes.txt": "n"}
    for rel, text in mine.items():
        (out / rel).write_text(text)
    toml = write_toml(cfg_path(tmp_path), data, out, report={"figures": True})
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, "summary.json", "report.html", "not written by ionscope")
    assert snapshot(tmp_path) == before  # refused before anything was made: no lock, ledger or cache either
    for rel in ("summary.json", "report.html"):
        (out / rel).rename(tmp_path / rel)
    (out / "figures" / "flux_map.png").write_text("my flux map")  # a name the report writes
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, "figures/flux_map.png")
    (out / "figures" / "flux_map.png").unlink()
    assert main(["run", str(toml), "-q"]) == 0
    assert (out / "figures" / "x.png").read_text() == "my figure" and (out / "notes.txt").read_text() == "n"
    same_as_clean(out, clean, report=False)
    # a file of ours that the user replaced is theirs again: refused, not overwritten
    (out / "summary.json").write_text("{\"edited\": true}")
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, report={"figures": True, "fps": 3.0}),
                       "-q")
    one_line(code, err, "summary.json")
    assert (out / "summary.json").read_text() == "{\"edited\": true}"
    record("user's summary.json, report.html, figures/*.png in OUT")


def test_rerun_into_own_folder_resumes_and_caches(data, clean, tmp_path, capsys):
    out = copy_of(clean, tmp_path / "out")  # made by ionscope elsewhere, copied (mtimes change, bytes do not)
    code, printed, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out))
    assert code == 0, err
    assert all(" cached " in line for line in printed.splitlines() if line.split()[0] in STAGES + ("report",))
    code, printed, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, report={"fps": 3.0}))
    assert code == 0 and "report        done" in printed, printed
    assert main(["run", str(write_toml(cfg_path(tmp_path), data, out)), "-q"]) == 0
    same_as_clean(out, clean)
    record("re-run into a folder ionscope made (cached, report redone)")


def test_folder_of_an_ionscope_without_ledger(data, clean, tmp_path, capsys):
    """Outputs of a version that kept no ledger: the stage cache is recognised (its stage groups and
    completion markers), the report files are not (a one-line refusal says to move them once)."""
    from ionscope.pipeline._stores import cache_state

    out = copy_of(clean, tmp_path / "out")
    (out / ".ionscope.manifest.json").unlink()
    meta = json.loads((out / "cache.zarr" / "zarr.json").read_text())
    meta["attributes"] = {}  # no cache marker either
    (out / "cache.zarr" / "zarr.json").write_text(json.dumps(meta))
    assert cache_state(out / "cache.zarr") == "legacy"
    toml = write_toml(cfg_path(tmp_path), data, out)
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, "summary.json", "no ionscope ledger", "move them away once")
    old = tmp_path / "old-report"
    old.mkdir()
    for name in ("summary.json", "report.html", "report.json"):
        (out / name).rename(old / name)
    code, printed, err = cli(capsys, "run", toml)
    assert code == 0, err
    assert [l.split()[0] for l in printed.splitlines() if " done " in l] == ["report"], printed
    assert cache_state(out / "cache.zarr") == "ours"
    same_as_clean(out, clean)
    record("a folder written by an ionscope without ledger (cache adopted, report refused once)")


# --------------------------------------------------------------------------- the stage cache


def test_cache_pointing_at_a_foreign_zarr_store(data, clean, tmp_path, capsys):
    import xarray as xr

    store = tmp_path / "mine.zarr"
    xr.Dataset({"limap": (("y", "x"), np.arange(6.0).reshape(2, 3))}).to_zarr(store, zarr_format=3)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, output={"cache": str(store)}),
                       "-q")
    one_line(code, err, "mine.zarr", "[output] cache")
    assert snapshot(tmp_path) == before  # the store keeps its limap array; no output folder, no lock
    assert main(["run", str(write_toml(cfg_path(tmp_path), data, out)), "-q"]) == 0
    same_as_clean(out, clean)
    record("[output] cache = a user's Zarr store")


# Each case's refusal is its own path; the run after it (a clean run on the same inputs, the same as the clean
# one) is one path for all four, since the refusal is first shown to leave every file as it was. The fast tier runs
# it after the first case, the slow tier after the other three (issue 20, third pass: ~1.6 CPU-s each).
_CACHE_CASES = ([pytest.param("series", True, id="series")]
                + [pytest.param(w, False, id=w) for w in ("inside-series", "log", "parent-of-series")]
                + [pytest.param(w, True, id=f"{w}-then-run", marks=pytest.mark.slow)
                   for w in ("inside-series", "log", "parent-of-series")])


@pytest.mark.parametrize(("where", "then_run"), _CACHE_CASES)
def test_cache_pointing_at_an_input(data, clean, tmp_path, capsys, where, then_run):
    shutil.copytree(data / "series.zarr", tmp_path / "in" / "series.zarr")
    shutil.copy(data / "log.csv", tmp_path / "in" / "log.csv")
    cache = {"series": "in/series.zarr", "inside-series": "in/series.zarr/cache.zarr", "log": "in/log.csv",
             "parent-of-series": "in"}[where]
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    toml = write_toml(cfg_path(tmp_path), tmp_path / "in", out, output={"cache": str(tmp_path / cache)})
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", toml, "-q")
    one_line(code, err, "[output] cache", "input")
    assert snapshot(tmp_path) == before
    if not then_run:
        return
    assert main(["run", str(write_toml(cfg_path(tmp_path), tmp_path / "in", out)), "-q"]) == 0
    assert snapshot(tmp_path / "in") == {k[3:]: v for k, v in before.items() if k.startswith("in/")}
    same_as_clean(out, clean)
    record(f"[output] cache = the input ({where})")


def test_output_folder_inside_an_input_store(data, tmp_path, capsys):
    shutil.copytree(data / "series.zarr", tmp_path / "series.zarr")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, tmp_path / "series.zarr" / "out",
                                                 input={"series": str(tmp_path / "series.zarr")}), "-q")
    one_line(code, err, "[output] dir", "inside the input")
    assert snapshot(tmp_path) == before
    record("[output] dir inside the input store")


def test_cache_elsewhere_is_marked_and_reused(data, clean, tmp_path, capsys):
    from ionscope.pipeline._stores import cache_state

    toml = write_toml(cfg_path(tmp_path), data, tmp_path / "out", output={"cache": str(tmp_path / "c" / "s.zarr")})
    assert main(["run", str(toml), "-q"]) == 0
    assert cache_state(tmp_path / "c" / "s.zarr") == "ours"
    code, printed, _ = cli(capsys, "run", toml)
    assert code == 0 and printed.count(" cached ") == len(STAGES) + 1, printed


# --------------------------------------------------------------------------- a failed start leaves nothing


@pytest.mark.parametrize("fault", ["window", "log", "good-frames", "cache-elsewhere"])
def test_run_failing_validation_leaves_no_folder_cache_or_lock(data, tmp_path, capsys, fault):
    out = tmp_path / "a" / "b" / "out"
    extra = {"window": {"register": {"window_ev": [900.0, 950.0]}},
             "log": {"input": {"log": str(tmp_path / "missing.csv")}},
             "good-frames": {"input": {"min_good_fraction": 1.0, "on_bad_frame": "error"}},
             "cache-elsewhere": {"register": {"window_ev": [900.0, 950.0]},
                                 "output": {"cache": str(tmp_path / "scratch" / "c.zarr")}}}[fault]
    series = data / "series.zarr"
    if fault == "good-frames":  # a frame of NaN: on_bad_frame = "error" refuses it in the screen stage
        import ionscope.io as iio

        si = iio.load(series).load()
        si[2] = np.nan
        iio.save(si.chunk({"time": 1}), tmp_path / "bad.zarr")
        extra["input"]["series"] = str(tmp_path / "bad.zarr")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "other.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, **extra), "-q")
    one_line(code, err)
    after = snapshot(tmp_path)
    assert after == before, sorted(set(after) ^ set(before))
    # a folder that already exists (with the user's files) is left exactly as it was, too
    (tmp_path / "a" / "b" / "out").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", write_toml(cfg_path(tmp_path), data, out, **extra), "-q")
    one_line(code, err)
    assert snapshot(tmp_path) == before
    record(f"run failing validation ({fault}) leaves no folder, cache or lock")


# --------------------------------------------------------------------------- the lock


def test_lock_keeps_no_secret_and_is_private(tmp_path, monkeypatch):
    from ionscope._lock import LOCK_NAME, folder_lock

    monkeypatch.setattr(sys, "argv", ["/usr/bin/ionscope", "watch", "cfg.toml", "--token", "SECRET-123",
                                      "--scheduler=tcp://user:pw@host:8786"])
    with folder_lock(tmp_path):
        text = (tmp_path / LOCK_NAME).read_text()
    assert "SECRET" not in text and "pw@" not in text
    assert json.loads(text)["command"] == "ionscope watch --token --scheduler"
    assert stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode) == 0o600
    # a lock written world-readable by an older version is made private on the next run
    os.chmod(tmp_path / LOCK_NAME, 0o644)
    with folder_lock(tmp_path):
        pass
    assert stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode) == 0o600
    record("watch --token SECRET: the lock holds option names only, mode 0600")


# --------------------------------------------------------------------------- the ledger's own safety


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a/./b", "", "a//b", "a\x00b", 3])
def test_safe_relpath_refuses_paths_leaving_the_folder(tmp_path, rel):
    from ionscope._outdir import safe_relpath
    from ionscope.errors import OutputPathError

    with pytest.raises(OutputPathError, match="ionscope acts only on paths inside the output folder"):
        safe_relpath(tmp_path, rel)


def test_ledger_of_tampered_temporaries_touches_nothing_outside(tmp_path, victim):
    """A ledger whose token folders name paths outside: the clean-up acts on none of them."""
    from ionscope._outdir import MANIFEST, session

    out = tmp_path / "out"
    out.mkdir()
    (victim / ".x.tmp-0123456789ab-0123abcd").write_text("outside, named like ours")
    (out / MANIFEST).write_text(json.dumps({"entries": {"../victim/file": {"kind": "file"}},
                                            "tokens": {"0123456789ab": [str(victim), "../victim", "."]}}))
    before = snapshot(tmp_path, skip=out)
    with session(out) as folder:
        with pytest.raises(Exception, match="leaves the folder"):
            folder.remove("../victim/file")
    assert snapshot(tmp_path, skip=out) == before


def test_journal_of_ours_naming_a_users_staging_folder(tmp_path):
    """A pending journal of ours whose staging folder is a user's look-alike: nothing moved, nothing deleted."""
    from ionscope._atomic import recover_sets
    from ionscope._outdir import session

    out = tmp_path / "out"
    (out / ".report.staging-0123abcd").mkdir(parents=True)
    (out / ".report.staging-0123abcd" / "summary.json").write_text("mine")
    (out / ".report.publish.json").write_text(json.dumps(
        {"staging": ".report.staging-0123abcd", "files": ["summary.json"], "remove": [], "manifest": {}}))
    mark_pending(out, ".report.publish.json")
    before = snapshot(out)
    with pytest.warns(UserWarning, match="was not made by ionscope; ignored and removed"):
        with session(out):
            recover_sets(out, "report")
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith(".ionscope")} == \
        {k: v for k, v in before.items() if not k.startswith(".ionscope") and k != ".report.publish.json"}
    record("journal of ours naming a user's .report.staging-* folder")
