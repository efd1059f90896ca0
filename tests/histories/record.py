"""Record histories by really running the workflows on a virtual clock.

    python -m tests.histories.record

writes ``tests/histories/relocation-*.json`` and ``document-review-*.json``; the replay
tests walk each of them through the current definition, so a change that would strand
runs like these fails.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock, migrate
from statewright.models import User
from statewright.testing import WorkflowHarness
from statewright.workflows.document_review import DocumentReview
from statewright.workflows.relocation import Relocation, RelocationConfig, start_relocation

HERE = Path(__file__).resolve().parent
OWNER = "owner@target.example"
DOCUMENT = {
    "format": "statewright.relocation",
    "version": 1,
    "source": {"installation": "recorded"},
    "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
    "users": [{"id": 1, "username": "ann", "email": "ann@acme.example"}],
    "members": [{"organization_id": 1, "user_id": 1, "role": "manager"}],
    "teams": [{"id": 1, "organization_id": 1, "slug": "core", "name": "Core"}],
    "projects": [{"id": 1, "organization_id": 1, "slug": "web", "name": "Web"}],
    "project_teams": [{"project_id": 1, "team_id": 1}],
}
EXPORT = json.dumps(DOCUMENT).encode()

Scenario = Callable[[Engine, WorkflowHarness], str]


def happy_path(engine: Engine, harness: WorkflowHarness) -> str:
    run = start_relocation(engine, EXPORT, owner=OWNER)
    harness.run(run.id)
    return run.id


def retried_step(engine: Engine, harness: WorkflowHarness) -> str:
    harness.fail_at("importing", 1, ConnectionError("the database went away"))
    return happy_path(engine, harness)


def validation_timed_out_and_rerun(engine: Engine, harness: WorkflowHarness) -> str:
    run = start_relocation(engine, EXPORT, owner=OWNER)
    dropped = False
    while not engine.get(run.id).finished:
        waiting = [m for m in harness.queue.messages if m.task_name == "relocation.validate"]
        if waiting and not dropped:
            harness.queue.messages.remove(waiting[0])  # the first sandbox never answers
            dropped = True
        if harness.step() is None:
            break
    return run.id


def paused_and_resumed(engine: Engine, harness: WorkflowHarness) -> str:
    run = start_relocation(engine, EXPORT, owner=OWNER, pause_at="importing")
    harness.run(run.id)
    engine.resume(run.id)
    harness.run(run.id)
    return run.id


def cancelled(engine: Engine, harness: WorkflowHarness) -> str:
    run = start_relocation(engine, EXPORT, owner=OWNER)
    harness.step()
    running = harness.claim_next()
    engine.cancel(run.id)
    running.finish()
    harness.run(run.id)
    return run.id


def failed(engine: Engine, harness: WorkflowHarness) -> str:
    run = start_relocation(engine, b"{not json", owner=OWNER)
    harness.run(run.id)
    return run.id


SCENARIOS: dict[str, Scenario] = {
    "happy-path": happy_path,
    "retried-step": retried_step,
    "validation-timed-out-and-rerun": validation_timed_out_and_rerun,
    "paused-and-resumed": paused_and_resumed,
    "cancelled": cancelled,
    "failed": failed,
}


def documents_received(engine: Engine, harness: WorkflowHarness) -> str:
    """A waiting state left by a signal whose handler keeps the files; the review polls
    three hours (one folded row) and approves."""
    run = engine.start("document_review", {"applicant": "ann"})
    harness.run(run.id, until_waiting=True)
    harness.clock.advance(timedelta(days=2))
    engine.signal(run.id, "documents_received", {"files": ["passport.pdf", "lease.pdf"]})
    harness.run(run.id)
    return run.id


def documents_expired(engine: Engine, harness: WorkflowHarness) -> str:
    """Nobody answers: the wait's timeout takes 'expired' after a week."""
    run = engine.start("document_review", {"applicant": "bob"})
    harness.run(run.id)
    return run.id


def review_past_deadline(engine: Engine, harness: WorkflowHarness) -> str:
    """The review desk never answers: the run's deadline (a day, given at start) passes
    while it polls, and takes 'timed_out'."""
    run = engine.start(
        "document_review", {"applicant": "cy", "review_hours": 1000}, deadline=timedelta(days=1)
    )
    harness.run(run.id, until_waiting=True)
    engine.signal(run.id, "documents_received", {"files": ["passport.pdf"]})
    harness.run(run.id)
    return run.id


REVIEW_SCENARIOS: dict[str, Scenario] = {
    "documents-received": documents_received,
    "documents-expired": documents_expired,
    "review-past-deadline": review_past_deadline,
}


def record_review(name: str, scenario: Scenario, directory: Path) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'target.db'}"
        migrate(url)
        engine = Engine(
            Settings(database_url=url),
            [DocumentReview],
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(5),
        )
        run_id = scenario(engine, WorkflowHarness(engine))
        path = directory / f"document-review-{name}.json"
        path.write_text(json.dumps(engine.export_history(run_id), indent=1) + "\n")
        engine.close()
    return path


def record(name: str, scenario: Scenario, directory: Path) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'target.db'}"
        migrate(url)
        config = RelocationConfig(
            email_backend=f"file:{Path(scratch) / 'mail'}", validation_timeout=timedelta(seconds=30)
        )
        engine = Engine(
            Settings(database_url=url),
            [Relocation(config)],
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(5),
        )
        with engine.db.transaction() as session:
            session.add(User(username="owner", email=OWNER, created_at=datetime.now(UTC)))
        run_id = scenario(engine, WorkflowHarness(engine))
        path = directory / f"relocation-{name}.json"
        path.write_text(json.dumps(engine.export_history(run_id), indent=1) + "\n")
        engine.close()
    return path


def main(only: str = "") -> None:
    """Record every scenario (or those whose file name contains ``only``)."""
    for name, scenario in SCENARIOS.items():
        if only in f"relocation-{name}":
            print(f"recorded {record(name, scenario, HERE)}")
    for name, scenario in REVIEW_SCENARIOS.items():
        if only in f"document-review-{name}":
            print(f"recorded {record_review(name, scenario, HERE)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "")
