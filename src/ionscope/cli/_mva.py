# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope mva INPUT --method pca|nmf|phases -o OUT``: multivariate analysis of a spectrum image."""
from __future__ import annotations

from ._common import add_out, add_progress, add_reader, add_refs, add_var, check_out, dask_progress, keep_acquisition, \
    load_input, say, show_progress

SUFFIXES = (".zarr", ".nc")


def register(sub) -> None:
    p = sub.add_parser("mva", help="PCA (noise-level selection), NMF, or phase fractions of a spectrum image",
                       description="Multivariate analysis of a spectrum image (y, x, energy): PCA with the number "
                                   "of components chosen at the noise level, NMF (Poisson likelihood), or phase "
                                   "fractions from reference spectra.")
    p.add_argument("input", metavar="INPUT", help="spectrum image (y, x, energy), energy in eV")
    p.add_argument("--method", choices=("pca", "nmf", "phases"), default="pca",
                   help="pca (default), nmf (reference-free, relative maps) or phases (fractions ± σ, needs --refs)")
    p.add_argument("--n-components", type=int, metavar="N",
                   help="PCA: components kept (default: those above the noise level); NMF: default 2")
    add_refs(p, what="phases: reference spectra (component, energy) in eV; nmf: initial spectra")
    add_out(p, suffixes=SUFFIXES, what="output store of the maps; PNG maps OUT_<name>.png beside it")
    add_var(p, default_hint="the only variable, or 'si'")
    add_reader(p)
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from .. import eels
    from ..errors import DataValidationError
    from ..io import load
    from ._limap import save_maps

    out = check_out(args)
    si = load_input(args.input, var=args.var, prefer=("si", "data"), reader=args.reader,
                    what="spectrum image").compute()
    if "energy" not in si.dims:
        raise DataValidationError(f"{args.input}: dims {tuple(si.dims)} have no energy axis; mva needs a "
                                  "spectrum image (y, x, energy)")
    refs = load(args.refs).compute() if args.refs else None
    if args.method == "pca":
        res = eels.pca(si, n_components=args.n_components)
        k = max(res.attrs["n_kept"], 1)
        ds = res.scores.isel(component=slice(0, k)).to_dataset("component")
        ds = ds.rename({c: f"score{c}" for c in ds.data_vars})
        ds["eigenvalues"] = res.eigenvalues
        ds["loadings"] = res.loadings
        ds.attrs["relative"] = 1  # scores have no physical unit
        say(args, f"{res.attrs['n_signal']} component(s) above the noise level {res.attrs['noise_edge']:.3g}")
    elif args.method == "nmf":
        res = eels.nmf(si, n_components=args.n_components or 2, init_spectra=refs)
        ds = res.maps.to_dataset("component")
        ds = ds.rename({c: f"nmf{c}" if not isinstance(c, str) else c for c in ds.data_vars})
        ds["spectra"] = res.spectra
        ds.attrs["relative"] = 1  # NMF loadings have arbitrary per-component units: one colour scale each
    else:
        if refs is None:
            raise DataValidationError("--refs is required for --method phases")
        res = eels.phase_map(si, refs, background=True)
        ds = res.fraction.to_dataset("component")
        for c in res.component.values:  # every number with its σ
            ds[f"{c}_std"] = res.fraction_std.sel(component=c, drop=True)
            ds[c].attrs["long_name"] = f"{c} share of the phases' total"
            ds[f"{c}_std"].attrs["long_name"] = f"standard error of the {c} share"
        ds["total"] = res.total
        ds["total_std"] = res.total_std
        ds.attrs.pop("long_name", None)  # the fractions' own, not the file's
        ds.attrs["method"] = "phase_map"
    keep_acquisition(ds, si)
    shown = [n for n in ds.data_vars if {"y", "x"} <= set(ds[n].dims) and not str(n).endswith("_std")]
    with dask_progress("mva", show_progress(args)):
        out = save_maps(ds, out, shown)
    say(args, f"wrote {out} (variables {', '.join(map(str, ds.data_vars))})")
    return 0
