# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and write calibrated data.

- :func:`load` — Gatan .dm3/.dm4, FEI/Velox .emd, HyperSpy .hspy/.hdf5, .msa
  (all through rosettasciio), ionscope's Zarr stores and NetCDF files.
- :func:`save` — Zarr (native, chunked, for large series), NetCDF, .hspy;
  always atomic (temporary path, then rename).
- :func:`read_log` — electrochemistry/bias logs (CSV) on a time axis;
  :class:`LogTail` — the same parser following a log still being written
  (:class:`LogFollower` adds what the live dashboard asks of it);
  :func:`voltage_log` — the bias a log records.
- :func:`read_series` — an operando series (a folder of frames, a
  multi-frame file or a Zarr store) as one lazy (time, y, x, energy) array;
  :class:`FrameFollower` — which frames of a folder still being written are complete.
- :func:`read_holograms` — a folder of hologram files (one per time point) as
  one (time, y, x) night; :func:`load_hologram` — one such file (live mode).
- :func:`frame_number`, :func:`number_frames`, :func:`frame_time` — the one
  rule that numbers the frames of a folder and times them (batch and live).
- :func:`from_hyperspy`, :func:`to_hyperspy` — HyperSpy interop (optional).
- :func:`info` — a human-readable summary of any supported file;
  :func:`encodable_attrs` — the attributes Zarr/NetCDF can store.
- :class:`ZarrSeriesWriter` — write a large array block by block to Zarr.
- :func:`as_data` — the one input adapter every data function uses: a DataArray, a
  Dataset (``var=``), a HyperSpy signal or a numpy array in; one clear error otherwise
  (:func:`accepts_data` declares a function's data arguments).
- :func:`acquisition_value` — a beam energy or angle from the data's metadata, or
  the caller's value; a contradiction between the two is refused.

The metadata schema (``attrs`` keys, units, HyperSpy paths) is
:data:`ionscope.data.METADATA_SCHEMA`; ``docs/data_model.md`` explains it.
"""
from ._api import encodable_attrs, info, load, save, warn_if_large
from ._hyperspy import from_hyperspy, to_hyperspy
from ._zarr_writer import ZarrSeriesWriter
from ._follow import FrameFollower, LogFollower
from ._frames import FRAME_EXTENSIONS, FRAME_PATTERN, frame_number, frame_pattern, frame_time, number_frames
from ._holograms import is_hologram_folder, load_hologram, read_holograms, stack_holograms
from ._inputs import INPUT_KINDS, accepts_data, as_data, pick_variable
from ._logs import read_log, voltage_log
from ._logtail import LogTail
from ._metadata import acquisition_value
from ._series import read_series
from ._series import _check_frame_clocks as check_frame_clocks

__all__ = ["load", "save", "read_log", "voltage_log", "LogTail", "read_series", "FrameFollower", "LogFollower",
           "encodable_attrs", "warn_if_large", "FRAME_EXTENSIONS", "frame_pattern", "from_hyperspy", "to_hyperspy", "info", "ZarrSeriesWriter",
           "FRAME_PATTERN", "frame_number", "number_frames", "frame_time", "as_data", "accepts_data",
           "pick_variable", "INPUT_KINDS", "acquisition_value", "read_holograms", "load_hologram",
           "is_hologram_folder", "stack_holograms", "check_frame_clocks"]
