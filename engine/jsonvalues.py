"""Checking that params, context and signal data are plain, bounded JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from statewright.errors import InvalidParamsError

MAX_BYTES = 64 * 1024
#: How deep lists and objects may nest: deep enough for any real document, shallow
#: enough that no reader (ours, the JSON encoder, a database's) runs out of stack.
MAX_DEPTH = 64
#: Integers must fit in 128 bits (a UUID as a number); larger ones cannot be printed cheaply.
MAX_INT_BITS = 128


def json_size(value: object) -> int:
    """Bytes of ``value`` as compact JSON: what the size limits count."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def check_json_object(value: object, what: str, *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Return ``value`` as a JSON-safe dict, or say exactly which part is not JSON."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParamsError(
            f"{what} must be a JSON object (a dict); got {type(value).__name__}"
        )
    _check(value, what, 0)
    size = json_size(value)
    if size > max_bytes:
        raise InvalidParamsError(
            f"{what} are {size} bytes as JSON; at most {max_bytes} bytes are allowed "
            "(store large data in your own tables and pass its id)"
        )
    return json.loads(json.dumps(value))  # type: ignore[no-any-return]


_HEX = frozenset("0123456789abcdef")


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be stored (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_run_id(value: object) -> bool:
    """Whether ``value`` looks like a run id (32 lowercase hex digits)."""
    return isinstance(value, str) and len(value) == 32 and all(c in _HEX for c in value)


def canonical(value: object) -> object:
    """``value`` with every number as an exact decimal: equal JSON is equal whichever way a
    database gave it back (PostgreSQL's JSONB returns ``1e23`` as the integer 10**23)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return Decimal(repr(value)).normalize()
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    return value


def _check(value: object, path: str, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value, path)
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise InvalidParamsError(
                f"{path} is an integer of {value.bit_length()} bits; integers must fit in "
                f"{MAX_INT_BITS} bits (pass larger numbers as strings)"
            )
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidParamsError(f"{path} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, list | tuple | dict):
        _check_container(value, path, depth + 1)
        return
    raise InvalidParamsError(
        f"{path} is a {type(value).__name__} ({value!r:.60}), which is not JSON; allowed: "
        "str, int, float, bool, None, list, dict"
    )


def _check_container(
    value: list[Any] | tuple[Any, ...] | dict[Any, Any], path: str, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise InvalidParamsError(
            f"{path[:120]} nests lists and objects more than {MAX_DEPTH} levels deep; "
            f"the depth limit is {MAX_DEPTH}"
        )
    if not isinstance(value, dict):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth)
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidParamsError(
                f"{path} has key {key!r} of type {type(key).__name__}; JSON keys are strings"
            )
        _check_text(key, f"{path} key {key!r:.60}")
        _check(item, f"{path}[{key!r}]", depth)


def _check_text(text: str, path: str) -> None:
    if not is_unicode(text):
        raise InvalidParamsError(f"{path} holds text that is not valid Unicode (a lone surrogate)")
    if "\x00" in text:
        raise InvalidParamsError(
            f"{path} contains a NUL character (\\u0000), which cannot be stored; "
            "remove it or encode the value (e.g. base64)"
        )
