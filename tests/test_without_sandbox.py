"""The sandbox is an extra (`strongroom[sandbox]`): without moto and its server, strongroom
still imports, its command line still runs, and `demo` / `sandbox` say how to install it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter in which the sandbox's packages cannot be imported, as on a
# machine where `pip install -e .` left out the extra.
BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = ("moto", "flask", "aiohttp", "werkzeug")
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
""")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_core_imports_and_the_help_works_without_the_sandbox() -> None:
    done = _run("""
        import engine.session, engine.store, engine.scaleway.flows, engine.daemon.server
        import engine.explore, tui.app, cli.main
        try:
            import moto
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let moto through")
        try:
            cli.main.main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
    assert "usage: strongroom" in done.stdout and "demo" in done.stdout


def test_demo_and_sandbox_name_the_extra_when_it_is_missing(tmp_path: Path) -> None:
    for command in (["demo"], ["sandbox", "--state", str(tmp_path / "state")]):
        done = _run(f"""
            import cli.main
            raise SystemExit(cli.main.main({command!r}))
        """)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr == ("strongroom: error: the sandbox is not installed (aiohttp is "
                               "missing): pip install 'strongroom[sandbox]'\n"), done.stderr
    assert not (tmp_path / "state").exists()


def test_the_sandbox_is_an_extra_that_the_tests_pull_in() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = " ".join(project["dependencies"])
    assert "moto" not in main and "aiohttp" not in main
    extras = project["optional-dependencies"]
    assert any(d.startswith("moto[server]") for d in extras["sandbox"])
    assert "strongroom[sandbox]" in extras["test"]
