# SPDX-License-Identifier: GPL-3.0-or-later
"""Reader fuzzing: mutated copies of the real files either load plausibly or fail cleanly.

Each case is a real file from ../shared/data/real altered one way (truncated,
bytes flipped, given the wrong extension, emptied, or with bad axis metadata
in an HDF5 file). The only acceptable outcomes are an :class:`IonscopeError`
(one message naming the file) or a DataArray that is plausible: dims from the
vocabulary, the shape the axes describe, finite monotonic coordinates.
Seeded, so a failure reproduces; the number of cases is bounded (~300).
"""
from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter

import numpy as np

import ionscope.io as iio
from ionscope.data import DIMS
from ionscope.errors import IonscopeError

FILES = ["EELS_STO.dm3", "EELS_SI.dm4", "AL-DFoffset0.00.dm3", "test_stackbuilder_imagestack.dm3",
         "fei_example_tem_stack.emd", "Cr_L_cl.hspy", "Cr_L_ll.hspy", "01_holo_Vbp_130V_0V_bin2_crop.hdf5"]
EXTS = [".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".msa", ".nc"]
N_PER_FILE = 36  # 8 files × 36 ≈ 300 cases


def _mutations(rng, name, size):
    """(kind, argument) pairs for one file: a fixed mix of every kind."""
    out = [("zero_length", None), ("wrong_extension", EXTS[rng.integers(len(EXTS))])]
    if name.endswith((".hspy", ".hdf5")):
        for field, value in (("scale", np.nan), ("scale", 0.0), ("scale", -1.0), ("offset", np.inf),
                             ("size", 3), ("units", "parsec")):
            out.append(("axis_metadata", (field, value)))
    while len(out) < N_PER_FILE:
        if rng.random() < 0.5:
            out.append(("truncate", int(rng.integers(1, size))))
        else:
            n = int(rng.integers(1, 64))
            out.append(("bit_flips", (rng.integers(0, size, n), rng.integers(0, 8, n))))
    return out


def _apply(src, dst_dir, kind, arg):
    ext = arg if kind == "wrong_extension" else src.suffix
    dst = dst_dir / f"mutant{ext}"
    if kind == "zero_length":
        dst.write_bytes(b"")
    elif kind == "truncate":
        dst.write_bytes(src.read_bytes()[:arg])
    elif kind == "bit_flips":
        data = bytearray(src.read_bytes())
        for pos, bit in zip(*arg):
            data[int(pos)] ^= 1 << int(bit)
        dst.write_bytes(bytes(data))
    elif kind == "wrong_extension":
        shutil.copy(src, dst)
    else:  # axis_metadata: edit one attribute of the first axis of an HDF5 (HyperSpy) file
        import h5py

        shutil.copy(src, dst)
        field, value = arg
        with h5py.File(dst, "r+") as f:
            exp = f["Experiments"]
            group = exp[next(iter(exp))]
            axis = group["axis-0"]
            axis.attrs[field] = value
    return dst


def _plausible(da) -> str | None:
    """None if ``da`` is a believable calibrated array, else what is wrong."""
    import xarray as xr

    if not isinstance(da, xr.DataArray):
        return f"returned {type(da).__name__}"
    if any(d not in DIMS for d in da.dims):
        return f"dims {da.dims}"
    if 0 in da.shape:
        return f"empty shape {da.shape}"
    for d in da.dims:
        if d in da.coords and np.issubdtype(da[d].dtype, np.number):
            c = np.asarray(da[d].values, float)
            if not np.all(np.isfinite(c)):
                return f"non-finite {d} coordinate"
            if c.size > 1 and not np.all(np.diff(c) > 0):
                return f"non-increasing {d} coordinate"
    if da.dtype.kind not in "biufc":
        return f"dtype {da.dtype}"
    return None


def run_fuzz(real_data, tmp_path, *, seed=0):
    rng = np.random.default_rng(seed)
    counts, others = Counter(), []
    for name in FILES:
        src = real_data / name
        if not src.is_file():
            continue
        for i, (kind, arg) in enumerate(_mutations(rng, name, src.stat().st_size)):
            case_dir = tmp_path / f"{src.stem}_{i}"
            case_dir.mkdir()
            path = _apply(src, case_dir, kind, arg)
            counts["tried"] += 1
            reader = "HSPY" if name.endswith(".hdf5") and path.suffix == ".hdf5" else None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    da = iio.load(path, reader=reader)
                    da = da.compute() if hasattr(da, "compute") else da
            except IonscopeError as exc:
                counts["clean_error"] += 1
                if str(path.name) not in str(exc):
                    others.append((name, kind, f"error does not name the file: {exc}"))
            except Exception as exc:  # the failure this test exists to find
                counts["other"] += 1
                others.append((name, kind, f"{type(exc).__name__}: {exc}"[:300]))
            else:
                problem = _plausible(da)
                if problem:
                    counts["other"] += 1
                    others.append((name, kind, f"implausible load: {problem}"))
                else:
                    counts["loaded"] += 1
            shutil.rmtree(case_dir)
    return counts, others


def test_mutated_real_files_fail_cleanly_or_load_plausibly(real_data, tmp_path):
    counts, others = run_fuzz(real_data, tmp_path, seed=int(os.environ.get("IONSCOPE_FUZZ_SEED", "0")))
    print(f"\nreader fuzzing: {dict(counts)}")
    assert counts["tried"] >= 250
    assert not others, "\n".join(f"{n} [{k}]: {m}" for n, k, m in others[:20])
