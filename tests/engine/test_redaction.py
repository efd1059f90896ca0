"""Secrets never reach the logs: URL passwords, DSN keys, private keys, secret fields."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
import structlog

from statewright.logs import configure_logging
from statewright.redaction import redact_text, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db/prod", "postgresql://app:***@db/prod"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("https://abc123def@o1.ingest.example/42", "https://***@o1.ingest.example/42"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            "could not connect to postgresql://u:p@h/d: refused",
            "could not connect to postgresql://u:***@h/d: refused",
        ),
    ],
)
def test_url_credentials_are_redacted(text: str, expected: str) -> None:
    """Passwords and DSN keys inside URLs are replaced, the rest kept."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12http://u:p@h", "12http://u:***@h"),
        ("x.1+ssh://u:p@h", "x.1+ssh://u:***@h"),
        ("a=token=xyz", "a=token=***"),
        ("my.api_key: 'abc def'", "my.api_key: '***'"),
        ("KeyError: 'x'", "KeyError: 'x'"),
    ],
)
def test_a_name_or_scheme_is_the_whole_run_of_its_characters(text: str, expected: str) -> None:
    """A scheme starts at the first letter of its run; a secret name is its whole run."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["s" * 200_000, "key" * 70_000, "a" * 200_000 + "_token=abc", "x=" + "1" * 200_000],
    ids=["letters", "secret-words", "long-name", "long-value"],
)
def test_long_text_is_redacted_in_linear_time(text: str) -> None:
    """200,000 characters take milliseconds, not the hours a pattern retried at every
    character of a run (quadratic in the run) would take."""
    started = time.perf_counter()
    redacted = redact_text(text)
    assert time.perf_counter() - started < 5.0
    assert redacted == text.replace("_token=abc", "_token=***")


def test_secret_fields_and_private_keys_are_redacted() -> None:
    """Fields named like secrets and PEM private keys are replaced wherever they sit."""
    pem = "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----"
    event = {
        "password": "x",
        "sentry_dsn": "https://k@h/1",
        "token": 7,
        "nested": {"api_key": "abc", "note": f"key is {pem}"},
    }
    clean = redact_value("", event)
    assert clean["password"] == "***"
    assert clean["sentry_dsn"] == "***"
    assert clean["token"] == 7  # the fencing token is not a secret
    assert clean["nested"]["api_key"] == "***"
    assert "MIIabc" not in clean["nested"]["note"]


def test_log_lines_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON log line carrying a database URL shows no password."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("json")
    try:
        structlog.get_logger("test").warning(
            "connecting", url="postgresql://a:s3cret@h/d", password="s3cret"
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert "s3cret" not in buffer.getvalue()
    assert line["url"] == "postgresql://a:***@h/d"
