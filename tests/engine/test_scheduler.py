"""Schedules as rows, on SQLite and PostgreSQL: declared and operator schedules, missed
fire times under each policy, pause/resume/trigger, refusals, and relays racing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import update

from statewright import (
    EmbeddedWorker,
    Engine,
    IllegalOperationError,
    InMemoryMetrics,
    InvalidParamsError,
    Schedule,
    ScheduleError,
    Settings,
    StepContext,
    UnknownWorkflowError,
    VirtualClock,
    Workflow,
    step,
)
from statewright.dbtime import read_database_now as database_now
from statewright.models.schedules import WorkflowSchedule
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.sample_workflows import WORKFLOWS, effect_counts, record_effect
from tests.scheduled_workflows import Tick

START = datetime(2030, 1, 1, tzinfo=UTC)


def day(n: int, hour: int = 2) -> datetime:
    return datetime(2030, 1, n, hour, tzinfo=UTC)


def digest(missed: str = "skip", limit: int = 10, cron: str = "0 2 * * *") -> type[Workflow]:
    """A workflow declaring one daily schedule with the given policy."""

    class Digest(Workflow):
        name = "digest"
        transitions = [("sent", "sending", "done")]
        terminal = ["done"]
        schedules = [
            Schedule("daily", cron, params={"kind": "daily"}, missed=missed, catch_up_limit=limit)
        ]

        @step(initial=True)
        def sending(self, ctx: StepContext) -> Literal["sent"]:
            record_effect(ctx.session, ctx.run_id, ctx.state)
            return "sent"

    return Digest


def fire_times(engine: Engine, runs: list[str]) -> list[datetime]:
    """The fire time each run was started for, from its idempotency key."""
    keys = [engine.get(run).idempotency_key or "" for run in runs]
    return [datetime.fromisoformat(key.split(":", 2)[2]) for key in keys]


def harness_for(make_engine: EngineFactory, *workflows: Any) -> WorkflowHarness:
    return WorkflowHarness(make_engine([*WORKFLOWS, *workflows]))


def test_a_declared_schedule_starts_one_run_per_fire_time(make_engine: EngineFactory) -> None:
    """Declared, synced and left running for three days: three runs, one per fire time."""
    harness = harness_for(make_engine, digest())
    started = harness.advance(timedelta(days=3))
    assert fire_times(harness.engine, started) == [day(1), day(2), day(3)]
    harness.run_all()
    for run in started:
        info = harness.engine.get(run)
        assert (info.status, info.params) == ("succeeded", {"kind": "daily"})
        with harness.engine.db.reads() as session:
            assert effect_counts(session, run) == {"sending": 1}
    (schedule,) = harness.engine.schedules.list()
    assert (schedule.name, schedule.declared) == ("digest.daily", True)
    assert (schedule.next_fire_at, schedule.last_fired_at) == (day(4), day(3))
    assert schedule.last_run_id == started[-1]
    assert harness.fire_schedules() == []


@pytest.mark.parametrize(
    ("missed", "limit", "fired"),
    [
        ("skip", 10, [day(4)]),
        ("catch_up", 10, [day(2), day(3), day(4)]),
        ("catch_up", 2, [day(3), day(4)]),
    ],
)
def test_relay_down_for_three_fire_times(
    make_engine: EngineFactory, missed: str, limit: int, fired: list[datetime]
) -> None:
    """A relay back after missing three fire times obeys the policy, and never repeats."""
    harness = harness_for(make_engine, digest(missed, limit))
    assert fire_times(harness.engine, harness.advance(timedelta(hours=3))) == [day(1)]
    harness.run_all()
    harness.clock.advance(timedelta(days=3))  # no relay: days 2, 3 and 4 pass unseen
    started = harness.fire_schedules()
    assert fire_times(harness.engine, started) == fired
    assert harness.fire_schedules() == []
    assert harness.engine.schedules.get("digest.daily").next_fire_at == day(5)
    harness.run_all()
    assert {harness.engine.get(run).status for run in started} == {"succeeded"}
    skipped = harness.engine.metrics.total("schedule.skipped")  # type: ignore[attr-defined]
    assert skipped == 3 - len(fired)


def test_pause_resume_and_trigger(make_engine: EngineFactory) -> None:
    """Paused: nothing fires and the paused hours are not caught up; trigger starts a run
    now even while paused; resume fires from the next fire time after now."""
    harness = harness_for(make_engine)
    schedules = harness.engine.schedules
    schedules.add("hourly", "pipeline", "0 * * * *", missed="catch_up", params={"n": 1})
    assert schedules.pause("hourly").paused
    with pytest.raises(IllegalOperationError, match="schedule 'hourly' is already paused"):
        schedules.pause("hourly")
    assert harness.advance(timedelta(hours=3)) == []
    run = schedules.trigger("hourly")
    assert run.params == {"n": 1}
    assert run.idempotency_key == f"schedule:hourly:manual:{harness.clock.now().isoformat()}"
    assert schedules.get("hourly").last_run_id == run.id
    harness.clock.advance(timedelta(minutes=30))
    resumed = schedules.resume("hourly")
    assert resumed.next_fire_at == START + timedelta(hours=4)
    with pytest.raises(IllegalOperationError, match="schedule 'hourly' is not paused"):
        schedules.resume("hourly")
    started = harness.advance(timedelta(hours=1))
    assert fire_times(harness.engine, started) == [START + timedelta(hours=4)]
    assert harness.run_all() > 0
    assert {harness.engine.get(r).status for r in [run.id, *started]} == {"succeeded"}


def test_bad_schedules_are_refused_and_nothing_is_written(make_engine: EngineFactory) -> None:
    """Bad cron, timezone, policy, name, params or workflow: refused, named, not written."""
    schedules = make_engine().schedules
    refusals: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"cron": "0 25 * * *"}, ScheduleError, "cron expression '0 25 * * *' is not valid"),
        ({"timezone": "Europe/Atlantis"}, ScheduleError, "timezone 'Europe/Atlantis' is not"),
        ({"missed": "all"}, ScheduleError, "policy 'all' is not known; allowed: skip, catch_up"),
        ({"name": "a.b"}, ScheduleError, "names with a dot belong to schedules declared"),
        ({"workflow": "payroll"}, UnknownWorkflowError, "unknown workflow 'payroll'"),
        ({"params": {"at": datetime.now(UTC)}}, InvalidParamsError, "params['at'] is a datetime"),
    ]
    for change, error, says in refusals:
        values = {"name": "nightly", "workflow": "pipeline", "cron": "0 2 * * *", **change}
        name, workflow, cron = values.pop("name"), values.pop("workflow"), values.pop("cron")
        with pytest.raises(error) as caught:
            schedules.add(name, workflow, cron, **values)
        assert says in str(caught.value)
    assert schedules.list() == []
    schedules.add("nightly", "pipeline", "0 2 * * *")
    with pytest.raises(ScheduleError, match="a schedule named 'nightly' already exists"):
        schedules.add("nightly", "pipeline", "0 3 * * *")
    with pytest.raises(ScheduleError, match="no schedule named 'weekly'; schedules: 'nightly'"):
        schedules.trigger("weekly")
    assert schedules.remove("nightly").name == "nightly"
    assert schedules.list() == []


def test_sync_is_idempotent_and_follows_the_code(make_engine: EngineFactory) -> None:
    """Syncing twice changes nothing; a pause survives; a new cron moves the fire time; a
    schedule no longer declared goes; an operator's schedule is left alone."""
    engine = make_engine([*WORKFLOWS, digest()])
    engine.schedules.add("mine", "digest", "0 5 * * *")
    assert engine.schedules.sync() == 1
    assert engine.schedules.sync() == 0
    engine.schedules.pause("digest.daily")
    with pytest.raises(IllegalOperationError, match="declared by workflow 'digest' in code"):
        engine.schedules.remove("digest.daily")
    changed = make_engine([*WORKFLOWS, digest(cron="0 4 * * *")])
    assert changed.schedules.sync() == 1
    daily = changed.schedules.get("digest.daily")
    assert (daily.cron, daily.paused, daily.next_fire_at) == ("0 4 * * *", True, day(1, 4))
    gone = make_engine([*WORKFLOWS, without_schedules()])
    assert gone.schedules.sync() == 1
    assert [s.name for s in gone.schedules.list()] == ["mine"]


