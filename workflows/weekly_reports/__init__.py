"""Weekly organization reports on Celery beat (a task group, not a state machine)."""

from workflows.weekly_reports.tasks import ReportsConfig, WeeklyReports

__all__ = ["ReportsConfig", "WeeklyReports"]
