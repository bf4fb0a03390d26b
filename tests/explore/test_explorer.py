"""The explorer on real images: ext4 by mke2fs, QCOW2 by qemu-img, GPT, LUKS, no filesystem."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from engine.explore import (EncryptedVolumeError, NoFilesystemError, PathNotFoundError,
                            UnsupportedFilesystemError, diff, open_volume)
from tests.fixtures.explore import (MARKUP_NAME, Ext4Image, make_ext4, make_gpt_image,
                                    make_luks, make_tree)

LISTED_DIRS = ["/", "/etc", "/home/ada", "/home/ada/docs", "/var", "/var/log"]


def debugfs_listing(image: Path, path: str) -> dict[str, tuple[int, int]]:
    """name → (mode, size) as e2fsprogs' debugfs lists it."""
    out = subprocess.run(["debugfs", "-R", f"ls -l {path}", str(image)], capture_output=True,
                         text=True, check=True).stdout
    listing = {}
    for line in out.splitlines():
        fields = line.split(None, 8)
        if len(fields) < 9:
            continue
        _inode, mode, _ftype, _uid, _gid, size, _date, _time, name = fields
        if name not in (".", ".."):
            listing[name] = (int(mode, 8), int(size))
    return listing


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_listing_matches_debugfs(ext4_image: Ext4Image, fmt: str) -> None:
    with open(ext4_image.raw if fmt == "raw" else ext4_image.qcow2, "rb") as fh:
        explorer = open_volume(fh)
        assert explorer.image_format == fmt
        for path in LISTED_DIRS:
            ours = {e.name: (e.mode, e.size) for e in explorer.listdir(path)}
            assert ours == debugfs_listing(ext4_image.raw, path), path
            assert ours  # every listed dir holds something


def test_entries_carry_type_mode_time_and_link(ext4_image: Ext4Image) -> None:
    with open(ext4_image.qcow2, "rb") as fh:
        explorer = open_volume(fh)
        by_name = {e.name: e for e in explorer.listdir("/home/ada")}
    run = by_name["run.sh"]
    assert (run.type, stat.S_IMODE(run.mode), run.path) == ("file", 0o750, "/home/ada/run.sh")
    assert run.mtime == "2023-11-14T22:13:20Z"
    assert by_name["docs"].type == "dir"
    assert (by_name["notes-link"].type, by_name["notes-link"].link_target) == \
        ("symlink", "docs/notes.md")
    assert by_name["abs-link"].link_target == "/etc/hosts"
    assert MARKUP_NAME in by_name


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_read_gives_exact_bytes(ext4_image: Ext4Image, fmt: str) -> None:
    with open(ext4_image.raw if fmt == "raw" else ext4_image.qcow2, "rb") as fh:
        explorer = open_volume(fh)
        for rel in ("etc/hosts", "home/ada/photo.bin", "var/log/big.log",
                    "home/ada/docs/notes.md"):
            assert explorer.read_file("/" + rel) == (ext4_image.tree / rel).read_bytes(), rel
        with explorer.open("/var/log/big.log") as stream:
            stream.seek(100_000)
            assert stream.read(10) == (ext4_image.tree / "var/log/big.log").read_bytes()[
                100_000:100_010]


def test_walk_finds_every_file(ext4_image: Ext4Image) -> None:
    with open(ext4_image.raw, "rb") as fh:
        walked = {e.path for e in open_volume(fh).walk("/") if not e.path.startswith("/lost")}
    expected = {"/" + str(p.relative_to(ext4_image.tree)) for p in ext4_image.tree.rglob("*")}
    assert walked == expected


def test_missing_path_is_a_clear_error(ext4_image: Ext4Image) -> None:
    with open(ext4_image.raw, "rb") as fh:
        explorer = open_volume(fh)
        with pytest.raises(PathNotFoundError, match="no such file"):
            explorer.listdir("/etc/nope")


