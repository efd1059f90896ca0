"""`statewright reports run`: a dry run writes and sends nothing; a real run delivers once."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, func, select

from statewright import Engine, Settings, migrate
from statewright.models import ReportDelivery, ReportSchedule
from statewright.workflows.weekly_reports import WeeklyReports
from tests.helpers import ROOT, cli_process
from tests.workflows.test_weekly_reports import build_organizations


def count(url: str, model: object) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(select(func.count()).select_from(model)).scalar_one()  # type: ignore[arg-type]
    engine.dispose()
    return int(found)


def test_dry_run_then_real_run(tmp_path: Path) -> None:
    """--dry-run lists what would go out and changes nothing; a real run delivers each once."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    migrate(url)
    seed = Engine(Settings(database_url=url), [WeeklyReports()])
    owners = build_organizations(seed, 30)
    seed.close()
    mail = tmp_path / "mail"
    env = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "STATEWRIGHT_EMAIL_BACKEND": f"file:{mail}",
        "COLUMNS": "200",
    }
    env.pop("STATEWRIGHT_BROKER_URL", None)
    dry = cli_process("reports", "run", "--date", "2030-01-07", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"30 organizations, {owners} reports would be delivered" in dry.stdout
    assert "org-0" in dry.stdout
    assert count(url, ReportDelivery) == 0
    assert count(url, ReportSchedule) == 0
    assert not mail.exists()
    real = cli_process("reports", "run", "--date", "2030-01-07", env=env)
    assert real.returncode == 0, real.stderr
    assert count(url, ReportDelivery) == owners
    assert len(list(mail.glob("*.eml"))) == owners
    again = cli_process("reports", "run", "--date", "2030-01-07", env=env)
    assert again.returncode == 0
    assert len(list(mail.glob("*.eml"))) == owners
    bad = cli_process("reports", "run", "--date", "next monday", env=env)
    assert bad.returncode == 1
    assert "report date 'next monday' is not a date like 2026-11-23" in bad.stderr
