"""Server-sent events: a run page hears of every change to its run without reloading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from statewright.errors import RunNotFoundError
from statewright.queries import RunInfo

#: Seconds between comments that keep an idle stream open through proxies.
KEEPALIVE = 15.0


def fingerprint(run: RunInfo) -> str:
    """Changes whenever anything a run page shows of the run changes."""
    return json.dumps(
        [run.status, run.state, run.attempt, run.polls, run.token, run.updated_at.isoformat()]
    )


async def run_events(
    request: Request, read: Callable[[], RunInfo], *, interval: float
) -> AsyncIterator[str]:
    """An ``event: run`` each time the run changes, until the browser goes away."""
    last = ""
    quiet = 0.0
    while not await request.is_disconnected():
        try:
            run = await run_in_threadpool(read)
        except RunNotFoundError:
            yield "event: gone\ndata: {}\n\n"
            return
        current = fingerprint(run)
        if current != last:
            last = current
            quiet = 0.0
            data = json.dumps({"status": run.status, "state": run.state, "version": current})
            yield f"event: run\ndata: {data}\n\n"
        elif quiet >= KEEPALIVE:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(interval)
        quiet += interval
