# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope holo reconstruct|phase-shift|profile``: electron holography from the shell."""
from __future__ import annotations

import json
from pathlib import Path

from ._common import add_alias, add_out, add_progress, add_reader, add_vacuum, add_var, check_out, load_input, naming, say

WAVE_SUFFIXES = (".nc", ".zarr")


def register(sub) -> None:
    p = sub.add_parser("holo", help="electron holography: reconstruct waves, phase shifting, interface profiles")
    hs = p.add_subparsers(dest="holo_command", metavar="ACTION")
    hs.required = True

    r = hs.add_parser("reconstruct", help="Fourier (sideband) reconstruction of a hologram (or stack)",
                      description="Sideband (Fourier) reconstruction of an off-axis hologram (y, x) or a stack "
                                  "(frame|time, y, x). Writes the complex wave and phase/amplitude PNG previews.")
    r.add_argument("hologram", metavar="HOLOGRAM", help="hologram (y, x) or stack, counts (.hdf5/.dm4/.nc/.zarr ...)")
    add_vacuum(r, what="vacuum reference hologram (same size), to remove the biprism and camera distortions "
                        "(old spelling: --refs)", old=("--refs", "--reference"))
    add_var(r, default_hint="the only variable, or 'hologram'")
    r.add_argument("--sideband", nargs=2, type=float, metavar=("QY", "QX"),
                   help="carrier frequency in cycles/px (default: found automatically)")
    r.add_argument("--aperture", type=float, metavar="R", help="aperture radius in cycles/px (default |q|/3)")
    r.add_argument("--full-size", action="store_true", help="output on the hologram's grid (default: cropped)")
    r.add_argument("--flip-sign", action="store_true", help="conjugate (object on the other biprism side)")
    r.add_argument("--no-preview", action="store_true", help="do not write OUT_phase.png / OUT_amplitude.png")
    add_reader(r)
    add_out(r, suffixes=WAVE_SUFFIXES, what="output complex wave")
    add_progress(r)
    r.set_defaults(handler=run_reconstruct)

    s = hs.add_parser("phase-shift", help="phase-shifting reconstruction from a (frame, y, x) series",
                      description="Phase-shifting holography: the phase shift of each frame is estimated (with 1σ) "
                                  "and the wave solved at full resolution.")
    s.add_argument("holograms", metavar="SERIES", help="hologram series (frame|time, y, x), counts")
    add_vacuum(s, what="vacuum reference series (same frames) (old spelling: --refs)", old=("--refs", "--references"))
    add_var(s, default_hint="the only variable, or 'holograms'")
    s.add_argument("--sideband", nargs=2, type=float, metavar=("QY", "QX"),
                   help="carrier frequency in cycles/px (default: found automatically)")
    s.add_argument("--no-register", action="store_true",
                   help="do not estimate and undo the specimen (image) drift between frames")
    s.add_argument("--no-preview", action="store_true", help="do not write OUT_phase.png / OUT_amplitude.png")
    add_reader(s)
    add_out(s, suffixes=WAVE_SUFFIXES, what="output complex wave")
    add_progress(s)
    s.set_defaults(handler=run_phase_shift)

    f = hs.add_parser("profile", help="line profile across an interface and a step fit",
                      description="Average a line profile across an interface and fit a step (erf/tanh): the "
                                  "step height (rad, or V with --thickness-nm), its 10-90 % width and "
                                  "centre (nm), with 1σ. Points and lengths are given in nm (-nm options: the "
                                  "image's own coordinates, offset included, as `ionscope info` prints the y/x "
                                  "axes; --origin corner counts from the top-left pixel instead) or in pixels "
                                  "(-px options: indices from the top-left pixel). The fit goes to stdout as JSON "
                                  "(with units). On one hologram the step is the whole change across the "
                                  "interface: the mean inner potentials of the two sides (and any change of "
                                  "thickness) plus the space-charge step; only the difference of two bias states "
                                  "(`ionscope run` with a [holography] section, or holography.bias_series) isolates the "
                                  "space-charge step.")
    f.add_argument("image", metavar="FILE", help="wave (complex: unwrapped here), phase (rad) or potential (V) map")
    for what in ("start", "end"):
        f.add_argument(f"--{what}-nm", nargs=2, type=float, metavar=("Y", "X"), help=f"line {what} in nm, see --origin")
        f.add_argument(f"--{what}-px", nargs=2, type=float, metavar=("Y", "X"),
                       help=f"line {what} in pixels (row, column from the top-left pixel)")
        # the old spelling: nm, or pixels on an uncalibrated image
        add_alias(f, f"--{what}", new=f"--{what}-nm or --{what}-px", dest=what, nargs=2, type=float)
    f.add_argument("--width-nm", type=float, metavar="W", help="averaging width across the line in nm (default 1 nm; "
                                                              "1 px on an image without nm calibration)")
    f.add_argument("--width-px", type=float, metavar="W", help="averaging width across the line in pixels")
    add_alias(f, "--width", new="--width-nm or --width-px", dest="width", type=float)
    f.add_argument("--origin", choices=("image", "corner"), default="image",
                   help="image: coordinates as stored in the file, offset included (default); "
                        "corner: nm from the centre of the top-left pixel")
    f.add_argument("--model", choices=("erf", "tanh"), default="erf", help="step model (default erf)")
    f.add_argument("--ramp-box-nm", nargs=4, type=float, metavar=("Y0", "X0", "Y1", "X1"), dest="ramp_box",
                   help="remove a phase ramp (plane) fitted over this box of vacuum, nm (same origin)")
    add_alias(f, "--ramp-box", new="--ramp-box-nm", dest="ramp_box", nargs=4, type=float)
    f.add_argument("--ramp-mask", metavar="MASK",
                   help="remove a phase ramp fitted where this (y, x) boolean file is true (vacuum)")
    f.add_argument("--ramp-order", type=int, choices=(1, 2), default=1, help="ramp polynomial order (default 1)")
    f.add_argument("--thickness-nm", type=float, metavar="T",
                   help="specimen thickness in nm: convert phase to potential V = φ/(C_E·t)")
    f.add_argument("--voltage-kv", type=float, metavar="KV",
                   help="accelerating voltage in kV for --thickness-nm (default: the file's beam_energy_kv; a value "
                        "that contradicts the file is refused)")
    add_var(f, default_hint="the only variable, or phase/potential/wave")
    add_reader(f)
    f.add_argument("-o", "--out", metavar="OUT.json",
                   help="also write the fit as JSON, with OUT.png (profile and fit) beside it")
    add_progress(f)
    f.set_defaults(handler=run_profile, out_suffixes=(".json",))


