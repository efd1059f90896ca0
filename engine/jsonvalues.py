"""Checking that params, context and signal data are plain, bounded JSON."""

from __future__ import annotations

import json
from typing import Any

from engine.errors import InvalidParamsError

MAX_BYTES = 64 * 1024


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
    _check(value, what)
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


def _check(value: object, path: str) -> None:
    if isinstance(value, str):
        if not is_unicode(value):
            raise InvalidParamsError(
                f"{path} holds text that is not valid Unicode (a lone surrogate)"
            )
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidParamsError(f"{path} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidParamsError(
                    f"{path} has key {key!r} of type {type(key).__name__}; JSON keys are strings"
                )
            _check(item, f"{path}[{key!r}]")
        return
    raise InvalidParamsError(
        f"{path} is a {type(value).__name__} ({value!r:.60}), which is not JSON; allowed: "
        "str, int, float, bool, None, list, dict"
    )