def without_schedules() -> type[Workflow]:
    class Digest(Workflow):
        name = "digest"
        transitions = [("sent", "sending", "done")]
        terminal = ["done"]

        @step(initial=True)
        def sending(self, ctx: StepContext) -> Literal["sent"]:
            return "sent"

    return Digest


def test_a_broken_schedule_does_not_hold_back_the_others(make_engine: EngineFactory) -> None:
    """A row whose cron cannot be read is counted and kept; the other schedule fires."""
    harness = harness_for(make_engine)
    harness.engine.schedules.add("good", "pipeline", "0 * * * *")
    harness.engine.schedules.add("bad", "pipeline", "0 * * * *")
    with harness.engine.db.transaction() as session:
        session.execute(
            update(WorkflowSchedule).where(WorkflowSchedule.name == "bad").values(cron="nope")
        )
    harness.clock.advance(timedelta(hours=1))
    started = harness.fire_schedules()
    assert [harness.engine.get(r).idempotency_key for r in started] == [
        f"schedule:good:{(START + timedelta(hours=1)).isoformat()}"
    ]
    assert harness.engine.metrics.total("schedule.failed") == 1  # type: ignore[attr-defined]
    assert harness.engine.schedules.get("bad").next_fire_at == START + timedelta(hours=1)


