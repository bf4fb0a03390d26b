"""Untrusted text (volume and snapshot names, tags, API messages, names inside a backup) made
safe for a terminal: a control character, an escape sequence or a bidi override would move the
cursor, change the title or reorder a line. Hidden characters are shown as ``\\xNN``."""
from __future__ import annotations

import unicodedata

# Unicode categories shown as escapes: controls, invisible formatting (bidi overrides that
# reorder a line, zero-width characters), line and paragraph separators, surrogates.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def hidden(ch: str) -> bool:
    return unicodedata.category(ch) in HIDDEN_CATEGORIES


def hex_escape(ch: str) -> str:
    try:
        raw = ch.encode("utf-8", "surrogateescape")  # an undecodable byte: itself again
    except UnicodeEncodeError:  # a lone surrogate no decoder made: shown, never a crash
        raw = ch.encode("utf-8", "surrogatepass")
    return "".join(f"\\x{b:02x}" for b in raw)


def show_hidden(text: str) -> str:
    """``text`` for a terminal: hidden characters as ``\\xNN``, the rest as is."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a look at each character
    return "".join(hex_escape(ch) if hidden(ch) else ch for ch in text)
