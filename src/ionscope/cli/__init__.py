# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``ionscope`` command line.

Each sub-command lives in its own module ``ionscope.cli._<name>`` exposing
``register(subparsers)``; the module is imported only to build the parser, and
each handler imports the science it needs when it runs, so ``ionscope --help``
stays fast. Every :class:`ionscope.IonscopeError` is printed as one line and
gives exit status 2; any other exception is printed as one line too (exit
status 1). ``--debug`` prints the traceback as well, with the same exit status. Options shared by the
commands (``-o/--out``, ``--refs``, ``--var``, ``--no-progress``) are built in
:mod:`ionscope.cli._common`.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from .. import __version__
from ..errors import IonscopeError

# Order of appearance in ``ionscope --help``.
COMMANDS = ("demo", "run", "watch", "info", "convert", "simulate", "refs", "limap", "denoise", "holo", "linescan",
            "mva")


def build_parser() -> argparse.ArgumentParser:
    """The ``ionscope`` argument parser, one sub-command per module of :data:`COMMANDS` that exists.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = build_parser().parse_args(["info", "night.zarr"])
    >>> args.command, callable(args.handler)
    ('info', True)
    """
    parser = argparse.ArgumentParser(
        prog="ionscope",
        description="See ions move: operando STEM-EELS Li maps, denoising and electron holography.",
    )
    parser.add_argument("--version", action="version", version=f"ionscope {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        modname = f"{__name__}._{name}"
        if importlib.util.find_spec(modname) is None:
            continue  # command not built yet
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``ionscope`` command; errors are one line on stderr, never a traceback (unless ``--debug``).

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 done, 1 an unforeseen error, 2 an :class:`~ionscope.IonscopeError` (bad input),
        130 interrupted, 141 the reader of stdout left.

    Examples
    --------
    >>> main(["info", "no-such-file.zarr"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted after the command too: `ionscope info X --debug`
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    name = " ".join(str(v) for v in (args.command, getattr(args, "holo_command", None)) if v)
    previous = _terminate_as_exit()
    import warnings

    default_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        # ionscope's own warnings (e.g. the size of a large output) read like its errors: one line
        from ..errors import LargeOutputWarning

        if issubclass(category, LargeOutputWarning):
            return f"ionscope {name}: warning: {message}\n"
        return default_format(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        from .._outdir import file_writes

        # output files: new, written by ionscope before, or --overwrite (never a user's file silently)
        # (--overwrite: only the paths typed, never a file the command names beside its output)
        named = [getattr(args, k, None) for k in ("out", "output", "refs_out")]
        with file_writes(overwrite=getattr(args, "overwrite", False),
                         named=[v for v in named if isinstance(v, (str, os.PathLike))]):
            result = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `ionscope info X | head`: the reader left; say nothing more (and keep Python's
        # shutdown flush from raising again on the closed pipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except IonscopeError as exc:
        if debug:
            # the traceback on request, but the same exit status as without --debug (scripts test it)
            import traceback

            traceback.print_exc()
        from ._common import as_option, printable

        print(f"ionscope {name}: error: {printable(as_option(str(exc), args))}", file=sys.stderr)  # (a name with a newline: still one line)
        return 2
    except (KeyboardInterrupt, _Terminated) as exc:
        _quiet_shutdown()
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped (SIGTERM)"
        print(f"ionscope {name}: {how}; temporary outputs removed", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else exc.code
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback on request
        if debug:
            raise  # Python prints the traceback and exits 1, the status of this branch
        msg = " ".join(str(exc).split()) or "(no message)"
        print(f"ionscope {name}: error: {type(exc).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = default_format
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


class _Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that ``with`` blocks (temporaries) unwind."""


def _quiet_shutdown() -> None:
    """After an interruption, Zarr's writer tasks still pending in its event loop are reported one by one
    at exit ("Task was destroyed but it is pending!"): noise, not news, once the user stopped the run."""
    import logging
    import warnings

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    sys.unraisablehook = lambda unraisable: None  # "Exception ignored in <coroutine ...>" of those tasks


def _terminate_as_exit():
    """SIGTERM (``kill``, a job scheduler's stop) unwinds like Ctrl-C, so every temporary is removed.

    Python's default for SIGTERM ends the process on the spot, skipping the clean-up of
    ``atomic_path`` (a stopped ``simulate`` left a partial store behind). Returns the previous
    handler (None when not on the main thread, where handlers cannot be set).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise _Terminated(128 + signum)

    try:
        return signal.signal(signal.SIGTERM, stop)
    except (ValueError, OSError):
        return None
