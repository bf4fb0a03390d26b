"""ls / cat / restore-files / diff through the real CLI and a real store, as a person runs them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.explore.test_explorer import debugfs_listing
from tests.explore.test_restore_files import snapshot_tree
from tests.fixtures.explore import (BACKSLASH_NAME, MARKUP_NAME, CraftedImage, Ext4Image,
                                    make_ext4, make_gpt_image, make_luks, make_tree)

PASSPHRASE = "explore test passphrase"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StoredImages:
    store: Path
    env: dict[str, str]
    ids: dict[str, str]      # what → snapshot id
    images: dict[str, Path]  # what → local image


def cli(stored_env: dict[str, str], store: Path, *args: str,
        check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "cli", "--store", str(store), *args],
                          capture_output=True, env=stored_env, cwd=ROOT, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}): {done.stderr.decode()}")
    return done


@pytest.fixture(scope="module")
def stored(ext4_image: Ext4Image, hostile_image: Path, crafted_image: CraftedImage,
           tmp_path_factory: pytest.TempPathFactory) -> StoredImages:
    base = tmp_path_factory.mktemp("stored")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCW_", "STRONGROOM_"))}
    # jobs in-process: this module outlives each test's own daemon folder (tests/daemon/
    # covers restore-files through the daemon)
    env.update(STRONGROOM_PASSPHRASE=PASSPHRASE, XDG_CACHE_HOME=str(base / "cache"),
               XDG_DATA_HOME=str(base / "data"), XDG_CONFIG_HOME=str(base / "config"),
               XDG_STATE_HOME=str(base / "state"), STRONGROOM_NO_DAEMON="1")
    store = base / "store"
    v2_tree = make_tree(base / "v2")
    (v2_tree / "etc" / "hosts").write_text("10.0.0.1 changed\n")
    (v2_tree / "home/ada/new.txt").write_text("new\n")
    (v2_tree / "var/log/big.log").unlink()
    images = {
        "v1": ext4_image.qcow2,
        "v2": make_ext4(v2_tree, base / "v2.img"),
        "hostile": hostile_image,
        "crafted": crafted_image.raw,
        "luks": make_luks(base / "luks.img", base / "key"),
        "gpt": make_gpt_image(base / "gpt.img", [None, ext4_image.raw]),
        "blank": base / "blank.img",
    }
    with open(images["blank"], "wb") as fh:
        fh.truncate(8 << 20)
    # Backed up in-process (one key derivation, not seven CLI start-ups): the commands under
    # test here are the explore ones, run below through the CLI.
    from engine.store import Store

    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
            mp.setenv(var, env[var])
        mp.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")  # a throwaway store: light key file
        with Store.init(str(store), PASSPHRASE) as st:
            ids = {}
            for what, path in images.items():
                with open(path, "rb") as src:
                    ids[what] = st.backup(src, name=what).snapshot.id
    return StoredImages(store, env, ids, images)


def run(stored: StoredImages, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return cli(stored.env, stored.store, *args, check=check)


@pytest.mark.parametrize("path", ["/", "/home/ada", "/var/log"])
def test_ls_json_matches_debugfs(stored: StoredImages, ext4_image: Ext4Image, path: str) -> None:
    doc = json.loads(run(stored, "--json", "ls", stored.ids["v1"], path).stdout)
    assert {e["name"]: (e["mode"], e["size"]) for e in doc} == \
        debugfs_listing(ext4_image.raw, path)
    assert all({"name", "type", "size", "mode", "mtime"} <= set(e) for e in doc)


def test_ls_long_and_short(stored: StoredImages) -> None:
    short = run(stored, "ls", stored.ids["v1"][:8], "/home/ada").stdout.decode().splitlines()
    assert short == [MARKUP_NAME, "abs-link", "docs/", "notes-link", "photo.bin", "run.sh"]
    long = run(stored, "ls", "-l", stored.ids["v1"], "/home/ada").stdout.decode()
    assert "-rwxr-x--- file              18 2023-11-14 22:13:20  run.sh" in long
    assert "notes-link -> docs/notes.md" in long


def test_cat_gives_exact_bytes(stored: StoredImages, ext4_image: Ext4Image) -> None:
    for rel in ("var/log/big.log", "home/ada/photo.bin"):
        out = run(stored, "cat", stored.ids["v1"], "/" + rel).stdout
        assert out == (ext4_image.tree / rel).read_bytes(), rel


def test_restore_files_reproduces_tree(stored: StoredImages, ext4_image: Ext4Image,
                                       tmp_path: Path) -> None:
    done = run(stored, "restore-files", stored.ids["v1"], "/home", "--to", str(tmp_path))
    assert b"restored 4 files" in done.stdout
    assert snapshot_tree(tmp_path / "home") == snapshot_tree(ext4_image.tree / "home")
    again = run(stored, "restore-files", stored.ids["v1"], "/home", "--to", str(tmp_path),
                check=False)
    assert again.returncode == 1 and b"already exists" in again.stderr


def test_ls_escapes_control_characters_in_names(stored: StoredImages) -> None:
    out = run(stored, "ls", "-l", stored.ids["hostile"]).stdout
    assert b"\\x1b[2J\\x0a" in out and b"\x1b" not in out
    doc = json.loads(run(stored, "--json", "ls", stored.ids["hostile"]).stdout)
    assert "\x1b[2J\n" in {e["name"] for e in doc}  # JSON carries the real name, escaped by JSON


def test_restore_files_hostile_image_stays_in_dir(stored: StoredImages, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    victim = stored.images["hostile"].parent / "victim"
    done = run(stored, "restore-files", stored.ids["hostile"], "/", "--to", str(dest),
               check=False)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "unsafe name '../x'" in err and "unsafe name 'outside/evil'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert list(victim.iterdir()) == []
    assert os.readlink(dest / "root" / "passwd") == "/etc/passwd"
    assert (dest / "root" / MARKUP_NAME).read_text() == "literal\n"


def test_diff_between_backups(stored: StoredImages) -> None:
    out = run(stored, "diff", stored.ids["v1"], stored.ids["v2"]).stdout.decode().splitlines()
    assert out == ["M /etc/hosts (size)", "+ /home/ada/new.txt", "- /var/log/big.log"]
    doc = json.loads(run(stored, "--json", "diff", stored.ids["v1"], stored.ids["v2"],
                         "/home").stdout)
    assert [e["path"] for e in doc["added"]] == ["/home/ada/new.txt"]
    assert doc["removed"] == [] and doc["changed"] == []


def test_gpt_image_lists_through_store(stored: StoredImages) -> None:
    out = run(stored, "ls", stored.ids["gpt"], "/etc").stdout.decode().splitlines()
    assert out == ["hosts", "secret.conf"]


@pytest.mark.parametrize("what,message", [
    ("luks", "encrypted (LUKS2)"),
    ("blank", "no filesystem"),
])
def test_unopenable_images_give_one_line(stored: StoredImages, what: str, message: str) -> None:
    done = run(stored, "ls", stored.ids[what], check=False)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.startswith("strongroom: error: ") and message in err
    assert err.count("\n") == 1


def test_missing_path_and_snapshot(stored: StoredImages) -> None:
    done = run(stored, "cat", stored.ids["v1"], "/etc/nope", check=False)
    assert done.returncode == 1 and b"no such file" in done.stderr
    done = run(stored, "ls", "ffffffffffff", check=False)
    assert done.returncode != 0 and done.stderr.startswith(b"strongroom: error: ")
    assert done.stderr.count(b"\n") == 1


@pytest.fixture
def inproc(stored: StoredImages, monkeypatch: pytest.MonkeyPatch,
           capsysbinary: pytest.CaptureFixture[bytes]):
    """The CLI in this process (many short commands: no interpreter start for each):
    ``inproc(*args) -> (exit code, stdout bytes, stderr text)``."""
    from cli.main import main

    for name in ("STRONGROOM_PASSPHRASE", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, stored.env[name])

    def call(*args: str) -> tuple[int, bytes, str]:
        try:
            code = main(["--store", str(stored.store), *args])
        except SystemExit as exc:  # --help
            code = int(exc.code or 0)
        out = capsysbinary.readouterr()
        return code, out.out, out.err.decode()

    return call


def test_crafted_names_list_escaped_and_read_back_as_listed(stored: StoredImages, inproc,
                                                            crafted_image: CraftedImage) -> None:
    snap = stored.ids["crafted"]
    code, out, err = inproc("ls", snap)
    assert code == 0, err
    lines = out.decode("ascii").splitlines()  # nothing raw reaches the terminal
    assert {"b/", "b\\x2fc", "x\\x2fy/", "\\x3c99>", "caf\\xe9",
            "invoice\\xe2\\x80\\xaetxt.exe", BACKSLASH_NAME.replace("\\", "\\\\")} <= set(lines)
    assert lines.count("dupe") == 2
    assert "NUL\\x00" in lines and any(re.fullmatch(r"<[0-9]+>/", x) for x in lines)
    # what ls prints is what cat takes
    for line in lines:
        if not line.endswith("/") and line != "dupe":
            code, out, err = inproc("cat", snap, "/" + line)
            assert (code, out) == (0, crafted_image.contents["/" + line]), (line, err)
    assert inproc("cat", snap, "/b/c")[1] == crafted_image.contents["/b/c"]


def test_shared_name_needs_an_inode_on_the_command_line(stored: StoredImages, inproc,
                                                        crafted_image: CraftedImage) -> None:
    snap = stored.ids["crafted"]
    code, _, err = inproc("cat", snap, "/dupe")
    assert code == 1 and err.count("\n") == 1 and "name one by inode" in err
    inodes = [line.split()[0] for line in inproc("ls", "-i", snap)[1].decode().splitlines()
              if line.endswith(" dupe")]
    assert len(inodes) == 2 and all(f"<{i}>" in err for i in inodes)
    assert {inproc("cat", snap, f"/<{i}>")[1] for i in inodes} == crafted_image.twins
    doc = json.loads(inproc("--json", "ls", snap)[1])
    assert sorted(e["path"] for e in doc if e["name"] == "dupe") == \
        sorted(f"/<{i}>" for i in inodes)


def test_path_syntax_is_in_the_help_and_bad_escapes_are_usage_errors(stored: StoredImages,
                                                                      inproc) -> None:
    for command in ("ls", "cat", "restore-files"):
        code, out, _ = inproc(command, "--help")
        text = out.decode()
        assert code == 0 and "\\x2f" in text and "<N>" in text and "inode" in text, command
    code, _, err = inproc("cat", stored.ids["crafted"], "/a\\q")
    assert code == 2 and "bad escape" in err and err.count("\n") == 1