def test_gpt_with_one_ext4_partition_opens_it(ext4_image: Ext4Image, tmp_path: Path) -> None:
    disk = make_gpt_image(tmp_path / "gpt.img", [None, ext4_image.raw])
    with open(disk, "rb") as fh:
        explorer = open_volume(fh)
        assert [v.name for v in explorer.volumes] == ["p1", "p2"]
        assert explorer.volumes[0].problem and "zeros" in explorer.volumes[0].problem
        assert {e.name for e in explorer.listdir("/etc")} == {"hosts", "secret.conf"}
        assert explorer.read_file("/etc/hosts") == (ext4_image.tree / "etc/hosts").read_bytes()


def test_gpt_with_two_filesystems_addresses_partitions(ext4_image: Ext4Image,
                                                       tmp_path: Path) -> None:
    disk = make_gpt_image(tmp_path / "gpt2.img", [ext4_image.raw, ext4_image.raw])
    with open(disk, "rb") as fh:
        explorer = open_volume(fh)
        assert [e.name for e in explorer.listdir("/")] == ["p1", "p2"]
        assert explorer.read_file("/p2/etc/hosts") == \
            (ext4_image.tree / "etc/hosts").read_bytes()


def test_luks_volume_says_encrypted(tmp_path: Path) -> None:
    image = make_luks(tmp_path / "luks.img", tmp_path / "key")
    with open(image, "rb") as fh, pytest.raises(EncryptedVolumeError, match=r"encrypted \(LUKS2\)"):
        open_volume(fh)


def test_luks_partition_in_gpt_says_encrypted(tmp_path: Path) -> None:
    luks = make_luks(tmp_path / "luks.img", tmp_path / "key")
    disk = make_gpt_image(tmp_path / "gpt.img", [luks], part_mib=24)
    with open(disk, "rb") as fh, pytest.raises(EncryptedVolumeError, match="LUKS"):
        open_volume(fh)


@pytest.mark.parametrize("content,message", [
    (b"\0" * (4 << 20), "starts with zeros"),
    (os.urandom(4 << 20), "no filesystem recognised"),
], ids=["zeros", "random"])
def test_no_filesystem_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    image = tmp_path / "blank.img"
    image.write_bytes(content)
    with open(image, "rb") as fh, pytest.raises(NoFilesystemError, match=message):
        open_volume(fh)


@pytest.mark.parametrize("magic,offset,name", [(b"XFSB", 0, "XFS"), (b"_BHRfS_M", 0x10040, "Btrfs"),
                                               (b"SWAPSPACE2", 4086, "Linux swap")],
                         ids=["xfs-damaged", "btrfs", "swap"])
def test_known_but_unreadable_filesystem_is_named(tmp_path: Path, magic: bytes, offset: int,
                                                  name: str) -> None:
    data = bytearray(b"\1" * (1 << 20))
    data[offset:offset + len(magic)] = magic
    image = tmp_path / "other.img"
    image.write_bytes(bytes(data))
    with open(image, "rb") as fh, pytest.raises(UnsupportedFilesystemError, match=name):
        open_volume(fh)


def test_xfs_lists_and_reads(ext4_image: Ext4Image, tmp_path: Path) -> None:
    from tests.fixtures.explore import make_xfs

    image = make_xfs(ext4_image.tree, tmp_path / "xfs.img")
    with open(image, "rb") as fh:
        explorer = open_volume(fh)
        assert explorer.volumes[0].filesystem == "xfs"
        for rel in ("etc", "home/ada", "home/ada/docs", "var/log"):
            expected = {p.name: (p.lstat().st_mode, p.lstat().st_size if not p.is_dir() else None)
                        for p in (ext4_image.tree / rel).iterdir() if " " not in p.name}
            ours = {e.name: (e.mode, e.size if not e.is_dir else None)
                    for e in explorer.listdir("/" + rel)}
            assert ours == expected, rel
        assert explorer.stat("/home/ada/abs-link").link_target == "/etc/hosts"
        for rel in ("var/log/big.log", "home/ada/photo.bin"):
            assert explorer.read_file("/" + rel) == (ext4_image.tree / rel).read_bytes()


