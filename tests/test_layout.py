"""The package layout (issue 18): stages as folders, imports run one way, no circles.

Walks every module of ``sparsitylaws`` with the standard library's :mod:`ast` (imports
inside functions included: a lazy import is still a dependency) and checks:

* the root package (the public API, lazily re-exported) sits above every stage but
  ``cli``; ``errors``, ``paper`` and ``version`` are leaves anyone may import;
* each module belongs to one stage (lazy re-exports, ``_EXPORTS = {name: "module"}``, count
  as imports), and imports only its own stage or stages below it in
  the flow cli -> lab -> measure -> views -> planning -> lawset -> architecture -> runfit
  -> tables;
* the import graph among the package's modules has no circle;
* torch and its kin are imported only under ``measure/`` and ``lab/``;
* the root holds at most 3 modules besides ``__init__``, ``__main__`` and ``errors``, and
  each stage folder says in its ``__init__`` docstring what it takes and gives;
* docs/package.md names only modules that exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sparsitylaws"
DOCS = PKG.parent / "docs"

#: The flow, bottom first: a module may import its own stage or any stage earlier here.
STAGES = ["", "tables", "runfit", "architecture", "lawset", "planning", "views", "measure",
          "lab", "api", "cli", "__main__"]
#: Root modules every stage may import (leaves: they import nothing of the package).
LEAVES = {"sparsitylaws.errors", "sparsitylaws.paper", "sparsitylaws.version"}
HEAVY = {"torch", "transformers", "accelerate", "safetensors", "gguf", "tokenizers"}
TORCH_STAGES = {"measure", "lab"}


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = modules()


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".")
    if MODULES[mod].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str) -> str | None:
    """The package module ``name`` refers to (a module, or the module defining the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(mod: str) -> tuple[set[str], set[str]]:
    """(package modules imported, top-level external packages imported) by ``mod``."""
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    inner, outer = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(mod, node)
            names = [f"{base}.{a.name}" for a in node.names] or [base]
        elif isinstance(node, ast.Assign) and any(getattr(x, "id", "") == "_EXPORTS"
                                                  for x in node.targets):
            names = [v.value for v in node.value.values if isinstance(v, ast.Constant)]
        else:
            continue
        for n in names:
            if n.split(".")[0] == "sparsitylaws":
                owner = _owner(n)
                if owner and owner != mod:
                    inner.add(owner)
            else:
                outer.add(n.split(".")[0])
    return inner, outer


GRAPH = {m: imports_of(m)[0] for m in MODULES}


def stage_of(mod: str) -> str:
    parts = mod.split(".")
    if mod == "sparsitylaws":
        return "api"  # the root package: the public API facade, above every stage
    if mod in LEAVES:
        return ""
    return parts[1] if parts[1] in STAGES else f"?{parts[1]}"


def test_every_module_belongs_to_a_stage():
    unknown = sorted(m for m in MODULES if stage_of(m).startswith("?"))
    assert not unknown, f"modules outside every stage: {unknown}"


def test_imports_run_down_the_flow():
    bad = []
    for src, deps in GRAPH.items():
        rs = STAGES.index(stage_of(src))
        for dst in deps:
            if dst in LEAVES:
                continue
            if STAGES.index(stage_of(dst)) > rs:
                bad.append(f"{src} ({stage_of(src) or 'root'}) imports {dst} ({stage_of(dst)})")
    assert not bad, "imports against the flow:\n" + "\n".join(sorted(bad))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle():
    """The checker itself: a planted circle (and only it) is reported."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_torch_only_under_measure_and_lab():
    bad = sorted(f"{m} imports {sorted(imports_of(m)[1] & HEAVY)}" for m in MODULES
                 if stage_of(m) not in TORCH_STAGES and imports_of(m)[1] & HEAVY)
    assert not bad, bad


def test_root_holds_few_modules_and_stage_folders_say_what_they_do():
    root = sorted(p.name for p in PKG.glob("*.py"))
    extra = [n for n in root if n not in ("__init__.py", "__main__.py", "errors.py")]
    assert len(extra) <= 3, extra
    folders = sorted(p.name for p in PKG.iterdir() if p.is_dir() and any(p.glob("*.py")))
    assert set(folders) <= set(STAGES) - {"api", "__main__"}, folders
    for f in folders:
        doc = ast.get_docstring(ast.parse((PKG / f / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"sparsitylaws/{f}/__init__.py needs a docstring (takes/gives)"


@pytest.mark.skipif(not (DOCS / "package.md").is_file(), reason="docs/package.md absent")
def test_package_map_names_only_modules_that_exist():
    text = (DOCS / "package.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(sparsitylaws(?:/[\w]+)+(?:\.py)?/?)`", text))
    named |= {m.replace(".", "/") for m in re.findall(r"`(sparsitylaws(?:\.\w+)+)`", text)}
    assert len(named) > 20, "the map should name the modules it describes"
    missing = []
    for n in sorted(named):
        path = PKG.parent / n.rstrip("/")
        if not (path.exists() or path.with_suffix(".py").exists()):
            missing.append(n)
    assert not missing, f"docs/package.md names modules that do not exist: {missing}"
    stages = [s for s in STAGES if s not in ("", "api", "__main__")]
    for s in stages:
        assert f"sparsitylaws/{s}/" in text, f"docs/package.md does not describe {s}/"
