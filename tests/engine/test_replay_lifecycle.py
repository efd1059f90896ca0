"""Replay's rules are the lifecycle's: each history row is refused, and leaves the run,
exactly as the lifecycle says its event is and does (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from statewright import lifecycle
from statewright.lifecycle import RECORDED, STATUSES
from statewright.replay import Recorded, RecordedRun, ReplayDivergenceError, replay
from tests.sample_workflows import Brief

NOW = datetime(2030, 1, 1, tzinfo=UTC)

#: History rows (after ``start``) that leave a 'brief' run in each status.
LEADS_TO: dict[str, list[tuple[str, str]]] = {
    "running": [],
    "paused": [("pause", "working")],
    "failed": [("fail", "working")],
    "cancelled": [("cancel", "working")],
    "succeeded": [("worked", "done")],
}


def history(status: str, trigger: str, to_state: str) -> RecordedRun:
    """A 'brief' run led to ``status``, then one row with ``trigger``."""
    moves = [("start", "working"), *LEADS_TO[status], (trigger, to_state)]
    rows, state = [], None
    for seq, (name, dest) in enumerate(moves, start=1):
        rows.append(Recorded(seq, state, name, dest, attempt=1))
        state = dest
    return RecordedRun("r1", "brief", "v1", tuple(rows))


def lifecycle_status(status: str, event: lifecycle.Event) -> str:
    """The status the lifecycle leaves a run in, from ``status``, after ``event``."""
    return lifecycle.apply(replace(lifecycle.started(NOW), status=status), event, NOW).status


def test_the_lead_in_histories_reach_their_status() -> None:
    """Each lead-in history replays to the status it is named after."""
    for status in STATUSES:
        lead = history(status, "retry", "working").transitions[:-1]
        assert replay(Brief.definition, RecordedRun("r1", "brief", "v1", lead)).status == status


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("trigger", sorted(RECORDED))
def test_engine_rows_follow_the_lifecycle(trigger: str, status: str) -> None:
    """An engine row replays where the lifecycle allows its event, into the status the
    lifecycle gives; elsewhere replay refuses it naming the statuses allowed."""
    event = RECORDED[trigger]
    state = "done" if status == "succeeded" else "working"
    recorded = history(status, trigger, state)
    if lifecycle.allowed(event, status):
        assert replay(Brief.definition, recorded).status == lifecycle_status(status, event)
        return
    only = " or ".join(event.allowed)
    with pytest.raises(ReplayDivergenceError, match=f"to a {status} run, but only to a {only} one"):
        replay(Brief.definition, recorded)


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "succeeded"])
def test_declared_triggers_follow_the_lifecycle(status: str) -> None:
    """A declared trigger replays only where the lifecycle lets a run advance, and a
    move into a final state succeeds the run as the lifecycle's does. (A succeeded
    'brief' run is in 'done', which no trigger leaves.)"""
    event = lifecycle.Advance("worked", "done", terminal=True)
    recorded = history(status, "worked", "done")
    if lifecycle.allowed(event, status):
        assert replay(Brief.definition, recorded).status == lifecycle_status(status, event)
        return
    with pytest.raises(ReplayDivergenceError, match=f"to a {status} run, but only to a running"):
        replay(Brief.definition, recorded)


def test_folded_polls_count_as_the_lifecycle_counts_them() -> None:
    """A poll row standing for several polls adds them all, as the lifecycle's does."""
    rows = (
        Recorded(1, None, "start", "working", 0),
        Recorded(2, "working", "poll", "working", 1, 5),
    )
    walked = replay(Brief.definition, RecordedRun("r1", "brief", "v1", rows))
    assert (
        walked.polls == lifecycle.apply(lifecycle.started(NOW), lifecycle.Poll(count=5), NOW).polls
    )
