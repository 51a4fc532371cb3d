# SPDX-License-Identifier: GPL-3.0-or-later
"""`holo profile` on one hologram measures the whole potential change across the interface (mean inner
potentials + space-charge step), and its JSON and help say so."""
from __future__ import annotations

import json

import numpy as np

from ionscope.cli import main
from ionscope.io import save
from ionscope.simulate import hologram


def test_single_hologram_step_is_the_whole_change_and_says_so(tmp_path, capsys):
    h, ref, truth = hologram(shape=(384, 384), seed=0)   # 0.5 nm/px, Cu | electrolyte | Cu, vacuum at the top
    x1 = truth.attrs["interface_x_nm"][0]
    box = truth.attrs["vacuum_edge_y_nm"] - 10
    save(h, tmp_path / "h.nc")
    save(ref, tmp_path / "r.nc")
    assert main(["holo", "reconstruct", str(tmp_path / "h.nc"), "--vacuum", str(tmp_path / "r.nc"),
                 "-o", str(tmp_path / "w.nc"), "-q"]) == 0
    assert main(["holo", "profile", str(tmp_path / "w.nc"), "--start-nm", "120", str(x1 - 15), "--end-nm", "120",
                 str(x1 + 15), "--width-nm", "40", "--thickness-nm", "60", "--ramp-box-nm", "0", "0", str(box), "190",
                 "-o", str(tmp_path / "fit.json")]) == 0
    capsys.readouterr()
    fit = json.loads((tmp_path / "fit.json").read_text())
    pot = truth.potential.sel(y=120, method="nearest")
    whole = float(pot.sel(x=x1 + 15, method="nearest") - pot.sel(x=x1 - 15, method="nearest"))   # 14 − 20 + 1.3 V
    space_charge = truth.attrs["step_left_v"]
    assert abs(fit["step"] - whole) < 4 * fit["step_err"] + 0.1, (fit["step"], whole)
    assert abs(fit["step"] - space_charge) > 2.0   # not the space-charge step alone
    assert "mean-inner-potential" in fit["step_meaning"] and "bias states" in fit["step_meaning"]
    assert np.isclose(whole, truth.attrs["mip_v"][1] - truth.attrs["mip_v"][0] + space_charge, atol=0.05)


def test_help_says_what_the_step_mixes(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["holo", "profile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "mean inner potentials" in text and "space-charge step" in text
