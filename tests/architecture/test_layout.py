"""The project's layout rules, checked from the source (README, "Layout and conventions").

- modules of the five packages stay under :data:`MAX_LINES` lines;
- no import cycle between modules, counting imports inside functions;
- packages depend one way (:data:`ALLOWED`); ``scaling.contracts`` imports nothing of ours;
- ``study`` and ``scaling`` never import torch, directly or through another module of ours;
- each cross-package contract is defined in one module only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scaling", "metrics", "restore", "study", "experiments")
MAX_LINES = 400
#: package -> the packages of ours it may import
ALLOWED = {
    "scaling": set(),
    "metrics": {"scaling"},
    "restore": {"metrics", "scaling"},
    "study": {"scaling"},
    "experiments": {"scaling", "metrics", "restore", "study"},
}
TORCH_FREE = ("scaling", "study")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(modules of ours, top-level external names) that module ``name`` imports anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    ours, external = set(), set()

    def add(target: str) -> None:
        if target.split(".")[0] in PACKAGES:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target:
                ours.add(target)
        else:
            external.add(target.split(".")[0])

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    add(a.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    pkg = ".".join(base[: len(base) - child.level + 1])
                    mod = f"{pkg}.{child.module}" if child.module else pkg
                else:
                    mod = child.module or ""
                for a in child.names:
                    sub = f"{mod}.{a.name}"
                    add(sub if sub in MODULES else mod)
            visit(child)

    visit(tree)
    ours.discard(name)
    return ours, external


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_modules_stay_small():
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles_counting_function_level_imports():
    edges = {name: ours for name, (ours, _) in GRAPH.items()}
    assert _cycles(edges) == []


def test_cycle_detection_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_packages_depend_one_way(pkg):
    bad = {
        name: sorted(t for t in ours if t.split(".")[0] not in ALLOWED[pkg] | {pkg})
        for name, (ours, _) in GRAPH.items()
        if name.split(".")[0] == pkg
    }
    assert not {k: v for k, v in bad.items() if v}, f"{pkg} imports outside {ALLOWED[pkg]}"


def test_contracts_import_nothing_of_ours():
    for name, (ours, _) in GRAPH.items():
        if name.startswith("scaling.contracts"):
            assert all(t.startswith("scaling.contracts") for t in ours), (name, ours)


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        todo.extend(GRAPH[v][0])
    return seen


@pytest.mark.parametrize("pkg", TORCH_FREE)
def test_torch_free_packages_never_reach_torch(pkg):
    for name in MODULES:
        if name.split(".")[0] != pkg:
            continue
        via = [m for m in _reachable(name) if GRAPH[m][1] & {"torch", "torchvision", "lpips"}]
        assert not via, f"{name} reaches torch through {sorted(via)}"


#: contract -> a regular expression of its definition; each must match in exactly one module
CONTRACTS = {
    "Thurstone sigma": r"^\s*SIGMA\s*=\s*1\.4826",
    "triplet manifest format": r"^\s*\w*FORMAT\w*\s*=\s*[\"']mdf-triplets",
    "task names": r"^\s*TASKS\s*=\s*\(",
    "atomic replace": r"os\.replace\(",
    "JPEG encoder": r"format\s*=\s*[\"']JPEG[\"']|\.save\([^)]*[\"']JPEG[\"']",
}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_each_contract_is_defined_in_one_module(contract):
    pattern = re.compile(CONTRACTS[contract], re.MULTILINE)
    where = [n for n, p in MODULES.items() if pattern.search(p.read_text(encoding="utf-8"))]
    assert len(where) == 1, f"{contract} defined in {where}"
