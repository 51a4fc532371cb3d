# SPDX-License-Identifier: GPL-3.0-or-later
"""The EELS table's two reads of the spectra (issue 20): the screen's summaries, then the Li maps.

A night reads every frame twice, each time with one task per frame on the
executor (:mod:`ionscope.pipeline._executors`):

1. **screen** — :func:`screen_summaries`: per frame the plausibility
   statistics, the frame's summed spectrum (the energy drift is measured on
   it), its registration image (the specimen drift), and — for spectra holding
   their zero-loss peak — the raw spectra around the few pixels whose zero-loss
   width sets the deconvolution's resolution (:data:`WINDOW_RADIUS`). The
   ``energy_drift`` and ``register`` stages then need no read of the spectra.
2. **limap** — :func:`li_columns`: per frame the energy drift undone, the
   specimen drift undone and the Li map fitted
   (:func:`ionscope.pipeline._eels_frame.frame_columns`), straight from the
   frame as read; no corrected 4-D series is written or read in between.

The fit's plan (design, references, resolution) enters the graph as one
delayed key, so a cluster ships it once per worker, not with every task.
"""
from __future__ import annotations

import numpy as np

from ..errors import IonscopeError
from ._eels_frame import FramePlan, frame_columns, frame_summary, probe_positions

#: Largest specimen drift (px) for which the zero-loss width is measured on spectra gathered by the
#: screen; a larger drift reads the probed frames again (same result, one more partial read).
WINDOW_RADIUS = 4


# --------------------------------------------------------------------------- the first read


def probe_layout(n_frames: int, ny: int, nx: int):
    """The probe pixels ``(t, y, x)`` (all frames good) and the origin of each one's raw window."""
    q = probe_positions(n_frames, ny, nx)
    t, r = np.divmod(q, ny * nx)
    y, x = np.divmod(r, nx)
    wy, wx = min(ny, 2 * WINDOW_RADIUS + 2), min(nx, 2 * WINDOW_RADIUS + 2)
    oy = np.clip(y - WINDOW_RADIUS, 0, ny - wy)
    ox = np.clip(x - WINDOW_RADIUS, 0, nx - wx)
    return np.stack([t, y, x], axis=1), np.stack([oy, ox], axis=1), (wy, wx)


def _summarise(frame, plan: FramePlan, origins, size):
    out = frame_summary(frame, plan=plan)
    out["windows"] = None
    if len(origins):
        wy, wx = size
        out["windows"] = np.stack([np.asarray(frame)[oy:oy + wy, ox:ox + wx] for oy, ox in origins])
    return out


def _summarise_parts(parts, plan: FramePlan):
    """A frame stored in several chunks along y: each summarised, then combined (no probe windows)."""
    got = [frame_summary(p, plan=plan) for p in parts]
    st = np.stack([g["statistics"] for g in got])
    stats = np.array([st[:, 0].sum(), st[:, 1].min(), st[:, 2].sum(), st[:, 3].sum(), st[:, 4].sum()])
    spectrum = got[0]["spectrum"]
    for g in got[1:]:
        spectrum = spectrum + g["spectrum"]
    return {"statistics": stats, "implausible": sum(int(g["implausible"]) for g in got), "spectrum": spectrum,
            "image": np.concatenate([g["image"] for g in got]), "windows": None}


def screen_summaries(series, *, plan: FramePlan, batch: int = 4, bar=lambda items: items, windows: bool = False):
    """Read every frame once (one task per frame): statistics, spectrum, registration image, probe windows.

    A batch that fails to read is retried frame by frame, so one bad frame
    does not take its neighbours with it (as :func:`ionscope.pipeline._screen.screen_statistics`).

    Returns
    -------
    dict
        ``stats`` (as ``screen_statistics``), ``unreadable`` {position: reason},
        ``implausible`` (time,) the spectra that break the raw-count plausibility rule,
        ``spectrum`` (time, energy), ``image`` (time, y, x), and with
        ``windows`` ``probe`` {``pixels``, ``origins``, ``windows`` (probe, wy, wx, energy)}
        (None when a frame with probes did not give its window).
    """
    import dask

    from ._gates import STATISTICS

    data = series.transpose("time", "y", "x", "energy").data
    n, ny, nx, ne = data.shape
    pixels, origins, size = probe_layout(n, ny, nx) if windows else (np.zeros((0, 3), int), None, None)
    whole = len(data.chunks[1]) == len(data.chunks[2]) == len(data.chunks[3]) == 1
    plan_key = dask.delayed(plan, pure=True)

    def task(t):
        frame = data[t]
        if whole:
            mine = origins[pixels[:, 0] == t] if windows else ()
            return dask.delayed(_summarise, pure=True)(frame, plan_key, mine, size)
        return dask.delayed(_summarise_parts, pure=True)(list(frame.to_delayed().ravel()), plan_key)

    stats = np.zeros((n, 5))
    implausible = np.zeros(n, np.int64)
    spectrum = np.full((n, ne), np.nan, dtype=data.dtype)
    image = np.full((n, ny, nx), np.nan, dtype=data.dtype)
    window_of: dict[int, np.ndarray] = {}
    unreadable: dict[int, str] = {}

    def put(t, got):
        stats[t], spectrum[t], image[t] = got["statistics"], got["spectrum"], got["image"]
        implausible[t] = got.get("implausible", 0)
        if got.get("windows") is not None:
            for k, w in zip(np.flatnonzero(pixels[:, 0] == t), got["windows"]):
                window_of[int(k)] = w

    for start in bar(list(range(0, n, batch))):
        frames = list(range(start, min(start + batch, n)))
        try:
            for t, got in zip(frames, dask.compute(*[task(t) for t in frames])):
                put(t, got)
        except Exception:  # noqa: BLE001 - decoders raise many types; retried frame by frame below
            for t in frames:
                try:
                    put(t, dask.compute(task(t))[0])
                except IonscopeError as exc:  # e.g. a damaged Zarr chunk: the message names the store and chunk
                    stats[t, :2] = np.nan
                    unreadable[t] = f"data unreadable: {exc}"
                except Exception as exc:  # noqa: BLE001
                    stats[t, :2] = np.nan
                    unreadable[t] = (f"data unreadable ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:160] if str(exc) else ''})")
    cols = {"total": 0, "minimum": 1, "nonfinite": 2, "negative": 3, "size": 4}
    out = {"stats": {k: stats[:, cols[k]] if k in ("total", "minimum") else stats[:, cols[k]].astype(np.int64)
                     for k in STATISTICS},
           "unreadable": unreadable, "spectrum": spectrum, "image": image, "probe": None, "implausible": implausible}
    if windows and len(window_of) == len(pixels):
        out["probe"] = {"pixels": pixels, "origins": origins,
                        "windows": np.stack([window_of[k] for k in range(len(pixels))])}
    return out