def _save(args, wave, out):
    from ..io import save

    save(wave, out)
    if not getattr(args, "no_preview", False):
        out_png = _previews(wave, Path(out))
        say(args, f"wrote {out} and {', '.join(str(p) for p in out_png)}")
    else:
        say(args, f"wrote {out}")


def _previews(wave, out: Path) -> list[Path]:
    """Unwrapped phase (rad) and amplitude PNGs of a wave (first frame of a stack)."""
    import numpy as np

    from ..holography import unwrap_phase
    from ..report import save_figure
    from ..report import colour_bar, colour_scale, image, style, subplots

    w = wave
    while w.ndim > 2:
        w = w.isel({w.dims[0]: 0})
    files = []
    for kind, values, label, cmap in (
            ("phase", unwrap_phase(w), "phase (rad, unwrapped)", "twilight_shifted"),
            ("amplitude", np.abs(w), "amplitude (relative to the reference)", "gray")):
        fig, ax = subplots(figsize=(5, 5 * w.sizes["y"] / w.sizes["x"] + 0.6), layout="constrained")
        sc = colour_scale(getattr(values, "values", values), percentiles=(0.5, 99.5))
        with style():
            im = image(ax, values, cmap=cmap if kind == "amplitude" else "viridis", vmin=sc.vmin, vmax=sc.vmax)
            colour_bar(fig, im, sc, ax=ax, shrink=0.85, label=label)
            ax.set_title(f"{out.stem}: {kind}")
        files.append(save_figure(fig, out.with_name(f"{out.stem}_{kind}.png")))
    return files


def run_reconstruct(args) -> int:
    with naming(hologram=("HOLOGRAM", args.hologram), reference=("--vacuum", args.vacuum),
                vacuum=("--vacuum", args.vacuum)):
        return _run_reconstruct(args)


