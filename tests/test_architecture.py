"""The import structure of graphfuse: no import circles, dependencies point one way, and the
dataset readers work without torch.

Read statically from the source (every ``import`` / ``from ... import`` anywhere in a module,
including imports inside functions, which are circles too when two modules do it to each
other; only ``if TYPE_CHECKING:`` blocks are skipped, and imports built from strings with
``importlib`` are not seen). A module's *unit* is the first name under ``graphfuse``:
``graphfuse.models.shiftgcn`` is in ``models``, ``graphfuse.cli`` in ``cli``.

The direction (docs/architecture.md, shared/DESIGN.md): cli -> ablation -> tasks -> models ->
layers -> graphs, with the data packages beside tasks and models, and plain utilities (``io``,
``checkpoints``, ``runs``, ``config_files``, ``metrics``, ``losses``) below whatever uses them.
Precisely, ``FORBIDDEN`` below: a module of a unit never imports a module of a unit listed
for it. As true today:

- graphs imports no other graphfuse unit except the utilities;
- layers never imports models, tasks, data or anything above them;
- models never imports tasks, data, runs or anything above them (the official-weight loaders
  use ``checkpoints``);
- metrics and losses import no model, layer, task or data code;
- data never imports models, layers, tasks or anything above them (it uses graphs and io);
- tasks never imports ablation, cli or the commands (engine, info, convert, ensemble);
- engine, info, convert and ensemble never import ablation or cli; ablation never imports cli;
- the utilities import only each other.

``families`` (the family registry) is left out of the table except that no layer, graph,
metric, loss or utility imports it: its families declare themselves beside their data and
models, so it may sit between them and the commands.

Circles are checked between modules (none at all) and between units (none beyond the
upward imports listed in ``KNOWN_UPWARD_IMPORTS``, each with what undoes it).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphfuse

PACKAGE_DIR = Path(graphfuse.__file__).resolve().parent

#: The commands built on tasks, models and data.
COMMANDS = {"engine", "info", "convert", "ensemble", "infer", "export", "show"}
#: Plain utilities, importable from anywhere.
UTILITIES = {"io", "checkpoints", "runs", "config_files", "parse_errors", "cpu_defaults"}
APP = {"cli", "ablation", "families"} | COMMANDS

FORBIDDEN: dict[str, set[str]] = {
    "graphs": {"layers", "models", "tasks", "data", "metrics", "losses"} | APP,
    "layers": {"models", "tasks", "data", "runs"} | APP,
    "models": {"tasks", "data", "runs"} | APP,
    "metrics": {"layers", "models", "tasks", "data", "graphs"} | APP,
    "losses": {"layers", "models", "tasks", "data", "graphs"} | APP,
    "data": {"layers", "models", "tasks", "cli", "ablation"} | COMMANDS,
    "tasks": {"cli", "ablation"} | COMMANDS,
    "engine": {"cli", "ablation", "info", "convert", "ensemble"},
    "info": {"cli", "ablation"},
    "convert": {"cli", "ablation"},
    "ensemble": {"cli", "ablation"},
    "infer": {"cli", "ablation"},
    "export": {"cli", "ablation"},
    "show": {"cli", "ablation"},
    "ablation": {"cli"},
    **{u: {"graphs", "layers", "models", "tasks", "data", "metrics", "losses"} | APP for u in UTILITIES},
}

#: Dataset readers: numpy only, usable on a machine without torch (``prepare`` runs there).
READERS = [
    "graphfuse.data.ntu.reader",
    "graphfuse.data.intention.xml",
    "graphfuse.data.intention.pie",
    "graphfuse.data.intention.jaad",
    "graphfuse.data.intention.poses",
    "graphfuse.data.intention.sequences",
    "graphfuse.data.multilabel.readers",
    "graphfuse.data.multilabel.glove",
    "graphfuse.data.multilabel.prepare",
    "graphfuse.data.video.splits",
    "graphfuse.data.video.sampling",
    "graphfuse.data.gait.readers",
    "graphfuse.data.gait.pretreat",
    "graphfuse.data.gait.sequences",
    "graphfuse.data.gait.prepare",
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package ``__init__``)."""
    out = {}
    for f in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ["graphfuse", *f.relative_to(PACKAGE_DIR).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (f, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every import node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, is_pkg: bool, modules: dict) -> dict[str, int]:
    """The graphfuse modules ``name`` imports -> the line of the first such import."""
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        while target and target not in modules:  # an attribute of a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.setdefault(target, line)

    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "graphfuse":
                    add(alias.name, node.lineno)
            continue
        if node.level:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        if prefix.split(".")[0] != "graphfuse":
            continue
        for alias in node.names:
            sub = f"{prefix}.{alias.name}"
            add(sub if sub in modules else prefix, node.lineno)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    return {m: _imports(m, f, p, modules) for m, (f, p) in modules.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "graphfuse"


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, {}))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    g = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}, "e": {}}
    assert _cycles(g) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_the_graph_sees_relative_lazy_and_package_imports(graph):
    # relative, at module level
    assert "graphfuse.ablation.spec" in graph["graphfuse.ablation.runner"]
    # inside a function (the runner writes the report at the end of a study)
    assert "graphfuse.ablation.report" in graph["graphfuse.ablation.runner"]
    # a package's __init__ importing its submodules
    assert "graphfuse.data.ntu.reader" in graph["graphfuse.data.ntu"]


