"""Names a damaged or crafted filesystem can hold ('/' inside a name, two entries of one name,
backslashes, bidi overrides, bytes that are not UTF-8): listed safely, never misparsed, and
every entry addressable by its escaped path or by inode (engine/explore/names.py)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.explore import PathNotFoundError, diff, open_volume, restore
from engine.explore.errors import AmbiguousNameError
from engine.explore.names import (InodeRef, escape_name, show_hidden, split_path,
                                  unescape_component)
from tests.fixtures.explore import (BACKSLASH_NAME, BIDI_NAME, NOT_UTF8, CraftedImage)

TRICKY = ["plain", "a/b", "back\\slash", "\\x2f", "<12>", "<x>", "..", ".", "tab\there",
          "\x1b[2J", "caf\udce9", "\u202eevil", "zero\u200bwidth", "line\u2028break",
          "\x85next", "é", "日本", "[bold]x[/]", "\\", "\\\\"]


@pytest.mark.parametrize("name", TRICKY)
def test_escape_round_trips_and_is_one_safe_component(name: str) -> None:
    shown = escape_name(name)
    assert "/" not in shown
    assert shown.isprintable() and shown == show_hidden(shown)
    assert unescape_component(shown) == name
    assert not isinstance(unescape_component(shown), InodeRef)
    assert split_path("/dir/" + shown) == ["dir", name]


def test_escape_round_trips_random_names() -> None:
    rng = random.Random(7)
    alphabet = "ab/\\x<>12.\x00\x1b\x7f\u202e\udcff\u00e9 "
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        assert unescape_component(escape_name(name)) == name, repr(name)


def test_lone_surrogates_no_decoder_makes_are_shown_not_fatal() -> None:
    for text in ("a\ud800b", "\udbff", "\udc00"):
        assert escape_name(text).isprintable() and show_hidden(text).isprintable()


def test_inode_component_and_bad_escapes() -> None:
    assert split_path("/etc/<42>/x") == ["etc", InodeRef(42), "x"]
    assert split_path("/a/\\x3c42>") == ["a", "<42>"]
    assert split_path("/a/b/../\\x2e\\x2e") == ["a", ".."]  # an escaped '..' is a name
    for bad in ("/a\\q", "/trailing\\", "/a\\x4"):
        with pytest.raises(UsageError, match="bad escape"):
            split_path(bad)


@pytest.fixture
def crafted(crafted_image: CraftedImage):
    with open(crafted_image.raw, "rb") as fh:
        yield open_volume(fh)


def test_listing_shows_every_entry_and_each_path_reads_back(crafted) -> None:
    names = [e.name for e in crafted.listdir("/")]
    assert {"b", "b/c", "x", "x/y", BACKSLASH_NAME, "<99>", BIDI_NAME,
            NOT_UTF8.decode("utf-8", "surrogateescape")} <= set(names)
    assert names.count("dupe") == 2 and names.count("") == 1 and "NUL\x00" in names
    assert names.count("..") == 1 and "." not in names  # the crafted one, not the real link
    walked = list(crafted.walk("/"))
    assert len({e.path for e in walked}) == len(walked)  # no entry listed twice
    for entry in walked:
        again = crafted.stat(entry.path)
        assert (again.inode, again.name, again.path) == (entry.inode, entry.name, entry.path)


def test_slash_names_are_not_the_paths_they_look_like(crafted,
                                                      crafted_image: CraftedImage) -> None:
    for path, data in crafted_image.contents.items():
        assert crafted.read_file(path) == data, path
    # the crafted directory "x/y" is walked as itself, not as the real x/y
    inner = {e.path for e in crafted.walk("/") if e.name == "inner"}
    assert inner == {"/x/y/inner", "/x\\x2fy/inner"}


def test_shared_name_is_refused_and_each_entry_reachable_by_inode(
        crafted, crafted_image: CraftedImage, tmp_path: Path) -> None:
    twins = [e for e in crafted.listdir("/") if e.name == "dupe"]
    assert sorted(e.path for e in twins) == sorted(f"/<{e.inode}>" for e in twins)
    with pytest.raises(AmbiguousNameError) as caught:
        crafted.read_file("/dupe")
    assert all(f"<{e.inode}>" in str(caught.value) for e in twins)
    assert {crafted.read_file(e.path) for e in twins} == crafted_image.twins
    with pytest.raises(PathNotFoundError, match="no entry with inode 99"):
        crafted.stat("/<99>")
    report = restore(crafted, twins[0].path, tmp_path)
    assert report.files == 1 and (tmp_path / "dupe").read_bytes() in crafted_image.twins


def test_restore_tree_writes_real_names_and_refuses_slashes(crafted, crafted_image: CraftedImage,
                                                            tmp_path: Path) -> None:
    report = restore(crafted, "/", tmp_path)
    skipped = {s.split(": ")[0] for s in report.skipped}
    # the slash, NUL, '..' and empty names are refused; of the two "dupe", the second meets
    # the first
    assert {"/b\\x2fc", "/x\\x2fy", "/NUL\\x00", "/\\x2e\\x2e"} <= skipped
    assert len(skipped) == 6
    root = tmp_path / "root"
    assert (root / "b" / "c").read_bytes() == crafted_image.contents["/b/c"]
    assert (root / "x" / "y" / "inner").read_bytes() == crafted_image.contents["/x/y/inner"]
    assert (root / BACKSLASH_NAME).read_bytes() == crafted_image.contents[
        "/" + BACKSLASH_NAME.replace("\\", "\\\\")]
    assert (root / "<99>").exists() and (root / BIDI_NAME).exists()
    assert os.path.exists(os.fsencode(root) + b"/" + NOT_UTF8)
    assert (root / "dupe").read_bytes() in crafted_image.twins


def test_an_empty_name_is_not_the_directory_itself(crafted,
                                                  crafted_image: CraftedImage) -> None:
    blank = next(e for e in crafted.listdir("/") if e.name == "")
    assert blank.is_dir and blank.path == f"/<{blank.inode}>"
    assert [e.name for e in crafted.listdir(blank.path)] == ["inside"]
    assert crafted.read_file(blank.path + "/inside") == crafted_image.below_empty
    assert blank.path + "/inside" in {e.path for e in crafted.walk("/")}


def test_diff_of_a_crafted_image_with_itself_is_empty(crafted) -> None:
    assert diff(crafted, crafted).empty
