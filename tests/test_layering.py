"""The layering, checked: what `lint-imports` checks, and what it cannot see.

`lint-imports` (the contracts in pyproject.toml; scripts/test runs it before pytest) follows
import statements. It does not see a module name handed to ``importlib.import_module`` or
``__import__``, and it has no rule against import cycles. These tests cover both, and repeat the
engine's own rule so that a plain pytest run catches it too.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
PACKAGES = ("engine", "tui", "cli")
# the engine is a library: it never imports a driver (the app, the command line) or a UI toolkit
FORBIDDEN = ("tui", "cli", "textual", "rich")
DYNAMIC = {"import_module", "__import__", "find_spec"}  # importlib.import_module, importlib.util…


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _literal_prefix(node: ast.expr) -> str | None:
    """The module name a call is given, as far as it is written out: a string literal, or the
    text before the first placeholder of an f-string or before a ``+``. None when not even the
    top-level package is written out (``f"{pkg}.app"``, ``f"t{x}"``, a variable)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    head = None
    if isinstance(node, ast.JoinedStr):
        head = ""
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            head += part.value
        if all(isinstance(part, ast.Constant) for part in node.values):
            return head  # an f-string without placeholders
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = node.left
        head = left.value if isinstance(left, ast.Constant) and isinstance(left.value, str) \
            else _literal_prefix(left)
    return head if head and "." in head else None


def _dynamic_imports(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line, module name or None when computed) of every importlib/__import__ call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node.func) in DYNAMIC:
            args = node.args[:1] + [k.value for k in node.keywords if k.arg == "name"]
            for arg in args:
                yield node.lineno, _literal_prefix(arg)


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN


def test_engine_never_imports_a_driver_or_the_ui() -> None:
    offenders = [f"{p.relative_to(ROOT)}: {name}"
                 for p in ENGINE.rglob("*.py") for name in _imports(p) if _forbidden(name)]
    assert offenders == []


def test_engine_never_imports_them_through_importlib_either() -> None:
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for line, name in _dynamic_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if name is None:
                offenders.append(f"{where}: a computed module name (write it out, so that the "
                                 f"layering can be checked)")
            elif _forbidden(name):
                offenders.append(f"{where}: {name}")
    assert offenders == []


def test_the_checks_would_catch_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from textual.app import App\n")
    assert _imports(bad) == ["textual.app"]
    bad.write_text("import importlib\n"
                   "import importlib.util\n"
                   "from importlib import import_module\n"
                   "importlib.import_module('tui.app')\n"
                   "__import__('textual')\n"
                   "import_module(f'cli.commands.{area}')\n"
                   "importlib.util.find_spec(name='rich')\n"
                   "importlib.import_module('cli.' + 'main')\n"
                   "importlib.import_module(some_name)\n"
                   "importlib.import_module(f'{pkg}.app')\n"
                   "importlib.import_module(f't{x}')\n"
                   "importlib.import_module('engine.store')\n")
    found = list(_dynamic_imports(bad))
    assert found == [(4, "tui.app"), (5, "textual"), (6, "cli.commands."), (7, "rich"),
                     (8, "cli."), (9, None), (10, None), (11, None), (12, "engine.store")]
    assert [_forbidden(n) for _, n in found if n] == [True, True, True, True, True, False]


# -------------------------------------------------------------------------------------------------
# Import cycles between modules of engine/, tui/ and cli/ (any import counts: at module level,
# inside a function, or under TYPE_CHECKING; a cycle is a design knot wherever it is hidden).

def _import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    ours = set(graph.modules)
    return {m: graph.find_modules_directly_imported_by(m) & ours - {m} for m in ours}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (the strongly
    connected components of more than one module, by Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth ≤ the number of modules (a few hundred)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(groups)


def _describe(group: list[str], edges: dict[str, set[str]]) -> str:
    inside = [f"{a} -> {b}" for a in group for b in sorted(edges[a]) if b in group]
    return f"{{{', '.join(group)}}}: " + "; ".join(inside)


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert _cycles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


EDGES = _import_graph()
CYCLES = _cycles(EDGES)
def test_no_import_cycles_between_modules() -> None:
    assert set(EDGES) >= {"engine.store.store", "tui.app", "cli.main"}  # the graph is real
    found = [_describe(group, EDGES) for group in CYCLES]
    assert found == [], "import cycles:\n" + "\n".join(found)
