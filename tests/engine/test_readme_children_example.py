"""The README's worked example of a Map, run as written."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from statewright import Engine
from statewright.testing import WorkflowHarness
from tests.child_workflows import MapTasks
from tests.sample_workflows import test_metadata


@pytest.fixture
def statewright_workflows() -> list[object]:
    return [MapTasks]


@pytest.fixture
def effects_table(statewright_engine: Engine) -> None:
    tables = create_engine(statewright_engine.settings.database_url)
    test_metadata.create_all(tables)
    tables.dispose()


@pytest.mark.usefixtures("effects_table")
def test_a_map_moves_once(statewright_engine: Engine, statewright_harness: WorkflowHarness) -> None:
    """Fifty items, three failing (within 10%): the Map moves on once; the failures listed."""
    run = statewright_engine.start("map_tasks", {"items": 50, "fail_every": 20})
    assert statewright_harness.run(run.id).state == "done"
    [done] = statewright_engine.maps(run.id)
    assert (done.started, done.done, done.failed) == (50, 50, 3)
    assert [f.position for f in statewright_engine.failed_items(run.id)] == [0, 20, 40]
