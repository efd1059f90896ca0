"""Encrypted exports are authenticated before a byte of them is read, chunk by chunk."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import select

from statewright.models import Organization, RelocationEmail
from statewright.workflows.relocation import start_relocation
from statewright.workflows.relocation.crypto import (
    ALGORITHM_V1,
    CHUNK,
    MAGIC,
    MAGIC_V1,
    OAEP,
    TAG_BYTES,
    DecryptionError,
    decrypt_chunks,
    fingerprint,
    load_private_key,
)
from statewright.workflows.relocation.format import Limits, read_records, seal
from tests.workflows.conftest import OWNER, Keys, Target

SECRET = b"kim.secret-address@acme.example"


def document(users: int = 2, *, email: bytes = SECRET) -> bytes:
    records = [
        {"id": i, "username": f"user{i}", "email": f"user{i}@acme.example"}
        for i in range(2, users + 1)
    ]
    return json.dumps(
        {
            "format": "statewright.relocation",
            "version": 1,
            "source": {"installation": "test"},
            "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
            "users": [{"id": 1, "username": "kim", "email": email.decode()}, *records],
            "members": [{"organization_id": 1, "user_id": 1, "role": "member"}],
            "teams": [],
            "projects": [],
            "project_teams": [],
        }
    ).encode()


def sealed(data: bytes, keys: Keys, *, compress: bool = False) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(data), out, compress=compress, public_key=keys.public_key())
    return out.getvalue()


def body_start(data: bytes) -> int:
    (length,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    return len(MAGIC) + 4 + length


def sealed_v1(data: bytes, keys: Keys) -> bytes:
    """An export as the first encrypted format wrote it: one GCM stream, its tag at the end."""
    data_key, nonce = os.urandom(32), os.urandom(12)
    public = keys.public_key()
    header = json.dumps(
        {
            "algorithm": ALGORITHM_V1,
            "key_fingerprint": fingerprint(public),
            "wrapped_key": base64.b64encode(public.encrypt(data_key, OAEP)).decode(),
            "nonce": base64.b64encode(nonce).decode(),
        }
    ).encode()
    encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
    body = encryptor.update(data) + encryptor.finalize() + encryptor.tag
    return MAGIC_V1 + struct.pack(">I", len(header)) + header + body


def altered(data: bytes, at: int, xor: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= xor
    return bytes(changed)


def private(keys: Keys) -> Any:
    return load_private_key(keys.private.read_bytes())


def read_all(data: bytes, keys: Keys) -> list[Any]:
    return list(read_records(data, private(keys), Limits()))


@pytest.mark.parametrize("make", [sealed, sealed_v1], ids=["chunked", "v1"])
def test_tampered_plaintext_is_reported_as_tampering_and_never_shown(
    target: Target, keys: Keys, make: Any
) -> None:
    """A bit flip that would turn the email into "kim.secret-address acme.example" fails the run
    as tampered; the altered text is in neither the reason, the detail nor the owner's email."""
    data = make(document(), keys)
    at = body_start(data) + document().index(b"@acme")
    forged = altered(data, at, ord("@") ^ ord(" "))
    run = start_relocation(target.engine, forged, owner=OWNER)
    failed = target.harness.run(run.id)
    target.harness.run_all()
    assert failed.status == "failed"
    assert "failed its integrity check: it was altered" in (failed.failure_reason or "")
    with target.engine.db.reads() as session:
        bodies = session.execute(select(RelocationEmail.body)).scalars().all()
    everything = " ".join([str(failed.failure_detail), *bodies, *target.mails()])
    assert "failed its integrity check" in " ".join(bodies)
    assert "secret-address" not in everything
    assert target.count(Organization) == 0


def test_tampered_compressed_export_is_not_called_damaged_compression(
    target: Target, keys: Keys
) -> None:
    """A flipped byte in a gzipped, encrypted export is tampering, not damaged compression."""
    data = sealed(document(), keys, compress=True)
    forged = altered(data, body_start(data) + 30, 0x01)
    failed = target.harness.run(start_relocation(target.engine, forged, owner=OWNER).id)
    assert "failed its integrity check" in (failed.failure_reason or "")
    assert "compress" not in (failed.failure_reason or "")


def chunks_of(data: bytes) -> tuple[bytes, list[bytes]]:
    start, step = body_start(data), CHUNK + TAG_BYTES
    body = data[start:]
    return data[:start], [body[i : i + step] for i in range(0, len(body), step)]


def test_chunks_cannot_be_reordered_dropped_or_cut_off(keys: Keys) -> None:
    """Swapping two chunks, dropping one, or ending the file at a chunk boundary is refused
    before the first altered chunk is handed on."""
    data = sealed(document(users=6000), keys)
    head, chunks = chunks_of(data)
    assert len(chunks) >= 4
    forgeries = {
        "swapped": head + b"".join([chunks[0], chunks[2], chunks[1], *chunks[3:]]),
        "dropped": head + b"".join([chunks[0], *chunks[2:]]),
        "cut off": head + b"".join(chunks[:-1]),
        "last replaced": head + b"".join([*chunks[:-1], chunks[-1][:TAG_BYTES]]),
    }
    for name, forged in forgeries.items():
        handed_on: list[bytes] = []
        with pytest.raises(DecryptionError, match="failed its integrity check"):
            handed_on.extend(decrypt_chunks(forged, private(keys)))
        assert len(handed_on) < len(chunks), name
        assert b"".join(handed_on) == document(users=6000)[: len(handed_on) * CHUNK], name


def test_a_tampered_first_version_file_yields_nothing(keys: Keys) -> None:
    """A first-version file is authenticated whole before its first byte is handed on."""
    data = sealed_v1(document(users=6000), keys)
    forged = altered(data, len(data) - 100, 0x01)  # the last chunk, far from the first
    with pytest.raises(DecryptionError, match="failed its integrity check"):
        next(decrypt_chunks(forged, private(keys)))


@pytest.mark.parametrize("make", [sealed, sealed_v1], ids=["chunked", "v1"])
@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_both_formats_read_back_whole(keys: Keys, make: Any, size: int) -> None:
    """Plaintexts of every length around the chunk size decrypt to exactly what was sealed."""
    data = os.urandom(size)
    assert b"".join(decrypt_chunks(make(data, keys), private(keys))) == data


def test_the_exporter_writes_the_chunked_format(keys: Keys) -> None:
    """New exports carry the chunked format's magic; both formats read the same records."""
    assert sealed(document(), keys).startswith(MAGIC)
    assert read_all(sealed(document(), keys), keys) == read_all(sealed_v1(document(), keys), keys)
