# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks of :func:`ionscope.pipeline.from_dict` that one key's type cannot express: option tables against
the signature of the science function they feed, the denoiser's options object, cross-field ranges.

Every refusal is a :class:`~ionscope.errors.ConfigError` naming the section and the key.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from ._config import Config, ScreenConfig

_MOVIE_FORMATS = ("mp4", "gif")


# The option tables ([section] options = {...}) are keyword arguments of a science
# function: which one, for each method, and the arguments the pipeline sets itself.
# A new method or stage option is one line here.
_OPTION_TARGETS = {
    ("limap", "mlls"): ("ionscope.eels", "mlls", {"si", "references", "fit_range", "background", "weights",
                                                  "energy"}),
    ("limap", "sasb"): ("ionscope.eels", "sasb", {"si", "energy"}),
    ("limap", "nmf"): ("ionscope.eels", "nmf", {"si", "energy"}),
    ("denoise", "sparse_coding"): ("ionscope.denoise", "sparse_coding", {"data"}),
    ("energy_drift", None): ("ionscope.eels", "estimate_shift", {"si", "energy", "reference", "references"}),
}
#: Options that are not arguments of the target function: key -> expected kind.
_EXTRA_OPTIONS = {
    ("energy_drift", None): {"target": "number"},
    ("denoise", "gaussian"): {"sigma": "number or list"},
    ("denoise", "none"): {},
}
# Sizes inside option tables that set memory or run time.
_OPTION_MAX = {"n_atoms": 4096, "patch": 64, "patch_t": 64, "group": 4096, "search": 64, "search_t": 64,
               "n_components": 64, "max_iter": 100000, "passes": 16}


def _kind_of(default, annotation: str) -> str | None:
    """'bool' | 'int' | 'number' | 'str' | 'list' from a parameter's default or annotation."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "number"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (tuple, list)):
        return "list"
    text = str(annotation)
    for token, kind in (("bool", "bool"), ("int", "int"), ("float", "number"), ("str", "str")):
        if text.split("|")[0].strip() == token:
            return kind
    return None


def _fits(value, kind: str | None) -> bool:
    if kind is None:
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "number or list":
        return _fits(value, "number") or (isinstance(value, list) and all(_fits(v, "number") for v in value))
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    return True


def _check_options(section: str, method: str | None, options: dict) -> None:
    """Unknown keys and wrong types in ``[section] options`` → ConfigError naming the key."""
    import importlib
    import inspect

    where = f"config [{section}] options"
    lookup = (section, method) if (section, method) in _OPTION_TARGETS or (section, method) in _EXTRA_OPTIONS \
        else (section, None)
    allowed: dict[str, str | None] = dict(_EXTRA_OPTIONS.get(lookup, {}))
    required = []
    target = _OPTION_TARGETS.get(lookup)
    if target is not None:
        module, name, fixed = target
        sig = inspect.signature(getattr(importlib.import_module(module), name))
        for p in sig.parameters.values():
            if p.name in fixed or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is inspect.Parameter.empty:
                if p.kind == p.KEYWORD_ONLY:
                    # required, so also allowed (eels.nmf's n_components was refused as unknown)
                    required.append(p.name)
                    allowed[p.name] = _kind_of(p.default, p.annotation)
                continue
            allowed[p.name] = _kind_of(p.default, p.annotation)
    elif lookup not in _EXTRA_OPTIONS:
        return  # no table for this stage: nothing known to check against
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown option {key!r} for method {method!r}; expected one of "
                              f"{sorted(allowed)}")
        if not _fits(value, allowed[key]):
            raise ConfigError(f"{where}: {key} = {value!r} has the wrong type; expected "
                              f"{allowed[key] if allowed[key] != 'int' else 'an integer'}")
        top = _OPTION_MAX.get(key)
        if top is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > top:
            raise ConfigError(f"{where}: {key} = {value} is too large (at most {top})")
    missing = [k for k in required if k not in options]
    if missing:
        raise ConfigError(f"{where}: method {method!r} needs {missing}")


def _check_sparse_coding(options: dict) -> None:
    """The values of ``[denoise] options`` checked up front by the denoiser's own options object."""
    from ..denoise import SparseCodingOptions

    names = {f.name for f in dataclasses.fields(SparseCodingOptions)}
    try:
        SparseCodingOptions(**{k: v for k, v in options.items() if k in names})
    except DataValidationError as exc:
        raise ConfigError(f"config [denoise] options: {exc}") from None


