# SPDX-License-Identifier: GPL-3.0-or-later
"""A log value no biasing holder or potentiostat gives is refused with its line (s28seams).

Found: a battery log in mV whose header states no unit was read as 3900 V, and a corrupt cell (1e30 V) as a
bias, both without a word — the holography night and the EELS sync took them as given. The bounds
(|V| ≤ 1000 V, |I| ≤ 10 A) lie far beyond any in-situ holder (the real Protochips export: 40 V, 18 mA).
"""
from __future__ import annotations

import pytest

from ionscope.errors import DataValidationError
from ionscope.io import read_log


@pytest.mark.parametrize("rows, match", [
    ("time,voltage,current\n0,3900,1e-9\n10,3950,1e-9\n", r"line 2, line 3 \(column 'voltage'\): the voltage 3900 V"),
    ("time,voltage,current\n0,3.9,1e-9\n10,1e30,1e-9\n20,3.9,1e-9\n", r"line 3 .*the voltage 1e\+30 V"),
    ("time,voltage,current\n0,3.9,25\n10,3.9,1e-9\n", r"line 2 \(column 'current'\): the current 25 A"),
])
def test_impossible_log_values_are_refused_with_their_line(tmp_path, rows, match):
    p = tmp_path / "log.csv"
    p.write_text(rows)
    with pytest.raises(DataValidationError, match=match):
        read_log(p)


def test_the_same_values_with_their_unit_are_read(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("time,voltage (mV),current (uA)\n0,3900,25\n10,3950,25\n")
    log = read_log(p)
    assert log.voltage.values.tolist() == [3.9, 3.95] and log.current.values.tolist() == pytest.approx([2.5e-5] * 2)
