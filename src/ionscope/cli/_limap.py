# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope limap INPUT --method mlls|sasb|nmf --refs REFS -o OUT``: Li maps (Zarr/NetCDF + PNG)."""
from __future__ import annotations

from pathlib import Path

from ._common import add_out, add_progress, add_reader, add_refs, add_var, check_out, dask_progress, keep_acquisition, \
    load_input, naming, need_dims, say, show_progress

SUFFIXES = (".zarr", ".nc")


def register(sub) -> None:
    p = sub.add_parser("limap", help="Li maps from a STEM-EELS spectrum image or series (MLLS, SA/SB, NMF)",
                       description="Li maps from a spectrum image (y, x, energy) or series (time, y, x, energy): "
                                   "one variable per component (weights in units of the reference spectra) with "
                                   "standard errors, written to a store, with PNG previews beside it.")
    p.add_argument("input", metavar="INPUT",
                   help="spectrum image or series with an energy axis in eV (.dm3/.dm4/.hspy/.zarr/.nc ...)")
    p.add_argument("--method", choices=("mlls", "sasb", "nmf"), default="mlls",
                   help="mlls: Poisson ML fit of reference spectra (default); sasb: Li/Co ratio from two windows "
                        "(Kikkawa 2015); nmf: reference-free non-negative factorisation")
    add_refs(p, what="reference spectra, dims (component, energy), energy in eV (mlls/sasb: required; "
                     "nmf: initial spectra); make one with `ionscope refs`")
    add_out(p, suffixes=SUFFIXES, what="output store of the maps; PNG previews OUT_<component>.png beside it")
    p.add_argument("--fit-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="MLLS fit window in eV (default: the whole energy axis)")
    p.add_argument("--background", choices=("powerlaw", "basis", "none"), default="powerlaw",
                   help="MLLS background: powerlaw (per-pixel A·E^-r, default), basis (a fixed power-law basis, "
                        "linear and fastest) or none (already background-subtracted)")
    p.add_argument("--weights", choices=("poisson", "none"), default="poisson",
                   help="MLLS weighting: poisson (maximum likelihood for counts, default) or none (least squares)")
    p.add_argument("--nonnegative", default="all", metavar="WHICH",
                   help="MLLS weights constrained to >= 0: 'all' (default), 'none', or component names "
                        "separated by commas, e.g. 'Co' (an unclipped, mean-unbiased Li map)")
    p.add_argument("--plural-scattering", choices=("auto", "fourier-log", "convolve", "none"), default="auto",
                   help="MLLS on spectra with their zero-loss peak: fourier-log (deconvolve each spectrum from its "
                        "own zero-loss peak, weights in single-scattering counts, honest errors), convolve (fit raw "
                        "counts with the references convolved with each pixel's low loss), none; auto (default): "
                        "fourier-log when the energy axis holds a zero-loss peak or --low-loss is given")
    p.add_argument("--low-loss", metavar="FILE",
                   help="dual EELS: the low-loss spectra of the same pixels (same dispersion; spliced below INPUT)")
    p.add_argument("--calibration-k", type=float, metavar="K",
                   help="also write the Li fraction x = (w_Li/w_Co)/K with its σ (variables li_fraction, "
                        "li_fraction_std); K = w_Li/w_Co of x = 1 (e.g. from a region of pristine LiCoO2)")
    p.add_argument("--n-components", type=int, default=2, metavar="N", help="NMF components (default 2)")
    add_var(p, default_hint="the only variable, or 'si'")
    add_reader(p)
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    # the fit functions name their arguments (si, references, low_loss); the user knows the files
    with naming(si=("INPUT", args.input), references=("--refs", args.refs), low_loss=("--low-loss", args.low_loss)):
        return _run(args)


def _run(args) -> int:
    from .. import eels
    from ..errors import DataValidationError
    from ..io import load

    out = check_out(args)
    si = load_input(args.input, var=args.var, prefer=("si", "data"), reader=args.reader, lazy=True,
                    what="spectrum image")
    if "energy" not in si.dims:
        raise DataValidationError(f"{args.input}: dims {tuple(si.dims)} have no energy axis; limap needs a "
                                  "spectrum image (y, x, energy) or series (time, y, x, energy) "
                                  f"(a {si.attrs.get('signal_type') or 'image'}? see `ionscope info {args.input}`)")
    refs = load(args.refs, var=None).compute() if args.refs else None
    if refs is not None and not hasattr(refs, "dims"):
        raise DataValidationError(f"--refs {args.refs}: expected one (component, energy) array")
    if refs is not None:
        need_dims(refs, args.refs, option="--refs", need=("component", "energy"), what="reference spectra",
                  hint=" (make them with `ionscope refs` or `ionscope simulate ... --refs-out`)")
    if args.method in ("mlls", "sasb") and refs is None:
        raise DataValidationError(f"--refs is required for --method {args.method} (make one with `ionscope refs`)")
    if args.method == "mlls":
        e = si.energy.values
        low = load_input(args.low_loss, prefer=("si", "data", "low_loss"), reader=args.reader, lazy=True,
                         what="low-loss spectra") if args.low_loss else None
        plural = args.plural_scattering
        if plural == "auto":
            plural = "fourier-log" if (low is not None or e.min() < 0 < e.max()) else "none"
        if plural != "none":
            # real spectra: the fit window starts above the zero-loss peak and plasmon (default 45 eV up)
            # (and within what the references cover: measured ones span only their own window)
            er = refs.energy.values if "energy" in refs.coords else e
            fit_range = tuple(args.fit_range) if args.fit_range else (
                max(45.0, float(e[e > 0][0]), float(er.min())), min(float(e[-1]), float(er.max())))
            nonneg = _nonnegative(args.nonnegative) if args.nonnegative != "all" else ["Co"] if "Co" in [
                str(c) for c in refs.component.values] else True
            ds = eels.mlls(si, refs, fit_range=fit_range, plural_scattering=plural, low_loss=low, nonnegative=nonneg)
        else:
            fit_range = tuple(args.fit_range) if args.fit_range else (float(e[0]), float(e[-1]))
            ds = eels.mlls(si, refs, fit_range=fit_range,
                           background=None if args.background == "none" else args.background,
                           weights=None if args.weights == "none" else args.weights,
                           nonnegative=_nonnegative(args.nonnegative))
        shown = list(ds.attrs["components"])
        if args.calibration_k is not None:
            frac = eels.li_fraction(ds, calibration=float(args.calibration_k),
                                    smooth_co=2.0 if {"y", "x"} <= set(ds.dims) else 0.0)
            ds["li_fraction"], ds["li_fraction_std"] = frac.li_fraction, frac.li_fraction_std
            shown.append("li_fraction")
    elif args.method == "sasb":
        ds = eels.sasb(si, references=refs)
        shown = ["li_co"]
    else:
        res = eels.nmf(si, n_components=args.n_components, init_spectra=refs)  # lazy input stays lazy
        ds = res.maps.to_dataset("component")
        ds = ds.rename({k: str(k) for k in ds.data_vars})
        ds["spectra"] = res.spectra
        ds.attrs["relative"] = 1  # NMF maps are in arbitrary, per-component units
        shown = [str(c) for c in res.component.values]
    keep_acquisition(ds, si)
    with dask_progress("limap", show_progress(args)):
        out = save_maps(ds, out, shown)
    say(args, f"wrote {out} (variables {', '.join(map(str, ds.data_vars))}; read one with --var NAME)")
    return 0


def save_maps(ds, out: Path, shown, *, max_frames: int = 8) -> Path:
    """Write ``ds`` to ``out`` (.zarr or .nc, atomically, streaming dask chunks) and PNG previews beside it.

    The data are computed once (into the store) and the previews read back from it.
    """
    from ..errors import FileFormatError
    from ..io import load, save
    from ..report import map_grid, save_figure

    out = Path(out)
    if out.suffix == "":
        out = out.with_suffix(".zarr")  # as before: a bare name means a Zarr store
    if out.suffix.lower() not in SUFFIXES:
        raise FileFormatError(f"--out {out}: maps are written as .zarr or .nc")
    ds = ds.copy()
    ds.attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in ds.attrs.items()}
    save(ds, out)
    stored = load(out)
    stored = stored if hasattr(stored, "data_vars") else stored.to_dataset()
    relative = bool(ds.attrs.get("relative", 0))
    for name in shown:
        if name not in stored or not {"y", "x"} <= set(stored[name].dims):
            continue
        fig = map_grid(stored[name].load(), title=name, max_frames=max_frames, relative=relative,
                       label=_label(stored[name], name, ds.attrs.get("method", "")))
        save_figure(fig, out.with_name(f"{out.stem}_{name}.png"))
    return out


def _label(da, name: str, method: str) -> str:
    """Colour-bar label with a unit: the variable's own units if stored, else what the method's numbers mean."""
    if da.attrs.get("units"):
        return f"{da.attrs.get('long_name', name)} ({da.attrs['units']})"
    if method == "mlls":
        return f"{name} weight (units of the {name} reference)"
    if name == "li_co":
        return "Li/Co (ratio of reference units)"
    if name == "total":
        return "total Co signal (units of the references)"
    if method == "phase_map" or name in ("LiCoO2", "Co3O4"):
        return f"{name} fraction (0-1)"
    return f"{name} (arbitrary units)"


def _nonnegative(text: str):
    """``--nonnegative``: 'all' → True, 'none' → False, 'Co,Mn' → ['Co', 'Mn']."""
    if text.strip().lower() == "all":
        return True
    if text.strip().lower() == "none":
        return False
    return [c.strip() for c in text.split(",") if c.strip()]
