# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope limap INPUT --method mlls|sasb|nmf --refs REFS --out OUT``: Li maps (Zarr + PNG)."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("limap", help="Li maps from a STEM-EELS spectrum image or series (MLLS, SA/SB, NMF)")
    p.add_argument("input", metavar="INPUT", help="spectrum image or series (.dm3/.dm4/.hspy/.zarr/.nc ...)")
    p.add_argument("--method", choices=("mlls", "sasb", "nmf"), default="mlls")
    p.add_argument("--refs", metavar="REFS",
                   help="reference spectra file, dims (component, energy) (needed for mlls/sasb; nmf: initial spectra)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output Zarr store (OUT.zarr); PNGs are written beside it")
    p.add_argument("--fit-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="MLLS fit window in eV (default: the whole energy axis)")
    p.add_argument("--background", choices=("powerlaw", "basis", "none"), default="powerlaw")
    p.add_argument("--weights", choices=("poisson", "none"), default="poisson")
    p.add_argument("--nonnegative", default="all", metavar="WHICH",
                   help="MLLS weights constrained to >= 0: 'all' (default), 'none', or component names "
                        "separated by commas, e.g. 'Co' (an unclipped, mean-unbiased Li map)")
    p.add_argument("--n-components", type=int, default=2, help="NMF components (default 2)")
    p.add_argument("--reader", help="force a rosettasciio plugin, e.g. HSPY")
    p.set_defaults(handler=run)


def run(args) -> int:
    from .. import eels
    from ..errors import DataValidationError
    from ..io import load

    si = load(args.input, lazy=True, reader=args.reader)
    refs = load(args.refs).compute() if args.refs else None
    if args.method in ("mlls", "sasb") and refs is None:
        raise DataValidationError(f"--refs is required for --method {args.method}")
    if args.method == "mlls":
        e = si.energy.values
        fit_range = tuple(args.fit_range) if args.fit_range else (float(e[0]), float(e[-1]))
        ds = eels.mlls(si, refs, fit_range=fit_range, background=None if args.background == "none" else args.background,
                       weights=None if args.weights == "none" else args.weights,
                       nonnegative=_nonnegative(args.nonnegative))
        shown = ds.attrs["components"]
    elif args.method == "sasb":
        ds = eels.sasb(si, references=refs)
        shown = ["li_co"]
    else:
        res = eels.nmf(si, n_components=args.n_components, init_spectra=refs)  # lazy input stays lazy
        ds = res.maps.to_dataset("component")
        ds = ds.rename({k: str(k) for k in ds.data_vars})
        ds["spectra"] = res.spectra
        shown = [str(c) for c in res.component.values]
    out = save_maps(ds, Path(args.out), shown)
    print(f"wrote {out}")
    return 0


def save_maps(ds, out: Path, shown, *, max_frames: int = 8) -> Path:
    """Write ``ds`` to ``out`` (Zarr, atomically, streaming dask chunks) and PNG previews beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .._atomic import atomic_path

    out = out if out.suffix == ".zarr" else out.with_suffix(".zarr")
    clean = ds.copy()
    clean.attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in ds.attrs.items()}
    for v in clean.variables.values():
        v.encoding = {}  # the input store's chunks/codecs do not apply to the maps
    import warnings

    with atomic_path(out) as tmp, warnings.catch_warnings():
        # component labels are fixed-width strings, which zarr-python and xarray read back fine
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification")
        clean.to_zarr(tmp, mode="w", consolidated=False)
    for name in shown:
        da = clean[name]
        if not {"y", "x"} <= set(da.dims):
            continue
        frames = da.transpose(..., "y", "x")
        frames = frames.values.reshape(-1, da.sizes["y"], da.sizes["x"])
        idx = np.linspace(0, frames.shape[0] - 1, min(max_frames, frames.shape[0])).astype(int)
        fig, axes = plt.subplots(1, idx.size, figsize=(2.6 * idx.size + 0.6, 2.6), squeeze=False)
        lo, hi = np.nanpercentile(frames[idx], [1, 99])
        for ax, i in zip(axes[0], idx):
            im = ax.imshow(frames[i], vmin=lo, vmax=hi, cmap="viridis")
            ax.set_title(f"{name} #{i}", fontsize=8)
            ax.axis("off")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
        png = out.with_name(f"{out.stem}_{name}.png")
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    return out


def _nonnegative(text: str):
    """``--nonnegative``: 'all' → True, 'none' → False, 'Co,Mn' → ['Co', 'Mn']."""
    if text.strip().lower() == "all":
        return True
    if text.strip().lower() == "none":
        return False
    return [c.strip() for c in text.split(",") if c.strip()]
