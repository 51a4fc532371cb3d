# SPDX-License-Identifier: GPL-3.0-or-later
"""The figure style: no global matplotlib state touched, robust and bounded colour scales, one SI-prefix rule.

``figure_problems`` is the referee's check every figure test uses: one label per colour bar, extend arrows
exactly where data go beyond the colour limits, no overlapping texts, and no axis label standing right beside
a colour bar's label (where it reads as that bar's second label).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ionscope.report import _style, map_grid, plot_map


# --------------------------------------------------------------------------- the referee's check
def _texts(fig):
    """(artist, window extent) of every text a drawn figure shows (tick labels: only of the ticks drawn)."""
    from matplotlib.text import Text

    tick_labels, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((id(tick.label1), id(tick.label2)))
            if ax.get_visible() and axis.get_visible():
                for tick in axis._update_ticks():  # the ticks inside the view: those drawn
                    drawn += [lab for lab in (tick.label1, tick.label2) if lab.get_visible()]
    out = []
    for t in [t for t in fig.findobj(Text) if id(t) not in tick_labels] + drawn:
        if not t.get_visible() or not t.get_text().strip() or t.axes is not None and not t.axes.get_visible():
            continue
        bb = t.get_window_extent()
        if bb.width > 0 and bb.height > 0:
            out.append((t, bb))
    return out


def _colour_bars(fig):
    """(colour-bar axes, Colorbar) of a figure."""
    return [(ax, ax._colorbar) for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def figure_problems(fig, *, min_gap_px: float = 30.0) -> list[str]:
    """What a referee would mark on a figure (empty when nothing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with _style.style():
        FigureCanvasAgg(fig).draw()
    problems = []
    for ax, cb in _colour_bars(fig):
        labels = [t for t in (ax.get_ylabel(), ax.get_xlabel(), ax.get_title()) if t.strip()]
        if len(labels) != 1:
            problems.append(f"colour bar with {len(labels)} labels: {labels}")
        m = cb.mappable
        # a shared colour bar serves every image drawn with the same limits and colour map: all their data count
        from matplotlib.image import AxesImage

        parents = getattr(ax, "_colorbar_info", {}).get("parents") or fig.axes  # the axes the bar was made for
        same = [im for a in parents for im in a.get_images() if isinstance(im, AxesImage)
                and im.norm.vmin == m.norm.vmin and im.norm.vmax == m.norm.vmax and im.cmap.name == m.cmap.name]
        arrays = [np.asarray(im.get_array(), float).ravel() for im in same + [m] if im.get_array() is not None]
        data = np.concatenate(arrays) if arrays else np.array([])
        data = data[np.isfinite(data)]
        if data.size and m.norm.vmin is not None:
            tol = 1e-9 * max(abs(m.norm.vmin), abs(m.norm.vmax), 1e-300)
            low, high = bool((data < m.norm.vmin - tol).any()), bool((data > m.norm.vmax + tol).any())
            want = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
            if want[(low, high)] != cb.extend and not (cb.extend == "both" and (low or high)):
                problems.append(f"colour bar '{labels[0] if labels else ''}': extend={cb.extend!r} but data "
                                f"{'below' if low else ''}{' and ' if low and high else ''}{'above' if high else ''}"
                                f"{'within' if not (low or high) else ''} the limits")
    with _style.style():  # the tick locators read the font size: collect what the drawing inside the style shows
        texts = _texts(fig)
    for i, (a, ba) in enumerate(texts):
        for b, bb in texts[i + 1:]:
            if ba.shrunk(0.9, 0.8).overlaps(bb.shrunk(0.9, 0.8)):
                problems.append(f"texts overlap: {a.get_text()!r} and {b.get_text()!r}")
    # a vertical axis label right beside a colour bar's label reads as that bar's second label
    bar_axes = {ax for ax, _ in _colour_bars(fig)}
    for ax, _ in _colour_bars(fig):
        lab = ax.yaxis.label
        if not lab.get_text().strip() or lab.get_rotation() != 90:
            continue
        lb = lab.get_window_extent()
        for other in fig.axes:
            if other in bar_axes or not other.get_visible():
                continue
            ol = other.yaxis.label
            if not ol.get_text().strip():
                continue
            ob = ol.get_window_extent()
            side_by_side = ob.y0 < lb.y1 and lb.y0 < ob.y1
            gap = max(ob.x0 - lb.x1, lb.x0 - ob.x1)
            if side_by_side and gap < min_gap_px:
                problems.append(f"axis label {ol.get_text()!r} stands {gap:.0f} px beside the colour bar label "
                                f"{lab.get_text()!r}")
    return problems


# --------------------------------------------------------------------------- no global state
_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile, pathlib
    import numpy as np
    import matplotlib
    matplotlib.use("svg")                       # a user's backend that is not Agg
    matplotlib.rcParams["font.size"] = 13.0     # and a user's own rcParams
    matplotlib.rcParams["image.interpolation"] = "bilinear"
    import matplotlib.pyplot as plt
    backend = matplotlib.get_backend()
    before = {k: repr(v) for k, v in matplotlib.rcParams.items()}
    from ionscope.data import calibrated
    from ionscope.report import (flux_map, li_movie, map_grid, plot_map, save_figure, write_html_report,
                                 write_viewer)
    from ionscope.operando import analyse
    out = pathlib.Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    da = calibrated(rng.random((16, 20)) * 1.2, ("y", "x"), scale={"y": 2.0, "x": 2.0}, name="li")
    da.attrs["quantity"] = "x"
    plot_map(da)                                # the notebook helper: on the user's backend
    save_figure(map_grid(da), out / "grid.png")
    t = np.arange(6.0)[:, None, None]
    an = analyse(calibrated(1.0 - 0.01 * t * np.ones((6, 16, 8)) + 0.001 * rng.normal(size=(6, 16, 8)),
                            ("time", "y", "x"), scale={"time": 60.0, "y": 2.0, "x": 2.0}, name="li"))
    save_figure(flux_map(an), out / "flux.png")
    li_movie(out / "m.gif", {"raw": rng.random((3, 8, 8))}, ["a", "b", "c"], fps=2)
    v = write_viewer(out / "v.html", raw=rng.random((3, 8, 8)), times=[0, 60, 120])
    write_html_report(out / "r.html", title="t", sections=[{"title": "s", "figures": [out / "grid.png"],
                                                              "numbers": {"through_fraction": 0.5}, "viewer": v}])
    after = {k: repr(v) for k, v in matplotlib.rcParams.items()}
    changed = sorted(k for k in before if before[k] != after[k])
    print(json.dumps({"backend_before": backend, "backend_after": matplotlib.get_backend(), "changed": changed,
                      "open_figures": plt.get_fignums()}))
""")


def test_plotting_leaves_the_users_backend_and_rcparams_unchanged():
    """plot_map, figures, a movie, a viewer and a report page: backend and rcParams as the user set them."""
    import json

    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    env["IONSCOPE_PROGRESS"] = "0"
    res = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backend_before"] == out["backend_after"] == "svg"
    assert out["changed"] == []
    assert out["open_figures"] == [1]  # only plot_map's figure, which the notebook user asked for


def test_style_is_a_context_and_figures_are_not_held_by_pyplot():
    import matplotlib
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    n_open = len(plt.get_fignums())
    fig, ax = _style.subplots(figsize=(3, 2))
    with _style.style():
        assert matplotlib.rcParams["font.size"] == _style.RC["font.size"]
    assert dict(matplotlib.rcParams) == before
    assert len(plt.get_fignums()) == n_open  # made without pyplot: nothing to close, nothing leaks
    assert fig.get_size_inches().tolist() == [3.0, 2.0]


# --------------------------------------------------------------------------- colour scales
def test_colour_scale_is_robust_and_shows_clipping():
    v = np.r_[np.linspace(0.0, 1.0, 990), np.full(5, 50.0), np.full(5, -50.0)]  # 1 % outliers
    sc = _style.colour_scale(v)
    assert 0.0 <= sc.vmin < 0.05 and 0.95 < sc.vmax <= 1.0  # the outliers do not set the scale
    assert sc.extend == "both" and sc.below == pytest.approx(0.01, abs=0.002)  # 1st percentile: 1 % below
    inside = _style.colour_scale(np.linspace(0, 1, 100), percentiles=(0, 100))
    assert inside.extend == "neither"
    sym = _style.colour_scale(np.r_[np.linspace(-1, 2, 999), [40.0]], symmetric=True)
    assert sym.vmin == -sym.vmax and sym.extend == "max"


def test_bounded_quantity_never_gets_a_scale_beyond_its_bounds():
    rng = np.random.default_rng(3)
    x = np.clip(rng.normal(0.8, 0.25, 5000), -0.3, 1.6)  # a noisy x map: about 21 % above 1
    sc = _style.colour_scale(x, bounds=(0.0, 1.0))
    assert sc.vmax == 1.0 and sc.vmin >= 0.0 and sc.extend in ("max", "both")
    assert sc.above_bound == pytest.approx(np.mean(x > 1), abs=1e-12)
    assert sc.below_bound == pytest.approx(np.mean(x < 0), abs=1e-12)
    note = sc.note("x")
    assert "x > 1" in note and "x < 0" in note and f"{100 * sc.above_bound:.0f} %" in note
    # every value inside: no note
    assert _style.colour_scale(np.linspace(0.1, 0.9, 50), bounds=(0, 1)).note() == ""


def test_map_grid_of_x_stops_at_1_and_reports_the_pixels_beyond():
    from ionscope.data import calibrated

    rng = np.random.default_rng(4)
    da = calibrated(rng.normal(0.85, 0.2, (4, 12, 16)), ("time", "y", "x"),
                    scale={"time": 60.0, "y": 5.0, "x": 5.0}, name="li")
    da.attrs.update(quantity="x", units="1")
    fig = map_grid_ = map_grid(da)
    bars = _colour_bars(map_grid_)
    assert len(bars) == 1
    ax, cb = bars[0]
    assert ax.get_ylabel() == "x in LixCoO2"  # the quantity, no "(1)"
    assert cb.mappable.norm.vmax == 1.0 and cb.extend in ("max", "both")
    assert "x > 1" in fig._suptitle.get_text()
    assert figure_problems(fig) == []


def test_plot_map_draws_a_bounded_map_honestly():
    import matplotlib.pyplot as plt
    import xarray as xr

    da = xr.DataArray(np.linspace(-0.2, 1.3, 12 * 10).reshape(12, 10), dims=("y", "x"), name="li",
                      attrs={"quantity": "x"})
    ax = plot_map(da)
    cb_ax, cb = _colour_bars(ax.figure)[0]
    assert cb.mappable.norm.vmin >= 0 and cb.mappable.norm.vmax == 1.0 and cb.extend == "both"
    assert "x < 0" in ax.get_title() and "x > 1" in ax.get_title()
    assert figure_problems(ax.figure) == []
    plt.close(ax.figure)


def test_the_referee_catches_what_it_should():
    """figure_problems fails for real: a bar with clipped data and no arrows, and a second label beside a bar."""
    fig, (a1, a2) = _style.subplots(1, 2, figsize=(6, 3), layout="constrained")
    im = a1.imshow(np.linspace(0, 2, 100).reshape(10, 10), vmin=0, vmax=1)
    fig.colorbar(im, ax=a1, label="Δφ (rad)")   # data above 1, no extend arrow
    a2.plot([0, 1])
    a2.set_ylabel("ΔV (V)")                      # right beside the bar's label
    found = figure_problems(fig)
    assert any("extend='neither'" in p for p in found)
    assert any("beside the colour bar label" in p for p in found)
    # a bar shared by two panels: the other panel's data count too
    fig, axes = _style.subplots(1, 2, figsize=(5, 2.5), layout="constrained")
    axes[0].imshow(np.linspace(0, 2, 100).reshape(10, 10), vmin=0, vmax=1)
    im = axes[1].imshow(np.linspace(0, 1, 100).reshape(10, 10), vmin=0, vmax=1)
    fig.colorbar(im, ax=list(axes), label="x in LixCoO2")
    assert any("data above the limits" in p for p in figure_problems(fig))


# --------------------------------------------------------------------------- units
def test_one_si_prefix_rule_and_the_charge_follows_the_current():
    assert _style.si_prefix([3e-10, -2e-10], "A") == (1e12, "pA")     # 300 pA, not 0.3 nA
    assert _style.si_prefix([0.0], "A") == (1.0, "A")
    assert _style.si_prefix([2.5e3], "V") == (1e-3, "kV")
    # a live run accumulates charge: its unit is the current's, so it never switches fC -> pC mid-run
    for q_so_far in (3e-14, 9e-13, 4e-12):
        assert _style.charge_prefix([0.0, q_so_far], current=[7e-15, -7e-15]) == (1e15, "fC")
    assert _style.charge_prefix([0.0, 4e-12]) == (1e12, "pC")


def test_with_sigma_rounds_value_to_its_sigma():
    assert _style.with_sigma(0.80928, 0.03144) == "0.809 ± 0.031"
    assert _style.with_sigma(-1.14, 17.0, unit="V") == "-1 ± 17 V"
    assert _style.with_sigma(89.7, 1.2e3) == "100 ± 1200"
    assert _style.with_sigma(1.0, float("nan")) == "1 ± ?"
