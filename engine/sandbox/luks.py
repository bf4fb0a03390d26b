"""A LUKS2 header written without cryptsetup, deterministic from a seed.

The sandbox's encrypted volume must look like what a real encrypted disk holds, and the same
seed must give the same bytes (cryptsetup draws salts and keys from /dev/urandom). So the header
is built here, to the LUKS2 on-disk format: primary and secondary binary headers with their JSON
metadata and SHA-256 checksums, one pbkdf2 keyslot holding the AF-split volume key encrypted
with AES-XTS, and the key digest. It is a real header: `cryptsetup luksOpen --test-passphrase`
accepts the passphrase it was made with.

Reference: the LUKS2 on-disk format specification (gitlab.com/cryptsetup/LUKS2-docs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAGIC = b"LUKS\xba\xbe"
SECONDARY_MAGIC = b"SKUL\xba\xbe"
HEADER_SIZE = 16384  # binary header (4096) + JSON area, per copy
KEYSLOTS_OFFSET = 2 * HEADER_SIZE
DATA_OFFSET = 16 << 20  # cryptsetup's default: 16 MiB of metadata and keyslots
KEY_SIZE = 64  # aes-xts-plain64 with two 256-bit keys
STRIPES = 4000
ITERATIONS = 1000  # low on purpose: the sandbox's key is not a secret
_BINARY = struct.Struct(">6sHQQ48s32s64s40s48sQ184s64s")


def _diffuse(block: bytes) -> bytes:
    """LUKS anti-forensic diffusion: SHA-256 of each 32-byte piece, prefixed by its index."""
    out = bytearray()
    for n in range(0, len(block), 32):
        piece = block[n : n + 32]
        out += hashlib.sha256(struct.pack(">I", n // 32) + piece).digest()[: len(piece)]
    return bytes(out)


def af_split(key: bytes, stripes: int, randomness: bytes) -> bytes:
    """Split `key` into `stripes` blocks (LUKS AF, sha256); `randomness`: (stripes-1)*len(key) bytes."""
    size = len(key)
    acc = bytes(size)
    for n in range(stripes - 1):
        block = randomness[n * size : (n + 1) * size]
        acc = _diffuse(bytes(a ^ b for a, b in zip(acc, block)))
    last = bytes(a ^ b for a, b in zip(acc, key))
    return randomness[: (stripes - 1) * size] + last


def _xts_encrypt(key: bytes, data: bytes, sector: int = 512) -> bytes:
    out = bytearray()
    for n in range(0, len(data), sector):
        tweak = struct.pack("<Q", n // sector) + bytes(8)  # plain64 IV
        enc = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
        out += enc.update(data[n : n + sector]) + enc.finalize()
    return bytes(out)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _binary_header(magic: bytes, seqid: int, uuid: str, salt: bytes, offset: int) -> bytes:
    return _BINARY.pack(
        magic, 2, HEADER_SIZE, seqid, b"", b"sha256", salt, uuid.encode(), b"", offset,
        bytes(184), bytes(64),
    ).ljust(4096, b"\0")


def luks2_header(passphrase: bytes, uuid: str, entropy: bytes) -> bytes:
    """The first DATA_OFFSET bytes of a LUKS2 volume (headers and keyslot area).

    `entropy` seeds every "random" value (volume key, salts, AF stripes): same entropy, same bytes.
    """
    def random_bytes(what: str, n: int) -> bytes:
        return hashlib.shake_256(entropy + what.encode()).digest(n)

    volume_key = random_bytes("volume-key", KEY_SIZE)
    slot_salt = random_bytes("keyslot-salt", 32)
    digest_salt = random_bytes("digest-salt", 32)
    split = af_split(volume_key, STRIPES, random_bytes("af", (STRIPES - 1) * KEY_SIZE))
    area_size = -(-len(split) // 4096) * 4096
    slot_key = hashlib.pbkdf2_hmac("sha256", passphrase, slot_salt, ITERATIONS, KEY_SIZE)
    keyslot = _xts_encrypt(slot_key, split.ljust(area_size, b"\0"))
    digest = hashlib.pbkdf2_hmac("sha256", volume_key, digest_salt, ITERATIONS, 32)
    metadata = {
        "keyslots": {"0": {
            "type": "luks2", "key_size": KEY_SIZE,
            "af": {"type": "luks1", "stripes": STRIPES, "hash": "sha256"},
            "area": {"type": "raw", "offset": str(KEYSLOTS_OFFSET), "size": str(area_size),
                     "encryption": "aes-xts-plain64", "key_size": KEY_SIZE},
            "kdf": {"type": "pbkdf2", "hash": "sha256", "iterations": ITERATIONS,
                    "salt": _b64(slot_salt)},
        }},
        "tokens": {},
        "segments": {"0": {"type": "crypt", "offset": str(DATA_OFFSET), "size": "dynamic",
                           "iv_tweak": "0", "encryption": "aes-xts-plain64", "sector_size": 4096}},
        "digests": {"0": {"type": "pbkdf2", "keyslots": ["0"], "segments": ["0"],
                          "hash": "sha256", "iterations": ITERATIONS, "salt": _b64(digest_salt),
                          "digest": _b64(digest)}},
        "config": {"json_size": str(HEADER_SIZE - 4096),
                   "keyslots_size": str(DATA_OFFSET - KEYSLOTS_OFFSET)},
    }
    json_area = json.dumps(metadata, separators=(",", ":")).encode().ljust(HEADER_SIZE - 4096, b"\0")
    copies = []
    for magic, offset in ((MAGIC, 0), (SECONDARY_MAGIC, HEADER_SIZE)):
        salt = random_bytes(f"header-salt-{offset}", 64)
        header = bytearray(_binary_header(magic, 1, uuid, salt, offset) + json_area)
        header[448:480] = hashlib.sha256(header).digest()  # checksum over both, field zeroed
        copies.append(bytes(header))
    return b"".join(copies) + keyslot


def write_luks2_header(out: BinaryIO, passphrase: bytes, uuid: str, entropy: bytes) -> None:
    """Write the header at offset 0 of `out` (the keyslot area's tail stays a hole)."""
    out.seek(0)
    out.write(luks2_header(passphrase, uuid, entropy))
