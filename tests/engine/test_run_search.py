"""Searching runs for the console: filters, keyset pages, counts by status."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statewright import Engine, InvalidParamsError, VirtualClock
from statewright.queries import RunFilter, decode_cursor
from statewright.testing import WorkflowHarness


def _started(engine: Engine, count: int, workflow: str = "pipeline", **params: object) -> list[str]:
    assert isinstance(engine.clock, VirtualClock)
    ids = []
    for index in range(count):
        engine.clock.advance(1)
        ids.append(engine.start(workflow, {"n": index, **params}).id)
    return ids


def test_pages_walk_every_run_newest_first_once(engine: Engine) -> None:
    """Following next_cursor visits every run exactly once, newest first, and then stops."""
    ids = _started(engine, 7)
    seen: list[str] = []
    after = None
    while True:
        page = engine.search(after=after, limit=3)
        seen += [run.id for run in page.runs]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == list(reversed(ids))


def test_runs_started_meanwhile_do_not_shift_a_page(engine: Engine) -> None:
    """A keyset page stays put when newer runs are started between two requests."""
    ids = _started(engine, 4)
    first = engine.search(limit=2)
    _started(engine, 3)
    second = engine.search(after=first.next_cursor, limit=2)
    assert [run.id for run in second.runs] == [ids[1], ids[0]]


def test_runs_started_in_the_same_instant_are_ordered_by_id(engine: Engine) -> None:
    """Runs sharing a start time are still each listed once across pages."""
    ids = {engine.start("pipeline", {"n": n}).id for n in range(5)}
    first = engine.search(limit=2)
    second = engine.search(after=first.next_cursor, limit=2)
    third = engine.search(after=second.next_cursor, limit=2)
    listed = [run.id for page in (first, second, third) for run in page.runs]
    assert sorted(listed) == sorted(ids)
    assert len(set(listed)) == 5


def test_filters_by_workflow_status_state_time_and_params_text(engine: Engine) -> None:
    """Each filter narrows the runs; text is found anywhere in the params, in any case."""
    assert isinstance(engine.clock, VirtualClock)
    early = _started(engine, 2, customer="Acme Corp")
    middle = engine.clock.now() + timedelta(milliseconds=500)
    late = _started(engine, 2, customer="Globex")
    waiter = engine.start("waiter", {"customer": "acme"}).id
    engine.pause(late[0])
    harness = WorkflowHarness(engine)
    harness.step()  # the oldest message: early[0] moves on to transforming

    def ids(**filters: object) -> set[str]:
        return {run.id for run in engine.search(RunFilter(**filters)).runs}  # type: ignore[arg-type]

    assert ids(workflow="waiter") == {waiter}
    assert ids(status="paused") == {late[0]}
    assert ids(state="transforming") == {early[0]}
    assert ids(started_from=middle) == {*late, waiter}
    assert ids(started_to=middle) == set(early)
    assert ids(text="ACME") == {*early, waiter}
    assert ids(text="acme corp", status="running") == set(early)
    assert ids(text="100%_") == set()


def test_counts_by_status_ignore_the_filters_own_status(engine: Engine) -> None:
    """Counts cover every status of the filtered runs, zero where there are none."""
    ids = _started(engine, 3)
    engine.start("waiter", {})
    engine.pause(ids[0])
    engine.cancel(ids[1])
    counts = engine.status_counts(RunFilter(workflow="pipeline", status="running"))
    assert counts == {"running": 1, "paused": 1, "succeeded": 0, "failed": 0, "cancelled": 1}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "stuck"}, r"unknown status 'stuck'; allowed: running, paused"),
        ({"text": "x" * 201}, r"text is 201 characters; at most 200"),
    ],
)
def test_bad_filters_are_refused(filters: dict[str, str], message: str) -> None:
    """A bad filter names the value and what is allowed."""
    with pytest.raises(InvalidParamsError, match=message):
        RunFilter(**filters)  # type: ignore[arg-type]


def test_unknown_workflow_and_foreign_cursor_are_refused(engine: Engine) -> None:
    """An unknown workflow and a cursor this engine did not make are refused clearly."""
    with pytest.raises(InvalidParamsError, match=r"cursor 'bm90IGEgY3Vyc29y' is not one"):
        engine.search(after="bm90IGEgY3Vyc29y")
    with pytest.raises(InvalidParamsError, match=r"limit 0 is out of range; allowed: 1 to 1000"):
        engine.search(limit=0)
    with pytest.raises(Exception, match=r"nowhere"):
        engine.search(RunFilter(workflow="nowhere"))
    with pytest.raises(InvalidParamsError):
        decode_cursor("!!!")
