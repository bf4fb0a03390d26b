"""The engine is a library: nothing under engine/ may import the UI or Textual."""
from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN = ("tui", "textual", "rich")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_engine_never_imports_the_ui() -> None:
    offenders = [f"{p.relative_to(ENGINE.parent)}: {name}"
                 for p in ENGINE.rglob("*.py") for name in _imports(p)
                 if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_linter_would_catch_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from textual.app import App\n")
    assert _imports(bad) == ["textual.app"]
