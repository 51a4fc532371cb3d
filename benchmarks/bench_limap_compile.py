# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 20, third pass: what the limap kernel's numba kernels cost to compile and to load from the cache.

Each case runs a fresh process that imports ionscope, makes a small realistic frame (20×24, dose 30, so
that the float64 noise path runs too) and times the first call of the kernel (compiling or loading every
kernel it uses) against its second call (the same work, compiled):

* ``empty``: ``NUMBA_CACHE_DIR`` set to a new, empty folder (numba compiles and writes its cache there);
* ``cached``: the same folder again (numba loads the machine code);
* ``read-only``: a copy of the package in a read-only folder, no ``NUMBA_CACHE_DIR`` (numba cannot write
  next to the source and falls back to its user-wide cache, ``$XDG_CACHE_HOME/numba``, here a new folder),
  run twice (compile, then load), as an unprivileged user (``setpriv``) when this runs as root.

Example: ``python benchmarks/bench_limap_compile.py``
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, os, time
t0 = time.perf_counter()
import numpy as np
import ionscope
from ionscope.eels import _plural_fast as pf
from ionscope.pipeline import from_dict
from ionscope.pipeline._eels_frame import frame_plan, probe_spectra
from ionscope.simulate import operando_eels
si, truth, _ = operando_eels(shape=(20, 24), n_frames=1, physics="realistic", dose=30.0, seed=7)
x = si.values[0]
plan = frame_plan(from_dict({}), energy=si.energy.values, references=truth.references, probe=probe_spectra(x))
J = np.asarray(x, float).reshape(-1, x.shape[-1])
kw = {**plan.fit.kwargs, "workers": 1}
t1 = time.perf_counter()
pf.fourier_log_kernel(J, **kw)
first = time.perf_counter() - t1
t1 = time.perf_counter()
pf.fourier_log_kernel(J, **kw)
second = time.perf_counter() - t1
import numba
print(json.dumps({"src": os.path.dirname(ionscope.__file__), "first": first, "second": second,
                  "numba": numba.__version__, "compiled": pf._compiled() is not None}))
"""


def _run(env, as_user=False):
    cmd = [sys.executable, "-c", _CHILD]
    if as_user and os.geteuid() == 0:
        # root writes through any permission bits: run as an unprivileged user, as a reader of an installed package
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _files(d):
    return sum(len(f) for _, _, f in os.walk(d))


def main():
    print(f"# bench_limap_compile {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load {os.getloadavg()[0]:.1f}")
    import ionscope

    src = os.path.dirname(os.path.dirname(ionscope.__file__))
    with tempfile.TemporaryDirectory(prefix="limap_compile_") as tmp:
        base = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
        cache = os.path.join(tmp, "cache")
        env = {**base, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": src}
        rows = [("empty NUMBA_CACHE_DIR", _run(env), _files(cache)), ("cached", _run(env), _files(cache))]
        # the package in a read-only folder: numba falls back to the user-wide cache
        ro = os.path.join(tmp, "ro")
        shutil.copytree(os.path.join(src, "ionscope"), os.path.join(ro, "ionscope"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(ro):
            for name in dirs + files:
                p = os.path.join(root, name)
                os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        os.chmod(ro, 0o555)
        xdg = os.path.join(tmp, "xdg")
        os.makedirs(xdg)
        os.chmod(tmp, 0o755)
        if os.geteuid() == 0:
            os.chown(xdg, 65534, 65534)
        env = {**base, "PYTHONPATH": ro, "XDG_CACHE_HOME": xdg, "HOME": xdg, "PYTHONDONTWRITEBYTECODE": "1"}
        for label in ("read-only package, user-wide cache empty", "read-only package, cached"):
            rows.append((label, _run(env, as_user=True), _files(os.path.join(xdg, "numba"))))
        next_to_source = _files(os.path.join(ro, "ionscope", "eels", "__pycache__"))
        for root, dirs, _ in os.walk(tmp):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        os.chmod(tmp, 0o755)
    print("| case | first call s | second call s | compile or load s | cache files | package |")
    print("|---|---|---|---|---|---|")
    for label, r, n in rows:
        print(f"| {label} | {r['first']:.2f} | {r['second']:.3f} | {r['first'] - r['second']:.2f} | {n} | {r['src']} |")
    print(f"cache files written next to the read-only source: {next_to_source}; numba {rows[0][1]['numba']}; "
          f"load at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
