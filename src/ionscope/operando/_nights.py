# SPDX-License-Identifier: GPL-3.0-or-later
"""The holography night as users have always called it: with its figures.

:func:`ionscope.pipeline.run_holography` never draws (the runner does not
import the report package); this facade sits above both and hands the
report's writers in, so ``ionscope.operando.run_holography(config)`` writes
the figures, the GIF movie and the viewer as it always did.
"""
from __future__ import annotations


def run_holography(config, *, writers=None, **kwargs):
    """Run a holography night with its figures, movie and viewer (``writers={}``: data files only).

    Parameters
    ----------
    config : path, dict or Config
        A configuration with a ``[holography]`` section.
    writers : dict, optional
        Files the report stage writes beside ``summary.json`` and ``curves.csv``
        (default: :func:`ionscope.report.holography_writers`).
    **kwargs
        As :func:`ionscope.pipeline.run_holography` (``holograms``, ``references``,
        ``log``, ``output``, ``stages``, ``show_progress``, ``wait``, ``executor``).

    Returns
    -------
    HolographyResult

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ionscope.simulate import biased_holograms
    >>> holos, refs, log, truth = biased_holograms(programme=[("rest", 30), ("hold", 1.5, 60)], seed=0)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> res = run_holography({"holography": {"thickness_nm": 60.0}}, holograms=holos, references=refs,
    ...                      log=log, output=out)  # doctest: +SKIP
    >>> sorted(res.summary["files"])  # doctest: +SKIP
    ['curves.csv', 'figures/holo_potential.png', 'figures/holo_steps.png', 'potential_movie.gif', 'viewer.html']
    """
    from ..pipeline import run_holography as run_night
    from ..report import holography_writers

    return run_night(config, writers=holography_writers() if writers is None else writers, **kwargs)
