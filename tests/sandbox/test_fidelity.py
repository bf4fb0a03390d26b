"""Fidelity to the recorded real traffic (../shared/scaleway-api-recordings/).

The Block cassettes are replayed against the sandbox: the same requests in the same order,
recorded ids mapped to the objects the sandbox creates, recorded projects and buckets mapped to
the sandbox's. Each answer must have the recorded status code, the same JSON keys and value
types, and each object goes through the recorded statuses. The Account, Instance and IAM
cassettes create things the sandbox only seeds: their reads are sent for the seeded object of the
same kind. Every kind of exchange served is checked; the test fails if one goes unchecked.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config

yaml = pytest.importorskip("yaml")

RECORDINGS = Path(os.environ.get("STRONGROOM_RECORDINGS",
                                 Path(__file__).resolve().parents[2].parent.parent
                                 / "shared" / "scaleway-api-recordings"))
if not RECORDINGS.is_dir():
    RECORDINGS = Path("/work/shared/scaleway-api-recordings")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TRANSIENT = {"creating", "updating", "exporting", "deleting", "snapshotting", "resizing"}
# Added to the API after some recordings were made: absent from the older ones.
NEWER_FIELDS = {"kms_key_id"}
# One of these names the principal (policies) or the scope (rules): the set differs by kind.
ALTERNATIVES = {"user_id", "group_id", "application_id", "no_principal", "project_ids",
                "organization_id", "account_root_user_id"}
BLOCK_CASSETTES = ["block-volume-basic", "block-volume-update-size", "block-volume-update-iops",
                   "block-volume-from-snapshot-with-size", "block-snapshot-basic",
                   "block-data-source-volume-basic", "block-snapshot-to-s3",
                   "block-action-snapshot-export-basic", "block-snapshot-from-s3"]
EXPECTED_KINDS = {
    "POST /block/v1/zones/{}/volumes 200", "GET /block/v1/zones/{}/volumes/{} 200",
    "GET /block/v1/zones/{}/volumes/{} 404", "PATCH /block/v1/zones/{}/volumes/{} 200",
    "DELETE /block/v1/zones/{}/volumes/{} 204", "DELETE /block/v1/zones/{}/volumes/{} 404",
    "GET /block/v1/zones/{}/volumes 200",
    "POST /block/v1/zones/{}/snapshots 200", "GET /block/v1/zones/{}/snapshots/{} 200",
    "GET /block/v1/zones/{}/snapshots/{} 404", "DELETE /block/v1/zones/{}/snapshots/{} 204",
    "DELETE /block/v1/zones/{}/snapshots/{} 404",
    "POST /block/v1/zones/{}/snapshots/{}/export-to-object-storage 200",
    "POST /block/v1alpha1/zones/{}/snapshots/{}/export-to-object-storage 200",
    "GET /block/v1alpha1/zones/{}/snapshots/{} 200",
    "POST /block/v1/zones/{}/snapshots/import-from-object-storage 200",
    "GET /account/v3/projects 200", "GET /account/v3/projects/{} 200",
    "GET /account/v3/projects/{} 404",
    "GET /instance/v1/zones/{}/servers/{} 200", "GET /instance/v1/zones/{}/servers/{} 404",
    "GET /instance/v1/zones/{}/volumes/{} 404",
    "GET /iam/v1alpha1/api-keys/{} 200", "GET /iam/v1alpha1/api-keys/{} 404",
    "GET /iam/v1alpha1/applications/{} 200", "GET /iam/v1alpha1/applications/{} 404",
    "GET /iam/v1alpha1/policies/{} 200", "GET /iam/v1alpha1/policies/{} 404",
    "GET /iam/v1alpha1/rules 200",
}
_CHECKED: dict[str, set[str]] = {}     # test -> kinds of exchange it checked


def _cassette(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((RECORDINGS / f"{name}.yaml").read_text())
    return [i for i in data["interactions"] if "://api.scaleway.com/" in i["request"]["url"]]


def _kind(method: str, path: str, code: int) -> str:
    path = UUID.sub("{}", path)
    path = re.sub(r"/zones/[a-z]{2}-[a-z]{3}-\d", "/zones/{}", path)
    path = re.sub(r"/api-keys/SCW\w+", "/api-keys/{}", path)
    return f"{method} {path} {code}"


def shape_diff(recorded: Any, ours: Any, where: str = "") -> list[str]:
    """Differences in keys and value types (values themselves may differ)."""
    if isinstance(recorded, dict) and isinstance(ours, dict):
        problems = []
        rec, got = set(recorded) - ALTERNATIVES, set(ours) - ALTERNATIVES
        if rec - got - NEWER_FIELDS:
            problems.append(f"{where}: missing {sorted(rec - got - NEWER_FIELDS)}")
        if got - rec - NEWER_FIELDS:
            problems.append(f"{where}: extra {sorted(got - rec - NEWER_FIELDS)}")
        for key in sorted(set(recorded) & set(ours)):
            problems += shape_diff(recorded[key], ours[key], f"{where}.{key}")
        return problems
    if isinstance(recorded, list) and isinstance(ours, list):
        if recorded and ours:
            return [p for item in ours for p in shape_diff(recorded[0], item, f"{where}[]")]
        return []
    if type(recorded) is not type(ours):
        return [f"{where}: recorded {type(recorded).__name__}, sandbox {type(ours).__name__}"]
    return []


class Replay:
    """Sends recorded requests to the sandbox, mapping ids, and collects what differs."""

    def __init__(self, sandbox, tmp: Path) -> None:
        self.sandbox = sandbox
        self.tmp = tmp
        self.token = sandbox.keys["full"][1]
        self.ids: dict[str, str] = {}
        self.problems: list[str] = []
        self.kinds: set[str] = set()
        self.statuses: dict[str, list[str]] = {}     # our id -> statuses seen (deduplicated)
        self.recorded_statuses: dict[str, list[str]] = {}

    # -- mapping ------------------------------------------------------------------------------
    def map_text(self, text: str) -> str:
        return UUID.sub(lambda m: self.ids.get(m.group(0), m.group(0)), text)

    def map_body(self, raw: str | None, zone: str) -> dict[str, Any] | None:
        if not raw:
            return None
        body = json.loads(self.map_text(raw))
        if "project_id" in body:
            body["project_id"] = self.sandbox.organization_id
        if "bucket" in body:
            body["bucket"] = self.sandbox.buckets[zone.rsplit("-", 1)[0]]
        return body

    # -- sending ------------------------------------------------------------------------------
    def send(self, method: str, path: str, params: list[tuple[str, str]],
             body: dict[str, Any] | None) -> requests.Response:
        return requests.request(method, self.sandbox.api_url + path, params=params, json=body,
                                headers={"X-Auth-Token": self.token}, timeout=30)

    def check(self, name: str, method: str, path: str, params: list[tuple[str, str]],
              body: dict[str, Any] | None, code: int, recorded_body: str,
              reshape=None) -> requests.Response:
        kind = _kind(method, urlsplit(path).path, code)
        recorded = json.loads(recorded_body) if recorded_body.strip() else None
        answer = self.send(method, path, params, body)
        if method == "GET" and code == 200 and isinstance(recorded, dict) \
                and "status" in recorded:
            answer = self._until(recorded["status"], method, path, params, answer)
        self.kinds.add(kind)
        if answer.status_code != code:
            self.problems.append(f"{name}: {kind}: sandbox answered {answer.status_code} "
                                 f"{answer.text[:200]}")
            return answer
        ours = answer.json() if answer.content else None
        if reshape is not None:
            recorded, ours = reshape(recorded), reshape(ours)
        self.problems += [f"{name}: {kind}: {p}" for p in shape_diff(recorded, ours)]
        return answer

    def _until(self, status: str, method: str, path: str, params, answer):
        """Poll until the sandbox shows the recorded status (a transient one may be missed
        when the sandbox is faster than the real API: then the final one is accepted)."""
        deadline = time.monotonic() + 60  # generous: a loaded machine; it returns on a match
        while answer.status_code == 200:
            ours = answer.json().get("status")
            if ours == status or (status in TRANSIENT and ours not in TRANSIENT):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
            answer = self.send(method, path, params, None)
        return answer

    def note_status(self, recorded_id: str | None, recorded: str | None,
                    ours_id: str | None, ours: str | None) -> None:
        for table, key, status in ((self.recorded_statuses, recorded_id, recorded),
                                   (self.statuses, ours_id, ours)):
            if key and status:
                seen = table.setdefault(key, [])
                if not seen or seen[-1] != status:
                    seen.append(status)


@pytest.fixture
def replay(sandbox, tmp_path) -> Replay:
    return Replay(sandbox, tmp_path)


def _upload_import_source(sandbox, bucket: str, key: str, size: int, tmp: Path) -> None:
    image = tmp / "source.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), str(size)],
                   check=True)
    access, secret = sandbox.keys["full"]
    client = boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                          aws_access_key_id=access, aws_secret_access_key=secret,
                          region_name="fr-par", config=Config(s3={"addressing_style": "path"}))
    client.upload_file(str(image), bucket, key)


def _replay_block(replay: Replay, name: str) -> None:
    for interaction in _cassette(name):
        req, res = interaction["request"], interaction["response"]
        url = urlsplit(req["url"])
        if not url.path.startswith("/block/"):
            continue
        zone = url.path.split("/zones/")[1].split("/")[0]
        body = replay.map_body(req.get("body"), zone)
        if url.path.endswith("import-from-object-storage") and name == "block-snapshot-from-s3":
            _upload_import_source(replay.sandbox, body["bucket"], body["key"],
                                  json.loads(res["body"])["size"], replay.tmp)
        path = replay.map_text(url.path)
        params = [(k, replay.map_text(v)) for k, v in parse_qsl(url.query)]
        answer = replay.check(name, req["method"], path, params, body, res["code"], res["body"])
        recorded = json.loads(res["body"]) if res["body"].strip() else {}
        if answer.status_code == res["code"] == 200 and "id" in recorded:
            ours = answer.json()
            if req["method"] == "POST" and recorded["id"] not in replay.ids:
                replay.ids[recorded["id"]] = ours["id"]
            replay.note_status(recorded["id"], recorded.get("status"), ours["id"],
                               ours.get("status"))


@pytest.mark.parametrize("name", BLOCK_CASSETTES)
def test_block_cassettes_replay(replay, name):
    _replay_block(replay, name)
    assert not replay.problems, "\n".join(replay.problems)
    # the same status transitions, object by object
    for recorded_id, ours_id in replay.ids.items():
        assert replay.statuses.get(ours_id) == replay.recorded_statuses.get(recorded_id), \
            f"{name}: {recorded_id}"
    _CHECKED[name] = replay.kinds


def _seeded(sandbox) -> dict[str, Any]:
    state = sandbox.world.state
    server = next(iter(state.coll("servers").values()))
    attached = next(v for v in state.coll("volumes").values() if v["references"])
    key = state.coll("api_keys")[sandbox.keys["full"][0]]
    policy = next(p for p in state.coll("policies").values()
                  if p["application_id"] == key["application_id"])
    project = next(p for p in state.coll("projects").values() if p["name"] != "default")
    return {"server": server, "attached": attached, "key": key, "policy": policy,
            "project": project}


def _sbs_only(body: Any) -> Any:
    """Compare a server's SBS volume entries only (the seeded server also has a b_ssd one)."""
    if isinstance(body, dict) and "server" in body:
        server = dict(body["server"])
        server["volumes"] = {"sbs": next(v for v in server["volumes"].values()
                                         if v["volume_type"] == "sbs_volume")}
        return {"server": server}
    return body


