"""One redaction rule for every sink: logs, stored failures, history, ``runs export``, Sentry."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Literal

import pytest
import sentry_sdk
import structlog
from sqlalchemy import update

from statewright import Engine, RetryPolicy, Settings, StepContext, Workflow, step
from statewright.logs import configure_logging
from statewright.models.engine import WorkflowTransition
from statewright.observability import setup_sentry
from statewright.redaction import REDACTED, redact_text, redact_value
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.engine.test_sentry import Collector, sentry_endpoint  # noqa: F401
from tests.sample_workflows import Approval

SECRETS = ("hunter2", "sk-live-1", "AKIAEXAMPLE", "tok-9")
LEAKY_PARAMS = {"api_key": "sk-live-1", "secret": "tok-9"}


class Leaky(Workflow):
    """A step whose error carries every kind of secret a careless library puts in one."""

    name = "leaky"
    transitions = [("connected", "connecting", "done")]
    terminal = ["done"]
    retry = RetryPolicy(max_attempts=2, backoff=1.0, jitter=0.0)

    @step(initial=True, reason="We could not connect to postgresql://app:hunter2@db/prod")
    def connecting(self, ctx: StepContext) -> Literal["connected"]:
        api_key = ctx.params["api_key"]  # a frame variable Sentry would send
        sentry_sdk.add_breadcrumb(
            message="connecting to postgresql://app:hunter2@db/prod",
            data={"aws_secret_access_key": "AKIAEXAMPLE"},
        )
        sentry_sdk.set_extra("secret_key", ctx.params["secret"])
        raise ConnectionError(
            f"could not connect to postgresql://app:hunter2@db/prod with api_key={api_key}, "
            f"options {{'aws_secret_access_key': 'AKIAEXAMPLE', 'auth_token': 'tok-9'}}"
        )


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}: {text[:400]}"


NAMES = [
    "secret_key",
    "aws_secret_access_key",
    "api_key",
    "AUTH_TOKEN",
    "db_password",
    "sentry_dsn",
]
TEXTS = {
    "host=db password=hunter2 user=app": "host=db password=*** user=app",
    "{'secret_key': 'tok-9', 'n': 2}": "{'secret_key': '***', 'n': 2}",
    '{"aws_secret_access_key": "AKIA EX"}': '{"aws_secret_access_key": "***"}',
    "https://api.example/v1?api_key=sk-live-1&page=2": "https://api.example/v1?api_key=***&page=2",
    "KeyError: 'api_key'": "KeyError: 'api_key'",
    "run moved at token=3": "run moved at token=3",
}


def test_names_containing_a_secret_word_anywhere_are_redacted() -> None:
    """A field whose name contains secret, password, token, key or dsn anywhere is masked."""
    for name in NAMES:
        assert redact_value("", {name: "value", "nested": [{name: 1}]}) == {
            name: REDACTED,
            "nested": [{name: REDACTED}],
        }, name


def test_secret_values_named_in_text_are_redacted() -> None:
    """``name=value`` and ``'name': 'value'`` pairs with a secret name lose their value;
    exception names and the fencing token stay readable."""
    assert {text: redact_text(text) for text in TEXTS} == TEXTS


def test_log_lines_redact_every_secret_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log line with secret_key, aws_secret_access_key and a conninfo password shows none."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("json")
    try:
        structlog.get_logger("test").warning(
            "connecting",
            secret_key="tok-9",
            aws_secret_access_key="AKIAEXAMPLE",
            error="libpq: host=db password=hunter2",
        )
    finally:
        structlog.reset_defaults()
    assert_no_secret("the log", buffer.getvalue())


def failed_leaky_run(make_engine: EngineFactory) -> tuple[Engine, str]:
    engine = make_engine([Leaky, Approval])
    run = engine.start("leaky", LEAKY_PARAMS)
    assert WorkflowHarness(engine).run(run.id).status == "failed"
    return engine, run.id


def test_stored_failure_and_history_hold_no_secret(make_engine: EngineFactory) -> None:
    """The failure reason, failure detail (with its traceback) and every history row of a
    run whose error was full of secrets are stored redacted; the params keep the key."""
    engine, run_id = failed_leaky_run(make_engine)
    run = engine.get(run_id)
    assert run.params == LEAKY_PARAMS  # the run needs it; it is not a log
    assert "postgresql://app:***@db/prod" in (run.failure_reason or "")
    assert_no_secret("failure_reason", run.failure_reason or "")
    assert_no_secret("failure_detail", json.dumps(run.failure_detail))
    assert "api_key=***" in str(run.failure_detail)
    details = [h.detail for h in engine.history(run_id)]
    assert any(d and "error_message" in d for d in details)  # the retry kept its error
    assert_no_secret("history", json.dumps(details))


def test_signal_data_is_redacted_in_history_not_in_the_context(
    make_engine: EngineFactory,
) -> None:
    """A signal's api_key reaches the run's context whole and its history row masked."""
    engine = make_engine([Approval])
    run = engine.start("approval")
    engine.signal(run.id, "approved", {"api_key": "sk-live-1", "note": "password=hunter2"})
    assert engine.get(run.id).context["api_key"] == "sk-live-1"
    signalled = engine.history(run.id)[-1].detail
    assert signalled == {"signal": True, "data": {"api_key": REDACTED, "note": "password=***"}}


def test_runs_export_carries_details_redacted(make_engine: EngineFactory) -> None:
    """``runs export`` includes each row's detail, redacted, even for rows written before
    redaction covered them."""
    engine, run_id = failed_leaky_run(make_engine)
    with engine.db.transaction() as session:  # a row as an older version stored it
        session.execute(
            update(WorkflowTransition)
            .where(WorkflowTransition.run_id == run_id, WorkflowTransition.seq == 1)
            .values(detail={"note": "token=tok-9", "aws_secret_access_key": "AKIAEXAMPLE"})
        )
    exported = engine.export_history(run_id)
    assert exported["transitions"][0]["detail"] == {
        "note": "token=***",
        "aws_secret_access_key": REDACTED,
    }
    assert any("error_message" in t.get("detail", {}) for t in exported["transitions"])
    assert_no_secret("runs export", json.dumps(exported))


def test_sentry_events_hold_no_secret(
    make_engine: EngineFactory,
    sentry_endpoint: str,  # noqa: F811
) -> None:
    """The Sentry event of a failed run carries no secret in its exception message, frame
    variables, breadcrumbs or extra data, and still says what failed."""
    engine = make_engine([Leaky])
    assert setup_sentry(
        Settings(database_url=engine.settings.database_url, sentry_dsn=sentry_endpoint)
    )
    run = engine.start("leaky", LEAKY_PARAMS)
    assert WorkflowHarness(engine).run(run.id).status == "failed"
    sentry_sdk.flush(timeout=10)
    assert len(Collector.events) == 1
    event: dict[str, Any] = Collector.events[0]
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "ConnectionError"
    assert "postgresql://app:***@db/prod" in exception["value"]
    frames = exception["stacktrace"]["frames"]
    handler = next(f for f in frames if f.get("function") == "connecting")
    assert handler["vars"]["api_key"] == REDACTED
    crumbs = event["breadcrumbs"]["values"]
    assert any("postgresql://app:***@db" in (c.get("message") or "") for c in crumbs)
    assert event["extra"]["secret_key"] == REDACTED
    assert_no_secret("the Sentry event", json.dumps(event))
