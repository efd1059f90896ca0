"""Export format v1: reading and writing, streamed, with limits, and with readable errors.

A document is one JSON object whose keys come in this order: ``format``
(``"statewright.relocation"``), ``version`` (1), ``source`` (an object of short
strings), then the sections ``organizations``, ``users``, ``members``, ``teams``,
``projects``, ``project_teams``, each an array of flat records. The bytes may be
gzip-compressed, and the result encrypted (see ``crypto``). Reading never holds
more than one record of the document at a time.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

import ijson
from cryptography.hazmat.primitives.asymmetric import rsa

from statewright.jsonvalues import is_unicode
from statewright.models.domain import ROLES
from statewright.workflows.relocation.crypto import (
    DecryptionError,
    decrypt_chunks,
    encrypt_stream,
    is_encrypted,
)
from statewright.workflows.relocation.mail import address_problem
from statewright.workflows.relocation.strings import StringTooLongError, refuse_long_strings

FORMAT = "statewright.relocation"
VERSION = 1
SECTIONS = ("organizations", "users", "members", "teams", "projects", "project_teams")
GZIP_MAGIC = b"\x1f\x8b"

Record = dict[str, Any]


class ExportError(Exception):
    """The export cannot be relocated; the message is the reason a person reads."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What a single export may contain."""

    max_file_bytes: int = 50 * 1024 * 1024
    max_decompressed_bytes: int = 500 * 1024 * 1024
    max_orgs: int = 50
    max_users: int = 50_000
    max_string: int = 1000
    max_source_bytes: int = 4096

    @property
    def max_string_bytes(self) -> int:
        """The longest string the reader accepts, in raw bytes: room for the longest
        allowed text written entirely as ``\\uXXXX`` escapes (12 bytes for a character
        outside the BMP, 6 for one byte of UTF-8)."""
        return max(12 * self.max_string, 6 * self.max_source_bytes)

    def for_checked_copy(self) -> Limits:
        """Limits for reading our own re-written copy of an export that passed these: the
        same counts, room for the copy's different layout."""
        return replace(self, max_decompressed_bytes=2 * self.max_decompressed_bytes + (1 << 20))


@dataclass(frozen=True, slots=True)
class Field:
    kind: type
    required: bool = True
    max_length: int = 200
    check: Callable[[Any], str | None] | None = None


SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


#: C0 control characters and DEL.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _slug(value: Any) -> str | None:
    return None if SLUG.match(value) else "must be lowercase letters, digits, - and _"


def _email(value: Any) -> str | None:
    # printable excludes every whitespace character but the ASCII space
    if not value.isprintable() or " " in value:
        return "must be an email address"
    return address_problem(value)


def _role(value: Any) -> str | None:
    return None if value in ROLES else f"must be one of {', '.join(ROLES)}"


def _id() -> Field:
    return Field(int)


SCHEMA: Mapping[str, Mapping[str, Field]] = {
    "organizations": {
        "id": _id(),
        "slug": Field(str, max_length=100, check=_slug),
        "name": Field(str),
    },
    "users": {
        "id": _id(),
        "username": Field(str, max_length=150),
        "email": Field(str, max_length=254, check=_email),
        "name": Field(str, required=False),
    },
    "members": {
        "organization_id": _id(),
        "user_id": _id(),
        "role": Field(str, max_length=20, check=_role),
    },
    "teams": {
        "id": _id(),
        "organization_id": _id(),
        "slug": Field(str, max_length=100, check=_slug),
        "name": Field(str),
    },
    "projects": {
        "id": _id(),
        "organization_id": _id(),
        "slug": Field(str, max_length=100, check=_slug),
        "name": Field(str),
    },
    "project_teams": {"project_id": _id(), "team_id": _id()},
}


# -- reading ------------------------------------------------------------------------


def plaintext(
    data: bytes, private_key: rsa.RSAPrivateKey | None, limits: Limits
) -> Iterator[bytes]:
    """The document's JSON bytes: decrypted and decompressed as needed, within the limits."""
    if is_encrypted(data[:16]):
        if private_key is None:
            raise ExportError(
                "The export is encrypted, but this installation has no private key configured "
                "(STATEWRIGHT_RELOCATION_PRIVATE_KEY)"
            )
        chunks: Iterable[bytes] = decrypt_chunks(data, private_key)
    else:
        chunks = [data]
    expanded = _bounded(_maybe_gunzip(iter(chunks)), limits.max_decompressed_bytes)
    return _strings_within(expanded, limits)


def _strings_within(chunks: Iterator[bytes], limits: Limits) -> Iterator[bytes]:
    try:
        yield from refuse_long_strings(chunks, limits.max_string_bytes)
    except StringTooLongError as error:
        raise ExportError(
            f"The export has a string longer than {error.limit:,} bytes (near byte "
            f"{error.offset:,} of the document); text fields may be at most "
            f"{limits.max_string:,} characters"
        ) from None


def _maybe_gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = b""
    for first in chunks:
        if first:
            break
    if not first.startswith(GZIP_MAGIC):
        yield first
        yield from chunks
        return
    yield from _gunzip_members(_chain(first, chunks))


