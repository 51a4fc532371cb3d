# SPDX-License-Identifier: GPL-3.0-or-later
"""How the demo judges an issue-19 number against its target: value, standard error, verdict.

A *bias* is the mean error over independent units (frames, or frames × column
strips of one scene) and its standard error (s.e.) the spread of those errors
over √n, with a calibration error common to every unit added in quadrature. A
number is **inside** only when it is within its target *and* its s.e. is small
enough to tell (``se ≤ se_needed``; for a bias target ``|bias| ≤ L`` that is
L/2). With a larger s.e. the verdict is "not resolved at this size", whichever
side of the target the value lies (the s.e. of a few units is itself uncertain;
the value and s.e. are shown). The worst unit and the spread of the units' errors over their
own σ (a pull: ≈ 1 when the σ the route states is honest) are shown beside, as
information.
"""
from __future__ import annotations

import numpy as np

INSIDE, OUTSIDE, UNRESOLVED = "inside", "not inside", "not resolved at this size"
#: the spread of (estimate − truth)/σ that counts as an honest σ (issue 19's range for SA/SB)
PULL_RANGE = (0.8, 1.3)


def bias_stats(errors, sigmas=None, *, common_se: float = 0.0) -> dict:
    """Mean error over units with its s.e., the worst unit and the units' pull.

    Parameters
    ----------
    errors : array_like
        One error per independent unit (estimate − truth); non-finite ones are left out.
    sigmas : array_like, optional
        Each unit's own σ (from the route's error propagation): gives ``unit_pull``.
    common_se : float
        σ of an error common to every unit (a calibration's), added in quadrature to the s.e.

    Returns
    -------
    dict
        ``value`` (the mean error), ``se``, ``worst_unit`` (largest |error|), ``units`` and, with
        ``sigmas``, ``unit_pull`` (std of (error − mean)/σ, ddof 1).

    Examples
    --------
    >>> s = bias_stats([0.01, -0.01, 0.03, 0.01], [0.02] * 4)
    >>> round(s["value"], 3), round(s["se"], 4), s["units"], round(s["unit_pull"], 2)
    (0.01, 0.0082, 4, 0.82)
    """
    e = np.asarray(errors, float).ravel()
    ok = np.isfinite(e)
    if sigmas is not None:
        s = np.asarray(sigmas, float).ravel()
        ok &= np.isfinite(s) & (s > 0)
    e = e[ok]
    n = int(e.size)
    if n == 0:
        return {"value": float("nan"), "se": float("inf"), "worst_unit": float("nan"), "units": 0}
    mean = float(e.mean())
    spread = float(np.var(e, ddof=1) / n) if n > 1 else float("inf")
    out = {"value": mean, "se": float(np.sqrt(spread + float(common_se) ** 2)),
           "worst_unit": float(np.abs(e).max()), "units": n}
    if sigmas is not None and n > 1:
        out["unit_pull"] = float(np.std((e - mean) / s[ok], ddof=1))
    return out


def _within(kind: str, bound, v: float) -> bool:
    if kind == "abs_max":
        return abs(v) <= bound
    if kind == "at_least":
        return v >= bound
    lo, hi = bound
    return lo <= v <= hi