def test_diff_reports_added_removed_changed(ext4_image: Ext4Image, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "v2")
    (tree / "etc" / "hosts").write_text("127.0.0.1 changed\n")       # size and content
    (tree / "home/ada/docs/notes.md").unlink()
    (tree / "home/ada/new.txt").write_text("new\n")
    os.chmod(tree / "home/ada/run.sh", 0o700)                         # mode only
    big = (tree / "var/log/big.log").read_bytes()
    (tree / "var/log/big.log").write_bytes(bytes([big[0] ^ 1]) + big[1:])  # same size
    os.utime(tree / "etc/secret.conf", (1_800_000_000, 1_800_000_000))    # touch only
    v2 = make_ext4(tree, tmp_path / "v2.img")
    with open(ext4_image.raw, "rb") as fa, open(v2, "rb") as fb:
        result = diff(open_volume(fa), open_volume(fb), "/")
    assert [e.path for e in result.added] == ["/home/ada/new.txt"]
    assert [e.path for e in result.removed] == ["/home/ada/docs/notes.md"]
    changed = {c.path: c.reasons for c in result.changed}
    assert changed == {"/etc/hosts": ("size",), "/home/ada/run.sh": ("mode",),
                       "/var/log/big.log": ("content",)}


def test_lvm_logical_volume_opens(ext4_image: Ext4Image, tmp_path: Path) -> None:
    from tests.fixtures.explore import make_lvm_pv

    pv = make_lvm_pv(tmp_path / "pv.img", ext4_image.raw)
    with open(pv, "rb") as fh:
        explorer = open_volume(fh)
        assert [(v.name, v.filesystem) for v in explorer.volumes] == [("vg0-data", "ext4")]
        assert explorer.read_file("/home/ada/run.sh") == \
            (ext4_image.tree / "home/ada/run.sh").read_bytes()
    disk = make_gpt_image(tmp_path / "gpt-lvm.img", [None, pv], part_mib=24)
    with open(disk, "rb") as fh:
        explorer = open_volume(fh)
        assert [v.name for v in explorer.volumes] == ["p1", "vg0-data"]
        assert {e.name for e in explorer.listdir("/etc")} == {"hosts", "secret.conf"}


def test_links_inside_the_image_are_followed_for_reading(tmp_path: Path) -> None:
    """As on a modern root filesystem: /lib → usr/lib, /etc/localtime → an absolute path."""
    tree = tmp_path / "tree"
    (tree / "usr" / "lib" / "systemd").mkdir(parents=True)
    (tree / "usr" / "lib" / "systemd" / "unit").write_text("[Unit]\n")
    (tree / "usr" / "share" / "zoneinfo").mkdir(parents=True)
    (tree / "usr" / "share" / "zoneinfo" / "UTC").write_bytes(b"TZif2")
    (tree / "etc").mkdir()
    os.symlink("usr/lib", tree / "lib")
    os.symlink("/usr/share/zoneinfo/UTC", tree / "etc" / "localtime")
    os.symlink("../../../../../../../usr/lib", tree / "etc" / "up")
    os.symlink("loop", tree / "loop")
    image = make_ext4(tree, tmp_path / "links.img", "8M")
    with open(image, "rb") as fh:
        explorer = open_volume(fh)
        assert [e.path for e in explorer.listdir("/lib/systemd")] == ["/usr/lib/systemd/unit"]
        assert [e.name for e in explorer.listdir("/lib")] == ["systemd"]
        assert explorer.read_file("/etc/localtime") == b"TZif2"
        assert explorer.read_file("/etc/up/systemd/unit") == b"[Unit]\n"  # '..' stops at /
        assert explorer.stat("/lib").type == "symlink"          # stat does not follow
        assert [e.type for e in explorer.listdir("/etc/localtime")] == ["symlink"]
        assert [e.path for e in explorer.walk("/lib")] == ["/usr/lib/systemd",
                                                           "/usr/lib/systemd/unit"]
        with pytest.raises(PathNotFoundError, match="too many levels"):
            explorer.listdir("/loop")
