"""The seeded inventory: the same seed always gives the same organization, projects, volumes,
server, snapshots and IAM objects (ids included), so tests and demos can name them."""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ZONES = ("fr-par-1", "fr-par-2", "nl-ams-1")
# The Block zones the sandbox serves: those of the real API (it-mil-1 answers 200 since 2026).
REGION_OF_ZONE = {"fr-par-1": "fr-par", "fr-par-2": "fr-par", "fr-par-3": "fr-par",
                  "nl-ams-1": "nl-ams", "nl-ams-2": "nl-ams", "nl-ams-3": "nl-ams",
                  "pl-waw-1": "pl-waw", "pl-waw-2": "pl-waw", "pl-waw-3": "pl-waw",
                  "it-mil-1": "it-mil"}
IOPS_TYPES = {5000: "sbs_5k", 15000: "sbs_15k"}
GB = 1_000_000_000

# Sandbox-only credentials: they open nothing but a local sandbox. The SDK insists on the
# real format (SCW + 17 characters, a UUID secret), so they look like real ones.
KEY_PERMISSIONS: dict[str, list[str]] = {
    "full": ["BlockStorageFullAccess", "InstancesReadOnly", "ObjectStorageFullAccess",
             "ProjectReadOnly", "IAMReadOnly"],
    "readonly": ["BlockStorageReadOnly", "InstancesReadOnly", "ObjectStorageReadOnly",
                 "ProjectReadOnly", "IAMReadOnly"],
    "nobucket": ["BlockStorageFullAccess", "InstancesReadOnly", "ProjectReadOnly",
                 "IAMReadOnly"],
    "noblock": ["InstancesReadOnly", "ObjectStorageFullAccess", "ProjectReadOnly",
                "IAMReadOnly"],
}
ACCESS_KEYS = {"full": "SCWSANDBOXFULL000001", "readonly": "SCWSANDBOXREAD000001",
               "nobucket": "SCWSANDBOXNOBKT00001", "noblock": "SCWSANDBOXNOBLK00001",
               "user": "SCWSANDBOXUSER000001"}
# The "user" key belongs to a person, not an application: its rights come from a policy of
# its own (reads) and from a group's policy (Block, Object Storage, Instances: it may attach).
USER_PERMISSIONS = (["ProjectReadOnly", "IAMReadOnly"],
                    ["BlockStorageFullAccess", "ObjectStorageFullAccess", "InstancesFullAccess"])

PERMISSION_SETS = [
    ("AllProductsFullAccess", "projects", "Full access to all products"),
    ("BlockStorageFullAccess", "projects", "Full access to Block Storage"),
    ("BlockStorageReadOnly", "projects", "Read access to Block Storage"),
    ("InstancesFullAccess", "projects", "Full access to Instances"),
    ("InstancesReadOnly", "projects", "Read access to Instances"),
    ("ObjectStorageFullAccess", "projects", "Full access to Object Storage"),
    ("ObjectStorageReadOnly", "projects", "Read access to Object Storage"),
    ("ProjectManager", "organization", "Manage Projects"),
    ("ProjectReadOnly", "organization", "Read Projects"),
    ("IAMManager", "organization", "Manage IAM"),
    ("IAMReadOnly", "organization", "Read IAM"),
]


@dataclass(frozen=True)
class SeedVolume:
    name: str
    zone: str
    project: int          # index into PROJECTS
    size_gb: int
    iops: int
    content: str          # what the data side writes into it
    tags: tuple[str, ...]
    attached: bool = False


PROJECTS = (("default", "Default project"),
            ("web-production", "Public web site and its database"),
            ("data-platform", "Analytics and archives"))

VOLUMES = (
    SeedVolume("web-01-data", "fr-par-1", 1, 20, 5000, "web",
               ("environment=production", "data_class=internal"), attached=True),
    SeedVolume("postgres-main", "fr-par-1", 1, 50, 15000, "database",
               ("environment=production", "data_class=confidential")),
    SeedVolume("pvc-", "fr-par-2", 2, 10, 5000, "k8s",
               ("k8s", "environment=staging")),
    SeedVolume("vault-secrets", "nl-ams-1", 0, 5, 5000, "luks",
               ("environment=production", "data_class=secret")),
    SeedVolume("media-archive", "nl-ams-1", 2, 30, 15000, "media",
               ("environment=production", "data_class=public")),
    SeedVolume("dev-scratch", "fr-par-2", 0, 5, 15000, "home",
               ("environment=development",)),
)


