# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline holography viewer: size limits, downsampling, the log envelope, bad input.

The viewer written by a pipeline run, and the page in headless Chromium: tests/test_operando_holography.py."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ionscope.errors import DataValidationError
from ionscope.report._holo_viewer import _envelope, write_holo_viewer


def _payload(path) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(re.search(r"^const D = (.*);$", text, re.M).group(1))


def _maps(D) -> np.ndarray:
    q = np.frombuffer(base64.b64decode(D["b64"]), "<u2").astype(float)
    v = np.where(q == 0, np.nan, D["qlo"] + (q - 1) / 65534 * (D["qhi"] - D["qlo"]))
    return v.reshape(D["nt"], D["ny"], D["nx"])


def _series(n=25, ny=300, nx=500, seed=0, pixel=0.5):
    rng = np.random.default_rng(seed)
    bias = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    return xr.Dataset(
        {"potential": (("time", "y", "x"), rng.normal(0, 0.05, (n, ny, nx)) + bias[:, None, None]
                       * (np.arange(nx) > nx // 2)),
         "bias_v": ("time", bias),
         **{k: (("time", "interface"), rng.random((n, 2))) for k in ("step_v", "step_v_std", "width_nm",
                                                                      "width_nm_std")}},
        coords={"time": np.arange(n) * 60.0, "y": np.arange(ny) * pixel, "x": np.arange(nx) * pixel,
                "interface_nm": ("interface", [50.0, 150.0])})


def test_limits_subsample_frames_and_downsample_maps(tmp_path):
    ds = _series(n=25, ny=300, nx=500)
    D = _payload(write_holo_viewer(tmp_path / "v.html", ds, max_frames=10, max_side=64))
    assert D["nt"] == 10 and D["frames"][0] == 0 and D["frames"][-1] == 24
    assert np.all(np.diff(D["frames"]) >= 2)  # evenly spread over the 25
    f = 8  # ceil(500 / 64)
    assert D["block"] == f and (D["ny"], D["nx"]) == (300 // f, 500 // f)
    assert D["pixel_nm"] == pytest.approx(0.5 * f) and D["x0"] == pytest.approx(-0.25)
    k = D["frames"][3]
    expect = ds["potential"].values[k, :296, :496].reshape(37, f, 62, f).mean(axis=(1, 3))
    np.testing.assert_allclose(_maps(D)[3], expect, atol=(D["qhi"] - D["qlo"]) / 65534)
    assert len(D["t"]) == 25  # the curves keep every frame


def test_a_2048_map_gives_a_small_page(tmp_path):
    ds = _series(n=2, ny=2048, nx=2048, pixel=0.25)
    path = write_holo_viewer(tmp_path / "big.html", ds)
    D = _payload(path)
    assert (D["ny"], D["nx"]) == (256, 256) and D["block"] == 8
    # 2 frames × 256² × 2 B, base64: ≈ 350 kB (the full maps as text would be ~100 MB)
    assert path.stat().st_size < 500_000


def test_nan_blocks_and_bad_input(tmp_path):
    ds = _series(n=3, ny=40, nx=40)
    pot = ds["potential"].values.copy()
    pot[:, :8, :] = np.nan    # a masked band: undefined blocks stay undefined
    pot[:, 9, :] = np.nan     # one undefined row of four: the block mean uses the other three
    ds["potential"] = (("time", "y", "x"), pot)
    D = _payload(write_holo_viewer(tmp_path / "v.html", ds, max_side=10))
    m = _maps(D)
    assert D["block"] == 4 and np.isnan(m[:, :2]).all() and np.isfinite(m[:, 2:]).all() and D["has_nan"]
    expect = pot[:, [8, 10, 11], :4].mean(axis=(1, 2))
    np.testing.assert_allclose(m[:, 2, 0], expect, atol=(D["qhi"] - D["qlo"]) / 65534)
    with pytest.raises(DataValidationError, match=r"lacks \['width_nm_std'\]"):
        write_holo_viewer(tmp_path / "x.html", ds.drop_vars("width_nm_std"))
    with pytest.raises(DataValidationError, match="max_frames = 0"):
        write_holo_viewer(tmp_path / "x.html", ds, max_frames=0)
    with pytest.raises(DataValidationError, match="square"):
        write_holo_viewer(tmp_path / "x.html", ds.assign_coords(y=ds.y * 2))
    assert not (tmp_path / "x.html").exists() and not list(tmp_path.glob(".*tmp*"))


def test_log_envelope_keeps_steps_and_spikes():
    t = np.arange(100_000) * 0.1
    v = np.where(t < 5000, 1.0, -1.0)
    v[43_210] = 7.0  # a one-sample current spike
    et, ev = _envelope(t, v)
    assert et.size <= 2000 and np.all(np.diff(et) > 0)
    assert 7.0 in ev and ev.min() == -1.0
    # the step stays where it is: the last sample before it and the first after it are kept
    assert np.interp(4999.9, et, ev) == 1.0 and np.interp(5000.0, et, ev) == -1.0
