"""The package's layout rules (issue 11), checked on the source: no import cycle, no module
reaching into another package's private names, and experiments, benchmarks and the CLI built
from public names only."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nlhf_theory"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: pathlib.Path, name: str):
    """``(module, imported_name_or_None)`` of every import in the file (lazy ones too)."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                module = f"{anchor}.{module}" if module else anchor
            for alias in node.names:
                yield module, alias.name


def edges(name: str, path: pathlib.Path):
    """The nlhf_theory modules ``name`` imports (``from pkg import submodule`` included)."""
    for module, imported in imports(path, name):
        if not module.startswith("nlhf_theory"):
            continue
        if imported and f"{module}.{imported}" in MODULES:
            yield f"{module}.{imported}"
        elif module in MODULES:
            yield module


def test_the_parser_sees_the_known_imports():
    """The checks below rely on this parser: it must find a plain, a relative-free and a
    package-level import (so that a broken parser cannot make them pass vacuously)."""
    name = "nlhf_theory.algorithms._pairwise"
    found = set(edges(name, MODULES[name]))
    assert {"nlhf_theory.losses", "nlhf_theory.data", "nlhf_theory.validation"} <= found


def test_no_import_cycle():
    graph = {name: set(edges(name, path)) - {name} for name, path in MODULES.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def private_reach(importer: str, module: str, imported) -> str | None:
    """Why ``importer`` may not import ``imported`` from ``module``, or None if it may.

    A private module ``a.b._c`` (or a private name ``_x`` of ``a.b``) belongs to the package
    ``a.b``: only modules inside ``a.b`` may use it. The root's private modules
    (``nlhf_theory.validation``, ``nlhf_theory._arrays``) serve the whole package.
    """
    target = module.split(".") + ([imported] if imported else [])
    for i, part in enumerate(target):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(target[:i])
            if not (importer == owner or importer.startswith(owner + ".")):
                return f"{importer} imports {'.'.join(target)}, private to {owner}"
            return None
    return None


def test_no_module_uses_another_packages_private_names():
    problems = [problem for name, path in MODULES.items()
                for module, imported in imports(path, name) if module.startswith("nlhf_theory")
                if (problem := private_reach(name, module, imported))]
    assert not problems, "\n".join(problems)


def test_the_rule_rejects_a_cross_package_private_import():
    assert private_reach("nlhf_theory.algorithms._x", "nlhf_theory.equilibria._regularized",
                         "solve") is not None
    assert private_reach("nlhf_theory.algorithms._x", "nlhf_theory.equilibria",
                         "_minimize_h") is not None
    assert private_reach("nlhf_theory.algorithms._x", "nlhf_theory.algorithms._base",
                         "Algorithm") is None
    assert private_reach("nlhf_theory.games._game", "nlhf_theory._arrays", "x") is None


CLIENTS = sorted([*(ROOT / "experiments").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"),
                  PACKAGE / "cli.py"])


@pytest.mark.parametrize("path", CLIENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiments_benchmarks_and_cli_use_public_names_only(path):
    bad = [f"{module}:{imported}" for module, imported in imports(path, "client.module")
           if module.startswith("nlhf_theory")
           and any(p.startswith("_") for p in module.split(".") + [imported or ""])]
    assert not bad, f"{path.relative_to(ROOT)} imports private names: {bad}"
    text = path.read_text()
    assert "nlhf_theory._" not in text.replace("nlhf_theory.__", ""), (
        "refers to a private module in its text")
