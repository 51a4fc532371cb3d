# SPDX-License-Identifier: GPL-3.0-or-later
"""Li transport from a Li-map movie: change maps, flux, direction, profiles, rest activity.

Geometry (same convention as :mod:`ionscope.simulate`): ``y`` runs *through*
the cathode film, ``x`` is in-plane; with ``interface="top"`` the electrolyte
is at y index 0 and the current collector at the last row. Flux components are
``flux_y`` (+ toward larger y) and ``flux_x``.

The flux is estimated from the continuity equation ∂c/∂t = −∇·J. A Li map
alone determines only the divergence of J, so ionscope returns the
*minimum-norm* (irrotational) flux J = −∇ψ with ∇²ψ = ∂c/∂t — the least
transport that explains the observed change — with Li exchanged only through
the film edges that the cell state opens (by default: the electrolyte side on
charge, the current-collector side on discharge, none at rest) and no flux
through the closed ones. For Fickian diffusion with a uniform diffusivity this
is the true flux; with anisotropic grains and fast boundaries the true flux
also has a circulating (divergence-free) part, which leaves every Li map
unchanged and so cannot be recovered by any method working from Li maps
(:func:`observable_flux` gives the part that can). An optical-flow estimate
(J = c·v) is offered as an independent check.
"""
from __future__ import annotations

import numpy as np

from ..data import axis_scale, axis_values, like_input
from ..errors import DataValidationError, ShapeMismatchError
from ..io import accepts_data
from ._stats import block_jackknife, region_statistics

# --------------------------------------------------------------------------- kernels


