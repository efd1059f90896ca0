"""The README's worked example of testing a workflow, run as written."""

from __future__ import annotations

import pytest

from statewright import Engine
from statewright.testing import WorkflowHarness
from statewright.workflows.onboarding import Onboarding


@pytest.fixture
def statewright_workflows() -> list[object]:
    return [Onboarding]


def test_provisioning_is_retried(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """Two busy answers from provisioning cost two retries, then the run completes."""
    run = statewright_engine.start("onboarding", {"email": "kim@example.com", "flaky_attempts": 2})
    assert statewright_harness.run(run.id).status == "succeeded"
    statewright_harness.assert_transitions(
        run.id,
        [
            " --start--> provisioning",
            "provisioning --retry--> provisioning",
            "provisioning --retry--> provisioning",
            "provisioning --provisioned--> verifying",
            "verifying --poll--> verifying",
            "verifying --verified--> welcoming",
            "welcoming --welcomed--> active",
        ],
    )


def test_welcome_failure(statewright_engine: Engine, statewright_harness: WorkflowHarness) -> None:
    """A welcoming step that fails on every attempt fails the run with its reason."""
    for attempt in (1, 2, 3):
        statewright_harness.fail_at("welcoming", attempt, ConnectionError("smtp down"))
    run = statewright_engine.start("onboarding", {"email": "kim@example.com"})
    failed = statewright_harness.run(run.id)
    assert failed.failure_reason == "We could not send the welcome message"
