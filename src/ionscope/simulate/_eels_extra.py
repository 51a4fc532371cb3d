# SPDX-License-Identifier: GPL-3.0-or-later
"""Position-resolved TEM-EELS across Cu | solid electrolyte, and Co-L2,3 spectrum images.

References
----------
Y. Nomura et al., Angew. Chem. Int. Ed. 58 (2019) 5292, doi:10.1002/anie.201814669
(Li-K intensity enhanced within ~13 nm of the Cu/LASGTP interface).
A. Shimoyamada, K. Yamamoto et al., Microscopy 64 (2015) 401, doi:10.1093/jmicro/dfv045
(position-resolved TEM-EELS).
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w
(LiCoO2 + Co3O4 interface layer seen by Co-L multivariate analysis).
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from ..errors import DataValidationError
from . import _realistic
from ._spectra import _softplus, co_l_references, li_k_edge
from ._checks import _check_float, _check_int, _check_shape, _seed_entropy, _validate_range
from ._film import _smooth_noise

__all__ = ["tem_eels_linescan", "co_l_spectrum_image"]


def _generic_edge(e, onset, rise, decay):
    """A delayed-edge shape (maximum 1) for the matrix elements of the electrolyte and Cu."""
    eps = 0.8 * _softplus((e - onset) / 0.8)
    shape = eps**rise * np.exp(-eps / decay)
    return shape / ((rise * decay) ** rise * np.exp(-rise))


def tem_eels_linescan(*, n_positions=200, position_step_nm=0.5, layer_width_nm=13.0, energy_range=None,
                      energy_step=0.1, dose=500.0, seed=0, enhancement=0.6, interface_nm=None,
                      resolution_nm=0.0, physics="ideal", thickness=0.6, zlp_fwhm=0.8, scene=None):
    """Position-resolved TEM-EELS across Cu | solid electrolyte with a Li-rich space-charge layer.

    Positions below ``interface_nm`` are Cu (no Li; Cu-M2,3 edge near 74 eV),
    above it the LASGTP-like electrolyte (Li-K, plus a matrix edge near 73 eV
    standing for Al-L2,3). Within ``layer_width_nm`` of the interface on the
    electrolyte side the Li-K weight is raised by ``enhancement`` (a smooth
    step of 1 nm width at the layer's far edge).

    Parameters
    ----------
    n_positions : int
        Number of positions along the line.
    position_step_nm : float
        Spacing of the positions in nm.
    layer_width_nm : float
        Width of the Li-rich layer (≈ 13 nm reported).
    energy_range : (float, float), optional
        Energy window in eV (stop excluded); default (40, 100), or (−5, 97.4)
        with ``physics="realistic"`` (the zero-loss peak included).
    energy_step : float
        Dispersion in eV per channel.
    dose : float
        Expected background counts per channel at 55 eV in the electrolyte.
    seed : int
        Noise seed.
    physics : {"ideal", "realistic"}
        ``"realistic"``: spectra from below 0 eV with a zero-loss peak
        (``zlp_fwhm``), a valence loss (electrolyte plasmon near 23 eV; Cu a
        broader one near 20 eV) and every order of plural scattering at
        t/λ = ``thickness`` (Cu 1.5× that); the edges are then single-scattering
        amounts in ``truth.weights`` and ``truth.li``. Changed in issue 20: the
        expected counts come from the batched kernel of
        :func:`~ionscope.simulate.plural_scattering` (≲ 2e-4 relative from before;
        the noise draws are unchanged given the same expected counts).
    thickness : float
        Realistic physics: t/λ of the electrolyte.
    zlp_fwhm : float
        Realistic physics: zero-loss FWHM in eV.
    enhancement : float
        Relative Li excess in the layer (0.6 = 60 % more Li-K weight than the bulk electrolyte).
    interface_nm : float, optional
        Position of the Cu | electrolyte interface; default a third of the line.
    resolution_nm : float
        Gaussian sigma of the spatial resolution applied to the weights (0: none).
    scene : Scene, optional
        The above in one :class:`~ionscope.simulate.Scene` (other fields are ignored); a keyword
        that differs from its default here overrides the scene's field.

    Returns
    -------
    data : xarray.DataArray
        ``("position", "energy")`` float32 counts, position in nm, energy in eV.
    truth : xarray.Dataset
        ``li`` (position): true Li-K weight profile (counts per unit ``li_k_edge``);
        ``weights`` (component, position) and ``references`` (component, energy)
        with components ``["Li", "matrix", "Cu"]``; ``background_amplitude``,
        ``background_exponent`` (position); attrs ``interface_nm``, ``layer_width_nm``.

    References
    ----------
    Y. Nomura et al., Angew. Chem. Int. Ed. 58 (2019) 5292, doi:10.1002/anie.201814669.

    Examples
    --------
    >>> data, truth = tem_eels_linescan(n_positions=60, energy_step=0.5)
    >>> data.dims, truth.attrs["layer_width_nm"]
    (('position', 'energy'), 13.0)
    """
    if scene is not None:
        from ._scene import from_scene

        return tem_eels_linescan(**from_scene(tem_eels_linescan, scene, dict(
            n_positions=n_positions, position_step_nm=position_step_nm, layer_width_nm=layer_width_nm,
            energy_range=energy_range, energy_step=energy_step, dose=dose, seed=seed, enhancement=enhancement,
            interface_nm=interface_nm, resolution_nm=resolution_nm, physics=physics, thickness=thickness,
            zlp_fwhm=zlp_fwhm)))

    n = _check_int(n_positions, "n_positions", 8)
    step = _check_float(position_step_nm, "position_step_nm")
    width = _check_float(layer_width_nm, "layer_width_nm", allow_zero=True)
    if physics not in ("ideal", "realistic"):
        raise DataValidationError(f"physics: expected 'ideal' or 'realistic', got {physics!r}")
    if energy_range is None:
        energy_range = (-5.0, 97.4) if physics == "realistic" else (40.0, 100.0)
    energy, de = _validate_range(energy_range, energy_step, allow_negative=physics == "realistic")
    dose = _check_float(dose, "dose")
    enh = _check_float(enhancement, "enhancement", allow_zero=True)
    res = _check_float(resolution_nm, "resolution_nm", allow_zero=True)
    rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(seed), spawn_key=(4,)))
    pos = step * np.arange(n)
    x0 = pos[-1] / 3.0 if interface_nm is None else _check_float(interface_nm, "interface_nm", allow_zero=True)
    if not pos[0] <= x0 <= pos[-1] or x0 + width > pos[-1]:
        raise DataValidationError(
            f"interface_nm={x0:g} and layer_width_nm={width:g} must fit in the line 0..{pos[-1]:g} nm")
    # fractions with a 0.3 nm interface roughness so the step is resolved on any grid
    electrolyte = 0.5 * (1.0 + erf((pos - x0) / (np.sqrt(2.0) * 0.3)))
    layer = 0.5 * (1.0 + erf((x0 + width - pos) / (np.sqrt(2.0) * 0.5))) * electrolyte
    li_rel = electrolyte + enh * layer
    if res > 0:
        from scipy.ndimage import gaussian_filter1d

        li_rel = gaussian_filter1d(li_rel, res / step, mode="nearest")
        electrolyte = gaussian_filter1d(electrolyte, res / step, mode="nearest")
    if physics == "realistic":
        return _linescan_realistic(pos, energy, de, electrolyte, li_rel, dose, rng, x0, width, enh, seed,
                                   _check_float(thickness, "thickness"), _check_float(zlp_fwhm, "zlp_fwhm"))
    return _linescan_ideal(pos, energy, de, electrolyte, li_rel, dose, rng, x0, width, enh, seed)


def _linescan_ideal(pos, energy, de, electrolyte, li_rel, dose, rng, x0, width, enh, seed):
    """The ideal line scan: power-law background plus the Li-K, matrix and Cu edges, Poisson counts."""
    import xarray as xr

    n = pos.size
    e_ref = 55.0
    refs = np.stack([li_k_edge(energy), _generic_edge(energy, 73.0, 1.0, 8.0), _generic_edge(energy, 74.0, 1.5, 6.0)])
    # background: Cu is denser (flatter, stronger) than the phosphate electrolyte
    amp = dose * (1.0 + 0.6 * (1.0 - electrolyte)) * (1.0 + 0.01 * _smooth_noise(rng, (n,), 5.0))
    expo = 3.2 - 0.5 * (1.0 - electrolyte)
    w_li = 0.08 * dose * li_rel
    w_matrix = 0.10 * dose * electrolyte
    w_cu = 0.25 * dose * (1.0 - electrolyte)
    weights = np.stack([w_li, w_matrix, w_cu])
    clean = amp[:, None] * (energy / e_ref) ** -expo[:, None] + weights.T @ refs
    data = rng.poisson(clean).astype(np.float32)
    coords = {"position": ("position", pos, {"units": "nm"}), "energy": ("energy", energy, {"units": "eV"})}
    da = xr.DataArray(data, dims=("position", "energy"), coords=coords, name="linescan",
                      attrs={"signal_type": "EELS", "beam_energy_kv": 200.0, "dispersion_ev": de, "dose": dose,
                             "title": "simulated position-resolved TEM-EELS, Cu | solid electrolyte"})
    truth = xr.Dataset(
        {"li": ("position", w_li, {"long_name": "true Li-K weight", "units": "counts per unit li_k_edge"}),
         "weights": (("component", "position"), weights),
         "references": (("component", "energy"), refs),
         "clean": (("position", "energy"), clean.astype(np.float32), {"long_name": "expected counts"}),
         "background_amplitude": ("position", amp, {"units": "counts/channel at 55 eV"}),
         "background_exponent": ("position", expo)},
        coords={**coords, "component": ("component", ["Li", "matrix", "Cu"])},
        attrs={"interface_nm": float(x0), "layer_width_nm": float(width), "enhancement": enh,
               "cu_side": "position < interface_nm", "seed": int(seed)},
    )
    return da, truth


def _linescan_realistic(pos, energy, de, electrolyte, li_rel, dose, rng, x0, width, enh, seed, tau_el, zlp_fwhm):
    """The realistic line scan: zero-loss peak, valence losses and plural scattering (see tem_eels_linescan)."""
    import xarray as xr

    from ._lowloss import plural_scattering, valence_loss

    def li(e):
        return li_k_edge(np.maximum(e, 1e-6)) * (e > 0)

    def matrix(e):
        return _generic_edge(np.maximum(e, 1e-6), 73.0, 1.0, 8.0) * (e > 0)

    def cu(e):
        return _generic_edge(np.maximum(e, 1e-6), 74.0, 1.5, 6.0) * (e > 0)

    def val_el(e):
        return valence_loss(e)

    def val_cu(e):
        return valence_loss(e, plasmon_ev=20.0, width_ev=16.0, band_gap_ev=0.5)

    cu_frac = 1.0 - electrolyte
    tau_el_p = tau_el * electrolyte * (1.0 + 0.01 * _smooth_noise(rng, (pos.size,), 5.0))
    tau_cu_p = 1.5 * tau_el * cu_frac
    v62 = float(valence_loss(np.array([62.0]))[0])
    # edge heights relative to the single-scattering valence tail at 62 eV (per unit t/λ)
    a = np.stack([0.08 * v62 * tau_el * li_rel, 0.10 * v62 * tau_el * electrolyte, 0.25 * v62 * 1.5 * tau_el * cu_frac])
    probe = plural_scattering(np.array([54.9, 55.0, 55.1]), i0=np.array([1.0]),
                              components=[(np.array([tau_el]), val_el, None)], zlp_fwhm=zlp_fwhm)[0, 1]
    total = dose / probe * np.exp(tau_el)
    tau_tot = tau_el_p + tau_cu_p
    i0 = total * np.exp(-tau_tot)
    clean = plural_scattering(energy, i0=i0, zlp_fwhm=zlp_fwhm,
                              components=[(tau_el_p, val_el, None), (tau_cu_p, val_cu, None), (a[0], li, None),
                                          (a[1], matrix, None), (a[2], cu, None)])
    data = rng.poisson(np.clip(clean, 0, None)).astype(np.float32)
    refs = np.stack([li(energy), matrix(energy), cu(energy)])
    weights = i0[None] * de * a
    coords = {"position": ("position", pos, {"units": "nm"}), "energy": ("energy", energy, {"units": "eV"})}
    da = xr.DataArray(data, dims=("position", "energy"), coords=coords, name="linescan",
                      attrs={"signal_type": "EELS", "beam_energy_kv": 200.0, "dispersion_ev": de, "dose": dose,
                             "physics": "realistic",
                             "title": "simulated position-resolved TEM-EELS, Cu | solid electrolyte"})
    truth = xr.Dataset(
        {"li": ("position", weights[0], {"long_name": "true Li-K amount", "units": "single-scattering counts"}),
         "weights": (("component", "position"), weights),
         "references": (("component", "energy"), refs),
         "clean": (("position", "energy"), clean.astype(np.float32), {"long_name": "expected counts"}),
         "thickness": ("position", tau_tot, {"long_name": "t/λ", "units": "1"})},
        coords={**coords, "component": ("component", ["Li", "matrix", "Cu"])},
        attrs={"interface_nm": float(x0), "layer_width_nm": float(width), "enhancement": enh,
               "cu_side": "position < interface_nm", "seed": int(seed), "physics": "realistic"},
    )
    return da, truth


def co_l_spectrum_image(*, shape=(48, 64), pixel_nm=1.0, layer_width_nm=20.0, energy_range=(760.0, 820.0),
                        energy_step=0.25, dose=300.0, seed=0, layer_fraction=0.6, physics="ideal",
                        thickness_range=(0.4, 1.0), zlp_fwhm=0.8, dual_eels=False,
                        low_loss_range=(-5.0, 120.0), scene=None):
    """Co-L2,3 spectrum image of a LiCoO2 film with a Co3O4-rich layer at the interface (row 0).

    The Co3O4 fraction is ``layer_fraction`` at the interface, falls to 0 over
    ``layer_width_nm`` (an erfc step at the layer width, 2 nm wide) and its
    depth varies gently along ``x``. Spectra are a power-law background plus
    ``thickness × (f_LiCoO2·ref_LiCoO2 + f_Co3O4·ref_Co3O4)``, then Poisson noise.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` pixels, ``y`` from the electrolyte interface into the film.
    pixel_nm : float
        Pixel size in nm.
    layer_width_nm : float
        Width of the Co3O4-rich layer (≈ 20 nm reported).
    energy_range : (float, float)
        Energy window in eV (stop excluded).
    energy_step : float
        Dispersion in eV per channel.
    dose : float
        Expected background counts per channel at the first energy channel.
    seed : int
        Seed of the layer roughness, thickness and noise.
    layer_fraction : float
        Co3O4 share of the Co at the interface.
    physics : {"ideal", "realistic"}
        ``"realistic"``: the single-scattering spectrum above is convolved with
        each pixel's low loss (zero-loss peak of ``zlp_fwhm`` and every order of
        valence scattering at a t/λ spanning ``thickness_range`` across x), so
        each Co-L line gets its plasmon replicas ~23 eV higher and the edge
        shapes change with thickness; ``truth.weights`` stay single-scattering
        amounts and ``truth.thickness`` is t/λ. Changed in issue 20: float32
        convolution on two threads (expected counts within 1e-5 relative of
        before) and row-wise Poisson generators (same statistics, other numbers).
    thickness_range, zlp_fwhm : see ``physics``.
    dual_eels : bool
        Realistic physics: also return the low-loss spectra of the same pixels
        (``low_loss_range``, same dispersion, a nominal exposure ratio 0.01 in attrs):
        ``(data, low_loss, truth)``.
    low_loss_range : (float, float)
        Energy range of the low-loss spectra (eV).
    scene : Scene, optional
        The above in one :class:`~ionscope.simulate.Scene` (other fields are ignored); a keyword
        that differs from its default here overrides the scene's field.

    Returns
    -------
    data : xarray.DataArray
        ``("y", "x", "energy")`` float32 counts.
    truth : xarray.Dataset
        ``fraction`` (component, y, x) with components ``["LiCoO2", "Co3O4"]``
        (summing to 1), ``spectra`` (component, energy) = ``co_l_references``,
        ``weights`` (component, y, x) the exact coefficients of ``spectra``,
        ``thickness`` (y, x), ``background_amplitude``/``background_exponent``;
        attrs ``layer_width_nm``.

    References
    ----------
    Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w.

    Examples
    --------
    >>> data, truth = co_l_spectrum_image(shape=(24, 16))
    >>> data.dims, truth.fraction.component.values.tolist()
    (('y', 'x', 'energy'), ['LiCoO2', 'Co3O4'])
    """
    if scene is not None:
        from ._scene import from_scene

        return co_l_spectrum_image(**from_scene(co_l_spectrum_image, scene, dict(
            shape=shape, pixel_nm=pixel_nm, layer_width_nm=layer_width_nm, energy_range=energy_range,
            energy_step=energy_step, dose=dose, seed=seed, layer_fraction=layer_fraction, physics=physics,
            thickness_range=thickness_range, zlp_fwhm=zlp_fwhm, dual_eels=dual_eels, low_loss_range=low_loss_range)))
    import xarray as xr

    ny, nx = _check_shape(shape)
    h = _check_float(pixel_nm, "pixel_nm")
    width = _check_float(layer_width_nm, "layer_width_nm", allow_zero=True)
    energy, de = _validate_range(energy_range, energy_step)
    dose = _check_float(dose, "dose")
    f0 = _check_float(layer_fraction, "layer_fraction", allow_zero=True)
    if f0 > 1:
        raise DataValidationError(f"layer_fraction must be in [0, 1], got {layer_fraction!r}")
    if width >= ny * h:
        raise DataValidationError(f"layer_width_nm={width:g} must be smaller than the image height {ny * h:g} nm")
    rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(seed), spawn_key=(5,)))
    y = (np.arange(ny) + 0.5) * h
    x = (np.arange(nx) + 0.5) * h
    depth = width * (1.0 + 0.1 * np.clip(_smooth_noise(rng, (nx,), max(nx / 6, 1.0)), -2, 2) / 2)
    f_c34 = f0 * 0.5 * (1.0 - erf((y[:, None] - depth[None, :]) / (np.sqrt(2.0) * 1.0)))
    fraction = np.stack([1.0 - f_c34, f_c34])
    thickness = 1.0 + 0.1 * (x[None, :] / x[-1] - 0.5) + 0.03 * _smooth_noise(rng, (ny, nx), 3.0)
    refs = co_l_references(energy).values
    amp = dose * thickness
    expo = np.full((ny, nx), 3.0)
    # continuum per Co is 0.1 in co_l_references; scale edges to a ~25 % jump over the background
    k = 2.5 * dose * (energy[-1] / energy[0]) ** -3.0
    weights = k * thickness[None] * fraction
    if physics not in ("ideal", "realistic"):
        raise DataValidationError(f"physics: expected 'ideal' or 'realistic', got {physics!r}")
    low = e_low = None
    if physics == "realistic":
        from ._noise import poisson_rows

        clean, weights, amp, thickness, low, e_low = _co_l_realistic(
            energy, de, amp, expo, weights, thickness, thickness_range=thickness_range, zlp_fwhm=zlp_fwhm,
            dual_eels=dual_eels, low_loss_range=low_loss_range)
        # realistic spectra: row-wise generators on two threads (changed in issue 20; the ideal
        # model keeps its single stream)
        data = poisson_rows(clean, np.random.SeedSequence(_seed_entropy(seed), spawn_key=(5, 1)))
    else:
        clean = amp[..., None] * (energy / energy[0]) ** -expo[..., None] + np.einsum("cyx,ce->yxe", weights, refs)
        data = rng.poisson(clean).astype(np.float32)
    coords = {"y": ("y", y, {"units": "nm"}), "x": ("x", x, {"units": "nm"}),
              "energy": ("energy", energy, {"units": "eV"})}
    da = xr.DataArray(data, dims=("y", "x", "energy"), coords=coords, name="co_l",
                      attrs={"signal_type": "EELS", "beam_energy_kv": 200.0, "dispersion_ev": de, "dose": dose,
                             "title": "simulated Co-L2,3 spectrum image, LiCoO2 with a Co3O4-rich layer"})
    truth = xr.Dataset(
        {"fraction": (("component", "y", "x"), fraction, {"long_name": "share of the Co in each compound"}),
         "spectra": (("component", "energy"), refs),
         "weights": (("component", "y", "x"), weights),
         "thickness": (("y", "x"), thickness, {"units": "relative"}),
         "background_amplitude": (("y", "x"), amp, {"units": f"counts/channel at {energy[0]:g} eV"}),
         "background_exponent": (("y", "x"), expo)},
        coords={**coords, "component": ("component", ["LiCoO2", "Co3O4"])},
        attrs={"layer_width_nm": float(width), "layer_fraction": f0, "interface_side": "y0",
               "background_e0_ev": float(energy[0]), "seed": int(seed), "physics": physics},
    )
    if physics == "realistic":
        truth["thickness"].attrs.update(long_name="t/λ", units="1")
        da.attrs["physics"] = "realistic"
    if low is not None:
        from ._noise import poisson_rows

        ll = xr.DataArray(poisson_rows(low, np.random.SeedSequence(_seed_entropy(seed), spawn_key=(5, 2))),
                          dims=("y", "x", "energy"), name="low_loss",
                          coords={**coords, "energy": ("energy", e_low, {"units": "eV"})},
                          attrs={**da.attrs, "exposure_ratio": 0.01, "title": "simulated low loss (dual EELS)"})
        return da, ll, truth
    return da, truth


def _co_l_realistic(energy, de, amp, expo, weights, thickness, *, thickness_range, zlp_fwhm, dual_eels,
                    low_loss_range):
    """The Co-L spectra convolved with each pixel's low loss; (clean, weights, amp, t/λ, low loss, its axis)."""
    lo, hi = (float(v) for v in thickness_range)
    if not 0 < lo <= hi < 5:
        raise DataValidationError(f"thickness_range: expected 0 < low ≤ high < 5, got {thickness_range!r}")
    ny, nx = amp.shape
    tau = lo + (hi - lo) * (thickness - thickness.min()) / max(float(np.ptp(thickness)), 1e-12)
    # the single-scattering model on an axis starting 150 eV lower: replicas come from below
    n_below = int(round(150.0 / de))
    e_ext = energy[0] - de * np.arange(n_below, 0, -1)
    e_all = np.concatenate([e_ext, energy])
    refs_all = co_l_references(e_all).values
    # exp(−r·log(E/E0)) with the logarithm taken once: the same power law as ``**`` (to
    # rounding), ~20× faster than a per-element power on (y, x, energy)
    ss = np.exp(-expo[..., None] * np.log(e_all / energy[0]))
    ss *= amp[..., None]
    ss += np.einsum("cyx,ce->yxe", weights, refs_all)
    # I0·e^{-τ} of a uniform beam: thicker pixels keep less in the zero-loss peak, all else scales with t
    conv = _realistic.convolve_low_loss(ss.reshape(-1, e_all.size), de, np.exp(-0.0) * tau.ravel(),
                                        zlp_kw={"zlp_fwhm": _check_float(zlp_fwhm, "zlp_fwhm")})
    clean = conv[:, n_below:].reshape(ny, nx, energy.size)
    # keep the meaning of `dose` (counts per channel at the first channel): rescale everything
    scale = float(amp.mean() / clean[..., 0].mean())
    clean *= scale
    low = e_low = None
    if dual_eels:
        e_low, _ = _validate_range(low_loss_range, de, allow_negative=True)
        from ._lowloss import plural_scattering, valence_loss

        i0 = 2e5 * np.exp(-tau)  # ~2·10^5 electrons per pixel: a typical low-loss exposure
        low = plural_scattering(e_low, i0=i0.ravel(), components=[(tau.ravel(), valence_loss, None)],
                                zlp_fwhm=zlp_fwhm).reshape(ny, nx, e_low.size)
    return clean, weights * scale, amp * scale, tau, low, e_low
