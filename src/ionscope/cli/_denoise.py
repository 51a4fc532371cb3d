# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope denoise INPUT --out OUT``: denoise a Li-map movie (or map) by sparse coding."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("denoise", help="denoise a Li-map movie (time, y, x) or map (y, x) by sparse coding")
    p.add_argument("input", metavar="INPUT", help="Li-map movie or map (.zarr/.nc/.hspy/.dm4 ...)")
    p.add_argument("--out", required=True, metavar="OUT", help="output file (.zarr, .nc or .hspy), written atomically")
    p.add_argument("--method", choices=("nonlocal", "ksvd"), default="nonlocal",
                   help="nonlocal (default, best) or ksvd (classic patch dictionary + OMP)")
    p.add_argument("--noise", choices=("auto", "poisson", "gaussian", "poisson-gaussian"), default="auto")
    p.add_argument("--gain", type=float, default=1.0, help="detector gain for --noise poisson-gaussian")
    p.add_argument("--read-noise", type=float, default=0.0, help="Gaussian read noise (counts), poisson-gaussian")
    p.add_argument("--sigma", type=float, help="noise level (default: estimated from the data)")
    p.add_argument("--patch", type=int, help="spatial patch side in pixels")
    p.add_argument("--patch-t", type=int, help="frames per patch")
    p.add_argument("--passes", type=int, help="non-local passes (default: 3 below ~10 counts/px, else 2)")
    p.add_argument("--window-t", type=int, help="frames per processing window (default: automatic)")
    p.add_argument("--tile", type=int, help="pixels per processing tile side (default: automatic)")
    p.add_argument("--lazy", action="store_true",
                   help="keep a Zarr input out of core and write the result window by window (bounded memory)")
    p.add_argument("--upsample", action="store_true", help="also super-resolve 2x (coupled dictionaries)")
    p.add_argument("--reader", help="force a rosettasciio plugin, e.g. HSPY")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..denoise import noise_level, sparse_coding, super_resolve
    from ..errors import FileFormatError
    from ..io import load, save

    out = Path(args.out)
    if out.suffix.lower() not in (".zarr", ".nc", ".hspy"):
        raise FileFormatError(f"--out {out}: expected a .zarr, .nc or .hspy path")
    data = load(args.input, reader=args.reader, lazy=args.lazy)
    if data.chunks is not None and not args.lazy:
        data = data.compute()
    result = sparse_coding(data, method=args.method, noise=args.noise, sigma=args.sigma, patch=args.patch,
                           patch_t=args.patch_t, passes=args.passes, progress=not args.no_progress,
                           window_t=args.window_t, tile=args.tile, gain=args.gain, read_noise=args.read_noise)
    if args.upsample:
        result = super_resolve(result)
    result.attrs = dict(data.attrs, denoised_by=f"ionscope.denoise.sparse_coding(method={args.method!r})")
    path = save(result, out)
    if data.chunks is not None:  # out of core: do not pull the whole movie in to report noise levels
        print(f"{args.input}: {dict(data.sizes)} denoised window by window")
        print(f"wrote {path}")
        return 0
    raw_sigma = noise_level(data)
    print(f"{args.input}: {dict(data.sizes)} noise level {raw_sigma:.3g} -> {noise_level(result):.3g}")
    print(f"wrote {path}")
    return 0
