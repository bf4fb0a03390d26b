"""The QCOW2 image a real client uploaded and the real import accepted (recorded traffic) reads
back with the size the real API gave its snapshot."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.sandbox import qcow2
from tests.sandbox_data.conftest import qemu_img

RECORDING = Path("/work/shared/scaleway-api-recordings/block-snapshot-from-s3.yaml")


def _aws_chunked(body: bytes) -> bytes:
    """Decode an `aws-chunked` request body: `<hex size>\\r\\n<data>\\r\\n` ... `0\\r\\n<trailers>`."""
    out, pos = bytearray(), 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


@pytest.fixture(scope="module")
def recorded() -> tuple[bytes, int]:
    yaml = pytest.importorskip("yaml")
    if not RECORDING.exists():
        pytest.skip("the shared recordings are not here")
    interactions = yaml.safe_load(RECORDING.read_text())["interactions"]
    upload = next(i for i in interactions
                  if i["request"]["method"] == "PUT" and isinstance(i["request"]["body"], bytes))
    imported = next(i for i in interactions
                    if i["request"]["url"].endswith("/snapshots/import-from-object-storage"))
    return _aws_chunked(upload["request"]["body"]), json.loads(imported["response"]["body"])["size"]


def test_recorded_upload_is_read_like_the_real_import(recorded: tuple[bytes, int], tmp_path: Path):
    image, snapshot_size = recorded
    (tmp_path / "real.qcow2").write_bytes(image)
    assert qemu_img("check", str(tmp_path / "real.qcow2")).returncode == 0
    assert qcow2.read_qcow2(tmp_path / "real.qcow2", tmp_path / "real.raw") == snapshot_size
    compare = qemu_img("compare", "-f", "raw", "-F", "qcow2", str(tmp_path / "real.raw"),
                       str(tmp_path / "real.qcow2"))
    assert compare.returncode == 0, compare.stdout