def _gunzip_members(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress one gzip member after another (a valid gzip file may hold several);
    anything after a member that does not start another is refused."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    carry = b""
    for chunk in chunks:
        data, carry = carry + chunk, b""
        while data:
            if inflater.eof:  # a member ended: what follows must be another
                if len(data) < len(GZIP_MAGIC) and GZIP_MAGIC.startswith(data):
                    carry = data  # the next chunk says whether it is
                    break
                if not data.startswith(GZIP_MAGIC):
                    extra = len(data) + sum(len(c) for c in chunks)
                    raise ExportError(
                        f"The export has {extra:,} bytes after its compressed document"
                    )
                yield inflater.flush()
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                yield inflater.decompress(data, 1 << 20)
            except zlib.error as error:
                raise ExportError(f"The export's compressed data is damaged: {error}") from None
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    if carry:
        raise ExportError(f"The export has {len(carry):,} bytes after its compressed document")
    if not inflater.eof:
        raise ExportError("The export's compressed data is truncated")
    yield inflater.flush()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _bounded(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise ExportError(
                f"The export expands to more than {limit:,} bytes; the limit is {limit:,} bytes"
            )
        yield chunk


class _ChunkFile(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what the JSON parser reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


@dataclass
class Header:
    """What the document says about itself."""

    format: object = None
    version: object = None
    source: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))


def read_records(
    data: bytes, private_key: rsa.RSAPrivateKey | None, limits: Limits, header: Header | None = None
) -> Iterator[tuple[str, Record]]:
    """Every record of the export, validated, in document order.

    Raises ``ExportError`` with a reason for people on the first problem found.
    ``header``, when given, is filled in as the document is read.
    """
    header = header if header is not None else Header()
    stream = io.BufferedReader(_ChunkFile(plaintext(data, private_key, limits)), 1 << 16)
    try:
        yield from _walk(ijson.basic_parse(stream, use_float=True), limits, header)
    except DecryptionError as error:
        raise ExportError(str(error)) from None
    except ijson.IncompleteJSONError as error:
        raise ExportError(f"The export is not valid JSON: {_short(error)}") from None
    except ijson.JSONError as error:
        raise ExportError(f"The export is not valid JSON: {_short(error)}") from None
    except UnicodeDecodeError as error:
        raise ExportError(
            f"The export is not valid UTF-8 text: byte {error.object[error.start : error.end]!r} "
            f"cannot be decoded ({error.reason})"
        ) from None
    except RecursionError:
        raise ExportError("The export is nested too deeply to read") from None


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def _walk(
    events: Iterator[tuple[str, Any]], limits: Limits, header: Header
) -> Iterator[tuple[str, Record]]:
    first = next(events, None)
    if first is None:
        raise ExportError("The export is empty")
    if first[0] != "start_map":
        raise ExportError("The export is not a JSON object")
    seen: list[str] = []
    for event, value in events:  # nested parts are read whole by the helpers below
        if event == "end_map":
            break
        if event != "map_key":
            raise ExportError("The export's structure is not readable")
        _check_key_order(value, seen, header)
        seen.append(value)
        if value in ("format", "version"):
            setattr(header, value, _scalar(events, value))
            if value == "version":
                _check_format(header)
        elif value == "source":
            header.source = _source(events, limits)
        else:
            yield from _section(events, value, limits, header)
    _check_format(header)
    if next(events, None) is not None:
        raise ExportError("The export has data after its end")


def _check_key_order(key: str, seen: list[str], header: Header) -> None:
    allowed = ("format", "version", "source", *SECTIONS)
    if key not in allowed:
        raise ExportError(
            f"The export has an unknown part {key[:40]!r}; allowed: {', '.join(allowed)}"
        )
    if key in seen:
        raise ExportError(f"The export has {key!r} twice")
    if key in SECTIONS and (header.format is None or header.version is None):
        raise ExportError("The export does not start with its format and version")
    order = [k for k in allowed if k in seen or k == key]
    if [*seen, key] != order:
        raise ExportError(
            f"The export has {key!r} out of order; parts must come as: {', '.join(allowed)}"
        )


def _check_format(header: Header) -> None:
    if header.format is not None and header.format != FORMAT:
        raise ExportError(
            f"The file is not a relocation export (format {str(header.format)[:60]!r}; "
            f"expected {FORMAT!r})"
        )
    if header.version is not None and header.version != VERSION:
        raise ExportError(
            f"The export is format version {str(header.version)[:20]}; "
            f"supported versions: {VERSION}"
        )


def _scalar(events: Iterator[tuple[str, Any]], key: str) -> object:
    event, value = next(events)
    if event in ("start_map", "start_array"):
        raise ExportError(f"The export's {key!r} must be a plain value")
    return value


def _source(events: Iterator[tuple[str, Any]], limits: Limits) -> dict[str, str]:
    event, _ = next(events)
    if event != "start_map":
        raise ExportError("The export's 'source' must be an object")
    source: dict[str, str] = {}
    size = 0
    for event, value in events:
        if event == "end_map":
            return source
        key = value
        event, value = next(events)
        if event != "string":
            raise ExportError(f"The export's source.{str(key)[:40]} must be a string")
        for text in (key, value):
            if not is_unicode(text) or _CONTROL.search(text):
                raise ExportError(
                    f"The export's source.{key[:40]!r} has control characters (such as NUL) "
                    "or broken Unicode in its name or value"
                )
        size += len(key.encode("utf-8", "replace")) + len(value.encode("utf-8", "replace"))
        if size > limits.max_source_bytes:
            raise ExportError(f"The export's 'source' is over {limits.max_source_bytes} bytes")
        source[key] = value
    raise ExportError("The export ends inside 'source'")


def _section(
    events: Iterator[tuple[str, Any]], section: str, limits: Limits, header: Header
) -> Iterator[tuple[str, Record]]:
    event, _ = next(events)
    if event != "start_array":
        raise ExportError(f"The export's {section!r} must be a list")
    schema = SCHEMA[section]
    index = 0
    while (item := next(events, None)) is not None:
        event = item[0]
        if event == "end_array":
            return
        if event != "start_map":
            raise ExportError(f"{section}[{index}] must be an object")
        record = _record(events, section, index, schema, limits)
        header.counts[section] += 1
        _check_counts(section, header.counts[section], limits)
        yield section, record
        index += 1
    raise ExportError(f"The export ends inside {section!r}")


def _check_counts(section: str, count: int, limits: Limits) -> None:
    if section == "organizations" and count > limits.max_orgs:
        raise ExportError(
            f"The export has more than {limits.max_orgs} organizations; "
            f"the limit is {limits.max_orgs}"
        )
    if section == "users" and count > limits.max_users:
        raise ExportError(
            f"The export has more than {limits.max_users:,} users; "
            f"the limit is {limits.max_users:,}"
        )


def _record(
    events: Iterator[tuple[str, Any]],
    section: str,
    index: int,
    schema: Mapping[str, Field],
    limits: Limits,
) -> Record:
    record: Record = {}
    where = f"{section}[{index}]"
    for event, value in events:
        if event == "end_map":
            break
        key = value
        if key not in schema:
            raise ExportError(
                f"{where} has unknown field {str(key)[:40]!r}; allowed: {', '.join(schema)}"
            )
        if key in record:
            raise ExportError(f"{where} has field {key!r} twice")
        event, value = next(events)
        if event in ("start_map", "start_array"):
            raise ExportError(f"{where}.{key} must be a plain value, not a nested structure")
        record[key] = _field(where, key, value, schema[key], limits)
    missing = [k for k, spec in schema.items() if spec.required and k not in record]
    if missing:
        raise ExportError(f"{where} is missing {', '.join(missing)}")
    return record


def _field(where: str, key: str, value: Any, spec: Field, limits: Limits) -> Any:
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
            raise ExportError(f"{where}.{key} must be a positive whole number; got {_show(value)}")
        return value
    if not isinstance(value, str):
        raise ExportError(f"{where}.{key} must be a string; got {_show(value)}")
    allowed = min(spec.max_length, limits.max_string)
    if len(value) > allowed:
        raise ExportError(
            f"{where}.{key} is {len(value)} characters long; at most {allowed} are allowed"
        )
    if not is_unicode(value) or _CONTROL.search(value):
        raise ExportError(f"{where}.{key} contains control characters or broken Unicode")
    if spec.check is not None and (problem := spec.check(value)):
        raise ExportError(f"{where}.{key} {problem}; got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# -- writing ------------------------------------------------------------------------


def write_document(
    target: IO[bytes], source: Mapping[str, str], sections: Iterable[tuple[str, Iterable[Record]]]
) -> None:
    """Write a format v1 document, one record per line, streaming."""
    target.write(b'{"format": "%s", "version": %d,\n' % (FORMAT.encode(), VERSION))
    target.write(b'"source": ' + _compact(dict(source)))
    for section, records in sections:
        target.write(b',\n"%s": [' % section.encode())
        for position, record in enumerate(records):
            target.write((b",\n" if position else b"\n") + _compact(record))
        target.write(b"\n]")
    target.write(b"\n}\n")


def _compact(value: object) -> bytes:
    """JSON as short as the input could have been, so a re-written export stays in its limits."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def seal(
    plain: IO[bytes], target: IO[bytes], *, compress: bool, public_key: rsa.RSAPublicKey | None
) -> None:
    """Optionally gzip, then optionally encrypt, ``plain`` into ``target``."""
    plain.seek(0)
    staged: IO[bytes] = plain
    if compress:
        staged = io.BytesIO()
        with gzip.GzipFile(fileobj=staged, mode="wb", mtime=0) as packer:
            while chunk := plain.read(1 << 16):
                packer.write(chunk)
        staged.seek(0)
    if public_key is None:
        while chunk := staged.read(1 << 16):
            target.write(chunk)
    else:
        encrypt_stream(staged, target, public_key)