def test_no_import_circles(graph):
    cycles = _cycles(graph)
    detail = []
    for comp in cycles:
        members = set(comp)
        detail.append(
            " <-> ".join(comp)
            + ": "
            + "; ".join(
                f"{a} imports {b} (line {graph[a][b]})" for a in comp for b in graph[a] if b in members
            )
        )
    assert not cycles, "import circles:\n" + "\n".join(detail)


#: Unit-to-unit imports that close a circle between units (not modules), each with what undoes
#: it. None today (``input_shape_for`` moved from ``info`` into ``families.skeleton_action``).
KNOWN_UPWARD_IMPORTS: set[tuple[str, str]] = set()


def test_no_new_circles_between_units(graph):
    units: dict[str, dict[str, int]] = {}
    for a, targets in graph.items():
        for b in targets:
            ua, ub = _unit(a), _unit(b)
            units.setdefault(ub, {})
            if ua != ub and (ua, ub) not in KNOWN_UPWARD_IMPORTS:
                units.setdefault(ua, {})[ub] = 1
    cycles = _cycles(units)
    detail = [
        " <-> ".join(c) + ": " + "; ".join(
            f"{a} imports {b}" for a, t in graph.items() for b in t
            if _unit(a) in c and _unit(b) in c and _unit(a) != _unit(b)
        )
        for c in cycles
    ]
    assert not cycles, "circles between units:\n" + "\n".join(detail)


def test_imports_point_one_way(graph):
    wrong = [
        f"{a} imports {b} (line {line}): {_unit(a)} never imports {_unit(b)}"
        for a, targets in graph.items()
        for b, line in targets.items()
        if _unit(b) in FORBIDDEN.get(_unit(a), set())
    ]
    assert not wrong, "\n".join(wrong)


def test_every_unit_is_placed():
    """A new top-level module or package must be placed in the rules (or named free here), so
    that the rules cover the whole package."""
    free = {"graphfuse", "cli", "families"}  # the package root, the top, the registry
    units = {_unit(m) for m in _modules()}
    unplaced = units - set(FORBIDDEN) - free
    assert not unplaced, f"add {sorted(unplaced)} to FORBIDDEN in tests/test_architecture.py"


def test_readers_import_no_torch():
    """In a fresh interpreter, importing each reader (and so its packages' ``__init__``) loads
    neither torch nor lightning."""
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for m in {READERS!r}:\n"
        "    importlib.import_module(m)\n"
        "    out[m] = sorted(h for h in ('torch', 'lightning', 'torchvision') if h in sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    path = [str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(heavy) == set(READERS)
    assert all(not v for v in heavy.values()), f"readers that import torch/lightning (cumulative): {heavy}"
