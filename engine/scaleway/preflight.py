"""Before a backup: are the credentials valid (an application's key or a user's), are the right
permission sets granted on the project, is the staging bucket there, in the right region,
writable and without SSE-KMS default encryption (Scaleway cannot export to such a bucket), and,
given a volume, can it be exported at all (1 GB to 1 TB, not a legacy volume)?"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from scaleway import ScalewayException

from engine.scaleway.api import Apis, apis_for, CallRecorder, scw_message, status_of
from engine.scaleway.config import export_refusal, region_of
from engine.settings import load_settings

OK, MISSING, UNVERIFIED = "ok", "missing", "could not verify"
TEMP_PREFIX = "strongroom-tmp/"

# What each needed permission set is, or is included in.
NEEDED: dict[str, frozenset[str]] = {
    "BlockStorageFullAccess": frozenset({"BlockStorageFullAccess", "AllProductsFullAccess"}),
    "ObjectStorageBucketsRead": frozenset({
        "ObjectStorageBucketsRead", "ObjectStorageReadOnly", "ObjectStorageFullAccess",
        "AllProductsFullAccess", "AllProductsReadOnly"}),
    "ObjectStorageBucketsWrite": frozenset({
        "ObjectStorageBucketsWrite", "ObjectStorageFullAccess", "AllProductsFullAccess"}),
    "ObjectStorageObjectsRead": frozenset({
        "ObjectStorageObjectsRead", "ObjectStorageReadOnly", "ObjectStorageFullAccess",
        "AllProductsFullAccess", "AllProductsReadOnly"}),
    "ObjectStorageObjectsWrite": frozenset({
        "ObjectStorageObjectsWrite", "ObjectStorageFullAccess", "AllProductsFullAccess"}),
}


@dataclass
class CheckResult:
    name: str
    status: str  # OK | MISSING | UNVERIFIED
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def blocking(self) -> bool:
        """Only a known problem stops an operation; one that could not be verified warns."""
        return self.status == MISSING


@dataclass
class PreflightReport:
    project_id: str
    zone: str
    bucket: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    @property
    def missing(self) -> list[str]:
        return [c.name for c in self.checks if c.status == MISSING]

    def to_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "zone": self.zone, "bucket": self.bucket,
                "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


async def preflight(client: Any, *, project_id: str | None = None, zone: str | None = None,
                    bucket: str | None = None, volume_id: str | None = None,
                    reporter: CallRecorder | None = None) -> PreflightReport:
    """``volume_id``: also check that this volume (in ``zone``) can be exported."""
    apis = apis_for(client, reporter)
    zone = zone or apis.client.default_zone or "fr-par-1"
    region = region_of(zone)
    project_id = project_id or apis.client.default_project_id or ""
    bucket = bucket or load_settings().bucket_for(region)
    report = PreflightReport(project_id, zone, bucket)
    key = await _credentials(apis, report)
    if key is not None and not project_id:
        report.checks.append(CheckResult(
            "permissions", UNVERIFIED, "no project to check the permissions on",
            "pass --project, or set SCW_DEFAULT_PROJECT_ID / default_project_id in the "
            "Scaleway config"))
    elif key is not None:
        await _permissions(apis, key, project_id, report)
    await asyncio.to_thread(_bucket_checks, apis, bucket, region, report)
    if volume_id:
        await asyncio.to_thread(_volume_check, apis, volume_id, zone, report)
    return report


def _volume_check(apis: Apis, volume_id: str, zone: str, report: PreflightReport) -> None:
    from engine.scaleway.inventory import LEGACY_TYPES

    try:
        vol = apis.block.get_volume(volume_id=volume_id, zone=zone)
    except ScalewayException as exc:
        report.checks.append(CheckResult(
            "volume", MISSING if status_of(exc) in (403, 404) else UNVERIFIED,
            f"volume {volume_id} in {zone}: {scw_message(exc)}",
            "pick a volume from `strongroom inventory`"))
        return
    kind = str(vol.type_)
    if kind in LEGACY_TYPES or str(getattr(vol.specs, "class_", "") or "") == "bssd":
        report.checks.append(CheckResult(
            "volume", MISSING, f"volume {vol.name} is {LEGACY_TYPES.get(kind, LEGACY_TYPES['b_ssd'])}",
            "migrate it to Block Storage (SBS) first"))
        return
    refusal = export_refusal(int(vol.size or 0))
    if refusal:
        report.checks.append(CheckResult(
            "volume", MISSING, f"volume {vol.name}: {refusal}",
            "back up its data from inside the server (a file-level backup), or split it "
            "across volumes of 1 TB or less"))
        return
    report.checks.append(CheckResult("volume", OK, f"volume {vol.name} can be exported "
                                                   f"({int(vol.size or 0) / 1e9:g} GB)"))


async def _credentials(apis: Apis, report: PreflightReport) -> Any:
    try:
        key = await asyncio.to_thread(apis.iam.get_api_key, access_key=apis.client.access_key)
    except ScalewayException as exc:
        if status_of(exc) == 401:
            report.checks.append(CheckResult(
                "credentials", MISSING, f"the API key was refused: {scw_message(exc)}",
                "create a new API key in the console (IAM → API keys) and set SCW_ACCESS_KEY "
                "and SCW_SECRET_KEY, or fix ~/.config/scw/config.yaml"))
            return None
        # 403 on IAM: the key works but may not read IAM; that is a permission question.
        report.checks.append(CheckResult(
            "credentials", OK, f"the API key is accepted (IAM answered {status_of(exc)})"))
        report.checks.append(CheckResult(
            "permissions", UNVERIFIED, f"cannot read the key's IAM policies: {scw_message(exc)}",
            "grant IAMReadOnly to the key's principal so preflight can check permissions, or "
            "check by hand that it has " + ", ".join(NEEDED)))
        return None
    report.checks.append(CheckResult("credentials", OK,
                                     f"API key {key.access_key} is valid"))
    return key


async def _permissions(apis: Apis, key: Any, project_id: str, report: PreflightReport) -> None:
    principal = ({"application_ids": [key.application_id]} if key.application_id
                 else {"user_ids": [key.user_id]} if key.user_id else None)
    if principal is None:
        report.checks.append(CheckResult("permissions", UNVERIFIED,
                                         "the API key has no application or user",
                                         "check its owner in the console (IAM → API keys)"))
        return
    try:
        granted = await asyncio.to_thread(_granted_sets, apis, principal, project_id)
    except ScalewayException as exc:
        report.checks.append(CheckResult(
            "permissions", UNVERIFIED, f"cannot read IAM policies: {scw_message(exc)}",
            "grant IAMReadOnly to the key's principal so preflight can check, or check by "
            "hand that it has " + ", ".join(NEEDED)))
        return
    who = (f"application {key.application_id}" if key.application_id
           else f"user {key.user_id}")
    for name, satisfied_by in NEEDED.items():
        hit = sorted(granted & satisfied_by)
        if hit:
            detail = f"granted by {hit[0]}" if hit[0] != name else "granted"
            report.checks.append(CheckResult(f"permission {name}", OK, detail))
        else:
            report.checks.append(CheckResult(
                f"permission {name}", MISSING,
                f"{who} has no {name} on project {project_id}",
                f"add a policy rule granting {name} on project {project_id} to {who} "
                f"(console: IAM → Policies)"))


def _granted_sets(apis: Apis, principal: dict[str, list[str]], project_id: str) -> set[str]:
    """Permission sets that apply to ``project_id`` through the principal and its groups."""
    org = apis.client.default_organization_id or _organization_of(apis, principal)
    groups = apis.iam.list_groups_all(organization_id=org, **principal)
    policies = list(apis.iam.list_policies_all(organization_id=org, **principal))
    if groups:
        policies += apis.iam.list_policies_all(organization_id=org,
                                               group_ids=[g.id for g in groups])
    granted: set[str] = set()
    seen: set[str] = set()
    for policy in policies:
        if policy.id in seen:
            continue
        seen.add(policy.id)
        for rule in apis.iam.list_rules_all(policy_id=policy.id):
            # A rule scoped to the organization covers every project in it.
            if rule.organization_id or project_id in (rule.project_ids or []):
                granted.update(rule.permission_set_names or [])
    return granted


def _organization_of(apis: Apis, principal: dict[str, list[str]]) -> str | None:
    """Policies are listed per organization: find the principal's when the profile has none."""
    if "application_ids" in principal:
        return apis.iam.get_application(application_id=principal["application_ids"][0]) \
            .organization_id
    return apis.iam.get_user(user_id=principal["user_ids"][0]).organization_id


