"""What goes into an organization's weekly report, and writing and sending its deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from statewright.models.domain import Organization, OrganizationMember, Project, Team, User
from statewright.models.reports import ReportDelivery
from statewright.workflows.relocation.mail import MailBackend, compose


@dataclass(frozen=True, slots=True)
class Report:
    """One organization's figures for a period, and who receives them."""

    organization_id: int
    slug: str
    members: int
    new_members: int
    teams: int
    projects: int
    owners: tuple[tuple[int, str], ...]

    @property
    def subject(self) -> str:
        return f"Weekly report for {self.slug}"

    def body(self, report_date: date, period: timedelta) -> str:
        start = report_date - period
        return (
            f"{self.slug}, {start.isoformat()} to {report_date.isoformat()}\n\n"
            f"members: {self.members} ({self.new_members} new)\n"
            f"teams: {self.teams}\nprojects: {self.projects}\n"
        )


def active_organizations(session: Session, after: int, limit: int) -> list[int]:
    """Ids of organizations with at least one owner, above ``after``, in id order (keyset)."""
    has_owner = exists().where(
        OrganizationMember.organization_id == Organization.id, OrganizationMember.role == "owner"
    )
    return list(
        session.execute(
            select(Organization.id)
            .where(Organization.id > after, has_owner)
            .order_by(Organization.id)
            .limit(limit)
        ).scalars()
    )


def build_report(
    session: Session, organization_id: int, report_date: date, period: timedelta
) -> Report | None:
    """The report of one organization, or ``None`` if it no longer exists."""
    organization = session.get(Organization, organization_id)
    if organization is None:
        return None
    since = datetime.combine(report_date - period, time(), tzinfo=organization.created_at.tzinfo)
    members = OrganizationMember.organization_id == organization_id

    def count(statement: object) -> int:
        return int(session.execute(statement).scalar_one())  # type: ignore[call-overload]

    owners = session.execute(
        select(User.id, User.email)
        .join(OrganizationMember, OrganizationMember.user_id == User.id)
        .where(members, OrganizationMember.role == "owner")
        .order_by(User.id)
    ).all()
    return Report(
        organization_id=organization_id,
        slug=organization.slug,
        members=count(select(func.count()).select_from(OrganizationMember).where(members)),
        new_members=count(
            select(func.count())
            .select_from(OrganizationMember)
            .join(User, User.id == OrganizationMember.user_id)
            .where(members, User.created_at >= since)
        ),
        teams=count(
            select(func.count()).select_from(Team).where(Team.organization_id == organization_id)
        ),
        projects=count(
            select(func.count())
            .select_from(Project)
            .where(Project.organization_id == organization_id)
        ),
        owners=tuple((int(i), str(e)) for i, e in owners),
    )


def record_deliveries(
    session: Session, report: Report, report_date: date, period: timedelta, now: datetime
) -> int:
    """Write a delivery per owner unless it exists; returns how many were new."""
    written = 0
    for user_id, email in report.owners:
        already = session.execute(
            select(ReportDelivery.id).where(
                ReportDelivery.report_date == report_date,
                ReportDelivery.organization_id == report.organization_id,
                ReportDelivery.user_id == user_id,
            )
        ).first()
        if already is not None:
            continue
        session.add(
            ReportDelivery(
                report_date=report_date,
                organization_id=report.organization_id,
                user_id=user_id,
                recipient=email,
                subject=report.subject,
                body=report.body(report_date, period),
                created_at=now,
            )
        )
        written += 1
    return written


def send_next(
    session: Session,
    report_date: date,
    organization_id: int,
    mailer: MailBackend,
    sender: str,
    now: datetime,
    *,
    lock: bool,
) -> bool:
    """Send one unsent delivery and mark it sent; ``False`` when none is left."""
    statement = (
        select(ReportDelivery)
        .where(
            ReportDelivery.report_date == report_date,
            ReportDelivery.organization_id == organization_id,
            ReportDelivery.sent_at.is_(None),
        )
        .order_by(ReportDelivery.id)
        .limit(1)
    )
    if lock:
        statement = statement.with_for_update(skip_locked=True)
    delivery = session.execute(statement).scalar_one_or_none()
    if delivery is None:
        return False
    mailer.send(
        compose(
            sender, delivery.recipient, delivery.subject, delivery.body, key=f"report-{delivery.id}"
        )
    )
    delivery.sent_at = now
    return True
