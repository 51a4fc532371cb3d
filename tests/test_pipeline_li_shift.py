# SPDX-License-Identifier: GPL-3.0-or-later
"""The night's Li-K chemical shift (``pipeline/_li_shift_night.py``, ``[limap] chemical_shift``; issue 19 item 4).

Two-region references that leave their Li-K shift open are fixed for the whole night: the shift is measured
once on the night's first usable frame (energy and specimen drift undone), stored in the stage cache, and every
frame — live or in the final run — is fitted with it. References with a stored shift, or with one Li-K shape,
give the maps of a run without this step, bit for bit.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ionscope.errors import ConfigError
from ionscope.pipeline import from_dict, run
from ionscope.pipeline import _li_shift_night as night_shift

FIT = [45.0, 85.0]
SIM = dict(shape=(24, 32), n_frames=3, physics="realistic", noise=False, seed=3)
#: the simulator's own Li-K shift between two x, noise-free, as measured on one 24×32 frame: 0.197 eV for 0.250
#: (references' regions of 96 and 448 pixels; tests/test_cli_refs_shift.py allows the same 0.1 eV)
SHIFT_TOL_EV = 0.1
#: median x error of the pixels at x 0.05–0.5 (beyond both regions' x): 0.001 measured (0.061 with the open shift
#: fitted as the two rows)
X_TOL = 0.02


def _regions(truth, frame_zarr):
    x0 = truth.x_li.isel(time=0)
    mean = x0.mean("x").values
    rich = np.flatnonzero((x0 > 0.9).all("x").values)
    poor = np.flatnonzero((mean > 0.6) & (mean < 0.88))
    assert rich.size >= 2 and poor.size >= 2
    xr_ = float(x0.isel(y=slice(rich[0], rich[-1] + 1)).mean())
    xp = float(x0.isel(y=slice(poor[0], poor[-1] + 1)).mean())
    nx = x0.sizes["x"]
    args = ["refs", "regions", str(frame_zarr), "--region-px", f"rich={rich[0]}:{rich[-1] + 1},0:{nx}",
            "--region-px", f"poor={poor[0]}:{poor[-1] + 1},0:{nx}", "--composition", f"rich:Li={xr_},Co=1",
            "--composition", f"poor:Li={xp},Co=1", "--fit-range", *map(str, FIT), "-q"]
    return args, truth.attrs["li_chemical_shift_ev"] / 0.5 * (xr_ - xp)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A noise-free realistic night with an energy drift and a specimen drift; references from frame 0's
    regions with the shift left open."""
    import ionscope.io as iio
    from ionscope.cli import main
    from ionscope.simulate import operando_eels

    d = tmp_path_factory.mktemp("li_shift_night")
    si, truth, log = operando_eels(energy_drift_ev=0.3, specimen_drift_px=1.0, **SIM)
    iio.save(si, d / "series.zarr")
    iio.save(si.isel(time=0), d / "frame0.zarr")
    args, true_delta = _regions(truth, d / "frame0.zarr")
    assert main(args + ["--chemical-shift", "open", "-o", str(d / "open.nc")]) == 0
    night_shift._MEMO.clear()
    res = run(_config(d, "measured", d / "open.nc"), log=log, show_progress=False)  # the whole night
    return {"d": d, "truth": truth, "log": log, "true_delta": true_delta, "measured": res}


def _config(d, out, refs, **limap):
    return {"input": {"series": str(d / "series.zarr"), "frame_interval_s": 60.0}, "output": {"dir": str(d / out)},
            "limap": {"fit_range": FIT, "references": str(refs), **limap}, "register": {"window_ev": [40.0, 60.0]},
            "denoise": {"method": "none"}, "report": {"movies": [], "viewer": False, "figures": False}}


def _x_bias(ds, truth, lo, hi):
    x = (ds.li / ds.co).values
    xt = truth.x_li.values
    m = (xt >= lo) & (xt < hi)
    return float(np.nanmedian(x[m] - xt[m])), int(m.sum())


