"""The data side as the API handlers see it: volume bytes and Object Storage.

A thin adapter over the sandbox-data modules (``s3``, ``transfer``, ``qcow2``, ``content``), so
the handlers name one object with a handful of blocking methods (run them in threads).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from engine.sandbox import replies, s3
from engine.sandbox.qcow2 import CLUSTER_SIZE, ApiError, parse_header


class Storage:
    """moto's S3 server (behind the fault proxy) and the QCOW2 export/import."""

    def __init__(self, state_dir: Path, seed: int, authority: s3.Authority,
                 port: int = 0) -> None:
        # ``authority``: each access key's secret and object rights (the sandbox's IAM), which
        # the proxy in front of moto enforces as the real service does
        self.server = s3.S3Server(state_dir=state_dir, seed=seed, port=port,
                                  authority=authority)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- life -----------------------------------------------------------------------------
    def start(self) -> None:
        # the S3 process runs in its own session: Ctrl-C on the terminal does not reach it
        self.server.start()

    def stop(self, save: bool = True) -> None:
        self.server.stop(save)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def buckets(self) -> dict[str, str]:
        return dict(s3.STAGING_BUCKETS)

    def set_drop(self, count: int) -> None:
        """Cut the bodies of the next ``count`` S3 answers mid-way."""
        if self.server.proxy is not None:
            self.server.proxy.set_drop(count=count, after_bytes=4096)

    def drops_left(self) -> int:
        return self.server.proxy.drop.count if self.server.proxy is not None else 0

    # -- what the Block handlers call ------------------------------------------------------
    def bucket_region(self, bucket: str) -> str | None:
        return s3.bucket_region(bucket)

    def client(self, region: str) -> Any:
        """A client straight to moto: the sandbox's own transfers skip the fault proxy."""
        with self._lock:
            if region not in self._clients:
                self._clients[region] = s3.s3_client(
                    self.server.moto_endpoint, self.server.access_key, self.server.secret_key,
                    region)
            return self._clients[region]

    def bucket_kms_encrypted(self, bucket: str) -> bool:
        """Whether the bucket encrypts new objects with SSE-KMS by default (exports refuse it)."""
        from botocore.exceptions import ClientError

        client = self.client(self.bucket_region(bucket) or "fr-par")
        try:
            config = client.get_bucket_encryption(Bucket=bucket)
        except ClientError:      # ServerSideEncryptionConfigurationNotFoundError: none
            return False
        rules = config.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                   == "aws:kms" for r in rules)

    def export(self, volume_file: Path, size: int, bucket: str, key: str) -> None:
        from engine.sandbox.transfer import export_volume_to_bucket

        region = self.bucket_region(bucket) or "fr-par"
        export_volume_to_bucket(volume_file, size, self.client(region), bucket, key)

    def inspect_import(self, bucket: str, key: str) -> int:
        """The image's virtual size, or the API error the real import answers at once."""
        from botocore.exceptions import ClientError

        client = self.client(self.bucket_region(bucket) or "fr-par")
        try:
            head = client.get_object(Bucket=bucket, Key=key,
                                     Range=f"bytes=0-{CLUSTER_SIZE - 1}")["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise replies.not_found("object", f"{bucket}/{key}") from None
            if code != "InvalidRange":           # InvalidRange: an empty object
                raise
            head = b""
        try:
            return parse_header(head).virtual_size
        except ApiError as exc:  # .status and .body: the real API's answer
            raise replies.ApiError(exc.status, exc.body) from None

    def import_(self, bucket: str, key: str, dest: Path, size: int) -> None:
        from engine.sandbox.transfer import import_object_to_volume

        client = self.client(self.bucket_region(bucket) or "fr-par")
        import_object_to_volume(client, bucket, key, dest)
        with open(dest, "r+b") as f:      # a snapshot asked larger than its image
            if f.seek(0, 2) < size:
                f.truncate(size)

    def fill_volumes(self, volumes: list[dict[str, Any]], state_dir: Path, seed: int,
                     profile: str) -> None:
        """Write the seeded volumes' contents (real ext4, a LUKS header...) into their files."""
        from engine.sandbox.state import make_sparse

        try:
            from engine.sandbox import content
        except ImportError:       # the data side's contents are not merged yet: empty disks
            for volume in volumes:
                make_sparse(state_dir / "volumes" / f"{volume['id']}.raw", volume["size"])
            return
        specs = [content.VolumeSpec(id=v["id"], size=v["size"], kind=_KINDS[v["_content"]][0],
                                    flavor=_KINDS[v["_content"]][1], label=v["name"][:16])
                 for v in volumes]
        paths = content.build_volumes(state_dir, specs, seed=seed, profile=profile)
        for volume in volumes:
            # a file system may end on its last whole block: the disk is the volume's size
            with open(paths[volume["id"]], "r+b") as f:
                if f.seek(0, os.SEEK_END) != volume["size"]:
                    f.truncate(volume["size"])


# seeded content name -> (content kind, flavor of its files)
_KINDS = {"web": ("ext4", "web"), "database": ("ext4", "db"), "k8s": ("ext4", "app"),
          "luks": ("luks", "app"), "media": ("ext4", "home"), "home": ("ext4", "home")}
