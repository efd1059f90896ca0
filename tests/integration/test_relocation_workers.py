"""Relocation on real `celery worker` processes with PostgreSQL and Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from statewright import Engine, Settings
from statewright.models import User
from statewright.workflows.relocation import Relocation, RelocationConfig, start_relocation
from tests.integration.conftest import ClusterFactory
from tests.workflows.conftest import OWNER, Keys, snapshot


def test_relocation_on_real_workers(
    make_cluster: ClusterFactory,
    redis_url: str,
    keys: Keys,
    encrypted_export: bytes,
    source_url: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    """An encrypted export relocates through real broker messages; every record arrives."""
    mail = tmp_path / "mail"
    cluster = make_cluster(
        redis_url,
        STATEWRIGHT_WORKFLOWS="statewright.workflows",
        STATEWRIGHT_RELOCATION_PRIVATE_KEY=str(keys.private),
        STATEWRIGHT_EMAIL_BACKEND=f"file:{mail}",
        STATEWRIGHT_RELOCATION_VALIDATION_INTERVAL="1",
    )
    engine = Engine(Settings.from_env(cluster.env), [Relocation(RelocationConfig())])
    with engine.db.transaction() as session:
        session.add(User(username="owner", email=OWNER, name="Owner", created_at=datetime.now(UTC)))
    cluster.worker(concurrency=2)
    cluster.relay()
    run = start_relocation(engine, encrypted_export, owner=OWNER)
    done = engine.wait(run.id, timeout=120)
    assert done.status == "succeeded", done.failure_reason
    moved = snapshot(pg_url, ["org-1", "org-2", "org-3"])
    moved["members"] = {m for m in moved["members"] if m[1] != "owner"}
    moved["users"] = {u for u in moved["users"] if u[0] != "owner"}
    assert moved == snapshot(source_url)
    assert [h.trigger for h in engine.history(run.id)][-1] == "notified"
    engine.close()
