"""Keys and encryption: the passphrase-wrapped master key, sub-keys, and sealed objects.

See docs/FORMAT.md ("Keys", "Sealed objects") for the exact layouts.
"""
from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from engine.errors import OperationError, UsageError

NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG

# Argon2id parameters for new key files (64 MiB, t=3: above the OWASP minimums while
# keeping every CLI command quick).
KDF_ITERATIONS = 3
KDF_MEMORY_KIB = 64 * 1024
KDF_LANES = 4
KEY_AD = b"strongroom key v1"

FLAG_RAW = 0
FLAG_ZSTD = 1


class IntegrityError(OperationError):
    """Data read from the store does not authenticate or does not match its id."""


@dataclass(frozen=True)
class Keys:
    """Sub-keys derived from the 32-byte master key with BLAKE3's key derivation mode."""

    master: bytes
    data: bytes       # AES-256-GCM key for every blob and sealed object
    chunk_id: bytes   # BLAKE3 key for chunk ids
    chunker_seed: int  # FastCDC gear-table seed (hides chunk boundaries from the storage)

    @classmethod
    def from_master(cls, master: bytes) -> "Keys":
        data = blake3.blake3(master, derive_key_context="strongroom 2026 data encryption key").digest()
        cid = blake3.blake3(master, derive_key_context="strongroom 2026 chunk id key").digest()
        seed_bytes = blake3.blake3(master, derive_key_context="strongroom 2026 chunker seed").digest()
        seed = (int.from_bytes(seed_bytes[:8], "little") & ((1 << 62) - 1)) | 1
        return cls(master, data, cid, seed)


# One Argon2id at a time in a process: two at once in cryptography 50 (OpenSSL's Argon2id,
# lanes on its own threads) hang for good or fail with MemoryError. The daemon's jobs and the
# key derivation's head start (engine.store.keyahead) may open stores in parallel.
_KDF_LOCK = threading.Lock()


def _kek(passphrase: str, salt: bytes, iterations: int, memory_kib: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes,
                   memory_cost=memory_kib)
    with _KDF_LOCK:
        return kdf.derive(passphrase.encode("utf-8"))


def kdf_memory_kib() -> int:
    """Argon2id memory for new key files; STRONGROOM_KDF_MEMORY_KIB may lower it (not below
    8 MiB) for throwaway stores such as the test suite's, where every command pays the KDF."""
    try:
        value = int(os.environ.get("STRONGROOM_KDF_MEMORY_KIB", KDF_MEMORY_KIB))
    except ValueError:
        value = KDF_MEMORY_KIB
    return max(8 * 1024, value)


def make_key_file(master: bytes, passphrase: str) -> bytes:
    """The JSON key file: Argon2id parameters, salt, and the master key wrapped with AES-GCM."""
    salt = os.urandom(16)
    memory = kdf_memory_kib()
    kek = _kek(passphrase, salt, KDF_ITERATIONS, memory, KDF_LANES)
    nonce = os.urandom(NONCE)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, master, KEY_AD)
    doc = {"version": 1, "kdf": "argon2id", "iterations": KDF_ITERATIONS,
           "memory_kib": memory, "lanes": KDF_LANES,
           "salt": base64.b64encode(salt).decode(), "cipher": "aes-256-gcm",
           "wrapped_key": base64.b64encode(wrapped).decode()}
    return (json.dumps(doc, indent=2) + "\n").encode()


@dataclass(frozen=True)
class KdfParams:
    """What a key file's Argon2id takes besides the passphrase (none of it secret)."""

    salt: bytes
    iterations: int
    memory_kib: int
    lanes: int

    def derive(self, passphrase: str) -> bytes:
        return _kek(passphrase, self.salt, self.iterations, self.memory_kib, self.lanes)


def kdf_params(raw: bytes, where: str) -> KdfParams:
    """The Argon2id parameters of a key file; UsageError if it is not one we can read."""
    try:
        doc = json.loads(raw)
        if doc.get("version") != 1 or doc.get("kdf") != "argon2id":
            raise UsageError(f"the key file of store {where} uses an unknown format; "
                             "upgrade strongroom")
        return KdfParams(base64.b64decode(doc["salt"]), int(doc["iterations"]),
                         int(doc["memory_kib"]), int(doc["lanes"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"the key file of store {where} is damaged") from None


def unwrap_key_file(raw: bytes, passphrase: str, where: str,
                    kek: Callable[[KdfParams], bytes | None] | None = None) -> bytes:
    """The master key. ``kek`` may hold the key-encryption key for these parameters already
    (derived ahead, :mod:`engine.store.keyahead`); None from it means derive it here."""
    params = kdf_params(raw, where)
    try:
        wrapped = base64.b64decode(json.loads(raw)["wrapped_key"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"the key file of store {where} is damaged") from None
    try:
        derived = (kek(params) if kek is not None else None) or params.derive(passphrase)
    except ValueError:  # parameters Argon2id refuses
        raise UsageError(f"the key file of store {where} is damaged") from None
    try:
        master = AESGCM(derived).decrypt(wrapped[:NONCE], wrapped[NONCE:], KEY_AD)
    except InvalidTag:
        raise UsageError(f"wrong passphrase for store {where}: check STRONGROOM_PASSPHRASE "
                         "(or STRONGROOM_PASSPHRASE_FILE)") from None
    if len(master) != 32:
        raise UsageError(f"the key file of store {where} is damaged")
    return master


class Sealer:
    """AES-256-GCM with a random 96-bit nonce per message; associated data binds the name."""

    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes | memoryview, ad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, sealed: bytes | memoryview, ad: bytes, what: str) -> bytes:
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            raise IntegrityError(f"{what} is truncated")
        try:
            return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], ad)
        except InvalidTag:
            raise IntegrityError(f"{what} is damaged (authentication failed)") from None

    def seal_object(self, payload: bytes, ad: bytes, compress: bool = True) -> bytes:
        """A standalone sealed object: one flag byte (0 raw, 1 zstd) then the payload, sealed."""
        if compress:
            packed = zstandard.ZstdCompressor(level=3).compress(payload)
            if len(packed) < len(payload):
                return self.seal(bytes([FLAG_ZSTD]) + packed, ad)
        return self.seal(bytes([FLAG_RAW]) + payload, ad)

    def open_object(self, sealed: bytes, ad: bytes, what: str) -> bytes:
        plain = self.open(sealed, ad, what)
        if not plain:
            raise IntegrityError(f"{what} is empty")
        if plain[0] == FLAG_ZSTD:
            return zstandard.ZstdDecompressor().decompress(plain[1:])
        if plain[0] == FLAG_RAW:
            return plain[1:]
        raise IntegrityError(f"{what} has an unknown compression flag")
