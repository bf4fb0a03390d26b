"""The same store on S3: a real moto S3 server process, driven through boto3 over HTTP."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.store import make_image


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {"STRONGROOM_S3_ENDPOINT": url, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "fr-par"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        # moto imports Flask and boto: slow on a loaded machine, so a generous deadline (it
        # returns as soon as the server listens), and a clear failure if it never does
        deadline, up = time.monotonic() + 90, False
        while not up and time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                up = True
            except OSError:
                time.sleep(0.1)
        assert up, f"moto server on port {port} never listened (exit code {proc.poll()})"
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="fr-par").create_bucket(
            Bucket="backups", CreateBucketConfiguration={"LocationConstraint": "fr-par"})
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_s3_store_round_trip(tmp_path: Path, s3_endpoint: dict, store_cli) -> None:
    url = "s3://backups/team/store"
    missing = store_cli("snapshots", store=url)
    assert missing.code == 2 and "no store at" in missing.stderr
    assert store_cli("init", store=url).code == 0
    image = make_image(tmp_path / "a.img", 3_000_000, seed=5)
    backed = store_cli("--json", "backup-image", str(image), store=url)
    assert backed.code == 0, backed.stderr
    snap = json.loads(backed.out)["snapshot"]
    again = json.loads(store_cli("--json", "backup-image", str(image), store=url).out)
    assert again["stored_bytes"] < 20_000
    out = tmp_path / "out.img"
    assert store_cli("restore-image", snap[:10], str(out), store=url).code == 0
    assert out.read_bytes() == image.read_bytes()
    assert store_cli("check", "--read-data", store=url).code == 0
    assert store_cli("snapshots", store=url, passphrase="wrong").code == 2