def rate_kernel(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """∂c/∂t of a (time, ...) stack at its (possibly uneven) times ``t`` (s).

    Second-order central differences inside, one-sided at both ends
    (``numpy.gradient``), so the rate is centred on each frame.
    """
    c = np.asarray(c, dtype=float)
    if c.shape[0] < 2:
        raise ShapeMismatchError(f"rate of change needs at least 2 frames, got {c.shape[0]}")
    return np.gradient(c, np.asarray(t, float), axis=0)


def _laplacian_eigen(n: int, h: float, kind: str) -> np.ndarray:
    """Eigenvalues (positive) of the 3-point −d²/dx² on n cell centres.

    kind ``"DD"``: ψ = 0 on both end faces (DST-II basis);
    ``"NN"``: zero gradient on both (DCT-II); ``"DN"``: ψ = 0 on the first face,
    zero gradient on the last (DST-IV).
    """
    k = np.arange(n, dtype=float)
    if kind == "DD":
        theta = np.pi * (k + 1) / (2 * n)
    elif kind == "NN":
        theta = np.pi * k / (2 * n)
    else:
        theta = np.pi * (2 * k + 1) / (4 * n)
    return (2 * np.sin(theta) / h) ** 2


# boundary kind → the orthonormal real transform that diagonalises the 1-D Laplacian
# (both ends Dirichlet: DST-II; both Neumann: DCT-II; mixed: DST-IV)
_TRANSFORMS = {"DD": ("dst", 2), "NN": ("dct", 2)}
_MIXED = ("dst", 4)


def _transform(a: np.ndarray, axis: int, kind: str, *, inverse: bool = False) -> np.ndarray:
    from scipy import fft

    name, type_ = _TRANSFORMS.get(kind, _MIXED)
    return getattr(fft, f"i{name}" if inverse else name)(a, type=type_, axis=axis, norm="ortho")


def _gradient_with_ghosts(psi: np.ndarray, axis: int, h: float, lo: str, hi: str) -> np.ndarray:
    """Central difference on cell centres with ghost cells that honour the BCs.

    A Dirichlet face (ψ = 0 half a cell outside) has ghost −ψ, a Neumann face
    (no flux) has ghost +ψ.
    """
    first = np.take(psi, [0], axis=axis)
    last = np.take(psi, [-1], axis=axis)
    lo_ghost = -first if lo == "D" else first
    hi_ghost = -last if hi == "D" else last
    padded = np.concatenate([lo_ghost, psi, hi_ghost], axis=axis)
    n = psi.shape[axis]
    return (np.take(padded, np.arange(2, n + 2), axis=axis) - np.take(padded, np.arange(0, n), axis=axis)) / (2 * h)


def continuity_flux_kernel(dcdt: np.ndarray, *, dy: float = 1.0, dx: float = 1.0, open_y: str = "top",
                           x_boundary: str = "closed"):
    """Minimum-norm flux (J_y, J_x) with ∇·J = −∂c/∂t on (..., y, x) maps.

    Array kernel, exact fast solver: the 5-point Poisson problem is diagonal in
    the sine/cosine bases matching the boundary conditions, so one real
    transform pair per map solves it in O(N log N) (no iterative solver).

    Parameters
    ----------
    dcdt : ndarray (..., y, x)
        Rate of change of the Li map (units per s).
    dy, dx : float
        Pixel size (nm).
    open_y : {"top", "bottom", "both", "none"}
        Which film edges exchange Li: row 0 only, the last row only, both, or
        neither (a closed film: only redistribution; the part of ∂c/∂t with a
        non-zero mean cannot be explained then and is left out).
    x_boundary : {"closed", "open"}
        Whether Li may leave through the in-plane edges of the field of view.

    Returns
    -------
    (flux_y, flux_x) : ndarrays like ``dcdt``, in (units · nm / s), +y toward larger y.

    Examples
    --------
    >>> import numpy as np
    >>> jy, jx = continuity_flux_kernel(np.full((8, 4), -1.0), open_y="top")   # uniform loss
    >>> bool((jy < 0).all()), float(np.abs(jx).max())   # all of it leaves through row 0
    (True, 0.0)
    """
    s = np.asarray(dcdt, dtype=float)
    if s.ndim < 2:
        raise ShapeMismatchError(f"continuity flux needs (..., y, x) maps, got shape {s.shape}")
    if open_y not in ("top", "bottom", "both", "none"):
        raise DataValidationError(f"open_y: expected 'top', 'bottom', 'both' or 'none', got {open_y!r}")
    if x_boundary not in ("closed", "open"):
        raise DataValidationError(f"x_boundary: expected 'closed' or 'open', got {x_boundary!r}")
    ny, nx = s.shape[-2:]
    flip = open_y == "bottom"
    if flip:  # solve with the open edge on top, flip back at the end
        s = s[..., ::-1, :]
    ykind = {"top": "DN", "bottom": "DN", "both": "DD", "none": "NN"}[open_y]
    xkind = "DD" if x_boundary == "open" else "NN"
    lam = _laplacian_eigen(ny, dy, ykind)[:, None] + _laplacian_eigen(nx, dx, xkind)[None, :]
    # ∇²ψ = s  ⇔  −λ ψ̂ = ŝ. Only a fully closed domain has λ = 0 (the mean):
    # its mean change needs a boundary flux that does not exist, so drop it.
    coef = _transform(_transform(s, -2, ykind), -1, xkind)
    singular = lam == 0
    psi_hat = -coef / np.where(singular, 1.0, lam)
    psi_hat[..., singular] = 0.0
    psi = _transform(_transform(psi_hat, -1, xkind, inverse=True), -2, ykind, inverse=True)
    ylo, yhi = {"DN": ("D", "N"), "DD": ("D", "D"), "NN": ("N", "N")}[ykind]
    xb = "D" if xkind == "DD" else "N"
    jy = -_gradient_with_ghosts(psi, -2, dy, ylo, yhi)
    jx = -_gradient_with_ghosts(psi, -1, dx, xb, xb)
    if flip:
        jy, jx = -jy[..., ::-1, :], jx[..., ::-1, :]
    return jy, jx


def optical_flow_kernel(c: np.ndarray, t: np.ndarray, *, dy: float = 1.0, dx: float = 1.0,
                        method: str = "tvl1") -> tuple[np.ndarray, np.ndarray]:
    """Flux J = c·v from the apparent motion v between consecutive maps (time, y, x).

    ``v`` comes from scikit-image's TV-L1 (or iterative Lucas–Kanade) optical
    flow between frames t and t+1, divided by the frame spacing; values are
    centred on frames by averaging the two adjacent intervals (like
    :func:`rate_kernel`). Optical flow tracks moving *patterns*; it misses
    uniform filling or emptying, which the continuity estimate captures.

    Parameters
    ----------
    c : ndarray
        ``(time, y, x)`` Li maps.
    t : ndarray
        Frame times (s).
    dy, dx : float
        Pixel size (nm).
    method : {"tvl1", "ilk"}
        scikit-image's TV-L1 or iterative Lucas-Kanade optical flow.

    Returns
    -------
    flux_y, flux_x : ndarray
        ``(time, y, x)`` flux ``c·v`` in nm/s of the map's units.

    References
    ----------
    C. Zach, T. Pock, H. Bischof, DAGM 2007, doi:10.1007/978-3-540-74936-3_22 (TV-L1 flow).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.zeros((3, 16, 16)); c[:, 4:8, 4:8] = 1.0
    >>> c[1], c[2] = np.roll(c[0], 1, axis=1), np.roll(c[0], 2, axis=1)  # a square moving +x, 1 px per s
    >>> jy, jx = optical_flow_kernel(c, np.arange(3.0))
    >>> bool(jx[1][c[1] > 0].mean() > 0.5), bool(abs(jy[1][c[1] > 0].mean()) < 0.1)
    (True, True)
    """
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    c = np.asarray(c, dtype=float)
    t = np.asarray(t, float)
    flow = optical_flow_tvl1 if method == "tvl1" else optical_flow_ilk
    n = c.shape[0]
    if n < 2:
        raise ShapeMismatchError(f"optical flow needs at least 2 frames, got {n}")
    # Normalise the pair jointly so the flow's data term sees contrast, not units.
    lo, hi = np.percentile(c, [1, 99])
    scale = (hi - lo) or 1.0
    vel = np.zeros((n - 1, 2) + c.shape[1:])
    for i in range(n - 1):
        v = flow((c[i] - lo) / scale, (c[i + 1] - lo) / scale)
        vel[i] = v / (t[i + 1] - t[i])
    centred = np.empty((n, 2) + c.shape[1:])
    centred[0], centred[-1] = vel[0], vel[-1]
    centred[1:-1] = 0.5 * (vel[1:] + vel[:-1])
    return c * centred[:, 0] * dy, c * centred[:, 1] * dx


def decompose_kernel(jy: np.ndarray, jx: np.ndarray, *, interface: str = "top") -> dict[str, np.ndarray]:
    """Per-frame through-film vs in-plane transport of (time, y, x) flux maps.

    Returns ``through_film`` = mean |J_y|, ``in_plane`` = mean |J_x|,
    ``through_fraction`` = Σ|J_y| / Σ(|J_y| + |J_x|) (0 to 1), and
    ``toward_electrolyte`` = mean J_y signed so that motion toward the
    electrolyte is positive (Li leaving on charge).
    """
    ay, ax = np.abs(jy), np.abs(jx)
    sy, sx = ay.sum(axis=(-2, -1)), ax.sum(axis=(-2, -1))
    total = sy + sx
    frac = np.divide(sy, total, out=np.full_like(sy, np.nan), where=total > 0)
    sign = -1.0 if interface == "top" else 1.0
    return {
        "through_film": ay.mean(axis=(-2, -1)),
        "in_plane": ax.mean(axis=(-2, -1)),
        "through_fraction": frac,
        "toward_electrolyte": sign * jy.mean(axis=(-2, -1)),
    }


def binned_profiles(values: np.ndarray, distance: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of (..., y, x) maps in bins of a (y, x) distance map → (..., n_bins).

    Empty bins are NaN (they carry no data; they are not zeros).
    """
    idx = np.digitize(distance.ravel(), edges) - 1
    nb = edges.size - 1
    ok = (idx >= 0) & (idx < nb)
    flat = values.reshape(*values.shape[:-2], -1)[..., ok]
    idx = idx[ok]
    counts = np.bincount(idx, minlength=nb).astype(float)
    sums = np.stack([np.bincount(idx, weights=row, minlength=nb) for row in flat.reshape(-1, flat.shape[-1])])
    sums = sums.reshape(*values.shape[:-2], nb)
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


# --------------------------------------------------------------------------- labelled layer


@accepts_data("li")
def change_maps(li, *, reference: str = "previous"):
    """Li change per frame: vs the previous frame (``"previous"``) or the first (``"first"``).

    Parameters
    ----------
    li : xarray.DataArray (time, y, x) or ndarray
    reference : {"previous", "first"}

    Returns
    -------
    Same type as ``li``; the first frame's change is 0 for ``"previous"``.

    Examples
    --------
    >>> import numpy as np
    >>> change_maps(np.arange(3.0)[:, None, None] * np.ones((3, 2, 2)))[:, 0, 0]
    array([0., 1., 1.])
    """
    from ..data import as_dataarray

    da = as_dataarray(li, kind="image", name="li")
    if reference not in ("previous", "first"):
        raise DataValidationError(f"change_maps: reference must be 'previous' or 'first', got {reference!r}")
    if reference == "first":
        out = da - da.isel(time=0)
    else:
        out = (da - da.shift(time=1)).fillna(0.0)  # shift() stays lazy on dask input
    out.attrs = {**da.attrs, "long_name": f"Li change vs {reference} frame"}
    return like_input(out.transpose(*da.dims), li)


def _times(da) -> np.ndarray:
    if "time" in da.coords:
        return axis_values(da, "time", name="li")
    return np.arange(da.sizes["time"], dtype=float)


def _pixel(da, dim: str) -> float:
    return abs(axis_scale(da, dim, name="li")) if dim in da.coords else 1.0


def interface_distance(shape, *, dy: float = 1.0, dx: float = 1.0, interface="top") -> np.ndarray:
    """Distance (nm) of every pixel centre from the electrolyte interface.

    ``interface`` is "top"/"bottom" (a straight interface at a film edge) or a
    (y, x) boolean mask of the electrolyte side (any shape; Euclidean
    distance transform).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the maps.
    dy, dx : float
        Pixel size (nm) along y and x.
    interface : {"top", "bottom"} or ndarray of bool
        The electrolyte side: a film edge, or a ``(y, x)`` mask of the electrolyte side.

    Returns
    -------
    ndarray
        ``(ny, nx)`` distances in nm.

    Examples
    --------
    >>> interface_distance((3, 2), dy=2.0).tolist()
    [[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]]
    """
    ny, nx = shape
    if isinstance(interface, str):
        rows = (np.arange(ny) + 0.5) * dy
        if interface == "bottom":
            rows = rows[::-1]
        return np.broadcast_to(rows[:, None], (ny, nx)).copy()
    from scipy import ndimage

    mask = np.asarray(interface, bool)
    if mask.shape != (ny, nx):
        raise ShapeMismatchError(f"interface mask has shape {mask.shape}, expected {(ny, nx)}")
    if not mask.any():
        raise DataValidationError("interface mask marks no electrolyte pixel")
    return ndimage.distance_transform_edt(~mask, sampling=(dy, dx))


def _open_edge_per_frame(open_edges: str, side: str, states, n: int) -> list[str]:
    """Which y edge is open in each frame, from the configured policy and the cell state."""
    other = "bottom" if side == "top" else "top"
    fixed = {"electrolyte": side, "collector": other, "both": "both", "none": "none"}
    if open_edges in fixed:
        return [fixed[open_edges]] * n
    if open_edges != "auto":
        raise DataValidationError(f"open_edges: expected 'auto', 'electrolyte', 'collector', 'both' or 'none', "
                                  f"got {open_edges!r}")
    if states is None:
        return [side] * n
    # Charge: Li leaves through the electrolyte; discharge: it returns from the
    # current-collector side (Nomura et al. 2020); rest: no exchange, only redistribution.
    by_state = {"charge": side, "discharge": other, "rest": "none"}
    return [by_state.get(str(st), "both") for st in states]


@accepts_data("li")
def analyse(li, *, states=None, method: str = "continuity", interface="top", open_edges: str = "auto",
            x_boundary: str = "closed", segmentation=None, profile_bins: int = 16,
            rest_states=("rest",)):
    """Li transport analysis of a Li-map movie.

    Parameters
    ----------
    li : xarray.DataArray (time, y, x) or ndarray
        Li maps (denoised for best results); ``time`` in s, ``y``/``x`` in nm.
    states : array_like of str, optional
        Cell state per frame (from :func:`sync_frames`), for the rest activity.
    method : {"continuity", "optical_flow"}
    interface : {"top", "bottom"} or (y, x) bool mask
        Where the electrolyte is (profiles are vs distance from it).
    open_edges : {"auto", "electrolyte", "collector", "both", "none"}
        Film edges through which Li enters or leaves (continuity method).
        ``"auto"`` follows ``states``: the electrolyte side on charge, the
        current-collector side on discharge (as observed by Nomura et al.
        2020), none at rest; the electrolyte side when no states are given.
    x_boundary : {"closed", "open"}
        In-plane edges of the field of view, see :func:`continuity_flux_kernel`.
    segmentation : (y, x) int array, optional
        Grain labels > 0 and boundaries 0: per-region statistics.
    profile_bins : int
        Number of distance bins for the profiles.
    rest_states : sequence of str
        States counted as rest.

    Returns
    -------
    xarray.Dataset
        ``dcdt``, ``flux_y``, ``flux_x`` (time, y, x); ``mean_li``,
        ``through_film``, ``in_plane``, ``through_fraction``,
        ``toward_electrolyte`` (time); ``profile_li``, ``profile_dcdt``,
        ``profile_flux_y`` (time, position: distance from the interface, nm);
        ``rest_activity`` (y, x) mean |∂c/∂t| over rest frames; with a
        segmentation ``region_li`` (time, component) and ``region_rate``
        (component). ``attrs`` hold whole-run numbers.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
    (Li moves through-film and in-plane, and at rest);
    the continuity equation ∂c/∂t = −∇·J (e.g. J. Crank, *The Mathematics of
    Diffusion*, 2nd ed., Oxford, 1975, ch. 1).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(6.0)[:, None, None]
    >>> li = 1.0 - 0.01 * t * np.ones((6, 16, 8))   # uniform loss through the top edge
    >>> a = analyse(li)
    >>> round(float(a.through_fraction.mean()), 3), bool(a.toward_electrolyte.mean() > 0)
    (1.0, True)
    """
    import xarray as xr

    from ..data import as_dataarray

    da = as_dataarray(li, kind="image", name="li")
    if tuple(da.dims) != ("time", "y", "x"):
        raise ShapeMismatchError(f"analyse: expected li with dims ('time', 'y', 'x'), got {da.dims}")
    if method not in ("continuity", "optical_flow"):
        raise DataValidationError(f"analyse: method must be 'continuity' or 'optical_flow', got {method!r}")
    # In memory on purpose: ∂c/∂t couples neighbouring frames and the Poisson
    # solve couples every pixel of a frame, and a Li-map movie is small
    # (157 × 128 × 128 float64 = 20 MB) next to the spectra it came from.
    c = np.asarray(da.values, dtype=float)
    if not np.all(np.isfinite(c)):
        raise DataValidationError("analyse: the Li maps hold NaN/Inf; drop or repair bad frames first")
    t = _times(da)
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise DataValidationError("analyse: frame times must increase")
    dy, dx = _pixel(da, "y"), _pixel(da, "x")
    side = interface if isinstance(interface, str) else "top"
    dcdt = rate_kernel(c, t)
    if method == "continuity":
        if states is not None:
            states = np.array([str(v) for v in np.asarray(states).ravel()]).reshape(np.shape(states))
            if states.shape != (c.shape[0],):
                raise ShapeMismatchError(f"analyse: states has shape {states.shape}, expected ({c.shape[0]},)")
        edges_open = _open_edge_per_frame(open_edges, side, states, c.shape[0])
        jy, jx = np.empty_like(dcdt), np.empty_like(dcdt)
        for kind in set(edges_open):  # one batched solve per boundary condition
            sel = np.array([e == kind for e in edges_open])
            jy[sel], jx[sel] = continuity_flux_kernel(dcdt[sel], dy=dy, dx=dx, open_y=kind, x_boundary=x_boundary)
    else:
        edges_open = ["n/a"] * c.shape[0]
        jy, jx = optical_flow_kernel(c, t, dy=dy, dx=dx)
    parts = decompose_kernel(jy, jx, interface=side)

    dist = interface_distance(c.shape[1:], dy=dy, dx=dx, interface=interface)
    edges = np.linspace(0.0, float(dist.max()) + 1e-9, int(profile_bins) + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])

    coords = {d: da.coords[d] for d in da.dims if d in da.coords}
    maps = ("time", "y", "x")
    ds = xr.Dataset(
        {
            "dcdt": (maps, dcdt, {"units": "1/s", "long_name": "rate of change of Li"}),
            "flux_y": (maps, jy, {"units": "nm/s", "long_name": "Li flux, through-film (+ toward larger y)"}),
            "flux_x": (maps, jx, {"units": "nm/s", "long_name": "Li flux, in-plane"}),
            "mean_li": ("time", c.mean(axis=(1, 2))),
            "open_edge": ("time", np.asarray(edges_open, dtype=object)),
            **{k: ("time", v) for k, v in parts.items()},
            "profile_li": (("time", "position"), binned_profiles(c, dist, edges)),
            "profile_dcdt": (("time", "position"), binned_profiles(dcdt, dist, edges)),
            "profile_flux_y": (("time", "position"), binned_profiles(jy, dist, edges)),
        },
        coords={**coords, "position": ("position", centres, {"units": "nm",
                                                             "long_name": "distance from the interface"})},
    )
    total_y, total_x = np.abs(jy).sum(), np.abs(jx).sum()
    per_y, per_x = np.abs(jy).sum(axis=(1, 2)), np.abs(jx).sum(axis=(1, 2))
    toward = np.asarray(parts["toward_electrolyte"], float)
    ds.attrs.update(
        method=method, x_boundary=x_boundary,
        through_fraction=float(total_y / (total_y + total_x)) if total_y + total_x > 0 else float("nan"),
        through_fraction_std=block_jackknife(lambda k: per_y[k].sum() / (per_y[k].sum() + per_x[k].sum()),
                                             c.shape[0]),
        net_toward_electrolyte=float(toward.mean()),
        net_toward_electrolyte_std=block_jackknife(lambda k: toward[k].mean(), c.shape[0]),
    )

    if states is not None:
        states = np.array([str(v) for v in np.asarray(states).ravel()]).reshape(np.shape(states))
        if states.shape != (c.shape[0],):
            raise ShapeMismatchError(f"analyse: states has shape {states.shape}, expected ({c.shape[0]},)")
        rest = np.isin(states, list(rest_states))
        activity = np.abs(dcdt[rest]).mean(axis=0) if rest.any() else np.zeros(c.shape[1:])
        ds["rest_activity"] = (("y", "x"), activity, {"units": "1/s", "long_name": "mean |dc/dt| at rest"})
        active = np.abs(dcdt[~rest]).mean() if (~rest).any() else float("nan")
        ds.attrs["rest_activity_mean"] = float(activity.mean()) if rest.any() else float("nan")
        ok = rest.any() and active > 0
        ds.attrs["rest_to_active_ratio"] = float(activity.mean() / active) if ok else float("nan")
        if ok:
            per = np.abs(dcdt).mean(axis=(1, 2))  # mean |dc/dt| per frame (every frame has all pixels)
            ds.attrs["rest_activity_mean_std"] = block_jackknife(lambda k: per[k & rest].mean(), c.shape[0])
            ds.attrs["rest_to_active_ratio_std"] = block_jackknife(
                lambda k: per[k & rest].mean() / per[k & ~rest].mean(), c.shape[0])
        ds["state"] = ("time", states)

    if segmentation is not None:
        ds = ds.merge(region_statistics(c, dcdt, np.asarray(segmentation), t))
    return ds


def observable_flux(flux_y, flux_x, *, dy: float = 1.0, dx: float = 1.0, open_y="top",
                    x_boundary: str = "closed"):
    """The part of a known flux that Li maps can reveal (its minimum-norm, irrotational part).

    ∂c/∂t depends on J only through ∇·J, so adding any divergence-free
    (circulating) field to J leaves every Li map unchanged: no method working
    from Li maps alone can recover that part. This returns the projection of
    ``(flux_y, flux_x)`` onto what the continuity estimate can see, under the
    same boundary conditions — the fair target for validating it.

    ``open_y`` is one value or one per frame (see :func:`continuity_flux_kernel`).
    """
    ty, tx = np.asarray(flux_y, float), np.asarray(flux_x, float)
    div = np.gradient(ty, dy, axis=-2) + np.gradient(tx, dx, axis=-1)
    kinds = [open_y] * ty.shape[0] if isinstance(open_y, str) else [str(k) for k in open_y]
    oy, ox = np.empty_like(ty), np.empty_like(tx)
    for kind in set(kinds):
        sel = np.array([k == kind for k in kinds])
        oy[sel], ox[sel] = continuity_flux_kernel(-div[sel], dy=dy, dx=dx, open_y=kind, x_boundary=x_boundary)
    return oy, ox


def flux_error(estimate, truth_y, truth_x) -> dict[str, float]:
    """Compare an estimated flux (an :func:`analyse` Dataset) with a known one (simulator truth).

    Returns the through-film fraction Σ|J_y| / Σ(|J_y| + |J_x|) of the
    estimate, of the truth, and of the truth's *observable* part (see
    :func:`observable_flux`; computed when ``estimate`` carries the
    continuity solve's boundary conditions), the cosine similarity of the flux
    fields (1 = same direction everywhere, magnitude-weighted), and the
    fraction of frames whose net through-film direction matches the truth's.

    Parameters
    ----------
    estimate : Dataset
        The result of :func:`analyse` (``flux_y``, ``flux_x`` on time, y, x).
    truth_y, truth_x : DataArray or ndarray
        The true flux components on the same grid (e.g. :func:`ionscope.simulate.li_transport`'s).

    Returns
    -------
    dict
        ``through_fraction_estimate``, ``through_fraction_truth``, ``cosine``, ``direction_agreement`` and,
        with boundary conditions in ``estimate``, ``through_fraction_observable`` and ``cosine_observable``.

    Examples
    --------
    >>> from ionscope.simulate import li_transport
    >>> ds = li_transport(shape=(12, 16), n_frames=6)
    >>> est = analyse(ds.li * ds.co * ds.thickness_nm / ds.attrs["reference_thickness_nm"])
    >>> err = flux_error(est, ds.flux_y, ds.flux_x)
    >>> err["cosine_observable"] > 0.95
    True
    """
    ey, ex = np.asarray(estimate["flux_y"]), np.asarray(estimate["flux_x"])
    ty, tx = np.asarray(truth_y, float), np.asarray(truth_x, float)
    if ey.shape != ty.shape or ex.shape != tx.shape:
        raise ShapeMismatchError(f"flux_error: estimate {ey.shape} and truth {ty.shape} differ in shape")
    dot = float((ey * ty + ex * tx).sum())
    norm = float(np.sqrt((ey ** 2 + ex ** 2).sum() * (ty ** 2 + tx ** 2).sum()))
    frac = lambda a, b: float(np.abs(a).sum() / (np.abs(a).sum() + np.abs(b).sum()))  # noqa: E731
    sign_est, sign_true = np.sign(ey.mean(axis=(-2, -1))), np.sign(ty.mean(axis=(-2, -1)))
    active = sign_true != 0
    out = {
        "through_fraction_estimate": frac(ey, ex),
        "through_fraction_truth": frac(ty, tx),
        "cosine": dot / norm if norm > 0 else float("nan"),
        "direction_agreement": float((sign_est[active] == sign_true[active]).mean()) if active.any() else float("nan"),
    }
    edges = getattr(estimate, "get", lambda k, d=None: d)("open_edge")
    if edges is not None and "n/a" not in [str(e) for e in np.asarray(edges)]:
        dy = float(abs(estimate.y[1] - estimate.y[0])) if "y" in estimate.coords and estimate.sizes["y"] > 1 else 1.0
        dx = float(abs(estimate.x[1] - estimate.x[0])) if "x" in estimate.coords and estimate.sizes["x"] > 1 else 1.0
        oy, ox = observable_flux(ty, tx, dy=dy, dx=dx, open_y=[str(e) for e in np.asarray(edges)],
                                 x_boundary=str(estimate.attrs.get("x_boundary", "closed")))
        out["through_fraction_observable"] = frac(oy, ox)
        dot = float((ey * oy + ex * ox).sum())
        norm = float(np.sqrt((ey ** 2 + ex ** 2).sum() * (oy ** 2 + ox ** 2).sum()))
        out["cosine_observable"] = dot / norm if norm > 0 else float("nan")
    return out


__all__ = ["change_maps", "analyse", "interface_distance", "region_statistics", "flux_error", "observable_flux",
           "continuity_flux_kernel", "optical_flow_kernel", "rate_kernel", "decompose_kernel", "binned_profiles",
]
