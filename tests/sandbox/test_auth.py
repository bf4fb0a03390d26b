"""Authentication by X-Auth-Token and permission sets: what each sandbox API key may do."""
from __future__ import annotations

import pytest
import requests
from scaleway.account.v3 import AccountV3ProjectAPI
from scaleway.block import v1
from scaleway.instance.v1 import InstanceV1API
from scaleway_core.api import ScalewayException

from tests.sandbox.helpers import GB, settle


def _denied(call, **kwargs) -> dict:
    with pytest.raises(ScalewayException) as err:
        call(**kwargs)
    assert err.value.status_code == 403
    return err.value.response.json()


def test_missing_or_unknown_token_is_denied(sandbox):
    url = f"{sandbox.api_url}/block/v1/zones/fr-par-1/volumes"
    missing = requests.get(url, timeout=30)
    assert missing.status_code == 401
    assert missing.json()["type"] == "denied_authentication"
    unknown = requests.get(url, headers={"X-Auth-Token": "11111111-1111-1111-1111-111111111111"},
                           timeout=30)
    assert unknown.status_code == 401
    assert unknown.json() == {"message": "authentication is denied", "method": "api_key",
                              "reason": "invalid_argument", "type": "denied_authentication"}


def test_key_without_block_rights_gets_permissions_denied(scw_client):
    api = v1.BlockV1API(scw_client("noblock"))
    body = _denied(api.list_volumes, include_deleted=False)
    # the object type is named, not the product (as recorded)
    assert body == {"details": [{"action": "read", "resource": "volume"}],
                    "message": "insufficient permissions", "type": "permissions_denied"}
    # the same key still reads projects and servers
    assert AccountV3ProjectAPI(scw_client("noblock")).list_projects().total_count == 3
    InstanceV1API(scw_client("noblock")).list_servers()


def test_readonly_key_reads_but_cannot_change(scw_client, sandbox):
    api = v1.BlockV1API(scw_client("readonly"))
    volumes = api.list_volumes(include_deleted=False, zone="nl-ams-1")
    assert volumes.total_count >= 1
    body = _denied(api.create_volume, name="nope", perf_iops=5000,
                   from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
    assert body["details"] == [{"action": "write", "resource": "volume"}]
    body = _denied(api.update_volume, volume_id=volumes.volumes[0].id, zone="nl-ams-1",
                   name="renamed")
    assert body["type"] == "permissions_denied"


def test_key_without_object_storage_cannot_export(scw_client, sandbox):
    full = v1.BlockV1API(scw_client())
    volume = settle(full.get_volume, volume_id=full.create_volume(
        name="auth-export", perf_iops=5000,
        from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB)).id)
    snap = settle(full.get_snapshot, snapshot_id=full.create_snapshot(
        volume_id=volume.id, public=False, name="auth-export").id)
    nobucket = v1.BlockV1API(scw_client("nobucket"))
    body = _denied(nobucket.export_snapshot_to_object_storage, snapshot_id=snap.id,
                   bucket=sandbox.buckets["fr-par"], key="denied.qcow2")
    assert body["details"] == [{"action": "write", "resource": "bucket"}]
    assert full.get_snapshot(snapshot_id=snap.id).status == "available"
    full.delete_snapshot(snapshot_id=snap.id)
    full.delete_volume(volume_id=volume.id)


def test_s3_denies_a_key_without_object_storage(sandbox):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    access, secret = sandbox.keys["nobucket"]
    client = boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                          aws_access_key_id=access, aws_secret_access_key=secret,
                          region_name="fr-par", config=Config(s3={"addressing_style": "path"},
                                                              retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        client.list_objects_v2(Bucket=sandbox.buckets["fr-par"])
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def _s3(sandbox, access: str, secret: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                        aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="fr-par", config=Config(s3={"addressing_style": "path"},
                                                            retries={"max_attempts": 1}))


def _s3_refusal(call, **kwargs) -> tuple[int, str]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        call(**kwargs)
    answer = err.value.response
    return answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]


def test_s3_checks_signatures_and_each_keys_object_rights(sandbox):
    """As the real Object Storage: a wrong secret, an unknown key, a forged presigned URL are
    refused; a read-only key reads but cannot write, start an upload or delete."""
    bucket, key = sandbox.buckets["fr-par"], "auth/probe.txt"
    full = _s3(sandbox, *sandbox.keys["full"])
    full.put_object(Bucket=bucket, Key=key, Body=b"hello")
    try:
        readonly = _s3(sandbox, *sandbox.keys["readonly"])
        assert readonly.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello"
        assert readonly.list_objects_v2(Bucket=bucket, Prefix="auth/")["KeyCount"] == 1
        for call, kwargs in ((readonly.put_object, {"Key": "auth/ro.txt", "Body": b"x"}),
                             (readonly.delete_object, {"Key": key}),
                             (readonly.create_multipart_upload, {"Key": "auth/ro.txt"})):
            assert _s3_refusal(call, Bucket=bucket, **kwargs) == (403, "AccessDenied")
        assert "Contents" not in full.list_objects_v2(Bucket=bucket, Prefix="auth/ro")
        access, _ = sandbox.keys["full"]
        wrong = _s3(sandbox, access, "00000000-0000-0000-0000-000000000000")
        assert _s3_refusal(wrong.get_object, Bucket=bucket, Key=key) == \
            (403, "SignatureDoesNotMatch")
        assert _s3_refusal(wrong.put_object, Bucket=bucket, Key=key, Body=b"forged") == \
            (403, "SignatureDoesNotMatch")
        unknown = _s3(sandbox, "SCWUNKNOWNKEY0000000", "00000000-0000-0000-0000-000000000000")
        assert _s3_refusal(unknown.list_objects_v2, Bucket=bucket) == \
            (403, "InvalidAccessKeyId")
        # A presigned URL is checked too: forged with a wrong secret it opens nothing.
        forged = wrong.generate_presigned_url("get_object", {"Bucket": bucket, "Key": key})
        assert requests.get(forged, timeout=30).status_code == 403
        good = full.generate_presigned_url("get_object", {"Bucket": bucket, "Key": key})
        assert requests.get(good, timeout=30).content == b"hello"
        put = readonly.generate_presigned_url("put_object", {"Bucket": bucket, "Key": key})
        assert requests.put(put, data=b"overwritten", timeout=30).status_code == 403
        assert full.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello"
    finally:
        full.delete_object(Bucket=bucket, Key=key)


def test_no_secret_in_state_answers(scw_client, sandbox):
    from scaleway.iam.v1alpha1 import IamV1Alpha1API

    keys = IamV1Alpha1API(scw_client()).list_api_keys_all()
    assert keys and all(k.secret_key is None for k in keys)
