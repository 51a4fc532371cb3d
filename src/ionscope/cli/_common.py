# SPDX-License-Identifier: GPL-3.0-or-later
"""The options every command shares, so that the vocabulary is one across commands.

- ``-o/--out`` for the output, checked against the suffixes the command writes and
  refused when it exists and ionscope did not write it (``--overwrite`` replaces it;
  what ionscope wrote is recorded in ``.ionscope.manifest.json`` beside it);
- ``--refs`` for reference *spectra* (the older ``--reference``/``--references``
  still work but are hidden from ``--help``); ``--vacuum`` for vacuum reference
  *holograms* (``holo``; ``--refs`` there still works, with a deprecation warning);
- ``--var NAME`` to pick one variable of a multi-variable store, wherever a store is read;
- ``--no-progress`` and ``-q/--quiet`` everywhere;
- units in the option name where a quantity could be read in more than one:
  ``--window-ev`` (energy window), ``--window-frames`` (frames), ``-nm``/``-px`` for
  lengths and regions. Renamed options keep their old spelling as a hidden alias that
  prints a deprecation warning (:func:`add_alias`). ``docs/data_model.md`` lists them.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

READ_HELP = "force a rosettasciio reader plugin, e.g. HSPY for an ambiguous .hdf5 (default: from the suffix)"


def printable(text) -> str:
    """``text`` with control characters escaped: a file name holding a newline or a terminal escape
    cannot forge a console line or an error message's "one line" (issue 17, red team).

    Examples
    --------
    >>> printable("evil\\nionscope run: done.nc")
    'evil\\\\nionscope run: done.nc'
    """
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def as_option(message: str, args) -> str:
    """An error that names a library argument the user gave as an option, reworded to name the option.

    The library's messages start with the argument's name (``fit_range: ...``); on the command line the
    user typed ``--fit-range``, so that is what the one-line error names.

    Examples
    --------
    >>> import argparse
    >>> as_option("fit_range: expected start < end in eV, got (80.0, 40.0)",
    ...           argparse.Namespace(fit_range=[80.0, 40.0]))
    '--fit-range: expected start < end in eV, got (80.0, 40.0)'
    >>> as_option("fit_range: expected start < end", argparse.Namespace(fit_range=None))
    'fit_range: expected start < end'
    """
    import re

    m = re.match(r"([a-z][a-z0-9_]*)(?=[:=])", message)
    if m and "_" in m.group(1) and getattr(args, m.group(1), None) is not None:
        return "--" + m.group(1).replace("_", "-") + message[m.end():]
    return message


def add_out(p, *, suffixes, what: str, required: bool = True, metavar: str = "OUT", default=None) -> None:
    """``-o/--out``; ``suffixes`` are the ones the command honours (None: a folder)."""
    allowed = f" ({', '.join(suffixes)})" if suffixes else ""
    p.add_argument("-o", "--out", required=required and default is None, default=default, metavar=metavar,
                   help=f"{what}{allowed}, written atomically" + (f" (default: {default})" if default else ""))
    if suffixes:
        add_overwrite(p)
    p.set_defaults(out_suffixes=tuple(suffixes) if suffixes else None)


def add_overwrite(p) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT that ionscope did not write (one it wrote is replaced anyway)")


def add_refs(p, *, what: str, aliases=("--reference", "--references"), required: bool = False) -> None:
    p.add_argument("--refs", metavar="REFS", required=required, help=what)
    for alias in aliases:  # older spellings keep working, hidden from --help
        p.add_argument(alias, dest="refs", metavar="REFS", help=argparse.SUPPRESS)


class _DeprecatedAlias(argparse.Action):
    """An old option spelling: stores into the new option's ``dest`` and says, once, what to write now."""

    def __init__(self, option_strings, dest, *, new: str, append: bool = False, **kwargs):
        self.new, self.append = new, append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        if self.append:
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
        else:
            setattr(namespace, self.dest, values)