def judge(value, *, target: str, kind: str, bound, se=None, se_needed=None, conditions: str,
          note: str | None = None, **info) -> dict:
    """One issue-19 number with its target and verdict.

    Parameters
    ----------
    value : float
        The number (a bias: mean error over units).
    target : str
        The target as the issue states it.
    kind : {"abs_max", "at_least", "range"}
        ``|value| ≤ bound``, ``value ≥ bound`` or ``bound[0] ≤ value ≤ bound[1]``.
    bound : float or (float, float)
        The target's limit(s).
    se : float, optional
        Standard error of ``value``. ``None`` for one estimate judged on its own error (its σ goes in ``info``).
    se_needed : float, optional
        The largest s.e. that lets the number be judged (default for ``abs_max``: ``bound / 2``).
    conditions : str
        Where the number was measured (a validation scene at the target's conditions, or the movie).
    note : str, optional
        How to read it.
    **info
        Shown beside (worst unit, unit pull, ...); ``None`` values are left out.

    Returns
    -------
    dict
        ``value``, ``se``, ``target``, ``verdict`` (``"inside"``, ``"not inside"``, ``"not resolved at this
        size"``), ``inside`` and ``resolved`` (bool), ``conditions``, the ``info``, ``note`` and ``rule``
        (``kind``, ``bound``, ``se_needed``: what the verdict was judged by).

    Examples
    --------
    >>> judge(0.004, se=0.003, target="≤ 0.01", kind="abs_max", bound=0.01, conditions="scene")["verdict"]
    'inside'
    >>> judge(0.004, se=0.02, target="≤ 0.01", kind="abs_max", bound=0.01, conditions="scene")["verdict"]
    'not resolved at this size'
    >>> judge(0.09, se=0.004, target="≤ 0.01", kind="abs_max", bound=0.01, conditions="scene")["verdict"]
    'not inside'
    """
    v = float(value)
    if se_needed is None and kind == "abs_max" and se is not None:
        se_needed = float(bound) / 2
    resolved = se is None or (np.isfinite(se) and float(se) <= se_needed)
    within = bool(np.isfinite(v) and _within(kind, bound, v))
    # too large an s.e. is "not resolved" whichever side the value lies: a few units' s.e. is itself uncertain
    verdict = (INSIDE if within else OUTSIDE) if resolved else UNRESOLVED
    out = {"value": v}
    if se is not None:
        out["se"] = float(se)
    out.update(target=target, verdict=verdict, inside=verdict == INSIDE, resolved=bool(resolved),
               conditions=conditions)
    out.update({k: (float(x) if isinstance(x, (float, np.floating)) else x) for k, x in info.items() if x is not None})
    if se_needed is not None:
        out["se_needed"] = float(se_needed)
    if note:
        out["note"] = note
    out["rule"] = {"kind": kind, "bound": list(bound) if kind == "range" else float(bound),
                   "se_needed": None if se_needed is None else float(se_needed)}
    return out


def pull(value, *, n: int, conditions: str, note: str | None = None) -> dict:
    """A pull (spread of (estimate − truth)/σ over ``n`` values) against :data:`PULL_RANGE`.

    Its s.e. is that of a standard deviation, ``value/√(2(n − 1))``; judged when ≤ 0.1 (half the margin below 1).

    Examples
    --------
    >>> pull(1.02, n=5000, conditions="scene")["verdict"], pull(1.02, n=4, conditions="scene")["verdict"]
    ('inside', 'not resolved at this size')
    """
    lo, hi = PULL_RANGE
    se = float(value) / np.sqrt(2 * max(int(n) - 1, 1)) if n > 1 else float("inf")
    return judge(value, se=se, se_needed=0.1, target=f"{lo:g}–{hi:g}", kind="range", bound=PULL_RANGE,
                 conditions=conditions, note=note, values=int(n))


def correlation(r, *, n: int, target: str, bound: float, conditions: str, note: str | None = None) -> dict:
    """A correlation against ``r ≥ bound``, s.e. ``(1 − r²)/√(n − 3)`` (Fisher), judged when ≤ (1 − bound)/2.

    Examples
    --------
    >>> correlation(0.96, n=700, target="≥ 0.95", bound=0.95, conditions="scene")["verdict"]
    'inside'
    """
    se = (1 - float(r) ** 2) / np.sqrt(max(int(n) - 3, 1))
    return judge(r, se=se, se_needed=(1 - bound) / 2, target=target, kind="at_least", bound=bound,
                 conditions=conditions, note=note, values=int(n))


def slope(rel, t) -> tuple[float, float]:
    """OLS slope of a relative error against t/λ and its s.e., both in % per unit t/λ.

    Examples
    --------
    >>> s, se = slope(np.array([0.0, 0.01, 0.02]), np.array([0.3, 0.8, 1.3]))
    >>> round(s, 3), round(se, 3)
    (2.0, 0.0)
    """
    rel, t = np.asarray(rel, float).ravel(), np.asarray(t, float).ravel()
    ok = np.isfinite(rel) & np.isfinite(t)
    rel, t = rel[ok], t[ok]
    tc = t - t.mean()
    s = float((tc * rel).sum() / (tc**2).sum())
    resid = rel - rel.mean() - s * tc
    return 100 * s, 100 * float(np.sqrt((resid**2).sum() / max(rel.size - 2, 1) / (tc**2).sum()))
