# SPDX-License-Identifier: GPL-3.0-or-later
"""One simulated experiment as one object: :class:`Scene`.

The film simulators share their options — the specimen (size, grains, interface
layer, thickness), its Li transport (protocol, current, diffusivities) and how
it is recorded (energy window, dose, physics, drift). A :class:`Scene` holds
them once; every simulator takes it as ``scene=`` and reads the fields it
models (:func:`li_transport` the specimen and transport, :func:`operando_eels`
those and the recording, :func:`limap_movie`, :func:`tem_eels_linescan` and
:func:`co_l_spectrum_image` theirs), ignoring the others, so one scene drives
the transport, the spectra and the Li-map movie of the same film.

Keywords still work and still mean what they did: a keyword that differs from
the simulator's default overrides the scene's field; a field left at ``None``
takes the simulator's default. The outputs are those of the same keywords,
bit for bit.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, fields
from typing import Any

from ..errors import DataValidationError

#: The options of the Li-transport solver beyond (shape, n_frames, seed), with their defaults.
TRANSPORT_OPTIONS = {
    "pixel_nm": 5.0, "frame_time_s": 60.0, "protocol": (("charge", 10), ("rest", 4), ("discharge", 10)),
    "current_a": None, "grain_size_nm": 50.0, "diffusivity_nm2_s": (3.0, 0.15), "boundary_diffusivity_nm2_s": 300.0,
    "layer_diffusivity_nm2_s": 200.0, "layer_nm": 20.0, "co3o4_fraction": 0.6, "thickness_nm": 80.0,
    "initial_occupancy": 0.97, "charge_depth": 0.3, "discharge_inlet": "collector", "resistance_ohm": None,
    "substeps": 8,
}


@dataclass(frozen=True)
class Scene:
    """A simulated experiment: specimen, Li transport and recording, for every film simulator.

    Every field defaults to ``None``: "the simulator's own default" (see each
    simulator). Each field has the meaning of the keyword of the same name.

    Parameters
    ----------
    shape : (int, int), optional
        ``(ny, nx)`` pixels (``y`` through the film, the electrolyte at row 0).
    n_frames : int, optional
        Frames of the series or movie.
    seed : int, optional
        Seed of everything random (microstructure, drift, noise).
    pixel_nm, frame_time_s : float, optional
        Pixel size (nm) and frame duration (s).
    protocol : sequence of (state, frames), optional
        ``"charge"``/``"rest"``/``"discharge"`` steps (durations in frames, rescaled to ``n_frames``).
    current_a, charge_depth : float, optional
        Current (A), or the share of the Li the charge removes when no current is given.
    grain_size_nm, diffusivity_nm2_s, boundary_diffusivity_nm2_s, layer_diffusivity_nm2_s : optional
        Microstructure and Li diffusivities (nm²/s; ``diffusivity_nm2_s`` along/across the CoO2 layers).
    layer_nm, co3o4_fraction, thickness_nm, initial_occupancy : optional
        Interface layer depth (nm) and its Co3O4 share, specimen thickness (nm), initial Li site occupancy.
    discharge_inlet : {"collector", "electrolyte"}, optional
        Side the Li returns from on discharge.
    resistance_ohm : float, optional
        Interface resistance of the voltage curve (default: 60 mV IR drop).
    substeps : int, optional
        Least backward-Euler steps per frame.
    energy_range, energy_step : optional
        Energy window (eV, stop excluded) and dispersion (eV per channel).
    dose : float, optional
        Counts per channel of the pre-edge background (see each simulator).
    noise : bool, optional
        Poisson counts (True) or expected counts (False).
    physics : {"ideal", "realistic"}, optional
        Spectrum model.
    exponent : float, optional
        Mean power-law background exponent.
    thickness_range : (float, float), optional
        Realistic physics: t/λ of the thinnest and thickest pixels.
    thinning, zlp_fwhm, descan_ev, li_chemical_shift_ev : float, optional
        Realistic physics: thickness loss over the series, zero-loss FWHM (eV), de-scan (eV), Li-K shift (eV).
    dual_eels : bool, optional
        Realistic physics: a separate low-loss acquisition.
    low_loss_range : (float, float), optional
        Energy range of the low-loss spectra (eV).
    low_loss_exposure : float, optional
        Low-loss exposure relative to the core loss.
    energy_drift_ev, specimen_drift_px : float, optional
        Largest energy-axis shift (eV) and specimen drift (px) over the series.
    counts, drift_px : float, optional
        :func:`limap_movie`: mean counts per pixel and largest drift (px).
    n_positions, position_step_nm, interface_nm, resolution_nm, enhancement, thickness : optional
        :func:`tem_eels_linescan`: the line, the Cu | electrolyte interface, the spatial resolution,
        the Li excess of the layer and the electrolyte's t/λ.
    layer_width_nm : float, optional
        Width of the interface layer of :func:`tem_eels_linescan` and :func:`co_l_spectrum_image`.
    layer_fraction : float, optional
        :func:`co_l_spectrum_image`: Co3O4 share of the Co at the interface.

    Examples
    --------
    >>> from ionscope.simulate import Scene, li_transport, operando_eels
    >>> scene = Scene(shape=(8, 12), n_frames=3, energy_step=0.5, seed=2)
    >>> si, truth, log = operando_eels(scene=scene)
    >>> si.sizes["time"], si.sizes["y"]
    (3, 8)
    >>> bool((li_transport(scene=scene).li.values == truth.li.values).all())  # the same film
    True
    >>> operando_eels(scene=scene, n_frames=2)[0].sizes["time"]  # a keyword overrides the scene
    2
    """

    shape: tuple | None = None
    n_frames: int | None = None
    seed: int | None = None
    pixel_nm: float | None = None
    frame_time_s: float | None = None
    protocol: tuple | None = None
    current_a: float | None = None
    charge_depth: float | None = None
    grain_size_nm: float | None = None
    diffusivity_nm2_s: tuple | None = None
    boundary_diffusivity_nm2_s: float | None = None
    layer_diffusivity_nm2_s: float | None = None
    layer_nm: float | None = None
    co3o4_fraction: float | None = None
    thickness_nm: float | None = None
    initial_occupancy: Any = None
    discharge_inlet: str | None = None
    resistance_ohm: float | None = None
    substeps: int | None = None
    energy_range: tuple | None = None
    energy_step: float | None = None
    dose: float | None = None
    noise: bool | None = None
    physics: str | None = None
    exponent: float | None = None
    thickness_range: tuple | None = None
    thinning: float | None = None
    zlp_fwhm: float | None = None
    descan_ev: float | None = None
    li_chemical_shift_ev: float | None = None
    dual_eels: bool | None = None
    low_loss_range: tuple | None = None
    low_loss_exposure: float | None = None
    energy_drift_ev: float | None = None
    specimen_drift_px: float | None = None
    counts: float | None = None
    drift_px: float | None = None
    n_positions: int | None = None
    position_step_nm: float | None = None
    interface_nm: float | None = None
    resolution_nm: float | None = None
    enhancement: float | None = None
    thickness: float | None = None
    layer_width_nm: float | None = None
    layer_fraction: float | None = None

    def replace(self, **changes) -> Scene:
        """A copy with some fields changed.

        Parameters
        ----------
        **changes
            Field names and their new values.

        Returns
        -------
        Scene

        Examples
        --------
        >>> Scene(seed=1).replace(dose=50.0).explicit()
        {'seed': 1, 'dose': 50.0}
        """
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise DataValidationError(f"Scene: unknown field(s) {unknown}; expected some of {sorted(FIELDS)}")
        return dataclasses.replace(self, **changes)

    def explicit(self) -> dict[str, Any]:
        """The fields that are set (not ``None``), in field order.

        Returns
        -------
        dict

        Examples
        --------
        >>> Scene(shape=(16, 16), dose=20.0).explicit()
        {'shape': (16, 16), 'dose': 20.0}
        """
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


FIELDS = frozenset(f.name for f in fields(Scene))


def _same(a, b) -> bool:
    return a is b or (type(a) is type(b) and bool(a == b))


def _check(scene, where: str) -> None:
    if not isinstance(scene, Scene):
        raise DataValidationError(f"{where}: scene must be an ionscope.simulate.Scene, got {type(scene).__name__}")


def from_scene(func, scene: Scene | None, given: dict[str, Any]) -> dict[str, Any]:
    """The keywords ``func`` runs with: ``given`` (the call's named keywords), with the scene's set fields
    in place of those keywords still at ``func``'s default."""
    if scene is None:
        return dict(given)
    _check(scene, func.__name__)
    defaults = {name: p.default for name, p in inspect.signature(func).parameters.items()}
    out = dict(given)
    for name, value in given.items():
        if name in FIELDS and _same(value, defaults.get(name)) and getattr(scene, name) is not None:
            out[name] = getattr(scene, name)
    return out


def scene_options(scene: Scene | None, names, given: dict[str, Any]) -> dict[str, Any]:
    """Free keyword options (``**options``): the scene's set fields among ``names``, then ``given`` over them."""
    if scene is None:
        return dict(given)
    out = {n: getattr(scene, n) for n in names if getattr(scene, n) is not None}
    out.update(given)
    return out
