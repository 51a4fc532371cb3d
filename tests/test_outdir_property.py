# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: whatever a folder holds, ionscope never modifies or deletes a file it did not write (issue 17).

Seeded random folders: frames and stray files, user files inside and beside the
output folder (some named like ionscope's outputs or temporaries, some
symbolic links, crafted journals and report manifests naming paths inside and
outside). The snapshot (path → SHA-256) of every file not written by ionscope
must be the same after a run (or a refused run) as before.
"""
from __future__ import annotations

import json
import string

import numpy as np
import pytest

from ionscope.cli import main

from test_outdir import cfg_path, record, snapshot, write_series, write_toml

#: names a user might keep in an output folder; several are ionscope's own names
INSIDE = ["notes.txt", "summary.json", "report.html", "report.json", "figures/x.png", "figures/flux_map.png",
          "movie.gif", "viewer.html", ".notes.tmp-deadbeef", ".summary.json.tmp-0123abcd",
          ".report.staging-folder/important.txt", ".report.staging-0123abcd/a.txt", "cache.zarr", "live/keep.txt",
          "data/frame_0001.nc", "sub/deep/file.bin", ".x.tmp-0123456789ab-01234567", "run.toml"]


def _text(rng, n=12) -> str:
    return "".join(rng.choice(list(string.ascii_letters), n))


def _plant(rng, root, out, outside) -> list[str]:
    """Random user content in and beside ``out``; returns what was planted (relative to root)."""
    planted = []
    out.mkdir(parents=True, exist_ok=True)
    for rel in rng.choice(INSIDE, size=rng.integers(0, 6), replace=False):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel == "cache.zarr":
            p.mkdir(exist_ok=True)
            (p / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
        else:
            p.write_text(_text(rng))
        planted.append(p.relative_to(root).as_posix())
    for i in range(rng.integers(1, 4)):  # beside OUT
        p = outside / f"{_text(rng, 6)}.{rng.choice(['txt', 'nc', 'json'])}"
        p.write_text(_text(rng))
    targets = [str(outside), str(outside / "f.txt"), "../outside", "../../x", "/tmp", "a/../../b",
               ".", "", str(root)]
    if rng.random() < 0.4:  # a crafted publication journal
        (out / ".report.publish.json").write_text(json.dumps({
            "staging": str(rng.choice(targets)), "files": list(rng.choice(targets, 2)),
            "remove": list(rng.choice(targets, 3)), "manifest": {}}))
        planted.append((out / ".report.publish.json").relative_to(root).as_posix())
    if rng.random() < 0.3:  # a crafted report manifest
        (out / "report.json").write_text(json.dumps({"key": "k", "files": {
            str(i): str(t) for i, t in enumerate(rng.choice(targets, 3))}}))
        planted.append("out/report.json")
    if rng.random() < 0.3:  # a symbolic link inside OUT leading outside
        name = str(rng.choice(["figures", "link.txt", "summary.json"]))
        link = out / name
        if not (link.exists() or link.is_symlink()):
            link.symlink_to(outside if name == "figures" else outside / "f.txt")
    return planted


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("prop"), shape=(8, 12), n_frames=4, seed=11)


def test_a_run_never_changes_a_file_it_did_not_write(series, tmp_path, capsys):
    """12 random folders; one shared stage cache (made by ionscope) so that each run is quick."""
    import shutil

    cache = tmp_path / "shared" / "cache.zarr"
    outcomes = {"ran": 0, "refused": 0}
    for seed in range(12):
        rng = np.random.default_rng(seed)
        root = tmp_path / f"case{seed}"
        out, outside = root / "out", root / "outside"
        outside.mkdir(parents=True)
        (outside / "f.txt").write_text("outside")
        inp = series
        if rng.random() < 0.5:  # the input inside OUT, as the demo keeps it, with stray files beside the store
            shutil.copytree(series, out / "data")
            (out / "data" / "readme.txt").write_text("stray")
            inp = out / "data"
        _plant(rng, root, out, outside)
        toml = write_toml(cfg_path(root), inp, out, output={"cache": str(cache)})
        before = snapshot(root)
        code = main(["run", str(toml), "-q"])
        err = capsys.readouterr().err
        assert code in (0, 2), err
        assert code == 0 or (err.strip().count("\n") == 0 and "Traceback" not in err), err
        outcomes["ran" if code == 0 else "refused"] += 1
        after = snapshot(root)
        changed = [k for k, v in before.items() if after.get(k) != v]
        assert not changed, (seed, changed, err)
        # a second run after the user adds more (maybe over files ionscope wrote): the user's stay as they are
        _plant(rng, root, out, outside)
        before2 = snapshot(root)
        user = {k for k, v in before2.items() if k in before or after.get(k) != v}
        code = main(["run", str(toml), "-q"])
        err = capsys.readouterr().err
        assert code in (0, 2), err
        after2 = snapshot(root)
        changed = [k for k in user if after2.get(k) != before2[k]]
        assert not changed, (seed, changed, err)
    assert outcomes["ran"] and outcomes["refused"], outcomes  # both paths were exercised
    record(f"property: 12 random folders × 2 runs ({outcomes['ran']} ran, {outcomes['refused']} refused)")


def test_ledger_journal_and_manifest_operations_touch_nothing_foreign(tmp_path):
    """200 random crafted states acted on by recovery, clean-up and publication: foreign files never change."""
    import warnings

    from ionscope._atomic import clean_temporaries, publish_set, recover_sets, staging_dir
    from ionscope._outdir import MANIFEST, session
    from ionscope.errors import OutputPathError

    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        root = tmp_path / f"c{seed}"
        out, outside = root / "out", root / "outside"
        outside.mkdir(parents=True)
        (outside / "f.txt").write_text("outside")
        out.mkdir()
        _plant(rng, root, out, outside)
        forged = rng.random() < 0.5
        if forged:  # a crafted ledger whose temporaries' folders lead outside
            (out / MANIFEST).write_text(json.dumps({"entries": {}, "tokens": {
                "0123456789ab": [str(outside), "../outside", ".", "figures"]}}))
            (outside / ".f.txt.tmp-0123456789ab-01234567").write_text("outside, named like ours")
        before = snapshot(root)
        # (the ledger is the proof of ownership: a forged one may name a temporary inside OUT as ionscope's —
        # a limit stated in RELIABILITY.md; nothing outside OUT is acted on whatever it says)
        user = {k for k in before if not k.startswith("out/.ionscope")
                and not (forged and k.startswith("out/") and "0123456789ab" in k)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with session(out):
                    recover_sets(out, "report")
                    clean_temporaries(out)
                    staged = staging_dir(out, "report")
                    (staged / "summary.json").write_text("ours")
                    publish_set(staged, out, ["summary.json"], name="report", manifest={"key": str(seed)},
                                previous=[str(t) for t in rng.choice(["../outside/f.txt", str(outside / "f.txt"),
                                                                      "notes.txt", "figures/x.png"], 2)])
            except OutputPathError:
                pass
        after = snapshot(root)
        changed = [k for k in user if after.get(k) != before[k]]
        assert not changed, (seed, changed)
    record("property: 200 crafted ledgers/journals/manifests through recovery, clean-up and publication")
