"""Every step and task message delivered two or three times, in shuffled order: no
effect twice, no run going backwards."""

from __future__ import annotations

import random

from statewright import Engine, InMemoryMetrics
from statewright.testing import WorkflowHarness
from tests.chaos.workflow import EXPECTED, STATES, TASK_EFFECT, WORKFLOWS
from tests.conftest import EngineFactory
from tests.sample_workflows import effect_counts


def test_duplicated_and_shuffled_messages(make_engine: EngineFactory) -> None:
    """Thirty runs whose every message (steps and the plain task) arrives 2-3 times out of
    order all end exactly right, and every extra copy is dropped and counted."""
    engine: Engine = make_engine(WORKFLOWS)
    harness = WorkflowHarness(engine)
    shuffle = random.Random(11)
    runs = [engine.start("chain").id for _ in range(30)]
    deliveries = {"step": 0, "task": 0}
    for _ in range(10_000):
        engine.relay.drain()
        batch = list(harness.queue.messages)
        harness.queue.messages.clear()
        if not batch:
            if all(engine.get(r).finished for r in runs) or harness.step() is None:
                break
            continue
        copies = [m for m in batch for _ in range(shuffle.choice((2, 3)))]
        shuffle.shuffle(copies)
        for message in copies:
            harness.deliver(message)
            deliveries["task" if message.task_name == "chain.note" else "step"] += 1
    assert deliveries["step"] > 2 * 30 * len(STATES)
    assert deliveries["task"] > 2 * 30
    metrics = engine.metrics
    assert isinstance(metrics, InMemoryMetrics)
    assert metrics.total("step.dropped") == deliveries["step"] - 30 * len(STATES)
    assert metrics.total("task.dropped") == deliveries["task"] - 30
    with engine.db.reads() as session:
        for run_id in runs:
            assert engine.get(run_id).status == "succeeded"
            moves = [(h.from_state, h.trigger, h.to_state) for h in engine.history(run_id)]
            assert moves == EXPECTED
            assert effect_counts(session, run_id) == dict.fromkeys([*STATES, TASK_EFFECT], 1)
