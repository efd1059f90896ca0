"""Activation hooks: a workflow's `@on_activate` refuses a start or a redrive in its
transaction, and nothing is written then."""

from __future__ import annotations

from typing import Literal

import pytest

from statewright import (
    Activation,
    Engine,
    IllegalOperationError,
    PermanentError,
    StepContext,
    Workflow,
    on_activate,
    step,
)
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory

#: What each hook call saw: (how, run id); a test empties it.
SEEN: list[tuple[str, str]] = []
#: Activations the hook refuses (``start``, ``redrive``).
REFUSE: set[str] = set()


class Gated(Workflow):
    """One step that fails while its params say so; its hook refuses what REFUSE names."""

    name = "gated"
    transitions = [("done", "working", "finished")]
    terminal = ["finished"]

    @step(initial=True)
    def working(self, ctx: StepContext) -> Literal["done"]:
        if ctx.params.get("broken"):
            raise PermanentError("broken")
        return "done"

    @on_activate
    def gate(self, activation: Activation) -> None:
        SEEN.append((activation.how, activation.run_id))
        if activation.how in REFUSE:
            raise IllegalOperationError(f"the gate refuses a {activation.how}")


@pytest.fixture
def gated(make_engine: EngineFactory) -> Engine:
    SEEN.clear()
    REFUSE.clear()
    return make_engine([Gated])


def test_a_refused_start_writes_nothing(gated: Engine) -> None:
    """A hook that raises on start refuses it with its error; no run is written."""
    REFUSE.add("start")
    with pytest.raises(IllegalOperationError, match="the gate refuses a start"):
        gated.start("gated", {})
    assert gated.list() == []
    assert [how for how, _ in SEEN] == ["start"]


def test_a_refused_redrive_leaves_the_failed_run_as_it_was(gated: Engine) -> None:
    """A hook that raises on redrive refuses it; the run stays failed, its history as it
    was; allowed, the redrive goes on and the hook saw the run's own id."""
    run = gated.start("gated", {"broken": True})
    failed = WorkflowHarness(gated).run(run.id)
    history = gated.history(run.id)
    REFUSE.add("redrive")
    with pytest.raises(IllegalOperationError, match="the gate refuses a redrive"):
        gated.redrive(run.id)
    assert (gated.get(run.id), gated.history(run.id)) == (failed, history)
    REFUSE.clear()
    assert gated.redrive(run.id).status == "running"
    seen = list(SEEN)
    assert seen == [("start", run.id), ("redrive", run.id), ("redrive", run.id)]
