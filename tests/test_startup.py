"""What a command imports is what it pays for at every start: a store command must not load the
Scaleway SDK's APIs (~0.25 s), the policy engine or Textual, which it never calls."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("scaleway.", "engine.scaleway.api", "engine.scaleway.inventory", "engine.policies.run",
         "textual", "tui.")


def _loaded_after(code: str, env: dict[str, str]) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        heavy = {HEAVY!r}
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy) or m == "scaleway")))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "STRONGROOM_PASSPHRASE": "startup-test-passphrase", "STRONGROOM_NO_DAEMON": "1",
            "STRONGROOM_KDF_MEMORY_KIB": "8192"}


def test_store_commands_load_neither_the_sdk_nor_the_app(tmp_path: Path) -> None:
    image = tmp_path / "image.bin"
    image.write_bytes(b"strongroom" * 100_000)
    store, out = tmp_path / "store", tmp_path / "out.bin"
    loaded = _loaded_after(f"""
        import cli.main
        for argv in (["init"], ["backup-image", {str(image)!r}], ["snapshots"],
                     ["restore-image", "latest", {str(out)!r}]):
            assert cli.main.main(["--store", {str(store)!r}, *argv]) == 0, argv
    """, _env(tmp_path))
    assert out.read_bytes() == image.read_bytes()
    assert loaded == []


def test_a_store_on_object_storage_reads_the_profile_without_the_sdks_apis(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "SCW_ACCESS_KEY": "SCWAAAAAAAAAAAAAAAAA",
           "SCW_SECRET_KEY": "11111111-2222-3333-4444-555555555555",
           "SCW_DEFAULT_REGION": "nl-ams", "STRONGROOM_S3_ENDPOINT": "http://127.0.0.1:9"}
    loaded = _loaded_after("""
        from engine.store.backends.s3 import connect
        place = connect()
        assert place.region == "nl-ams" and "Scaleway profile" in place.source, place
    """, env)
    assert loaded == []
