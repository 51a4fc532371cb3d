# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/guarantees.md names only configuration keys that exist, with the defaults and values the code has.

Every ``[section] key`` the page mentions must be a key that :func:`ionscope.pipeline.from_dict`
accepts (for ``[holography]``, an option of the holography section); every ``(default V)`` it
states must be the code's default; every value it offers (``[input] log_resets = "first"``) must be
accepted; every TOML block on the page must be a valid configuration.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from ionscope.pipeline import Config, from_dict

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guarantees.md"
KEY = re.compile(r"\[([a-z_]+)\][ \t]+([a-z_]+)\b")
DEFAULT = re.compile(r"\[([a-z_]+)\] ([a-z_]+)`\**\s*\(default `?([^)`]+)`?\)")
VALUES = re.compile(r"\[([a-z_]+)\] ([a-z_]+)`\**\s*`= ([^`]+)`((?:,? (?:or )?`[^`]+`)*)")
TOML = re.compile(r"^```toml\n(.*?)^```", re.M | re.S)


def _holo_options() -> dict:
    from ionscope.pipeline._holo_config import OPTIONS  # the section's own table of options

    return OPTIONS


def _defaults(section: str) -> dict:
    if section == "holography":
        return dict(_holo_options())
    return dataclasses.asdict(getattr(Config(), section))


def _accepted(section: str, key: str, value) -> None:
    if section == "holography":
        from_dict({"holography": {"thickness_nm": 60.0, key: value}})
    else:
        from_dict({section: {key: value}})


def _mentions() -> list[tuple[str, str]]:
    return sorted(set(KEY.findall(PAGE.read_text(encoding="utf-8"))))


def test_the_page_names_keys():
    sections = {s for s, _ in _mentions()}
    assert {"input", "screen", "output", "holography", "sync", "compute"} <= sections
    assert len(_mentions()) >= 15


@pytest.mark.parametrize("section,key", _mentions())
def test_every_named_key_exists_and_takes_its_default(section, key):
    sections = {f.name for f in dataclasses.fields(Config)} - {"base_dir"}
    assert section in sections, f"docs/guarantees.md names [{section}], not a section of Config"
    defaults = _defaults(section)
    assert key in defaults, f"docs/guarantees.md names [{section}] {key}, not a key of that section"
    if defaults[key] is not None:
        _accepted(section, key, defaults[key])


def test_stated_defaults_are_the_code_defaults():
    stated = DEFAULT.findall(PAGE.read_text(encoding="utf-8"))
    assert len(stated) >= 4
    for section, key, text in stated:
        want = tomllib.loads(f"v = {text.strip()}")["v"]
        assert _defaults(section)[key] == want, f"[{section}] {key}: page says default {text}"


def test_offered_values_are_accepted():
    offered = VALUES.findall(PAGE.read_text(encoding="utf-8"))
    assert len(offered) >= 4
    for section, key, first, rest in offered:
        for text in [first, *re.findall(r"`([^`]+)`", rest)]:
            _accepted(section, key, tomllib.loads(f"v = {text.strip()}")["v"])


def test_toml_blocks_are_valid_configurations():
    blocks = TOML.findall(PAGE.read_text(encoding="utf-8"))
    assert blocks
    for block in blocks:
        cfg = from_dict(tomllib.loads(block))
        for section, values in tomllib.loads(block).items():  # and the values shown are the defaults
            assert {k: getattr(getattr(cfg, section), k) for k in values} == \
                {k: v for k, v in dataclasses.asdict(getattr(Config(), section)).items() if k in values}
