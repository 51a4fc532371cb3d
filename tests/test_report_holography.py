# SPDX-License-Identifier: GPL-3.0-or-later
"""Holography figures, GIF and viewer in ``report``: honest colour scales, one unit rule, writers handed to the run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ionscope.report import _holography as rh
from test_report_style import _colour_bars, figure_problems


def _series(n=30, ny=40, nx=60, tau=8.0, step=1.5, seed=0):
    """A bias_series-like Dataset: rest, then +1.5 V; ΔV relaxes with τ; noisy maps, a noisy vacuum strip."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 2.0
    bias = np.where(t >= 10, 1.5, 0.0)
    grow = np.where(t >= 10, 1 - np.exp(-(t - 10) / tau), 0.0)
    x = np.arange(nx) * 1.0
    y = np.arange(ny) * 1.0
    prof = np.clip((x - 20) / 20, 0, 1)                      # ΔV rises across the cell
    pot = step * grow[:, None, None] * prof[None, None, :] + 0.1 * rng.normal(size=(n, ny, nx))
    pot[:, :4] = rng.normal(0, 5.0, (n, 4, nx))               # the thin wedge edge at the vacuum: very noisy
    pot[:, :2] = np.nan                                       # the vacuum itself: no data
    region = np.zeros((ny, nx), bool)
    region[8:, :] = True
    sv = np.c_[0.5 * step * grow, -0.5 * step * grow]
    sd = np.full((n, 2), 0.02)
    two = ("time", "interface")
    return xr.Dataset(
        {"potential": (("time", "y", "x"), pot, {"units": "V"}), "bias_v": ("time", bias),
         "step_v": (two, sv), "step_v_std": (two, sd), "width_nm": (two, np.full((n, 2), 6.0)),
         "width_nm_std": (two, np.full((n, 2), 0.8)), "asymmetry": ("time", np.zeros(n)),
         "asymmetry_std": ("time", np.full(n, 0.05)), "region": (("y", "x"), region)},
        coords={"time": t, "y": y, "x": x, "interface_nm": ("interface", [20.0, 40.0])})


def test_movie_scale_covers_the_whole_step_not_the_first_biased_frame():
    """The issue: a ±0.5 V scale (from the first frame at full bias, before relaxation) saturated a 1.5 V step."""
    ds = _series()
    idx = np.arange(ds.sizes["time"])
    maps = [np.asarray(ds.potential.isel(time=int(k)).values) for k in idx]
    sc = rh._scale(ds, maps)
    region = ds.region.values
    inside = np.concatenate([m[region] for m in maps])
    clipped = np.mean(np.abs(inside) > sc.vmax)
    assert sc.vmin == -sc.vmax and sc.vmax >= 1.5          # the relaxed step is inside the scale
    assert clipped <= 0.02                                   # ~1 % clipped by the robust range, not a third
    assert sc.vmax < 3.0                                     # the noisy wedge edge (σ = 5 V) does not set it
    assert sc.extend != "neither"                            # the edge pixels beyond it are shown as clipped


def test_potential_figure_and_steps_figure_pass_the_referee():
    ds = _series()
    fig = rh.holo_potential_figure(ds)
    assert figure_problems(fig) == []
    (ax, cb), = _colour_bars(fig)
    assert ax.get_ylabel() == "ΔV from zero bias (V)" and cb.extend != "neither"
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert len(titles) == len(set(titles)) == 1              # the last frame is the most positive one: once
    log = xr.Dataset({"voltage": ("time", np.r_[np.zeros(50), np.full(100, 1.5)]),
                      "current": ("time", np.r_[np.zeros(50), np.full(100, 2.1e-10)])},
                     coords={"time": np.linspace(0, 60, 150)})
    steps = rh.holo_steps_figure(ds, log)
    assert figure_problems(steps) == []
    labels = [a.get_ylabel() for a in steps.axes]
    assert "current (pA)" in labels                          # 210 pA, as the viewer shows it


def test_fits_without_a_step_are_drawn_hollow_and_said_so():
    ds = _series()
    fig = rh.holo_steps_figure(ds)
    legend = fig.axes[2].get_legend()
    assert legend is not None and any("no step found" in t.get_text() for t in legend.get_texts())


def test_current_unit_is_the_same_in_the_figure_and_the_viewer(tmp_path):
    ds = _series()
    log = xr.Dataset({"voltage": ("time", np.full(40, 1.5)), "current": ("time", np.full(40, 3.0e-11))},
                     coords={"time": np.linspace(0, 60, 40)})
    fig = rh.holo_steps_figure(ds, log)
    page = rh.holography_writers()["viewer.html"]
    page(tmp_path / "v.html", series=ds, scalars=ds.drop_vars("potential"), log=log)
    data = json.loads((tmp_path / "v.html").read_text().split("const D = ", 1)[1].split(";\n", 1)[0])
    assert data["current"]["unit"] == "pA" and "current (pA)" in [a.get_ylabel() for a in fig.axes]


def test_gif_is_written_with_grey_no_data(tmp_path):
    from PIL import Image

    ds = _series(n=6)
    path = rh.holo_movie(ds, tmp_path / "m.gif")
    with Image.open(path) as im:
        assert im.n_frames == 6
        im.seek(3)
        rgb = np.asarray(im.convert("RGB"))
    # the vacuum rows (NaN) are grey, not white: white is ΔV = 0 on this colour map
    grey = np.all(np.abs(rgb.astype(int) - 199) <= 6, axis=-1)
    assert grey.sum() > 50


@pytest.mark.slow
def test_run_holography_takes_the_writers_it_is_given(tmp_path):
    from ionscope.operando import run_holography
    from ionscope.simulate import biased_holograms

    holos, refs, log, truth = biased_holograms(programme=[("rest", 20), ("hold", 1.5, 30)], shape=(128, 128),
                                               pixel_nm=2.0, dose=1000.0, seed=1)
    calls = []
    writers = {"figures/mine.png": lambda p, *, series, scalars, log: (calls.append(sorted(scalars.data_vars)),
                                                                       open(p, "wb").write(b"png"))}
    res = run_holography({"holography": {"thickness_nm": 60.0, "drift": "none"}}, holograms=holos,
                         references=refs, log=log, output=tmp_path / "run", writers=writers)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted(s["files"]) == ["curves.csv", "figures/mine.png"] and calls and "step_v" in calls[0]
    assert res.summary["n_time_points"] == truth.sizes["time"]
    assert not (tmp_path / "run" / "viewer.html").exists()   # nothing drawn that was not asked for
