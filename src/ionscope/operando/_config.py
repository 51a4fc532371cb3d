# SPDX-License-Identifier: GPL-3.0-or-later
"""The run configuration: a TOML file → a validated, immutable :class:`Config`.

Every section maps to one stage (or to input/output/compute settings). Unknown
sections or keys, wrong types and out-of-range values are refused with a
:class:`~ionscope.errors.DataValidationError` naming ``[section] key`` and what
was expected, so a typo never silently falls back to a default.

Example ``run.toml``::

    [input]
    series = "frames/"        # folder of .dm3/.dm4 frames, one multi-frame file, or a .zarr store
    log = "holder_log.csv"    # electrochemistry log (CSV, .nc or .zarr Dataset)
    frame_interval_s = 60.0   # frame duration when the files carry no times

    [limap]
    method = "mlls"
    references = "refs.nc"    # (component, energy) reference spectra, or "simulated"

    [compute]
    scheduler = "threads"     # or "local" (dask LocalCluster) or "tcp://host:8786"
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataValidationError, FileFormatError


@dataclass(frozen=True)
class InputConfig:
    series: str = ""
    log: str = ""
    frame_interval_s: float = 60.0
    start_s: float = 0.0
    time_anchor: str = "mid"  # the series' time coordinate marks each frame's "mid" or "start"
    on_bad_frame: str = "skip"  # "skip": drop the frame, record why; "error": stop


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "ionscope-run"
    cache: str = ""  # default: <dir>/cache.zarr


@dataclass(frozen=True)
class EnergyDriftConfig:
    enabled: bool = True
    options: dict = field(default_factory=dict)  # passed on to ionscope.eels


@dataclass(frozen=True)
class RegisterConfig:
    enabled: bool = True
    window_ev: tuple = ()  # energy window summed into the reference image; () = whole spectrum
    upsample_factor: int = 20
    reference: str = "first"  # "first" | "mean" | "previous"


@dataclass(frozen=True)
class LimapConfig:
    method: str = "mlls"  # "mlls" | "sasb" | "nmf"
    references: str = "simulated"  # path to a (component, energy) file, or "simulated"
    component: str = "Li"
    fit_range: tuple = (45.0, 80.0)
    background: str = "powerlaw"  # "powerlaw" | "basis" | "none"
    weights: str = "poisson"  # "poisson" (ML for counts, slower) | "none" (least squares)
    crop_margin_ev: float = 10.0  # MLLS: correct and fit only fit_range ± this margin of the spectra
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DenoiseConfig:
    method: str = "sparse_coding"  # "sparse_coding" | "gaussian" | "none"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SyncConfig:
    capacity_c: float = 0.0  # charge of a full charge, for the SOC; 0: scale to the log's range
    allow_uncovered: bool = False  # frames outside the log: error (False) or marked bad (True)


@dataclass(frozen=True)
class AnalysisConfig:
    method: str = "continuity"  # "continuity" | "optical_flow"
    interface: str = "top"  # electrolyte side of the film: "top" (y index 0) or "bottom"
    open_edges: str = "auto"  # film edges exchanging Li; "auto": electrolyte on charge, collector on discharge
    x_boundary: str = "closed"  # in-plane edges of the field of view: "closed" | "open"
    segmentation: str = ""  # optional (y, x) label image: grains > 0, boundaries 0
    profile_bins: int = 16
    rest_states: tuple = ("rest",)


@dataclass(frozen=True)
class ReportConfig:
    movies: tuple = ("mp4", "gif")
    viewer: bool = True
    figures: bool = True
    fps: float = 6.0


@dataclass(frozen=True)
class ComputeConfig:
    scheduler: str = "threads"  # "threads" | "synchronous" | "local" | "tcp://..."
    n_workers: int = 2
    frames_per_batch: int = 4
    cache_spectra: bool = True  # store the drift-corrected 4-D series of each stage (False: only the shifts)


@dataclass(frozen=True)
class Config:
    """A validated pipeline configuration (see the module docstring for the TOML layout).

    ``base_dir`` is the folder relative paths are resolved against (the TOML
    file's folder).
    """

    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    energy_drift: EnergyDriftConfig = field(default_factory=EnergyDriftConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    limap: LimapConfig = field(default_factory=LimapConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    base_dir: str = "."

    def path(self, value: str) -> Path:
        """Resolve a path from the config against :attr:`base_dir`."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def out_dir(self) -> Path:
        return self.path(self.output.dir)

    @property
    def cache_path(self) -> Path:
        return self.path(self.output.cache) if self.output.cache else self.out_dir / "cache.zarr"

    def section(self, name: str) -> dict:
        """One section as a plain JSON-able dict (what a stage hashes)."""
        return json.loads(json.dumps(dataclasses.asdict(getattr(self, name)), default=list))

    def replace(self, **sections: Any) -> "Config":
        """A copy with some sections changed: ``cfg.replace(denoise={"method": "none"})``."""
        raw = {name: self.section(name) for name in _SECTIONS}
        for name, values in sections.items():
            if name not in _SECTIONS:
                raise DataValidationError(f"config: unknown section [{name}]; expected one of {sorted(_SECTIONS)}")
            raw[name] = {**raw[name], **dict(values)}
        return from_dict(raw, base_dir=self.base_dir)


_SECTIONS = {
    "input": InputConfig, "output": OutputConfig, "energy_drift": EnergyDriftConfig,
    "register": RegisterConfig, "limap": LimapConfig, "denoise": DenoiseConfig, "sync": SyncConfig,
    "analysis": AnalysisConfig, "report": ReportConfig, "compute": ComputeConfig,
}

# Allowed values of the string options that select a behaviour.
_CHOICES = {
    ("input", "on_bad_frame"): ("skip", "error"),
    ("input", "time_anchor"): ("mid", "start"),
    ("analysis", "open_edges"): ("auto", "electrolyte", "collector", "both", "none"),
    ("register", "reference"): ("first", "mean", "previous"),
    ("limap", "method"): ("mlls", "sasb", "nmf"),
    ("limap", "background"): ("powerlaw", "basis", "none"),
    ("limap", "weights"): ("poisson", "none"),
    ("denoise", "method"): ("sparse_coding", "gaussian", "none"),
    ("analysis", "method"): ("continuity", "optical_flow"),
    ("analysis", "interface"): ("top", "bottom"),
    ("analysis", "x_boundary"): ("closed", "open"),
}
_MOVIE_FORMATS = ("mp4", "gif")


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"config [{section}] {key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise DataValidationError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataValidationError(f"{where}: expected an integer, got {value!r}")
        if value < 1:
            raise DataValidationError(f"{where}: expected an integer >= 1, got {value}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataValidationError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise DataValidationError(f"{where}: expected a string, got {value!r}")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices and not (key == "scheduler"):
            raise DataValidationError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise DataValidationError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise DataValidationError(f"{where}: expected a table of options, got {value!r}")
        return dict(value)
    return value


def _check(cfg: Config) -> None:
    """Cross-field checks that a single key cannot express."""
    fr = cfg.limap.fit_range
    if len(fr) != 2 or not all(isinstance(v, (int, float)) for v in fr) or not fr[0] < fr[1]:
        raise DataValidationError(
            f"config [limap] fit_range: expected [low_eV, high_eV] with low < high, got {list(fr)}")
    win = cfg.register.window_ev
    if win and (len(win) != 2 or not win[0] < win[1]):
        raise DataValidationError(f"config [register] window_ev: expected [] or [low_eV, high_eV], got {list(win)}")
    bad = [m for m in cfg.report.movies if m not in _MOVIE_FORMATS]
    if bad:
        raise DataValidationError(f"config [report] movies: expected formats from {list(_MOVIE_FORMATS)}, got {bad}")
    if cfg.input.frame_interval_s <= 0:
        raise DataValidationError(f"config [input] frame_interval_s: expected > 0 s, got {cfg.input.frame_interval_s}")
    if cfg.report.fps <= 0:
        raise DataValidationError(f"config [report] fps: expected > 0, got {cfg.report.fps}")
    s = cfg.compute.scheduler
    if s not in ("threads", "synchronous", "local") and not s.startswith("tcp://"):
        raise DataValidationError(
            f"config [compute] scheduler: expected 'threads', 'synchronous', 'local' or 'tcp://HOST:PORT', got {s!r}")


def from_dict(raw: dict, *, base_dir: str | os.PathLike = ".") -> Config:
    """Validate a nested dict (as parsed from TOML) into a :class:`Config`."""
    if not isinstance(raw, dict):
        raise DataValidationError(f"config: expected a table of sections, got {type(raw).__name__}")
    sections = {}
    for name, values in raw.items():
        if name not in _SECTIONS:
            raise DataValidationError(f"config: unknown section [{name}]; expected one of {sorted(_SECTIONS)}")
        if not isinstance(values, dict):
            raise DataValidationError(f"config [{name}]: expected a table of keys, got {values!r}")
        cls = _SECTIONS[name]
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise DataValidationError(f"config [{name}]: unknown key {key!r}; expected one of {sorted(known)}")
            kwargs[key] = _coerce(name, key, value, getattr(defaults, key))
        sections[name] = cls(**kwargs)
    cfg = Config(**sections, base_dir=str(base_dir))
    _check(cfg)
    return cfg


def load_config(path) -> Config:
    """Read and validate a TOML run configuration.

    Parameters
    ----------
    path : str or Path
        The TOML file; relative paths inside it are resolved against its folder.

    Returns
    -------
    Config

    Raises
    ------
    FileFormatError
        Missing file or invalid TOML (with the parser's line/column).
    DataValidationError
        Unknown section/key, wrong type or value (names ``[section] key``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
    >>> _ = p.write_text('[input]\\nseries = "s.zarr"\\n[denoise]\\nmethod = "none"\\n')
    >>> load_config(p).denoise.method
    'none'
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such configuration file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not valid TOML ({exc})") from None
    try:
        return from_dict(raw, base_dir=path.resolve().parent)
    except DataValidationError as exc:
        raise DataValidationError(f"{path}: {exc}") from None
