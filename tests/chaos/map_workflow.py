"""The Map chaos workflow: one Map over ``params["items"]`` numbers as task items, each
recording its effect (counted per item) in its own completing transaction."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Literal

from statewright import RetryPolicy, StepContext, Workflow, step
from statewright.fanout import ItemContext, PageContext
from statewright.joins import Map
from tests.sample_workflows import record_effect


class ChaosMap(Workflow):
    """preparing -> mapping (a Map of task items, 50 at a time) -> done."""

    name = "chaos_map"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    terminal = ["done"]
    retry = RetryPolicy(max_attempts=20, backoff=0.2, multiplier=2.0, max_backoff=2.0)
    time_limit = 10.0
    # a worker killed mid-item costs that item an attempt: allow plenty
    maps = {
        "mapping": Map(
            items="page", each="one", concurrency=50, page_size=100, attempts=20, on_done="mapped"
        )
    }

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        return "prepared"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[int]:
        return list(range(offset, min(int(ctx.params["items"]), offset + limit)))

    def one(self, ctx: ItemContext) -> None:
        time.sleep(random.uniform(0, 0.005))
        record_effect(ctx.session, ctx.run_id, f"i{ctx.item}")


WORKFLOWS = [ChaosMap]
