# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope refs``: reference spectra files (the ``--refs`` of limap, linescan, mva and ``[limap] references``).

Two sources:

- ``ionscope refs regions SI --region-px NAME=Y0:Y1,X0:X1 --composition NAME:Li=1,Co=1 ... -o refs.nc``:
  references measured on the data (regions of known composition; deconvolved
  from each spectrum's own zero-loss peak by default) — what real data need.
- ``ionscope refs --kind li-co|li-co-realistic|co-l [--like FILE | --energy ...] -o refs.nc``: the
  simulator's model shapes, for simulated data and tests.
"""
from __future__ import annotations

from ._common import add_alias, add_out, add_progress, add_reader, add_var, check_out, load_input, say

SUFFIXES = (".nc", ".zarr")


def register(sub) -> None:
    p = sub.add_parser("refs", help="write reference spectra (component, energy) for --refs",
                       description="Write a (component, energy) reference file for `limap --refs`, `linescan "
                                   "--refs`, `mva --refs` and `[limap] references`. `ionscope refs regions SI ...` "
                                   "measures them on regions of known composition of your data (real data); "
                                   "without a sub-command the simulator's model edges are written (Li-K + "
                                   "Co-M2,3, or Co-L2,3 of LiCoO2 + Co3O4), on the energy axis of your data "
                                   "(--like) or on a given grid (--energy).")
    p.add_argument("--kind", choices=("li-co", "li-co-realistic", "co-l"), default="li-co",
                   help="li-co: smooth Li-K and Co-M2,3 model edges of physics='ideal' (30-132 eV; default); "
                        "li-co-realistic: the single-scattering shapes with fine structure of physics='realistic' "
                        "(-5-97.4 eV); co-l: Co-L2,3 of LiCoO2 and Co3O4 (760-820 eV)")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--like", metavar="FILE",
                      help="use the energy axis (eV) of this spectrum image / series / line scan")
    grid.add_argument("--energy", nargs=3, type=float, metavar=("START", "STOP", "STEP"),
                      help="energy grid in eV (default: 30 132 0.1 for li-co, -5 97.4 0.1 for li-co-realistic, "
                           "760 820 0.25 for co-l)")
    add_var(p, default_hint="the only variable, or 'si'")
    add_out(p, suffixes=SUFFIXES, what="output reference file", required=False)
    add_progress(p)
    p.set_defaults(handler=run)
    rs = p.add_subparsers(dest="source", metavar="SOURCE")
    rs.required = False
    r = rs.add_parser("regions", help="references measured on regions of known composition of a spectrum image",
                      description="Average each region's spectra, deconvolve them from their own zero-loss peak, "
                                  "normalise per unit I0·t/λ, remove a power-law background and unmix the regions "
                                  "into per-component shapes (eels.references_from_regions).")
    r.add_argument("input", metavar="SI", help="spectrum image with its zero-loss peak (.dm4/.hspy/.zarr/.nc ...)")
    r.add_argument("--region-px", action="append", dest="region", metavar="NAME=Y0:Y1,X0:X1",
                   help="a rectangular region in pixel indices (end excluded); repeat for each region (required)")
    add_alias(r, "--region", new="--region-px", dest="region", append=True, metavar="NAME=Y0:Y1,X0:X1")
    r.add_argument("--composition", action="append", required=True, metavar="NAME:COMP=AMOUNT,...",
                   help="amounts per formula unit in a region, e.g. pristine:Li=1,Co=1 (repeat per region); "
                        "name Li-K shapes differently (Li_rich, Li_poor) to measure several")
    r.add_argument("--fit-range", nargs=2, type=float, required=True, metavar=("LO_EV", "HI_EV"),
                   help="energy range of the references in eV (the MLLS window, e.g. 45 85)")
    r.add_argument("--background-range", nargs=2, type=float, metavar=("LO_EV", "HI_EV"),
                   help="pre-edge window in eV for the power-law background (default: 8 eV from LO_EV)")
    r.add_argument("--plural-scattering", choices=("fourier-log", "none"), default="fourier-log",
                   help="deconvolve each spectrum from its own zero-loss peak first (default fourier-log)")
    r.add_argument("--frame", type=int, metavar="T",
                   help="for a time series: use this frame only (default: all frames)")
    r.add_argument("--chemical-shift", default=None, metavar="measure|open|off|EV",
                   help="with two regions of Li and one host, the Li-K shift between the regions' x: 'measure' it "
                        "now on SI and store it in OUT (default; then `ionscope run` and `watch` fit each pixel's "
                        "own Li-K shape), leave it 'open' (`limap` and eels.mlls measure it on their input; `run` "
                        "and `watch` on the night's first usable frame, [limap] chemical_shift), 'off' (the two "
                        "rows as given), or a shift in eV of either sign if known")
    add_reader(r)
    add_var(r, default_hint="the only variable, or 'si'")
    add_out(r, suffixes=SUFFIXES, what="output reference file")
    add_progress(r)
    r.set_defaults(handler=run_regions)


def run(args) -> int:
    import numpy as np

    from ..errors import DataValidationError
    from ..io import save

    if not args.out:
        raise DataValidationError("refs: -o/--out is required (the reference file to write)")
    out = check_out(args)
    if args.like:
        data = load_input(args.like, var=args.var, prefer=("si", "data"), lazy=True, what="spectrum image")
        if "energy" not in data.coords:
            raise DataValidationError(f"--like {args.like}: no calibrated energy axis (dims {tuple(data.dims)})")
        energy = np.asarray(data.energy.values, float)
    else:
        defaults = {"li-co": (30.0, 132.0, 0.1), "li-co-realistic": (-5.0, 97.4, 0.1), "co-l": (760.0, 820.0, 0.25)}
        lo, hi, step = args.energy or defaults[args.kind]
        if not (step > 0 and hi > lo):
            raise DataValidationError(f"--energy {lo} {hi} {step}: expected START < STOP and STEP > 0 (eV)")
        energy = np.arange(lo, hi + step / 2, step)
    if args.kind == "li-co-realistic":
        from ..simulate import realistic_references

        refs = realistic_references(energy)
    else:
        from ..simulate import co_l_references, edge_references

        if energy.min() <= 0:
            energy = energy[energy > 0]  # the model edges are defined for energy losses > 0
        refs = (edge_references if args.kind == "li-co" else co_l_references)(energy)
    refs.name = "references"
    refs.attrs.setdefault("source", f"ionscope.simulate ({args.kind} model edges)")
    save(refs, out)
    names = ", ".join(map(str, refs.component.values))
    say(args, f"wrote {out}: components {names}, {energy.size} channels {energy[0]:.4g}..{energy[-1]:.4g} eV")
    return 0


def _rectangle(spec: str, shape):
    import numpy as np

    from ..errors import DataValidationError

    try:
        name, box = spec.split("=", 1)
        ys, xs = box.split(",")
        y0, y1 = (int(v) for v in ys.split(":"))
        x0, x1 = (int(v) for v in xs.split(":"))
    except ValueError:
        raise DataValidationError(f"--region-px {spec!r}: expected NAME=Y0:Y1,X0:X1 (pixel indices)") from None
    ny, nx = shape
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise DataValidationError(f"--region-px {spec!r}: outside the image of {ny}×{nx} pixels")
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return name.strip(), mask


def _composition(spec: str):
    from ..errors import DataValidationError

    try:
        name, rest = spec.split(":", 1)
        amounts = {}
        for item in rest.split(","):
            comp, value = item.split("=")
            amounts[comp.strip()] = float(value)
    except ValueError:
        raise DataValidationError(f"--composition {spec!r}: expected NAME:COMP=AMOUNT,... e.g. pristine:Li=1,Co=1") \
            from None
    return name.strip(), amounts


def run_regions(args) -> int:
    import numpy as np
    import xarray as xr

    from .. import eels
    from ..errors import DataValidationError
    from ..io import save

    out = check_out(args)
    if not args.region:
        raise DataValidationError("refs regions: give each region with --region-px NAME=Y0:Y1,X0:X1 (pixel indices)")
    si = load_input(args.input, var=args.var, prefer=("si", "data"), reader=args.reader, lazy=True,
                    what="spectrum image")
    if "energy" not in si.dims or not {"y", "x"} <= set(si.dims):
        raise DataValidationError(f"{args.input}: expected a spectrum image with dims (y, x, energy), got {si.dims}")
    if args.frame is not None:
        if "time" not in si.dims or not 0 <= args.frame < si.sizes["time"]:
            raise DataValidationError(f"--frame {args.frame}: {args.input} has no such frame")
        si = si.isel(time=args.frame)
    shape = (si.sizes["y"], si.sizes["x"])
    regions = {}
    for spec in args.region:
        name, mask = _rectangle(spec, shape)
        regions[name] = xr.DataArray(mask, dims=("y", "x"))
    composition = dict(_composition(c) for c in args.composition)
    shift = _shift_option("measure" if args.chemical_shift is None else args.chemical_shift)
    if args.chemical_shift is not None and args.plural_scattering == "none" and shift != "off":
        raise DataValidationError(f"--chemical-shift {args.chemical_shift}: the Li-K shift model needs "
                                  "--plural-scattering fourier-log (references of deconvolved spectra)")
    refs = eels.references_from_regions(
        si, regions, composition, fit_range=tuple(args.fit_range),
        background_range=tuple(args.background_range) if args.background_range else None,
        plural_scattering=None if args.plural_scattering == "none" else args.plural_scattering,
        chemical_shift="auto" if shift in ("measure", "open") else shift)
    said = ""
    if shift == "measure" and refs.attrs.get("li_k_shift_components") and not np.isfinite(refs.attrs["li_k_shift_ev"]):
        refs = _measure_shift(si, refs, tuple(args.fit_range), args.input)
        said = f", Li-K shift between the regions {refs.attrs['li_k_shift_ev']:+.2f} eV (measured on SI)"
    save(refs, out)
    say(args, f"wrote {out}: components {list(map(str, refs.component.values))}, "
              f"{refs.energy.values[0]:g}–{refs.energy.values[-1]:g} eV, condition number "
              f"{refs.attrs['condition_number']:.1f}{said}")
    return 0


def _shift_option(value: str):
    """``--chemical-shift``: 'measure', 'open', 'off' or a finite number of eV."""
    import numpy as np

    from ..errors import DataValidationError

    if value in ("measure", "open", "off"):
        return value
    try:
        shift = float(value)
    except ValueError:
        shift = float("nan")
    if not np.isfinite(shift):
        raise DataValidationError(f"--chemical-shift: expected measure, open, off or a shift in eV, got {value!r}")
    return shift


def _measure_shift(si, refs, fit_range, name):
    """``refs`` with the Li-K shift its regions leave open measured on ``si`` and stored (the frames
    :func:`ionscope.eels.mlls` would measure it on are fitted once: the search is most of the cost).

    Why here: ``ionscope run`` and ``watch`` build their fit once, before any frame is fitted, and a live
    session's rows are reused by the final run, so the shift must be fixed for the whole night — measured
    once, on the data the regions come from (as :func:`ionscope.eels.mlls` measures it: whole frames of at
    most 4096 pixels in all, evenly spread over a series)."""
    from .. import eels
    from ..eels import _li_shift

    sub = si
    if "time" in si.dims:
        sub = si.isel(time=_li_shift.probe_frame_index(si.sizes["time"], si.sizes["y"] * si.sizes["x"]))
    maps = eels.mlls(sub, refs, fit_range=fit_range, plural_scattering="fourier-log")
    delta = float(maps.attrs["li_k_shift_ev"])
    scan = _li_shift.DELTA_SCAN_EV
    if not scan[0] < delta < scan[-1]:
        import sys

        # the χ² had no minimum inside the searched range: the data (or the regions' compositions) do not
        # determine the shift, and a stored bound would read as a measurement (said even with -q)
        print(f"ionscope refs: warning: {name}: the Li-K shift measured between the regions, {delta:+.2f} eV, lies "
              f"at the end of the searched range ({scan[0]:g}…{scan[-1]:g} eV): the data do not determine it; "
              "check the regions' compositions, or give the shift with --chemical-shift EV (or 'open'/'off')",
              file=sys.stderr)
    out = refs.copy()
    out.attrs["li_k_shift_ev"] = delta
    out.attrs["li_k_shift_measured_on"] = f"{name} ({sub.sizes.get('time', 1)} frame(s), by ionscope refs regions)"
    return out
