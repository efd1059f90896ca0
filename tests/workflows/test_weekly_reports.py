"""Weekly reports, a Map over organizations: every owner of 600 organizations gets
exactly one report, crash or not, and a date is reported by one run."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock
from statewright.models import Organization, OrganizationMember, ReportDelivery, User, WorkflowChild
from statewright.testing import WorkflowHarness
from statewright.workflows.weekly_reports import ReportsConfig, WeeklyReports

DAY = "2030-01-07"


#: Enough organizations for twelve pages of at most 50 (the crash test dies after ten),
#: few enough that each test delivers its reports in seconds, not a minute.
ORGANIZATIONS = 600


def build_organizations(engine: Engine, count: int) -> int:
    """``count`` organizations with one owner (every tenth has two) and a member; some idle.

    Returns the number of owner memberships, i.e. the reports that must be delivered.
    """
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with engine.db.transaction() as session:
        session.execute(
            insert(Organization),
            [
                {"slug": f"org-{n}", "name": f"Org {n}", "created_at": now}
                for n in range(count + 50)
            ],
        )
        session.execute(
            insert(User),
            [
                {"username": f"user-{n}", "email": f"user{n}@x.example", "created_at": now}
                for n in range(count + 1)
            ],
        )
        orgs = list(session.execute(select(Organization.id).order_by(Organization.id)).scalars())
        users = list(session.execute(select(User.id).order_by(User.id)).scalars())
        rows = []
        for n, org in enumerate(orgs[:count]):  # the last 50 have no owner: not active
            rows.append({"organization_id": org, "user_id": users[n], "role": "owner"})
            rows.append(
                {
                    "organization_id": org,
                    "user_id": users[n + 1],
                    "role": "owner" if n % 10 == 0 else "member",
                }
            )
        session.execute(insert(OrganizationMember), rows)
        return sum(1 for row in rows if row["role"] == "owner")


@pytest.fixture
def reports(database_url: str, tmp_path: Path) -> tuple[Engine, WorkflowHarness, WeeklyReports]:
    group = WeeklyReports(ReportsConfig(batch=100, email_backend=f"file:{tmp_path / 'mail'}"))
    engine = Engine(
        Settings(database_url=database_url),
        [group],
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(2),
    )
    return engine, WorkflowHarness(engine), group


def start_schedule(engine: Engine) -> None:
    """What beat does each week: the task that starts the date's run."""
    with engine.db.transaction() as session:
        engine.recorder.enqueue(
            session, "weekly_reports.schedule_organizations", kwargs={"report_date": DAY}
        )


def the_run(engine: Engine) -> str:
    [run] = engine.list(workflow="weekly_reports")
    return run.id


def prepared(engine: Engine, run_id: str) -> Counter[int]:
    """How many times each organization's item finished (as counted by its Map)."""
    with engine.db.reads() as session:
        items = session.execute(
            select(WorkflowChild.item, WorkflowChild.status).where(
                WorkflowChild.parent_run_id == run_id
            )
        ).all()
    assert {status for _, status in items} == {"succeeded"}
    return Counter(item for item, _ in items)


def deliveries(engine: Engine) -> Counter[tuple[int, int]]:
    with engine.db.reads() as session:
        rows = session.execute(
            select(ReportDelivery.organization_id, ReportDelivery.user_id, ReportDelivery.sent_at)
        ).all()
    assert all(sent is not None for _, _, sent in rows), "some report was never sent"
    return Counter((org, user) for org, user, _ in rows)


@pytest.mark.long
def test_every_owner_gets_exactly_one_report(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports], tmp_path: Path
) -> None:
    """600 organizations mapped 50 at a time: one report per owner, none for idle
    organizations, and the run moves out of its Map once."""
    engine, harness, _ = reports
    owners = build_organizations(engine, ORGANIZATIONS)
    start_schedule(engine)
    harness.run_all()
    delivered = deliveries(engine)
    assert len(delivered) == owners == 660
    assert set(delivered.values()) == {1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == owners
    run_id = the_run(engine)
    assert [h.trigger for h in engine.history(run_id)] == ["start", "dated", "reported"]
    assert engine.get(run_id).business_key == DAY
    [reporting] = engine.maps(run_id)
    assert (reporting.started, reporting.done, reporting.failed) == (ORGANIZATIONS,) * 2 + (0,)
    assert set(prepared(engine, run_id).values()) == {1}


@pytest.mark.long
def test_a_crash_halfway_resumes_where_it_was(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fan-out that dies listing its eleventh page resumes where it was: the pages
    before stay started, and every organization is reported and delivered once."""
    engine, harness, group = reports
    owners = build_organizations(engine, ORGANIZATIONS)
    pages = {"asked": 0}
    real = group.organizations

    def crashing(ctx: Any, offset: int, limit: int) -> list[int]:
        pages["asked"] += 1
        if pages["asked"] == 11:
            raise ConnectionResetError("the worker lost its database halfway")
        return real(ctx, offset, limit)

    monkeypatch.setattr(group, "organizations", crashing)
    start_schedule(engine)
    harness.run_all()  # the fill's retry, a durable timer on its outbox row, goes on
    fills = [d for d in harness.deliveries if d.message.task_name == "statewright.map_fill"]
    assert len({d.message.outbox_id for d in fills}) < len(fills), "no fill was tried again"
    run_id = the_run(engine)
    assert engine.get(run_id).status == "succeeded"
    done = prepared(engine, run_id)
    assert len(done) == ORGANIZATIONS
    assert set(done.values()) == {1}, "an organization was started twice"
    delivered = deliveries(engine)
    assert len(delivered) == owners
    assert set(delivered.values()) == {1}


def test_a_date_is_reported_by_one_run(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports], tmp_path: Path
) -> None:
    """Starting the same date again (beat firing twice) finds the first run: nothing is
    written or sent a second time."""
    engine, harness, _ = reports
    owners = build_organizations(engine, 20)
    start_schedule(engine)
    harness.run_all()
    start_schedule(engine)
    harness.run_all()
    assert len(engine.list(workflow="weekly_reports")) == 1
    assert len(deliveries(engine)) == owners
    assert len(list((tmp_path / "mail").glob("*.eml"))) == owners


def test_a_task_delivered_twice_delivers_once(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports], tmp_path: Path
) -> None:
    """Every message delivered twice (the run's start, its fill, each organization's
    item and sending): each report is written and sent once."""
    engine, harness, _ = reports
    build_organizations(engine, 3)
    start_schedule(engine)
    while (message := harness.step()) is not None:
        harness.deliver(message)  # the broker hands every message over again
    delivered = deliveries(engine)
    assert set(delivered.values()) == {1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == len(delivered) == 4


def test_config_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad batch size or schedule names the variable."""
    from statewright import ConfigurationError
    from statewright.workflows.weekly_reports.tasks import weekly_schedule

    monkeypatch.setenv("STATEWRIGHT_REPORTS_BATCH", "lots")
    with pytest.raises(ConfigurationError, match=r"STATEWRIGHT_REPORTS_BATCH 'lots'"):
        ReportsConfig.from_env()
    monkeypatch.setenv("STATEWRIGHT_REPORTS_CRON", "every monday")
    with pytest.raises(ConfigurationError, match=r"needs five fields"):
        weekly_schedule()
