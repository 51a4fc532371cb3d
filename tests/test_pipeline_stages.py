# SPDX-License-Identifier: GPL-3.0-or-later
"""A content-addressed stage cache (issue 17): changed bytes always invalidate, a touch does not."""
from __future__ import annotations

import os

import numpy as np
import pytest

from test_outdir import cfg_path, record, write_toml

STAGES = ("screen", "energy_drift", "register", "limap", "fraction", "denoise", "sync", "analysis")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A folder of NetCDF frames (equal sizes: one frame's bytes can replace another's) and its log."""
    import ionscope.io as iio
    from ionscope.simulate import operando_eels

    root = tmp_path_factory.mktemp("frames")
    si, _, log = operando_eels(shape=(8, 12), n_frames=5, energy_step=0.5, dose=400.0, seed=7)
    (root / "frames").mkdir()
    for k in range(si.sizes["time"]):
        iio.save(si.isel(time=k).drop_vars("time"), root / "frames" / f"frame_{k:04d}.nc")
    log.to_dataframe().to_csv(root / "log.csv", float_format="%.9g")
    return root


def _run(toml):
    from ionscope.operando import run

    return run(toml, show_progress=False)


def test_fingerprint_reads_the_bytes(tmp_path):
    from ionscope.pipeline._stores import fingerprint

    a = tmp_path / "a.bin"
    a.write_bytes(b"\x00" * 1000)
    st = a.stat()
    key = fingerprint([a])
    a.write_bytes(b"\x00" * 999 + b"\x01")  # same size ...
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same modification time
    assert a.stat().st_mtime_ns == st.st_mtime_ns and fingerprint([a]) != key
    a.write_bytes(b"\x00" * 1000)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # other mtime, same bytes: same identity
    assert fingerprint([a]) == key


def test_swapped_frame_bytes_invalidate_every_stage(frames, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(frames, data)
    toml = write_toml(cfg_path(tmp_path), data, tmp_path / "out", input={"series": str(data / "frames")})
    first = _run(toml)
    assert not any(r.cached for r in first.stages.values())
    # a touch changes nothing: every stage from the cache
    f2, f3 = data / "frames" / "frame_0002.nc", data / "frames" / "frame_0003.nc"
    os.utime(f2)
    assert all(r.cached for r in _run(toml).stages.values())
    # frame 2 replaced by frame 3's bytes, same size and modification time
    st = f2.stat()
    assert f3.stat().st_size == st.st_size
    f2.write_bytes(f3.read_bytes())
    os.utime(f2, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f2.stat().st_size, f2.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = _run(toml)
    assert not any(r.cached for r in again.stages.values()), {n: r.cached for n, r in again.stages.items()}
    # and the outputs are those of a fresh run on the changed frames
    fresh_toml = write_toml(tmp_path / "fresh.toml", data, tmp_path / "fresh",
                            input={"series": str(data / "frames")})
    fresh = _run(fresh_toml)
    for stage in STAGES:
        a, b = again.dataset(stage), fresh.dataset(stage)
        for v in a.variables:
            assert np.array_equal(a[v].values, b[v].values, equal_nan=a[v].dtype.kind == "f"), (stage, v)
    li = again.li_raw.values
    assert np.array_equal(li[2], li[3])  # the swap is what the maps see
    record("frame replaced by other bytes, same size and mtime: every stage redone, = fresh run")


def test_log_with_other_bytes_of_same_size_and_mtime_redoes_sync(frames, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(frames, data)
    toml = write_toml(cfg_path(tmp_path), data, tmp_path / "out", input={"series": str(data / "frames")})
    _run(toml)
    log = data / "log.csv"
    st = log.stat()
    text = log.read_text()
    lines = text.splitlines()
    i = len(lines) // 2
    row = lines[i].split(",")
    col = lines[0].split(",").index("voltage")
    digits = list(row[col])
    j = max(k for k, c in enumerate(digits) if c.isdigit())
    digits[j] = str((int(digits[j]) + 5) % 10)  # one voltage digit: same length
    row[col] = "".join(digits)
    lines[i] = ",".join(row)
    log.write_text("\n".join(lines) + ("\n" if text.endswith("\n") else ""))
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (log.stat().st_size, log.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    res = _run(toml)
    redone = [n for n, r in res.stages.items() if not r.cached]
    assert "sync" in redone and "analysis" in redone and "limap" not in redone, redone
    record("log replaced by other bytes, same size and mtime: sync and analysis redone")


def test_reference_file_with_other_bytes_redoes_the_maps(frames, tmp_path):
    import ionscope.io as iio
    from ionscope.simulate import edge_references

    energy = iio.load(frames / "frames" / "frame_0000.nc").energy
    refs = edge_references(energy)
    iio.save(refs, tmp_path / "refs.nc")
    toml = write_toml(cfg_path(tmp_path), frames, tmp_path / "out",
                      input={"series": str(frames / "frames")}, limap={"references": str(tmp_path / "refs.nc")})
    _run(toml)
    st = (tmp_path / "refs.nc").stat()
    iio.save(refs * 1.01, tmp_path / "other.nc")
    assert (tmp_path / "other.nc").stat().st_size == st.st_size
    (tmp_path / "refs.nc").write_bytes((tmp_path / "other.nc").read_bytes())
    os.utime(tmp_path / "refs.nc", ns=(st.st_atime_ns, st.st_mtime_ns))
    res = _run(toml)
    redone = [n for n, r in res.stages.items() if not r.cached]
    assert "limap" in redone and "screen" not in redone, redone
    record("reference file replaced by other bytes, same size and mtime: maps redone")
