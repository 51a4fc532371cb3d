# SPDX-License-Identifier: GPL-3.0-or-later
"""HyperSpy interop (optional): a signal to a calibrated DataArray and back (:func:`from_hyperspy`,
:func:`to_hyperspy`), through the same conversion as the ``.hspy`` reader and writer."""
from __future__ import annotations

import numpy as np

from ..errors import DataValidationError, IonscopeError
from ._convert import dataarray_to_signal_dict, signal_dict_to_dataarray
from ._inputs import accepts_data


def from_hyperspy(signal):
    """Convert a HyperSpy signal to a calibrated DataArray (lazy signals stay lazy).

    Axes keep their names, units (converted to eV/nm/s), scales and offsets;
    the acquisition metadata (beam energy, exposure, biprism voltage, title,
    DOI, ...) become ``attrs`` (see :data:`ionscope.io._convert.METADATA_MAP`).
    An image stays ``(y, x)`` with ``da[iy, ix] == s.isig[ix, iy]``.

    Parameters
    ----------
    signal : hyperspy.signal.BaseSignal
        Any HyperSpy signal (needs the optional ``hyperspy`` extra).

    Returns
    -------
    xarray.DataArray
        On ionscope's dims (:data:`ionscope.data.DIMS`), dask-backed for a lazy signal.

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import calibrated
    >>> da = calibrated(np.arange(12.0).reshape(3, 4), ("y", "x"), scale={"y": 0.5, "x": 0.5})
    >>> s = to_hyperspy(da)  # doctest: +SKIP
    >>> s.data.shape, float(s.isig[1, 0].data)  # doctest: +SKIP
    ((3, 4), 1.0)
    >>> from_hyperspy(s).dims  # doctest: +SKIP
    ('y', 'x')
    """
    axes = []
    for ax in sorted(signal.axes_manager._axes, key=lambda a: a.index_in_array):
        d = {"name": ax.name if isinstance(ax.name, str) else None, "size": ax.size,
             "units": ax.units if isinstance(ax.units, str) else None,
             "index_in_array": ax.index_in_array, "navigate": ax.navigate}
        if getattr(ax, "is_uniform", True):
            d.update(scale=ax.scale, offset=ax.offset)
        else:
            d["axis"] = np.asarray(ax.axis)
        axes.append(d)
    sig = {"data": signal.data, "axes": axes, "metadata": signal.metadata.as_dictionary()}
    return signal_dict_to_dataarray(sig, source=signal.metadata.get_item("General.original_filename"))


@accepts_data("da")
def to_hyperspy(da):
    """Convert a DataArray to a HyperSpy signal (needs the optional ``hyperspy`` extra).

    Spectra (an ``energy`` dim) become ``Signal1D`` (``EELS`` with exspy),
    everything with ``(y, x)`` a ``Signal2D`` (complex: ``ComplexSignal2D``;
    holograms: ``HologramImage`` with holospy) whose data keep ionscope's
    array order, so ``s.data.shape == (..., ny, nx)`` and ``s.isig[ix, iy]``
    is ``da[..., iy, ix]``; every other dim navigates. Metadata are mapped as
    in :func:`from_hyperspy`, and attrs without a HyperSpy home are kept in
    ``s.metadata.ionscope``, so ``from_hyperspy(to_hyperspy(da))`` is exact.

    Parameters
    ----------
    da : DataArray
        Calibrated data on ionscope's dims.

    Returns
    -------
    hyperspy.signal.BaseSignal
        The signal (lazy for dask-backed data).

    Examples
    --------
    >>> import numpy as np
    >>> from ionscope.data import calibrated
    >>> si = calibrated(np.ones((2, 16)), ("position", "energy"), scale={"energy": 0.1})
    >>> s = to_hyperspy(si)  # doctest: +SKIP
    >>> s.axes_manager.signal_axes[0].units, s.data.shape  # doctest: +SKIP
    ('eV', (2, 16))
    """
    try:
        import hyperspy.api as hs
    except ImportError:
        raise IonscopeError("to_hyperspy needs HyperSpy: pip install 'ionscope[hyperspy]'") from None
    from ._convert import hyperspy_order, signal_dims

    if not hasattr(da, "dims"):
        raise DataValidationError(f"to_hyperspy: a {type(da).__name__} has no axes to name; pass a DataArray "
                                  "(e.g. ionscope.data.calibrated(array, dims, scale=...))")
    da = hyperspy_order(da)
    d = dataarray_to_signal_dict(da)
    n_sig = len(signal_dims(da.dims))
    complex_data = np.iscomplexobj(d["data"])
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        if n_sig == 1:
            cls = hs.signals.ComplexSignal1D if complex_data else hs.signals.Signal1D
        elif n_sig == 2:
            cls = hs.signals.ComplexSignal2D if complex_data else hs.signals.Signal2D
        else:
            cls = hs.signals.BaseSignal
        signal = cls(d["data"], axes=d["axes"], metadata=d["metadata"])
        st = d["metadata"]["Signal"]["signal_type"]
        if st:
            try:
                signal.set_signal_type(st)  # EELS needs exspy, hologram holospy; else stays generic
            except Exception:
                pass
    return signal
