"""Relocation: move organizations, their members, teams and projects into this installation.

uploading → preprocessing → validating → importing → postprocessing → notifying → completed.
Every failure has its own reason; a failed run emails its owner (and creator) once.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import BinaryIO, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from statewright import (
    Activation,
    PermanentError,
    Poll,
    RetryPolicy,
    StepContext,
    TaskContext,
    Workflow,
    on_activate,
    step,
    task,
)
from statewright.migrate import Migrations
from statewright.models.domain import Organization, OrganizationMember, User
from statewright.models.engine import WorkflowRun
from statewright.models.relocation import (
    Relocation as RelocationRecord,
)
from statewright.models.relocation import (
    RelocationFile,
    RelocationValidation,
    RelocationValidationAttempt,
)
from statewright.workflows.relocation.config import RelocationConfig
from statewright.workflows.relocation.format import (
    SECTIONS,
    ExportError,
    Header,
    Record,
    read_records,
    seal,
    write_document,
)
from statewright.workflows.relocation.importer import Importer, ImportProblemError
from statewright.workflows.relocation.notify import (
    Delivery,
    EmailsPendingError,
    queue_email,
    recipients,
    send_pending,
)
from statewright.workflows.relocation.owners import claim_owner
from statewright.workflows.relocation.sandbox import validate_in_sandbox


class Relocation(Workflow):
    """Moves organizations from an export of another installation into this one."""

    name = "relocation"
    transitions = [
        ("uploaded", "uploading", "preprocessing"),
        ("preprocessed", "preprocessing", "validating"),
        ("validated", "validating", "importing"),
        ("imported", "importing", "postprocessing"),
        ("postprocessed", "postprocessing", "notifying"),
        ("notified", "notifying", "completed"),
    ]
    terminal = ["completed"]
    retry = RetryPolicy(max_attempts=3, backoff=5.0, max_backoff=120.0)
    time_limit = 900.0
    failure_task = "notify_failed"
    #: Runs are found by the slugs they relocate (``runs list --key acme``).
    business_key = staticmethod(lambda params: ",".join(params.get("orgs") or []) or None)
    #: Its tables (and the installation's, which it imports into) come with it.
    migrations = Migrations("relocation")

    def __init__(self, config: RelocationConfig | None = None) -> None:
        self._config = config

    @property
    def config(self) -> RelocationConfig:
        """The given config, or the environment's, read when first needed (not at import)."""
        if self._config is None:
            self._config = RelocationConfig.from_env()
        return self._config

    @on_activate
    def one_active_per_owner(self, activation: Activation) -> None:
        """An owner has one active relocation at a time: a start or a redrive past it is
        refused, naming the active one."""
        owner = activation.params.get("owner")
        if isinstance(owner, str):
            claim_owner(activation.session, owner, activation.run_id)

    # -- states --------------------------------------------------------------------

    @step(initial=True, reason="We could not store the uploaded export")
    def uploading(self, ctx: StepContext) -> Literal["uploaded"]:
        relocation = _relocation(ctx)
        upload = _file(ctx.session, relocation, "upload")
        limit = self.config.limits.max_file_bytes
        if upload.size > limit:
            raise PermanentError(
                f"The export is {upload.size:,} bytes; the limit is {limit:,} bytes"
            )
        upload.sha256 = hashlib.sha256(upload.data).hexdigest()
        ctx.context["upload"] = {"bytes": upload.size, "sha256": upload.sha256}
        for person in recipients(relocation):
            queue_email(ctx.session, relocation, "started", person, now=ctx.now)
        ctx.enqueue("send_emails", relocation_id=relocation.id)
        return "uploaded"

    @step(reason="We could not read the export")
    def preprocessing(self, ctx: StepContext) -> Literal["preprocessed"]:
        relocation = _relocation(ctx)
        upload = _file(ctx.session, relocation, "upload")
        selection = self._select(upload.data, relocation)
        _check_collisions(ctx.session, selection.slugs)
        normalized = io.BytesIO()
        taken = self._normalize(upload.data, selection, normalized, ctx.session)
        if not selection.kept_members:  # a member with a missing user: validation says so
            raise PermanentError(
                f"The export has no users to relocate in {', '.join(selection.slugs)}; "
                "a relocation moves organizations with their members, and these have none"
            )
        data = normalized.getvalue()
        ctx.session.add(
            RelocationFile(
                relocation_id=relocation.id,
                kind="checked",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                data=data,
                created_at=ctx.now,
            )
        )
        ctx.context["export"] = {
            "organizations": selection.slugs,
            "users": len(selection.users),
            "usernames_taken": taken,
            "source": selection.source,
        }
        return "preprocessed"

    @step(poll_deadline=86_400, reason="We could not validate the export")
    def validating(self, ctx: StepContext) -> Literal["validated"] | Poll:
        relocation = _relocation(ctx)
        validation = _validation(ctx.session, relocation, ctx.now)
        latest = _latest_attempt(ctx.session, validation)
        if latest is not None and latest.status == "valid":
            validation.status = "valid"
            return "validated"
        if latest is not None and latest.status == "invalid":
            findings = latest.findings or []
            first = findings[0]["problem"] if findings else "no detail"
            raise PermanentError(
                f"Validation found {len(findings)} problem(s) in the export; the first: {first}"
            )
        if latest is not None and latest.status == "pending":
            if ctx.now - latest.started_at < self.config.validation_timeout:
                return Poll(after=self.config.validation_interval)
            latest.status = "timed_out"
            latest.finished_at = ctx.now
        if validation.attempts >= self.config.max_validation_runs:
            raise PermanentError(
                f"Validation did not finish: {validation.attempts} run(s) each took longer than "
                f"{self.config.validation_timeout.total_seconds():g}s"
            )
        attempt = _start_attempt(ctx.session, validation, ctx.now)
        ctx.enqueue("validate", relocation_id=relocation.id, attempt_id=attempt.id)
        return Poll(after=self.config.validation_interval)

    @step(reason="We could not import the export")
    def importing(self, ctx: StepContext) -> Literal["imported"]:
        relocation = _relocation(ctx)
        checked = _file(ctx.session, relocation, "checked")
        importer = Importer(ctx.session, now=ctx.now, batch=self.config.import_batch)
        try:
            result = importer.run(
                read_records(checked.data, None, self.config.limits.for_checked_copy())
            )
        except ImportProblemError as problem:
            raise PermanentError(
                f"The export could not be imported: {problem.findings[0]['problem']}"
            ) from problem
        ctx.context["imported"] = {
            "rows": result.rows,
            "organization_ids": result.organization_ids,
            "renamed_usernames": len(result.renamed),
        }
        return "imported"

    @step(reason="We could not make you the owner of the imported organizations")
    def postprocessing(self, ctx: StepContext) -> Literal["postprocessed"]:
        relocation = _relocation(ctx)
        owner = _owner(ctx.session, relocation.owner_email)
        for org_id in ctx.context["imported"]["organization_ids"]:
            membership = ctx.session.execute(
                select(OrganizationMember).where(
                    OrganizationMember.organization_id == org_id,
                    OrganizationMember.user_id == owner.id,
                )
            ).scalar_one_or_none()
            if membership is None:
                ctx.session.add(
                    OrganizationMember(organization_id=org_id, user_id=owner.id, role="owner")
                )
            else:
                membership.role = "owner"
        return "postprocessed"

    @step(reason="We could not send the relocation emails")
    def notifying(self, ctx: StepContext) -> Literal["notified"]:
        relocation = _relocation(ctx)
        org_ids = ctx.context["imported"]["organization_ids"]
        users = ctx.session.execute(
            select(User.email, User.username)
            .distinct()
            .join(OrganizationMember, OrganizationMember.user_id == User.id)
            .where(OrganizationMember.organization_id.in_(org_ids), User.is_unclaimed.is_(True))
            .order_by(User.username)
        ).all()
        accounts: dict[str, list[str]] = {}
        for email, username in users:  # one email per address, naming every account at it
            accounts.setdefault(email, []).append(username)
        for email, usernames in accounts.items():
            queue_email(
                ctx.session, relocation, "claim", email, now=ctx.now, username=", ".join(usernames)
            )
        for person in recipients(relocation):
            queue_email(ctx.session, relocation, "succeeded", person, now=ctx.now)
        ctx.enqueue("send_emails", relocation_id=relocation.id)
        return "notified"

    # -- tasks ---------------------------------------------------------------------

    @task(time_limit=1800.0)
    def validate(self, tc: TaskContext, relocation_id: int, attempt_id: int) -> None:
        """Import the checked export into a sandbox and record what it found."""
        with tc.transaction() as session:
            attempt = session.get(RelocationValidationAttempt, attempt_id)
            if attempt is None or attempt.status != "pending":
                return
            relocation = session.get(RelocationRecord, relocation_id)
            assert relocation is not None
            data = _file(session, relocation, "checked").data
        findings = validate_in_sandbox(
            data,
            self.config.limits.for_checked_copy(),
            now=tc.now,
            batch=self.config.import_batch,
        )
        with tc.transaction() as session:
            session.execute(
                update(RelocationValidationAttempt)
                .where(
                    RelocationValidationAttempt.id == attempt_id,
                    RelocationValidationAttempt.status == "pending",
                )
                .values(
                    status="invalid" if findings else "valid",
                    findings=findings or None,
                    finished_at=tc.now,
                )
            )
            tc.done(session)  # the result and the task's done mark commit together
        tc.log.info("sandbox validation finished", findings=len(findings))

    @task(autoretry_for=(OSError,), retry_backoff=True, max_retries=8)
    def send_emails(self, tc: TaskContext, relocation_id: int) -> None:
        """Send every unsent email of a relocation, one transaction each. An email refused
        for good is recorded undeliverable and the rest still go out; if some could not be
        sent yet, the task raises once all others were tried, and is retried."""
        later: list[int] = []
        error: OSError | None = None
        while True:
            with tc.transaction() as session:
                attempt = send_pending(
                    session,
                    relocation_id,
                    self.config.mailer,
                    self.config.email_from,
                    tc.now,
                    lock=tc.skip_locked,
                    skip=later,
                )
                if attempt is None and not later:
                    tc.done(session)  # nothing left to send: the done mark commits here
            if attempt is None:
                break
            if attempt.outcome is Delivery.UNDELIVERABLE:
                tc.log.warning(
                    "email undeliverable", recipient=attempt.recipient, reason=attempt.reason
                )
            elif attempt.outcome is Delivery.LATER:
                later.append(attempt.email_id)
                error = attempt.error or error
        if later:
            raise EmailsPendingError(
                f"{len(later)} email(s) of relocation {relocation_id} could not be sent yet"
                + (f"; the last error: {error}" if error else "")
            )

    @task()
    def notify_failed(self, tc: TaskContext, run_id: str) -> None:
        """Tell the owner that their relocation failed, and why."""
        with tc.transaction() as session:
            relocation = session.execute(
                select(RelocationRecord).where(RelocationRecord.run_id == run_id)
            ).scalar_one_or_none()
            run = session.get(WorkflowRun, run_id)
            if relocation is None or run is None:
                return
            for person in recipients(relocation):
                queue_email(
                    session,
                    relocation,
                    "failed",
                    person,
                    now=tc.now,
                    reason=run.failure_reason or "unknown",
                )
            tc.enqueue(session, "send_emails", relocation_id=relocation.id)
            tc.done(session)  # the email, its sending task and the done mark commit together

    # -- reading the export --------------------------------------------------------

    def _select(self, data: bytes, relocation: RelocationRecord) -> Selection:
        """First pass: check the whole document and decide which records to relocate."""
        header = Header()
        orgs: dict[int, str] = {}
        selection = Selection()
        try:
            for section, record in read_records(
                data, self.config.private_key, self.config.limits, header
            ):
                if section == "organizations":
                    orgs[record["id"]] = record["slug"]
                    continue
                if section != "members":
                    continue
                if not selection.org_ids:  # organizations come first: they are all known now
                    selection.choose(orgs, relocation.want_org_slugs)
                if record["organization_id"] in selection.org_ids or (
                    record["organization_id"] not in orgs  # dangling: validation reports it
                ):
                    selection.users.add(record["user_id"])
        except ExportError as error:
            raise PermanentError(str(error)) from None
        if not selection.org_ids:
            selection.choose(orgs, relocation.want_org_slugs)
        if relocation.want_usernames is not None:
            selection.usernames = set(relocation.want_usernames)
        selection.source = header.source
        return selection

    def _normalize(
        self, data: bytes, selection: Selection, target: BinaryIO, session: Session
    ) -> int:
        """Second pass: write the selected records, unencrypted and compressed; returns how
        many of their usernames this installation already has."""
        plain = io.BytesIO()
        records = read_records(data, self.config.private_key, self.config.limits)
        taken = _TakenUsernames(session)
        write_document(plain, selection.source, _by_section(taken.watch(selection.filter(records))))
        seal(plain, target, compress=True, public_key=None)
        return taken.count


