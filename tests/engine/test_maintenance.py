"""The maintenance loop outlives failures: a relay that died would strand every run."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from statewright import Engine, InMemoryMetrics
from statewright.maintenance import MaintenanceLoop
from statewright.testing import WorkflowHarness


def test_a_failed_round_is_counted_and_the_next_one_works(
    engine: Engine,
    harness: WorkflowHarness,
    metrics: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round that hits a terminated connection logs and counts it; the next round relays."""
    engine.publisher = None
    run = engine.start("pipeline")
    engine.publisher = harness.queue
    loop = MaintenanceLoop(engine)
    real = engine.relay_round

    def terminated(**_: object) -> tuple[int, int]:
        raise OperationalError("SELECT 1", {}, Exception("terminating connection"))

    monkeypatch.setattr(engine, "relay_round", terminated)
    assert loop.round() is None
    assert metrics.total("relay.round_failed") == 1
    monkeypatch.setattr(engine, "relay_round", real)
    assert loop.round() == (1, 0)
    assert metrics.find("runs", workflow="pipeline", status="running")[-1].value == 1
    assert harness.run(run.id).status == "succeeded"
