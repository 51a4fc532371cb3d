# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope linescan INPUT [--refs REFS] --out OUT``: Li-K profile and layer width.

INPUT is a position-resolved TEM-EELS image with dims (position, energy).
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("linescan", help="Li-K profile with error bars and layer width from a (position, energy) image")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--refs", metavar="REFS", help="edge references (component, energy); default: window integration")
    p.add_argument("--component", default="Li", help="Li component name in REFS (default Li)")
    p.add_argument("--window", nargs=2, type=float, default=(54.0, 70.0), metavar=("LO", "HI"),
                   help="Li-K window in eV without references (default 54 70)")
    p.add_argument("--pre-edge", nargs=2, type=float, default=(40.0, 52.0), metavar=("LO", "HI"))
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output NetCDF/Zarr of the profile; a PNG is written beside it")
    p.add_argument("--reader", help="force a rosettasciio plugin")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import eels
    from .._atomic import atomic_path
    from ..io import load

    data = load(args.input, reader=args.reader)
    refs = load(args.refs).compute() if args.refs else None
    prof = eels.li_profile(data, references=refs, component=args.component, window=tuple(args.window),
                           pre_edge=tuple(args.pre_edge))
    width = eels.layer_width(prof)
    for k in ("width_nm", "width_std_nm", "interface_nm", "interface_std_nm", "amplitude", "amplitude_std"):
        prof.attrs[k] = width[k]
    out = Path(args.out)
    out = out if out.suffix in (".zarr", ".nc") else out.with_suffix(".zarr")
    with atomic_path(out) as tmp:
        if out.suffix == ".nc":
            prof.to_netcdf(tmp, engine="h5netcdf")
        else:
            prof.to_zarr(tmp, mode="w", consolidated=False)
    dim = prof.li.dims[0]
    x = prof[dim].values if dim in prof.coords else range(prof.li.size)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.errorbar(x, prof.li.values, yerr=prof.li_std.values, fmt=".", ms=3, lw=0.6, label="Li-K")
    ax.plot(x, width["fit"], "r-", lw=1.2,
            label=f"layer {width['width_nm']:.1f} ± {width['width_std_nm']:.1f} nm")
    ax.set_xlabel(f"{dim} (nm)")
    ax.set_ylabel("Li-K intensity")
    ax.legend(fontsize=8)
    png = out.with_suffix(".png")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"layer width {width['width_nm']:.2f} ± {width['width_std_nm']:.2f} nm, "
          f"interface at {width['interface_nm']:.2f} ± {width['interface_std_nm']:.2f} nm")
    print(f"wrote {out} and {png}")
    return 0
