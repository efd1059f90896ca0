"""The run lifecycle, as pure values: every event in every status, and what it does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from statewright import lifecycle
from statewright.errors import IllegalOperationError
from statewright.lifecycle import (
    CANCELLED,
    FAILED,
    PAUSED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    Event,
    RunState,
)
from statewright.models.engine import RUN_STATUSES

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
LEASE = NOW + timedelta(minutes=1)
R, P, S, F, C = RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED


def a_run(status: str = RUNNING, **columns: object) -> RunState:
    """A run in state 'working', three moves and one attempt in."""
    run = replace(
        lifecycle.started(T0),
        state="working",
        status=status,
        token=3,
        attempt=1,
        history_len=2,
        entry_seq=2,
        lease_expires_at=T0 + timedelta(minutes=1),
    )
    return replace(run, **columns)  # type: ignore[arg-type]


FAILURE = {"error_type": "Boom", "error_message": "it broke"}

#: One event of every kind.
SAMPLES: tuple[Event, ...] = (
    lifecycle.Advance("worked", "next", terminal=False),
    lifecycle.Dispatch(LEASE),
    lifecycle.Redeliver(LEASE),
    lifecycle.Claim(LEASE),
    lifecycle.HandBack(),
    lifecycle.Poll(),
    lifecycle.Retry(),
    lifecycle.Fail("It failed", FAILURE),
    lifecycle.LostWorker("Worker lost", FAILURE),
    lifecycle.Abort("Aborted", FAILURE),
    lifecycle.DeadlineFail("Too late", FAILURE),
    lifecycle.DeadlineMove("late", "next", terminal=False),
    lifecycle.Pause(),
    lifecycle.Cancel(),
    lifecycle.PauseAt("later"),
    lifecycle.CancelAt("later"),
    lifecycle.ClearPause(),
    lifecycle.Resume(),
    lifecycle.Redrive(),
    lifecycle.Redispatch(),
    lifecycle.Signal("go", "next", terminal=False, kept={"trigger": "go"}),
)

#: For each event, each status it is allowed in: the status it leaves the run in and
#: the history rows it writes. Every status not listed refuses the event.
EXPECTED: dict[type[Event], dict[str, tuple[str, tuple[str, ...]]]] = {
    lifecycle.Advance: {R: (R, ("worked",))},
    lifecycle.Dispatch: {R: (R, ())},
    lifecycle.Redeliver: {R: (R, ())},
    lifecycle.Claim: {R: (R, ())},
    lifecycle.HandBack: {R: (R, ())},
    lifecycle.Poll: {R: (R, ("poll",))},
    lifecycle.Retry: {R: (R, ("retry",))},
    lifecycle.Fail: {R: (F, ("fail",))},
    lifecycle.LostWorker: {R: (F, ("fail",))},
    lifecycle.Abort: {R: (F, ("abort",)), P: (F, ("abort",))},
    lifecycle.DeadlineFail: {R: (F, ("deadline",)), P: (F, ("deadline",))},
    lifecycle.DeadlineMove: {R: (R, ("late",)), P: (R, ("resume", "late"))},
    lifecycle.Pause: {R: (P, ("pause",))},
    lifecycle.Cancel: {R: (C, ("cancel",)), P: (C, ("cancel",))},
    lifecycle.PauseAt: {R: (R, ()), P: (P, ())},
    lifecycle.CancelAt: {R: (R, ()), P: (P, ())},
    lifecycle.ClearPause: {R: (R, ()), P: (P, ())},
    lifecycle.Resume: {P: (R, ("resume",))},
    lifecycle.Redrive: {F: (R, ("redrive",))},
    lifecycle.Redispatch: {R: (R, ("redispatch",))},
    lifecycle.Signal: {R: (R, ("go",)), P: (P, ())},
}

CASES = [(event, status) for event in SAMPLES for status in STATUSES]


def _id(case: object) -> str:
    return type(case).__name__ if isinstance(case, Event) else str(case)


def test_every_kind_of_event_is_covered() -> None:
    """The table names every event the lifecycle has, with one sample of each."""
    assert {type(e) for e in SAMPLES} == set(lifecycle.EVENTS) == set(EXPECTED)


def test_statuses_are_the_run_tables() -> None:
    """The lifecycle's statuses are the ones the run table allows, in the same order."""
    assert STATUSES == RUN_STATUSES


