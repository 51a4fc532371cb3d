# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope linescan INPUT [--refs REFS] -o OUT``: Li-K profile and layer width.

INPUT is a position-resolved TEM-EELS image with dims (position, energy).
"""
from __future__ import annotations

from ._common import add_alias, add_out, add_progress, add_reader, add_refs, add_var, check_out, keep_acquisition, \
    load_input, naming, need_dims, say

SUFFIXES = (".nc", ".zarr")


def register(sub) -> None:
    p = sub.add_parser("linescan", help="Li-K profile with error bars and layer width from a (position, energy) image",
                       description="Li-K profile along a position-resolved TEM-EELS line scan (position in nm, "
                                   "energy in eV), with 1σ error bars, and the Li-poor layer width ± σ.")
    p.add_argument("input", metavar="INPUT", help="line scan (position, energy), position in nm, energy in eV")
    add_refs(p, what="edge references (component, energy) in eV; default: background-subtracted window integration")
    p.add_argument("--component", default="Li", help="Li component name in REFS (default Li)")
    p.add_argument("--window-ev", nargs=2, type=float, default=(54.0, 70.0), metavar=("LO", "HI"), dest="window",
                   help="Li-K window in eV without references (default 54 70)")
    add_alias(p, "--window", new="--window-ev", dest="window", nargs=2, type=float)
    p.add_argument("--pre-edge-ev", nargs=2, type=float, default=(40.0, 52.0), metavar=("LO", "HI"), dest="pre_edge",
                   help="pre-edge background fit window in eV (default 40 52)")
    add_alias(p, "--pre-edge", new="--pre-edge-ev", dest="pre_edge", nargs=2, type=float)
    p.add_argument("--plural-scattering", choices=("auto", "fourier-log", "convolve", "none"), default="auto",
                   help="line scans recorded with their zero-loss peak: deconvolve each position by it first "
                        "(fourier-log) so that the profile does not mirror thickness; auto (default): fourier-log "
                        "when the energy axis holds a zero-loss peak, else none")
    p.add_argument("--fit-range", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="MLLS fit window in eV with --refs (default 45 eV to the end with plural scattering, "
                        "else the whole axis)")
    add_out(p, suffixes=SUFFIXES, what="output profile (Li, Li_std over position; also under the older names li, "
                                       "li_std); OUT.png beside it")
    add_var(p, default_hint="the only variable, or 'linescan'")
    add_reader(p)
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    with naming(data=("INPUT", args.input), si=("INPUT", args.input), references=("--refs", args.refs)):
        return _run(args)


def _run(args) -> int:
    import numpy as np

    from .. import eels
    from ..io import load
    from ..report import save_figure
    from ..report import style, subplots, with_sigma

    out = check_out(args)
    data = load_input(args.input, var=args.var, prefer=("linescan", "data"), reader=args.reader, what="line scan")
    if data.ndim != 2 or "energy" not in data.dims:  # one axis along the line, one of energy loss
        need_dims(data, args.input, option="INPUT", need=("position", "energy"), what="a line scan",
                  hint=" (one spectrum per position; make one with `ionscope simulate linescan`)")
    refs = load(args.refs).compute() if args.refs else None
    if refs is not None:
        need_dims(refs, args.refs, option="--refs", need=("component", "energy"), what="reference spectra")
    import warnings

    ps = None if args.plural_scattering == "none" else args.plural_scattering
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof = eels.li_profile(data, references=refs, component=args.component, window=tuple(args.window),
                               pre_edge=tuple(args.pre_edge), plural_scattering=ps,
                               fit_range=tuple(args.fit_range) if args.fit_range else None)
        width = eels.layer_width(prof)
    import sys

    for w in caught:  # the fit's own warnings (no convergence, zero σ) must reach the user, even with --quiet
        if not any(p in str(w.message) for p in width["problems"]):  # those are printed below, once
            print(f"warning: {w.message}", file=sys.stderr)
    for k in ("width_nm", "width_std_nm", "interface_nm", "interface_std_nm", "amplitude", "amplitude_std"):
        prof.attrs[k] = width[k]
    prof.attrs["width_resolved"] = int(width.get("resolved", True))
    for k in ("width_interval_nm", "width_interval95_nm"):
        if k in width:
            prof.attrs[k] = list(width[k])
    prof.attrs["fit_warnings"] = "; ".join(width["problems"])
    from ..io import save

    keep_acquisition(prof, data)
    save(prof, out)
    dim = prof.li.dims[0]
    x = prof[dim].values if dim in prof.coords else range(prof.li.size)
    problems = width["problems"]
    fig, ax = subplots(figsize=(6, 3.2 + 0.25 * len(problems)), layout="constrained")
    with style():
        ax.errorbar(x, prof.li.values, yerr=prof.li_std.values, fmt=".", ms=3, lw=0.6, label="Li-K")
        ax.plot(x, width["fit"], "r-", lw=1.2, label="layer fit" if problems else
                f"layer {with_sigma(width['width_nm'], width['width_std_nm'], unit='nm')}")
        ax.set_xlabel(f"{dim} (nm)")
        single = prof.attrs.get("plural_scattering", "None") not in ("None", None)
        ax.set_ylabel(("Li-K intensity (single-scattering counts, ± 1σ)" if single
                       else "Li-K intensity (counts, ± 1σ)") if refs is None
                      else f"{args.component} weight (× reference, ± 1σ)")
        ax.legend(fontsize=8)
        if problems:  # the figure says it too
            ax.set_title("\n".join(problems), fontsize=7, color="#b00", loc="left")
    png = save_figure(fig, out.with_suffix(".png"))
    if width.get("resolved", True):
        said = f"layer width {width['width_nm']:.2f} ± {width['width_std_nm']:.2f} nm"
    else:  # a number the data do not constrain must not read as a measurement
        lo, hi = width.get("width_interval95_nm", (np.nan, np.nan))
        said = f"layer width not resolved (95 % interval {lo:.1f}–{hi:.1f} nm)"
    say(args, f"{said}, interface at {width['interface_nm']:.2f} ± {width['interface_std_nm']:.2f} nm",
        f"wrote {out} and {png}")
    import sys

    for problem in problems:  # a fit that found no layer must not read as a measurement
        print(f"warning: {args.input}: {problem}", file=sys.stderr)
    return 0