# --------------------------------------------------------------------------- the zero-loss width's spectra


def registered_probe(probe: dict, drift: np.ndarray, shape) -> np.ndarray | None:
    """The registered spectra at the probe pixels, from the screen's raw windows and the frames' drift
    (the bilinear arithmetic of :func:`ionscope.pipeline._eels_frame._shift_frame`, bit for bit); None
    when a drift reaches beyond a window."""
    from ._eels_frame import _linear_index

    ny, nx = shape
    out = []
    for (t, y, x), (oy, ox), win in zip(probe["pixels"], probe["origins"], probe["windows"]):
        dy, dx = (float(v) for v in drift[t])
        y0, y1, wy = (v[y] for v in _linear_index(ny, dy))
        x0, x1, wx = (v[x] for v in _linear_index(nx, dx))
        wy_, wx_ = win.shape[:2]
        if not (oy <= y0 and y1 < oy + wy_ and ox <= x0 and x1 < ox + wx_):
            return None
        dt = win.dtype.type
        a, b = win[y0 - oy], win[y1 - oy]
        rows = {xx: (b[xx - ox] - a[xx - ox]) * dt(wy) + a[xx - ox] for xx in {x0, x1}}
        left, right = rows[x0], rows[x1]
        out.append((right - left) * dt(wx) + left)
    return np.asarray(np.stack(out), float)


def lazy_probe(registered) -> np.ndarray:
    """The probe spectra read from the (lazy) registered series: what :func:`ionscope.eels.mlls` measures
    the zero-loss width on (reads the frames that hold them)."""
    data = registered.transpose("time", "y", "x", "energy").data
    idx = probe_positions(*data.shape[:3])
    flat = data.reshape(-1, data.shape[-1])
    sample = flat[idx]
    return np.asarray(sample.compute() if hasattr(sample, "compute") else sample, float)


# --------------------------------------------------------------------------- the second read


def _frame_block(block, plan: FramePlan, shift, drift):
    n = block.shape[0]
    shift = np.asarray(shift, float).reshape(n, -1)[:, 0]
    drift = np.asarray(drift, float).reshape(n, -1, 2)[:, 0]
    return np.stack([frame_columns(block[i], plan=plan, energy_shift=shift[i], drift=drift[i]) for i in range(n)])


def li_columns(series, plan: FramePlan, energy_shift: np.ndarray, drift: np.ndarray):
    """The fit's output of every frame as a lazy DataArray (time, y, x, component): one task per frame.

    ``series`` holds the frames as read (one time step per chunk; whole frames
    when they are registered: the bilinear shift needs the neighbouring rows).
    """
    import dask
    import dask.array as da
    import xarray as xr

    series = series.transpose("time", "y", "x", "energy")
    data = series.data
    if plan.register and (len(data.chunks[1]) > 1 or len(data.chunks[2]) > 1):
        data = data.rechunk({1: -1, 2: -1})
    if len(data.chunks[3]) > 1:
        data = data.rechunk({3: -1})
    n_cols = len(plan.fit.columns)
    shift = da.from_array(np.asarray(energy_shift, float), chunks=(data.chunks[0],))
    drift = da.from_array(np.asarray(drift, float).reshape(-1, 2), chunks=(data.chunks[0], 2))
    out = da.map_blocks(_frame_block, data, dask.delayed(plan, pure=True), shift[:, None, None, None],
                        drift[:, None, None, :], dtype=np.float64,
                        chunks=data.chunks[:3] + ((n_cols,),))
    coords = {k: v for k, v in series.coords.items() if "energy" not in v.dims}
    return xr.DataArray(out, dims=("time", "y", "x", "component"), coords=coords)
