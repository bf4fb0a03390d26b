"""What every command needs from the global options and the environment."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UsageError
from engine.session import Passphrase, Session, store_url_from
from engine.settings import Settings, load_settings


@dataclass
class Context:
    store_url: str
    profile: str | None
    json: bool
    debug: bool
    settings: Settings
    known_passphrase: str | None = field(default=None, repr=False)  # asked once a command

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Context":
        settings = load_settings()
        profile = args.profile or os.environ.get("SCW_PROFILE")
        return cls(store_url=store_url_from(args.store, settings), profile=profile,
                   json=bool(args.json), debug=bool(args.debug), settings=settings)

    def passphrase(self, prompt: str = "Passphrase: ", confirm: bool = False) -> str:
        """STRONGROOM_PASSPHRASE, else STRONGROOM_PASSPHRASE_FILE, else a prompt on a TTY
        (asked once: the daemon's job gets the same answer as the local store)."""
        if confirm:
            return read_passphrase("STRONGROOM_PASSPHRASE", prompt, confirm)
        if self.known_passphrase is None:
            self.known_passphrase = read_passphrase("STRONGROOM_PASSPHRASE", prompt, False)
        return self.known_passphrase

    def session(self, ask: bool = True) -> Session:
        """The engine for this command. ``ask``: the store may prompt for its passphrase;
        otherwise it opens only when the environment gives one (the inventory's backup
        columns are not worth a prompt)."""
        source: Passphrase | None = self.passphrase
        if not ask and not (os.environ.get("STRONGROOM_PASSPHRASE")
                            or os.environ.get("STRONGROOM_PASSPHRASE_FILE")):
            source = None
        return Session(self.settings, store_url=self.store_url, profile=self.profile,
                       passphrase=source)


def read_passphrase(var: str, prompt: str, confirm: bool) -> str:
    """The variable ``var``, else the file named by ``var``_FILE, else a prompt on a TTY.
    A passphrase is UTF-8 text (FORMAT.md): other bytes are refused, never guessed at."""
    value = os.environ.get(var)
    if value:
        return _utf8(value, var)
    path = os.environ.get(f"{var}_FILE")
    if path:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {var}_FILE {path}: {exc.strerror}") from None
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(f"the passphrase in {var}_FILE {path} is not UTF-8 text: save "
                             "the file as UTF-8") from None
    if not sys.stdin.isatty():
        raise UsageError(f"no passphrase: set {var} or {var}_FILE, or run on a terminal")
    first = _utf8(getpass.getpass(prompt), "the typed passphrase")
    if confirm and getpass.getpass("Repeat: ") != first:
        raise UsageError("the two passphrases differ; nothing was changed")
    if not first:
        raise UsageError("an empty passphrase is not allowed")
    return first


def _utf8(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes the locale could not decode, kept as surrogates
        raise UsageError(f"{where} is not UTF-8 text: passphrases are UTF-8; set it from a "
                         "UTF-8 terminal or file") from None
    return text
