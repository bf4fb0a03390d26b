"""restore-files at the engine level: faithful trees, and nothing ever written outside DIR."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.explore import ExploreError, open_volume, restore
from tests.fixtures.explore import MARKUP_NAME, Ext4Image


def snapshot_tree(root: Path) -> dict[str, tuple]:
    """rel path → (kind, mode bits, mtime s, content or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", None, int(st.st_mtime), os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime), None)
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), path.read_bytes())
    return out


def test_tree_is_reproduced_with_modes_times_links(ext4_image: Ext4Image, tmp_path: Path) -> None:
    with open(ext4_image.qcow2, "rb") as fh:
        report = restore(open_volume(fh), "/home", tmp_path / "out")
    assert report.skipped == []
    assert report.target == str(tmp_path / "out" / "home")
    assert snapshot_tree(tmp_path / "out" / "home") == snapshot_tree(ext4_image.tree / "home")
    assert stat.S_IMODE((tmp_path / "out/home").stat().st_mode) == \
        stat.S_IMODE((ext4_image.tree / "home").stat().st_mode)
    assert (report.files, report.symlinks) == (4, 2)


def test_single_file_lands_at_dir_basename(ext4_image: Ext4Image, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with open(ext4_image.raw, "rb") as fh:
        restore(open_volume(fh), "/var/log/big.log", tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "big.log").read_bytes() == (ext4_image.tree / "var/log/big.log").read_bytes()
    assert seen[-1] == (300_000, 300_000)


def test_existing_target_is_refused_and_kept(ext4_image: Ext4Image, tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "mine").write_text("keep me")
    with open(ext4_image.raw, "rb") as fh, pytest.raises(ExploreError, match="already exists"):
        restore(open_volume(fh), "/etc", tmp_path)
    assert (tmp_path / "etc" / "mine").read_text() == "keep me"


def _all_paths(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def test_hostile_names_never_escape(hostile_image: Path, tmp_path: Path) -> None:
    victim = hostile_image.parent / "victim"
    dest = tmp_path / "jail" / "to"
    dest.mkdir(parents=True)
    outside_before = _all_paths(tmp_path) - _all_paths(dest)
    with open(hostile_image, "rb") as fh:
        explorer = open_volume(fh)
        names = {e.name for e in explorer.listdir("/")}
        assert {"outside/evil", "passwd", "outside", "up", MARKUP_NAME} <= names
        for twin in ("twinA", "twinB"):
            assert sorted(e.type for e in explorer.listdir("/") if e.name == twin) == \
                ["dir", "symlink"]
        assert "../x" in {e.name for e in explorer.listdir("/d")}
        twin_paths = {e.path for e in explorer.listdir("/") if e.name.startswith("twin")}
        report = restore(explorer, "/", dest)
    # the crafted names are refused and reported; of two entries of one name (a link out and
    # a directory) whichever comes second meets the first and is skipped: never is the
    # directory's content written through the link; everything else is restored
    # (paths are escaped: a '/' inside a name is \x2f, a shared name is named by inode)
    skipped = {s.split(": ")[0] for s in report.skipped}
    crafted = {"/d/..\\x2fx", "/outside\\x2fevil"}
    assert crafted <= skipped and len(skipped - crafted) == 2
    assert skipped - crafted <= twin_paths
    assert sum("unsafe name" in s for s in report.skipped) == 2
    assert sum("File exists" in s for s in report.skipped) == 2
    assert list(victim.iterdir()) == []
    assert _all_paths(tmp_path) - _all_paths(dest) == outside_before
    root = dest / "root"
    assert os.readlink(root / "passwd") == "/etc/passwd"      # recreated, not followed
    assert os.readlink(root / "outside") == str(victim)
    kinds = sorted("link" if (root / t).is_symlink() else "dir" for t in ("twinA", "twinB"))
    assert "link" in kinds  # the dangerous order (link first, then a directory) was exercised
    for twin in ("twinA", "twinB"):
        if not (root / twin).is_symlink():
            assert (root / twin / "evil2").read_text() == "through a duplicate name\n"
    assert (root / MARKUP_NAME).read_text() == "literal\n"
    assert sorted(p.name for p in (root / "d").iterdir()) == []


def test_restore_through_a_symlinked_dir_in_the_image_is_not_followed(hostile_image: Path,
                                                                       tmp_path: Path) -> None:
    with open(hostile_image, "rb") as fh:
        report = restore(open_volume(fh), "/up", tmp_path)
    assert report.symlinks == 1 and report.files == 0
    assert os.readlink(tmp_path / "up") == "../../../../../../tmp"