def _encryption_check(s3: Any, bucket: str, report: PreflightReport) -> None:
    try:
        config = s3.get_bucket_encryption(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ServerSideEncryptionConfigurationNotFoundError", "NotImplemented",
                    "NoSuchBucketEncryption"):
            report.checks.append(CheckResult("bucket encryption", OK,
                                             "no SSE-KMS default encryption"))
        else:
            report.checks.append(CheckResult(
                "bucket encryption", UNVERIFIED, f"cannot read it: {scw_message(exc)}",
                "make sure the bucket has no SSE-KMS default encryption"))
        return
    except BotoCoreError as exc:
        report.checks.append(CheckResult("bucket encryption", UNVERIFIED, str(exc), ""))
        return
    rules = config.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    if any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms"
           for r in rules):
        report.checks.append(CheckResult(
            "bucket encryption", MISSING,
            f"bucket {bucket} encrypts with SSE-KMS by default: Scaleway cannot export "
            f"snapshots to it",
            f"remove its default encryption (`aws s3api delete-bucket-encryption --bucket "
            f"{bucket}`) or choose another bucket with --bucket"))
    else:
        report.checks.append(CheckResult("bucket encryption", OK,
                                         "no SSE-KMS default encryption"))


def _bucket_checks(apis: Apis, bucket: str, region: str, report: PreflightReport) -> None:
    s3 = apis.s3(region)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == 404:
            report.checks.append(CheckResult(
                "bucket", MISSING, f"bucket {bucket} does not exist",
                f"create it in region {region} (`scw object bucket create name={bucket} "
                f"region={region}`) or choose another with --bucket"))
        else:
            report.checks.append(CheckResult(
                "bucket", MISSING if code == 403 else UNVERIFIED,
                f"bucket {bucket}: {scw_message(exc)}",
                "grant ObjectStorageBucketsRead on the project that owns the bucket"))
        return
    except BotoCoreError as exc:
        report.checks.append(CheckResult("bucket", UNVERIFIED, f"cannot reach S3: {exc}",
                                         "check STRONGROOM_S3_ENDPOINT and the network"))
        return
    report.checks.append(CheckResult("bucket", OK, f"bucket {bucket} exists"))
    try:
        where = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except (ClientError, BotoCoreError) as exc:
        report.checks.append(CheckResult("bucket region", UNVERIFIED, scw_message(exc),
                                         "grant ObjectStorageBucketsRead"))
    else:
        if where == region:
            report.checks.append(CheckResult("bucket region", OK, f"in {region}"))
        else:
            report.checks.append(CheckResult(
                "bucket region", MISSING, f"bucket {bucket} is in {where}, not {region}",
                f"use a bucket in {region} (exports and imports stay in the zone's region)"))
    _encryption_check(s3, bucket, report)
    probe = f"{TEMP_PREFIX}preflight-{uuid.uuid4().hex[:12]}"
    try:
        s3.put_object(Bucket=bucket, Key=probe, Body=b"strongroom preflight probe\n")
    except (ClientError, BotoCoreError) as exc:
        report.checks.append(CheckResult(
            "bucket write", MISSING, f"cannot write to {bucket}: {scw_message(exc)}",
            "grant ObjectStorageObjectsWrite on the bucket's project"))
        return
    try:
        s3.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as exc:
        report.checks.append(CheckResult(
            "bucket write", MISSING, f"wrote a probe but cannot delete it: {scw_message(exc)}",
            f"grant ObjectStorageObjectsDelete/Write; remove s3://{bucket}/{probe} by hand"))
        return
    report.checks.append(CheckResult("bucket write", OK, "a probe object was written and "
                                                         "removed"))
