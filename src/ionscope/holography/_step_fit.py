# SPDX-License-Identifier: GPL-3.0-or-later
"""How the steps of a bias series are found and fitted: :class:`StepFitOptions` (split from
:mod:`ionscope.holography._plan`).

It bundles the interfaces, the window, the step model, the background, the tilt and the ramp order;
:func:`~ionscope.holography.plan_bias_series`, :func:`~ionscope.holography.bias_series` and the
``[holography]`` configuration take the same options, as keywords or as one object.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataValidationError
from . import _checks

_FIT_FIELDS = ("interfaces_nm", "window_nm", "model", "background", "interface_tilt_deg", "order")


@dataclass(frozen=True)
class StepFitOptions:
    """How the steps at the interfaces of a bias series are found and fitted.

    Parameters
    ----------
    interfaces_nm : float or sequence of float, optional
        x positions (nm) of the interfaces (they run along y); default the two
        strongest mean-inner-potential steps of the zero-bias phase.
    window_nm : float, optional
        Use only profile points within ±window_nm of an interface (default:
        the whole profile, less a margin at the field's edges).
    model : {"erf", "tanh"}
        Step shape (:func:`~ionscope.holography.fit_steps`).
    background : {"piecewise", "linear", "constant"}
        Background under the steps, fitted jointly with them.
    interface_tilt_deg : float, optional
        Angle of the interfaces from the y axis (degrees, within ±45°);
        default: measured on the zero-bias phase.
    order : {1, 2}
        Order of the leakage ramp fitted over the vacuum.

    Raises
    ------
    DataValidationError
        A value of the wrong type or range (one line naming it).

    Examples
    --------
    >>> opts = StepFitOptions(model="tanh", window_nm=40.0)
    >>> opts.model, opts.background, opts.window_nm
    ('tanh', 'piecewise', 40.0)
    >>> StepFitOptions.resolve(opts, model="tanh") == opts      # a keyword that agrees is fine
    True
    >>> StepFitOptions(order=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: order: expected 1 or 2 (the leakage ramp's order), got 3
    """

    interfaces_nm: tuple | None = None
    window_nm: float | None = None
    model: str = "erf"
    background: str = "piecewise"
    interface_tilt_deg: float | None = None
    order: int = 1

    def __post_init__(self):
        _checks.check_options(thickness_nm=1.0, interfaces_nm=self.interfaces_nm, window_nm=self.window_nm,
                              model=self.model, background=self.background, order=self.order)
        if self.interfaces_nm is not None:
            object.__setattr__(self, "interfaces_nm", tuple(float(v) for v in np.ravel(self.interfaces_nm)))
        if self.window_nm is not None:
            object.__setattr__(self, "window_nm", float(self.window_nm))
        tilt_slope(self.interface_tilt_deg)

    @staticmethod
    def merged(step_fit=None, **keywords) -> dict:
        """The options' fields from ``step_fit`` and the keywords given (not None), unchecked.

        A keyword that is also set, differently, in ``step_fit`` is refused.
        """
        given = {k: v for k, v in keywords.items() if v is not None}
        unknown = sorted(set(given) - set(_FIT_FIELDS))
        if unknown:
            raise TypeError(f"unknown step-fit option(s) {unknown}")
        if step_fit is None:
            return {**{f.name: f.default for f in dataclasses.fields(StepFitOptions)}, **given}
        if not isinstance(step_fit, StepFitOptions):
            raise DataValidationError(f"step_fit: expected a StepFitOptions, got {type(step_fit).__name__}")
        for k, v in given.items():
            if _normal(k, v) != getattr(step_fit, k):
                raise DataValidationError(f"{k}: given as {v!r} and as {getattr(step_fit, k)!r} in step_fit; "
                                          f"give it once")
        return dataclasses.asdict(step_fit)

    @classmethod
    def resolve(cls, step_fit=None, **keywords) -> "StepFitOptions":
        """``step_fit`` with the old keywords (``model=``, ``window_nm=`` ...) folded in, checked."""
        return cls(**cls.merged(step_fit, **keywords))

    def to_dict(self) -> dict:
        """JSON-able fields (the ``[holography]`` keys of the same names)."""
        out = dataclasses.asdict(self)
        out["interfaces_nm"] = None if self.interfaces_nm is None else list(self.interfaces_nm)
        return out


def _normal(key, value):
    if key == "interfaces_nm":
        return tuple(float(v) for v in np.ravel(value))
    if key in ("window_nm", "interface_tilt_deg"):
        return float(value)
    return value


def tilt_slope(interface_tilt_deg):
    """dx/dy of interfaces at ``interface_tilt_deg`` from the y axis (None stays None)."""
    if interface_tilt_deg is None:
        return None
    try:
        slope = math.tan(math.radians(float(interface_tilt_deg)))
    except (TypeError, ValueError):
        raise DataValidationError(f"interface_tilt_deg: expected an angle in degrees or None, "
                                  f"got {interface_tilt_deg!r}") from None
    if not (math.isfinite(slope) and abs(slope) < 1):
        raise DataValidationError(f"interface_tilt_deg: expected an angle within ±45°, got {interface_tilt_deg!r}")
    return slope
