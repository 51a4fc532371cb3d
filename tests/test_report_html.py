# SPDX-License-Identifier: GPL-3.0-or-later
"""report.html as a reader sees it: human labels and units, σ beside its number, yes/no, captions that say
what a figure shows — and, on the whole quick demo, no raw key anywhere and every figure passing the referee."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from ionscope.report._html import CAPTIONS, _numbers_table, write_html_report


class _Cells(HTMLParser):
    """Row headers (th), their classes, and figure captions of a report page."""

    def __init__(self):
        super().__init__()
        self.th, self.raw, self.captions, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "figcaption"):
            self._in = (tag, dict(attrs).get("class") or "")
            self._buf = ""

    def handle_data(self, data):
        if self._in:
            self._buf += data

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            if tag == "th":
                self.th.append(self._buf.strip())
                if "raw" in self._in[1].split():
                    self.raw.append(self._buf.strip())
            else:
                self.captions.append(self._buf.strip())
            self._in = None


def _cells(text: str) -> _Cells:
    c = _Cells()
    c.feed(text)
    return c


#: what the issue found on the page: dotted keys ("stage seconds.limap"), snake_case names ("co_l") — but not a
#: symbol with a subscript (J_y)
RAW = re.compile(r"[A-Za-z]\.[A-Za-z]|[a-z]{2,}_[a-z]")


def test_numbers_get_names_units_sigma_and_yes_no():
    html = _numbers_table({"k_calibrated": 1.0094, "k_std": 0.0771, "thinning_warning": 1, "current_a": 6.97e-15,
                           "stage_seconds": {"limap": 5.97, "energy_drift": 1.82},
                           "fourier": {"step_v": 1.0026, "step_err_v": 0.0061, "width_nm": 3.66, "width_err_nm": 0.19},
                           "co_l_shape": {"y": 48, "x": 64, "energy": 240}})
    c = _cells(html)
    assert not c.raw and not [t for t in c.th if RAW.search(t)], c.th
    assert "1.009 ± 0.077" in html and "σ of k" not in html         # σ beside its number, not a row of its own
    assert ">yes<" in html and ">1<" not in html                      # a yes/no answer, not a count
    assert ">6.97<" in html and ">fA<" in html                        # SI prefix for a current
    assert "1.0026 ± 0.0061" in html and "3.66 ± 0.19" in html
    assert "time per pipeline stage" in c.th and "energy drift" in c.th
    assert "48 × 64 × 240 (y × x × energy)" in html


def test_an_unknown_key_is_marked_so_tests_find_it():
    c = _cells(_numbers_table({"mystery_value": 3.0, "timing": {"mlls_s": 1.5}}))
    assert c.raw == ["mystery value", "timing", "mlls"]


def test_figure_captions_say_what_is_shown(tmp_path):
    import numpy as np

    from ionscope.report import save_figure
    from ionscope.report._style import subplots

    fig, ax = subplots()
    ax.plot(np.arange(3))
    png = save_figure(fig, tmp_path / "flux_map.png")
    other = save_figure(subplots()[0], tmp_path / "mine.png")
    page = write_html_report(tmp_path / "r.html", title="t",
                             sections=[{"title": "s", "figures": [png, (other, "my own caption")]}])
    c = _cells(page.read_text())
    assert c.captions == [CAPTIONS["flux_map"], "my own caption"]


# --------------------------------------------------------------------------- the whole quick demo
@pytest.fixture
def demo(quick_demo):
    """The session's one ``ionscope demo --quick`` (tests/conftest.py), every figure kept as saved."""
    status, out, _, figures = quick_demo
    return status, out, figures


def test_demo_pages_have_no_raw_keys(demo):
    status, out, _ = demo
    assert status == 0
    for page in ("report.html", "operando/report.html"):
        c = _cells((out / page).read_text())
        assert c.raw == [], f"{page}: names only from the key's spelling: {c.raw}"
        assert [t for t in c.th if RAW.search(t)] == [], page
        # captions say what is shown, not the file's name
        assert c.captions and all(len(cap.split()) >= 6 for cap in c.captions), c.captions


def test_demo_numbers_carry_their_sigma(demo):
    _, out, _ = demo
    text = (out / "report.html").read_text()
    c = _cells(text)
    summary = json.loads((out / "summary.json").read_text())["steps"]
    # an estimate with a σ in the results is shown as "value ± σ", and its σ is not a row of its own
    assert "σ of k" not in c.th and text.count(" ± ") >= 8
    op = summary["operando"]["results"]
    assert "through_fraction_std" in op and op["through_fraction_std"] > 0
    assert "net_flux_toward_electrolyte_charge_std" in op
    run = json.loads((out / "operando" / "summary.json").read_text())
    assert run["through_fraction_std"] > 0 and run["net_toward_electrolyte_std"] > 0
    assert isinstance(run["thinning_warning"], bool)
    # x lies in 0-1: the share of map pixels outside is reported
    assert set(run["x_outside_0_1"]) == {"raw_below_0", "raw_above_1", "denoised_below_0", "denoised_above_1"}


def test_every_demo_figure_passes_the_referee(demo):
    from test_report_style import figure_problems

    _, _, figures = demo
    assert len(figures) >= 12, sorted(figures)
    found = {name: figure_problems(fig) for name, fig in figures.items()}
    assert {k: v for k, v in found.items() if v} == {}


def test_bounded_x_maps_stop_at_1(demo):
    """The x maps' colour scales (demo figures and the viewer) never extend beyond x = 1."""
    from test_report_style import _colour_bars

    _, out, figures = demo
    for name in ("figures/eels_limaps.png", "figures/denoise.png", "figures/simulate.png"):
        for ax, cb in _colour_bars(figures[name]):
            if "LixCoO2" in ax.get_ylabel():
                assert 0.0 <= cb.mappable.norm.vmin and cb.mappable.norm.vmax <= 1.0, (name, cb.mappable.norm.vmax)
    page = (out / "operando" / "viewer.html").read_text()
    data = json.loads(page.split("const D = ", 1)[1].split(";\n", 1)[0])
    assert data["bounds"] == [0.0, 1.0] and 0.0 <= data["lo"] < data["hi"] <= 1.0