def _check(cfg: Config) -> None:
    """Cross-field checks that a single key cannot express."""
    _check_options("limap", cfg.limap.method, cfg.limap.options)
    _check_options("denoise", cfg.denoise.method, cfg.denoise.options)
    if cfg.denoise.method == "sparse_coding":
        _check_sparse_coding(cfg.denoise.options)
    ed = dict(cfg.energy_drift.options)
    if "method" in ed and not isinstance(ed["method"], str):
        raise ConfigError(f"config [energy_drift] options: method = {ed['method']!r}; expected a string")
    _check_options("energy_drift", None, ed)
    fr = cfg.limap.fit_range
    if len(fr) != 2 or not all(isinstance(v, (int, float)) for v in fr) or not fr[0] < fr[1]:
        raise ConfigError(
            f"config [limap] fit_range: expected [low_eV, high_eV] with low < high, got {list(fr)}")
    _check_calibration(cfg.limap.calibration)
    win = cfg.register.window_ev
    if win and (len(win) != 2 or not win[0] < win[1]):
        raise ConfigError(f"config [register] window_ev: expected [] or [low_eV, high_eV], got {list(win)}")
    bad = [m for m in cfg.report.movies if m not in _MOVIE_FORMATS]
    if bad:
        raise ConfigError(f"config [report] movies: expected formats from {list(_MOVIE_FORMATS)}, got {bad}")
    if cfg.input.frame_interval_s <= 0:
        raise ConfigError(f"config [input] frame_interval_s: expected > 0 s, got {cfg.input.frame_interval_s}")
    if cfg.input.max_missing_ratio < 0:
        raise ConfigError(f"config [input] max_missing_ratio: expected >= 0, got {cfg.input.max_missing_ratio}")
    if cfg.input.frame_pattern:
        from ..io import frame_pattern

        try:
            frame_pattern(cfg.input.frame_pattern, where="config [input] frame_pattern")
        except DataValidationError as exc:
            raise ConfigError(str(exc)) from None
    if not 0.0 <= cfg.input.min_good_fraction <= 1.0:
        raise ConfigError(f"config [input] min_good_fraction: expected a fraction in [0, 1], "
                                  f"got {cfg.input.min_good_fraction}")
    _check_screen(cfg.screen)
    if cfg.compute.worker_timeout_s <= 0:
        raise ConfigError(f"config [compute] worker_timeout_s: expected > 0 s, got {cfg.compute.worker_timeout_s}")
    if cfg.report.fps <= 0:
        raise ConfigError(f"config [report] fps: expected > 0, got {cfg.report.fps}")
    s = cfg.compute.scheduler
    if s not in ("threads", "synchronous", "local") and not s.startswith("tcp://"):
        raise ConfigError(
            f"config [compute] scheduler: expected 'threads', 'synchronous', 'local' or 'tcp://HOST:PORT', got {s!r}")


def _check_screen(sc: ScreenConfig) -> None:
    """``[screen]``: the gates' thresholds in their ranges (a ratio of 1 would flag ordinary noise)."""
    where = "config [screen]"
    if sc.read_noise_counts < 0:
        raise ConfigError(f"{where} read_noise_counts: expected a read noise ≥ 0 counts, got {sc.read_noise_counts}")
    if sc.negative_sigmas <= 0:
        raise ConfigError(f"{where} negative_sigmas: expected > 0, got {sc.negative_sigmas}")
    if not 0 < sc.max_negative_fraction <= 1:
        raise ConfigError(f"{where} max_negative_fraction: expected a fraction in (0, 1], "
                          f"got {sc.max_negative_fraction}")
    for key in ("count_ratio", "chi2_ratio"):
        v = getattr(sc, key)
        if v != 0 and not v > 1:
            raise ConfigError(f"{where} {key}: expected a ratio > 1 (or 0 to turn the gate off), got {v}")
    if sc.min_frames < 3:
        raise ConfigError(f"{where} min_frames: expected an integer ≥ 3 (a median of fewer frames cannot tell "
                          f"which one is wrong), got {sc.min_frames}")


def _check_calibration(cal: dict) -> None:
    """``[limap] calibration``: one of the documented forms, with numbers where numbers belong."""
    where = "config [limap] calibration"
    if not cal:
        return
    keys = set(cal)
    forms = ({"k", "k_std"}, {"region", "x", "frame"}, {"charge", "co_mol"})
    if not any(keys <= f for f in forms) or not keys & {"k", "region", "charge"}:
        raise ConfigError(f"{where}: expected {{k = …}}, {{region = [y0, y1, x0, x1], x = 1.0, frame = 0}} or "
                          f"{{charge = true, co_mol = …}}; got keys {sorted(keys)}")
    for key in ("k", "k_std", "x", "co_mol"):
        if key in cal and (not isinstance(cal[key], (int, float)) or isinstance(cal[key], bool)
                           or not cal[key] >= 0 or (key != "k_std" and cal[key] == 0)):
            raise ConfigError(f"{where}: {key} = {cal[key]!r}; expected a number > 0")
    if "region" in cal:
        r = cal["region"]
        if not (isinstance(r, (list, tuple)) and len(r) == 4 and all(isinstance(v, int) for v in r)
                and r[0] < r[1] and r[2] < r[3] and min(r) >= 0):
            raise ConfigError(f"{where}: region = {r!r}; expected [y0, y1, x0, x1] pixel indices, y0 < y1, x0 < x1")
        if "frame" in cal and (not isinstance(cal["frame"], int) or cal["frame"] < 0):
            raise ConfigError(f"{where}: frame = {cal['frame']!r}; expected a frame index ≥ 0")
    if "charge" in cal and (cal["charge"] is not True or "co_mol" not in cal):
        raise ConfigError(f"{where}: the charge form is {{charge = true, co_mol = <moles of Co imaged>}}")
