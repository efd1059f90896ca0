"""Relocation emails: written once in a step's transaction, sent by a task after commit.

Each email is delivered or recorded as undeliverable with the reason, independently of
the others; the owner's "succeeded" email goes last and says how many claim emails could
not be delivered, and to whom.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright.models.relocation import Relocation, RelocationEmail
from statewright.workflows.relocation.mail import (
    MailBackend,
    UndeliverableError,
    address_problem,
    compose,
)

TEMPLATES = {
    "started": (
        "Your relocation has started",
        "We received your export of {orgs} and started relocating it (run {run}).",
    ),
    "succeeded": (
        "Your relocation is complete",
        "{orgs} now live in this installation. You are their owner (run {run}).",
    ),
    "failed": ("Your relocation failed", "We could not relocate {orgs}: {reason} (run {run})."),
    "claim": (
        "Claim your account",
        "Your account {username} was moved here with {orgs}. Set a password to claim it.",
    ),
}


def recipients(relocation: Relocation) -> list[str]:
    """Who hears how a relocation goes: its owner and, if someone else, its creator."""
    people = [relocation.owner_email]
    if relocation.creator_email and relocation.creator_email != relocation.owner_email:
        people.append(relocation.creator_email)
    return people


def queue_email(
    session: Session,
    relocation: Relocation,
    kind: str,
    recipient: str,
    *,
    now: datetime,
    **fields: str,
) -> bool:
    """Write an email to send after commit; ``False`` if this one was written before."""
    exists = session.execute(
        select(RelocationEmail.id).where(
            RelocationEmail.relocation_id == relocation.id,
            RelocationEmail.kind == kind,
            RelocationEmail.recipient == recipient,
        )
    ).first()
    if exists is not None:
        return False
    subject, body = TEMPLATES[kind]
    values = {
        "orgs": ", ".join(relocation.want_org_slugs) or "your organizations",
        "run": relocation.run_id,
        **fields,
    }
    session.add(
        RelocationEmail(
            relocation_id=relocation.id,
            kind=kind,
            recipient=recipient,
            subject=subject,
            body=body.format(**values),
            created_at=now,
        )
    )
    if kind != "claim":
        relocation.latest_notified = kind
    return True


#: How often an email may fail in a way that might pass before it is given up on.
MAX_EMAIL_ATTEMPTS = 5
#: How many undeliverable addresses the owner's "succeeded" email lists by name.
LISTED_UNDELIVERABLE = 20


class EmailsPendingError(OSError):
    """Some emails could not be sent yet (an error that may pass); the sending task is
    retried for them."""


class Delivery(enum.Enum):
    SENT = "sent"
    UNDELIVERABLE = "undeliverable"  # refused for good; recorded with its reason
    LATER = "later"  # failed in a way that may pass, or waits for others; try again


@dataclass(frozen=True)
class Attempt:
    """What became of one email this time."""

    email_id: int
    recipient: str
    outcome: Delivery
    reason: str | None = None
    error: OSError | None = None


def send_pending(
    session: Session,
    relocation_id: int,
    mailer: MailBackend,
    sender: str,
    now: datetime,
    *,
    lock: bool,
    skip: Collection[int] = (),
) -> Attempt | None:
    """Try the next unsent email of a relocation (not one in ``skip``); ``None`` when none
    is left. Each email is sent, recorded undeliverable with its reason, or left for a
    later try, on its own: one bad recipient never holds up the others.

    Marked sent in the same transaction that saw it unsent, so two senders never both
    send it; a crash between the server accepting it and the commit can send it twice.
    """
    email = _next_email(session, relocation_id, lock=lock, skip=skip)
    if email is None:
        return None
    body = email.body
    if email.kind == "succeeded":
        waiting = _claims(session, relocation_id, pending=True)
        if waiting:  # the owner's summary counts the claims that could not be delivered
            return Attempt(email.id, email.recipient, Delivery.LATER)
        body += _undeliverable_summary(session, relocation_id)
    try:
        _deliver(email, body, relocation_id, mailer, sender)
    except UndeliverableError as refusal:
        return _undeliverable(email, str(refusal), now)
    except OSError as error:
        email.attempts += 1
        if email.attempts >= MAX_EMAIL_ATTEMPTS:
            return _undeliverable(email, f"gave up after {email.attempts} attempts: {error}", now)
        return Attempt(email.id, email.recipient, Delivery.LATER, str(error), error)
    email.attempts += 1
    email.sent_at = now
    email.body = body  # as it was sent
    return Attempt(email.id, email.recipient, Delivery.SENT)


def _next_email(
    session: Session, relocation_id: int, *, lock: bool, skip: Collection[int]
) -> RelocationEmail | None:
    statement = (
        select(RelocationEmail)
        .where(
            RelocationEmail.relocation_id == relocation_id,
            RelocationEmail.sent_at.is_(None),
            RelocationEmail.undeliverable_at.is_(None),
            RelocationEmail.id.not_in(list(skip)),
        )
        .order_by(RelocationEmail.id)
        .limit(1)
    )
    if lock:
        statement = statement.with_for_update(skip_locked=True)
    return session.execute(statement).scalar_one_or_none()


def _deliver(
    email: RelocationEmail, body: str, relocation_id: int, mailer: MailBackend, sender: str
) -> None:
    """Raises ``UndeliverableError`` for a message that cannot be sent as it is."""
    if problem := address_problem(email.recipient):
        raise UndeliverableError(f"the address {email.recipient!r} {problem}")
    try:
        message = compose(
            sender,
            email.recipient,
            email.subject,
            body,
            key=f"relocation-{relocation_id}-{email.id}",
        )
        message["X-Statewright-Email"] = f"{relocation_id}:{email.kind}:{email.recipient}"
    except ValueError as error:  # a header the email package will not write
        raise UndeliverableError(f"the message could not be written: {error}") from error
    mailer.send(message)


def _undeliverable(email: RelocationEmail, reason: str, now: datetime) -> Attempt:
    email.attempts += 1
    email.undeliverable_at = now
    email.undeliverable_reason = reason
    return Attempt(email.id, email.recipient, Delivery.UNDELIVERABLE, reason)


def _claims(session: Session, relocation_id: int, *, pending: bool) -> list[RelocationEmail]:
    """The relocation's claim emails still to be tried (or, not ``pending``, given up on)."""
    settled = RelocationEmail.undeliverable_at
    return list(
        session.execute(
            select(RelocationEmail)
            .where(
                RelocationEmail.relocation_id == relocation_id,
                RelocationEmail.kind == "claim",
                RelocationEmail.sent_at.is_(None),
                settled.is_(None) if pending else settled.is_not(None),
            )
            .order_by(RelocationEmail.id)
        ).scalars()
    )


def _undeliverable_summary(session: Session, relocation_id: int) -> str:
    """What the owner's "succeeded" email adds about claim emails that could not be sent."""
    failed = _claims(session, relocation_id, pending=False)
    if not failed:
        return ""
    lines = [f"- {e.recipient}: {e.undeliverable_reason}" for e in failed[:LISTED_UNDELIVERABLE]]
    if len(failed) > LISTED_UNDELIVERABLE:
        lines.append(f"- and {len(failed) - LISTED_UNDELIVERABLE} more")
    return (
        f"\n\n{len(failed)} claim email(s) could not be delivered; those users can still "
        "claim their accounts by resetting their password:\n" + "\n".join(lines)
    )
