"""moto's S3 server runs as a real process with the three regional staging buckets; the proxy
in front of it really drops connections and refuses denied keys."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ResponseStreamingError

from engine.sandbox import s3
from engine.sandbox.s3 import S3Server


def test_buckets_have_their_region(s3_server: S3Server):
    for region, bucket in s3.STAGING_BUCKETS.items():
        client = s3_server.client(region)
        assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == region
        assert s3.bucket_region(bucket) == region
    assert s3.bucket_region("someone-elses-bucket") is None
    names = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert set(s3.STAGING_BUCKETS.values()) <= names


def test_endpoint_is_local_proxy_and_moto_is_a_process(s3_server: S3Server):
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.endpoint != s3_server.moto_endpoint
    assert s3_server._process is not None and s3_server._process.poll() is None


def test_dropped_body_is_seen_by_boto3(s3_server: S3Server):
    client = s3_server.client()
    data = os.urandom(1 << 20)
    client.put_object(Bucket="strongroom-staging-fr-par", Key="drop/me", Body=data)
    before = s3_server.proxy.stats.dropped
    s3_server.proxy.set_drop(count=1, after_bytes=50_000)
    try:
        body = client.get_object(Bucket="strongroom-staging-fr-par", Key="drop/me")["Body"]
        with pytest.raises(ResponseStreamingError):
            body.read()
        assert s3_server.proxy.stats.dropped == before + 1
        # the next one goes through untouched
        again = client.get_object(Bucket="strongroom-staging-fr-par", Key="drop/me")["Body"].read()
        assert again == data
    finally:
        s3_server.proxy.set_drop()


def test_transfer_manager_retries_a_dropped_download(s3_server: S3Server, tmp_path: Path):
    client = s3_server.client()
    data = os.urandom(3 << 20)
    client.put_object(Bucket="strongroom-staging-nl-ams", Key="retry/me", Body=data)
    before = s3_server.proxy.stats.dropped
    s3_server.proxy.set_drop(count=1, after_bytes=100_000)
    try:
        client.download_file("strongroom-staging-nl-ams", "retry/me", str(tmp_path / "got"))
    finally:
        s3_server.proxy.set_drop()
    assert s3_server.proxy.stats.dropped == before + 1
    assert (tmp_path / "got").read_bytes() == data


def test_denied_key_gets_access_denied(s3_server: S3Server):
    s3_server.proxy.denied_keys.add("SCWNOBUCKETACCESS000")
    try:
        client = s3_server.client(keys=("SCWNOBUCKETACCESS000", "whatever"))
        with pytest.raises(ClientError) as denied:
            client.list_objects_v2(Bucket="strongroom-staging-fr-par")
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        s3_server.proxy.denied_keys.discard("SCWNOBUCKETACCESS000")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stop_kills_moto_and_objects_survive_a_restart(tmp_path: Path):
    server = S3Server(state_dir=tmp_path).start()
    process, moto_port, proxy_port = server._process, server.moto_port, server.proxy.port
    server.client("pl-waw").put_object(Bucket="strongroom-staging-pl-waw", Key="a/b c.qcow2",
                                       Body=b"kept")
    server.stop()
    assert process.poll() is not None
    assert not _port_open(moto_port) and not _port_open(proxy_port)
    with S3Server(state_dir=tmp_path) as again:
        got = again.client("pl-waw").get_object(Bucket="strongroom-staging-pl-waw", Key="a/b c.qcow2")
        assert got["Body"].read() == b"kept"


def test_drop_rate_cuts_only_long_bodies(s3_server: S3Server):
    client = s3_server.client()
    client.put_object(Bucket="strongroom-staging-fr-par", Key="rate/long", Body=os.urandom(300_000))
    client.put_object(Bucket="strongroom-staging-fr-par", Key="rate/short", Body=b"short")
    before = s3_server.proxy.stats.dropped
    s3_server.proxy.set_drop(rate=1.0, after_bytes=100_000)
    try:
        for _ in range(2):
            short = client.get_object(Bucket="strongroom-staging-fr-par", Key="rate/short")
            assert short["Body"].read() == b"short"
            body = client.get_object(Bucket="strongroom-staging-fr-par", Key="rate/long")["Body"]
            with pytest.raises(ResponseStreamingError):
                body.read()
    finally:
        s3_server.proxy.set_drop()
    assert s3_server.proxy.stats.dropped == before + 2


def _gone(pid: int, within: float) -> bool:
    """True once `pid` no longer runs (a zombie waiting for a reaper counts as gone)."""
    import time
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_moto_does_not_outlive_its_parent(how: str, tmp_path: Path):
    import signal
    import subprocess
    import sys
    script = ("import sys, time\n"
              "from engine.sandbox.s3 import S3Server\n"
              "server = S3Server().start()\n"
              "print(server._process.pid, flush=True)\n"
              "time.sleep(60 if sys.argv[1] == 'kill' else 0)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, how], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parents[2])
    try:
        moto_pid = int(parent.stdout.readline())
        if how == "kill":
            parent.send_signal(signal.SIGKILL)  # no atexit: the launcher's watch thread must act
        parent.wait(60)
        # the launcher's watch thread looks twice a second; a loaded machine may run it late
        assert _gone(moto_pid, 60)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_signatures_are_checked_when_secrets_are_known(s3_server: S3Server):
    import urllib.error
    import urllib.request
    secrets = {"SCWFULLACCESS0000000": "full-secret", "SCWREADONLY000000000": "ro-secret"}
    server = s3_server
    server.proxy.secrets = secrets  # what S3Server(secrets=...) sets at start
    try:
        good = server.client("pl-waw", keys=("SCWFULLACCESS0000000", "full-secret"))
        bucket, key = "strongroom-staging-pl-waw", "odd name/+=&?~.qcow2"
        good.put_object(Bucket=bucket, Key=key, Body=b"signed")
        assert good.get_object(Bucket=bucket, Key=key, Range="bytes=0-2")["Body"].read() == b"sig"
        assert good.list_objects_v2(Bucket=bucket, Prefix="odd")["KeyCount"] == 1
        assert server.client("pl-waw", keys=("SCWREADONLY000000000", "ro-secret")).head_object(
            Bucket=bucket, Key=key)["ContentLength"] == 6
        for keys, code in [(("SCWFULLACCESS0000000", "wrong"), "SignatureDoesNotMatch"),
                           (("SCWUNKNOWN0000000000", "x"), "InvalidAccessKeyId")]:
            with pytest.raises(ClientError) as refused:
                server.client("pl-waw", keys=keys).list_objects_v2(Bucket=bucket)
            assert refused.value.response["Error"]["Code"] == code
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{server.endpoint}/{bucket}")
        assert anonymous.value.code == 403
        url = good.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
        with urllib.request.urlopen(url) as answer:
            assert answer.read() == b"signed"
    finally:
        server.proxy.secrets = None
