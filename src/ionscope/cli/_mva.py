# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope mva INPUT --method pca|nmf|phases --out OUT``: multivariate analysis of a spectrum image."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("mva", help="PCA (noise-level selection), NMF, or phase fractions of a spectrum image")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--method", choices=("pca", "nmf", "phases"), default="pca")
    p.add_argument("--n-components", type=int, help="PCA: components kept (default: noise level); NMF: required")
    p.add_argument("--refs", metavar="REFS", help="phases: reference spectra (component, energy); nmf: initial spectra")
    p.add_argument("--out", required=True, metavar="OUT", help="output Zarr store; PNG maps are written beside it")
    p.add_argument("--reader", help="force a rosettasciio plugin")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from .. import eels
    from ..errors import DataValidationError
    from ..io import load
    from ._limap import save_maps

    si = load(args.input, reader=args.reader).compute()
    refs = load(args.refs).compute() if args.refs else None
    if args.method == "pca":
        res = eels.pca(si, n_components=args.n_components)
        k = max(res.attrs["n_kept"], 1)
        ds = res.scores.isel(component=slice(0, k)).to_dataset("component")
        ds = ds.rename({c: f"score{c}" for c in ds.data_vars})
        ds["eigenvalues"] = res.eigenvalues
        ds["loadings"] = res.loadings
        print(f"{res.attrs['n_signal']} component(s) above the noise level {res.attrs['noise_edge']:.3g}")
    elif args.method == "nmf":
        if not args.n_components:
            raise DataValidationError("--n-components is required for --method nmf")
        res = eels.nmf(si, n_components=args.n_components, init_spectra=refs)
        ds = res.maps.to_dataset("component")
        ds = ds.rename({c: f"nmf{c}" if not isinstance(c, str) else c for c in ds.data_vars})
        ds["spectra"] = res.spectra
    else:
        if refs is None:
            raise DataValidationError("--refs is required for --method phases")
        res = eels.phase_map(si, refs, background=True)
        ds = res.fraction.to_dataset("component")
        ds["total"] = res.total
    shown = [n for n in ds.data_vars if {"y", "x"} <= set(ds[n].dims)]
    out = save_maps(ds, Path(args.out), shown)
    print(f"wrote {out}")
    return 0