@pytest.mark.parametrize(("event", "status"), CASES, ids=_id)
def test_every_event_in_every_status(event: Event, status: str) -> None:
    """An event happens only in the statuses it allows, leaving the status and writing
    the history rows the table says; anywhere else it is refused, naming both."""
    expected = EXPECTED[type(event)].get(status)
    assert lifecycle.allowed(event, status) is (expected is not None)
    if expected is None:
        allowed = " or ".join(event.allowed)
        with pytest.raises(
            IllegalOperationError, match=f"is {status}.*only a run that is {allowed}"
        ):
            lifecycle.apply(a_run(status), event, NOW)
        return
    moved = lifecycle.transition(a_run(status), event, NOW)
    assert (moved.run.status, tuple(r.trigger for r in moved.records)) == expected
    seqs = [r.seq for r in moved.records]
    assert seqs == list(range(3, 3 + len(seqs)))
    assert moved.run.history_len == 2 + len(seqs)


@pytest.mark.parametrize(("event", "status"), CASES, ids=_id)
def test_every_stop_fences_off_the_step(event: Event, status: str) -> None:
    """Whatever stops a run moves its token on and lets go of its step and lease, so a
    step still running cannot complete; a finished run also has its end time."""
    if not lifecycle.allowed(event, status):
        return
    after = lifecycle.apply(a_run(status, claimed=status == R), event, NOW)
    if after.status == RUNNING or after.status == status:
        return
    assert after.token > 3
    assert (after.claimed, after.lease_expires_at) == (False, None)
    assert after.finished_at == (None if after.status == PAUSED else NOW)


def test_refusal_names_the_status_and_what_is_allowed() -> None:
    """An operator's refusal says what the run is and which statuses would do."""
    assert lifecycle.refusal(lifecycle.Abort, FAILED) == (
        "is failed (it has finished); only a run that is running or paused can be aborted"
    )
    assert lifecycle.refusal(lifecycle.Resume, RUNNING) == (
        "is running; only a run that is paused can be resumed"
    )
    assert lifecycle.refusal(lifecycle.Abort, PAUSED) is None


def test_abort_fails_the_run_and_drops_what_was_asked() -> None:
    """Abort writes its row, fails the run with the reason, fences off the running step
    and drops the scheduled pause and cancel and the kept signals."""
    run = a_run(
        claimed=True,
        pause_requested=True,
        pause_at="later",
        cancel_at="later",
        kept_signals=({"trigger": "go"},),
    )
    moved = lifecycle.transition(run, lifecycle.Abort("Stopped by ops", FAILURE), NOW)
    [row] = moved.records
    assert (row.trigger, row.from_state, row.to_state, row.attempt, row.token) == (
        "abort",
        "working",
        "working",
        1,
        3,
    )
    assert moved.run == replace(
        run,
        status=FAILED,
        token=4,
        claimed=False,
        lease_expires_at=None,
        pause_requested=False,
        pause_at=None,
        cancel_at=None,
        kept_signals=None,
        failure_reason="Stopped by ops",
        failure_detail=FAILURE,
        finished_at=NOW,
        history_len=3,
        updated_at=NOW,
    )


def test_a_pause_during_a_step_is_asked_for_and_applies_at_the_boundary() -> None:
    """Pausing while a step runs only sets the request; at the step boundary the pause
    stops the run and uses up a pause scheduled at its state."""
    asked = lifecycle.transition(a_run(claimed=True), lifecycle.Pause(), NOW)
    assert asked.records == ()
    assert asked.run == replace(a_run(claimed=True), pause_requested=True, updated_at=NOW)
    held = lifecycle.held(asked.run)
    assert held == lifecycle.Pause(at_boundary=True)
    stopped = lifecycle.apply(replace(asked.run, pause_at="working"), held, NOW)
    assert (stopped.status, stopped.pause_requested, stopped.pause_at) == (PAUSED, False, None)
    kept = lifecycle.apply(a_run(pause_at="later", cancel_at="later"), lifecycle.Pause(), NOW)
    assert (kept.status, kept.pause_at, kept.cancel_at, kept.token) == (PAUSED, "later", "later", 4)


