"""Schedules as declared: cron and timezone checks, fire times, and the missed-fire plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from statewright import DefinitionError, Schedule, ScheduleError, StepContext, Workflow, step
from statewright.schedule import next_fire, plan_fires


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 6 * *", "cron expression '0 6 * *' is not valid (Wrong number of fields)"),
        ("61 * * * *", "cron expression '61 * * * *' is not valid (Bad minute)"),
        ("0 0 31 2 *", "(Bad day-of-month)"),
        ("@often", "one of @yearly, @annually, @monthly"),
        ("", "use five fields (minute hour day-of-month month day-of-week"),
    ],
)
def test_bad_cron_is_refused_with_what_is_allowed(cron: str, says: str) -> None:
    """A cron expression that cannot work is refused, naming it and the allowed forms."""
    with pytest.raises(ScheduleError) as caught:
        Schedule("nightly", cron)
    assert says in str(caught.value)


def test_bad_timezone_policy_and_limit_are_refused() -> None:
    """Timezone, missed-fire policy and catch-up limit are each checked and named."""
    with pytest.raises(ScheduleError, match="timezone 'Mars/Base' is not known; use an IANA"):
        Schedule("n", "0 2 * * *", timezone="Mars/Base")
    with pytest.raises(ScheduleError, match="policy 'later' is not known; allowed: skip, catch"):
        Schedule("n", "0 2 * * *", missed="later")
    with pytest.raises(ScheduleError, match="catch_up_limit 0 is not allowed; use a whole number"):
        Schedule("n", "0 2 * * *", missed="catch_up", catch_up_limit=0)


def test_aliases_seconds_and_timezones() -> None:
    """@daily is midnight; six fields count seconds; a local cron follows its zone's DST."""
    assert next_fire("@daily", "UTC", at(1, 10)) == at(2)
    assert next_fire("*/10 * * * * *", "UTC", at(1, 10)) == at(1, 10) + timedelta(seconds=10)
    winter = datetime(2030, 1, 10, 12, tzinfo=UTC)
    summer = datetime(2030, 7, 10, 12, tzinfo=UTC)
    assert next_fire("0 6 * * *", "Europe/Berlin", winter) == datetime(2030, 1, 11, 5, tzinfo=UTC)
    assert next_fire("0 6 * * *", "Europe/Berlin", summer) == datetime(2030, 7, 11, 4, tzinfo=UTC)


def test_next_fire_is_strictly_after() -> None:
    """A fire time equal to the moment asked about is not the next one."""
    assert next_fire("0 2 * * *", "UTC", at(1, 2)) == at(2, 2)


def test_on_time_both_policies_fire_the_one_due_time() -> None:
    """With a relay on time, skip and catch_up alike fire exactly the due fire time."""
    for policy in ("skip", "catch_up"):
        plan = plan_fires("0 2 * * *", "UTC", at(2, 2), at(2, 2, 1), policy, 10)
        assert plan.fire == (at(2, 2),)
        assert (plan.skipped, plan.next_fire_at) == (0, at(3, 2))


def test_skip_fires_the_latest_missed_time_once() -> None:
    """Three fire times missed: skip starts one run for the latest and skips two."""
    plan = plan_fires("0 2 * * *", "UTC", at(2, 2), at(4, 9), "skip", 10)
    assert plan.fire == (at(4, 2),)
    assert (plan.skipped, plan.next_fire_at) == (2, at(5, 2))


def test_catch_up_fires_each_missed_time_oldest_first_up_to_its_limit() -> None:
    """Three missed: catch_up starts all three in order; with a limit of two, the latest two."""
    plan = plan_fires("0 2 * * *", "UTC", at(2, 2), at(4, 9), "catch_up", 10)
    assert plan.fire == (at(2, 2), at(3, 2), at(4, 2))
    assert plan.skipped == 0
    limited = plan_fires("0 2 * * *", "UTC", at(2, 2), at(4, 9), "catch_up", 2)
    assert (limited.fire, limited.skipped) == ((at(3, 2), at(4, 2)), 1)


def test_a_long_outage_counts_skipped_times_without_walking_them_all() -> None:
    """A minutely schedule down for a year plans one run and caps the skipped count."""
    plan = plan_fires("* * * * *", "UTC", at(1), at(1) + timedelta(days=365), "skip", 10)
    assert plan.fire == (at(1) + timedelta(days=365),)
    assert plan.skipped == 10_000


def test_workflow_schedules_are_checked_when_declared() -> None:
    """Schedules must be Schedule objects with distinct, well-formed names."""

    def declare(given: object) -> None:
        class Cleanup(Workflow):
            name = "cleanup"
            transitions = [("cleaned", "cleaning", "done")]
            terminal = ["done"]
            schedules = given  # type: ignore[assignment]

            @step(initial=True)
            def cleaning(self, ctx: StepContext) -> Literal["cleaned"]:
                return "cleaned"

    with pytest.raises(DefinitionError, match="schedules must hold Schedule"):
        declare(["0 2 * * *"])
    with pytest.raises(DefinitionError, match="schedules must be a list of Schedule"):
        declare(Schedule("nightly", "0 2 * * *"))  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="schedule 'nightly' declared twice"):
        declare([Schedule("nightly", "0 2 * * *"), Schedule("nightly", "0 3 * * *")])
    with pytest.raises(DefinitionError, match=r"schedule name 'Night\.ly' is not allowed"):
        declare([Schedule("Night.ly", "0 2 * * *")])


def test_daylight_saving_nights_fire_once() -> None:
    """02:30 in Berlin fires at 03:00 when clocks go forward, and once when they go back."""
    spring = next_fire("30 2 * * *", "Europe/Berlin", datetime(2030, 3, 30, 12, tzinfo=UTC))
    assert spring == datetime(2030, 3, 31, 1, tzinfo=UTC)  # 03:00 CEST, just after the gap
    autumn = next_fire("30 2 * * *", "Europe/Berlin", datetime(2030, 10, 26, 12, tzinfo=UTC))
    assert autumn == datetime(2030, 10, 27, 0, 30, tzinfo=UTC)  # the first 02:30
    after = next_fire("30 2 * * *", "Europe/Berlin", autumn)
    assert after == datetime(2030, 10, 28, 1, 30, tzinfo=UTC)
