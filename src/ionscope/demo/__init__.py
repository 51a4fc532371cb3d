# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope demo``: the showcase, run on embedded simulated data.

The demo is a list of steps; each step is a module ``ionscope.demo._<name>``
with ``run(ctx: DemoContext) -> None`` that reads what earlier steps left in
``ctx.data``, writes its outputs under ``ctx.out`` (atomically, through
:meth:`DemoContext.save_figure` / :meth:`DemoContext.path`) and puts its
numbers in ``ctx.results[name]``. Steps that do not exist yet are skipped.
A failing step is recorded and the others still run; the command then exits
non-zero. ``summary.json`` lists every step, its time and its numbers.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_path

#: Demo steps in order; later issues add theirs here.
STEPS = ("simulate", "eels", "linescan", "mva", "denoise", "holography", "operando", "report")


@dataclass
class DemoContext:
    """What the demo steps share: the output folder, the mode, the data, the numbers and the files written.

    Parameters
    ----------
    out : Path
        The demo folder; every file goes under it.
    quick : bool
        Small problems (seconds per step), as the tests run it.
    data : dict
        What earlier steps left for later ones (simulated movies, fits, ...).
    results : dict of str to dict
        Each step's numbers, by step name (go into ``summary.json``).
    files : list of str
        The files written, relative to ``out``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> ctx = DemoContext(out=pathlib.Path(tempfile.mkdtemp()), quick=True)
    >>> ctx.path("figures/a.png").name, ctx.files
    ('a.png', ['figures/a.png'])
    """

    out: Path
    quick: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """Final output path ``out/name`` (parents created); record it in the summary."""
        p = self.out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(name)
        return p

    def save_figure(self, fig, name: str, **kwargs) -> Path:
        """Save a matplotlib figure atomically as ``out/name`` and release it (closed if pyplot holds it)."""
        from ..report import release_figure as _release
        from ..report import style

        final = self.path(name)
        with style(), atomic_path(final) as tmp:
            fig.savefig(tmp, format=final.suffix.lstrip(".") or "png", dpi=kwargs.pop("dpi", 110),
                        bbox_inches="tight", **kwargs)
        _release(fig)
        return final


def available_steps() -> list[str]:
    """The demo steps that exist, in the order they run.

    Returns
    -------
    list of str
        Names from :data:`STEPS` whose module ``ionscope.demo._<name>`` is present.

    Examples
    --------
    >>> available_steps()[:2]
    ['simulate', 'eels']
    """
    return [s for s in STEPS if importlib.util.find_spec(f"{__name__}._{s}") is not None]


def run_demo(out, *, quick: bool = False, steps: list[str] | None = None, show_progress: bool | None = None) -> dict:
    """Run the demo into directory ``out``; return the summary dictionary.

    Figures are drawn without pyplot in the house style (``matplotlib.rc_context``
    around each step): the caller's matplotlib backend and rcParams are left as they were.

    Parameters
    ----------
    out : str or Path
        The demo folder (new, empty, or an earlier demo's: ionscope writes only its own files there).
    quick : bool
        Small problems, seconds per step.
    steps : list of str, optional
        Run only these steps (default: :func:`available_steps`).
    show_progress : bool, optional
        A progress bar (default: on a terminal only).

    Returns
    -------
    dict
        ``{"ok": bool, "steps": {name: {"status", "seconds", "results"[, "error"]}}, "files": [...]}``, also
        written as ``out/summary.json``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> s = run_demo(pathlib.Path(tempfile.mkdtemp()) / "demo", quick=True, steps=["simulate"], show_progress=False)
    >>> s["ok"], s["steps"]["simulate"]["status"], "figures/simulate.png" in s["files"]
    (True, 'ok', True)
    """
    from .._outdir import session
    from .._progress import progress

    # a new or empty folder, or one a demo made (as run --demo and watch --demo): the demo's names are many,
    # and a user's file among them would stop a step half-way; one demo per folder at a time
    with session(out, fresh=True, what="demo folder"):
        return _run_steps(DemoContext(out=Path(out), quick=quick), steps, show_progress, progress)


def _run_steps(ctx: DemoContext, steps, show_progress, progress) -> dict:
    from ..errors import OutputPathError
    from ..report import style

    chosen = [s for s in available_steps() if steps is None or s in steps]
    summary: dict[str, Any] = {"steps": {}, "ok": True}
    bar = progress(chosen, desc="ionscope demo", enable=show_progress, unit="step")
    for name in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(name)
        t0 = time.perf_counter()
        try:
            with style():
                importlib.import_module(f"{__name__}._{name}").run(ctx)
            status = "ok"
            error = None
        except OutputPathError:
            raise  # a name the demo may not write (a user's file put there meanwhile): one line, no more steps
        except Exception as exc:  # one failing step must not hide the others
            status = "failed"
            error = f"{type(exc).__name__}: {exc}"
            summary["ok"] = False
            traceback.print_exc()
        summary["steps"][name] = {
            "status": status,
            "seconds": round(time.perf_counter() - t0, 2),
            "results": ctx.results.get(name, {}),
            **({"error": error} if error else {}),
        }
    summary["files"] = sorted(set(ctx.files))
    with atomic_path(ctx.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_jsonable))
    return summary


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
