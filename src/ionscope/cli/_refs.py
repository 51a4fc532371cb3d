# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope refs``: write the reference file (``refs.nc``) that ``limap``, ``run`` and ``mva`` take.

Two sources:

- ``ionscope refs regions SI --region NAME=Y0:Y1,X0:X1 --composition NAME:Li=1,Co=1 ... -o refs.nc``:
  references measured on the data (regions of known composition; deconvolved
  from each spectrum's own zero-loss peak by default).
- ``ionscope refs model --kind li-co|co-l --energy LO HI STEP -o refs.nc``: the
  simulator's model shapes (for simulated data and tests; real data need
  measured references).
"""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("refs", help="make a reference-spectra file (refs.nc) from regions of the data or models")
    rs = p.add_subparsers(dest="source", metavar="SOURCE")
    rs.required = True
    r = rs.add_parser("regions", help="references measured on regions of known composition of a spectrum image")
    r.add_argument("input", metavar="SI", help="spectrum image with its zero-loss peak (.dm4/.hspy/.zarr/.nc ...)")
    r.add_argument("--region", action="append", required=True, metavar="NAME=Y0:Y1,X0:X1",
                   help="a rectangular region in pixel indices (end excluded); repeat for each region")
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
    r.add_argument("--reader", help="force a rosettasciio plugin, e.g. HSPY")
    r.add_argument("-o", "--out", required=True, metavar="OUT.nc", help="output NetCDF file (.nc)")
    r.set_defaults(handler=run_regions)
    m = rs.add_parser("model", help="the simulator's model reference shapes (simulated data, tests)")
    m.add_argument("--kind", choices=("li-co", "li-co-realistic", "co-l"), default="li-co",
                   help="li-co: smooth Li-K + Co-M2,3 of physics='ideal'; li-co-realistic: single-scattering "
                        "shapes with fine structure of physics='realistic'; co-l: LiCoO2 and Co3O4 Co-L2,3")
    m.add_argument("--energy", nargs=3, type=float, metavar=("LO_EV", "HI_EV", "STEP_EV"),
                   help="energy axis in eV (default 30 132 0.1 for li-co, -5 97.4 0.1 realistic, 760 820 0.25 co-l)")
    m.add_argument("-o", "--out", required=True, metavar="OUT.nc", help="output NetCDF file (.nc)")
    m.set_defaults(handler=run_model)


def _check_out(path: str) -> Path:
    from ..errors import DataValidationError

    out = Path(path)
    if out.suffix.lower() != ".nc":
        raise DataValidationError(f"--out {path}: references are written as NetCDF; use a name ending in .nc")
    return out


def _rectangle(spec: str, shape):
    import numpy as np

    from ..errors import DataValidationError

    try:
        name, box = spec.split("=", 1)
        ys, xs = box.split(",")
        y0, y1 = (int(v) for v in ys.split(":"))
        x0, x1 = (int(v) for v in xs.split(":"))
    except ValueError:
        raise DataValidationError(f"--region {spec!r}: expected NAME=Y0:Y1,X0:X1 (pixel indices)") from None
    ny, nx = shape
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise DataValidationError(f"--region {spec!r}: outside the image of {ny}×{nx} pixels")
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
    import xarray as xr

    from .. import eels
    from ..errors import DataValidationError
    from ..io import load, save

    out = _check_out(args.out)
    si = load(args.input, lazy=True, reader=args.reader)
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
    refs = eels.references_from_regions(
        si, regions, composition, fit_range=tuple(args.fit_range),
        background_range=tuple(args.background_range) if args.background_range else None,
        plural_scattering=None if args.plural_scattering == "none" else args.plural_scattering)
    save(refs, out)
    print(f"wrote {out}: components {list(map(str, refs.component.values))}, "
          f"{refs.energy.values[0]:g}–{refs.energy.values[-1]:g} eV, condition number "
          f"{refs.attrs['condition_number']:.1f}")
    return 0


def run_model(args) -> int:
    import numpy as np

    from ..io import save

    out = _check_out(args.out)
    defaults = {"li-co": (30.0, 132.0, 0.1), "li-co-realistic": (-5.0, 97.4, 0.1), "co-l": (760.0, 820.0, 0.25)}
    lo, hi, step = args.energy if args.energy else defaults[args.kind]
    from ..errors import DataValidationError

    if not (step > 0 and hi > lo + 8 * step):
        raise DataValidationError(f"--energy {lo:g} {hi:g} {step:g}: expected LO < HI and STEP > 0 (eV)")
    e = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)))
    if args.kind == "li-co":
        from ..simulate import edge_references

        refs = edge_references(e[e > 0])
    elif args.kind == "co-l":
        from ..simulate import co_l_references

        refs = co_l_references(e[e > 0])
    else:
        from ..data import calibrated
        from ..simulate._realistic import true_references

        refs = calibrated(true_references(e), ("component", "energy"), coords={"component": ["Li", "Co"], "energy": e},
                          name="references", attrs={"signal_type": "EELS",
                                                    "title": "single-scattering Li-K and Co-M2,3 model shapes"})
    save(refs, out)
    print(f"wrote {out}: {args.kind} model references, {float(refs.energy[0]):g}–{float(refs.energy[-1]):g} eV")
    return 0
