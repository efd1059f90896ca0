"""Relocation operations: creator and owner, one active relocation per owner, retry of a
failed relocation from its stored export, exports with no users, and the records view."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete

from statewright import IllegalOperationError, InvalidParamsError, RunInfo, RunNotFoundError
from statewright.models import Organization, RelocationFile, User
from statewright.models.relocation import Relocation as RelocationRecord
from statewright.workflows.relocation import (
    Limits,
    relocation_info,
    retry_relocation,
    start_relocation,
)
from tests.workflows.conftest import OWNER, Target, TargetFactory
from tests.workflows.test_relocation import good_document, plain

ADMIN = "admin@target.example"


def add_user(target: Target, email: str, username: str) -> None:
    with target.engine.db.transaction() as session:
        session.add(User(username=username, email=email, name=username, created_at=_now()))


def add_org(target: Target, slug: str) -> None:
    with target.engine.db.transaction() as session:
        session.add(Organization(slug=slug, name=slug, created_at=_now()))


def _now() -> datetime:
    return datetime.now(UTC)


def emails(target: Target, run_id: str) -> list[tuple[str, str, bool]]:
    return sorted(
        (e.kind, e.recipient, e.sent) for e in relocation_info(target.engine, run_id).emails
    )


def failed_on_collision(target: Target, **options: Any) -> RunInfo:
    """A relocation of acme-1 that fails in preprocessing: acme-1 exists here."""
    add_org(target, "acme-1")
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER, **options)
    failed = target.harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason == "Organization slug 'acme-1' already exists in this installation"
    return failed


def test_export_with_no_users_is_refused_in_preprocessing(target: Target) -> None:
    """An export (or chosen organization) without members fails in preprocessing, saying so."""
    document = good_document(orgs=2, users=2)  # members only in acme-1
    for chosen, data in ((["acme-2"], plain(document)), (None, plain(good_document(users=0)))):
        run = start_relocation(target.engine, data, owner=OWNER, orgs=chosen)
        failed = target.harness.run(run.id)
        assert (failed.status, failed.state) == ("failed", "preprocessing")
        assert failed.failure_reason is not None
        assert failed.failure_reason.startswith("The export has no users to relocate in acme-")
    assert target.count(Organization) == 0


def test_creator_and_owner_both_hear_of_success(target: Target) -> None:
    """A relocation started for an owner records both, and each gets started and succeeded."""
    add_user(target, ADMIN, "admin")
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER, creator=ADMIN)
    assert run.params["creator"] == ADMIN
    assert target.harness.run(run.id).status == "succeeded"
    target.harness.run_all()
    info = relocation_info(target.engine, run.id)
    assert (info.owner, info.creator) == (OWNER, ADMIN)
    people = [e for e in emails(target, run.id) if e[0] != "claim"]
    assert people == [
        ("started", ADMIN, True),
        ("started", OWNER, True),
        ("succeeded", ADMIN, True),
        ("succeeded", OWNER, True),
    ]
    assert sum("Your relocation is complete" in m for m in target.mails()) == 2


def test_creator_and_owner_both_hear_of_failure_once_when_the_same(target: Target) -> None:
    """Both hear of a failure; an owner who started it alone hears of each event once."""
    add_user(target, ADMIN, "admin")
    failed = failed_on_collision(target, creator=ADMIN)
    target.harness.run_all()
    assert emails(target, failed.id) == [
        ("failed", ADMIN, True),
        ("failed", OWNER, True),
        ("started", ADMIN, True),
        ("started", OWNER, True),
    ]
    with target.engine.db.transaction() as session:
        session.execute(delete(Organization))
    alone = start_relocation(target.engine, plain(good_document()), owner=OWNER, creator=OWNER)
    assert target.harness.run(alone.id).status == "succeeded"
    target.harness.run_all()
    assert [e for e in emails(target, alone.id) if e[0] != "claim"] == [
        ("started", OWNER, True),
        ("succeeded", OWNER, True),
    ]
    assert relocation_info(target.engine, alone.id).creator == OWNER


def test_unknown_creator_is_refused(target: Target) -> None:
    """The creator must have an account here; nothing is written otherwise."""
    with pytest.raises(InvalidParamsError, match=r"'nobody@x' .*the creator of a relocation"):
        start_relocation(target.engine, plain(good_document()), owner=OWNER, creator="nobody@x")
    assert target.engine.list() == []


def test_one_active_relocation_per_owner(target: Target) -> None:
    """A second start while the owner's first is running or paused is refused naming it."""
    first = start_relocation(
        target.engine, plain(good_document()), owner=OWNER, pause_at="validating"
    )
    for status in ("running in 'uploading'", "paused in 'validating'"):
        with pytest.raises(
            IllegalOperationError,
            match=rf"{OWNER} already has an active relocation: run {first.id} is {status}",
        ):
            start_relocation(target.engine, plain(good_document()), owner=OWNER)
        target.harness.run(first.id)
    add_user(target, ADMIN, "admin")
    assert start_relocation(target.engine, plain(good_document()), owner=ADMIN).status == "running"
    target.engine.cancel(first.id)
    keyed = start_relocation(
        target.engine, plain(good_document()), owner=OWNER, idempotency_key="k"
    )
    again = start_relocation(
        target.engine, plain(good_document()), owner=OWNER, idempotency_key="k"
    )
    assert again.id == keyed.id  # the same start again, not a second relocation


