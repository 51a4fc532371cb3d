# SPDX-License-Identifier: GPL-3.0-or-later
"""Any natural input: the public API walked function by function, each data-taking function fed a
DataArray, a one-variable Dataset, a multi-variable Dataset with ``var=``, a HyperSpy signal and a
numpy array (with its axes given the function's way), plus something it cannot take.

Every input kind must give the same numbers as the DataArray; the numpy kind either does too or is
refused with an ``IonscopeError`` (never an AttributeError from deep inside); anything else gets one
``DataValidationError`` that says what to pass. The walk covers the lazy export tables of every
subpackage: a new exported function must be listed here (taking data, or why not), so none escapes.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import warnings

import numpy as np
import pytest
import xarray as xr

import ionscope.io as iio
from ionscope.errors import DataValidationError, IonscopeError

hs = pytest.importorskip("hyperspy.api", reason="HyperSpy is in the test extra: pip install -e '.[test]'")

PACKAGES = ("eels", "denoise", "holography", "operando", "report", "live", "simulate", "io")

#: exported callables that take no data array of their own, and why (a new export must be classified)
NOT_DATA = {
    "eels.powerlaw": "evaluates a fitted background (a fit result) on an energy axis",
    "eels.implausible_spectra": "array kernel on spectra (energy last)",
    "eels.check_counts": "the check every route runs on the DataArray it was given (the routes take any data "
                         "through io.as_data); returns its input, masked or lazily checked",
    "denoise.batch_omp": "array kernel on patch matrices",
    "denoise.learn_dictionary": "array kernel on patch matrices",
    "denoise.dct_dictionary": "builds a dictionary from sizes",
    "denoise.SparseCodingOptions": "an options record",
    "holography.canonical_carrier": "takes a carrier frequency",
    "holography.interaction_constant": "takes a voltage",
    "holography.interface_asymmetry": "takes two StepFit results",
    "holography.StepFit": "a result record", "holography.StepsFit": "a result record",
    "eels.MllsPlan": "a record (mlls_plan's result; called on numpy blocks by design: the array kernel)",
    "eels.mlls_plan": "takes reference spectra and an energy axis (no spectra: the plan it returns fits them)",
    "holography.BiasPlan": "a record (plan_bias_series' result)", "holography.BiasFrame": "a result record",
    "holography.StepFitOptions": "an options object", "holography.WaveMaker": "a reconstruction record",
    "holography.bias_frame": "takes a BiasPlan and one time point's intensities (plain array or DataArray)",
    "holography.assemble_bias_series": "takes a BiasPlan and bias_frame() results",
    "operando.continuity_flux_kernel": "array kernel", "operando.optical_flow_kernel": "array kernel",
    "operando.interval_means": "array kernel on time stamps", "operando.interface_distance": "takes a shape",
    "operando.flux_error": "compares an analyse() result with truth maps",
    "operando.sync_frames": "takes frame times and a log", "operando.read_series": "takes a path",
    "operando.load_config": "takes a path", "operando.from_dict": "takes a dict", "operando.run": "takes a config",
    "operando.run_holography": "takes a config", "operando.run_stages": "takes a stage table",
    "operando.watch": "takes a config", "operando.Config": "a record", "operando.StageCache": "a cache",
    "operando.Stage": "a record", "operando.RunResult": "a record", "operando.HolographyResult": "a record",
    "report.charge_curve": "draws an ionscope result (sync Dataset)",
    "report.flux_components": "draws an analyse() result", "report.flux_map": "draws an analyse() result",
    "report.mean_li": "draws an analyse() result", "report.profiles": "draws an analyse() result",
    "report.rest_activity": "draws an analyse() result", "report.li_movie": "writes files from panels",
    "report.render_frames": "renders panels", "report.write_movie": "writes frames",
    "report.write_viewer": "writes a page", "report.write_html_report": "writes a page",
    "report.write_run_report": "takes a run result", "report.operando_report_stage": "builds a stage",
    "report.save_figure": "takes a figure",
    "report.colour_scale": "a display scale from any numbers (no axes to read)",
    "report.holo_movie": "draws a bias_series() result", "report.holo_potential_figure": "draws a bias_series() result",
    "report.holo_steps_figure": "draws a bias_series() result", "report.holography_writers": "builds writers",
    "report.write_holo_viewer": "writes a page from a bias_series() result",
    "live.acquire": "a fake microscope", "live.watch": "takes a config", "live.Acquisition": "a record",
    "live.Dashboard": "a server", "live.FrameFollower": "a folder poller", "live.LogFollower": "a log poller",
    "live.LiveState": "a state record", "live.WatchResult": "a record",
    "io.load": "takes a path", "io.info": "takes a path", "io.read_log": "takes a path",
    "io.LogTail": "follows a log file by its path", "io.frame_number": "takes a file name",
    "io.number_frames": "takes file paths", "io.frame_time": "takes frame numbers",
    "io.check_frame_clocks": "takes frame numbers, file names and timestamps",
    "io.from_hyperspy": "takes a HyperSpy signal (it is the adapter's HyperSpy branch)",
    "io.as_data": "the adapter itself", "io.pick_variable": "the adapter's Dataset branch",
    "io.accepts_data": "the decorator", "io.acquisition_value": "reads attrs of any object",
    "io.ZarrSeriesWriter": "a writer",
    "io.read_holograms": "takes a folder path", "io.load_hologram": "takes a path",
    "io.is_hologram_folder": "takes a path", "io.stack_holograms": "takes loaded hologram files (a reader's step)",
    # exported since this list was written (issue 18): none takes a map, a spectrum or a series
    "holography.check_bias_options": "checks option values",
    "report.bounds_of": "reads a quantity's name from attrs", "report.quantity_label": "reads attrs",
    "report.colour_bar": "takes a figure and a mappable", "report.release_figure": "takes a figure",
    "report.image": "draws a labelled (y, x) map on given axes (map_grid and plot_map take any input)",
    "report.style": "a context manager", "report.subplots": "makes a figure", "report.with_sigma": "formats numbers",
    "io.voltage_log": "takes a log (path or Dataset)", "io.read_series": "takes a path",
    "io.FrameFollower": "a folder poller", "io.LogFollower": "a log poller",
    "io.encodable_attrs": "converts attrs", "io.warn_if_large": "takes a size", "io.frame_pattern": "takes a pattern",
}
# the simulator makes data (and truth) from parameters
NOT_DATA_PREFIX = ("simulate.",)


def _exports():
    for pkg in PACKAGES:
        mod = importlib.import_module(f"ionscope.{pkg}")
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if callable(obj):
                yield f"{pkg}.{name}", obj


# ----------------------------------------------------------------------------------- inputs (small)

@pytest.fixture(scope="module")
def data():
    from ionscope.eels import li_profile, mlls
    from ionscope.holography import reconstruct, unwrap_phase
    from ionscope.simulate import (co_l_references, co_l_spectrum_image, hologram, limap_movie, operando_eels,
                                   phase_shifting_series, realistic_references, tem_eels_linescan)

    d = {}
    si, truth, _ = operando_eels(shape=(8, 8), n_frames=1, energy_step=0.5, seed=0)
    d["si"], d["refs"] = si.isel(time=0), truth.references
    real, _, _ = operando_eels(shape=(8, 6), n_frames=1, physics="realistic", dose=1000.0, energy_step=0.2, seed=1)
    d["real"] = real.isel(time=0)
    d["real_refs"] = realistic_references(real.energy)
    d["line"], lt = tem_eels_linescan(n_positions=40, energy_step=0.5)
    d["line_refs"] = lt.references
    d["profile_ds"] = li_profile(d["line"], references=lt.references)
    d["maps"] = mlls(d["si"], d["refs"], fit_range=(float(si.energy[0]), float(si.energy[-1])))
    d["col"], _ = co_l_spectrum_image(shape=(8, 6), pixel_nm=4.0, layer_width_nm=8.0, seed=0)
    d["col_refs"] = co_l_references(d["col"].energy)
    d["movie"], _ = limap_movie(shape=(24, 24), n_frames=6, counts=5.0, seed=0)
    d["holo"], d["vac"], ht = hologram(shape=(64, 64), seed=0)
    d["wave"] = reconstruct(d["holo"], d["vac"], full_size=True)
    d["phase"] = unwrap_phase(d["wave"])
    d["vacuum"] = ht.vacuum.values
    d["ps"], d["ps_truth"] = phase_shifting_series(n=4, shape=(64, 64), seed=0)[:2]
    return d


def _step_profile():
    from scipy.special import erf

    x = np.linspace(0.0, 100.0, 201)
    y = 0.8 * 0.5 * (1 + erf((x - 40.0) / 4.0)) + 0.01 * np.cos(x)
    return xr.DataArray(y, dims="position", coords={"position": ("position", x, {"units": "nm"})})


def _e(da):
    return {"energy": da.energy.values}


def _none(da):
    return {}


#: name → (the DataArray input, keyword arguments, keyword arguments for the numpy input or None:
#: the function needs a calibration a plain array cannot carry, and must say so)
CASES = {
    "eels.align_energy": (lambda d: d["real"], {}, _e),
    "eels.crop": (lambda d: d["si"], {"energy_range": (40.0, 90.0)}, _e),
    "eels.deconvolve": (lambda d: d["real"], {}, _e),
    "eels.estimate_shift": (lambda d: d["real"], {}, _e),
    "eels.fit_background": (lambda d: d["si"], {"fit_range": (35.0, 50.0)}, _e),
    "eels.li_profile": (lambda d: d["line"], {"references": "line_refs"}, _e),
    "eels.mlls": (lambda d: d["si"], {"references": "refs", "fit_range": (32.0, 120.0)}, _e),
    "eels.li_shift_check": (lambda d: d["real"], {"references": "real_refs", "block": 2, "warn": False}, _e),
    "eels.nmf": (lambda d: d["si"], {"n_components": 2}, _e),
    "eels.pca": (lambda d: d["si"], {}, _e),
    "eels.phase_map": (lambda d: d["col"], {"references": "col_refs"}, _e),
    "eels.rebin": (lambda d: d["si"], {"factor": 2}, _e),
    "eels.remove_background": (lambda d: d["si"], {"fit_range": (35.0, 50.0)}, _e),
    "eels.sasb": (lambda d: d["si"], {"references": "refs"}, _e),
    "eels.sasb_calibration": (lambda d: d["refs"], {}, None),
    "eels.sasb_calibration_from_regions": (lambda d: d["real"], {"regions": "regions",
                                                                 "x": {"top": 0.5, "bottom": 1.0}}, _e),
    "eels.nmf_li": (lambda d: d["real"], {"references": "real_refs", "binning": 2, "fit_pixels": 12}, _e),
    "eels.shift_energy": (lambda d: d["si"], {"shift": 0.3}, _e),
    "eels.thickness": (lambda d: d["real"], {}, _e),
    "eels.references_from_regions": (
        lambda d: d["real"], {"regions": "regions", "composition": {"top": {"Li": 1.0, "Co": 1.0},
                                                                    "bottom": {"Co": 1.0}},
                              "fit_range": (45.0, 85.0)}, _e),
    "denoise.anscombe": (lambda d: d["movie"], {}, _none),
    "denoise.generalized_anscombe": (lambda d: d["movie"], {}, _none),
    "denoise.inverse_anscombe": (lambda d: d["movie"] + 2.0, {}, _none),
    "denoise.inverse_generalized_anscombe": (lambda d: d["movie"] + 2.0, {}, _none),
    "denoise.bicubic_upsample": (lambda d: d["movie"], {}, _none),
    "denoise.gaussian": (lambda d: d["movie"], {}, _none),
    "denoise.noise_level": (lambda d: d["movie"], {}, _none),
    "denoise.pca_spectrum": (lambda d: d["si"], {}, _none),
    "denoise.psnr": (lambda d: d["movie"], {"truth": "movie_smooth"}, _none),
    "denoise.ssim": (lambda d: d["movie"], {"truth": "movie_smooth"}, _none),
    "denoise.sparse_coding": (lambda d: d["movie"], {"method": "ksvd", "n_atoms": 32, "passes": 1}, _none),
    "denoise.super_resolve": (lambda d: d["movie"].isel(time=0), {"n_atoms": 16, "back_projection": 1}, _none),
    "denoise.total_variation": (lambda d: d["movie"], {}, _none),
    "holography.bias_difference": (lambda d: d["wave"], {"wave_unbiased": "wave", "align": False}, "runs"),
    "holography.bias_series": (lambda d: d["bias"][0], {"references": "bias_refs", "log": "bias_log",
                                                        "thickness_nm": "bias_t"}, None),
    "holography.plan_bias_series": (lambda d: d["bias"][0], {"references": "bias_refs", "log": "bias_log",
                                                             "thickness_nm": "bias_t"}, None),
    "holography.estimate_sideband": (lambda d: d["holo"], {}, _none),
    "holography.fit_step": (lambda d: _step_profile(), {}, lambda da: {"position": da.position.values}),
    "holography.fit_steps": (lambda d: _step_profile(), {"centers": [40.0]},
                             lambda da: {"position": da.position.values}),
    "holography.fringe_statistics": (lambda d: d["holo"], {}, "runs"),
    "holography.line_profile": (lambda d: d["phase"], {"start": "start", "end": "end"},
                                lambda da: {"start": (32.0, 5.0), "end": (32.0, 58.0),  # pixels
                                            "width": 1.0 / float(da.x[1] - da.x[0])}),
    "holography.phase_difference": (lambda d: d["wave"], {"wave_b": "wave"}, _none),
    "holography.phase_shifting": (lambda d: d["ps"], {"register": False}, _none),
    "holography.reconstruct": (lambda d: d["holo"], {"reference": "vac"}, _none),
    "holography.relative_thickness": (lambda d: d["wave"], {"vacuum": "vacuum"}, _none),
    "holography.remove_ramp": (lambda d: d["phase"], {"mask": "vacuum"}, _none),
    "holography.to_potential": (lambda d: d["phase"], {"thickness_nm": 50.0}, lambda da: {"voltage_kv": 200.0}),
    "holography.unwrap_phase": (lambda d: d["wave"], {}, _none),
    "holography.vacuum_mask": (lambda d: d["wave"], {}, _none),
    "operando.analyse": (lambda d: d["movie"], {}, "runs"),  # no time axis: rates per frame, not per s
    "operando.apply_shifts": (lambda d: d["movie"], {"shifts": np.zeros((6, 2))}, _none),
    "operando.change_maps": (lambda d: d["movie"], {}, _none),
    "operando.estimate_shifts": (lambda d: d["movie"], {}, _none),
    "report.map_grid": (lambda d: d["movie"], {}, _none),
    "report.plot_map": (lambda d: d["movie"].isel(time=0), {}, _none),
    "live.process_frame": (lambda d: d["si"], {"config": "config"}, None),
    "io.to_hyperspy": (lambda d: d["si"], {}, None),
    "io.save": (lambda d: d["si"], {"path": "path"}, None),
}
#: functions whose data argument is a Dataset of named variables (a result of another function)
DATASET_CASES = {
    "eels.li_fraction": (lambda d: d["maps"], {}),
    "eels.layer_width": (lambda d: d["profile_ds"], {}),
    "eels.calibration_from_charge": (
        lambda d: xr.Dataset({"Li": ("time", 3.5 * (1 - np.arange(4) * 1e-12 / (96485.33212 * 1e-17))),
                              "Co": ("time", np.full(4, 5.0))}),
        {"charge_c": np.arange(4) * 1e-12, "co_mol": 1e-17}),
    "holography.asymmetry_summary": (lambda d: d["bias_ds"], {}),
    "holography.leakage_summary": (lambda d: d["bias_ds"], {}),
    "holography.relaxation_times": (lambda d: d["bias_ds"], {}),
}
SLOW = {"holography.bias_series", "holography.plan_bias_series"}


@pytest.fixture(scope="module")
def extra(data, tmp_path_factory):
    """Inputs some functions need besides their data (resolved from the names in CASES)."""
    from ionscope.denoise import gaussian
    from ionscope.operando import from_dict

    ny, nx = data["real"].sizes["y"], data["real"].sizes["x"]
    rows = np.arange(ny)[:, None] * np.ones((1, nx))
    regions = {"top": xr.DataArray(rows < ny // 2, dims=("y", "x")),
               "bottom": xr.DataArray(rows >= ny // 2, dims=("y", "x"))}
    y, x = data["phase"].y.values, data["phase"].x.values
    return {**data, "movie_smooth": gaussian(data["movie"], sigma=2.0), "regions": regions,
            "start": (float(y[32]), float(x[5])), "end": (float(y[32]), float(x[58])),
            "config": from_dict({}), "path": tmp_path_factory.mktemp("save") / "x.zarr"}


@pytest.fixture(scope="module")
def bias(extra):
    from ionscope.holography import bias_series
    from ionscope.simulate import biased_holograms

    holos, refs, log, truth = biased_holograms(method="fourier", programme=[("rest", 20), ("hold", 1.5, 30)],
                                               shape=(128, 128), pixel_nm=2.0, dose=1000.0, frame_interval_s=10.0)
    ds = bias_series(holos, references=refs, log=log, thickness_nm=truth.thickness_nm.values)
    return {**extra, "bias": (holos,), "bias_refs": refs, "bias_log": log, "bias_t": truth.thickness_nm.values,
            "bias_ds": ds}


def _resolve(kw, inputs, name, kind):
    out = {}
    for k, v in kw.items():
        if isinstance(v, str) and v in inputs and k not in ("method",):
            v = inputs[v]
        if k == "path":
            v = v.with_name(f"{name}-{kind}.zarr")
        out[k] = v
    return out


def _numbers(result):
    """Every number a result holds, as arrays in a fixed order (for comparing input kinds)."""
    if result is None:
        return []
    if isinstance(result, (xr.DataArray, xr.Variable)):
        return [np.asarray(result.values)]
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, xr.Dataset):
        return [np.asarray(result[k].values) for k in sorted(result.data_vars, key=str)]
    if isinstance(result, dict):
        return [a for k in sorted(result, key=str) for a in _numbers(result[k])]
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _numbers(r)]
    if dataclasses.is_dataclass(result):
        return [a for f in dataclasses.fields(result) for a in _numbers(getattr(result, f.name))]
    if hasattr(result, "savefig"):  # a figure: compare the images drawn
        return [np.asarray(im.get_array()) for ax in result.axes for im in ax.images]
    if hasattr(result, "get_figure") and hasattr(result, "images"):  # an Axes
        return [np.asarray(im.get_array()) for im in result.images]
    if hasattr(result, "data") and hasattr(result, "axes_manager"):  # a HyperSpy signal
        return [np.asarray(result.data)]
    if isinstance(result, (str, bytes, type(None))) or hasattr(result, "__fspath__"):
        return []
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        return []
    return [arr]


def _call(fn, arg, kw):
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(arg, **kw)
    plt.close("all")
    return out


def _same(a, b, what):
    na, nb = _numbers(a), _numbers(b)
    assert len(na) == len(nb), f"{what}: {len(na)} vs {len(nb)} outputs"
    for x, y in zip(na, nb):
        if x.dtype.kind in "biufc" and y.dtype.kind in "biufc":
            kind = complex if "c" in (x.dtype.kind, y.dtype.kind) else float
            np.testing.assert_allclose(np.asarray(x, kind), np.asarray(y, kind), rtol=1e-6, atol=1e-9,
                                       equal_nan=True, err_msg=what)
        else:
            assert np.array_equal(x, y), what


KINDS = ("Dataset", "Dataset var=", "HyperSpy", "numpy", "something else")


def test_every_export_is_classified():
    missing = []
    for qual, obj in _exports():
        if qual in NOT_DATA or qual.startswith(NOT_DATA_PREFIX):
            continue
        if qual in CASES or qual in DATASET_CASES:
            assert getattr(obj, "__ionscope_inputs__", None), f"{qual} takes data but not through io.as_data"
            assert "var" in inspect.signature(obj).parameters, qual
            continue
        missing.append(qual)
    assert not missing, f"classify these exports (data cases, or NOT_DATA with a reason): {missing}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qual", sorted(CASES))
def test_every_data_function_takes_every_input_kind(qual, kind, extra, request):
    pkg, name = qual.split(".")
    fn = getattr(importlib.import_module(f"ionscope.{pkg}"), name)
    inputs = request.getfixturevalue("bias") if qual in SLOW else extra
    make, kw, np_kw = CASES[qual]
    da = make(inputs)
    first = next(iter(inspect.signature(fn).parameters))
    reference = _call(fn, da, _resolve(kw, inputs, name, "DataArray"))
    kw = _resolve(kw, inputs, name, kind)
    if kind == "Dataset":
        _same(_call(fn, da.to_dataset(name="v"), kw), reference, f"{qual}({kind})")
    elif kind == "Dataset var=":
        ds = xr.Dataset({"v": da, "other": xr.zeros_like(da)})
        _same(_call(fn, ds, {**kw, "var": "v"}), reference, f"{qual}({kind})")
        if qual != "io.save":  # save writes every variable of a Dataset
            with pytest.raises(DataValidationError, match="var="):  # no main variable: say how to pick one
                _call(fn, ds, kw)
    elif kind == "HyperSpy":
        _same(_call(fn, iio.to_hyperspy(da), kw), reference, f"{qual}({kind})")
    elif kind == "numpy":
        if np_kw is None:  # the function needs a calibration a plain array cannot carry
            with pytest.raises(IonscopeError):
                _call(fn, np.asarray(da.values), kw)
        elif np_kw == "runs":  # plain arrays give plain results of another layout (documented)
            assert _numbers(_call(fn, np.asarray(da.values), kw))
        else:
            _same(_call(fn, np.asarray(da.values), {**kw, **np_kw(da)}), reference, f"{qual}({kind})")
    else:
        with pytest.raises(DataValidationError, match=rf"{name}: {first} is a dict; expected a DataArray"):
            _call(fn, {"what": "not data"}, kw)


@pytest.mark.parametrize("qual", sorted(DATASET_CASES))
def test_result_readers_take_datasets_and_refuse_anything_else(qual, bias):
    pkg, name = qual.split(".")
    fn = getattr(importlib.import_module(f"ionscope.{pkg}"), name)
    make, kw = DATASET_CASES[qual]
    ds = make(bias)
    assert _numbers(_call(fn, ds, kw))  # the Dataset as it is
    with pytest.raises(DataValidationError, match="expected a DataArray"):
        _call(fn, {"what": "not data"}, kw)


def test_the_issue_examples(tmp_path, real_file):
    """`denoise.sparse_coding(io.load("limaps.zarr", lazy=True))`, `io.to_hyperspy(io.load("limaps.zarr"))`
    and `eels.thickness(hs.load(...))` (the calibrated HyperSpy energy axis is seen)."""
    from ionscope import denoise, eels
    from ionscope.simulate import limap_movie

    movie, _ = limap_movie(shape=(24, 24), n_frames=6, seed=0)
    store = tmp_path / "limaps.zarr"
    iio.save(xr.Dataset({"Li": movie, "Li_std": np.sqrt(movie + 1), "Co": movie * 0 + 1.0}), store)
    lazy = iio.load(store, lazy=True)
    assert isinstance(lazy, xr.Dataset)
    den = denoise.sparse_coding(lazy)  # picks Li, stays lazy until computed
    assert den.name == "Li" and den.dims == ("time", "y", "x")
    np.testing.assert_allclose(den.values, denoise.sparse_coding(movie).values, rtol=1e-5, atol=1e-6)
    sig = iio.to_hyperspy(iio.load(store))
    assert sig.metadata.ionscope.name == "Li" and sig.data.shape == (6, 24, 24)
    assert sig.metadata.General.title == movie.attrs["title"]  # the data's own title, not a dask key
    assert iio.to_hyperspy(iio.load(store), var="Co").metadata.ionscope.name == "Co"
    path = real_file("Cr_L_ll.hspy")  # (AL-DFoffset0.00.dm3 fails the raw-count rule thickness applies now)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = hs.load(str(path))
    t_hs, t_io = eels.thickness(s), eels.thickness(iio.load(path))
    assert float(t_hs) == pytest.approx(float(t_io), rel=1e-12) and 0.05 < float(t_io) < 1.0


def test_the_second_data_argument_goes_through_the_adapter_too(extra):
    from ionscope.denoise import psnr

    a, b = extra["movie"], extra["movie_smooth"]
    assert psnr(a, b.to_dataset(name="Li")) == pytest.approx(psnr(a, b))
    assert psnr(a, iio.to_hyperspy(b)) == pytest.approx(psnr(a, b))


def test_paths_and_text_are_refused_with_what_to_do():
    from ionscope.denoise import gaussian
    from ionscope.errors import FileFormatError

    with pytest.raises(FileFormatError, match=r"is a path \(maps.zarr\); load it first: ionscope.io.load"):
        gaussian("maps.zarr")
    with pytest.raises(DataValidationError, match="list of non-numbers"):
        gaussian(["a", "b"])
    np.testing.assert_allclose(gaussian([[1.0, 2.0], [3.0, 4.0]], sigma=0.0), [[1.0, 2.0], [3.0, 4.0]])


def test_variable_aliases_read_old_and_new_names(tmp_path):
    from ionscope.eels import layer_width, li_profile
    from ionscope.simulate import tem_eels_linescan

    line, truth = tem_eels_linescan(n_positions=60, energy_step=0.5)
    prof = li_profile(line, references=truth.references)
    assert {"Li", "Li_std", "li", "li_std"} <= set(prof.data_vars)
    np.testing.assert_array_equal(prof.Li.values, prof.li.values)
    iio.save(prof, tmp_path / "p.nc")
    assert iio.load(tmp_path / "p.nc", var="Li").name == "Li"
    old = xr.Dataset({"li": prof.li, "li_std": prof.li_std})  # a file written before the Li names
    iio.save(old, tmp_path / "old.nc")
    assert iio.load(tmp_path / "old.nc", var="Li").name == "li"
    assert layer_width(old)["width_nm"] == pytest.approx(layer_width(prof)["width_nm"])
