# SPDX-License-Identifier: GPL-3.0-or-later
"""The house's import graph: imports point down the layers, never across packages into private modules.

Every module of ``src/ionscope`` is parsed (nothing is imported); an edge is any ``import``/``from``
statement (also inside functions), any ``importlib.import_module("...")`` with a literal name, any
``"ionscope.x:y"`` string naming a module, and every entry of a package's lazy ``_EXPORTS`` table.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ionscope"

#: Bottom to top: a module may import its own package and any package on a LOWER layer.
LAYERS = (
    ("errors", "_lazy", "_progress"),
    ("_outdir",),       # with _atomic and _lock (SAME_UNIT): what ionscope owns in a folder, how it writes there
    ("_viewer_kit",),
    ("io",),            # with data (SAME_UNIT)
    ("eels", "denoise", "holography", "transport"),   # the science: never each other, never above
    ("simulate",),
    ("pipeline",),      # the one runner
    ("report",),        # every figure, movie, viewer and report stage
    ("live",),          # the live dashboard
    ("operando",),      # the public face of operando nights: names only
    ("demo",),
    ("cli",),
    ("__main__", "__init__"),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


#: Pairs that are one unit: ``ionscope.data`` (the calibrated data model) and ``ionscope.io`` (its adapters
#: and files) — the input adapter turns a HyperSpy signal into the model with the reader's own conversion;
#: ``_atomic`` (write, then rename), ``_lock`` (one run per folder) and ``_outdir`` (the ledger of what ionscope
#: wrote; its ledger class in ``_ledger``, path safety and records in ``_outdir_paths``), which consult each other.
SAME_UNIT = {"data": "io", "_atomic": "_outdir", "_lock": "_outdir", "_ledger": "_outdir", "_outdir_paths": "_outdir"}


def _unit(module: str) -> str:
    """``ionscope.eels._mlls`` -> ``eels``; ``ionscope`` -> ``__init__``."""
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else "__init__"
    return SAME_UNIT.get(unit, unit)


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    base = current.split(".") if is_package else current.split(".")[:-1]
    if level:
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([target] if target else []))
    return target or ""


def edges():
    """Yield ``(importer module, imported module, line, how)`` for every module of the package."""
    for path in sorted(SRC.rglob("*.py")):
        mod = _module_name(path)
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield mod, a.name, node.lineno, "import"
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node.level, node.module)
                for a in node.names:
                    if node.module is None and a.name.startswith("__"):
                        yield mod, base, node.lineno, "from"  # "from . import __version__": an attribute
                        continue
                    # "from . import x" / "from .. import io": x may be a module
                    yield mod, f"{base}.{a.name}" if node.module is None else base, node.lineno, "from"
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                name = node.args[0].value
                if name.startswith("."):
                    pkg = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                        else mod
                    name = pkg + name
                yield mod, name, node.lineno, "importlib"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith("ionscope.") and ":" in node.value:
                yield mod, node.value.split(":")[0], node.lineno, "string"
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets) \
                    and isinstance(node.value, ast.Dict):
                for v in node.value.values:
                    if isinstance(v, ast.Constant) and isinstance(v.value, str):
                        target = v.value if v.value.startswith("ionscope") else \
                            _resolve(mod, is_pkg, v.value.count(".", 0, len(v.value) - len(v.value.lstrip("."))) or 1,
                                     v.value.lstrip("."))
                        yield mod, target, v.lineno, "lazy export"


def _ionscope_edges():
    for src, dst, line, how in edges():
        if dst == "ionscope" or dst.startswith("ionscope."):
            yield src, dst, line, how


def test_every_package_has_a_layer():
    units = {_unit(_module_name(p)) for p in SRC.rglob("*.py")}
    assert units <= set(LAYER), f"packages without a layer in LAYERS: {sorted(units - set(LAYER))}"


def test_no_upward_imports():
    bad = []
    for src, dst, line, how in _ionscope_edges():
        a, b = _unit(src), _unit(dst)
        if a != b and b != "__init__" and LAYER[b] > LAYER[a]:
            bad.append(f"{src}:{line} {how} {dst} (layer {LAYER[a]} -> {LAYER[b]})")
        if a != b and b != "__init__" and LAYER[b] == LAYER[a]:
            bad.append(f"{src}:{line} {how} {dst} (sideways, layer {LAYER[a]})")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_private_cross_package_imports():
    bad = []
    for src, dst, line, how in _ionscope_edges():
        if _unit(src) == _unit(dst) or how == "lazy export" and _unit(src) in ("operando",):
            continue
        private = [p for p in dst.split(".")[2:] if p.startswith("_")]
        if private and _unit(dst) not in LAYERS[0]:
            bad.append(f"{src}:{line} {how} {dst}")
    assert not bad, "private modules of another package imported:\n" + "\n".join(bad)


@pytest.mark.parametrize("text, expected", [
    ("from ..eels._mlls import mlls", ("ionscope.eels._mlls",)),
    ("import importlib\nimportlib.import_module('ionscope.report')", ("ionscope.report",)),
    ("X = 'ionscope.simulate:edge_references'", ("ionscope.simulate",)),
])
def test_the_graph_sees_every_kind_of_import(tmp_path, monkeypatch, text, expected):
    pkg = tmp_path / "ionscope" / "live"
    pkg.mkdir(parents=True)
    (pkg / "_x.py").write_text(text)
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path / "ionscope")
    found = {dst for _, dst, _, _ in edges()}
    assert set(expected) <= found
