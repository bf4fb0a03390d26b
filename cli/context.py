"""What every command needs from the global options and the environment."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from engine.errors import UsageError
from engine.settings import load_settings

APP_NAME = "strongroom"


def default_store_url() -> str:
    return str(Path(platformdirs.user_data_dir(APP_NAME)) / "store")


@dataclass
class Context:
    store_url: str
    profile: str | None
    json: bool
    debug: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Context":
        store = (args.store or os.environ.get("STRONGROOM_STORE")
                 or load_settings().store_url or default_store_url())
        profile = args.profile or os.environ.get("SCW_PROFILE")
        return cls(store_url=store, profile=profile, json=bool(args.json),
                   debug=bool(args.debug))

    def passphrase(self, prompt: str = "Passphrase: ", confirm: bool = False) -> str:
        """STRONGROOM_PASSPHRASE, else STRONGROOM_PASSPHRASE_FILE, else a prompt on a TTY."""
        return read_passphrase("STRONGROOM_PASSPHRASE", prompt, confirm)


def read_passphrase(var: str, prompt: str, confirm: bool) -> str:
    """The variable ``var``, else the file named by ``var``_FILE, else a prompt on a TTY."""
    value = os.environ.get(var)
    if value:
        return value
    path = os.environ.get(f"{var}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read {var}_FILE {path}: {exc.strerror}") from None
    if not sys.stdin.isatty():
        raise UsageError(f"no passphrase: set {var} or {var}_FILE, or run on a terminal")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat: ") != first:
        raise UsageError("the two passphrases differ; nothing was changed")
    if not first:
        raise UsageError("an empty passphrase is not allowed")
    return first