def test_a_cancel_during_a_step_is_asked_for() -> None:
    """Cancelling while a step runs only sets the request; a paused run is cancelled now."""
    asked = lifecycle.apply(a_run(claimed=True), lifecycle.Cancel(), NOW)
    assert (asked.status, asked.cancel_requested, asked.token) == (RUNNING, True, 3)
    assert lifecycle.held(asked) == lifecycle.Cancel(at_boundary=True)
    cancelled = lifecycle.apply(a_run(PAUSED), lifecycle.Cancel(), NOW)
    assert (cancelled.status, cancelled.finished_at) == (CANCELLED, NOW)


@pytest.mark.parametrize(
    ("asked", "held"),
    [
        ({}, None),
        ({"pause_at": "later", "cancel_at": "later"}, None),
        ({"pause_requested": True}, lifecycle.Pause(at_boundary=True)),
        ({"pause_at": "working"}, lifecycle.Pause(at_boundary=True)),
        ({"cancel_requested": True}, lifecycle.Cancel(at_boundary=True)),
        ({"cancel_at": "working"}, lifecycle.Cancel(at_boundary=True)),
        ({"cancel_at": "working", "pause_requested": True}, lifecycle.Cancel(at_boundary=True)),
    ],
)
def test_a_step_boundary_applies_what_was_asked(asked: dict[str, object], held: Event) -> None:
    """A cancel or pause asked for now or at the run's state applies at a step boundary,
    a cancel before a pause; one scheduled for another state waits."""
    assert lifecycle.held(a_run(**asked)) == held


def test_a_pause_that_stops_a_run_uses_up_the_pause_scheduled_at_its_state() -> None:
    """A pause that stops a run where no step is claimed (an operator's, not only one
    applied at a boundary) uses up a pause scheduled at its state, so nothing is left
    to pause it again on resume."""
    stopped = lifecycle.apply(a_run(pause_at="working"), lifecycle.Pause(), NOW)
    assert (stopped.status, stopped.pause_at) == (PAUSED, None)
    assert lifecycle.held(lifecycle.apply(stopped, lifecycle.Resume(), NOW)) is None


def test_claim_counts_an_attempt_and_hand_back_returns_it() -> None:
    """A claim counts the attempt and leases the step; a step handed back unstarted
    gives its attempt back and is dispatched under a new token."""
    claimed = lifecycle.apply(a_run(), lifecycle.Claim(LEASE), NOW)
    assert (claimed.attempt, claimed.claimed, claimed.lease_expires_at) == (2, True, LEASE)
    handed = lifecycle.apply(claimed, lifecycle.HandBack(), NOW)
    sent = lifecycle.apply(handed, lifecycle.Dispatch(None), NOW)
    assert (sent.attempt, sent.claimed, sent.token, sent.lease_expires_at) == (1, False, 4, None)


def test_a_poll_is_not_an_attempt_and_folds_into_the_last_row() -> None:
    """A poll counts a poll and gives the attempt back; a folded one writes no row."""
    first = lifecycle.transition(a_run(attempt=2), lifecycle.Poll(), NOW)
    assert (first.run.polls, first.run.attempt, first.run.history_len) == (1, 1, 3)
    assert [r.attempt for r in first.records] == [2]
    folded = lifecycle.transition(first.run, lifecycle.Poll(folded=True), NOW)
    assert (folded.run.polls, folded.run.history_len, folded.records) == (2, 3, ())


def test_advance_enters_the_state_fresh_and_a_final_one_succeeds() -> None:
    """A move resets attempts and polls and notes its row as the state's entry; into a
    final state it ends the run as succeeded, under a new token."""
    moved = lifecycle.apply(a_run(polls=4), lifecycle.Advance("worked", "next", False), NOW)
    assert (moved.state, moved.attempt, moved.polls, moved.entry_seq) == ("next", 0, 0, 3)
    assert (moved.state_entered_at, moved.token, moved.status) == (NOW, 3, RUNNING)
    done = lifecycle.apply(a_run(), lifecycle.Advance("worked", "done", True), NOW)
    assert (done.status, done.token, done.finished_at, done.failure_reason) == (
        SUCCEEDED,
        4,
        NOW,
        None,
    )


