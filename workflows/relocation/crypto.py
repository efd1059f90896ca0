"""Encrypted exports: RSA-OAEP wraps a fresh AES-256-GCM key for the target installation.

An encrypted file is ``MAGIC``, a 4-byte header length, a JSON header (key
fingerprint, wrapped key, nonce), then the ciphertext with its 16-byte GCM tag at
the end. Decryption streams, so memory does not grow with the file.
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

MAGIC = b"SWRELOC\x01"
ALGORITHM = "RSA-OAEP-SHA256+AES-256-GCM"
TAG_BYTES = 16
CHUNK = 1 << 16
MAX_HEADER = 64 * 1024

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
    return head.startswith(MAGIC)


def encrypt_stream(source: IO[bytes], target: IO[bytes], public_key: rsa.RSAPublicKey) -> None:
    """Encrypt ``source`` for the holder of ``public_key`` into ``target``."""
    data_key = os.urandom(32)
    nonce = os.urandom(12)
    header = json.dumps(
        {
            "algorithm": ALGORITHM,
            "key_fingerprint": fingerprint(public_key),
            "wrapped_key": base64.b64encode(public_key.encrypt(data_key, OAEP)).decode(),
            "nonce": base64.b64encode(nonce).decode(),
        }
    ).encode()
    target.write(MAGIC + struct.pack(">I", len(header)) + header)
    encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
    while chunk := source.read(CHUNK):
        target.write(encryptor.update(chunk))
    target.write(encryptor.finalize() + encryptor.tag)


def decrypt_chunks(data: bytes, private_key: rsa.RSAPrivateKey) -> Iterator[bytes]:
    """Plaintext of an encrypted export, chunk by chunk; the tag is checked at the end.

    Callers must not act on the chunks until the iterator is exhausted: a tampered
    file is only known to be tampered once the tag has been checked.
    """
    header, body_start = _header(data)
    expected = fingerprint(private_key.public_key())
    if header.get("key_fingerprint") != expected:
        raise DecryptionError(
            f"The export was encrypted for key {str(header.get('key_fingerprint'))[:16]}…, "
            f"not for this installation's key {expected[:16]}…"
        )
    if header.get("algorithm") != ALGORITHM:
        raise DecryptionError(
            f"The export uses encryption {header.get('algorithm')!r}; supported: {ALGORITHM}"
        )
    try:
        data_key = private_key.decrypt(base64.b64decode(str(header["wrapped_key"])), OAEP)
        nonce = base64.b64decode(str(header["nonce"]))
    except (KeyError, ValueError, TypeError) as error:
        raise DecryptionError("The export's key could not be unwrapped") from error
    body = memoryview(data)[body_start:]
    if len(body) < TAG_BYTES or len(nonce) != 12 or len(data_key) != 32:
        raise DecryptionError("The export is truncated: it ends before its encrypted content")
    tag = bytes(body[-TAG_BYTES:])
    decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce, tag)).decryptor()
    ciphertext = body[:-TAG_BYTES]
    for start in range(0, len(ciphertext), CHUNK):
        yield decryptor.update(bytes(ciphertext[start : start + CHUNK]))
    try:
        yield decryptor.finalize()
    except InvalidTag:
        raise DecryptionError(
            "The export could not be decrypted: it is damaged, truncated or was altered"
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
