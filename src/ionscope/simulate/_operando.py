# SPDX-License-Identifier: GPL-3.0-or-later
"""Operando STEM-EELS series and Li-map movies with ground truth.

:func:`operando_eels` turns the Li transport of :func:`li_transport` into what
the microscope records: one spectrum image per frame, each pixel a power-law
background plus the Li-K and Co-M2,3 edges weighted by the Li and Co in the
column, with optional energy drift, specimen drift and Poisson noise.
:func:`limap_movie` gives the Li-map movie directly (for denoising work).

Frames are generated one block of rows at a time, so a series far larger than
memory is written to Zarr with bounded memory; the random numbers of each
frame come from that frame's own generator (realistic physics: one generator
per image row, spawned from the frame's seed), so the data do not depend on the
block size or on whether the series goes to memory or to disk. Realistic frames
are computed two blocks at a time on threads (the plural-scattering kernel and
the Poisson sampler release the GIL).

References
----------
Y. Nomura et al., Nano Lett. 18 (2018) 5892, doi:10.1021/acs.nanolett.8b02436;
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
(the operando STEM-EELS experiment this simulates).
R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011),
doi:10.1007/978-1-4419-9583-4 (power-law background, thickness dependence).
"""
from __future__ import annotations

import numpy as np

from ._checks import _check_float, _check_int, _check_shape, _seed_entropy
from ._checks import _pair, _validate_range  # noqa: F401  (imported from here before the split)
from ._film import _smooth_noise
from ._series import CO_EDGE_FRACTION, LI_EDGE_FRACTION, MFP_NM, _drift_track, _shift_map  # noqa: F401
from ._transport import transport_with_log

__all__ = ["operando_eels", "limap_movie"]


