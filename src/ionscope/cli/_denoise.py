# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope denoise INPUT -o OUT``: denoise a Li-map movie (or map) by sparse coding."""
from __future__ import annotations

from ._common import add_alias, add_out, add_progress, add_reader, add_var, check_out, load_input, say, show_progress

SUFFIXES = (".zarr", ".nc", ".hspy")


def register(sub) -> None:
    p = sub.add_parser("denoise", help="denoise a Li-map movie (time, y, x) or map (y, x) by sparse coding",
                       description="Denoise a Li-map movie (time, y, x) or a single map (y, x), e.g. the Li "
                                   "variable of `ionscope limap` output. Spectrum images (with an energy axis) "
                                   "are refused: map them first.")
    p.add_argument("input", metavar="INPUT", help="Li-map movie or map (.zarr/.nc/.hspy/.dm4 ...)")
    add_out(p, suffixes=SUFFIXES, what="output file")
    add_var(p, default_hint="the only variable, or Li")
    p.add_argument("--method", choices=("nonlocal", "ksvd"), default="nonlocal",
                   help="nonlocal (default, best) or ksvd (classic patch dictionary + OMP)")
    p.add_argument("--noise", choices=("auto", "poisson", "gaussian", "poisson-gaussian"), default="auto",
                   help="noise model: auto (default: Poisson for counts, else Gaussian), poisson (counts), "
                        "gaussian (scaled maps), poisson-gaussian (detector counts; with --gain/--read-noise)")
    p.add_argument("--gain", type=float, default=1.0, metavar="G",
                   help="detector gain in counts per electron, for --noise poisson-gaussian (default 1)")
    p.add_argument("--read-noise", type=float, default=0.0, metavar="S",
                   help="Gaussian read noise in counts (std), for --noise poisson-gaussian (default 0)")
    p.add_argument("--sigma", type=float, metavar="S",
                   help="noise std in the data's units (default: estimated from the data)")
    p.add_argument("--patch", type=int, metavar="PX", help="spatial patch side in pixels (default 5)")
    p.add_argument("--patch-t", type=int, metavar="N", help="frames per patch (default 12, fewer for short movies)")
    p.add_argument("--passes", type=int, metavar="N", help="non-local passes (default: 3 below ~10 counts/px, else 2)")
    p.add_argument("--window-frames", type=int, metavar="N", dest="window_t",
                   help="frames per processing window (default: automatic)")
    add_alias(p, "--window-t", new="--window-frames", dest="window_t", type=int)
    p.add_argument("--tile", type=int, metavar="PX", help="pixels per processing tile side (default: automatic)")
    p.add_argument("--lazy", action="store_true",
                   help="keep a Zarr input out of core and write the result window by window (bounded memory)")
    p.add_argument("--upsample", nargs="?", const="bicubic", choices=("bicubic", "dictionary"), metavar="HOW",
                   help="also upsample 2x: bicubic (default, and the best we measured on denoised maps). No "
                        "super-resolution we tried beats it by resolution on denoised maps (docs/superresolution.md: "
                        "dictionary -0.2...-0.6 dB, multi-frame with the drift worse, Lanczos -0.04 dB, "
                        "TV-regularised +0.6 dB only by smoothing more). 'dictionary' is kept for clean, high-dose "
                        "maps only")
    add_reader(p)
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from ..denoise import SparseCodingOptions, bicubic_upsample, noise_level, sparse_coding, super_resolve
    from ..errors import DataValidationError

    out = check_out(args)
    data = load_input(args.input, var=args.var, prefer=("Li", "li", "data"), reader=args.reader, lazy=args.lazy,
                      what="map or movie")
    if "energy" in data.dims or not {"y", "x"} <= set(data.dims) or data.ndim > 3:
        raise DataValidationError(
            f"{args.input}: dims {tuple(data.dims)}; denoise takes a Li-map movie (time, y, x) or a map (y, x). "
            "For a spectrum image make maps first (`ionscope limap`), then denoise their Li variable")
    if data.chunks is not None and not args.lazy:
        data = data.compute()
    options = SparseCodingOptions(method=args.method, noise=args.noise, patch=args.patch, patch_t=args.patch_t,
                                  passes=args.passes, window_t=args.window_t, tile=args.tile, gain=args.gain,
                                  read_noise=args.read_noise)
    result = sparse_coding(data, options=options, sigma=args.sigma, progress=show_progress(args) is not False)
    denoised = result  # on the input's grid: where its residual noise is measured
    if args.upsample == "dictionary":
        import sys

        print("warning: --upsample dictionary loses to bicubic on denoised maps (-0.2...-0.6 dB measured, "
              "docs/superresolution.md); use --upsample bicubic unless the maps are clean", file=sys.stderr)
        result = super_resolve(result)
    elif args.upsample == "bicubic":
        result = bicubic_upsample(result)
    result.attrs = dict(data.attrs, **{k: v for k, v in result.attrs.items() if k not in data.attrs},
                        denoised_by=f"ionscope.denoise.sparse_coding(method={args.method!r})")
    if args.upsample:
        result.attrs["upsampled_by"] = args.upsample
    result.name = data.name
    from ..io import save

    path = save(result, out)
    if data.chunks is not None:  # out of core: do not pull the whole movie in to report noise levels
        say(args, f"{args.input}: {dict(data.sizes)} denoised window by window", f"wrote {path}")
        return 0
    # What the data can say: the input's noise σ (white-noise estimate) and how much was taken out. The error
    # left in the denoised movie is NOT measurable from it: the same white-noise estimate on the (smooth)
    # output read 0.016 counts where the true RMS error was 0.40 (limap-movie --quick, 25x too small), so none
    # is printed. On the input's grid, before any upsampling.
    sigma = noise_level(data)
    removed = float(np.sqrt(np.nanmean((np.asarray(data.values, float) - np.asarray(denoised.values, float)) ** 2)))
    say(args, f"{args.input}: {dict(data.sizes)} noise σ ≈ {sigma:.3g} (estimated from the input), removed "
              f"RMS {removed:.3g}; the error left is not measurable without the truth", f"wrote {path}")
    return 0