def _run_reconstruct(args) -> int:
    import numpy as np

    from ..errors import ShapeMismatchError
    from ..holography import reconstruct

    out = check_out(args)
    holo = load_input(args.hologram, var=args.var, prefer=("hologram", "holograms", "data"), reader=args.reader,
                      what="hologram")
    ref = load_input(args.vacuum, prefer=("hologram", "reference", "vacuum", "data"), reader=args.reader,
                     what="vacuum hologram") if args.vacuum else None
    for da, path, option in ((holo, args.hologram, "HOLOGRAM"), (ref, args.vacuum, "--vacuum")):
        if da is not None and ("energy" in da.dims or not {"y", "x"} <= set(da.dims)):
            raise ShapeMismatchError(f"{path} ({option}): dims {tuple(da.dims)}; expected a hologram (y, x) or a "
                                     "stack (..., y, x) without an energy axis")
    wave = reconstruct(holo, ref, sideband=args.sideband, aperture=args.aperture, full_size=args.full_size,
                       flip_sign=args.flip_sign)
    qy, qx = wave.attrs["carrier_cycles_per_px"]
    say(args, f"carrier (qy, qx) = ({qy:.5f}, {qx:.5f}) cycles/px, fringe spacing "
              f"{wave.attrs['fringe_spacing_px']:.3f} px, aperture {wave.attrs['aperture_cycles_per_px']:.4f} cycles/px",
        f"output {dict(wave.sizes)}, phase range [{float(np.angle(wave).min()):.3f}, "
        f"{float(np.angle(wave).max()):.3f}] rad (wrapped)")
    _save(args, wave, out)
    return 0


def run_phase_shift(args) -> int:
    with naming(holograms=("HOLOGRAMS", args.holograms), references=("--vacuum", args.vacuum),
                vacuum=("--vacuum", args.vacuum)):
        return _run_phase_shift(args)


def _run_phase_shift(args) -> int:
    from ..holography import phase_shifting

    out = check_out(args)
    holos = load_input(args.holograms, var=args.var, prefer=("holograms", "hologram", "data"), reader=args.reader,
                       what="hologram series")
    refs = load_input(args.vacuum, prefer=("holograms", "hologram", "references", "vacuum", "data"),
                      reader=args.reader, what="vacuum series") if args.vacuum else None
    wave, est = phase_shifting(holos, references=refs, sideband=args.sideband, register=not args.no_register)
    for k in range(est.sizes[next(iter(est.dims))]):
        line = (f"frame {k:3d}: shift {float(est['shift'][k]):+.4f} ± {float(est['uncertainty'][k]):.4f} rad, "
                f"drift (y, x) ({float(est['drift_y'][k]):+.2f}, {float(est['drift_x'][k]):+.2f}) px")
        if "reference_shift" in est:
            line += f"   reference {float(est['reference_shift'][k]):+.4f} ± {float(est['reference_uncertainty'][k]):.4f}"
        say(args, line)
    _save(args, wave, out)
    return 0


def _extent(img) -> dict:
    """The image's own y/x range (pixel centres) and unit, for messages and the JSON."""
    import numpy as np

    out = {}
    for d in ("y", "x"):
        if d in img.coords:
            c = np.asarray(img[d].values, float)
            out[d] = [float(c[0]), float(c[-1])]
        else:
            out[d] = [0.0, float(img.sizes[d] - 1)]
    out["unit"] = "nm" if "x" in img.coords else "px"
    return out


def _pixel_to_coord(img, dim: str, index: float) -> float:
    """A (fractional) pixel index along ``dim`` in the image's own coordinates (the index itself if uncalibrated)."""
    import numpy as np

    if dim not in img.coords or img.sizes[dim] < 2:
        return float(index)
    c = np.asarray(img[dim].values, float)
    return float(c[0] + index * (c[-1] - c[0]) / (c.size - 1))


def _point(args, what: str, img, ext, shift, given: dict):
    """``--WHAT-nm`` / ``--WHAT-px`` (or the old ``--WHAT``) as a point in the image's own coordinates."""
    from ..errors import DataValidationError

    nm, px, old = getattr(args, f"{what}_nm"), getattr(args, f"{what}_px"), getattr(args, what)
    chosen = [(n, v) for n, v in ((f"--{what}-nm", nm), (f"--{what}-px", px), (f"--{what}", old)) if v is not None]
    if len(chosen) != 1:
        raise DataValidationError(f"give the line {what} once: --{what}-nm Y X or --{what}-px Y X")
    name, value = chosen[0]
    given[what] = (name, f"{name} {value[0]:g} {value[1]:g}")
    if name.endswith("-px"):
        return (_pixel_to_coord(img, "y", value[0]), _pixel_to_coord(img, "x", value[1]))
    if name.endswith("-nm") and ext["unit"] != "nm":
        raise DataValidationError(f"{name}: {args.image} has no nm calibration; give --{what}-px (pixels)")
    return shift(value)


