"""pytest fixtures for workflow authors (loaded automatically when statewright is installed).

Override ``statewright_workflows`` to return your workflow classes (or configured
instances); ``statewright_harness`` then steps them on a fresh SQLite database with a
virtual clock::

    @pytest.fixture
    def statewright_workflows():
        return [Onboarding]

    def test_onboarding(statewright_engine, statewright_harness):
        run = statewright_engine.start("onboarding", {"email": "kim@example.com"})
        assert statewright_harness.run(run.id).status == "succeeded"
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from statewright.api import Engine
from statewright.clock import VirtualClock
from statewright.config import Settings
from statewright.metrics import InMemoryMetrics
from statewright.migrate import upgrade
from statewright.registry import WorkflowItem
from statewright.testing import WorkflowHarness


@pytest.fixture
def statewright_workflows() -> list[WorkflowItem]:
    """The workflows under test; override this fixture in your conftest."""
    raise pytest.UsageError("override the statewright_workflows fixture with your workflows")


@pytest.fixture
def statewright_engine(
    tmp_path: Path, statewright_workflows: list[WorkflowItem]
) -> Iterator[Engine]:
    """An engine on a migrated SQLite file, a virtual clock and in-memory metrics; each
    step is its own delivery, so the harness steps them one at a time."""
    url = f"sqlite:///{tmp_path / 'statewright.db'}"
    upgrade(url)
    engine = Engine(
        Settings(database_url=url, continue_for=0.0),
        statewright_workflows,
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(0),
    )
    yield engine
    engine.close()


@pytest.fixture
def statewright_harness(statewright_engine: Engine) -> WorkflowHarness:
    """Steps ``statewright_engine`` one task at a time."""
    return WorkflowHarness(statewright_engine)
