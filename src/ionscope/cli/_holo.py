# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope holo reconstruct|phase-shift|profile``: electron holography from the shell."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("holo", help="electron holography: reconstruct waves, phase shifting, interface profiles")
    hs = p.add_subparsers(dest="holo_command", metavar="ACTION")
    hs.required = True

    r = hs.add_parser("reconstruct", help="Fourier (sideband) reconstruction of a hologram (or stack)")
    r.add_argument("hologram", metavar="HOLOGRAM")
    r.add_argument("--reference", metavar="FILE", help="vacuum reference hologram")
    r.add_argument("--sideband", nargs=2, type=float, metavar=("QY", "QX"), help="carrier in cycles/px")
    r.add_argument("--aperture", type=float, metavar="R", help="aperture radius in cycles/px (default |q|/3)")
    r.add_argument("--full-size", action="store_true", help="output on the hologram's grid (default: cropped)")
    r.add_argument("--flip-sign", action="store_true", help="conjugate (object on the other biprism side)")
    r.add_argument("--reader", help="force a rosettasciio plugin, e.g. HSPY")
    r.add_argument("-o", "--out", required=True, metavar="FILE", help="output wave (.nc or .zarr, complex)")
    r.set_defaults(handler=run_reconstruct)

    s = hs.add_parser("phase-shift", help="phase-shifting reconstruction from a (frame, y, x) series")
    s.add_argument("holograms", metavar="SERIES")
    s.add_argument("--references", metavar="FILE", help="vacuum reference series")
    s.add_argument("--sideband", nargs=2, type=float, metavar=("QY", "QX"))
    s.add_argument("--no-register", action="store_true",
                   help="do not estimate and undo the specimen (image) drift between frames")
    s.add_argument("--reader", help="force a rosettasciio plugin")
    s.add_argument("-o", "--out", required=True, metavar="FILE", help="output wave (.nc or .zarr)")
    s.set_defaults(handler=run_phase_shift)

    f = hs.add_parser("profile", help="line profile across an interface and a step fit")
    f.add_argument("image", metavar="FILE", help="wave (complex), phase or potential map")
    f.add_argument("--start", nargs=2, type=float, required=True, metavar=("Y", "X"), help="nm (px if uncalibrated)")
    f.add_argument("--end", nargs=2, type=float, required=True, metavar=("Y", "X"))
    f.add_argument("--width", type=float, default=1.0, help="averaging width across the line")
    f.add_argument("--model", choices=("erf", "tanh"), default="erf")
    f.add_argument("--voltage-kv", type=float, help="convert phase to potential (with --thickness-nm)")
    f.add_argument("--thickness-nm", type=float)
    f.add_argument("--reader", help="force a rosettasciio plugin")
    f.set_defaults(handler=run_profile)


def _save(wave, out):
    from ..io import save

    save(wave, out)
    print(f"wrote {out}")


def run_reconstruct(args) -> int:
    import numpy as np

    from ..holography import reconstruct
    from ..io import load

    holo = load(args.hologram, reader=args.reader)
    ref = load(args.reference, reader=args.reader) if args.reference else None
    wave = reconstruct(holo, ref, sideband=args.sideband, aperture=args.aperture, full_size=args.full_size,
                       flip_sign=args.flip_sign)
    qy, qx = wave.attrs["carrier_cycles_per_px"]
    print(f"carrier (qy, qx) = ({qy:.5f}, {qx:.5f}) cycles/px, fringe spacing "
          f"{wave.attrs['fringe_spacing_px']:.3f} px, aperture {wave.attrs['aperture_cycles_per_px']:.4f} cycles/px")
    print(f"output {dict(wave.sizes)}, phase range [{float(np.angle(wave).min()):.3f}, "
          f"{float(np.angle(wave).max()):.3f}] rad (wrapped)")
    _save(wave, args.out)
    return 0


def run_phase_shift(args) -> int:
    from ..holography import phase_shifting
    from ..io import load

    holos = load(args.holograms, reader=args.reader)
    refs = load(args.references, reader=args.reader) if args.references else None
    wave, est = phase_shifting(holos, references=refs, sideband=args.sideband, register=not args.no_register)
    for k in range(est.sizes[next(iter(est.dims))]):
        line = (f"frame {k:3d}: shift {float(est['shift'][k]):+.4f} ± {float(est['uncertainty'][k]):.4f} rad, "
                f"drift (y, x) ({float(est['drift_y'][k]):+.2f}, {float(est['drift_x'][k]):+.2f}) px")
        if "reference_shift" in est:
            line += f"   reference {float(est['reference_shift'][k]):+.4f} ± {float(est['reference_uncertainty'][k]):.4f}"
        print(line)
    _save(wave, args.out)
    return 0


def run_profile(args) -> int:
    from ..errors import DataValidationError
    from ..holography import fit_step, line_profile, to_potential, unwrap_phase
    from ..io import load

    img = load(args.image, reader=args.reader)
    if img.dtype.kind == "c":
        img = unwrap_phase(img)
    if (args.voltage_kv is None) != (args.thickness_nm is None):
        raise DataValidationError("--voltage-kv and --thickness-nm: give both to convert phase to potential")
    if args.voltage_kv is not None:
        img = to_potential(img, voltage_kv=args.voltage_kv, thickness_nm=args.thickness_nm)
    prof = line_profile(img, start=args.start, end=args.end, width=args.width)
    fit = fit_step(prof, model=args.model)
    print(json.dumps({"profile_points": int(prof.size), **fit.to_dict()}, indent=2))
    return 0