def _width(args, img, ext, given: dict) -> float:
    """The averaging width in the image's own units (nm; pixels if uncalibrated)."""
    import numpy as np

    from ..errors import DataValidationError

    chosen = [(n, v) for n, v in (("--width-nm", args.width_nm), ("--width-px", args.width_px), ("--width", args.width))
              if v is not None]
    if len(chosen) > 1:
        raise DataValidationError("give the averaging width once: --width-nm W or --width-px W")
    if not chosen:
        return 1.0  # 1 nm (1 px on an uncalibrated image), as always
    name, value = chosen[0]
    given["width"] = (name, f"{name} {value:g}")
    if name == "--width-px" and ext["unit"] == "nm":
        step = abs(float(np.diff(np.asarray(img["x"].values, float)[:2])[0])) if img.sizes["x"] > 1 else 1.0
        return float(value) * step
    if name == "--width-nm" and ext["unit"] != "nm":
        raise DataValidationError(f"--width-nm: {args.image} has no nm calibration; give --width-px (pixels)")
    return float(value)


def run_profile(args) -> int:
    import numpy as np

    from ..errors import DataValidationError
    from ..holography import fit_step, line_profile, remove_ramp, to_potential, unwrap_phase
    from ..io import load

    out = check_out(args) if args.out else None
    img = load_input(args.image, var=args.var, prefer=("phase", "potential", "wave", "phase_difference",
                                                       "potential_difference", "data"),
                     reader=args.reader, what="map")
    if not {"y", "x"} <= set(img.dims) or img.ndim != 2:
        raise DataValidationError(f"{args.image}: expected one (y, x) map (wave, phase or potential), got "
                                  f"{tuple(img.dims)}")
    if args.voltage_kv is not None and args.thickness_nm is None:
        raise DataValidationError("--voltage-kv: give --thickness-nm too to convert phase to potential")
    voltage_kv = None
    if args.thickness_nm is not None:
        from ..io import acquisition_value

        voltage_kv = acquisition_value(img, "beam_energy_kv", args.voltage_kv, argument="--voltage-kv",
                                       source=args.image)
    if args.ramp_box and args.ramp_mask:
        raise DataValidationError("--ramp-box-nm and --ramp-mask: give one of them")
    ext = _extent(img)
    origin = (ext["y"][0], ext["x"][0]) if args.origin == "corner" else (0.0, 0.0)

    def shift(pt):
        return (pt[0] + origin[0], pt[1] + origin[1])

    given = {}
    start, end = (_point(args, what, img, ext, shift, given) for what in ("start", "end"))
    width = _width(args, img, ext, given)
    for what, (py, px) in (("start", start), ("end", end)):
        lo_y, hi_y = sorted(ext["y"])
        lo_x, hi_x = sorted(ext["x"])
        if not (lo_y <= py <= hi_y and lo_x <= px <= hi_x):
            raise DataValidationError(
                f"{given[what][1]} (--origin {args.origin}) lies outside {args.image}: y {ext['y'][0]:g}..{ext['y'][1]:g}, "
                f"x {ext['x'][0]:g}..{ext['x'][1]:g} {ext['unit']} in the image's own coordinates" + (
                    f" (or 0..{hi_y - lo_y:g}, 0..{hi_x - lo_x:g} with --origin corner; pixels 0..{img.sizes['y'] - 1}, "
                    f"0..{img.sizes['x'] - 1} with -px)" if args.origin == "image" else ""))
    quantity, unit = "value", img.attrs.get("units", "")
    if img.dtype.kind == "c":
        img = unwrap_phase(img)
        quantity, unit = "phase", "rad"
    if args.ramp_box or args.ramp_mask:
        if args.ramp_box:
            y0, x0 = shift(args.ramp_box[:2])
            y1, x1 = shift(args.ramp_box[2:])
            yy = img["y"].values if "y" in img.coords else np.arange(img.sizes["y"])
            xx = img["x"].values if "x" in img.coords else np.arange(img.sizes["x"])
            mask = np.outer((yy >= min(y0, y1)) & (yy <= max(y0, y1)), (xx >= min(x0, x1)) & (xx <= max(x0, x1)))
            if mask.sum() < 3:
                raise DataValidationError(f"--ramp-box: the box holds {int(mask.sum())} pixel(s); a ramp needs "
                                          "at least 3 (coordinates as for --start/--end)")
        else:
            mask = np.asarray(load(args.ramp_mask).values).astype(bool)
        img = remove_ramp(img.transpose("y", "x"), mask=mask, order=args.ramp_order)
    if args.thickness_nm is not None:
        img = to_potential(img, voltage_kv=voltage_kv, thickness_nm=args.thickness_nm)
        quantity, unit = "potential", "V"
    prof = line_profile(img, start=start, end=end, width=width)
    fit = fit_step(prof, model=args.model)
    pos_unit = ext["unit"]
    result = {"profile_points": int(prof.size), **fit.to_dict(),
              "quantity": quantity,
              "units": {"step": unit, "step_err": unit, "offset": unit, "offset_err": unit, "residual_rms": unit,
                        "width": pos_unit, "width_err": pos_unit, "center": pos_unit, "center_err": pos_unit},
              "center_meaning": "distance along the line from --start",
              # a single state cannot separate what makes the step: say so where the number is read
              "step_meaning": ("the whole change across the line: on one hologram the mean-inner-potential "
                               "difference of the two sides (and any thickness change) plus the space-charge "
                               "step; a difference of two bias states isolates the space-charge step"),
              "start": list(start), "end": list(end), "width_across": width,
              "given": {k: v[1] for k, v in given.items()},
              "voltage_kv": voltage_kv, "thickness_nm": args.thickness_nm,
              "coordinates": (f"{pos_unit} in the image's own coordinates (offset included)" if args.origin == "image"
                              else f"{pos_unit} from the top-left pixel centre"),
              "image_extent": ext, "model": args.model,
              "ramp_removed": bool(args.ramp_box or args.ramp_mask)}
    text = json.dumps(result, indent=2)
    if not args.quiet:
        print(text)
    import sys

    for problem in result["warnings"]:  # a fit that found no step must not read as a measurement
        print(f"warning: {args.image}: {problem}", file=sys.stderr)
    if out is not None:
        from .._atomic import atomic_path

        with atomic_path(out) as tmp:
            tmp.write_text(text + "\n")
        png = _profile_png(prof, fit, out.with_suffix(".png"), quantity=quantity, unit=unit, pos_unit=pos_unit)
        print(f"wrote {out} and {png}", file=sys.stderr)
    return 0


