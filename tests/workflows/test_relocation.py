"""Relocation end to end on a virtual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from statewright import InvalidParamsError
from statewright.models import Organization, OrganizationMember, RelocationEmail, User
from statewright.workflows.relocation import Limits, start_relocation
from statewright.workflows.relocation.format import (
    ExportError,
    _gunzip_members,
    seal,
    write_document,
)
from tests.workflows.conftest import OWNER, Keys, Target, TargetFactory, snapshot


def relocate(target: Target, export: bytes, **options: Any) -> Any:
    run = start_relocation(target.engine, export, owner=OWNER, **options)
    return target.harness.run(run.id)


def triggers(target: Target, run_id: str) -> list[str]:
    return [h.trigger for h in target.engine.history(run_id)]


def test_happy_path_moves_every_record(
    target: Target, encrypted_export: bytes, source_url: str, database_url: str
) -> None:
    """Every organization, user, membership, team, project and link arrives intact."""
    done = relocate(target, encrypted_export)
    assert done.status == "succeeded", done.failure_reason
    assert triggers(target, done.id)[:3] == ["start", "uploaded", "preprocessed"]
    assert triggers(target, done.id)[-4:] == ["validated", "imported", "postprocessed", "notified"]
    source = snapshot(source_url)
    moved = snapshot(database_url, ["org-1", "org-2", "org-3"])
    owner_rows = {m for m in moved["members"] if m[1] == "owner"}
    assert owner_rows == {
        ("org-1", "owner", "owner"),
        ("org-2", "owner", "owner"),
        ("org-3", "owner", "owner"),
    }
    moved["members"] -= owner_rows
    moved["users"] = {u for u in moved["users"] if u[0] != "owner"}
    assert moved == source
    assert len(source["users"]) == 60
    with target.engine.db.reads() as session:
        imported = session.execute(select(User).where(User.username != "owner")).scalars().all()
        assert all(u.is_unclaimed for u in imported)


def test_only_requested_organizations_move(
    target: Target, encrypted_export: bytes, source_url: str, database_url: str
) -> None:
    """With --org, only that organization and its people arrive."""
    done = relocate(target, encrypted_export, orgs=["org-2"])
    assert done.status == "succeeded", done.failure_reason
    with target.engine.db.reads() as session:
        slugs = session.execute(select(Organization.slug)).scalars().all()
    assert slugs == ["org-2"]
    moved = snapshot(database_url, ["org-2"])
    expected = snapshot(source_url, ["org-2"])
    moved["members"] = {m for m in moved["members"] if m[1] != "owner"}
    moved["users"] = {u for u in moved["users"] if u[0] != "owner"}
    assert moved == expected


def plain(document: dict[str, Any] | None = None, raw: bytes | None = None) -> bytes:
    return raw if raw is not None else json.dumps(document).encode()


def good_document(orgs: int = 1, users: int = 2) -> dict[str, Any]:
    return {
        "format": "statewright.relocation",
        "version": 1,
        "source": {"installation": "test"},
        "organizations": [
            {"id": i, "slug": f"acme-{i}", "name": "Acme"} for i in range(1, orgs + 1)
        ],
        "users": [
            {"id": u, "username": f"u{u}", "email": f"u{u}@x.example"} for u in range(1, users + 1)
        ],
        "members": [
            {"organization_id": 1, "user_id": u, "role": "member"} for u in range(1, users + 1)
        ],
        "teams": [],
        "projects": [],
        "project_teams": [],
    }


def encrypted(data: bytes, keys: Keys) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(data), out, compress=True, public_key=keys.public_key())
    return out.getvalue()


def gzip_bomb() -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as packer:
        packer.write(b'{"format": "statewright.relocation", "version": 1, "source": {}')
        for _ in range(40):
            packer.write(b" " * 1_000_000)
        packer.write(b"}")
    return out.getvalue()


HOSTILE = {
    "not json": (lambda k: b"this is not json {", "The export is not valid JSON"),
    "wrong schema": (
        lambda k: plain({**good_document(), "users": [{"id": 1, "username": "u", "email": 7}]}),
        "users[0].email must be a string; got 7",
    ),
    "wrong format version": (
        lambda k: plain({**good_document(), "version": 2}),
        "The export is format version 2; supported versions: 1",
    ),
    "not an export": (
        lambda k: plain({"format": "something.else", "version": 1}),
        "The file is not a relocation export",
    ),
    "truncated ciphertext": (
        lambda k: encrypted(plain(good_document()), k)[:-40],
        "The export failed its integrity check: it was altered, damaged or cut short",
    ),
    "over the size limit": (
        lambda k: b" " * 2_000_001 + plain(good_document()),
        "bytes; the limit is 2,000,000 bytes",
    ),
    "gzip bomb": (gzip_bomb, "The export expands to more than 20,000,000 bytes"),
    "too many orgs": (
        lambda k: plain(good_document(orgs=11)),
        "The export has more than 10 organizations; the limit is 10",
    ),
    "too many users": (
        lambda k: plain(good_document(users=1001)),
        "The export has more than 1,000 users; the limit is 1,000",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_fails_with_its_reason(case: str, target: Target, keys: Keys) -> None:
    """Each hostile file fails the run with its own reason and imports nothing."""
    build, reason = HOSTILE[case]
    data = build(keys) if case != "gzip bomb" else build()
    failed = relocate(target, data)
    assert failed.status == "failed"
    assert reason in (failed.failure_reason or ""), failed.failure_reason
    assert target.count(Organization) == 0
    assert target.count(User) == 1
    assert target.count(OrganizationMember) == 0


def test_wrong_key_fails_naming_the_keys(target: Target, other_keys: Keys) -> None:
    """An export encrypted for another installation says so."""
    failed = relocate(target, encrypted(plain(good_document()), other_keys))
    assert failed.status == "failed"
    assert "was encrypted for key" in (failed.failure_reason or "")
    assert "not for this installation's key" in (failed.failure_reason or "")


def test_existing_org_slug_fails_naming_it(target: Target) -> None:
    """An organization slug that already exists here fails the run naming the slug."""
    with target.engine.db.transaction() as session:
        session.add(Organization(slug="acme-1", name="Ours", created_at=target.engine.clock.now()))
    failed = relocate(target, plain(good_document()))
    assert failed.status == "failed"
    assert failed.state == "preprocessing"
    assert failed.failure_reason == "Organization slug 'acme-1' already exists in this installation"


def test_redrive_after_fixing_the_cause(target: Target) -> None:
    """Once the colliding organization is gone, redrive finishes the relocation."""
    with target.engine.db.transaction() as session:
        session.add(Organization(slug="acme-1", name="Ours", created_at=target.engine.clock.now()))
    failed = relocate(target, plain(good_document()))
    assert failed.status == "failed"
    with target.engine.db.transaction() as session:
        session.execute(Organization.__table__.delete().where(Organization.slug == "acme-1"))
    target.engine.redrive(failed.id)
    assert target.harness.run(failed.id).status == "succeeded"
    assert target.count(Organization) == 1


def test_taken_username_is_renamed_and_flagged(target: Target) -> None:
    """A username that exists here is imported under a new name, keeping the original."""
    with target.engine.db.transaction() as session:
        session.add(
            User(username="u1", email="other@here.example", created_at=target.engine.clock.now())
        )
    done = relocate(target, plain(good_document()))
    assert done.status == "succeeded", done.failure_reason
    assert done.context["imported"]["renamed_usernames"] == 1
    with target.engine.db.reads() as session:
        renamed = session.execute(select(User).where(User.original_username == "u1")).scalar_one()
    assert renamed.username.startswith("u1-")
    assert renamed.email == "u1@x.example"
    assert renamed.is_unclaimed


def test_validation_findings_fail_the_run(target: Target) -> None:
    """A member pointing at a user the export lacks is found in the sandbox and fails the run."""
    document = good_document()
    document["members"].append({"organization_id": 1, "user_id": 99, "role": "member"})
    failed = relocate(target, plain(document))
    assert failed.status == "failed"
    assert failed.state == "validating"
    assert "Validation found 1 problem(s)" in (failed.failure_reason or "")
    assert "users id 99" in (failed.failure_reason or "")
    assert target.count(OrganizationMember) == 0


def test_validation_that_times_out_is_rerun_then_fails(target: Target) -> None:
    """A sandbox that never answers is started again up to the limit; polls never eat retries."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    harness = target.harness
    for _ in range(500):
        info = target.engine.get(run.id)
        if info.finished:
            break
        harness.queue.messages = type(harness.queue.messages)(
            m for m in harness.queue.messages if m.task_name != "relocation.validate"
        )  # the sandbox worker is lost
        if harness.step() is None:
            break
    failed = target.engine.get(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason == "Validation did not finish: 3 run(s) each took longer than 60s"
    history = target.engine.history(run.id)
    polls = [h for h in history if h.trigger == "poll"]
    assert sum(h.polls for h in polls) >= 3 * 12
    assert len(polls) <= 3  # one folded row per validation run
    assert {h.attempt for h in polls} == {1}
    assert "retry" not in [h.trigger for h in history]


def test_pause_before_each_state_and_resume(target: Target) -> None:
    """A run paused before every state in turn still completes after each resume."""
    run = start_relocation(
        target.engine, plain(good_document()), owner=OWNER, pause_at="preprocessing"
    )
    for state in ("preprocessing", "validating", "importing", "postprocessing", "notifying"):
        paused = target.harness.run(run.id)
        assert (paused.status, paused.state) == ("paused", state)
        target.engine.resume(run.id)
        following = {
            "preprocessing": "validating",
            "validating": "importing",
            "importing": "postprocessing",
            "postprocessing": "notifying",
        }.get(state)
        if following:
            target.engine.pause(run.id, at=following)
    assert target.harness.run(run.id).status == "succeeded"
    assert triggers(target, run.id).count("pause") == 5


def test_cancel_at_a_state_boundary(target: Target) -> None:
    """Cancelling during preprocessing lets it finish and stops before validating."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    target.harness.step()  # uploading
    running = target.harness.claim_next()  # preprocessing
    target.engine.cancel(run.id)
    running.finish()
    cancelled = target.harness.run(run.id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "validating")
    assert target.count(Organization) == 0


def test_abort_during_import_leaves_no_row(target: Target) -> None:
    """Aborting while importing discards the whole import."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER, pause_at="importing")
    target.harness.run(run.id)
    target.engine.resume(run.id)
    running = target.harness.claim_next()
    assert running.step.state == "importing"
    target.engine.abort(run.id)
    running.finish()
    aborted = target.engine.get(run.id)
    assert (aborted.status, aborted.state) == ("failed", "importing")
    assert target.count(Organization) == 0
    assert target.count(User) == 1


def test_emails_are_sent_once_even_when_delivered_twice(target: Target) -> None:
    """Every email kind is sent exactly once although each step message arrives twice."""
    run = start_relocation(target.engine, plain(good_document()), owner=OWNER)
    harness = target.harness
    while not target.engine.get(run.id).finished:
        message = harness.step()
        if message is None:
            break
        harness.deliver(message)  # the broker delivers it again
    harness.run_all()
    assert target.engine.get(run.id).status == "succeeded"
    mails = target.mails()
    assert sum("Subject: Your relocation has started" in m for m in mails) == 1
    assert sum("Subject: Your relocation is complete" in m for m in mails) == 1
    assert sum("Subject: Claim your account" in m for m in mails) == 2
    assert len(mails) == 4
    with target.engine.db.reads() as session:
        assert all(e.sent_at for e in session.execute(select(RelocationEmail)).scalars())


def test_failed_relocation_emails_the_owner_once(target: Target) -> None:
    """A failed run tells its owner why, once."""
    failed = relocate(target, b"not json")
    target.harness.run_all()
    assert failed.status == "failed"
    mails = [m for m in target.mails() if "Your relocation failed" in m]
    assert len(mails) == 1
    assert "The export is not valid JSON" in mails[0]


def test_start_refuses_an_unknown_owner(target: Target) -> None:
    """The owner must have an account here; nothing is written otherwise."""
    with pytest.raises(InvalidParamsError, match=r"no user with email 'nobody@x' exists"):
        start_relocation(target.engine, plain(good_document()), owner="nobody@x")
    assert target.engine.list() == []


def test_document_writer_and_reader_agree() -> None:
    """What the writer writes, the reader reads back record for record."""
    from statewright.workflows.relocation.format import Limits, read_records

    out = io.BytesIO()
    document = good_document(orgs=2, users=3)
    write_document(
        out,
        {"installation": "x"},
        [
            (s, document[s])
            for s in ("organizations", "users", "members", "teams", "projects", "project_teams")
        ],
    )
    records = list(read_records(out.getvalue(), None, Limits()))
    assert [r for s, r in records if s == "users"] == document["users"]
    assert len(records) == 2 + 3 + 3


def test_dangling_member_without_users_is_found(target: Target) -> None:
    """A member pointing at a missing user is reported even when the export has no users."""
    document = good_document(users=0)
    document["members"] = [{"organization_id": 1, "user_id": 5, "role": "member"}]
    failed = relocate(target, plain(document))
    assert failed.status == "failed"
    assert "users id 5" in (failed.failure_reason or "")


def test_only_wanted_usernames_move(target: Target) -> None:
    """With wanted usernames, only those accounts (and their memberships) are relocated."""
    run = start_relocation(
        target.engine, plain(good_document(users=3)), owner=OWNER, usernames=["u2"]
    )
    assert target.harness.run(run.id).status == "succeeded"
    with target.engine.db.reads() as session:
        moved = set(session.execute(select(User.username)).scalars())
    assert moved == {"owner", "u2"}


def test_checked_copy_stays_within_the_limits_it_passed(make_target: TargetFactory) -> None:
    """An export just under the decompressed limit, full of non-ASCII text, still relocates."""
    document = good_document(users=40)
    for user in document["users"]:
        user["name"] = "é" * 150
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    target = make_target(limits=Limits(max_decompressed_bytes=len(data) + 10))
    assert relocate(target, data).status == "succeeded"


def test_people_sharing_an_address_get_one_claim_email(target: Target) -> None:
    """Two imported accounts at one address get one claim email naming both."""
    document = good_document(users=2)
    document["users"][1]["email"] = document["users"][0]["email"]
    assert relocate(target, plain(document)).status == "succeeded"
    target.harness.run_all()
    claims = [m for m in target.mails() if "Claim your account" in m]
    assert len(claims) == 1
    assert "u1, u2" in claims[0]


def test_an_export_of_several_gzip_members_relocates(target: Target) -> None:
    """A gzip file of several members (valid gzip, as `cat a.gz b.gz` makes) is read whole."""
    document = plain(good_document())
    middle = len(document) // 2
    data = gzip.compress(document[:middle]) + gzip.compress(document[middle:])
    assert gzip.decompress(data) == document
    assert relocate(target, data).status == "succeeded"
    assert target.count(Organization) == 1


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_members_are_found_across_any_chunk_boundary(size: int) -> None:
    """However the file is cut into chunks, its members decompress to the document, and
    bytes after the last member that start no other are refused."""
    document = b"x" * 5000 + b"y" * 5000
    data = gzip.compress(document[:3000]) + gzip.compress(document[3000:])
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert b"".join(_gunzip_members(iter(chunks))) == document
    smuggled = [*chunks, b"\x1f", b"!"]
    with pytest.raises(ExportError, match="has 2 bytes after its compressed document"):
        b"".join(_gunzip_members(iter(smuggled)))


def test_bytes_after_the_compressed_document_are_refused(target: Target) -> None:
    """Data appended after the end of a gzip stream is not silently ignored."""
    data = gzip.compress(plain(good_document())) + b"smuggled"
    failed = relocate(target, data)
    assert failed.status == "failed"
    assert failed.failure_reason == "The export has 8 bytes after its compressed document"
