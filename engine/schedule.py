"""Schedules as declared: a cron expression in a timezone, params, a missed-fire policy.

This module is pure: it checks a schedule and computes its fire times. The rows that
hold each schedule's next fire time, and the relay that fires them, are in
``statewright.scheduler``.

Missed fire times are the ones that passed while no relay ran (a schedule is due
from its ``next_fire_at`` up to now). The policy decides what becomes of them:

- ``skip``: one run, for the latest missed fire time; the earlier ones are skipped.
- ``catch_up``: a run for each missed fire time, oldest first, at most
  ``catch_up_limit`` of them (the latest ones); any older ones are skipped.

A relay that is running finds one fire time due at a time, so both policies fire
every fire time; they differ only after an outage.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from statewright.errors import DefinitionError, ScheduleError
from statewright.jsonvalues import check_json_object

MISSED_POLICIES = ("skip", "catch_up")
DEFAULT_CATCH_UP_LIMIT = 10
MAX_CATCH_UP_LIMIT = 1000
#: Skipped fire times are counted up to this many (a minutely schedule down for a
#: year has half a million; the log says "at least" past it).
SKIPPED_COUNT_CAP = 10_000
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_FORMS = (
    "five fields (minute hour day-of-month month day-of-week, e.g. '0 6 * * MON'), six "
    f"with seconds first, or one of {', '.join(CRON_ALIASES)}"
)
#: Any fixed moment: an expression that fires at all fires within 50 years of it.
_REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)
_DECLARED_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,59}$")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Start a run of the declaring workflow at every fire time of ``cron``.

    ``cron`` is read in ``timezone`` (an IANA name), so ``0 6 * * *`` in
    ``Europe/Berlin`` fires at 06:00 Berlin time in summer and in winter. ``missed``
    is the policy for fire times missed while no relay ran (see the module's doc).
    """

    name: str
    cron: str
    params: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    missed: str = "skip"
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", check_json_object(dict(self.params), "params"))
        check_spec(self.cron, self.timezone, self.missed, self.catch_up_limit)


def declared_schedules(workflow: str, declared: Iterable[object]) -> tuple[Schedule, ...]:
    """A workflow's ``schedules``, checked: ``Schedule`` objects with distinct names."""
    if not isinstance(declared, list | tuple):
        raise DefinitionError(
            f"workflow {workflow!r}: schedules must be a list of Schedule(...); got {declared!r}"
        )
    found: dict[str, Schedule] = {}
    for item in declared:
        if not isinstance(item, Schedule):
            raise DefinitionError(
                f"workflow {workflow!r}: schedules must hold Schedule(...) objects; got {item!r}"
            )
        if not _DECLARED_NAME.match(item.name):
            raise DefinitionError(
                f"workflow {workflow!r}: schedule name {item.name!r} is not allowed; use "
                "lowercase letters, digits, _ and -, starting with a letter"
            )
        if item.name in found:
            raise DefinitionError(f"workflow {workflow!r}: schedule {item.name!r} declared twice")
        found[item.name] = item
    return tuple(found.values())


def check_spec(cron: str, timezone: str, missed: str, catch_up_limit: int) -> None:
    """Refuse a schedule that cannot work, naming the value and what is allowed."""
    if missed not in MISSED_POLICIES:
        raise ScheduleError(
            f"missed-fire policy {missed!r} is not known; allowed: {', '.join(MISSED_POLICIES)}"
        )
    if (
        isinstance(catch_up_limit, bool)
        or not isinstance(catch_up_limit, int)
        or not 1 <= catch_up_limit <= MAX_CATCH_UP_LIMIT
    ):
        raise ScheduleError(
            f"catch_up_limit {catch_up_limit!r} is not allowed; use a whole number from 1 "
            f"to {MAX_CATCH_UP_LIMIT}"
        )
    zone(timezone)
    if next_fire(cron, timezone, _REFERENCE) is None:
        raise ScheduleError(f"cron expression {cron!r} never fires (no matching date)")


def zone(timezone: str) -> ZoneInfo:
    """The IANA zone named ``timezone``; ``ScheduleError`` says what is allowed."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(
            f"timezone {timezone!r} is not known; use an IANA name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York'"
        ) from None


def _cron(cron: str) -> str:
    if not isinstance(cron, str):
        raise ScheduleError(f"cron expression {cron!r} is not text; use {CRON_FORMS}")
    expression = " ".join(cron.split())
    return CRON_ALIASES.get(expression.lower(), expression)


def _iterate(cron: str, timezone: str, start: datetime, *, reverse: bool) -> Iterator[datetime]:
    expression = _cron(cron)
    try:
        times = CronSim(expression, start.astimezone(zone(timezone)), reverse=reverse)
    except CronSimError as error:
        raise ScheduleError(
            f"cron expression {cron!r} is not valid ({error}); use {CRON_FORMS}"
        ) from None
    for moment in times:
        yield moment.astimezone(UTC)


def next_fire(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (UTC), or ``None`` if it never fires."""
    return next(_iterate(cron, timezone, after, reverse=False), None)


def _latest_first(cron: str, timezone: str, now: datetime) -> Iterator[datetime]:
    """Fire times at or before ``now``, latest first."""
    # reverse iteration yields times strictly before its start, at whole seconds
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    return _iterate(cron, timezone, start, reverse=True)


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What a relay does with a due schedule: the fire times to start, oldest first,
    how many missed fire times it skips, and the next fire time after now."""

    fire: tuple[datetime, ...]
    skipped: int
    next_fire_at: datetime | None


def plan_fires(
    cron: str, timezone: str, due_at: datetime, now: datetime, missed: str, limit: int
) -> FirePlan:
    """The fire times from ``due_at`` (the schedule's stored next fire time) up to ``now``
    that ``missed`` says to start."""
    keep = 1 if missed == "skip" else limit
    chosen: deque[datetime] = deque()
    for moment in _latest_first(cron, timezone, now):
        if moment < due_at or len(chosen) == keep:
            break
        chosen.appendleft(moment)
    skipped = 0
    if chosen:
        for moment in _iterate(cron, timezone, due_at - timedelta(seconds=1), reverse=False):
            if moment >= chosen[0] or skipped >= SKIPPED_COUNT_CAP:
                break
            skipped += moment >= due_at
    return FirePlan(tuple(chosen), skipped, next_fire(cron, timezone, now))