class Ids:
    """Deterministic UUIDs and times drawn from the seed."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._time = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc) + timedelta(
            minutes=self._random.randrange(600))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def time(self) -> str:
        self._time += timedelta(hours=self._random.randrange(1, 48),
                                microseconds=self._random.randrange(1_000_000))
        return self._time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(seed: int) -> dict[str, Any]:
    """The whole initial document (see state.State)."""
    ids = Ids(seed)
    org = ids.uuid()
    doc: dict[str, Any] = {"seed": seed, "organization_id": org, "projects": {}, "volumes": {},
                           "snapshots": {}, "servers": {}, "instance_volumes": {},
                           "applications": {}, "api_keys": {}, "groups": {}, "policies": {},
                           "rules": {}, "users": {}}
    project_ids = _projects(doc, ids, org)
    server_id = ids.uuid()
    volumes = [_volume(doc, ids, spec, project_ids) for spec in VOLUMES]
    web = volumes[0]
    legacy = _legacy_volume(doc, ids, org, project_ids[1], server_id)
    _server(doc, ids, org, project_ids[1], server_id, web, legacy)
    _snapshot(doc, ids, volumes[1], "postgres-main-nightly")
    _iam(doc, ids, org, project_ids)
    # Drawn after everything above, so the ids seeded before stay what they were.
    _user(doc, ids, org, project_ids)
    _legacy_in_block(doc, ids, legacy, server_id)
    _image_snapshot(doc, ids, web)
    _neighbour(doc, ids)
    volumes[3]["kms_key_id"] = ids.uuid()      # vault-secrets: encrypted with a KMS key
    return doc


def _projects(doc: dict[str, Any], ids: Ids, org: str) -> list[str]:
    out = []
    for index, (name, description) in enumerate(PROJECTS):
        # As on Scaleway, the default project has the organization's id.
        pid = org if index == 0 else ids.uuid()
        stamp = ids.time()
        doc["projects"][pid] = {"id": pid, "name": name, "organization_id": org,
                                "created_at": stamp, "updated_at": stamp,
                                "description": description,
                                "qualification": {"architecture_type":
                                                  "unknown_architecture_type"}}
        out.append(pid)
    return out


def _volume(doc: dict[str, Any], ids: Ids, spec: SeedVolume,
            project_ids: list[str]) -> dict[str, Any]:
    vid = ids.uuid()
    name = spec.name + ids.uuid() if spec.name == "pvc-" else spec.name
    stamp = ids.time()
    volume = {"id": vid, "name": name, "type": IOPS_TYPES[spec.iops],
              "size": spec.size_gb * GB, "project_id": project_ids[spec.project],
              "created_at": stamp, "updated_at": stamp, "references": [],
              "parent_snapshot_id": None, "status": "available", "tags": list(spec.tags),
              "specs": {"perf_iops": spec.iops, "class": "sbs"}, "last_detached_at": None,
              "kms_key_id": None, "zone": spec.zone, "_content": spec.content}
    doc["volumes"][vid] = volume
    return volume


def _legacy_volume(doc: dict[str, Any], ids: Ids, org: str, project: str,
                   server_id: str) -> dict[str, Any]:
    vid = ids.uuid()
    stamp = ids.time().replace("Z", "+00:00")
    volume = {"id": vid, "name": "web-01-legacy-root", "export_uri": None,
              "size": 20 * GB, "volume_type": "b_ssd", "creation_date": stamp,
              "modification_date": stamp, "organization": org, "project": project,
              "tags": [], "server": {"id": server_id, "name": "web-01"}, "state": "available",
              "zone": "fr-par-1"}
    doc["instance_volumes"][vid] = volume
    return volume


def _server(doc: dict[str, Any], ids: Ids, org: str, project: str, server_id: str,
            sbs: dict[str, Any], legacy: dict[str, Any]) -> None:
    stamp = ids.time().replace("Z", "+00:00")
    ref_stamp = ids.time()
    sbs["references"] = [{"id": ids.uuid(), "product_resource_type": "instance_server",
                          "product_resource_id": server_id, "created_at": ref_stamp,
                          "type": "exclusive", "status": "attached"}]
    sbs["status"] = "in_use"
    legacy_entry = {k: v for k, v in legacy.items() if k != "tags"}
    legacy_entry["boot"] = True
    doc["servers"][server_id] = {
        "id": server_id, "name": "web-01", "arch": "x86_64", "commercial_type": "PLAY2-NANO",
        "boot_type": "local", "organization": org, "project": project, "hostname": "web-01",
        "image": None,
        "volumes": {"0": legacy_entry,
                    "1": {"boot": False, "volume_type": "sbs_volume", "id": sbs["id"],
                          "state": "available", "zone": sbs["zone"]}},
        "tags": ["web", "production"], "state": "running", "protected": False,
        "state_detail": "booted", "public_ip": None, "public_ips": [],
        "mac_address": "de:00:00:5a:0b:17", "routed_ip_enabled": True, "ipv6": None,
        "extra_networks": [], "dynamic_ip_required": False, "enable_ipv6": False,
        "private_ip": None, "creation_date": stamp, "modification_date": stamp,
        "bootscript": None, "security_group": {"id": ids.uuid(),
                                               "name": "Default security group"},
        "location": {"zone_id": "fr-par-1", "platform_id": "14", "cluster_id": "31",
                     "hypervisor_id": "902", "node_id": "7"},
        "maintenances": [], "allowed_actions": ["poweroff", "terminate", "reboot",
                                                "stop_in_place", "backup"],
        "placement_group": None, "private_nics": [], "zone": "fr-par-1", "filesystems": [],
        "end_of_service": False, "dns": f"{server_id}.pub.instances.scw.cloud"}


def _snapshot(doc: dict[str, Any], ids: Ids, volume: dict[str, Any], name: str) -> None:
    sid = ids.uuid()
    stamp = ids.time()
    doc["snapshots"][sid] = {
        "id": sid, "name": name, "size": volume["size"], "project_id": volume["project_id"],
        "created_at": stamp, "updated_at": stamp, "references": [], "status": "available",
        "tags": ["nightly"], "zone": volume["zone"], "class": "sbs", "public": False,
        "kms_key_id": None,
        "parent_volume": {"id": volume["id"], "name": volume["name"], "type": volume["type"],
                          "status": "available"},
        "_from_volume": volume["id"]}


def _iam(doc: dict[str, Any], ids: Ids, org: str, project_ids: list[str]) -> None:
    group_id = ids.uuid()
    app_ids = []
    for role, permission_sets in KEY_PERMISSIONS.items():
        app_id, policy_id = ids.uuid(), ids.uuid()
        stamp = ids.time()
        app_ids.append(app_id)
        doc["applications"][app_id] = {
            "id": app_id, "name": f"strongroom-{role}", "description": f"Sandbox {role} key",
            "created_at": stamp, "updated_at": stamp, "organization_id": org,
            "editable": True, "deletable": True, "managed": False, "nb_api_keys": 1,
            "tags": []}
        access = ACCESS_KEYS[role]
        doc["api_keys"][access] = {
            "access_key": access, "secret_key": ids.uuid(), "description": f"sandbox {role}",
            "created_at": stamp, "updated_at": stamp, "expires_at": None,
            "default_project_id": org, "editable": True, "deletable": True, "managed": False,
            "creation_ip": "127.0.0.1", "application_id": app_id, "_role": role}
        project_sets = [p for p in permission_sets if _scope(p) == "projects"]
        org_sets = [p for p in permission_sets if _scope(p) == "organization"]
        rules = []
        if project_sets:
            rules.append({"id": ids.uuid(), "permission_set_names": project_sets,
                          "permission_sets_scope_type": "projects", "condition": "",
                          "project_ids": list(project_ids)})
        if org_sets:
            rules.append({"id": ids.uuid(), "permission_set_names": org_sets,
                          "permission_sets_scope_type": "organization", "condition": "",
                          "organization_id": org})
        doc["policies"][policy_id] = {
            "id": policy_id, "name": f"strongroom-{role}", "description": "",
            "organization_id": org, "created_at": stamp, "updated_at": stamp,
            "editable": True, "deletable": True, "managed": False, "nb_rules": len(rules),
            "nb_scopes": len(rules), "nb_permission_sets": len(permission_sets), "tags": [],
            "application_id": app_id}
        doc["rules"][policy_id] = rules
    stamp = ids.time()
    doc["groups"][group_id] = {
        "id": group_id, "organization_id": org, "name": "backup-operators",
        "description": "Applications that back up volumes", "created_at": stamp,
        "updated_at": stamp, "user_ids": [], "application_ids": app_ids[:1], "tags": [],
        "editable": True, "deletable": True, "managed": False}


def _scope(permission_set: str) -> str:
    return next(scope for name, scope, _ in PERMISSION_SETS if name == permission_set)


def _user(doc: dict[str, Any], ids: Ids, org: str, project_ids: list[str]) -> None:
    """A person's API key (``user_id``, no application): its rights through its own policy and
    through a group's."""
    user_id, stamp = ids.uuid(), ids.time()
    doc["users"][user_id] = {
        "id": user_id, "email": "ops@example.com", "username": "ops@example.com",
        "first_name": "Olga", "last_name": "Ops", "phone_number": "", "locale": "en_US",
        "created_at": stamp, "updated_at": stamp, "organization_id": org, "deletable": True,
        "last_login_at": stamp, "type": "member", "two_factor_enabled": False,
        "status": "activated", "mfa": False, "account_root_user_id": ids.uuid(), "tags": [],
        "locked": False}
    access = ACCESS_KEYS["user"]
    doc["api_keys"][access] = {
        "access_key": access, "secret_key": ids.uuid(), "description": "sandbox user key",
        "created_at": stamp, "updated_at": stamp, "expires_at": None,
        "default_project_id": org, "editable": True, "deletable": True, "managed": False,
        "creation_ip": "127.0.0.1", "user_id": user_id, "_role": "user"}
    group_id = ids.uuid()
    doc["groups"][group_id] = {
        "id": group_id, "organization_id": org, "name": "storage-operators",
        "description": "People who back up volumes", "created_at": stamp, "updated_at": stamp,
        "user_ids": [user_id], "application_ids": [], "tags": ["storage"], "editable": True,
        "deletable": True, "managed": False}
    own, shared = USER_PERMISSIONS
    for name, sets, principal in ((f"ops-{user_id[:8]}", own, {"user_id": user_id}),
                                  ("storage-operators", shared, {"group_id": group_id})):
        policy_id = ids.uuid()
        rules = [{"id": ids.uuid(), "permission_set_names": [p for p in sets
                                                              if _scope(p) == "projects"],
                  "permission_sets_scope_type": "projects", "condition": "",
                  "project_ids": list(project_ids)},
                 {"id": ids.uuid(), "permission_set_names": [p for p in sets
                                                              if _scope(p) == "organization"],
                  "permission_sets_scope_type": "organization", "condition": "",
                  "organization_id": org}]
        rules = [r for r in rules if r["permission_set_names"]]
        doc["policies"][policy_id] = {
            "id": policy_id, "name": name, "description": f"rights of {name}",
            "organization_id": org, "created_at": stamp, "updated_at": stamp,
            "editable": True, "deletable": True, "managed": False, "nb_rules": len(rules),
            "nb_scopes": len(rules), "nb_permission_sets": len(sets), "tags": ["storage"],
            **principal}
        doc["rules"][policy_id] = rules