def add_alias(p, old: str, *, new: str, dest: str, append: bool = False, **kwargs) -> None:
    """Keep ``old`` working as a hidden, deprecated spelling of ``new`` (same ``dest``, ``nargs``, ``type``;
    ``append`` for a repeatable option)."""
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, append=append, help=argparse.SUPPRESS,
                   **kwargs)


def add_vacuum(p, *, what: str, old=("--refs", "--reference", "--references")) -> None:
    """``--vacuum`` for vacuum reference holograms (``--refs`` means reference spectra elsewhere)."""
    p.add_argument("--vacuum", metavar="VACUUM", help=what)
    for alias in old:
        add_alias(p, alias, new="--vacuum", dest="vacuum", metavar="VACUUM")


def add_var(p, *, default_hint: str) -> None:
    p.add_argument("--var", metavar="NAME",
                   help=f"variable to read from a multi-variable .zarr/.nc store (default: {default_hint})")


def add_progress(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (implies --no-progress)")


def add_reader(p) -> None:
    p.add_argument("--reader", metavar="PLUGIN", help=READ_HELP)


def show_progress(args) -> bool | None:
    """False when asked to hide bars; None (automatic: on a terminal) otherwise."""
    if getattr(args, "quiet", False) or getattr(args, "no_progress", False):
        return False
    return None


def say(args, *lines) -> None:
    """Print unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        for line in lines:
            print(line)


def check_out(args, path=None) -> Path:
    """The ``--out`` path, refused (before any work) if the command would not write that format."""
    from ..errors import FileFormatError

    out = Path(path if path is not None else args.out)
    allowed = getattr(args, "out_suffixes", None)
    if allowed and out.suffix == "" and not out.is_dir():
        out = out.with_suffix(allowed[0])  # `--out maps` has always meant maps.zarr
    if allowed and out.suffix.lower() not in allowed:
        names = allowed[0] if len(allowed) == 1 else f"{', '.join(allowed[:-1])} or {allowed[-1]}"
        raise FileFormatError(f"--out {out}: expected a {names} path (the formats this command writes)")
    own = "out" if path is None else next((k for k in _OUTPUT_KEYS if getattr(args, k, None) is path), None)
    refuse_inputs(args, out, own=own)
    if allowed:  # before any work: a file ionscope did not write is never replaced without --overwrite
        from .._outdir import claim_file

        claim_file(out, overwrite=getattr(args, "overwrite", False))
    return out


_OUTPUT_KEYS = ("out", "output", "refs_out")


def refuse_inputs(args, out, *, own=None) -> None:
    """Refuse (before any work) an output that would replace what the same command reads or writes.

    ``out`` may not be, lie inside (a file or data store) or hold an existing path given in another of
    the command's arguments, nor be another of its outputs: ``ionscope refs regions night.zarr -o
    night.zarr`` would otherwise replace the night by its references, even with ``--overwrite``, since
    a store ionscope converted is "ours" to replace. ``own`` names the argument ``out`` came from.

    Raises
    ------
    OutputPathError
        Naming the output and the argument it collides with.

    Examples
    --------
    >>> import argparse, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "night.nc").write_text("data")
    >>> args = argparse.Namespace(input=str(d / "night.nc"), out=str(d / "night.nc"))
    >>> try:
    ...     refuse_inputs(args, d / "night.nc", own="out")
    ... except Exception as exc:
    ...     print(type(exc).__name__)
    OutputPathError
    """
    import os

    from .._outdir import overlap
    from ..errors import OutputPathError

    me = Path(out).resolve()
    for key, value in vars(args).items():
        if key == own:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, (str, os.PathLike)) or not str(v):
                continue
            if key in _OUTPUT_KEYS:  # another output of the same command: never the same path
                how = "is also" if Path(v).resolve() == me else None
                what = f"the output of --{key.replace('_', '-')}"
            elif Path(v).exists():
                how = overlap(out, v, holds=True)
                what = f"the {key.replace('_', '-')} argument ({v})"
            else:
                continue
            if how:
                raise OutputPathError(f"--out {out}: {how} {what}; ionscope never writes over what a command "
                                      f"reads or writes: choose a path of its own (nothing was changed)")


def load_input(path, *, var=None, prefer=(), reader=None, lazy=None, what="INPUT"):
    """Load one DataArray: ``var`` if given, else the only variable, else the first of ``prefer``
    present (case-insensitive); otherwise a clear error listing the variables."""
    import xarray as xr

    from ..errors import FileFormatError
    from ..io import load

    obj = load(path, var=var, reader=reader, lazy=lazy)
    if isinstance(obj, xr.DataArray):
        return obj
    names = [str(n) for n in obj.data_vars]
    lower = {n.lower(): n for n in names}
    for want in prefer:
        if want.lower() in lower:
            name = lower[want.lower()]
            print(f"{path}: using variable {name!r} of {names} (choose with --var)", file=sys.stderr)
            da = obj[name]
            da.attrs = {**obj.attrs, **da.attrs}  # the store's provenance (method, fit range ...) travels along
            return da
    raise FileFormatError(f"{path}: holds variables {names}; choose the {what} with --var NAME")


@contextlib.contextmanager
def naming(**roles):
    """Errors a science function raises about one of its arguments name the file it came from.

    A science function knows its arguments, not their files: it says ``"references: needs dims
    ('component', 'energy'), got ('y', 'x')"``. ``roles`` maps such an argument name to
    ``(option, path)``; within the block an :class:`~ionscope.errors.IonscopeError` whose message
    starts with one of the names (and does not name the file already) is raised again with the file
    and option in place of the name: ``"holo.nc (--refs): needs dims ..."``.
    """
    from ..errors import IonscopeError

    try:
        yield
    except IonscopeError as exc:
        msg = str(exc)
        head, sep, rest = msg.partition(": ")
        option, path = roles.get(head, (None, None))
        if not sep or path is None or str(path) in msg:
            raise
        try:
            renamed = type(exc)(f"{path} ({option}): {rest}")
        except TypeError:  # an error class with another constructor: keep it as it is
            raise exc from None
        raise renamed from None


def need_dims(da, path, *, option: str, need, what: str, hint: str = "") -> None:
    """Refuse, naming the file and option, an input whose dims are not what the command reads."""
    from ..errors import ShapeMismatchError

    if set(need) <= set(da.dims) and len(da.dims) == len(need):
        return
    raise ShapeMismatchError(f"{path} ({option}): dims {tuple(da.dims)}; expected {what} with dims "
                             f"{tuple(need)}{hint}")


def keep_acquisition(out, source) -> None:
    """Copy the acquisition metadata (beam energy, angles, microscope, date, title, source file ...) of
    ``source`` into ``out.attrs``, so maps made from a .dm4 still say how it was recorded."""
    from ..data import METADATA_SCHEMA

    for key in METADATA_SCHEMA:
        if key not in ("signal_type", "dispersion_ev") and key in source.attrs and key not in out.attrs:
            out.attrs[key] = source.attrs[key]


@contextlib.contextmanager
def dask_progress(desc: str, enable: bool | None):
    """A tqdm bar over the dask tasks computed inside the block (limap/mva on lazy series)."""
    from .._progress import progress_enabled

    if not (progress_enabled() if enable is None else enable):
        yield
        return
    from dask.callbacks import Callback
    from tqdm.auto import tqdm

    class _Bar(Callback):
        def _start_state(self, dsk, state):
            self._bar = tqdm(total=sum(len(state[k]) for k in ("ready", "waiting", "running")) + len(
                state.get("finished", ())), desc=desc, unit="task", dynamic_ncols=True)

        def _posttask(self, key, result, dsk, state, worker_id):
            self._bar.update(1)

        def _finish(self, dsk, state, errored):
            self._bar.close()

    with _Bar():
        yield
