"""Relocation emails: written once in a step's transaction, sent by a task after commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.relocation import Relocation, RelocationEmail
from workflows.relocation.mail import MailBackend, compose

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


def send_pending(
    session: Session,
    relocation_id: int,
    mailer: MailBackend,
    sender: str,
    now: datetime,
    *,
    lock: bool,
) -> bool:
    """Send the next unsent email of a relocation and mark it sent; ``False`` when none is left.

    Marked sent in the same transaction that saw it unsent, so two senders never both
    send it; a crash between the server accepting it and the commit can send it twice.
    """
    statement = (
        select(RelocationEmail)
        .where(RelocationEmail.relocation_id == relocation_id, RelocationEmail.sent_at.is_(None))
        .order_by(RelocationEmail.id)
        .limit(1)
    )
    if lock:
        statement = statement.with_for_update(skip_locked=True)
    email = session.execute(statement).scalar_one_or_none()
    if email is None:
        return False
    message = compose(
        sender,
        email.recipient,
        email.subject,
        email.body,
        key=f"relocation-{relocation_id}-{email.id}",
    )
    message["X-Statewright-Email"] = f"{relocation_id}:{email.kind}:{email.recipient}"
    mailer.send(message)
    email.sent_at = now
    return True
