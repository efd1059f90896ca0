"""Encrypted exports: RSA-OAEP wraps a fresh AES-256-GCM key for the target installation.

An encrypted file is a magic string, a 4-byte header length, a JSON header (key
fingerprint, wrapped key, nonce) and the ciphertext. Version 2 (what ``encrypt_stream``
writes) cuts the plaintext into 64 KiB chunks, each sealed with its own GCM tag; the
chunk's index, whether it is the last, and a digest of the header are bound in as
associated data, so chunks cannot be altered, reordered, dropped or cut off unnoticed.
Each chunk is authenticated before a byte of it is handed on, and memory holds one
chunk. Version 1 files (one GCM stream, its tag at the end) are still read: the whole
ciphertext is authenticated in a first pass, then decrypted in a second.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC_V1 = b"SWRELOC\x01"
MAGIC = b"SWRELOC\x02"
ALGORITHM_V1 = "RSA-OAEP-SHA256+AES-256-GCM"
ALGORITHM = "RSA-OAEP-SHA256+AES-256-GCM-CHUNKED"
TAG_BYTES = 16
CHUNK = 1 << 16
MAX_HEADER = 64 * 1024
TAMPERED = (
    "The export failed its integrity check: it was altered, damaged or cut short after it "
    "was encrypted ({where}); nothing in it was read"
)

OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


class DecryptionError(Exception):
    """An encrypted export that cannot be opened; the message says why, for people."""


def generate_keypair(directory: Path, *, bits: int = 3072) -> tuple[Path, Path]:
    """Write ``private.pem`` (owner-only) and ``public.pem`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = directory / "private.pem"
    public = directory / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return private, public


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key


def fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the key's DER encoding, hex: how an export names the key it is for."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def is_encrypted(head: bytes) -> bool:
    return head.startswith((MAGIC, MAGIC_V1))


def encrypt_stream(source: IO[bytes], target: IO[bytes], public_key: rsa.RSAPublicKey) -> None:
    """Encrypt ``source`` for the holder of ``public_key`` into ``target`` (version 2)."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce_prefix = os.urandom(8)  # with the chunk's index, a nonce never used twice
    header = json.dumps(
        {
            "algorithm": ALGORITHM,
            "key_fingerprint": fingerprint(public_key),
            "wrapped_key": base64.b64encode(public_key.encrypt(data_key, OAEP)).decode(),
            "nonce": base64.b64encode(nonce_prefix).decode(),
            "chunk_bytes": CHUNK,
        }
    ).encode()
    target.write(MAGIC + struct.pack(">I", len(header)) + header)
    sealer = _Chunks(AESGCM(data_key), nonce_prefix, header)
    chunk = _read_full(source, CHUNK)
    index = 0
    while True:
        following = _read_full(source, CHUNK)
        target.write(sealer.seal(index, chunk, final=not following))
        if not following:
            return
        chunk, index = following, index + 1


def decrypt_chunks(data: bytes, private_key: rsa.RSAPrivateKey) -> Iterator[bytes]:
    """Plaintext of an encrypted export, chunk by chunk, each authenticated before it is
    yielded; raises ``DecryptionError`` (saying it was tampered with) at the first chunk
    that fails, before any of that chunk is seen."""
    magic = bytes(data[: len(MAGIC)])
    header, body_start = _header(data)
    expected_algorithm = ALGORITHM if magic == MAGIC else ALGORITHM_V1
    data_key, nonce = _unwrap(header, private_key, expected_algorithm)
    body = memoryview(data)[body_start:]
    if magic == MAGIC_V1:
        yield from _decrypt_v1(body, data_key, nonce)
        return
    chunk_bytes = header.get("chunk_bytes")
    if len(nonce) != 8 or not isinstance(chunk_bytes, int) or not 0 < chunk_bytes <= 1 << 24:
        raise DecryptionError("The export's encryption header is not readable")
    opener = _Chunks(AESGCM(data_key), nonce, bytes(data[len(MAGIC) + 4 : body_start]))
    step = chunk_bytes + TAG_BYTES
    count = max(1, -(-len(body) // step))
    for index in range(count):
        piece = body[index * step : (index + 1) * step]
        yield opener.open(index, bytes(piece), final=index == count - 1, count=count)


class _Chunks:
    """Seals and opens the chunks of one version 2 export."""

    def __init__(self, aead: AESGCM, nonce_prefix: bytes, header: bytes) -> None:
        self._aead = aead
        self._prefix = nonce_prefix
        self._header_digest = hashlib.sha256(header).digest()

    def _nonce_and_data(self, index: int, final: bool) -> tuple[bytes, bytes]:
        position = struct.pack(">I?", index, final)
        return self._prefix + struct.pack(">I", index), self._header_digest + position

    def seal(self, index: int, chunk: bytes, *, final: bool) -> bytes:
        nonce, associated = self._nonce_and_data(index, final)
        return self._aead.encrypt(nonce, chunk, associated)

    def open(self, index: int, piece: bytes, *, final: bool, count: int) -> bytes:
        nonce, associated = self._nonce_and_data(index, final)
        try:
            return self._aead.decrypt(nonce, piece, associated)
        except InvalidTag:
            raise DecryptionError(
                TAMPERED.format(where=f"encrypted chunk {index + 1} of {count} failed")
            ) from None


def _read_full(source: IO[bytes], size: int) -> bytes:
    """``size`` bytes, fewer only at the end of ``source`` (reads may come back short)."""
    parts: list[bytes] = []
    wanted = size
    while wanted and (part := source.read(wanted)):
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _unwrap(
    header: dict[str, object], private_key: rsa.RSAPrivateKey, algorithm: str
) -> tuple[bytes, bytes]:
    expected = fingerprint(private_key.public_key())
    if header.get("key_fingerprint") != expected:
        raise DecryptionError(
            f"The export was encrypted for key {str(header.get('key_fingerprint'))[:16]}…, "
            f"not for this installation's key {expected[:16]}…"
        )
    if header.get("algorithm") != algorithm:
        raise DecryptionError(
            f"The export uses encryption {str(header.get('algorithm'))[:60]!r}; "
            f"supported: {ALGORITHM}, {ALGORITHM_V1}"
        )
    try:
        data_key = private_key.decrypt(base64.b64decode(str(header["wrapped_key"])), OAEP)
        nonce = base64.b64decode(str(header["nonce"]))
    except (KeyError, ValueError, TypeError) as error:
        raise DecryptionError("The export's key could not be unwrapped") from error
    if len(data_key) != 32:
        raise DecryptionError("The export's key could not be unwrapped")
    return data_key, nonce


def _decrypt_v1(body: memoryview, data_key: bytes, nonce: bytes) -> Iterator[bytes]:
    """A version 1 body: authenticate all of it first, then decrypt it chunk by chunk."""
    if len(body) < TAG_BYTES or len(nonce) != 12:
        raise DecryptionError(TAMPERED.format(where="it ends before its encrypted content"))
    tag = bytes(body[-TAG_BYTES:])
    ciphertext = body[:-TAG_BYTES]
    for authenticated in (False, True):
        decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce, tag)).decryptor()
        for start in range(0, len(ciphertext), CHUNK):
            chunk = decryptor.update(bytes(ciphertext[start : start + CHUNK]))
            if authenticated:
                yield chunk
        try:
            decryptor.finalize()
        except InvalidTag:
            raise DecryptionError(
                TAMPERED.format(where="its authentication tag does not match")
            ) from None


def _header(data: bytes) -> tuple[dict[str, object], int]:
    if len(data) < len(MAGIC) + 4:
        raise DecryptionError("The export is truncated: its encryption header is incomplete")
    (length,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if length > MAX_HEADER or start + length > len(data):
        raise DecryptionError("The export is truncated: its encryption header is incomplete")
    try:
        header = json.loads(data[start : start + length])
    except ValueError:
        raise DecryptionError("The export's encryption header is not readable") from None
    if not isinstance(header, dict):
        raise DecryptionError("The export's encryption header is not readable")
    return header, start + length
