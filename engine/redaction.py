"""Keeping secrets out of logs: passwords in URLs, DSN keys, private keys, secret fields."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "***"

#: Field names whose values are secrets, whatever they look like.
SECRET_FIELDS = re.compile(
    r"(password|passwd|secret|api_?key|authorization|auth_token|access_token|dsn|private_key|"
    r"credentials?)$",
    re.IGNORECASE,
)
#: ``scheme://user:password@host`` and ``scheme://key@host`` (a Sentry DSN's key).
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/@]+)@", re.IGNORECASE
)
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)


def redact_text(text: str) -> str:
    """``text`` with URL credentials and private keys replaced by ``***``."""
    text = _PEM.sub(f"-----PRIVATE KEY {REDACTED}-----", text)

    def userinfo(match: re.Match[str]) -> str:
        user, _, password = match.group("userinfo").partition(":")
        kept = f"{user}:{REDACTED}" if password else REDACTED
        return f"{match.group('scheme')}{kept}@"

    return _URL_CREDENTIALS.sub(userinfo, text)


def redact_value(key: str, value: Any) -> Any:
    if isinstance(key, str) and SECRET_FIELDS.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value("", v) for v in value)
    return value


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: every field of every line is redacted."""
    return {key: redact_value(key, value) for key, value in event.items()}