def test_two_relays_racing_start_each_fire_time_once(database_url: str) -> None:
    """Two engines firing at the same moments, thirty times: thirty runs, no duplicate
    attempt, no failure (rows are claimed, not fought over)."""
    clock = VirtualClock(START)
    engines = [
        Engine(
            Settings(database_url=database_url), WORKFLOWS, clock=clock, metrics=InMemoryMetrics()
        )
        for _ in range(2)
    ]
    engines[0].schedules.add("minutely", "pipeline", "* * * * *")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def relay(engine: Engine) -> None:
        try:
            barrier.wait(10)
            engine.schedules.fire_due()
        except BaseException as error:
            errors.append(error)

    for _ in range(30):
        clock.advance(timedelta(minutes=1))
        threads = [threading.Thread(target=relay, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    metrics = [e.metrics for e in engines]
    assert sum(m.total("schedule.fired") for m in metrics) == 30  # type: ignore[attr-defined]
    assert sum(m.total("schedule.duplicate") for m in metrics) == 0  # type: ignore[attr-defined]
    assert sum(m.total("schedule.failed") for m in metrics) == 0  # type: ignore[attr-defined]
    keys = [r.idempotency_key for r in engines[0].list(workflow="pipeline", limit=100)]
    expected = {
        f"schedule:minutely:{(START + timedelta(minutes=m)).isoformat()}" for m in range(1, 31)
    }
    assert sorted(keys) == sorted(expected)  # type: ignore[type-var]
    for engine in engines:
        engine.close()


def test_without_a_clock_the_database_judges_what_is_due(database_url: str) -> None:
    """An engine with no clock of its own fires by the database's time."""
    engine = Engine(Settings(database_url=database_url), WORKFLOWS)
    engine.schedules.add("soon", "pipeline", "0 * * * *")
    with engine.db.transaction() as session:
        now = database_now(session)
        assert abs(now - datetime.now(UTC)) < timedelta(seconds=30)
        session.execute(
            update(WorkflowSchedule).values(next_fire_at=now - timedelta(hours=1, minutes=1))
        )
    assert engine.schedules.fire_due() == 1
    info = engine.schedules.get("soon")
    assert info.next_fire_at is not None
    assert now < info.next_fire_at <= now + timedelta(hours=1)
    engine.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_embedded_worker_fires_declared_schedules(database_url: str) -> None:
    """The embedded worker syncs a declared schedule and its relay loop starts a run each
    second, which its worker runs to the end, in real time."""
    engine = Engine(Settings(database_url=database_url), [*WORKFLOWS, Tick])
    with EmbeddedWorker(engine):
        deadline = time.monotonic() + 60
        while len(engine.list(workflow="tick", status="succeeded")) < 3:
            assert time.monotonic() < deadline, "three scheduled runs did not finish in 60s"
            time.sleep(0.2)
    runs = engine.list(workflow="tick")
    keys = [r.idempotency_key or "" for r in runs]
    assert all(key.startswith("schedule:tick.every-second:") for key in keys)
    assert len(set(keys)) == len(keys)
    with engine.db.reads() as session:
        assert all(effect_counts(session, r.id) == {"ticking": 1} for r in runs if r.finished)
    assert {s.name for s in engine.schedules.list()} == {"tick.every-second", "tick.nightly"}
    engine.close()
