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


def test_the_run_service_and_its_timer_run_strongroom_run() -> None:
    service, timer = _unit("strongroom-run.service"), _unit("strongroom-run.timer")
    assert timer["Timer"]["Unit"] == "strongroom-run.service" and timer["Timer"]["OnCalendar"]
    command = shlex.split(service["Service"]["ExecStart"])
    assert command[0].endswith("/strongroom")
    args = build_parser().parse_args(command[1:])
    assert args.func.__name__ == "cmd_run" and args.no_daemon and not args.dry_run
    assert service["Service"]["Type"] == "oneshot"


def _cronjob() -> dict:
    import yaml

    return yaml.safe_load((DEPLOY / "kubernetes" / "cronjob.yaml").read_text())


def test_the_cronjob_runs_one_shard_per_index_of_an_indexed_job(tmp_path: Path) -> None:
    """The pod's command, run by a real shell with each JOB_COMPLETION_INDEX, gives a
    `strongroom run --shard I/N` that the CLI accepts, one shard per index, all N covered."""
    import json
    import os
    import subprocess
    import sys

    from engine.policies.run import Shard

    doc = _cronjob()
    assert doc["kind"] == "CronJob" and doc["spec"]["concurrencyPolicy"] == "Forbid"
    job = doc["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    plain = {name: e["value"] for name, e in env.items() if "value" in e}
    secret = {name for name, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"SCW_ACCESS_KEY", "SCW_SECRET_KEY", "STRONGROOM_PASSPHRASE"} <= secret
    assert plain["STRONGROOM_STORE"].startswith("s3://") and plain["STRONGROOM_NO_DAEMON"] == "1"
    assert ".scw.cloud" in plain["STRONGROOM_S3_ENDPOINT"]
    shards = int(plain["SHARDS"])
    assert job["completions"] == job["parallelism"] == shards

    fake = tmp_path / "strongroom"  # records the arguments the shell hands to strongroom
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    seen = set()
    for index in range(shards):
        run_env = {**plain, "PATH": f"{tmp_path}:{os.environ['PATH']}",
                   "JOB_COMPLETION_INDEX": str(index)}
        out = subprocess.run(container["command"], env=run_env, capture_output=True,
                             text=True, check=True).stdout
        argv = json.loads(out)
        args = build_parser().parse_args(argv)
        assert args.func.__name__ == "cmd_run"
        seen.add(Shard.parse(args.shard))
    assert seen == {Shard(i, shards) for i in range(1, shards + 1)}


def test_the_containerfile_installs_strongroom_as_a_user() -> None:
    lines = [line.split(None, 1) for line in (DEPLOY / "Containerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    steps = [(k.upper(), v) for k, v in lines]
    assert steps[0][0] == "FROM" and "python:3.1" in steps[0][1]
    assert any(k == "RUN" and "pip install" in v for k, v in steps)
    assert ("USER", "10001") in steps
    image_user = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert image_user["securityContext"]["runAsUser"] == 10001
    copied = {v.split()[0] for k, v in steps if k == "COPY"}
    root = DEPLOY.parent.parent
    assert all((root / c).exists() for c in copied if c != "pyproject.toml") and \
        {"engine", "cli"} <= copied
