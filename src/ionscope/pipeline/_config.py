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
    # frame_pattern = 'frame_(\\d+)'   # which files of a folder are frames (default: the last run of digits)

    # var = "si"              # the variable of multi-variable frame files / store (--var overrides)

    [limap]
    method = "mlls"
    references = "refs.nc"    # (component, energy) reference spectra, or "simulated"

    [screen]                  # physical plausibility gates (ionscope.pipeline._gates); defaults shown
    enabled = true            # false: only undecodable and NaN/Inf frames are dropped
    read_noise_counts = 0.0   # detector read noise; values below -negative_sigmas x this are "negative"
    max_negative_fraction = 0.01
    count_ratio = 10.0        # total counts outside [median/10, 10 x median] of the series: bad frame
    chi2_ratio = 10.0         # mean chi2 of the fit > 10 x the series' median: bad frame

    [compute]
    scheduler = "threads"     # or "local" (dask LocalCluster) or "tcp://host:8786"
    fused = true              # MLLS Li maps straight from each frame as read (energy drift, registration
                              # and the fit in one task per frame); false: from the corrected series
    cache_spectra = false     # true: also store the energy- and drift-corrected 4-D series (two more writes)
    frames_per_batch = 4      # frames written (and resumed) together by a batched stage
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataValidationError, FileFormatError
from ._config_checks import _check


@dataclass(frozen=True)
class InputConfig:
    series: str = ""
    log: str = ""
    frame_interval_s: float = 60.0
    start_s: float = 0.0
    time_anchor: str = "mid"  # the series' time coordinate marks each frame's "mid" or "start"
    on_bad_frame: str = "skip"  # "skip": drop the frame, record why; "error": stop
    log_missing: str = "error"  # a log value that is empty / not a number: "error" (with its line) | "interpolate"
    min_good_fraction: float = 0.5  # fail when fewer frames than this fraction are usable
    low_loss: str = ""  # dual EELS: the low-loss series of the same frames (folder, file or .zarr)
    # a folder of frames: the regular expression (one group: the frame number) a frame file's name (without
    # extension) must match; "" = the last run of digits of the name (ionscope.io._frames)
    frame_pattern: str = ""
    max_missing_ratio: float = 10.0  # most missing frame numbers per frame file present (a date in a name: refused)
    log_duplicates: str = "error"  # rows with one time and other values: "error" | "first" | "last" | "mean"
    log_resets: str = "error"  # the log's time going back (two sessions): "error" | "first" | "last" session

    var: str = ""  # the variable of multi-variable frame files or store ("": the only / the store's main one)


@dataclass(frozen=True)
class ScreenConfig:
    """``[screen]``: the physical plausibility gates (see :mod:`ionscope.pipeline._gates`).

    Parameters
    ----------
    enabled : bool
        False: only undecodable and NaN/Inf frames are dropped.
    read_noise_counts : float
        Detector read noise σ (counts); 0: any value < 0 counts as negative.
    negative_sigmas : float
        Values below −negative_sigmas·read_noise_counts are negative.
    max_negative_fraction : float
        A frame with more negative values than this share (and > ``count_ratio`` × the series' median) is bad.
    count_ratio : float
        A frame whose total counts lie outside [median/r, r·median] of the series is bad (0: off).
    chi2_ratio : float
        A frame whose mean fit χ² exceeds r × the series' median is bad (0: off).
    min_frames : int
        Fewest frames for the series-relative gates.

    Examples
    --------
    >>> ScreenConfig(read_noise_counts=2.0).negative_below
    10.0
    """

    enabled: bool = True  # false: only undecodable and NaN/Inf frames are dropped
    read_noise_counts: float = 0.0  # detector read noise σ (counts); 0: any value < 0 counts as negative
    negative_sigmas: float = 5.0  # values below −negative_sigmas·read_noise_counts are negative
    max_negative_fraction: float = 0.01  # more negative values than this (and > count_ratio × the median): bad
    count_ratio: float = 10.0  # total counts outside [median/r, r·median] of the series: bad (0: off)
    chi2_ratio: float = 10.0  # mean χ² of the fit > r × the series' median: bad (0: off)
    min_frames: int = 3  # fewest frames for the series-relative gates (a median)

    @property
    def negative_below(self) -> float:
        """Values below minus this count as negative (counts)."""
        return self.negative_sigmas * self.read_noise_counts


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
    # a (component, energy) file (make one with `ionscope refs`); required for real data. The simulator's
    # model shapes ("simulated", "simulated-realistic") are taken only for the simulator's own series.
    references: str = ""
    component: str = "Li"
    # "auto": "fourier-log" when the spectra hold their zero-loss peak (or [input] low_loss is given), else "none"
    plural_scattering: str = "auto"
    # x = (w_Li/w_Co)/k: {} (maps stay Li weights), {k = …, k_std = …}, {region = [y0, y1, x0, x1], x = 1.0,
    # frame = 0} (pixel indices, end excluded) or {charge = true, co_mol = …} (Faraday, needs the log)
    calibration: dict = field(default_factory=dict)
    co_component: str = "Co"
    co_smoothing_px: float = 2.0  # Gaussian σ of the Co map under x = w_Li / (k·w_Co): a noisy w_Co ≤ 0 makes x undefined
    fit_range: tuple = (45.0, 80.0)
    background: str = "powerlaw"  # "powerlaw" | "basis" | "none"
    weights: str = "poisson"  # "poisson" (ML for counts, slower) | "none" (least squares)
    crop_margin_ev: float = 10.0  # MLLS: correct and fit only fit_range ± this margin of the spectra
    options: dict = field(default_factory=dict)
    # two-region references with an open Li-K shift: "measure" it on the night's first usable frame (default),
    # "open" (warn, fit the two rows), "off" (the two rows even with a stored shift) or a shift in eV
    # (pipeline._li_shift_night)
    chemical_shift: Any = "measure"