def test_account_instance_iam_reads(replay, sandbox):
    seeded = _seeded(sandbox)
    missing = str(uuid.uuid4())
    target = {
        "/account/v3/projects/{}": (f"/account/v3/projects/{seeded['project']['id']}",
                                    f"/account/v3/projects/{missing}"),
        "/instance/v1/zones/{}/servers/{}": (
            f"/instance/v1/zones/{seeded['server']['zone']}/servers/{seeded['server']['id']}",
            f"/instance/v1/zones/fr-par-1/servers/{missing}"),
        "/instance/v1/zones/{}/volumes/{}": (
            None, f"/instance/v1/zones/{seeded['attached']['zone']}/volumes/"
                  f"{seeded['attached']['id']}"),
        "/block/v1/zones/{}/volumes/{}": (
            f"/block/v1/zones/{seeded['attached']['zone']}/volumes/{seeded['attached']['id']}",
            None),
        "/iam/v1alpha1/api-keys/{}": (f"/iam/v1alpha1/api-keys/{seeded['key']['access_key']}",
                                      "/iam/v1alpha1/api-keys/SCWXXXXXXXXXXXXXXXXX"),
        "/iam/v1alpha1/applications/{}": (
            f"/iam/v1alpha1/applications/{seeded['key']['application_id']}",
            f"/iam/v1alpha1/applications/{missing}"),
        "/iam/v1alpha1/policies/{}": (f"/iam/v1alpha1/policies/{seeded['policy']['id']}",
                                      f"/iam/v1alpha1/policies/{missing}"),
    }
    for name in ("account-project-basic", "account-data-source-project-list",
                 "iam-api-key-with-application", "iam-data-source-api-key-basic",
                 "iam-policy-basic", "instance-server-server-with-block-non-default-zone"):
        for interaction in _cassette(name):
            req, res = interaction["request"], interaction["response"]
            url = urlsplit(req["url"])
            if req["method"] != "GET":
                continue
            template = _kind("GET", url.path, 0).split(" ")[1]
            params = dict(parse_qsl(url.query))
            if template == "/block/v1/zones/{}/volumes/{}":
                if json.loads(res["body"]).get("status") != "in_use":
                    continue        # the replayed Block cassettes check the rest
            if template == "/instance/v1/zones/{}/servers/{}" and res["code"] == 200:
                if json.loads(res["body"])["server"]["state"] != seeded["server"]["state"]:
                    continue        # a stopped server has no location: compare like states
            if template in target:
                path = target[template][0 if res["code"] == 200 else 1]
                if path is None:
                    continue
            elif template in ("/account/v3/projects", "/iam/v1alpha1/rules"):
                path = template
                if "organization_id" in params:
                    params["organization_id"] = sandbox.organization_id
                if "policy_id" in params:
                    params["policy_id"] = seeded["policy"]["id"]
            else:
                continue            # products, user_data, v2alpha1: not served
            replay.check(name, "GET", path, list(params.items()), None, res["code"],
                         res["body"], reshape=_sbs_only)
    assert not replay.problems, "\n".join(replay.problems)
    _CHECKED["reads"] = replay.kinds


def test_every_kind_of_exchange_was_checked():
    """Runs last in this module: the tests above must together have checked every kind."""
    if len(_CHECKED) < len(BLOCK_CASSETTES) + 1:
        pytest.skip("only meaningful after every replay test of this module ran and passed")
    seen = set().union(*_CHECKED.values())
    assert EXPECTED_KINDS <= seen, sorted(EXPECTED_KINDS - seen)