def test_resume_gives_a_fresh_attempt_budget_and_hands_over_kept_signals() -> None:
    """Resume runs the run again where it stopped, attempts spent before no longer
    count, and its kept signals are taken for delivery."""
    paused = a_run(PAUSED, attempt=3, kept_signals=({"trigger": "go"},))
    moved = lifecycle.transition(paused, lifecycle.Resume(), NOW)
    assert [r.attempt for r in moved.records] == [3]
    assert (moved.run.status, moved.run.attempt, moved.run.kept_signals) == (RUNNING, 0, None)
    assert (moved.run.state, moved.run.token) == ("working", 3)


def test_a_signal_to_a_paused_run_is_kept() -> None:
    """A paused run keeps signals in order; a running one takes the signal's move."""
    go = lifecycle.Signal("go", "next", terminal=False, kept={"trigger": "go"})
    later = replace(go, kept={"trigger": "later"})
    kept = lifecycle.apply(lifecycle.apply(a_run(PAUSED), go, NOW), later, NOW)
    assert kept.kept_signals == ({"trigger": "go"}, {"trigger": "later"})
    assert (kept.status, kept.state, kept.token) == (PAUSED, "working", 3)
    moved = lifecycle.apply(a_run(), go, NOW)
    assert (moved.state, moved.kept_signals) == ("next", None)


def test_redrive_forgets_the_failure_and_a_passed_deadline() -> None:
    """A redriven run runs again in its failed state with fresh budgets; a deadline
    already passed is dropped, one still ahead is kept."""
    failed = lifecycle.apply(a_run(polls=2), lifecycle.Fail("It failed", FAILURE), NOW)
    passed = lifecycle.apply(replace(failed, deadline_at=NOW), lifecycle.Redrive(), NOW)
    assert (passed.status, passed.failure_reason, passed.failure_detail) == (RUNNING, None, None)
    assert (passed.attempt, passed.polls, passed.finished_at, passed.deadline_at) == (
        0,
        0,
        None,
        None,
    )
    assert passed.state_entered_at == NOW
    ahead = lifecycle.apply(replace(failed, deadline_at=LEASE), lifecycle.Redrive(), NOW)
    assert ahead.deadline_at == LEASE


def test_a_deadline_move_resumes_a_paused_run_first() -> None:
    """A deadline outranks a pause: the paused run resumes, drops its kept signals and
    takes the deadline trigger."""
    paused = a_run(PAUSED, kept_signals=({"trigger": "go"},))
    moved = lifecycle.transition(paused, lifecycle.DeadlineMove("late", "next", False), NOW)
    assert [(r.trigger, r.seq, r.to_state) for r in moved.records] == [
        ("resume", 3, "working"),
        ("late", 4, "next"),
    ]
    assert (moved.run.status, moved.run.state, moved.run.kept_signals) == (RUNNING, "next", None)


def test_clearing_a_pause_with_none_asked_changes_nothing() -> None:
    """Clearing a pause forgets one asked for; with none asked the run is as it was."""
    assert lifecycle.apply(a_run(), lifecycle.ClearPause(), NOW) == a_run()
    cleared = lifecycle.apply(a_run(pause_at="later"), lifecycle.ClearPause(), NOW)
    assert (cleared.pause_at, cleared.pause_requested, cleared.updated_at) == (None, False, NOW)


def test_a_new_run_starts_running_before_any_state() -> None:
    """A new run is running in no state yet, with its scheduled pause; its first move
    enters the initial state as history row 1."""
    run = lifecycle.started(T0, pause_at="later")
    assert (run.status, run.state, run.token, run.history_len, run.pause_at) == (
        RUNNING,
        "",
        0,
        0,
        "later",
    )
    moved = lifecycle.transition(run, lifecycle.Advance("start", "working", False), T0)
    assert [(r.seq, r.from_state, r.to_state) for r in moved.records] == [(1, None, "working")]