@dataclass(frozen=True)
class DenoiseConfig:
    method: str = "sparse_coding"  # "sparse_coding" | "gaussian" | "none"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SyncConfig:
    capacity_c: float = 0.0  # charge of a full charge, for the SOC; 0: scale to the log's range
    allow_uncovered: bool = False  # frames outside the log: error (False) or marked bad (True)
    # the first frame's own timestamp (DM tags) and the log's (Protochips notes) must agree with the frame
    # times ([input] start_s, frame_interval_s) to within 1.5 intervals + 60 s, and in a folder each frame's
    # timestamp with its number × frame_interval_s (½ interval + 5 s); false: not compared
    check_timestamps: bool = True


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
    worker_timeout_s: float = 60.0  # remote/local cluster: fail when it has had no worker this long
    frames_per_batch: int = 4
    # also store the drift-corrected 4-D series of the energy_drift and register stages (to inspect them: two more
    # full writes); the Li maps are made from one read of the frames either way (issue 20), so False by default
    cache_spectra: bool = False
    # MLLS Li maps made per frame from the frames as read: energy drift undone, registered and fitted in one task
    # (pipeline._eels_fused; issue 20). The same maps as False (the stage-by-stage corrections of the series,
    # tests/test_pipeline_eels_fused.py), so it is no part of any stage's cache key
    fused: bool = True


