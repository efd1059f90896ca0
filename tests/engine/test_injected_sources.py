"""Run ids and the delivery's monotonic time come from sources given to the engine, as
the clock does, so tests and replays decide them without patching the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count

import pytest

from statewright import Engine, InMemoryMetrics, Settings
from statewright.clock import VirtualClock
from statewright.operations import new_run_id
from statewright.testing import WorkflowHarness
from tests.sample_workflows import WORKFLOWS

EngineWith = Callable[..., Engine]


@pytest.fixture
def engine_with(database_url: str) -> Iterator[EngineWith]:
    """Engines on the test database, with the sources a test gives them."""
    built: list[Engine] = []

    def build(continue_for: float = 0.0, **sources: object) -> Engine:
        engine = Engine(
            Settings(database_url=database_url, continue_for=continue_for),
            WORKFLOWS,
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            **sources,  # type: ignore[arg-type]
        )
        built.append(engine)
        return engine

    yield build
    for engine in built:
        engine.close()


def test_new_runs_take_their_ids_from_the_given_source(engine_with: EngineWith) -> None:
    """Each started run has the next id of the source; lookups by prefix find it."""
    numbers = count(1)
    engine = engine_with(run_ids=lambda: f"{next(numbers):032x}")
    first = engine.start("pipeline", {})
    second = engine.start("pipeline", {})
    assert (first.id, second.id) == (f"{1:032x}", f"{2:032x}")
    assert engine.get(second.id).workflow == "pipeline"


def test_the_default_run_ids_sort_by_creation_and_do_not_repeat() -> None:
    """Without a source, ids are 32 hex digits, in the order they were made, all distinct."""
    made = [new_run_id() for _ in range(200)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)
    assert len(set(made)) == 200
    assert [i[:12] for i in made] == sorted(i[:12] for i in made)


@pytest.mark.parametrize(
    ("step_between_readings", "delivered"),
    [
        (0, ["pipeline.fetching"]),
        (6, ["pipeline.fetching", "pipeline.transforming", "pipeline.storing"]),
    ],
)
def test_a_delivery_measures_its_window_on_the_given_monotonic_source(
    engine_with: EngineWith, step_between_readings: int, delivered: list[str]
) -> None:
    """Where the given monotonic time stands still a delivery runs the whole pipeline;
    where it jumps past ``continue_for`` at each reading, each step has its own message."""
    readings = count(start=100, step=step_between_readings)
    engine = engine_with(continue_for=5.0, monotonic=lambda: float(next(readings)))
    harness = WorkflowHarness(engine, continue_steps=True)
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    assert [d.message.task_name for d in harness.deliveries] == delivered
