# SPDX-License-Identifier: GPL-3.0-or-later
"""``ionscope simulate KIND -o OUT``: example data with known truth, for trying every command."""
from __future__ import annotations

from ._common import add_out, add_progress, check_out, say

KINDS = ("operando", "limap-movie", "linescan", "co-l", "hologram")
SUFFIXES = (".zarr", ".nc", ".hspy")


def register(sub) -> None:
    p = sub.add_parser("simulate", help="write simulated example data (operando series, line scan, ...)",
                       description="Write simulated example data with known ground truth: operando (time, y, x, "
                                   "energy) series + log.csv, limap-movie (time, y, x), linescan (position, "
                                   "energy), co-l (y, x, energy) or hologram (y, x) + vacuum reference. With "
                                   "--refs-out also the exact reference spectra of the simulation.")
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=f"what to simulate: {', '.join(KINDS)}")
    add_out(p, suffixes=SUFFIXES, what="output data file")
    p.add_argument("--refs-out", metavar="REFS",
                   help="also write the simulation's references: (component, energy) spectra for operando/"
                        "linescan/co-l, the vacuum reference hologram for hologram (.nc/.zarr)")
    p.add_argument("--physics", choices=("ideal", "realistic"), default="ideal",
                   help="operando/linescan/co-l spectra: ideal (power law + edges; default) or realistic "
                        "(zero-loss peak, plasmons, plural scattering, t/λ 0.3-1.2: what a microscope records; "
                        "map it with `limap --plural-scattering fourier-log`, the default for such spectra)")
    p.add_argument("--quick", action="store_true", help="small data (for tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data; default 0)")
    add_progress(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from .. import simulate as sim
    from .._atomic import atomic_path
    from ..io import save

    out = check_out(args)
    log_path = out.with_name(f"{out.stem}_log.csv")
    if args.refs_out and args.kind == "operando" and Path(args.refs_out).absolute() == log_path.absolute():
        from ..errors import OutputPathError

        raise OutputPathError(f"--refs-out {args.refs_out}: is also the frame log of --out {out}; choose a path "
                              "of its own (nothing was changed)")
    refs = None
    extra = []
    if args.kind == "operando":
        shape, n = ((16, 24), 6) if args.quick else ((32, 48), 24)
        data, truth, log = sim.operando_eels(shape=shape, n_frames=n, seed=args.seed, physics=args.physics,
                                             **({"dose": 1000.0} if args.physics == "realistic" else {}))
        refs = truth.references
        with atomic_path(log_path) as tmp:
            log.to_dataframe().to_csv(tmp, float_format="%.9g")
        extra.append(log_path)
    elif args.kind == "limap-movie":
        shape, n = ((48, 48), 8) if args.quick else ((128, 128), 32)
        data, _ = sim.limap_movie(shape=shape, n_frames=n, seed=args.seed)
    elif args.kind == "linescan":
        # position-resolved TEM-EELS sums each position along the interface (the slit length), so its
        # spectra hold far more counts than one STEM pixel: 20 000 counts/channel at 55 eV. At the function's
        # default (500) the Li-K step of the layer is below one σ per position and the width is ±3–4 nm.
        data, truth = sim.tem_eels_linescan(seed=args.seed, physics=args.physics,
                                            **({"dose": 20000.0} if args.physics == "realistic" else {}))
        refs = truth["references"]
    elif args.kind == "co-l":
        data, truth = sim.co_l_spectrum_image(shape=(24, 32) if args.quick else (48, 64), seed=args.seed,
                                              physics=args.physics)
        refs = sim.co_l_references(data.energy)
    else:
        data, refs, _ = sim.hologram(shape=(128, 128) if args.quick else (512, 512), seed=args.seed)
    save(data, out)
    if args.refs_out:
        if refs is None:
            from ..errors import DataValidationError

            raise DataValidationError(f"--refs-out: the {args.kind} simulation has no references; "
                                      "use `ionscope refs --like` instead")
        save(refs, Path(args.refs_out))
        extra.append(Path(args.refs_out))
    say(args, f"wrote {out}: {dict(data.sizes)}" + (f" (and {', '.join(map(str, extra))})" if extra else ""))
    return 0
