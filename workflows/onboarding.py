"""Onboarding: a small workflow that shows every kind of step outcome.

An account is provisioned (a transient failure is retried with backoff), the
workflow then polls until the owner's email is verified (polls never eat retries),
and finally welcomes the owner. A run can also be closed early from outside with
the ``closed`` signal while it waits for verification.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from statewright.context import StepContext
from statewright.definition import Workflow, step
from statewright.errors import PermanentError
from statewright.outcomes import Poll
from statewright.retry import RetryPolicy


class ProvisioningBusyError(Exception):
    """The provisioning service asked us to come back later."""


def _email(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


class Onboarding(Workflow):
    """Provision an account, wait for its owner's verification, welcome them."""

    name = "onboarding"
    transitions = [
        ("provisioned", "provisioning", "verifying"),
        ("verified", "verifying", "welcoming"),
        ("closed", "verifying", "closed"),
        ("welcomed", "welcoming", "active"),
    ]
    terminal = ["active", "closed"]
    #: Runs are found by the owner's email (``runs list --key kim@example.com``).
    business_key = staticmethod(lambda params: _email(params.get("email")))

    @step(
        initial=True,
        retry=RetryPolicy(max_attempts=4, backoff=0.2),
        reason="We could not create the account",
    )
    def provisioning(self, ctx: StepContext) -> Literal["provisioned"]:
        email = ctx.params.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise PermanentError(f"{email!r} is not an email address")
        if ctx.attempt <= int(ctx.params.get("flaky_attempts", 0)):
            raise ProvisioningBusyError(f"provisioning busy (attempt {ctx.attempt})")
        ctx.context["account"] = email.split("@")[0]
        return "provisioned"

    @step(poll_deadline=timedelta(minutes=10), reason="The owner did not verify their email")
    def verifying(self, ctx: StepContext) -> Literal["verified"] | Poll:
        if ctx.polls < int(ctx.params.get("verify_after_polls", 2)):
            return Poll(after=float(ctx.params.get("poll_seconds", 0.2)))
        return "verified"

    @step(reason="We could not send the welcome message")
    def welcoming(self, ctx: StepContext) -> Literal["welcomed"]:
        ctx.context["welcomed"] = ctx.idempotency_key
        return "welcomed"