def test_concurrent_starts_for_one_owner_let_one_through(target: Target) -> None:
    """Starts racing for one owner: exactly one wins, the others are refused naming it."""
    racers = 6
    barrier = threading.Barrier(racers)
    started: list[str] = []
    refused: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            started.append(start_relocation(target.engine, plain(good_document()), owner=OWNER).id)
        except IllegalOperationError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=start) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1
    assert len(refused) == racers - 1
    assert all(f"run {started[0]} is running" in message for message in refused)
    assert [r.id for r in target.engine.list()] == started


def test_retry_reuses_the_stored_export(target: Target) -> None:
    """A failed relocation retried after its cause is fixed succeeds from its stored export."""
    add_user(target, ADMIN, "admin")
    failed = failed_on_collision(target, orgs=["acme-1"])
    with target.engine.db.transaction() as session:
        session.execute(delete(Organization))
    retried = retry_relocation(target.engine, failed.id, creator=ADMIN)
    assert retried.id != failed.id
    assert (retried.params["retry_of"], retried.params["orgs"]) == (failed.id, ["acme-1"])
    assert target.harness.run(retried.id).status == "succeeded"
    assert target.count(Organization) == 1
    info = relocation_info(target.engine, retried.id)
    source = relocation_info(target.engine, failed.id)
    assert (info.retry_of, info.owner, info.creator) == (failed.id, OWNER, ADMIN)
    assert info.organizations == ["acme-1"]
    upload = next(f for f in info.files if f.kind == "upload")
    kept = next(f for f in source.files if f.kind == "upload")
    assert (upload.size, upload.stored, upload.sha256) == (kept.size, kept.stored, kept.sha256)
    assert target.engine.get(failed.id).status == "failed"
    with pytest.raises(IllegalOperationError, match=rf"run {retried.id} is succeeded; only a"):
        retry_relocation(target.engine, retried.id)


def test_retry_refusals(target: Target) -> None:
    """Retry is refused for a run that has not failed, whose export or owner is gone, or
    whose owner has another relocation active; nothing is written then."""
    failed = failed_on_collision(target)
    add_user(target, ADMIN, "admin")
    other = start_relocation(target.engine, plain(good_document()), owner=ADMIN)
    with pytest.raises(
        IllegalOperationError, match=rf"run {other.id} is running; only a failed relocation"
    ):
        retry_relocation(target.engine, other.id)
    active = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    with pytest.raises(
        IllegalOperationError, match=rf"already has an active relocation: run {active.id}"
    ):
        retry_relocation(target.engine, failed.id)
    target.engine.cancel(active.id)
    with target.engine.db.transaction() as session:
        session.execute(delete(User).where(User.email == OWNER))
    with pytest.raises(InvalidParamsError, match=rf"no user with email '{OWNER}' exists"):
        retry_relocation(target.engine, failed.id)
    add_user(target, OWNER, "owner")
    with target.engine.db.transaction() as session:
        session.execute(delete(RelocationFile).where(RelocationFile.kind == "upload"))
    with pytest.raises(IllegalOperationError, match=rf"the export of run {failed.id} is gone"):
        retry_relocation(target.engine, failed.id)
    with pytest.raises(RunNotFoundError, match=r"no run with id 'feedface'"):
        retry_relocation(target.engine, "feedface")
    assert len(target.engine.list()) == 3