def _legacy_in_block(doc: dict[str, Any], ids: Ids, legacy: dict[str, Any],
                     server_id: str) -> None:
    """A legacy Instance volume seen through the Block API, as migrated ones are: type b_ssd,
    class bssd, the same id."""
    volume = {"id": legacy["id"], "name": legacy["name"], "type": "b_ssd",
              "size": legacy["size"], "project_id": legacy["project"],
              "created_at": legacy["creation_date"].replace("+00:00", "Z"),
              "updated_at": legacy["modification_date"].replace("+00:00", "Z"),
              "references": [{"id": ids.uuid(), "product_resource_type": "instance_server",
                              "product_resource_id": server_id, "created_at": ids.time(),
                              "type": "exclusive", "status": "attached"}],
              "parent_snapshot_id": None, "status": "in_use", "tags": [],
              "specs": {"perf_iops": None, "class": "bssd"}, "last_detached_at": None,
              "kms_key_id": None, "zone": legacy["zone"], "_content": "home"}
    doc["volumes"][volume["id"]] = volume


def _image_snapshot(doc: dict[str, Any], ids: Ids, volume: dict[str, Any]) -> None:
    """A snapshot an Instance image is made of: in_use, with the image's link."""
    _snapshot(doc, ids, volume, "web-01-golden-image")
    snap = list(doc["snapshots"].values())[-1]
    snap["status"] = "in_use"
    snap["tags"] = ["image"]
    snap["references"] = [{"id": ids.uuid(), "product_resource_type": "instance_image",
                           "product_resource_id": ids.uuid(), "created_at": ids.time(),
                           "type": "link", "status": "attached"}]


def _neighbour(doc: dict[str, Any], ids: Ids) -> None:
    """Another organization's project and snapshot, in a zone ours uses: never listed to us,
    and reading it is denied (403), not unknown (404)."""
    org, project_id, sid, stamp = ids.uuid(), ids.uuid(), ids.uuid(), ids.time()
    doc["projects"][project_id] = {
        "id": project_id, "name": "default", "organization_id": org, "created_at": stamp,
        "updated_at": stamp, "description": "another organization's",
        "qualification": {"architecture_type": "unknown_architecture_type"}}
    doc["snapshots"][sid] = {
        "id": sid, "name": "neighbour-db", "size": 10 * GB, "project_id": project_id,
        "created_at": stamp, "updated_at": stamp, "references": [], "status": "available",
        "tags": [], "zone": "fr-par-1", "class": "sbs", "public": False, "kms_key_id": None,
        "parent_volume": None, "_empty": True}
