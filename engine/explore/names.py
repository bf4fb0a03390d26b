"""Paths inside an image, and how any name found in one is written so it can be read back.

A filesystem name is untrusted: a damaged or crafted image can hold a '/' inside a name, two
entries of one name in a directory, control characters or bytes that are not UTF-8. The
explorer's paths are therefore written in an escaped form that is at once safe to print and
exact to parse back:

- ``\\\\`` is a backslash, ``\\xNN`` is the byte NN (so ``a\\x2fb`` is one name holding a '/',
  and undecodable bytes, control and invisible formatting characters are shown this way);
- a component ``<N>`` (as debugfs writes inode numbers) is the entry of that directory whose
  inode number is N: it names one of two entries that share a name (``ls -i`` shows inode
  numbers). A real name of that shape is written ``\\x3cN>``.

Everything else is literal. ``Entry.path`` is always in this form, and so is what ``ls`` prints.
"""
from __future__ import annotations

import re

from engine.explore.errors import BadPathError
from engine.terminal import hex_escape as _hex
from engine.terminal import hidden as _hidden
from engine.terminal import show_hidden

__all__ = ["show_hidden", "escape_text", "escape_name", "unescape_component", "split_path",
           "join_components", "InodeRef", "Component", "INODE_COMPONENT"]

INODE_COMPONENT = re.compile(r"<([0-9]{1,20})>")
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


class InodeRef(int):
    """A path component naming a directory's entry by inode number (``<N>``)."""


Component = str | InodeRef


def escape_text(text: str, slash: bool = False) -> str:
    """``text`` safe for a terminal and exact to parse back (``slash``: '/' escaped too)."""
    if text.isascii() and text.isprintable() and "\\" not in text and not (slash and "/" in text):
        return text  # the common case, without a look at each character
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif (ch == "/" and slash) or _hidden(ch):
            out.append(_hex(ch))
        else:
            out.append(ch)
    return "".join(out)


def escape_name(name: str) -> str:
    """One name as a path component: '/' and everything unprintable escaped."""
    if INODE_COMPONENT.fullmatch(name):
        return "\\x3c" + name[1:]
    if name in (".", ".."):  # only a crafted image has such an entry; never a path step
        return "".join(f"\\x{ord(c):02x}" for c in name)
    return escape_text(name, slash=True)


def unescape_component(text: str) -> Component:
    """A typed path component → the name it means, or an InodeRef."""
    match = INODE_COMPONENT.fullmatch(text)
    if match:
        return InodeRef(int(match.group(1)))
    if "\\" not in text:
        return text
    raw = bytearray()
    pos = 0
    while pos < len(text):
        if text[pos] != "\\":
            raw += text[pos].encode("utf-8", "surrogateescape")
            pos += 1
        elif text.startswith("\\\\", pos):
            raw += b"\\"
            pos += 2
        elif hexed := _HEX_ESCAPE.match(text, pos):
            raw.append(int(hexed.group(1), 16))
            pos = hexed.end()
        else:
            raise BadPathError(f"bad escape in path component {escape_text(text)}: write a "
                               "backslash as \\\\ and a byte as \\xNN (as ls prints names)")
    return raw.decode("utf-8", "surrogateescape")


def split_path(path: str) -> list[Component]:
    """'/a//b/./c/../d' → ['a', 'b', 'd'], escapes decoded. Lexical, so '..' never climbs
    above the root; an escaped '.' or '..' (``\\x2e\\x2e``) is a name, not a step."""
    parts: list[Component] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(unescape_component(part))
    return parts


def join_components(components: list[str]) -> str:
    """Already escaped components → an absolute path."""
    return "/" + "/".join(components)