class Selection:
    """Which organizations, users, teams and projects of an export are relocated."""

    def __init__(self) -> None:
        self.org_ids: set[int] = set()
        self.slugs: list[str] = []
        self.users: set[int] = set()
        self.usernames: set[str] | None = None
        self.teams: set[int] = set()
        self.projects: set[int] = set()
        self.source: dict[str, str] = {}
        #: Every id the export has, selected or not: a record that refers to an id outside
        #: these is kept, so validation reports it instead of the filter hiding it.
        self.known: dict[str, set[int]] = {
            "organizations": set(),
            "users": set(),
            "teams": set(),
            "projects": set(),
        }
        self.kept_users: set[int] = set()
        self.kept_members = 0

    def choose(self, orgs: dict[int, str], wanted: list[str]) -> None:
        if not orgs:
            raise PermanentError("The export contains no organizations")
        if wanted:
            missing = [slug for slug in wanted if slug not in orgs.values()]
            if missing:
                raise PermanentError(
                    f"Organization {missing[0]!r} is not in the export; it has: "
                    f"{', '.join(sorted(orgs.values()))}"
                )
        self.known["organizations"] = set(orgs)
        self.org_ids = {i for i, slug in orgs.items() if not wanted or slug in wanted}
        self.slugs = sorted(orgs[i] for i in self.org_ids)

    def filter(self, records: Iterable[tuple[str, Record]]) -> Iterator[tuple[str, Record]]:
        for section, record in records:
            if self._keeps(section, record):
                yield section, record

    def _keeps(self, section: str, record: Record) -> bool:
        if section in self.known and "id" in record:
            self.known[section].add(record["id"])
        if section == "organizations":
            return record["id"] in self.org_ids
        if section == "users":
            kept = record["id"] in self.users and (
                self.usernames is None or record["username"] in self.usernames
            )
            if kept:
                self.kept_users.add(record["id"])
            return kept
        if section == "members":
            kept = self._selected(
                "organizations", record["organization_id"], self.org_ids
            ) and self._selected("users", record["user_id"], self.kept_users)
            self.kept_members += kept
            return kept
        if section in ("teams", "projects"):
            kept = self._selected("organizations", record["organization_id"], self.org_ids)
            if kept:
                (self.teams if section == "teams" else self.projects).add(record["id"])
            return kept
        return self._selected("projects", record["project_id"], self.projects) and (
            self._selected("teams", record["team_id"], self.teams)
        )

    def _selected(self, kind: str, key: int, chosen: set[int]) -> bool:
        """Chosen, or not in the export at all (then the sandbox reports the dangling id)."""
        return key in chosen or key not in self.known[kind]


