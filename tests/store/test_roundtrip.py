"""Back up and restore, byte for byte, through the real CLI and the library API."""
from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest

from engine.store import Store
from tests.fixtures.store import PASSPHRASE, make_image


@pytest.mark.parametrize("size", [0, 1, 100_000, 3 * 1024 * 1024 + 17])
def test_cli_round_trip_sizes(size: int, tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "disk.img", size, seed=size)
    backed = store_cli("--json", "backup-image", str(image))
    assert backed.code == 0, backed.stderr
    doc = json.loads(backed.out)
    assert set(doc) == {"snapshot", "bytes", "stored_bytes", "seconds"}
    assert doc["bytes"] == size
    out = tmp_path / "restored.img"
    restored = store_cli("restore-image", doc["snapshot"], str(out))
    assert restored.code == 0, restored.stderr
    assert out.read_bytes() == image.read_bytes()
    assert not list(tmp_path.glob("*.strongroom-tmp-*"))


def test_zero_regions_restore_as_holes(tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = tmp_path / "sparse.img"
    data = os.urandom(200_000) + bytes(8 * 1024 * 1024) + os.urandom(300_000)
    image.write_bytes(data)
    backed = store_cli("--json", "backup-image", str(image))
    assert backed.code == 0, backed.stderr
    # the 8 MiB of zeros cost (almost) nothing in the store
    assert json.loads(backed.out)["stored_bytes"] < 700_000
    out = tmp_path / "out.img"
    assert store_cli("restore-image", "latest", str(out)).code == 0
    assert out.read_bytes() == data
    assert os.stat(out).st_blocks * 512 < len(data) - 4 * 1024 * 1024  # zeros became holes


def test_stdin_and_stdout(tmp_path: Path, store_dir: Path, store_cli) -> None:
    data = make_image(tmp_path / "d.img", 2_500_000, seed=7).read_bytes()
    backed = store_cli("backup-image", "-", "--name", "piped", "--tag", "env=test", stdin=data)
    assert backed.code == 0, backed.stderr
    snap = backed.out.strip()
    assert len(snap) == 64
    restored = store_cli("restore-image", snap[:8], "-")
    assert restored.code == 0, restored.stderr
    assert restored.stdout == data
    listing = json.loads(store_cli("--json", "snapshots").out)
    assert listing[0]["name"] == "piped" and listing[0]["tags"] == {"env": "test"}
    assert listing[0]["source"] == {"kind": "stdin"}


def test_api_round_trip_and_stream_restore(tmp_path: Path, fast_kdf: None) -> None:
    image = make_image(tmp_path / "api.img", 5_000_000, seed=3)
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        with open(image, "rb") as f:
            result = store.backup(f, name="api", source_info={"volume_id": "v-1"})
    with Store.open(str(tmp_path / "s"), PASSPHRASE) as store:
        info = store.resolve("latest")
        assert info.id == result.snapshot.id and info.source == {"volume_id": "v-1"}
        assert info.digest.startswith("chunks-blake3:")  # manifest version 2
        out = tmp_path / "out.bin"
        with open(out, "wb") as stream:
            store.restore(info.id, stream)
        assert out.read_bytes() == image.read_bytes()
        assert store.snapshots()[0].last_verified is not None


def test_open_image_random_reads(tmp_path: Path, fast_kdf: None) -> None:
    image = make_image(tmp_path / "r.img", 6_000_000, seed=11)
    data = image.read_bytes()
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        with open(image, "rb") as f:
            store.backup(f)
        reader = store.open_image("latest")
        assert reader.size == len(data) and reader.seekable()
        import random

        rng = random.Random(5)
        for _ in range(200):
            off = rng.randrange(0, len(data))
            n = rng.randint(1, 300_000)
            reader.seek(off)
            assert reader.read(n) == data[off:off + n]
        reader.seek(-10, 2)
        assert reader.read() == data[-10:]
        # a small read fetches a chunk, not the image
        fresh = store.open_image("latest")
        fresh.seek(len(data) // 2)
        fresh.read(4096)
        assert 0 < fresh.bytes_fetched < 1_500_000


def test_progress_and_cancel(tmp_path: Path, fast_kdf: None) -> None:
    import threading

    from engine.errors import OperationError

    image = make_image(tmp_path / "p.img", 20_000_000, seed=8, zero_every=0)
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        seen: list[tuple[int, int]] = []
        with open(image, "rb") as f:
            store.backup(f, progress=lambda done, total: seen.append((done, total)))
        assert seen[-1] == (20_000_000, 20_000_000)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        cancel = threading.Event()
        with open(image, "rb") as f, pytest.raises(OperationError, match="cancelled"):
            store.backup(f, progress=lambda done, total: cancel.set(), cancel=cancel)
        assert len(store.snapshots()) == 1
        assert store.check().ok


class _GatedSource(io.RawIOBase):
    """The image's bytes, holding back those past ``gate`` until ``opened`` is set (or a
    generous deadline passes: then ``held_too_long``)."""

    def __init__(self, data: bytes, gate: int, opened: threading.Event):
        self.data, self.gate, self.opened, self.pos = data, gate, opened, 0
        self.held_too_long = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001
        if self.pos == self.gate and not self.opened.wait(120):
            self.held_too_long = True
        end = self.gate if self.pos < self.gate else len(self.data)
        n = min(len(buf), end - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_stored_progress_follows_new_bytes(tmp_path: Path, fast_kdf: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.store import repository

    monkeypatch.setattr(repository, "PACK_TARGET", 4 * 1024 * 1024)  # several packs from 24 MB
    image = make_image(tmp_path / "n.img", 24_000_000, seed=9, zero_every=0)
    data = image.read_bytes()
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        first: list[int] = []
        moved = threading.Event()

        def live(nbytes: int) -> None:
            first.append(nbytes)
            moved.set()

        # the figure must move while the backup still reads: the source waits for it past
        # 16 MiB, by when two packs' worth has been packed
        source = _GatedSource(data, 16 * 1024 * 1024, moved)
        result = store.backup(source, size_hint=len(data), stored_progress=live)
        assert not source.held_too_long, "nothing was reported stored while the backup ran"
        assert first == sorted(first) and first[-1] == result.stored_bytes > first[0] > 0
        again: list[int] = []
        with open(image, "rb") as f:
            second = store.backup(f, stored_progress=again.append)
        # unchanged data: the live figure stays near zero, as the final one does
        assert again and again == sorted(again)
        assert again[-1] == second.stored_bytes < result.stored_bytes // 20


def test_backup_of_missing_file_is_a_usage_error(tmp_path: Path, store_dir: Path,
                                                  store_cli) -> None:
    res = store_cli("backup-image", str(tmp_path / "nope.img"))
    assert res.code == 2 and "no such file" in res.stderr
    res = store_cli("backup-image", str(tmp_path), "--tag", "novalue")
    assert res.code == 2 and "KEY=VALUE" in res.stderr


@pytest.mark.parametrize("tail", ["data", "zeros"])
def test_file_restore_in_many_unaligned_segments(tail: str, tmp_path: Path, fast_kdf: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """File restores write whole pages (carrying each segment's last partial page into the
    next); tiny segments put a page boundary inside nearly every chunk, zero ones included."""
    from engine.store import restorer

    monkeypatch.setattr(restorer, "SEGMENT", 50_000)
    data = bytearray(make_image(tmp_path / "m.img", 7_000_001, seed=21).read_bytes())
    if tail == "zeros":
        data += bytes(1_000_003)
    image = tmp_path / "m2.img"
    image.write_bytes(data)
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        with open(image, "rb") as f:
            store.backup(f)
        out = tmp_path / "out.img"
        store.restore("latest", out)
        assert out.read_bytes() == bytes(data)
        zeros = data.count(0)
        assert os.stat(out).st_blocks * 512 < len(data) - zeros // 4  # zero chunks are holes
