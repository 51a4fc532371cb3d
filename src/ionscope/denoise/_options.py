# SPDX-License-Identifier: GPL-3.0-or-later
"""The options of :func:`~ionscope.denoise.sparse_coding`, as one validated object.

:class:`SparseCodingOptions` is what every path of the denoiser reads — the
in-memory kernel, the out-of-core (dask) path, the per-window work — and what
callers build once and reuse (the ``[denoise]`` section of a pipeline config, the
``ionscope denoise`` command). Keywords of :func:`sparse_coding` are still
accepted; :func:`resolve_options` merges them into the object.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..errors import DataValidationError

METHODS = ("nonlocal", "ksvd")
NOISES = ("auto", "poisson", "gaussian", "poisson-gaussian")

# (name, lowest allowed value) of the integer options; None always means "choose automatically"
_INT_BOUNDS = (("patch", 2), ("patch_t", 1), ("n_atoms", 2), ("sparsity", 1), ("passes", 1), ("search", 0),
               ("search_t", 0), ("group", 1), ("step", 1), ("window_t", 1), ("tile", 8))


@dataclass(frozen=True)
class SparseCodingOptions:
    """Every option of :func:`~ionscope.denoise.sparse_coding`, validated once; the one object all paths use.

    ``None`` means "choose automatically"; what was chosen is recorded in the
    result's ``attrs`` (``denoise_*`` keys). The meaning of each option is the
    keyword of the same name of :func:`~ionscope.denoise.sparse_coding`.

    Parameters
    ----------
    method : {"nonlocal", "ksvd"}
        Non-local joint sparse coding of patch groups (default), or K-SVD with batch OMP.
    noise : {"auto", "poisson", "gaussian", "poisson-gaussian"}
        Noise model (``"auto"``: Poisson when the data look like raw counts, else Gaussian).
    patch, patch_t : int, optional
        Patch side in pixels and length in frames (default: 5 and 12 non-local, 6 and 4 K-SVD).
    n_atoms : int
        K-SVD dictionary size.
    sparsity : int, optional
        Largest number of atoms per patch for batch OMP (K-SVD; default 8).
    passes : int, optional
        Non-local passes (default: 3 at low signal-to-noise, else 2).
    search : int, optional
        Block-matching half-width in pixels (default: 4 at low signal-to-noise, 6 at high).
    search_t : int
        Block-matching half-width in frames.
    group : int
        Patches per group in the Wiener passes.
    step : int, optional
        Spacing of the reference patches in pixels (default 4 non-local, 2 K-SVD).
    seed : int
        Seed of the K-SVD training sample.
    window_t, tile : int, optional
        Window length (frames) and tile side (pixels) of bounded-memory processing.
    gain, read_noise : float
        Detector gain and read noise for ``noise="poisson-gaussian"``.
    motion : bool
        Non-local method at high SNR: align the frames' whole-pixel jitter before denoising (default True).

    Raises
    ------
    DataValidationError
        An unknown method or noise model, or a value out of range (the message names the option).

    Examples
    --------
    >>> opts = SparseCodingOptions(method="ksvd", patch=6)
    >>> opts.replace(passes=2).passes, opts.explicit()
    (2, {'method': 'ksvd', 'patch': 6})
    >>> SparseCodingOptions(patch=1)
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: sparse_coding: patch must be an integer >= 2, got 1
    """

    method: str = "nonlocal"
    noise: str = "auto"
    patch: int | None = None
    patch_t: int | None = None
    n_atoms: int = 256
    sparsity: int | None = None
    passes: int | None = None
    search: int | None = None
    search_t: int = 5
    group: int = 64
    step: int | None = None
    seed: int = 0
    window_t: int | None = None
    tile: int | None = None
    gain: float = 1.0
    read_noise: float = 0.0
    motion: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise DataValidationError(f"sparse_coding: method must be one of {METHODS}, got {self.method!r}")
        if self.noise not in NOISES:
            raise DataValidationError(f"sparse_coding: noise must be one of {NOISES}, got {self.noise!r}")
        for name, low in _INT_BOUNDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise DataValidationError(f"sparse_coding: {name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.motion, (bool, np.bool_)):
            raise DataValidationError(f"sparse_coding: motion must be True or False, got {self.motion!r}")
        for name, low in (("gain", 0.0), ("read_noise", -1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
                    or value <= low or (name == "read_noise" and value < 0):
                raise DataValidationError(f"sparse_coding: {name} must be a finite number "
                                          f"{'> 0' if name == 'gain' else '>= 0'}, got {value!r}")

    def replace(self, **changes) -> SparseCodingOptions:
        """A copy with some options changed (validated again).

        Parameters
        ----------
        **changes
            Option names and their new values.

        Returns
        -------
        SparseCodingOptions

        Examples
        --------
        >>> SparseCodingOptions().replace(noise="gaussian").noise
        'gaussian'
        """
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise DataValidationError(f"sparse_coding: unknown option(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def explicit(self) -> dict[str, Any]:
        """The options that differ from the defaults (what a user chose).

        Returns
        -------
        dict

        Examples
        --------
        >>> SparseCodingOptions(passes=1).explicit()
        {'passes': 1}
        """
        default = SparseCodingOptions()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def kernel_kwargs(self) -> dict[str, Any]:
        """Every option as a keyword dictionary (the keywords of :func:`sparse_coding`).

        Returns
        -------
        dict

        Examples
        --------
        >>> SparseCodingOptions().kernel_kwargs()["method"]
        'nonlocal'
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _same(a, b) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def resolve_options(options: SparseCodingOptions | None, given: dict[str, Any]) -> SparseCodingOptions:
    """The options object a call runs with: ``options`` (or the defaults) with the keywords that differ
    from their defaults laid over it (a keyword given beside an object overrides its field)."""
    base = options if options is not None else SparseCodingOptions()
    if not isinstance(base, SparseCodingOptions):
        raise DataValidationError(f"sparse_coding: options must be a SparseCodingOptions, got {type(base).__name__}")
    default = SparseCodingOptions()
    return base.replace(**{k: v for k, v in given.items() if not _same(v, getattr(default, k))})


def check_sigma(sigma) -> None:
    """A scalar ``sigma`` must be a finite number >= 0 (a per-pixel map is checked against the data later)."""
    if sigma is not None and np.ndim(sigma) > 0:
        return
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number))
                              or not np.isfinite(sigma) or sigma < 0):
        raise DataValidationError(f"sparse_coding: sigma must be a finite number >= 0, got {sigma!r}")