def _profile_png(prof, fit, path: Path, *, quantity, unit, pos_unit) -> Path:
    import numpy as np

    from ..report import save_figure
    from ..report import style, subplots, with_sigma

    x = np.asarray(prof["position"].values, float) if "position" in prof.coords else np.arange(prof.size)
    sem = np.asarray(prof["sem"].values, float) if "sem" in prof.coords else None
    problems = fit.problems()
    fig, ax = subplots(figsize=(6, 3.4 + 0.25 * len(problems)), layout="constrained")
    with style():
        ax.errorbar(x, prof.values, yerr=sem, fmt=".", ms=3, lw=0.6, color="0.3", label="profile ± s.e.m.")
        label = (f"{fit.model} fit: step {with_sigma(fit.step, fit.step_err, unit=unit)}, "
                 f"10–90 % width {with_sigma(fit.width, fit.width_err, unit=pos_unit)}")
        ax.plot(fit.position, fit.fitted, "r-", lw=1.4, label=label if not problems else f"{fit.model} fit")
        if not problems:
            ax.axvline(fit.center, color="r", lw=0.6, ls="--")
        ax.set_xlabel(f"distance along the line ({pos_unit})")
        ax.set_ylabel(f"{quantity} ({unit})" if unit else quantity)
        ax.legend(loc="best")
        if problems:  # the figure says it too, not only the JSON and the terminal
            ax.set_title("\n".join(problems), fontsize=7, color="#b00", loc="left")
    return save_figure(fig, path)