def operando_eels(*, shape=(32, 48), n_frames=24, energy_range=None, energy_step=0.1, dose=200.0,
                  energy_drift_ev=0.0, specimen_drift_px=0.0, noise=True, seed=0, out=None, chunks=None,
                  exponent=3.0, physics="ideal", thickness_range=(0.3, 1.2), thinning=0.05, zlp_fwhm=0.8,
                  descan_ev=0.3, li_chemical_shift_ev=0.6, dual_eels=False, low_loss_range=(-5.0, 51.2),
                  low_loss_exposure=0.01, scene=None, **transport_kw):
    """Simulate an operando STEM-EELS series of a LiCoO2 film (charge → rest → discharge).

    ``physics="ideal"`` (the default, for unit tests of the fitting code):
    every pixel's spectrum is

        I(E) = A·(E/55 eV)^−r + w_Li·ref_Li(E) + w_Co·ref_Co(E)

    with ``ref = edge_references(energy)``, evaluated at ``E − energy_shift[t]``
    in frame ``t``, on the pixel's specimen position moved by the specimen
    drift, then Poisson noise.

    ``physics="realistic"`` (the demo's and the operando demo's): what a
    microscope records — a zero-loss peak of finite, asymmetric width
    (``zlp_fwhm``), a valence-loss spectrum with the bulk plasmon near 23 eV,
    every order of plural scattering by the Poisson/Fourier relation at a
    t/λ that varies in space over ``thickness_range`` and thins slowly in time
    (``thinning``), Li-K and Co-M2,3 edges with near-edge fine structure and a
    Li-K chemical shift of ``li_chemical_shift_ev`` between x = 1 and x = 0.5,
    a de-scan shift of the whole spectrum across the scan (``descan_ev``) and
    Poisson noise. ``energy_range`` then starts below 0 eV so that the
    spectra hold their own zero-loss peak; with ``dual_eels=True`` a separate
    low-loss acquisition (``low_loss_range``, exposure ``low_loss_exposure``
    times the core loss) is returned beside a core-loss series without it.
    ``truth.weights`` are then the Li-K and Co-M amounts in single-scattering
    counts (the coefficients of ``truth.references`` in ``I0·S(E)`` per
    channel), ``truth.thickness`` is t/λ per frame and ``truth.li`` is x.
    See :mod:`ionscope.simulate._realistic`.

    .. versionchanged:: issue 20
       ``physics="realistic"`` is ~15× faster (the batched kernel of
       :mod:`ionscope.simulate._plural_kernel`, row-wise Poisson generators on two
       threads). Its outputs changed: the expected counts by ≲ 3e-4 relative in the
       zero-loss peak's far left tail and ≲ 6e-5 elsewhere (closer to a converged
       evaluation than before), the truth arrays by ≲ 3e-6 relative (the dose
       normalisation), and the Poisson draws come from other streams of the same
       seed (same statistics, different numbers). ``physics="ideal"`` is unchanged.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels (``y`` through the film, electrolyte at row 0).
    n_frames : int
        Number of frames (spectrum images).
    energy_range : (float, float), optional
        Start and stop energy loss in eV (stop excluded); default (30, 132)
        for ``physics="ideal"``, (−5, 97.4) for ``"realistic"`` (1024
        channels at 0.1 eV holding the zero-loss peak), (30, 132) for the core
        loss of ``dual_eels``.
    energy_step : float
        Dispersion in eV per channel.
    dose : float
        Expected background counts per channel at 55 eV in a pixel of mean
        thickness (the Li-K onset, i.e. the pre-edge signal every Li map is made
        from). The edges scale with it: at x = 1 the Li-K peak is 10 % and the
        Co-M2,3 maximum 20 % of the local background.
    energy_drift_ev : float
        Largest energy-axis shift over the series (a smooth random track from 0).
    specimen_drift_px : float
        Largest specimen drift in pixels (a smooth random track from 0).
    noise : bool
        Draw Poisson counts (True) or return the expected counts (False).
    seed : int
        Seed of everything (microstructure, drift, noise).
    out : str or Path, optional
        A ``.zarr`` path: the series is written frame by frame (bounded memory,
        atomic) and the returned ``si`` is the lazy store.
    chunks : dict, optional
        Zarr/dask chunks by dimension, default ``{"time": 1, "energy": -1}`` with
        ``y`` split so that a chunk holds ≲ 64 MB. In memory, a given ``chunks``
        returns a dask-backed ``si``.
    exponent : float
        Mean background exponent r; thicker pixels get a smaller r (plural
        scattering flattens the background): ``r = exponent − 0.5·(t/λ − mean t/λ)``.
    physics : {"ideal", "realistic"}
        Spectrum model (see above).
    thickness_range : (float, float)
        Realistic physics: t/λ of the thinnest and thickest pixels.
    thinning : float
        Realistic physics: relative loss of thickness over the series (beam damage).
    zlp_fwhm : float
        Realistic physics: zero-loss peak FWHM in eV.
    descan_ev : float
        Realistic physics: peak-to-peak shift of the whole spectrum across the scan (eV).
    li_chemical_shift_ev : float
        Realistic physics: Li-K shift (eV, to higher loss) at x = 0.5 relative to x = 1; linear in x.
    dual_eels : bool
        Realistic physics: return ``(core_loss, low_loss, truth, log)`` — a core-loss series
        over ``energy_range`` without the zero-loss peak and a low-loss series over
        ``low_loss_range`` recorded with ``low_loss_exposure`` times the dose (in memory only).
    low_loss_range : (float, float)
        Energy range of the dual-EELS low-loss spectra (eV, stop excluded).
    low_loss_exposure : float
        Exposure of the low-loss relative to the core-loss acquisition.
    scene : Scene, optional
        The experiment in one :class:`~ionscope.simulate.Scene`: its fields stand in for the
        keywords above and for the transport options below; a keyword that differs from its
        default here overrides the scene's field.
    **transport_kw
        Passed to :func:`ionscope.simulate.li_transport` (``pixel_nm``,
        ``frame_time_s``, ``protocol``, ``current_a``, ...).

    Returns
    -------
    si : xarray.DataArray
        ``(time, y, x, energy)`` float32 counts; ``time`` = frame mid-time (s),
        ``y``/``x`` in nm, ``energy`` in eV; attrs ``beam_energy_kv``,
        ``dispersion_ev``, ``exposure_s`` (pixel dwell), ``signal_type="EELS"``,
        convergence/collection angles, ``dose``.
    truth : xarray.Dataset
        The :func:`li_transport` variables plus ``weights`` (component, time,
        y, x) — the exact coefficients of ``references`` in every noise-free
        spectrum (before the energy shift) —, ``references`` (component,
        energy), ``background_amplitude`` (counts/channel at 55 eV) and
        ``background_exponent`` (time, y, x), ``thickness`` (y, x) t/λ in the
        specimen frame, ``energy_shift`` (time) eV, ``drift_y``/``drift_x``
        (time) px. ``li``, ``co``, ``thickness`` are in the specimen frame;
        ``weights`` and the background maps are in the image frame (drift
        applied), i.e. they match ``si`` pixel by pixel.
    log : xarray.Dataset
        The electrochemistry log on its own finely sampled ``time`` (s):
        ``voltage`` (V), ``current`` (A, + on charge), ``state``, ``charge_c`` (C).

    Raises
    ------
    DataValidationError
        Bad sizes, ranges, dose or transport options (the message names the argument).

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.
    R. F. Egerton, EELS in the Electron Microscope, 3rd ed. (2011), doi:10.1007/978-1-4419-9583-4.

    Examples
    --------
    >>> si, truth, log = operando_eels(shape=(8, 12), n_frames=3, energy_step=0.5, noise=False)
    >>> si.dims, si.dtype.name
    (('time', 'y', 'x', 'energy'), 'float32')
    >>> truth.weights.component.values.tolist()
    ['Li', 'Co']
    """
    given = {k: v for k, v in locals().items() if k not in ("scene", "transport_kw")}  # the named keywords
    from . import _series
    from ._scene import TRANSPORT_OPTIONS, from_scene, scene_options

    kw = from_scene(operando_eels, scene, given)
    transport_kw = scene_options(scene, TRANSPORT_OPTIONS.keys() - kw.keys(), transport_kw)
    p = _series.plan(kw, transport_kw)
    transport, log = transport_with_log(shape=(p.ny, p.nx), n_frames=p.n_frames, seed=p.seed, **transport_kw)
    spec = _series.specimen(p, transport)
    frame_time = float(transport.attrs["frame_time_s"])
    attrs = {
        "signal_type": "EELS", "beam_energy_kv": 200.0, "dispersion_ev": p.step,
        "convergence_angle_mrad": 10.0, "collection_angle_mrad": 20.0,
        "exposure_s": frame_time / (p.ny * p.nx), "dose": p.dose,
        "dose_definition": "expected background counts per channel at 55 eV, mean-thickness pixel",
        "title": "simulated operando STEM-EELS of LiCoO2 (ionscope.simulate)", "seed": int(p.seed),
        "frame_time_s": frame_time,
    }
    if p.realistic:  # before the record: a series streamed to out= carries it too (its refs are the realistic ones)
        attrs["physics"] = "realistic"
    coords = {"time": ("time", transport.time.values, {"units": "s"}),
              "y": ("y", transport.y.values, {"units": "nm"}), "x": ("x", transport.x.values, {"units": "nm"}),
              "energy": ("energy", p.energy, {"units": "eV"})}
    expected = _series.Spectra(p, spec)
    si = _series.record(p, expected, coords, attrs)
    low_loss = _series.low_loss(p, expected, coords, attrs) if p.realistic and p.dual_eels else None
    truth = _series.truth(p, spec, transport)
    if low_loss is not None:
        return si, low_loss, truth, log
    return si, truth, log


