# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 19: how much of each pixel's (Li, host) information the references'-noise correction would take (ρ),
and the x bias with another cap (``_li_shift.MAX_CORRECTION``), on the draws of ``bench_li_shift_pinned.py``.

``python benchmarks/bench_li_shift_rho.py --cap 0.5 --dose 100 --draws 100 101 --out rho.jsonl``

ρ = the largest eigenvalue of S⁻¹Ω (S: the (Li, host) block's Schur complement over the background columns,
Ω: the references' noise energy, :func:`ionscope.eels._li_shift.noise_gram`), per pixel of the second fit
pass; the correction is scaled down where ρ > the cap. Same scene, draws (``rng(1000 + draw)``) and measures
as ``bench_li_shift_pinned.py``, the true shift given; one JSON line per draw.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_li_shift_beyond import FIT, measures, scene  # noqa: E402


def main(argv=None):
    from ionscope import eels
    from ionscope.eels import _li_shift, _refs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cap", type=float, default=_li_shift.MAX_CORRECTION)
    p.add_argument("--dose", type=float, default=100.0)
    p.add_argument("--draws", type=int, nargs="+", default=[100])
    p.add_argument("--groups", type=int, default=None, help="jackknife groups of the references (default: theirs)")
    p.add_argument("--out", default="li_shift_rho.jsonl")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    orig = _li_shift.corrected_gram
    rhos = []

    def recording(Gp, om):
        # the second pass's batches (≤ 256 pixels; the grid fits pass pixels × grid points)
        if Gp.shape[0] <= 256:
            S = Gp[:, :2, :2] - Gp[:, :2, 2:] @ np.linalg.solve(Gp[:, 2:, 2:], np.swapaxes(Gp[:, :2, 2:], 1, 2))
            with np.errstate(all="ignore"):
                rhos.append(np.max(np.real(np.linalg.eigvals(np.linalg.solve(S, om))), axis=1))
        return orig(Gp, om)

    _li_shift.corrected_gram = recording
    _li_shift.MAX_CORRECTION = a.cap
    if a.groups:
        _refs._jackknife.__defaults__ = (a.groups,)
    si0, truth, film, pristine, charged = scene(0, 1, (32, 48), 4)
    xp, xc = float(truth.x_li.where(pristine).mean()), float(truth.x_li.where(charged).mean())
    comp = {"pristine": {"Li": xp, "Co": 1.0}, "charged": {"Li": xc, "Co": 1.0}}
    td = float(truth.attrs["li_chemical_shift_ev"]) / 0.5 * (xp - xc)
    lam = np.asarray(si0.values, float)
    w = truth.weights
    xt = w.sel(component="Li") / w.sel(component="Co") / truth.attrs["k_li_co"]
    fb = film.broadcast_like(xt)
    beyond = (fb & (xt > 0.1) & (xt <= 0.4)).values.ravel()
    inside = (fb & (xt > 0.6)).values.ravel()
    for draw in a.draws:
        rhos.clear()
        # dose 0: the noise-free scene (the replicates then hold only the regions' pixel-to-pixel differences)
        si = si0 if not a.dose else si0.copy(
            data=np.random.default_rng(1000 + draw).poisson(lam * a.dose / 1000).astype(np.float32))
        refs = eels.references_from_regions(si, {"pristine": pristine, "charged": charged}, comp, fit_range=FIT)
        refs.attrs["li_k_shift_ev"] = td
        m = eels.mlls(si, refs, fit_range=FIT, plural_scattering="fourier-log", nonnegative=False)
        r = measures(m, truth, film, pristine, xp)
        rho = np.concatenate(rhos)
        out = dict(cap=a.cap, groups=int(refs.attrs.get("jackknife_groups", 0)), dose=a.dose, draw=draw, bias_out=r["bias_out"], bias_in=r["bias_in"], k=r["k"],
                   rho_beyond_median=float(np.nanmedian(rho[beyond])), rho_beyond_p90=float(np.nanpercentile(rho[beyond], 90)),
                   capped_beyond=float(np.mean(rho[beyond] > a.cap)), rho_in_median=float(np.nanmedian(rho[inside])),
                   capped_in=float(np.mean(rho[inside] > a.cap)), load=os.getloadavg()[0])
        with open(a.out, "a") as f:
            f.write(json.dumps(out) + "\n")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
