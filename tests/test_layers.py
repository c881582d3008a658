"""Layers point one way: no jaxpg module imports from a layer above its own.

The order is the ``layers`` block of docs/architecture.md (top layer first, one per line; the
names on a line are the top-level modules or packages of ``jaxpg`` in that layer). The package
facade ``jaxpg/__init__.py`` sits above everything and may import anything.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxpg"


def documented_layers() -> list[list[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def _component(module: str) -> str | None:
    """``jaxpg.algos.ppo`` -> ``algos``; the facade ``jaxpg`` -> ``""``; not jaxpg -> None."""
    parts = module.split(".")
    if parts[0] != "jaxpg":
        return None
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, functions' bodies included."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "._"  # relative imports resolve against the package
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # ``from jaxpg import algos`` imports the submodule algos.
            names = [f"{module}.{a.name}" for a in node.names] if module == "jaxpg" else [module]
            found += [(node.lineno, name) for name in names]
    return found


def violations(layers: list[list[str]], sources: dict[str, list[tuple[int, str]]]) -> list[str]:
    rank = {name: i for i, names in enumerate(layers) for name in names}
    problems = []
    for source, imports in sources.items():
        own = _component(source)
        if own == "":
            continue  # the facade
        if own not in rank:
            problems.append(f"{source}: module {own!r} is in no layer of docs/architecture.md")
            continue
        for line, module in imports:
            target = _component(module)
            if target is None or target == own:
                continue
            if target == "" or target not in rank:
                problems.append(f"{source}:{line} imports {module} (the facade or a module in no layer)")
            elif rank[target] < rank[own]:
                problems.append(f"{source}:{line} imports {module}: layer {layers[rank[target]]} is above {layers[rank[own]]}")
    return problems


def _sources() -> dict[str, list[tuple[int, str]]]:
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = imports_of(path)
    return sources


def test_every_module_is_in_a_layer_and_imports_only_downward():
    assert violations(documented_layers(), _sources()) == []


def test_the_layer_check_catches_an_upward_import():
    layers = [["algos"], ["nets"], ["envs"]]
    sources = {"jaxpg.nets.mlp": [(3, "jaxpg.algos.ppo"), (4, "jaxpg.envs.core"), (5, "jax.numpy")],
               "jaxpg.envs.core": [(7, "jaxpg")]}
    problems = violations(layers, sources)
    assert len(problems) == 2
    assert "jaxpg.nets.mlp:3 imports jaxpg.algos.ppo" in problems[0]
    assert "jaxpg.envs.core:7 imports jaxpg" in problems[1]


@pytest.mark.parametrize("source, expected", [
    ("from jaxpg.algos import common", "jaxpg.algos"),
    ("from jaxpg import optim", "jaxpg.optim"),
    ("from .normalize import masked_mean", "jaxpg.losses.normalize"),
])
def test_imports_are_resolved(tmp_path, source, expected, monkeypatch):
    path = ROOT / "jaxpg" / "losses" / "__init__.py"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self: source)
    assert imports_of(path)[0][1] == expected
