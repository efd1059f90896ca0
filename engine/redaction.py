"""Keeping secrets out of everything we write down: logs, stored failure details, history,
``runs export`` and Sentry events all pass through this one rule.

A value is a secret when its name contains ``secret``, ``password``, ``passwd``,
``token``, ``key``, ``dsn``, ``credential`` or ``authorization`` anywhere (``api_key``,
``secret_key``, ``aws_secret_access_key``, ``sentry_dsn``); in free text, a ``name=value``
or ``name: value`` with such a name has its value replaced, and so do the password of
a URL (``scheme://user:password@host``), a DSN's key and PEM private keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "***"

#: Words that make a field's name say its value is a secret, wherever they appear in it.
SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "token",
    "key",
    "dsn",
    "credential",
    "authorization",
)
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
#: The engine's own bookkeeping whose names contain such a word but whose values are not
#: secrets: the fencing token (an integer), idempotency keys, a public key's fingerprint.
_NOT_SECRET = frozenset({"idempotency_key", "key_fingerprint"})
#: Names in text that are exception classes (``KeyError: 'x'``), not fields.
_ERROR_NAME = re.compile(r"(error|exception|warning)$", re.IGNORECASE)
#: ``scheme://user:password@host`` and ``scheme://key@host`` (a Sentry DSN's key). The
#: scheme starts at the first letter of its run of scheme characters (``lead`` is what comes
#: before that letter in the run); tried once per run, not at each of its characters.
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.-])(?P<lead>[0-9+.-]*+)(?P<scheme>[a-z][a-z0-9+.-]*+://)"
    r"(?P<userinfo>[^\s/@]+)@",
    re.IGNORECASE,
)
#: ``name=value``, ``name: value``, ``"name": "value"`` and ``'name': 'value'`` in text.
#: The name is a whole run of name characters holding a secret word, tried once per run:
#: tried at each character of a long run, each try splitting the rest every way, both
#: patterns took seconds per 10,000 characters of a signal's data (quadratic).
_NAMED_VALUE = re.compile(
    r"(?<![\w.-])(?P<name>(?=[\w.-]*?(?:" + "|".join(SECRET_WORDS) + r"))[\w.-]++)"
    r"(?P<between>[\"']?\s*[:=]\s*(?P<quote>[\"'])?)"
    r"(?P<value>(?(quote)[^\"'\n]+|[^\s\"',;&}\])]+))",
    re.IGNORECASE,
)
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)


def is_secret_name(name: str, value: object = None) -> bool:
    """Whether a field called ``name`` holds a secret (``value`` tells the fencing token,
    an integer called ``token``, from a token that is a credential)."""
    if name.lower() in _NOT_SECRET or (name.lower() == "token" and _is_number(value)):
        return False
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """``text`` with URL credentials, secret ``name=value`` pairs and private keys masked."""
    # every pattern needs a URL's "://" or a secret word (a PEM key says "PRIVATE KEY"):
    # text with neither, most of what is logged, is returned after one search
    if "://" not in text and not _SECRET_NAME.search(text):
        return text
    text = _PEM.sub(f"-----PRIVATE KEY {REDACTED}-----", text)

    def userinfo(match: re.Match[str]) -> str:
        user, _, password = match.group("userinfo").partition(":")
        kept = f"{user}:{REDACTED}" if password else REDACTED
        return f"{match.group('lead')}{match.group('scheme')}{kept}@"

    def named(match: re.Match[str]) -> str:
        name = match.group("name")
        if _ERROR_NAME.search(name) or not is_secret_name(name, match.group("value")):
            return match.group(0)
        return f"{match.group('name')}{match.group('between')}{REDACTED}"

    return _NAMED_VALUE.sub(named, _URL_CREDENTIALS.sub(userinfo, text))


def redact_value(key: str, value: Any) -> Any:
    """``value`` (stored or logged under ``key``) with every secret in it masked."""
    if isinstance(key, str) and is_secret_name(key, value) and value not in (None, ""):
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


def redact_sentry_event(event: Any, _hint: Any) -> Any:
    """Sentry's ``before_send``: exception messages, frame variables, breadcrumbs, extra
    data and tags of an event, redacted like everything else."""
    return redact_value("", event)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())
