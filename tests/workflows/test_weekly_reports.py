"""Weekly reports: every owner of every active organization gets exactly one report, crash
or not, over many pages."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock
from statewright.models import (
    Organization,
    OrganizationMember,
    ReportDelivery,
    ReportSchedule,
    User,
)
from statewright.testing import WorkflowHarness
from statewright.workflows.weekly_reports import ReportsConfig, WeeklyReports

DAY = "2030-01-07"


#: Enough organizations for 15 pages of ``BATCH`` (the crash test dies after ten), few
#: enough that each test delivers its reports in seconds, not minutes: every organization
#: costs two deliveries, each a few transactions.
ORGANIZATIONS = 150
BATCH = 10


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
    group = WeeklyReports(ReportsConfig(batch=BATCH, email_backend=f"file:{tmp_path / 'mail'}"))
    engine = Engine(
        Settings(database_url=database_url),
        [group],
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(2),
    )
    return engine, WorkflowHarness(engine), group


def start_schedule(engine: Engine) -> None:
    with engine.db.transaction() as session:
        engine.recorder.enqueue(
            session, "weekly_reports.schedule_organizations", kwargs={"report_date": DAY}
        )


def deliveries(engine: Engine) -> Counter[tuple[int, int]]:
    with engine.db.reads() as session:
        rows = session.execute(
            select(ReportDelivery.organization_id, ReportDelivery.user_id, ReportDelivery.sent_at)
        ).all()
    assert all(sent is not None for _, _, sent in rows), "some report was never sent"
    return Counter((org, user) for org, user, _ in rows)


def test_every_owner_gets_exactly_one_report(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports], tmp_path: Path
) -> None:
    """150 organizations in 15 pages: one report per owner, none for idle organizations."""
    engine, harness, _ = reports
    owners = build_organizations(engine, ORGANIZATIONS)
    start_schedule(engine)
    harness.run_all()
    delivered = deliveries(engine)
    assert len(delivered) == owners == 165
    assert set(delivered.values()) == {1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == owners
    with engine.db.reads() as session:
        schedule = session.execute(select(ReportSchedule)).scalar_one()
    assert (schedule.status, schedule.organizations) == ("done", ORGANIZATIONS)


def test_a_crash_halfway_resumes_from_the_mark(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A schedule that dies after ten pages resumes at its mark and still delivers once each."""
    engine, harness, group = reports
    owners = build_organizations(engine, ORGANIZATIONS)
    pages = {"done": 0}
    real = group.dispatch_page

    def crashing(tc: Any, day: date) -> bool:
        if pages["done"] == 10:
            pages["done"] += 1
            raise ConnectionResetError("the worker lost its database halfway")
        pages["done"] += 1
        return real(tc, day)

    monkeypatch.setattr(group, "dispatch_page", crashing)
    start_schedule(engine)
    harness.run_all()  # the retry, a durable timer on its outbox row, runs the schedule again
    with engine.db.reads() as session:
        schedule = session.execute(select(ReportSchedule)).scalar_one()
    assert schedule.status == "done"
    schedule_runs = [
        d
        for d in harness.deliveries
        if d.message.task_name == "weekly_reports.schedule_organizations"
    ]
    assert len(schedule_runs) == 2
    assert len({d.message.outbox_id for d in schedule_runs}) == 1
    prepared = Counter(
        d.message.kwargs["organization_id"]
        for d in harness.deliveries
        if d.message.task_name == "weekly_reports.prepare_organization_report"
    )
    assert len(prepared) == ORGANIZATIONS
    assert set(prepared.values()) == {1}, "a page was dispatched twice: the mark was not kept"
    delivered = deliveries(engine)
    assert len(delivered) == owners
    assert set(delivered.values()) == {1}


def test_a_task_delivered_twice_delivers_once(
    reports: tuple[Engine, WorkflowHarness, WeeklyReports], tmp_path: Path
) -> None:
    """Running one organization's report twice writes and sends its reports once."""
    engine, harness, _ = reports
    build_organizations(engine, 3)
    start_schedule(engine)
    while (message := harness.step()) is not None:
        if message.task_name != "weekly_reports.schedule_organizations":
            harness.deliver(message)  # the broker hands it over again
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