def test_redrive_is_refused_while_another_relocation_of_the_owner_is_active(
    target: Target,
) -> None:
    """Redriving a failed relocation after another of its owner became active is refused
    naming that run, and nothing changes; once that one ends, the redrive goes through."""
    failed = failed_on_collision(target)
    active = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    history = target.engine.history(failed.id)
    with pytest.raises(
        IllegalOperationError,
        match=rf"{OWNER} already has an active relocation: run {active.id} is running",
    ):
        target.engine.redrive(failed.id)
    assert target.engine.get(failed.id) == failed
    assert target.engine.history(failed.id) == history
    target.engine.cancel(active.id)
    assert target.engine.redrive(failed.id).status == "running"
    with pytest.raises(
        IllegalOperationError, match=rf"already has an active relocation: run {failed.id}"
    ):
        start_relocation(target.engine, plain(good_document()), owner=OWNER)


def test_retry_refuses_an_export_cut_at_the_size_limit(make_target: TargetFactory) -> None:
    """An export that was only partly stored (over the limit) cannot be retried from."""
    target = make_target(limits=Limits(max_file_bytes=100))
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    failed = target.harness.run(run.id)
    assert failed.failure_reason is not None
    assert "the limit is 100 bytes" in failed.failure_reason
    with pytest.raises(IllegalOperationError, match=r"was not stored whole \(101 of"):
        retry_relocation(target.engine, failed.id)


def test_pause_during_notifying_is_refused(target: Target) -> None:
    """With notifying (the last step) running, a pause is refused: no state is left."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER, pause_at="notifying")
    target.harness.run(run.id)
    target.engine.resume(run.id)
    running = target.harness.claim_next()
    assert running.step.state == "notifying"
    with pytest.raises(
        IllegalOperationError,
        match=r"running its last step 'notifying'; there is no state left to pause at",
    ):
        target.engine.pause(run.id)
    with pytest.raises(InvalidParamsError, match=r"completed is a final state"):
        target.engine.pause(run.id, at="completed")
    with pytest.raises(
        InvalidParamsError, match=r"unknown state 'no-such-state' in workflow 'relocation'"
    ):
        target.engine.pause(run.id, at="no-such-state")
    assert running.finish().status == "succeeded"


def test_cancel_at_importing(target: Target) -> None:
    """A relocation cancelled at importing stops there with nothing imported."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    assert target.engine.cancel(run.id, at="importing").cancel_at == "importing"
    cancelled = target.harness.run(run.id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "importing")
    assert target.count(Organization) == 0
    assert target.engine.cancel(run.id).status == "cancelled"


def test_relocation_info_lists_files_validations_and_emails(target: Target) -> None:
    """The records view shows each file, each validation attempt and each email's state."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER, pause_at="importing")
    target.harness.step()  # uploading: the started email is written, not yet sent
    early = relocation_info(target.engine, run.id)
    assert [(e.kind, e.recipient, e.sent) for e in early.emails] == [("started", OWNER, False)]
    assert [(f.kind, f.size, f.stored) for f in early.files] == [
        ("upload", len(plain(good_document())), len(plain(good_document())))
    ]
    assert early.validation_status is None
    assert early.validations == []
    target.harness.run(run.id)
    target.harness.run_all()
    info = relocation_info(target.engine, run.id)
    assert [f.kind for f in info.files] == ["upload", "checked"]
    assert all(f.sha256 for f in info.files)
    assert info.validation_status == "valid"
    assert [(a.number, a.status, a.findings) for a in info.validations] == [(1, "valid", [])]
    assert [(e.kind, e.sent) for e in info.emails] == [("started", True)]
    shown = info.to_json()
    assert shown["run"]["id"] == run.id
    assert shown["emails"][0]["sent"] is True
    assert shown["validations"][0]["status"] == "valid"
    with target.engine.db.transaction() as session:
        session.execute(delete(RelocationRecord))
    with pytest.raises(InvalidParamsError, match=r"'relocation' run with no relocation"):
        relocation_info(target.engine, run.id)
