# SPDX-License-Identifier: GPL-3.0-or-later
"""Logs read as written (issue 17, item 5), by one parser in batch and tail (live) mode.

Time restarts and conflicting duplicate times are refused with the line (or
one session kept / rows merged only when asked); every unit of a column that
is read is understood or refused naming the header; a file that ends mid-row,
holds NUL or binary bytes, or is the real Protochips export truncated or
NUL-filled, is refused with the line — never read in part without a word.
The live follower gives, for the bytes written so far, what ``read_log``
gives for them.
"""
from __future__ import annotations

import numpy as np
import pytest

from ionscope.errors import ConfigError, DataValidationError, FileFormatError, IonscopeError
from ionscope.io import LogTail, read_log
from ionscope.live import LogFollower

PROTOCHIPS = "protochips_electrical.csv"


def PROTOCHIPS_PATH():  # noqa: N802 - the real file where present (the test still runs without it)
    from conftest import REAL_DATA

    p = REAL_DATA / PROTOCHIPS
    return p if p.is_file() else None


def _write(tmp_path, text, name="log.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


PLAIN = "time (s),voltage (V),current (A),state\n" + "".join(
    f"{t},{3.9 + 0.01 * t:.4f},{1e-6 * (1 + t):.3g},charge\n" for t in range(6))


# --------------------------------------------------------------------------- the real file


def test_real_protochips_file_loads_as_before(real_file):
    log = read_log(real_file(PROTOCHIPS))
    assert log.sizes["time"] == 154 and float(log.time[-1]) == pytest.approx(15.276)
    assert float(log.voltage.max()) == pytest.approx(40.09, abs=0.01)
    assert log.voltage.attrs["column"] == "Channel A Voltage"
    tail = LogTail(real_file(PROTOCHIPS))
    assert tail.poll() == 154
    assert tail.dataset().identical(log)


def _refused_with_a_line(exc: IonscopeError, n_lines: int) -> bool:
    import re

    m = re.search(r"line (\d+)", str(exc))
    return (m is not None and 1 <= int(m.group(1)) <= n_lines) or "fewer than 2 rows" in str(exc)


def test_real_file_truncated_anywhere_is_refused_or_read_exactly(real_file, tmp_path):
    data = real_file(PROTOCHIPS).read_bytes()
    full = read_log(real_file(PROTOCHIPS))
    refused = exact = 0
    at_line_ends = {i + 1 for i, b in enumerate(data) if b == 0x0A}
    for cut in sorted(set(range(1, len(data), 7)) | at_line_ends):
        p = _write(tmp_path, data[:cut])
        n_lines = data[:cut].count(b"\n") + 1
        try:
            log = read_log(p)
        except (FileFormatError, DataValidationError) as exc:
            assert _refused_with_a_line(exc, n_lines), (cut, str(exc))
            refused += 1
            continue
        # what is read is exactly the first rows of the whole file: nothing cut short, nothing misread
        m = log.sizes["time"]
        assert full.isel(time=slice(0, m)).identical(log.assign_attrs(source_file=full.attrs["source_file"])), cut
        exact += 1
    assert refused > 1000 and exact > 150  # every cut at a line end reads the rows before it


@pytest.mark.parametrize("where", ["middle", "tail", "one byte"])
def test_real_file_with_nul_bytes_is_refused_with_the_line(real_file, tmp_path, where):
    data = bytearray(real_file(PROTOCHIPS).read_bytes())
    start = {"middle": len(data) // 2, "tail": len(data) - 2000, "one byte": 3000}[where]
    stop = {"middle": len(data) // 2 + 512, "tail": len(data), "one byte": 3001}[where]
    data[start:stop] = b"\x00" * (stop - start)
    line = data[:start].count(b"\n") + 1
    p = _write(tmp_path, bytes(data))
    with pytest.raises(FileFormatError, match=rf"line {line} holds NUL bytes"):
        read_log(p)
    tail = LogTail(p)
    if where == "tail":  # no line break after the NULs: an unfinished last line, waited for (not read)
        tail.poll()
        assert tail.dataset().sizes["time"] < 154
    else:  # NULs in a finished line: refused as in batch mode
        with pytest.raises(FileFormatError, match=rf"line {line} holds NUL bytes"):
            tail.poll()


def test_binary_garbage_is_refused_with_the_line(tmp_path):
    rng = np.random.default_rng(1)
    p = _write(tmp_path, PLAIN.encode() + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(FileFormatError, match=r"line 8 holds (NUL bytes|the binary byte)"):
        read_log(p)
    # text in a legacy encoding is text: a Latin-1 'µ' in the header is understood
    p = _write(tmp_path, "time (s),current (\xb5A)\n0,1\n1,2\n".encode("latin-1"))
    np.testing.assert_allclose(read_log(p).current.values, [1e-6, 2e-6])


def test_a_file_that_ends_mid_row_is_refused(tmp_path):
    lines = PLAIN.splitlines()
    for cut in ("5,3.9", "5,3.95,6e-06,", "5,"):
        p = _write(tmp_path, "\n".join(lines[:-1]) + "\n" + cut)
        with pytest.raises(FileFormatError, match=r"line 7 (has \d fields|ends without a line break).*mid-row"):
            read_log(p)
    # a whole last line without its newline is read
    p = _write(tmp_path, PLAIN.rstrip("\n"))
    assert read_log(p).sizes["time"] == 6
    # a short or long row anywhere is refused too
    bad = lines[:3] + ["2,3.92"] + lines[4:]
    with pytest.raises(FileFormatError, match=r"line 4 has 2 fields where the header \(line 1\) has 4"):
        read_log(_write(tmp_path, "\n".join(bad) + "\n"))
    bad = lines[:3] + [lines[3] + ",extra"] + lines[4:]
    with pytest.raises(FileFormatError, match=r"line 4 has 5 fields"):
        read_log(_write(tmp_path, "\n".join(bad) + "\n"))
    # a quote left open would swallow the rows after it into one field
    bad = lines[:3] + ['2,"3.92,3e-06,charge'] + lines[4:]
    with pytest.raises(FileFormatError, match=r"line 4 opens a quote it does not close"):
        read_log(_write(tmp_path, "\n".join(bad) + "\n"))
    # Windows and old Mac line ends are line ends
    ref = read_log(_write(tmp_path, PLAIN, name="ref.csv")).drop_attrs()
    for end in ("\r\n", "\r"):
        assert read_log(_write(tmp_path, end.join(lines) + end)).drop_attrs().identical(ref)


# --------------------------------------------------------------------------- time restarts and duplicates


def test_two_sessions_in_one_file_are_refused_or_split_on_request(tmp_path):
    second = "".join(f"{t},{4.2 - 0.01 * t:.4f},{-1e-6:.3g},discharge\n" for t in range(4))
    p = _write(tmp_path, PLAIN + second)
    with pytest.raises(DataValidationError, match=r"line 8: the time goes back from 5 s \(line 7\) to 0 s .* "
                                                  r"log_resets"):
        read_log(p)
    first = read_log(p, resets="first")
    last = read_log(p, resets="last")
    assert first.time.values.tolist() == [0, 1, 2, 3, 4, 5] and first.state.values.tolist() == ["charge"] * 6
    assert last.time.values.tolist() == [0, 1, 2, 3] and last.state.values.tolist() == ["discharge"] * 4
    sessions = read_log(p, resets="split")
    assert [s.sizes["time"] for s in sessions] == [6, 4]
    # a second log appended with its own header (and the real export concatenated with itself)
    header = PLAIN.splitlines(True)[0]
    p = _write(tmp_path, PLAIN + header + "6,3.5,-1e-06,discharge\n7,3.4,-1e-06,discharge\n")
    with pytest.raises(DataValidationError, match=r"line 8 repeats the header \(line 1\) — two logs in one file"):
        read_log(p)
    assert read_log(p, resets="last").time.values.tolist() == [6, 7]
    assert LogTail(p, resets="first").poll() == 8  # rows read; the first session is kept
    tail = LogTail(p, resets="first")
    tail.poll()
    assert tail.dataset().identical(read_log(p, resets="first"))
    if (real := PROTOCHIPS_PATH()) is not None:
        twice = _write(tmp_path, real.read_bytes() * 2, name="twice.csv")
        with pytest.raises(DataValidationError, match=r"line 164 repeats the header"):
            read_log(twice)
        assert read_log(twice, resets="first").identical(read_log(real).assign_attrs(source_file=str(twice)))
    # rows out of order are a time going back too: never sorted silently
    lines = PLAIN.splitlines()
    swapped = lines[:3] + [lines[4], lines[3]] + lines[5:]
    with pytest.raises(DataValidationError, match=r"line 5: the time goes back from 3 s \(line 4\) to 2 s"):
        read_log(_write(tmp_path, "\n".join(swapped) + "\n"))


def test_duplicate_times_with_other_values_are_refused_or_merged_on_request(tmp_path):
    text = "time (min),voltage (mV),current (uA)\n0,3900,1\n1,3950,1\n1,3960,1\n2,4000,1\n"
    p = _write(tmp_path, text)
    with pytest.raises(DataValidationError, match=r"lines 3 and 4 share the time 60 s but differ \(voltage 3.95 vs "
                                                  r"3.96 V\).*log_duplicates"):
        read_log(p)
    assert read_log(p, duplicates="first").voltage.values.tolist() == [3.9, 3.95, 4.0]
    assert read_log(p, duplicates="last").voltage.values.tolist() == [3.9, 3.96, 4.0]
    np.testing.assert_allclose(read_log(p, duplicates="mean").voltage.values, [3.9, 3.955, 4.0])
    assert read_log(p, duplicates="mean").time.values.tolist() == [0.0, 60.0, 120.0]
    # a row written twice (same values) is one row, listed in attrs
    same = _write(tmp_path, "time (min),voltage (mV)\n0,3900\n1,3950\n1,3950\n2,4000\n")
    log = read_log(same)
    assert log.voltage.values.tolist() == [3.9, 3.95, 4.0] and log.attrs["merged_lines"] == [4]


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("header, factor", [
    ("time (days)", 86400.0), ("time [d]", 86400.0), ("Time (h)", 3600.0), ("time (hours)", 3600.0),
    ("time (min)", 60.0), ("time (s)", 1.0), ("time/s", 1.0), ("time", 1.0), ("time (ms)", 1e-3),
    ("time (us)", 1e-6), ("time (µs)", 1e-6), ("time (μs)", 1e-6), ("elapsed time (sec)", 1.0)])
def test_every_time_unit_is_understood(tmp_path, header, factor):
    p = _write(tmp_path, f"{header},voltage (V)\n0,3.9\n2,4.0\n")
    np.testing.assert_allclose(read_log(p).time.values, [0.0, 2.0 * factor])


@pytest.mark.parametrize("header, factor", [
    ("voltage (V)", 1.0), ("voltage (mV)", 1e-3), ("Voltage [µV]", 1e-6), ("voltage (kV)", 1e3),
    ("voltage (volts)", 1.0), ("current (A)", 1.0), ("current (mA)", 1e-3), ("current (µA)", 1e-6),
    ("current (uA)", 1e-6), ("current (nA)", 1e-9), ("current (pA)", 1e-12), ("current (milliamps)", 1e-3)])
def test_every_electrical_unit_is_understood(tmp_path, header, factor):
    # values within what a holder applies (|V| ≤ 1000 V, |I| ≤ 10 A: io._logs._LIMITS) in every unit
    p = _write(tmp_path, f"time (s),{header}\n0,0.15\n1,0.25\n")
    log = read_log(p)
    name = "voltage" if "olt" in header else "current"
    np.testing.assert_allclose(log[name].values, [0.15 * factor, 0.25 * factor])


@pytest.mark.parametrize("header", ["time (fortnights)", "time (hh:mm:ss)", "voltage (MV)", "current (furlongs)",
                                    "current (mAh)"])
def test_a_unit_not_understood_is_refused_naming_the_header(tmp_path, header):
    cols = {"time": "time (s)", "voltage": "voltage (V)"}
    cols["time" if header.startswith("time") else "voltage"] = header
    extra = f",{header}" if header.startswith("current") else ""
    p = _write(tmp_path, f"{cols['time']},{cols['voltage']}{extra}\n0,1{',1' if extra else ''}\n"
                         f"1,2{',2' if extra else ''}\n")
    with pytest.raises(FileFormatError, match=rf"column '{header.replace('(', '.').replace(')', '.')}': unit .* not "
                                              rf"understood"):
        read_log(p)


def test_protochips_unit_notes_are_understood_or_refused(real_file, tmp_path):
    text = real_file(PROTOCHIPS).read_text()
    days = text.replace("Time units = Milliseconds", "Time units = Days").replace("Current units = Amps",
                                                                                   "Current units = Milliamps")
    log = read_log(_write(tmp_path, days))
    ref = read_log(real_file(PROTOCHIPS))
    np.testing.assert_allclose(log.time.values, ref.time.values * 1000 * 86400)
    np.testing.assert_allclose(log.current.values, ref.current.values * 1e-3)
    with pytest.raises(FileFormatError, match=r"line 4 \('Time units = Jiffies'\): unit 'Jiffies' is not understood"):
        read_log(_write(tmp_path, text.replace("Time units = Milliseconds", "Time units = Jiffies")))


# --------------------------------------------------------------------------- tail (live) mode = batch mode


def test_tail_mode_waits_for_an_unfinished_last_line_and_refuses_a_finished_malformed_one(tmp_path):
    p = _write(tmp_path, "time (min),voltage (mV),current (uA)\n0,3900,1\n1,39")
    f = LogFollower(p)
    assert f.poll() == 1 and f.dataset() is None   # the half line is "not yet written"
    with open(p, "a") as fh:
        fh.write("50,1\n2,4000,1\n3,40")
    assert f.poll() == 2 and f.t_end == 120.0
    with open(p, "a") as fh:
        fh.write("50\n4,4100,1\n")               # line 5 finished with 2 fields, then more lines
    with pytest.raises(FileFormatError, match=r"line 5 has 2 fields where the header \(line 1\) has 3"):
        f.poll()
    with pytest.raises(FileFormatError, match=r"line 5 has 2 fields"):  # stays refused: nothing after it is read
        f.poll()


def test_tail_and_batch_agree_on_a_missing_value(tmp_path):
    text = "time (s),voltage (V),current (A)\n0,3.9,1e-6\n1,3.95,\n2,4.0,1e-6\n3,4.05,1e-6\n"
    p = _write(tmp_path, text)
    with pytest.raises(DataValidationError) as batch:
        read_log(p)
    with pytest.raises(DataValidationError) as tail:
        LogFollower(p).poll()
    assert str(batch.value) == str(tail.value) and "line 3 ('' in 'current (A)')" in str(tail.value)
    f = LogFollower(p, missing="interpolate")
    f.poll()
    assert f.dataset().identical(read_log(p, missing="interpolate"))
    np.testing.assert_allclose(f.dataset().current.values, [1e-6] * 4)


def test_tail_mode_refuses_a_restart_a_duplicate_and_a_shrinking_file(tmp_path):
    p = _write(tmp_path, PLAIN)
    f = LogTail(p)
    assert f.poll() == 6
    with open(p, "a") as fh:
        fh.write("0,4.2,-1e-6,discharge\n")
    with pytest.raises(DataValidationError, match=r"line 8: the time goes back"):
        f.poll()
    p = _write(tmp_path, PLAIN + "5,4.2,6e-06,charge\n")
    with pytest.raises(DataValidationError, match=r"lines 7 and 8 share the time 5 s"):
        LogTail(p).poll()
    p = _write(tmp_path, PLAIN, name="other.csv")
    f = LogTail(p)
    f.poll()
    _write(tmp_path, PLAIN[:40], name="other.csv")
    with pytest.raises(FileFormatError, match=r"the log shrank"):
        f.poll()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_growing_log_read_in_random_pieces_equals_read_log_of_its_finished_lines(tmp_path, seed, real_file):
    rng = np.random.default_rng(seed)
    source = [PLAIN.encode() * 1, real_file(PROTOCHIPS).read_bytes()][seed % 2]
    if seed == 2:  # a log with a missing value (interpolated when asked) and an exact repeat
        source = (PLAIN + "6,3.96,,charge\n7,3.97,8e-06,charge\n7,3.97,8e-06,charge\n8,3.98,9e-06,rest\n").encode()
    options = {"missing": "interpolate"} if seed == 2 else {}
    p = tmp_path / "grow.csv"
    p.write_bytes(b"")
    f = LogTail(p, **options)
    pos = 0
    while pos < len(source):
        step = int(rng.integers(1, 120))
        with open(p, "ab") as fh:
            fh.write(source[pos:pos + step])
        pos += step
        f.poll()
        done = source[: source[:pos].rfind(b"\n") + 1]
        q = _write(tmp_path, done, name="prefix.csv")
        try:
            ref = read_log(q, **options)
        except DataValidationError as exc:
            assert f.dataset() is None and "fewer than 2 rows" in str(exc)
            continue
        except FileFormatError:
            assert f.dataset() is None  # no header yet
            continue
        assert f.dataset().assign_attrs(source_file="").identical(ref.assign_attrs(source_file="")), pos


# --------------------------------------------------------------------------- the run's options


def test_run_refuses_a_restarted_log_with_its_line_and_keeps_a_session_on_request(tmp_path):
    from ionscope.operando import from_dict
    from ionscope.pipeline._eels_sources import _read_log

    p = _write(tmp_path, PLAIN + "0,4.2,-1e-6,discharge\n1,4.1,-1e-6,discharge\n")
    with pytest.raises(DataValidationError, match=r"line 8: the time goes back"):
        _read_log(p)
    assert _read_log(p, resets="last").sizes["time"] == 2
    cfg = from_dict({"input": {"log_resets": "first", "log_duplicates": "mean"}})
    assert (cfg.input.log_resets, cfg.input.log_duplicates) == ("first", "mean")
    with pytest.raises(ConfigError, match=r"\[input\] log_resets: expected one of"):
        from_dict({"input": {"log_resets": "split"}})
    with pytest.raises(ConfigError, match=r"\[input\] log_duplicates: expected one of"):
        from_dict({"input": {"log_duplicates": "any"}})