def limap_movie(*, shape=(128, 128), n_frames=32, counts=5.0, seed=0, drift_px=2.0, pixel_nm=2.0,
                frame_time_s=60.0, scene=None):
    """A Li-map movie: grains, boundaries, a moving delithiation front and specimen drift.

    The Li content comes from :func:`li_transport` during a constant-current
    charge (a front of Li loss moving in from the electrolyte side, row 0, and
    running ahead along grain boundaries); each grain gets its own contrast
    (orientation-dependent channelling), boundaries are slightly dark, and the
    frame moves by the specimen drift.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels.
    n_frames : int
        Frames in the movie.
    counts : float
        Mean expected counts per pixel over the movie (the dose of the Li map).
    seed : int
        Seed of the microstructure, drift and noise.
    drift_px : float
        Largest specimen drift in pixels.
    pixel_nm, frame_time_s : float
        Sampling of the underlying transport simulation.
    scene : Scene, optional
        The above in one :class:`~ionscope.simulate.Scene` (other fields are ignored); a keyword
        that differs from its default here overrides the scene's field.

    Returns
    -------
    noisy, clean : xarray.DataArray
        ``(time, y, x)`` float32; ``clean`` the expected counts (mean ``counts``),
        ``noisy`` = Poisson(clean). Non-dimension coordinates ``drift_y``,
        ``drift_x`` (px) on ``time``; ``clean.attrs`` hold the seed and counts.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> noisy, clean = limap_movie(shape=(32, 32), n_frames=4, counts=5.0)
    >>> noisy.dims, round(float(clean.mean()), 3)
    (('time', 'y', 'x'), 5.0)
    """
    if scene is not None:
        from ._scene import from_scene

        return limap_movie(**from_scene(limap_movie, scene, dict(
            shape=shape, n_frames=n_frames, counts=counts, seed=seed, drift_px=drift_px, pixel_nm=pixel_nm,
            frame_time_s=frame_time_s)))
    import xarray as xr

    ny, nx = _check_shape(shape)
    n_frames = _check_int(n_frames, "n_frames", 1)
    counts = _check_float(counts, "counts")
    drift_px = _check_float(drift_px, "drift_px", allow_zero=True)
    entropy = _seed_entropy(seed)
    ds = transport_with_log(shape=(ny, nx), n_frames=n_frames, seed=seed, pixel_nm=pixel_nm,
                            frame_time_s=frame_time_s, protocol=(("charge", n_frames),), charge_depth=0.5,
                            layer_nm=min(20.0, 0.2 * ny * pixel_nm))[0]
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(3,)))
    n_grains = int(ds.grains.max()) + 1
    contrast = 1.0 + 0.12 * rng.standard_normal(n_grains)  # per-grain channelling contrast
    base = contrast[ds.grains.values] * (1.0 - 0.15 * ds.boundaries.values)
    base *= 1.0 + 0.05 * _smooth_noise(rng, (ny, nx), 4.0)
    signal = ds.li.values * ds.co.values * base[None]
    angle = rng.uniform(0, 2 * np.pi)
    track = _drift_track(rng, n_frames, drift_px)
    dy, dx = track * np.sin(angle), track * np.cos(angle)
    clean = np.stack([_shift_map(signal[t], dy[t], dx[t]) for t in range(n_frames)])
    clean *= counts / clean.mean()
    noisy = rng.poisson(clean).astype(np.float32)
    coords = {"time": ("time", ds.time.values, {"units": "s"}), "y": ("y", ds.y.values, {"units": "nm"}),
              "x": ("x", ds.x.values, {"units": "nm"}), "drift_y": ("time", dy, {"units": "px"}),
              "drift_x": ("time", dx, {"units": "px"})}
    attrs = {"signal_type": "limap", "counts": counts, "seed": entropy, "units": "counts",
             "title": "simulated Li-map movie (ionscope.simulate.limap_movie)"}
    return (xr.DataArray(noisy, dims=("time", "y", "x"), coords=coords, attrs=attrs, name="limap"),
            xr.DataArray(clean.astype(np.float32), dims=("time", "y", "x"), coords=coords, attrs=dict(attrs),
                         name="limap_clean"))