@dataclass(frozen=True)
class Config:
    """A validated pipeline configuration (see the module docstring for the TOML layout).

    ``base_dir`` is the folder relative paths are resolved against (the TOML
    file's folder). Build one with :func:`load_config` (a TOML file) or
    :func:`from_dict`, which validate every value; the constructor does not.

    Parameters
    ----------
    input, screen, output, energy_drift, register, limap, denoise, sync, analysis, report, compute
        One validated section each (``[input]``, ``[screen]``, ...), defaults where absent.
    holography : dict, optional
        The ``[holography]`` section: present for a holography night, None for an EELS night.
    base_dir : str
        Relative paths are resolved against this folder.

    Examples
    --------
    >>> cfg = from_dict({"limap": {"method": "sasb"}}, base_dir="/data/night1")
    >>> cfg.table, cfg.limap.method, str(cfg.path("frames"))
    ('eels', 'sasb', '/data/night1/frames')
    """

    input: InputConfig = field(default_factory=InputConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    energy_drift: EnergyDriftConfig = field(default_factory=EnergyDriftConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    limap: LimapConfig = field(default_factory=LimapConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    #: ``[holography]`` (validated, defaults filled in; :mod:`ionscope.pipeline._holo_config`), or None:
    #: a configuration with it describes a holography night, one without it an EELS night
    holography: dict | None = None
    base_dir: str = "."

    @property
    def table(self) -> str:
        """Which night this configuration describes: ``"holography"`` or ``"eels"``."""
        return "eels" if self.holography is None else "holography"

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
        if name == "holography":
            return json.loads(json.dumps(self.holography or {}, default=list))
        return json.loads(json.dumps(dataclasses.asdict(getattr(self, name)), default=list))

    def replace(self, **sections: Any) -> "Config":
        """A copy with some sections changed: ``cfg.replace(denoise={"method": "none"})``."""
        names = ("output", "compute") if self.holography is not None else tuple(_SECTIONS)
        raw = {name: self.section(name) for name in names}
        if self.holography is not None:
            raw["holography"] = self.section("holography")
        for name, values in sections.items():
            if name not in _SECTIONS and name != "holography":
                raise ConfigError(f"config: unknown section [{name}]; expected one of {sorted(_SECTIONS)}")
            raw[name] = {**raw.get(name, {}), **dict(values)}
        return from_dict(raw, base_dir=self.base_dir)


_SECTIONS = {
    "input": InputConfig, "screen": ScreenConfig, "output": OutputConfig, "energy_drift": EnergyDriftConfig,
    "register": RegisterConfig, "limap": LimapConfig, "denoise": DenoiseConfig, "sync": SyncConfig,
    "analysis": AnalysisConfig, "report": ReportConfig, "compute": ComputeConfig,
}

# Allowed values of the string options that select a behaviour.
_CHOICES = {
    ("input", "on_bad_frame"): ("skip", "error"),
    ("input", "time_anchor"): ("mid", "start"),
    ("input", "log_missing"): ("error", "interpolate"),
    ("input", "log_duplicates"): ("error", "first", "last", "mean"),
    ("input", "log_resets"): ("error", "first", "last"),
    ("analysis", "open_edges"): ("auto", "electrolyte", "collector", "both", "none"),
    ("register", "reference"): ("first", "mean", "previous"),
    ("limap", "method"): ("mlls", "sasb", "nmf"),
    ("limap", "background"): ("powerlaw", "basis", "none"),
    ("limap", "weights"): ("poisson", "none"),
    ("limap", "plural_scattering"): ("auto", "fourier-log", "convolve", "none"),
    ("denoise", "method"): ("sparse_coding", "gaussian", "none"),
    ("analysis", "method"): ("continuity", "optical_flow"),
    ("analysis", "interface"): ("top", "bottom"),
    ("analysis", "x_boundary"): ("closed", "open"),
}
# Upper bounds of integer keys whose size sets memory or run time (a typo such as
# upsample_factor = 100000000 would otherwise try to allocate tens of GiB).
_MAX = {
    ("register", "upsample_factor"): 1000,  # the upsampled correlation patch grows as factor²
    ("compute", "n_workers"): 1024,
    ("compute", "frames_per_batch"): 4096,
    ("analysis", "profile_bins"): 4096,
}

def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"config [{section}] {key}"
    if (section, key) == ("limap", "chemical_shift"):  # a word or a number of eV
        from ._li_shift_night import check_mode

        return check_mode(value, where)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if value < 1:
            raise ConfigError(f"{where}: expected an integer >= 1, got {value}")
        top = _MAX.get((section, key))
        if top is not None and value > top:
            raise ConfigError(f"{where}: expected an integer <= {top}, got {value} (larger values need "
                              f"memory or time out of proportion)")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices and not (key == "scheduler"):
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of options, got {value!r}")
        return dict(value)
    return value


def from_dict(raw: dict, *, base_dir: str | os.PathLike = ".") -> Config:
    """Validate a nested dict (as parsed from TOML) into a :class:`Config`.

    A ``[holography]`` section makes it a holography night (see
    :mod:`ionscope.pipeline._holo_config`): then only ``[output]`` and
    ``[compute]`` may stand beside it, and ``[output] dir`` defaults to the
    section's ``output``.

    Parameters
    ----------
    raw : dict
        ``{section: {key: value}}``.
    base_dir : str or Path
        The folder relative paths in the configuration are resolved against.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        An unknown section or key, or a section that is not a table.
    DataValidationError
        A value of the wrong type or range.

    Examples
    --------
    >>> from_dict({"denoise": {"method": "gaussian"}}).denoise.method
    'gaussian'
    >>> from_dict({"limap": {"methd": "nmf"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ionscope.errors.ConfigError: config [limap]: unknown key 'methd'; expected one of ['background', ...]
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a table of sections, got {type(raw).__name__}")
    raw = dict(raw)
    holography = None
    if "holography" in raw:
        from ._holo_config import EELS_SECTIONS, holography_section

        holography = holography_section(raw.pop("holography"))
        beside = [s for s in EELS_SECTIONS if s in raw]
        if beside:
            raise ConfigError(f"config: [holography] describes a holography night; the EELS section(s) "
                              f"{['[' + s + ']' for s in beside]} have no meaning beside it (one night per "
                              f"configuration: EELS, or holograms)")
        output = dict(raw.get("output") or {})
        output.setdefault("dir", holography["output"])
        raw["output"] = output
    sections = {}
    for name, values in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"config: unknown section [{name}]; expected one of {sorted(_SECTIONS)} "
                              f"or [holography]")
        if not isinstance(values, dict):
            raise ConfigError(f"config [{name}]: expected a table of keys, got {values!r}")
        cls = _SECTIONS[name]
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"config [{name}]: unknown key {key!r}; expected one of {sorted(known)}")
            kwargs[key] = _coerce(name, key, value, getattr(defaults, key))
        sections[name] = cls(**kwargs)
    cfg = Config(**sections, holography=holography, base_dir=str(base_dir))
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
        raise ConfigError(f"{path}: {exc}") from None