def _same_maps(a, b):
    for name in ("li", "li_std", "co", "chi2", "thickness", "zero_loss"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_the_night_measures_the_open_shift_on_its_first_frame(scene):
    res, truth = scene["measured"], scene["truth"]
    ds = res.dataset("limap").load()
    delta = ds.attrs["li_k_shift_ev"]
    assert abs(delta - scene["true_delta"]) < SHIFT_TOL_EV
    assert ds.attrs["li_k_shift_frames"] == "0" and "frame 0" in ds.attrs["li_k_shift_measured_on"]
    assert ds.attrs["li_k_shift_at_bound"] == 0
    assert 0 < ds.attrs["li_k_shift_std_ev"] < 0.2
    assert "linear in x" in ds.attrs["chemical_shift"]  # each pixel fitted with the Li-K shape at its own x
    bias, n = _x_bias(ds, truth, 0.05, 0.5)  # beyond both regions' x (0.75 and 0.96)
    assert n > 300 and abs(bias) < X_TOL, bias


def test_the_shift_is_in_the_summary_and_the_report(scene, tmp_path):
    import json

    from ionscope.report import write_run_report

    res = scene["measured"]
    attrs = res.dataset("limap").attrs
    summary = res.summary()
    assert summary["li_k_shift_ev"] == attrs["li_k_shift_ev"]
    assert "first usable frame" in summary["li_k_shift_source"]
    assert summary["li_k_shift_measured_on"] == attrs["li_k_shift_measured_on"]
    files = write_run_report(res, tmp_path / "report", show_progress=False)
    written = json.loads(files["summary.json"].read_text())
    assert written["li_k_shift_ev"] == attrs["li_k_shift_ev"]
    assert written["li_k_shift_std_ev"] == attrs["li_k_shift_std_ev"]
    page = files["report.html"].read_text()
    assert "Li-K chemical shift between the references" in page and "Li-K shift: measured on" in page
    # determined, and what its σ leaves out, said in both
    assert written["li_k_shift_determined"] == 1 and written["li_k_shift_measured_ev"] == attrs["li_k_shift_ev"]
    assert "references' own noise" in written["li_k_shift_std_note"] and "what its σ leaves out" in page


@pytest.mark.slow  # a night refitted with a faked measurement; the determined path is in the fast tests above
def test_a_shift_the_first_frame_does_not_determine_is_flagged_and_not_used(scene, tmp_path, monkeypatch):
    """At the end of the searched range (here faked: the far end, 1.5 eV) the night is fitted with 0 eV, the
    regions' shapes as they are, and summary.json / report.html say the shift was not determined."""
    import json

    from ionscope.report import write_run_report

    d = scene["d"]

    def at_bound(ctx, *, series, **k):
        return {"li_k_shift_ev": 1.5, "li_k_shift_std_ev": float("nan"), "measured_on": "frame 0 (faked)",
                "frames": "0", "frame_identity": night_shift._identity(ctx, series.time.values[0]), "at_bound": 1,
                "seconds": 0.0}

    monkeypatch.setattr(night_shift, "_measure", at_bound)
    night_shift._MEMO.clear()
    with pytest.warns(RuntimeWarning, match="does not determine it"):
        res = run(_config(d, "undetermined", d / "open.nc"), log=scene["log"], show_progress=False)
    night_shift._MEMO.clear()
    ds = res.dataset("limap").load()
    assert ds.attrs["li_k_shift_determined"] == 0 and ds.attrs["li_k_shift_measured_ev"] == 1.5
    assert ds.attrs["li_k_shift_ev"] == night_shift.UNDETERMINED_EV == 0.0
    given = run(_config(d, "zero", d / "open.nc", chemical_shift=0.0), log=scene["log"], show_progress=False,
                stages=("limap",)).dataset("limap").load()
    _same_maps(ds, given)
    files = write_run_report(res, tmp_path / "report", show_progress=False)
    written = json.loads(files["summary.json"].read_text())
    assert written["li_k_shift_determined"] == 0 and "NOT DETERMINED" in written["li_k_shift_source"]
    assert "NOT determined" in files["report.html"].read_text()


def test_references_from_large_noise_free_regions_raise_no_references_noise_flag(scene):
    """The references' own noise (issue 19): noise-free regions of 96 and 448 pixels carry next to none, so
    the run does not flag it (the noisy case: tests/test_pipeline_refs_noise.py, slow tier)."""
    res = scene["measured"]
    limap = res.dataset("limap")
    assert {"li_std_references", "ratio_std_references", "references_rho"} <= set(limap.data_vars)
    frac = res.dataset("fraction").attrs
    assert frac["references_noise_warning"] == 0
    assert frac["references_x_std_beyond"] < 0.01 and frac["references_beyond_pixels"] > 300
    assert "averaging pixels or frames does not shrink it" in frac["references_noise_note"]


@pytest.mark.slow  # the previous behaviour, an option: the two-row fit runs fast in test_eels_chemical_shift
def test_open_keeps_the_previous_fit_which_reads_x_high_beyond_the_regions(scene):
    d = scene["d"]
    with pytest.warns(RuntimeWarning, match="li_k_shift_ev is NaN"):
        res = run(_config(d, "open", d / "open.nc", chemical_shift="open"), log=scene["log"],
                  show_progress=False, stages=("limap",))
    ds = res.dataset("limap").load()
    assert "li_k_shift_ev" not in ds.attrs and "chemical_shift" not in ds.attrs
    bias, _ = _x_bias(ds, scene["truth"], 0.05, 0.5)
    assert bias > 2 * X_TOL  # what measuring the shift removes (+0.061 measured)


def test_a_stored_or_given_shift_gives_the_measured_maps_bit_for_bit(scene, monkeypatch):
    import ionscope.io as iio

    d, measured = scene["d"], scene["measured"].dataset("limap").load()
    delta = measured.attrs["li_k_shift_ev"]
    refs = iio.load(d / "open.nc")
    refs.attrs["li_k_shift_ev"] = delta
    iio.save(refs, d / "stored.nc")

    def refuse(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(night_shift, "_measure", refuse)
    stored = run(_config(d, "stored", d / "stored.nc"), log=scene["log"], show_progress=False, stages=("limap",))
    ds_s = stored.dataset("limap").load()
    # a stored shift: the fit is planned exactly as without the night's step (no record, no extra attributes)
    assert stored.cache.stored_key(night_shift.GROUP) is None
    assert ds_s.attrs["li_k_shift_source"] == "references" and "li_k_shift_measured_on" not in ds_s.attrs
    # ... and the night fitted every frame with the shift it measured
    _same_maps(ds_s, measured)
    given = run(_config(d, "given", d / "open.nc", chemical_shift=delta), log=scene["log"], show_progress=False,
                stages=("limap",))
    _same_maps(given.dataset("limap").load(), measured)


def _bypass(monkeypatch):
    """The Li-map stage as it was before the night's step (its references passed on untouched)."""
    monkeypatch.setattr(night_shift, "night_references", lambda ctx, **kw: (ctx["references"], {}))
    monkeypatch.setattr(night_shift, "limap_params", lambda ctx, series: {})


@pytest.mark.parametrize("refs", ["stored", "one-shape"])
def test_stored_shift_and_one_shape_are_the_fit_without_the_step(scene, refs, monkeypatch):
    d = scene["d"]
    path = d / "stored.nc" if refs == "stored" else "simulated-realistic"
    if refs == "stored" and not path.exists():
        pytest.skip("made by the test before")
    # with the stored shift: the folder the test before ran into (its Li maps from the stage cache, the same
    # configuration); the one-shape references: a fresh run
    new = run(_config(d, "stored" if refs == "stored" else f"{refs}-new", path), log=scene["log"],
              show_progress=False, stages=("limap",))
    with monkeypatch.context() as mp:
        _bypass(mp)
        old = run(_config(d, f"{refs}-old", path), log=scene["log"], show_progress=False, stages=("limap",))
    a, b = new.dataset("limap").load(), old.dataset("limap").load()
    _same_maps(a, b)
    assert a.attrs == b.attrs
    # the same stage key as before the step (a cache made before stays valid)
    assert new.stages["limap"].key == old.stages["limap"].key


def test_resume_reuses_the_stored_shift_and_new_references_measure_again(scene, monkeypatch):
    import ionscope.io as iio

    d, measured = scene["d"], scene["measured"]
    first = measured.dataset("limap").load()
    measured.cache.discard("limap")  # a run killed while it wrote the Li maps

    def refuse(*a, **k):
        raise AssertionError("measured again")

    with monkeypatch.context() as mp:
        mp.setattr(night_shift, "_measure", refuse)
        night_shift._MEMO.clear()
        again = run(_config(d, "measured", d / "open.nc"), log=scene["log"], show_progress=False,
                    stages=("limap",))
    ds = again.dataset("limap").load()
    assert not again.stages["limap"].cached
    assert ds.attrs == first.attrs
    _same_maps(ds, first)
    # a changed reference file (other bytes): its shift is measured again
    refs = iio.load(d / "open.nc")
    refs.attrs["note"] = "edited"
    iio.save(refs, d / "edited.nc")
    calls = []
    real = night_shift._measure
    monkeypatch.setattr(night_shift, "_measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    night_shift._MEMO.clear()
    edited = run(_config(d, "measured", d / "edited.nc"), log=scene["log"], show_progress=False, stages=("limap",))
    assert calls == [1]
    assert edited.dataset("limap").attrs["li_k_shift_ev"] == first.attrs["li_k_shift_ev"]  # same data, same shift


def test_the_config_key(scene):
    for value in ("measure", "open", "off", 0.3, -1):
        assert from_dict({"limap": {"chemical_shift": value}}).limap.chemical_shift == value
    assert from_dict({}).limap.chemical_shift == "measure"
    for bad in ("soon", True, float("nan"), [0.3]):
        with pytest.raises(ConfigError, match=r"\[limap\] chemical_shift"):
            from_dict({"limap": {"chemical_shift": bad}})


def test_off_fits_the_two_rows_even_with_a_stored_shift(scene):
    d = scene["d"]
    if not (d / "stored.nc").exists():
        pytest.skip("made by an earlier test")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # off: no open-shift warning either
        res = run(_config(d, "off", d / "stored.nc", chemical_shift="off"), log=scene["log"], show_progress=False,
                  stages=("limap",))
    ds = res.dataset("limap").load()
    assert "chemical_shift" not in ds.attrs and "off" in ds.attrs["li_k_shift_source"]


def test_a_shift_at_the_search_bound_warns():
    with pytest.warns(RuntimeWarning, match="end of the searched range"):
        night_shift._warn_undetermined(0.0, float("nan"), {"at_bound": 1, "measured_on": "frame 0 (t = 30 s)"})
    assert not night_shift.determined(0.0, float("nan"), True) and night_shift.determined(0.2, 0.05, False)
    assert not night_shift.determined(0.1, 0.3, False)  # σ larger than the shift: not determined either
    t = np.array([0.0, 0.25, 0.5, 0.325, 0.4])
    assert night_shift.curvature_std(t, 100 * (t - 0.3) ** 2) == pytest.approx(0.1)
    assert np.isnan(night_shift.curvature_std(t, -(t - 0.3) ** 2))  # no minimum: no σ


def _live_night(tmp_path, **register):
    """A live session over a 3-frame folder with references that leave the shift open; its config, executor and
    sink, and the shift it stored in the night's stage cache (asserted: measured on frame 0, near the truth)."""
    from ionscope._outdir import session
    from ionscope.cli import main
    from ionscope.pipeline import FramesExecutor, MemorySink, StageCache, load_config
    from ionscope.simulate import acquire

    acq = acquire(tmp_path / "acq", speed=600.0, frame_interval_s=60.0, energy_drift_ev=0.3, specimen_drift_px=1.0,
                  **SIM)
    args, true_delta = _regions(acq.truth, acq.frames_dir / "frame_0000.nc")
    assert main(args + ["--chemical-shift", "open", "-o", str(tmp_path / "open.nc")]) == 0
    cfg = load_config(acq.config_path).replace(
        denoise={"method": "none"}, report={"movies": [], "viewer": False, "figures": False},
        register={"window_ev": [40.0, 60.0], **register}, output={"dir": str(tmp_path / "out")},
        limap={"references": str(tmp_path / "open.nc"), "fit_range": FIT})
    night_shift._MEMO.clear()
    sink = MemorySink()
    ex = FramesExecutor(cfg, sink=sink, settle_s=0.1, poll_s=0.03, late_s=0.5)
    with session(cfg.out_dir):
        ex.run()
    assert [r["frame"] for r in ex.records] == [0, 1, 2]
    # measured once, by the live session, on its first frame, and kept in the night's stage cache
    stored = StageCache(cfg.cache_path).load(night_shift.GROUP).load()
    assert abs(float(stored.li_k_shift_ev.values) - true_delta) < SHIFT_TOL_EV
    assert "frame 0" in stored.attrs["measured_on"]
    return cfg, ex, sink, stored


def _final_without_measuring(cfg):
    """The final run, refused a measurement (the process's memory cleared: only the stage cache can give it)."""
    def refuse(*a, **k):
        raise AssertionError("measured again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(night_shift, "_measure", refuse)
        night_shift._MEMO.clear()
        return run(cfg, show_progress=False)


def test_a_live_session_and_the_final_run_use_the_same_shift(tmp_path):
    cfg, ex, sink, stored = _live_night(tmp_path)
    delta = float(stored.li_k_shift_ev.values)
    final = _final_without_measuring(cfg)
    ds = final.dataset("limap").load()
    assert ds.attrs["li_k_shift_ev"] == delta and ds.attrs["li_k_shift_measured_on"] == stored.attrs["measured_on"]
    # the live maps: fitted with the same shift as the final run's (not its rows bit for bit: on spectra with their
    # zero-loss peak the zero-loss width, measured on the frames so far, is in every row's key, and the sink
    # holds float32)
    for r in ex.records:
        k = r["frame"]
        scale = float(np.nanmax(np.abs(ds.li.values[k])))
        assert np.nanmax(np.abs(sink.maps[k]["li"] - ds.li.values[k])) <= 1e-4 * scale


@pytest.mark.slow  # a second live path; the live session + final run sharing one shift stays fast
def test_a_causal_live_session_measures_once_and_keeps_it_with_its_reference(scene, monkeypatch):
    import ionscope.io as iio
    from ionscope.pipeline._live_eels import Reference, process_frame

    d = scene["d"]
    si = iio.load(d / "series.zarr")
    raw = _config(d, "causal", d / "open.nc")
    raw["register"]["reference"] = "mean"  # registration onto the running mean: maps in memory, no stage cache
    cfg = from_dict(raw)
    calls = []
    real = night_shift._measure
    monkeypatch.setattr(night_shift, "_measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    night_shift._MEMO.clear()
    ref = Reference("mean")
    for k in range(2):
        process_frame(si.isel(time=k), config=cfg, reference=ref, index=k, time_s=float(si.time.values[k]))
    assert calls == [1]
    measured = scene["measured"].dataset("limap").attrs["li_k_shift_ev"]
    assert ref.li_k_shift["li_k_shift_ev"] == pytest.approx(measured, abs=0.02)  # frame 0, as the batch run


@pytest.mark.slow  # the same step on the stage-by-stage path; the fused path stays fast
def test_the_stage_by_stage_fit_uses_the_same_shift(scene):
    d, measured = scene["d"], scene["measured"].dataset("limap").load()
    raw = _config(d, "staged", d / "open.nc")
    raw["compute"] = {"fused": False}  # the corrected series, then eels.mlls on it
    night_shift._MEMO.clear()  # measured again, on the stage-by-stage corrected first frame
    res = run(raw, log=scene["log"], show_progress=False, stages=("limap",))
    ds = res.dataset("limap").load()
    # measured on the same first frame (registered by the stage's own shift: the same numbers to rounding)
    assert ds.attrs["li_k_shift_ev"] == pytest.approx(measured.attrs["li_k_shift_ev"], abs=1e-6)
    assert ds.attrs["li_k_shift_measured_on"] == measured.attrs["li_k_shift_measured_on"]
    scale = float(np.nanmax(np.abs(measured.li.values)))
    assert np.nanmax(np.abs(ds.li.values - measured.li.values)) <= 1e-5 * scale


@pytest.mark.slow  # a whole causal live session and its final run; the exact live path's test stays fast
def test_a_causal_live_session_and_the_final_run_use_one_shift(tmp_path):
    """A causal session (registration onto the running mean: its rows stay in memory) measures the shift on its
    first frame and keeps it in the night's stage cache: the final run takes it instead of measuring again on its
    own (differently registered) first frame."""
    cfg, _, _, stored = _live_night(tmp_path, reference="mean")
    ds = _final_without_measuring(cfg).dataset("limap").load()
    assert ds.attrs["li_k_shift_ev"] == float(stored.li_k_shift_ev.values)
    assert ds.attrs["li_k_shift_measured_on"] == stored.attrs["measured_on"]
