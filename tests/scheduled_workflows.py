"""A workflow with declared schedules, for the schedule tests and the real relays they start."""

from __future__ import annotations

from typing import Any, Literal

from statewright import Schedule, StepContext, Workflow, step
from tests.sample_workflows import record_effect


class Tick(Workflow):
    """One step per run; started every second, and nightly in Berlin."""

    name = "tick"
    transitions = [("ticked", "ticking", "done")]
    terminal = ["done"]
    schedules = [
        Schedule("every-second", "* * * * * *"),
        Schedule(
            "nightly",
            "0 2 * * *",
            params={"kind": "nightly"},
            timezone="Europe/Berlin",
            missed="catch_up",
            catch_up_limit=3,
        ),
    ]

    @step(initial=True)
    def ticking(self, ctx: StepContext) -> Literal["ticked"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "ticked"


WORKFLOWS: list[Any] = [Tick]
