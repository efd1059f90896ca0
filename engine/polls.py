"""Folded polls: polls of one state in a row are one history row, not one per look.

The row's ``detail`` counts them (``polls``) and keeps the first one's time
(``first_at``); its ``at``, token and attempt are the latest poll's, its duration the
sum of theirs. A week polled hourly is one row; replay and the timeline read the count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright.models.engine import WorkflowRun, WorkflowTransition


def fold_poll(
    session: Session,
    run: WorkflowRun,
    now: datetime,
    duration_ms: float | None,
    detail: dict[str, Any] | None,
) -> bool:
    """Count a poll into the run's last history row if that is a poll of this state."""
    last = session.execute(
        select(WorkflowTransition).where(
            WorkflowTransition.run_id == run.id, WorkflowTransition.seq == run.history_len
        )
    ).scalar_one_or_none()
    if last is None or last.trigger != "poll" or last.to_state != run.state:
        return False
    before = last.detail or {}
    last.detail = {
        **(detail or {}),
        "polls": int(before.get("polls", 1)) + 1,
        "first_at": before.get("first_at", last.at.isoformat()),
    }
    last.at = now
    last.attempt = run.attempt
    last.token = run.token
    last.duration_ms = (last.duration_ms or 0.0) + (duration_ms or 0.0)
    run.updated_at = now
    return True