def _by_section(records: Iterable[tuple[str, Record]]) -> Iterator[tuple[str, Iterator[Record]]]:
    """Group a document-ordered record stream into (section, records) for the writer."""
    iterator = iter(records)
    pending: list[tuple[str, Record]] = []

    def take(section: str) -> Iterator[Record]:
        while True:
            if pending:
                if pending[0][0] != section:
                    return
                yield pending.pop()[1]
                continue
            item = next(iterator, None)
            if item is None:
                return
            if item[0] != section:
                pending.append(item)
                return
            yield item[1]

    for section in SECTIONS:
        yield section, take(section)


def _relocation(ctx: StepContext) -> RelocationRecord:
    relocation = ctx.session.execute(
        select(RelocationRecord).where(RelocationRecord.run_id == ctx.run_id)
    ).scalar_one_or_none()
    if relocation is None:
        raise PermanentError(f"Run {ctx.run_id} has no relocation record")
    return relocation


def _file(session: Session, relocation: RelocationRecord, kind: str) -> RelocationFile:
    found = session.execute(
        select(RelocationFile).where(
            RelocationFile.relocation_id == relocation.id, RelocationFile.kind == kind
        )
    ).scalar_one_or_none()
    if found is None:
        raise PermanentError(f"The relocation has no {kind} file")
    return found


