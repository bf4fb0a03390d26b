"""The deployment files run commands the CLI really has, with arguments it accepts."""
from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / name)
    return unit


@pytest.mark.parametrize("key", ["ExecStart", "ExecStop"])
def test_the_systemd_unit_runs_commands_the_cli_accepts(key: str) -> None:
    command = shlex.split(_unit("strongroom.service")["Service"][key])
    assert command[0].endswith("/strongroom")
    args = build_parser().parse_args(command[1:])
    assert args.command == "daemon"
    assert args.func.__name__ == "cmd_daemon"
    if key == "ExecStop":
        assert args.stop
    else:
        assert not args.stop and not args.status and args.idle > 3600
