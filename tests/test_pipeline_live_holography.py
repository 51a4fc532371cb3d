# SPDX-License-Identifier: GPL-3.0-or-later
"""``FramesExecutor`` on a holography night: a folder of hologram files followed while an outside writer
writes it; the live ΔV per interface and potential maps are the batch run's, a killed session resumes,
bad holograms are listed, and a folder with no readable hologram is refused in one line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ionscope import io as iio
from ionscope.errors import ConfigError, DataValidationError, FileFormatError, ShapeMismatchError
from ionscope.pipeline import FramesExecutor, MemorySink, run
from ionscope.simulate import biased_holograms
from test_live_dashboard import serve_watch

INTERVAL = 10.0
# 4 zero-bias holograms (t = 0-30 s), then +1.5 V: the plan is made when hologram 4 arrives
PROGRAMME = [("rest", 30), ("hold", 1.5, 40)]


@pytest.fixture(scope="module")
def sim():
    holos, refs, log, truth = biased_holograms(programme=PROGRAMME, shape=(128, 128), frame_interval_s=INTERVAL,
                                               seed=3)
    return holos, refs, log


def _hologram_bytes(holos, k) -> bytes:
    """Hologram k as the bytes of a NetCDF file (the microscope's file, written by someone else)."""
    da = holos.isel(time=k).drop_vars([c for c in holos.coords if c not in ("y", "x")])
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "h.nc"
        iio.save(da, p)
        return p.read_bytes()


def _log_rows(log, t_max, path):
    """The bias log as the potentiostat writes it by t_max: rows appended to a CSV that grows."""
    t, v = log.time.values, log.voltage.values
    done = len(path.read_text().splitlines()) - 1 if path.exists() else -1
    rows = ([] if done >= 0 else ["time (s),voltage (V)"]) + [
        f"{a:.6g},{b:.9g}" for a, b in list(zip(t, v))[max(done, 0):] if a <= t_max]
    if rows:
        with open(path, "a") as f:
            f.write("\n".join(rows) + "\n")


def _write(root, holos, log, k, *, slow=0.0, data=None, grow_log=True):
    """An outside writer: the log up to hologram k's time first, then the file, in two halves."""
    if grow_log:
        _log_rows(log, k * INTERVAL + 0.5, root / "bias.csv")
    raw = _hologram_bytes(holos, k) if data is None else data
    p = root / "holos" / f"holo_{k:04d}.nc"
    with open(p, "wb") as f:
        f.write(raw[: len(raw) // 2])
        f.flush()
        time.sleep(slow)
        f.write(raw[len(raw) // 2:])


def _night(root, refs):
    (root / "holos").mkdir(parents=True, exist_ok=True)
    iio.save(refs, root / "refs.nc")
    return {"holography": {"holograms": "holos", "references": "refs.nc", "log": "bias.csv", "thickness_nm": 60.0,
                           "frame_interval_s": INTERVAL},
            "output": {"dir": str(root / "out")}, "base_dir": str(root)}


def _cfg(d):
    from ionscope.pipeline import from_dict

    d = dict(d)
    base = d.pop("base_dir")
    return from_dict(d, base_dir=base)


class RecordingSink(MemorySink):
    """A MemorySink that also keeps every phase and every "plan" warning it was told."""

    def __init__(self):
        super().__init__()
        self.phases, self.plan_lines = [], []

    def set_phase(self, phase):
        super().set_phase(phase)
        self.phases.append(phase)

    def warn(self, key, message):
        super().warn(key, message)
        if key == "plan":
            self.plan_lines.append(message)


def _independent(cfg, where):
    """The batch run of the same night into another output folder (no live cache there: every hologram
    measured), so that comparing with it compares live with batch, not the live cache with itself."""
    return run(cfg.replace(output={"dir": str(where)}), stages=("holo_series",), show_progress=False)


def _executor(cfg, sink, **kw):
    return FramesExecutor(cfg, sink=sink, settle_s=0.1, poll_s=0.03, **kw)


def _live_steps(records):
    return {round(r["time_s"], 6): [np.nan if r[f"step_v_{i}"] is None else r[f"step_v_{i}"] for i in range(2)]
            for r in records}


def _assert_live_equals_batch(records, sink, ds, *, min_compared=5):
    """ΔV per interface and the potential map of every hologram seen live == the batch run's (where the
    batch kept the time point)."""
    live = _live_steps(records)
    times = np.round(ds.time.values, 6)
    compared = 0
    for i, t in enumerate(times):
        if t not in live or not bool(ds.frame_good.values[i]):
            continue
        lv, bv = np.asarray(live[t]), ds.step_v.values[i]
        both = np.isfinite(lv) & np.isfinite(bv)
        assert np.array_equal(np.isfinite(lv[both]), np.isfinite(bv[both]))
        if both.any():
            assert np.max(np.abs(lv[both] - bv[both])) <= 1e-7, (t, lv, bv)
            compared += 1
        rec = next(r for r in records if round(r["time_s"], 6) == t)
        pot = sink.maps.get(rec["frame"], {}).get("potential")
        if pot is not None:
            np.testing.assert_array_equal(pot, ds.potential.values[i])
    assert compared >= min_compared  # the comparison is not vacuous


# --------------------------------------------------------------------------- a night followed live
@pytest.fixture(scope="module")
def followed(sim, tmp_path_factory):
    holos, refs, log = sim
    root = tmp_path_factory.mktemp("holo_live")
    cfg = _cfg(_night(root, refs))
    n = holos.sizes["time"]

    def writer():
        for k in range(n):
            _write(root, holos, log, k, slow=0.02)
            time.sleep(0.15)
        _log_rows(log, 1e9, root / "bias.csv")
        (root / "holos" / "STOP").write_text("")

    sink = RecordingSink()
    ex = _executor(cfg, sink)
    th = threading.Thread(target=writer)
    th.start()
    ended = ex.run()
    th.join()
    final = run(cfg, stages=("holo_series",), show_progress=False)  # as `ionscope watch` ends: the live cache there
    batch = _independent(cfg, root / "batch")
    assert batch.context.info["holo_live_reused"] == 0
    return {"cfg": cfg, "ex": ex, "sink": sink, "ended": ended, "batch": batch.context["holo_series"], "n": n,
            "root": root, "run": final}


def test_live_follows_the_folder_and_equals_batch(followed):
    ex, sink, ds = followed["ex"], followed["sink"], followed["batch"]
    assert followed["ended"] == "stop file"
    assert [r["frame"] for r in ex.records] == list(range(followed["n"])) == [r["frame"] for r in sink.frames]
    assert sink.bad == []
    # the bias of each hologram from the growing log is the batch run's
    np.testing.assert_array_equal([r["bias_v"] for r in ex.records], ds.bias_v.values)
    _assert_live_equals_batch(ex.records, sink, ds, min_compared=followed["n"] - 1)
    assert sink.meta["night"] == "holography" and len(sink.meta["interfaces_nm"]) == 2
    assert all(r["latency_s"] >= 0 for r in ex.records)


def test_plan_waits_for_the_zero_bias_holograms(followed):
    sink = followed["sink"]
    waiting = [m for m in sink.plan_lines if m]
    # said while holograms 0-3 (0 V) were in: the plan needs the first biased one
    assert waiting and all("zero-bias hologram" in m and "first biased" in m for m in waiting)
    assert sink.plan_lines[-1] is None and "plan" not in sink.warnings
    assert "waiting for zero-bias holograms" in sink.phases and sink.phases[-1] == "watching"
    assert sink.meta["zero_bias_frames"] == [0, 1, 2, 3]


def test_live_frames_are_cached_per_hologram(followed):
    frames = sorted((followed["cfg"].out_dir / "live" / "frames").glob("frame_*.npz"))
    assert len(frames) == followed["n"]
    got = followed["ex"].night.cache.maps(5)
    np.testing.assert_array_equal(got["potential"], followed["sink"].maps[5]["potential"])


def test_the_final_run_takes_the_live_measurements(followed, tmp_path, monkeypatch):
    """The final run (same output folder) measures no hologram the live session measured, and gives the
    numbers of a batch run that never saw a live cache; a hologram whose file changed is measured again."""
    import shutil

    import ionscope.holography as holo
    from ionscope.pipeline import from_dict

    assert followed["run"].context.info["holo_live_reused"] == followed["n"]
    root, n = followed["root"], followed["n"]
    fresh = tmp_path / "night"
    shutil.copytree(root / "holos", fresh / "holos")
    for name in ("refs.nc", "bias.csv"):
        shutil.copy(root / name, fresh / name)
    conf = {"holography": {"holograms": "holos", "references": "refs.nc", "log": "bias.csv", "thickness_nm": 60.0,
                           "frame_interval_s": INTERVAL}}
    independent = followed["batch"]
    final = followed["run"].context["holo_series"]
    for v in ("step_v", "step_v_std", "width_nm", "position_nm", "potential", "phase", "frame_good"):
        np.testing.assert_array_equal(final[v].values, independent[v].values, err_msg=v)
    # hologram 6 rewritten with other bytes (another hologram's): measured again, not taken from the cache
    calls = []
    real = holo.bias_frame
    monkeypatch.setattr(holo, "bias_frame", lambda *a, **k: calls.append(k.get("index")) or real(*a, **k))
    cfg = followed["cfg"].replace(holography={"holograms": str(fresh / "holos"), "references": str(fresh / "refs.nc"),
                                              "log": str(fresh / "bias.csv")})
    shutil.copy(root / "holos" / "holo_0005.nc", fresh / "holos" / "holo_0006.nc")
    again = run(cfg, stages=("holo_series",), show_progress=False)
    assert again.context.info["holo_live_reused"] == n - 1 and calls == [6]
    swapped = run(from_dict({**conf, "output": {"dir": str(tmp_path / "batch2")}}, base_dir=fresh),
                  stages=("holo_series",), show_progress=False).context["holo_series"]
    np.testing.assert_array_equal(again.context["holo_series"].step_v.values, swapped.step_v.values)
    # a cache entry that cannot be loaded when its task runs: the hologram is read and measured after all
    import ionscope.pipeline._holo_reuse as reuse

    monkeypatch.setattr(reuse, "_load", lambda live, plan: None)
    calls.clear()
    shutil.copytree(followed["cfg"].out_dir / "live", tmp_path / "out3" / "live")  # the live cache, no stages
    cfg2 = cfg.replace(output={"dir": str(tmp_path / "out3")})
    fallback = run(cfg2, stages=("holo_series",), show_progress=False)
    assert fallback.context.info["holo_live_reused"] == n - 1 and sorted(calls) == list(range(n))
    fallback = fallback.context["holo_series"]
    np.testing.assert_array_equal(fallback.step_v.values, swapped.step_v.values)


# --------------------------------------------------------------------------- killed, then restarted
_CHILD = """
import sys
from ionscope.pipeline import FramesExecutor, MemorySink, from_dict
import json
d = json.loads(sys.argv[1]); base = d.pop("base_dir")
ex = FramesExecutor(from_dict(d, base_dir=base), sink=MemorySink(), settle_s=0.1, poll_s=0.03)
ex.run()
"""


@pytest.mark.slow  # a child process killed mid-night (the slow tier: child processes)
def test_a_killed_session_resumes(sim, tmp_path):
    import json

    holos, refs, log = sim
    conf = _night(tmp_path, refs)
    cfg = _cfg(conf)
    n = holos.sizes["time"]
    for k in range(n):
        _write(tmp_path, holos, log, k)
    cache = cfg.out_dir / "live" / "frames"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(cache.glob("frame_*.npz"))) < 5 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-night, no clean-up
        child.wait()
    done = sorted(cache.glob("frame_*.npz"))
    assert 5 <= len(done) < n + 1, child.stderr.read().decode()[-2000:]
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    _log_rows(log, 1e9, tmp_path / "bias.csv")
    (tmp_path / "holos" / "STOP").write_text("")
    sink = MemorySink()
    ex = _executor(cfg, sink)
    assert ex.run() == "stop file"
    resumed = ex.night.resumed
    assert resumed >= 5
    assert [r["frame"] for r in ex.records] == list(range(n))
    # the holograms done before the kill were taken from the cache, not measured again
    assert {p.name: p.stat().st_mtime_ns for p in sorted(cache.glob("frame_*.npz"))[:resumed]} == \
        {k: v for k, v in stamps.items() if int(k[6:12]) < resumed}
    batch = _independent(cfg, tmp_path / "batch").context["holo_series"]
    _assert_live_equals_batch(ex.records, sink, batch, min_compared=n - 1)
    assert np.array_equal(np.isfinite(batch.step_v.values), np.isfinite(np.array(
        [list(v) for v in _live_steps(ex.records).values()], float)))


# --------------------------------------------------------------------------- bad holograms
def test_corrupt_nan_and_late_holograms_are_listed(sim, tmp_path):
    holos, refs, log = sim
    cfg = _cfg(_night(tmp_path, refs))
    n = holos.sizes["time"]
    nan_frame = np.array(holos.isel(time=n - 1).values, copy=True)
    nan_frame[10:20, 10:20] = np.nan
    nan_holos = holos.copy(data=np.array(holos.values, copy=True))
    nan_holos[n - 1] = nan_frame
    sink = MemorySink()
    ex = FramesExecutor(cfg, sink=sink, settle_s=0.1, poll_s=0.03, late_s=0.3)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("ended", ex.run()))
    th.start()
    try:
        for k in range(n):
            if k == 5:
                _write(tmp_path, holos, log, k, data=b"CDF\x02 this is not a hologram file" * 40)
            elif k == n - 2:
                continue  # written late, after the later hologram was measured
            else:
                _write(tmp_path, nan_holos, log, k)
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while not any(b["frame"] == n - 2 for b in sink.bad) and time.monotonic() < deadline:
            time.sleep(0.05)
        _write(tmp_path, holos, log, n - 2, grow_log=False)  # (the log is further on already)
        time.sleep(0.3)
        _log_rows(log, 1e9, tmp_path / "bias.csv")
        (tmp_path / "holos" / "STOP").write_text("")
    finally:
        th.join(120)
    assert box["ended"] == "stop file"
    bad = {b["frame"]: b for b in sink.bad}
    assert bad[5]["file"] == "holo_0005.nc" and bad[5]["reason"].startswith("corrupt: ")
    assert bad[n - 2]["reason"].startswith("late: ") and bad[n - 2]["file"] == f"holo_{n - 2:04d}.nc"
    assert "NaN" in bad[n - 1]["reason"] or "Inf" in bad[n - 1]["reason"]
    assert [r["frame"] for r in ex.records] == [k for k in range(n) if k not in (5, n - 2)]
    # the batch run reads the same folder: the corrupt file left out and listed, the late one used,
    # the NaN hologram skipped with the same reason the live list gives
    with pytest.warns(RuntimeWarning, match="holo_0005.nc"):
        ds = _independent(cfg, tmp_path / "batch").context["holo_series"]
    t_nan = (n - 1) * INTERVAL
    i_nan = int(np.flatnonzero(np.isclose(ds.time.values, t_nan))[0])
    assert not bool(ds.frame_good.values[i_nan]) and str(ds.frame_reason.values[i_nan]) == bad[n - 1]["reason"]
    _assert_live_equals_batch(ex.records, sink, ds, min_compared=n - 4)


# --------------------------------------------------------------------------- refused in one line
def test_a_folder_with_no_readable_hologram_is_refused_in_one_line(sim, tmp_path):
    _, refs, _ = sim
    cfg = _cfg(_night(tmp_path, refs))
    for k in range(2):
        (tmp_path / "holos" / f"holo_{k:04d}.nc").write_bytes(b"garbage" * 100)
    (tmp_path / "bias.csv").write_text("time (s),voltage (V)\n0,0\n100,0\n")
    (tmp_path / "holos" / "STOP").write_text("")
    with pytest.raises(FileFormatError) as live:
        _executor(cfg, MemorySink()).run()
    with pytest.raises(FileFormatError) as batch:
        run(cfg, stages=("holo_series",), show_progress=False)
    for exc in (live, batch):
        text = str(exc.value)
        assert "\n" not in text and str(tmp_path / "holos") in text and "readable" in text


def test_a_folder_of_other_data_is_refused_naming_the_file(sim, tmp_path):
    import xarray as xr

    _, refs, _ = sim
    cfg = _cfg(_night(tmp_path, refs))
    xr.DataArray(np.ones((4, 5, 6), np.float32), dims=("y", "x", "energy")).to_netcdf(
        tmp_path / "holos" / "frame_0000.nc")
    (tmp_path / "holos" / "STOP").write_text("")
    with pytest.raises(ShapeMismatchError, match=r"frame_0000\.nc: expected one hologram with dims \('y', 'x'\)"):
        _executor(cfg, MemorySink()).run()


def test_a_folder_needs_frame_interval(sim, tmp_path):
    _, refs, _ = sim
    conf = _night(tmp_path, refs)
    del conf["holography"]["frame_interval_s"]
    with pytest.raises(ConfigError, match="frame_interval_s: required"):
        FramesExecutor(_cfg(conf), sink=MemorySink())
    conf["holography"]["frame_interval_s"] = -1
    with pytest.raises(ConfigError, match=r"frame_interval_s: expected a time in s"):
        _cfg(conf)


# --------------------------------------------------------------------------- the dashboard
def test_dashboard_shows_the_potential_and_dv_per_interface(sim, tmp_path, chromium):
    pw, launch = chromium
    holos, refs, log = sim
    cfg = _cfg(_night(tmp_path, refs))
    n = holos.sizes["time"]

    def writer():  # a hologram every 0.8 s: the page sees them arrive
        for k in range(n):
            _write(tmp_path, holos, log, k)
            time.sleep(0.8)
        _log_rows(log, 1e9, tmp_path / "bias.csv")
        (tmp_path / "holos" / "STOP").write_text("")

    t, box, stop = serve_watch(cfg, settle_s=0.1, poll_s=0.03)
    w = threading.Thread(target=writer)
    w.start()
    errors: list[str] = []
    pixels = "Array.from(document.getElementById('map-raw').getContext('2d').getImageData(0, 0, 60, 60).data).join(',')"
    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(box["url"])
            # the potential map of the first measured hologram, with its units, and no Li panel
            page.wait_for_function("document.body.dataset.shown !== undefined", timeout=30000)
            first = int(page.evaluate("document.body.dataset.shown"))
            assert page.text_content("#raw-title") == "potential map ΔV"
            assert page.inner_text("#cb-raw-label") == "ΔV from zero bias (V)"
            assert not page.is_visible("#card-den")
            p0 = page.evaluate(pixels)
            page.wait_for_function(f"parseInt(document.body.dataset.shown) > {first}", timeout=30000)
            assert page.evaluate(pixels) != p0  # the newest hologram's map, by itself
            page.wait_for_function("document.getElementById('phase').textContent === 'done'", timeout=60000)
            page.wait_for_function(f"document.body.dataset.shown === '{n - 1}'", timeout=10000)
            # ΔV(t): one point per hologram and interface; the bias curve from the log with the hologram marked
            assert page.locator("#plot-li circle:not(.marker)").count() == 2 * n
            assert "ΔV per interface (V" in page.text_content("#plot-li")
            assert page.locator("#plot-v polyline").count() >= 1 and page.locator("#plot-v .marker").count() == 1
            assert "nm" in page.inner_text("#stats")
        finally:
            browser.close()
            stop.set()
    w.join(60)
    t.join(30)
    assert "error" not in box, box.get("error")
    assert errors == []


# --------------------------------------------------------------------------- the command line
def test_ionscope_watch_follows_a_hologram_folder(sim, tmp_path, capsys):
    from ionscope.cli import main

    holos, refs, log = sim
    conf = _night(tmp_path, refs)
    n = holos.sizes["time"]
    for k in range(n):
        _write(tmp_path, holos, log, k)
    _log_rows(log, 1e9, tmp_path / "bias.csv")
    (tmp_path / "holos" / "STOP").write_text("")
    h = conf["holography"]
    (tmp_path / "night.toml").write_text(
        "[holography]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in h.items())
        + f'\n[output]\ndir = "{tmp_path / "out"}"\n')
    assert main(["watch", str(tmp_path / "night.toml"), "--no-serve", "--settle", "0.1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("hologram ")]
    assert len(lines) == n and all("ΔV0" in ln and "ΔV1" in ln and "bias" in ln for ln in lines)
    assert "final batch run" in out and (tmp_path / "out" / "summary.json").exists()
    import json

    summary = json.loads((tmp_path / "out" / "live" / "summary.json").read_text())
    assert summary["frames"] == n and summary["final_holograms_reused"] == n


def test_phase_shifting_groups_are_followed_too(tmp_path):
    """One (frame, y, x) group of phase-shifted holograms per file: live == batch as for off-axis holograms."""
    holos, refs, log, _ = biased_holograms(programme=PROGRAMME, shape=(128, 128), frame_interval_s=INTERVAL, seed=4,
                                           method="phase-shifting")
    conf = _night(tmp_path, refs)
    conf["holography"]["method"] = "phase-shifting"
    cfg = _cfg(conf)
    n = holos.sizes["time"]
    for k in range(n):
        iio.save(holos.isel(time=k).drop_vars([c for c in holos.coords if c not in ("frame", "y", "x")]),
                 tmp_path / "holos" / f"holo_{k:04d}.nc")
    _log_rows(log, 1e9, tmp_path / "bias.csv")
    (tmp_path / "holos" / "STOP").write_text("")
    sink = MemorySink()
    ex = _executor(cfg, sink)
    assert ex.run() == "stop file" and len(ex.records) == n and sink.bad == []
    assert run(cfg, stages=("holo_series",), show_progress=False).context.info["holo_live_reused"] == n
    _assert_live_equals_batch(ex.records, sink, _independent(cfg, tmp_path / "batch").context["holo_series"],
                              min_compared=n - 1)


def test_the_bias_from_each_files_metadata(sim, tmp_path):
    """No log: each hologram file carries its bias (attribute bias_v), live and batch read it alike."""
    holos, refs, _ = sim
    conf = _night(tmp_path, refs)
    del conf["holography"]["log"]
    cfg = _cfg(conf)
    n = holos.sizes["time"]
    for k in range(n):
        da = holos.isel(time=k)
        bias = float(da.bias_v)
        da = da.drop_vars([c for c in da.coords if c not in ("y", "x")]).assign_attrs(bias_v=bias)
        iio.save(da, tmp_path / "holos" / f"holo_{k:04d}.nc")
    (tmp_path / "holos" / "STOP").write_text("")
    sink = MemorySink()
    ex = _executor(cfg, sink)
    assert ex.run() == "stop file" and len(ex.records) == n
    np.testing.assert_array_equal([r["bias_v"] for r in ex.records], holos.bias_v.values)
    batch = _independent(cfg, tmp_path / "batch").context["holo_series"]
    np.testing.assert_array_equal(batch.bias_v.values, holos.bias_v.values)
    _assert_live_equals_batch(ex.records, sink, batch, min_compared=n - 1)
    # a file without it, and no log: refused in one line naming the file
    xr_da = holos.isel(time=0).drop_vars([c for c in holos.coords if c not in ("y", "x")])
    other = tmp_path / "other"
    (other / "holos").mkdir(parents=True)
    iio.save(xr_da, other / "holos" / "holo_0000.nc")
    (other / "holos" / "STOP").write_text("")
    conf2 = _night(other, refs)
    del conf2["holography"]["log"]
    with pytest.raises(DataValidationError, match=r"holo_0000\.nc: carries no bias_v attribute"):
        _executor(_cfg(conf2), MemorySink()).run()


def test_a_numbering_error_names_the_holography_keys(sim, tmp_path):
    # the frame rule is the EELS one, but a holography user has no [input] section to set
    from ionscope.errors import FileFormatError
    from ionscope.io import read_holograms

    holos, _, _ = sim
    d = tmp_path / "holos"
    d.mkdir()
    raw = _hologram_bytes(holos, 1)
    for name in ("holo_0000.nc", "holo_0001.nc", "holo_1.nc"):
        (d / name).write_bytes(raw)
    with pytest.raises(FileFormatError, match=r"holo_0001\.nc and holo_1\.nc are both frame 1.*"
                                              r"set \[holography\] frame_pattern") as e:
        read_holograms(d, frame_interval_s=INTERVAL)
    assert "[input]" not in str(e.value)
    (d / "holo_1.nc").rename(d / "holo_9999.nc")
    with pytest.raises(FileFormatError, match=r"holo_9999\.nc: frame number 9999") as e:
        read_holograms(d, frame_interval_s=INTERVAL)
    assert "[input]" not in str(e.value) and "[holography] frame_pattern" in str(e.value)
