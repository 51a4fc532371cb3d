# SPDX-License-Identifier: GPL-3.0-or-later
"""Sphinx configuration of the ionscope documentation site (`make docs`).

The site builds offline: no intersphinx, no CDN (the theme's CSS/JS and the search index are local
files), and every tutorial under ``tutorials/`` is a MyST notebook executed during the build
(myst-nb), in a temporary folder, on data the tutorial makes itself through ``ionscope.simulate`` or
reads from the real files in ``../shared/data/real`` (``IONSCOPE_REAL_DATA``). A tutorial that raises
fails the build; ``-W`` (the Makefile's ``docs`` target) makes every warning an error.

The API reference (``api/``) is generated here on every build from the public names of each
subpackage (``__all__``, i.e. the lazy ``_EXPORTS`` tables) and rendered by autosummary + numpydoc.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

# ---- the data the tutorials read -------------------------------------------------------------------
# Sphinx executes this file from inside docs/, so a relative IONSCOPE_REAL_DATA (as `.ci/run` and the
# Makefile pass it) is read from the repository root, where the build is started, not from docs/.
_real = Path(os.environ.get("IONSCOPE_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
REAL = (_real if _real.is_absolute() else ROOT / _real).resolve()
if not REAL.is_dir():
    raise RuntimeError(f"the tutorial 'from your own files' reads the real microscope files in {REAL}, "
                       "which does not exist: set IONSCOPE_REAL_DATA to the folder of shared/data/real")
os.environ["IONSCOPE_REAL_DATA"] = str(REAL)  # the notebook kernels inherit it
# the shell cells (%%bash) run the `ionscope` of the Python that builds the docs
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# the kernels draw inline (matplotlib-inline); a MPLBACKEND from the caller's shell (e.g. Agg) would
# hide every figure. The shell cells' commands pick a non-interactive backend by themselves.
os.environ.pop("MPLBACKEND", None)
os.environ.setdefault("IONSCOPE_PROGRESS", "0")  # no progress bars in the executed outputs
os.environ.setdefault("COLUMNS", "110")          # argparse/--help wrap at a fixed width

import ionscope  # noqa: E402

project = "ionscope"
author = "ionscope developers"
copyright = "ionscope developers, GPL-3.0-or-later"
release = version = ionscope.__version__

extensions = [
    "myst_nb",                      # Markdown pages + executed notebooks (tutorials)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",                     # the docstrings are numpydoc
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# ---- MyST and notebook execution -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]  # no dollarmath: MathJax would come from a CDN
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("IONSCOPE_DOCS_EXECUTE", "force")  # "off" for a quick layout check
nb_execution_in_temp = True        # every tutorial runs in a fresh temporary folder
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 900
nb_merge_streams = True           # one output block per cell (the shell cells send stderr to stdout, in order)
nb_execution_excludepatterns: list[str] = []


def _join_stream_chunks() -> None:
    """Merge a cell's consecutive stream chunks verbatim before myst-nb coalesces them.

    A shell cell's output arrives in chunks cut anywhere (``%%bash`` forwards what the pipe holds);
    myst-nb's ``coalesce_streams`` ends every chunk with a newline, which would cut lines mid-word.
    """
    import myst_nb.core.render as render

    original = render.coalesce_streams

    def coalesce(outputs):
        joined = []
        for out in outputs or []:
            if (out.get("output_type") == "stream" and joined and joined[-1].get("output_type") == "stream"
                    and joined[-1].get("name") == out.get("name")):
                joined[-1]["text"] += out["text"]
            else:
                joined.append(out)
        return original(joined)

    render.coalesce_streams = coalesce


_join_stream_chunks()

# ---- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"          # numpydoc's Parameters section carries the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

#: subpackage → one line shown above its table
API_PACKAGES = {
    "ionscope.io": "Read and write calibrated data; logs; HyperSpy bridge.",
    "ionscope.simulate": "Physics-based simulator: data with ground truth.",
    "ionscope.eels": "EELS: background, MLLS Li maps, SA/SB, low loss, MVA, line scans.",
    "ionscope.denoise": "Sparse-coding denoising of Li-map movies, baselines and metrics.",
    "ionscope.holography": "Off-axis and phase-shifting holography, potentials, bias series.",
    "ionscope.transport": "Where Li goes: specimen drift, sync with the log, Li flux from a map movie.",
    "ionscope.pipeline": "The one runner: configuration, stage table, stores, executors, ``run``.",
    "ionscope.operando": "The public face of operando work: every name of the earlier layout, pointing at its home.",
    "ionscope.live": "Live sessions: the watcher and its dashboard.",
    "ionscope.report": "Figures, movies, viewers and reports.",
    "ionscope.data": "The data model: dims vocabulary, calibration, kernels over dask chunks.",
    "ionscope.errors": "The error classes.",
}


def public_names(package: str) -> list[str]:
    """The public names of a package: ``__all__`` (the lazy ``_EXPORTS``), else what it defines."""
    mod = importlib.import_module(package)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, v in vars(mod).items()
                 if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                 and getattr(v, "__module__", "") == package]
    return sorted(names, key=str.lower)


def home_package(package: str, name: str) -> str:
    """The documented package a public name is defined in (a facade such as ``operando`` re-exports names
    of ``pipeline``, ``transport``, ``io``, ...): each name is documented once, in its home."""
    exports = getattr(importlib.import_module(package), "_EXPORTS", {})
    source = exports.get(name, "")
    if source.startswith("ionscope."):
        return source
    module = getattr(getattr(importlib.import_module(package), name), "__module__", None) or package
    homes = [p for p in API_PACKAGES if module == p or module.startswith(p + ".")]
    return max(homes, key=len) if homes else package


def write_api_pages() -> None:
    """Write ``api/index.rst`` and one page per subpackage (autosummary makes one page per name)."""
    out = HERE / "api"
    out.mkdir(exist_ok=True)
    index = ["API reference", "=============", "",
             "Generated from the numpydoc docstrings of every public name (``__all__`` of each subpackage).",
             "Every function takes keyword-only options; data arguments accept xarray DataArrays and numpy "
             "arrays (see each function's Parameters).", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    for package, blurb in API_PACKAGES.items():
        index.append(f"   {package}")
        title = f"``{package}``"
        lines = [title, "=" * len(title), "", blurb, "",
                 f".. automodule:: {package}", "   :no-members:", "",
                 f".. currentmodule:: {package}", "",
                 ".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
        names = public_names(package)
        own = [n for n in names if home_package(package, n) == package]
        lines += [f"   {name}" for name in own]
        elsewhere = [n for n in names if n not in own]
        if elsewhere:
            lines += ["", "Also importable from here (documented in their home package):", ""]
            lines += [f"- :obj:`{package}.{n} <{home_package(package, n)}.{n}>`" for n in elsewhere]
        _write_if_changed(out / f"{package}.rst", "\n".join(lines) + "\n")
    _write_if_changed(out / "index.rst", "\n".join(index) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


write_api_pages()

# ---- HTML: a local theme, nothing fetched from elsewhere -------------------------------------------
html_theme = "furo"
html_title = f"ionscope {version}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]   # local: a wider text column for code
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
html_last_updated_fmt = None

# ---- docstrings: plain-text |x| is a substitution in reST -------------------------------------------


def _escape_pipes(app, what, name, obj, options, lines):
    """Escape ``|`` in prose lines of a docstring, so that ``|ΔV+|`` reads as text, not a reST substitution.

    Docstrings are written for ``help()`` and use ``|x|`` for magnitudes; doctest blocks, literal
    blocks and inline literals are left untouched.
    """
    in_doctest = False
    literal_indent = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest:
            if not stripped:
                in_doctest = False
            continue
        if "|" in line:
            parts = line.split("``")
            parts[::2] = [p.replace("|", r"\|") for p in parts[::2]]
            lines[i] = "``".join(parts)
        if stripped.endswith("::"):
            literal_indent = indent


def setup(app):
    app.connect("autodoc-process-docstring", _escape_pipes, priority=400)  # before numpydoc (500)
