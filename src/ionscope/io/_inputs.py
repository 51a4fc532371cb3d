# SPDX-License-Identifier: GPL-3.0-or-later
"""The one input adapter: whatever a user naturally holds becomes what a function computes on.

Every public function that takes data accepts

1. an :class:`xarray.DataArray` (ionscope's own type: dims from :data:`ionscope.data.DIMS`,
   coordinates in eV / nm / s);
2. an :class:`xarray.Dataset` of one variable (e.g. ``io.load("profile.nc")``);
3. an :class:`xarray.Dataset` of several variables (``io.load("limaps.zarr")``): the variable named
   by ``var=``; without ``var``, the store's main variable (the one :func:`ionscope.io.save` marked),
   else the first of the function's preferred names (e.g. ``Li`` for denoising) that is present;
4. a HyperSpy signal (lazy or not) with its calibration and metadata, through
   :func:`ionscope.io.from_hyperspy`;
5. a numpy or dask array, its axes given by the function's own keywords (``energy=`` for spectra)
   or taken in the default order (``(y, x)``, ``(time, y, x)``, ``(..., energy)``).

Anything else gets one :class:`~ionscope.errors.DataValidationError` that says what to pass.
Results come back as DataArrays for inputs 1–4 and as arrays for plain arrays. Functions declare
their data arguments with :func:`accepts_data`; the adapter itself is :func:`as_data`.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import DataValidationError, FileFormatError

#: What every data-taking function accepts, in words (used in error messages and docstrings).
INPUT_KINDS = ("a DataArray, a Dataset (pick a variable with var=NAME), a HyperSpy signal, "
               "or a numpy/dask array")

#: Variables tried, in order, when a multi-variable Dataset is passed without ``var`` and the
#: function states no preference of its own: the Li map, the Li fraction x (stored as
#: ``li_fraction``: a variable cannot be called ``x``, the name of the horizontal axis), a
#: spectrum image.
DEFAULT_PREFER = ("Li", "li", "li_fraction", "si", "data")

#: Names the same quantity has had in different outputs; ``var=`` accepts either spelling
#: (the user-facing names are the first of each pair; see ``docs/data_model.md``).
VARIABLE_ALIASES = {"Li": ("li",), "Li_std": ("li_std",), "Co": ("co",), "Co_std": ("co_std",)}


def is_hyperspy_signal(obj: Any) -> bool:
    """True for a HyperSpy signal (checked by its attributes: HyperSpy need not be installed)."""
    return (hasattr(obj, "axes_manager") and hasattr(obj, "metadata") and hasattr(obj, "data")
            and hasattr(obj, "original_metadata"))


def _aliases(name: str) -> list[str]:
    out = [name]
    for main, others in VARIABLE_ALIASES.items():
        group = (main, *others)
        if name in group:
            out += [n for n in group if n != name]
    return out


def pick_variable(ds, *, var: str | None = None, prefer: Sequence[str] = (), name: str = "data"):
    """One variable of a Dataset as a DataArray (the Dataset's attrs travel along).

    ``var`` (or one of its :data:`VARIABLE_ALIASES`), else the only variable, else the one the
    store marks (``ionscope_variable``), else the first of ``prefer`` present (exact name, then
    case-insensitive).

    Parameters
    ----------
    ds : Dataset
        The variables.
    var : str, optional
        The variable asked for.
    prefer : sequence of str
        Names to fall back on, in order.
    name : str
        How the data are named in error messages.

    Returns
    -------
    DataArray

    Raises
    ------
    DataValidationError
        No way to choose (the message lists the variables).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"Li": ("x", np.ones(3)), "Co": ("x", np.zeros(3))})
    >>> pick_variable(ds, var="Co").name, pick_variable(ds, prefer=("Li",)).name
    ('Co', 'Li')
    """
    names = [str(n) for n in ds.data_vars]
    chosen = None
    if var is not None:
        for candidate in _aliases(str(var)):
            if candidate in ds.data_vars:
                chosen = candidate
                break
        if chosen is None:
            raise DataValidationError(f"{name}: var={var!r} is not a variable of the Dataset; it holds {names}")
    elif len(names) == 1:
        chosen = names[0]
    elif ds.attrs.get("ionscope_variable") in ds.data_vars:
        chosen = ds.attrs["ionscope_variable"]
    else:
        lower = {n.lower(): n for n in names}
        for want in prefer:
            if want in ds.data_vars:
                chosen = want
                break
            if want.lower() in lower:
                chosen = lower[want.lower()]
                break
    if chosen is None:
        if not names:
            raise DataValidationError(f"{name}: the Dataset holds no data variable")
        raise DataValidationError(f"{name}: a Dataset of variables {names}; choose one with var=NAME "
                                  f"(or pass ds[{names[0]!r}])")
    da = ds[chosen]
    extra = {k: v for k, v in ds.attrs.items() if k not in da.attrs and k != "ionscope_variable"}
    if extra:
        da = da.copy(deep=False)
        da.attrs = {**extra, **da.attrs}  # the store's provenance (method, beam energy ...) travels along
    return da


def as_data(obj: Any, *, var: str | None = None, name: str = "data", prefer: Sequence[str] = DEFAULT_PREFER,
            keep_dataset: bool = False, allow_none: bool = False, array_kind: str | None = None):
    """Normalise one data argument: a DataArray (kinds 1–4 of the module docstring) or an array (kind 5).

    Parameters
    ----------
    obj : DataArray, Dataset, HyperSpy signal, numpy/dask array or sequence of numbers
        What the user passed.
    var : str, optional
        The variable of a multi-variable Dataset.
    name : str
        How the argument is named in error messages (``"sparse_coding: data"``).
    prefer : sequence of str
        Variables tried, in order, for a multi-variable Dataset without ``var``.
    keep_dataset : bool
        For functions that read several named variables (e.g. ``li_fraction`` reads ``Li`` and
        ``Co``): a Dataset is returned as it is (``var`` still picks one variable if given).
    allow_none : bool
        Pass ``None`` through (optional data arguments such as a reference).
    array_kind : {"image", "spectrum"}, optional
        For functions that need labelled data: a plain array becomes a DataArray with the
        default dims of that kind (:func:`ionscope.data.as_dataarray`) instead of staying an array.

    Returns
    -------
    xarray.DataArray, xarray.Dataset (``keep_dataset``), numpy/dask array or None

    Raises
    ------
    FileFormatError
        A path: load it first (the message says how).
    DataValidationError
        Anything else, with one line that says what to pass.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"Li": (("y", "x"), np.ones((2, 3)))})
    >>> as_data(ds).dims
    ('y', 'x')
    >>> as_data({"a": 1}, name="f: data")
    Traceback (most recent call last):
    ...
    ionscope.errors.DataValidationError: f: data is a dict; expected a DataArray, a Dataset (pick a variable with var=NAME), a HyperSpy signal, or a numpy/dask array
    """
    import xarray as xr

    if obj is None and allow_none:
        return None
    if isinstance(obj, xr.DataArray):
        return obj
    if isinstance(obj, xr.Dataset):
        if keep_dataset and var is None:
            return obj
        return pick_variable(obj, var=var, prefer=prefer, name=name)
    if is_hyperspy_signal(obj):
        from ._hyperspy import from_hyperspy

        return from_hyperspy(obj)
    if (hasattr(obj, "chunks") and hasattr(obj, "dtype") and hasattr(obj, "ndim")) or isinstance(obj, np.ndarray):
        return _labelled(obj, array_kind, name)  # a dask array stays lazy
    kind = type(obj).__name__
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        raise FileFormatError(f"{name} is a path ({obj!s}); load it first: ionscope.io.load({str(obj)!r})")
    if isinstance(obj, (list, tuple)) or np.isscalar(obj):
        try:
            arr = np.asarray(obj)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.dtype.kind in "biufc":
            return _labelled(arr, array_kind, name)
        kind = f"{kind} of non-numbers"
    raise DataValidationError(f"{name} is a {kind}; expected {INPUT_KINDS}")


def _labelled(arr, array_kind, name):
    if array_kind is None:
        return arr
    from ..data import as_dataarray

    return as_dataarray(arr, kind=array_kind, name=name)


_VAR_DOC = ("The variable of a multi-variable Dataset (default: the store's main variable, else {prefer}). "
            "Every input kind of ``docs/data_model.md`` is accepted: a DataArray, a Dataset, a HyperSpy "
            "signal or a numpy array.")


def _document_var(doc: str | None, prefer: Sequence[str]) -> str | None:
    """Add the ``var`` entry at the end of a numpydoc Parameters section."""
    if not doc or "Parameters\n" not in doc:
        return doc
    lines = doc.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters"
                     and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"})
    except StopIteration:
        return doc
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    end = len(lines)
    for i in range(start + 2, len(lines) - 1):
        if lines[i].strip() and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"} \
                and lines[i][: len(lines[i]) - len(lines[i].lstrip())] == indent:
            end = i
            break
    while end > start + 2 and not lines[end - 1].strip():
        end -= 1
    import textwrap

    hint = "the first present of " + ", ".join(prefer) if prefer else "an error listing the variables"
    entry = [indent + "var : str, optional"] + textwrap.wrap(_VAR_DOC.format(prefer=hint), width=88,
                                                            initial_indent=indent + "    ",
                                                            subsequent_indent=indent + "    ")
    return "\n".join(lines[:end] + entry + lines[end:])


def accepts_data(*names: str, prefer: Sequence[str] = DEFAULT_PREFER, keep_dataset: Sequence[str] = (),
                 optional: Sequence[str] = (), array_kind: str | None = None) -> Callable:
    """Decorator: the arguments ``names`` of a public function go through :func:`as_data`.

    The first name is the main data: ``var=`` (added as a keyword-only argument, documented in
    the docstring) picks its variable from a multi-variable Dataset. The wrapped
    function records its data arguments in ``__ionscope_inputs__`` (a test walks the public API
    with it).

    Parameters
    ----------
    *names : str
        The data arguments of the decorated function.
    prefer : sequence of str
        Variable names preferred when a Dataset has several (see :func:`pick_variable`).
    keep_dataset : sequence of str
        Arguments that accept a Dataset of named variables as it is.
    optional : sequence of str
        Arguments that may be None.
    array_kind : {"spectrum", "image"}, optional
        Plain arrays become DataArrays of that kind's default dims.

    Returns
    -------
    callable
        The decorator.

    Examples
    --------
    >>> import xarray as xr
    >>> @accepts_data("data")
    ... def total(data):
    ...     return float(data.sum())
    >>> ds = xr.Dataset({"Li": ("x", [1.0, 2.0]), "Co": ("x", [5.0, 5.0])})
    >>> total(ds, var="Li"), total.__ionscope_inputs__
    (3.0, ('data',))
    """
    if not names:
        raise ValueError("accepts_data: name at least one data argument")

    def decorate(fn):
        sig = inspect.signature(fn)
        missing = [n for n in names if n not in sig.parameters]
        if missing:
            raise TypeError(f"accepts_data: {fn.__qualname__} has no argument(s) {missing}")
        own_var = "var" in sig.parameters
        label = fn.__name__
        params = list(sig.parameters.values())
        # where each data argument sits: its position (if it can be passed positionally) and options
        slots = []
        for i, n in enumerate(names):
            par = sig.parameters[n]
            pos = params.index(par) if par.kind in (par.POSITIONAL_ONLY, par.POSITIONAL_OR_KEYWORD) else None
            slots.append((n, pos, dict(name=f"{label}: {n}", prefer=prefer, keep_dataset=n in keep_dataset,
                                       allow_none=n in optional or (i > 0 and par.default is None),
                                       array_kind=array_kind)))
        plain = (np.ndarray,) if array_kind is None else ()

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # no inspect.Signature.bind here: this runs on every call, also inside loops
            var = kwargs.get("var") if own_var else kwargs.pop("var", None)
            args = list(args)
            for i, (n, pos, opts) in enumerate(slots):
                if pos is not None and pos < len(args):
                    value = args[pos]
                    if not isinstance(value, plain) or var is not None:
                        args[pos] = as_data(value, var=var if i == 0 else None, **opts)
                elif n in kwargs:
                    value = kwargs[n]
                    if not isinstance(value, plain) or var is not None:
                        kwargs[n] = as_data(value, var=var if i == 0 else None, **opts)
            return fn(*args, **kwargs)

        if not own_var:
            var_param = inspect.Parameter("var", inspect.Parameter.KEYWORD_ONLY, default=None)
            at = next((i for i, p in enumerate(params) if p.kind == inspect.Parameter.VAR_KEYWORD), len(params))
            params.insert(at, var_param)
            wrapper.__signature__ = sig.replace(parameters=params)
            wrapper.__doc__ = _document_var(fn.__doc__, prefer)
        wrapper.__ionscope_inputs__ = tuple(names)
        return wrapper

    return decorate
