"""The owner of a relocation: an account here, with one active relocation at a time.

``claim_owner`` is the rule, called by the workflow's ``@on_activate`` hook whenever a
relocation becomes active (its start, its redrive), so it holds however that happens.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright import IllegalOperationError, InvalidParamsError
from statewright.lifecycle import ACTIVE
from statewright.models.domain import User
from statewright.models.engine import WorkflowRun
from statewright.models.relocation import Relocation as RelocationRecord


def claim_owner(session: Session, owner: str, run_id: str) -> None:
    """Lock the owner's account and make sure no other relocation of theirs is active.

    The lock is held until the transaction that starts or redrives ``run_id`` ends, so a
    concurrent start or redrive for the same owner waits here and then finds this run.
    """
    require_user(session, owner, "owner", lock=True)
    active = session.execute(
        select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.state)
        .join(RelocationRecord, RelocationRecord.run_id == WorkflowRun.id)
        .where(
            RelocationRecord.owner_email == owner,
            WorkflowRun.status.in_(ACTIVE),
            WorkflowRun.id != run_id,
        )
        .order_by(WorkflowRun.created_at)
        .limit(1)
    ).first()
    if active is not None:
        raise IllegalOperationError(
            f"{owner} already has an active relocation: run {active.id} is {active.status} in "
            f"{active.state!r}; one relocation per owner at a time, so let it finish or "
            "cancel it first"
        )


def require_user(session: Session, email: str, role: str, *, lock: bool = False) -> None:
    """A user with this email exists here (its rows locked with ``lock``)."""
    statement = select(User.id).where(User.email == email).order_by(User.id)
    if lock:
        statement = statement.with_for_update()
    if not session.execute(statement).all():
        raise InvalidParamsError(
            f"no user with email {email!r} exists in this installation; the {role} of a "
            "relocation must have an account here"
        )