def _check_collisions(session: Session, slugs: list[str]) -> None:
    existing = sorted(
        session.execute(select(Organization.slug).where(Organization.slug.in_(slugs))).scalars()
    )
    if existing:
        raise PermanentError(
            f"Organization slug {existing[0]!r} already exists in this installation"
            + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
        )


class _TakenUsernames:
    """Counts, a batch at a time, the relocated usernames this installation already has."""

    def __init__(self, session: Session, batch: int = 1000) -> None:
        self.session = session
        self.batch = batch
        self.count = 0
        self._pending: list[str] = []

    def watch(self, records: Iterable[tuple[str, Record]]) -> Iterator[tuple[str, Record]]:
        """Pass ``records`` through, looking at the users among them."""
        for section, record in records:
            if section == "users":
                self._pending.append(record["username"])
                if len(self._pending) >= self.batch:
                    self._flush()
            yield section, record
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.count += len(
                self.session.execute(select(User.id).where(User.username.in_(self._pending))).all()
            )
            self._pending = []


def _owner(session: Session, email: str) -> User:
    owner = session.execute(
        select(User).where(User.email == email).order_by(User.id).limit(1)
    ).scalar_one_or_none()
    if owner is None:
        raise PermanentError(f"No user with email {email!r} exists here to own the organizations")
    return owner


def _validation(
    session: Session, relocation: RelocationRecord, now: datetime
) -> RelocationValidation:
    validation = session.execute(
        select(RelocationValidation).where(RelocationValidation.relocation_id == relocation.id)
    ).scalar_one_or_none()
    if validation is None:
        validation = RelocationValidation(
            relocation_id=relocation.id, status="running", attempts=0, created_at=now
        )
        session.add(validation)
        session.flush()
    return validation


def _latest_attempt(
    session: Session, validation: RelocationValidation
) -> RelocationValidationAttempt | None:
    return session.execute(
        select(RelocationValidationAttempt)
        .where(RelocationValidationAttempt.validation_id == validation.id)
        .order_by(RelocationValidationAttempt.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def _start_attempt(
    session: Session, validation: RelocationValidation, now: datetime
) -> RelocationValidationAttempt:
    validation.attempts += 1
    attempt = RelocationValidationAttempt(
        validation_id=validation.id, number=validation.attempts, status="pending", started_at=now
    )
    session.add(attempt)
    session.flush()
    return attempt
