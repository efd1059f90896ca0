"""One bad recipient never blocks the rest: each email is sent or recorded undeliverable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import SMTPUTF8
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from statewright.models import Organization, RelocationEmail
from statewright.workflows.relocation import start_relocation
from statewright.workflows.relocation.mail import PLAIN_ADDRESS, address_problem
from tests.helpers import free_port
from tests.workflows.conftest import OWNER, Target, TargetFactory


class Server:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients: those in
    ``refuse`` for good (550), those in ``busy`` every time for now (451)."""

    def __init__(self, refuse: tuple[str, ...] = (), busy: tuple[str, ...] = ()) -> None:
        self.refuse, self.busy = refuse, busy
        self.messages: list[Any] = []
        self.busy_replies = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        if address in self.busy:
            self.busy_replies += 1
            return "451 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=SMTPUTF8))
        return "250 OK"

    def received(self) -> list[tuple[str, str]]:
        """Each message's recipient and subject, sorted."""
        return sorted((str(m["To"]), str(m["Subject"])) for m in self.messages)

    def body_to(self, recipient: str, subject: str) -> str:
        found = [m for m in self.messages if m["To"] == recipient and m["Subject"] == subject]
        assert len(found) == 1, self.received()
        return str(found[0].get_content())


@pytest.fixture
def smtp() -> Iterator[Any]:
    """Starts real SMTP servers (with or without SMTPUTF8) and stops them after the test."""
    controllers: list[Controller] = []

    def start(handler: Server, *, smtputf8: bool) -> str:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
        controller.start()
        controllers.append(controller)
        return f"smtp://127.0.0.1:{port}"

    yield start
    for controller in controllers:
        controller.stop()


def export(*emails: str) -> bytes:
    users = [{"id": i, "username": f"user{i}", "email": email} for i, email in enumerate(emails, 1)]
    return json.dumps(
        {
            "format": "statewright.relocation",
            "version": 1,
            "source": {},
            "organizations": [{"id": 1, "slug": "mailers", "name": "Mailers"}],
            "users": users,
            "members": [
                {"organization_id": 1, "user_id": u["id"], "role": "member"} for u in users
            ],
            "teams": [],
            "projects": [],
            "project_teams": [],
        }
    ).encode()


def relocate(target: Target, data: bytes) -> Any:
    run = start_relocation(target.engine, data, owner=OWNER)
    finished = target.harness.run(run.id)
    target.harness.run_all()
    return finished


def undeliverable(target: Target) -> dict[str, str | None]:
    with target.engine.db.reads() as session:
        rows = session.execute(
            select(RelocationEmail.recipient, RelocationEmail.undeliverable_reason).where(
                RelocationEmail.undeliverable_at.is_not(None)
            )
        ).all()
    return dict(rows)


def unsent(target: Target) -> int:
    with target.engine.db.reads() as session:
        return len(
            session.execute(
                select(RelocationEmail.id).where(
                    RelocationEmail.sent_at.is_(None), RelocationEmail.undeliverable_at.is_(None)
                )
            ).all()
        )


def test_a_server_without_smtputf8_refuses_one_address_and_the_rest_go_out(
    make_target: TargetFactory, smtp: Any
) -> None:
    """bøb@acme.example is recorded undeliverable (the server lacks SMTPUTF8); every other
    claim email and the owner's emails are sent, and the owner is told who was missed."""
    server = Server()
    target = make_target(email_backend=smtp(server, smtputf8=False))
    done = relocate(target, export("ann@x.example", "bøb@acme.example", "cat@x.example"))
    assert done.status == "succeeded"
    assert server.received() == [
        ("ann@x.example", "Claim your account"),
        ("cat@x.example", "Claim your account"),
        (OWNER, "Your relocation has started"),
        (OWNER, "Your relocation is complete"),
    ]
    refused = undeliverable(target)
    assert list(refused) == ["bøb@acme.example"]
    assert "SMTPUTF8" in (refused["bøb@acme.example"] or "")
    summary = server.body_to(OWNER, "Your relocation is complete")
    assert "1 claim email(s) could not be delivered" in summary
    assert "bøb@acme.example: the mail server refused it" in summary
    assert unsent(target) == 0


def test_a_server_with_smtputf8_receives_the_international_address(
    make_target: TargetFactory, smtp: Any
) -> None:
    """With SMTPUTF8 offered, bøb@acme.example gets its claim email like everyone else."""
    server = Server()
    target = make_target(email_backend=smtp(server, smtputf8=True))
    assert relocate(target, export("ann@x.example", "bøb@acme.example")).status == "succeeded"
    claims = sorted(str(m["To"]) for m in server.messages if m["Subject"] == "Claim your account")
    assert claims == ["ann@x.example", "bøb@acme.example"]
    assert undeliverable(target) == {}
    assert "could not be delivered" not in server.body_to(OWNER, "Your relocation is complete")


def test_refused_and_always_busy_recipients_are_recorded_and_the_rest_delivered(
    make_target: TargetFactory, smtp: Any
) -> None:
    """A 550 is undeliverable at once; a 451 that never passes is given up on after its
    attempts; neither stops the others, and the owner's summary names both."""
    server = Server(refuse=("gone@x.example",), busy=("busy@x.example",))
    target = make_target(email_backend=smtp(server, smtputf8=False))
    done = relocate(target, export("busy@x.example", "gone@x.example", "ann@x.example"))
    assert done.status == "succeeded"
    refused = undeliverable(target)
    assert sorted(refused) == ["busy@x.example", "gone@x.example"]
    assert "550 5.1.1 no such mailbox here" in (refused["gone@x.example"] or "")
    assert "gave up after 5 attempts" in (refused["busy@x.example"] or "")
    assert server.busy_replies == 5
    assert ("ann@x.example", "Claim your account") in server.received()
    summary = server.body_to(OWNER, "Your relocation is complete")
    assert "2 claim email(s) could not be delivered" in summary
    assert unsent(target) == 0


def test_an_address_list_is_refused_naming_the_value(target: Target) -> None:
    """ "kim@acme.example,attacker@evil.example" fails the run at preprocessing, naming the
    value; nothing is imported and no email goes to the attacker."""
    done = relocate(target, export("kim@acme.example,attacker@evil.example"))
    assert done.status == "failed"
    assert done.failure_reason == (
        "users[0].email must be exactly one email address, not a list of 2; "
        'got "kim@acme.example,attacker@evil.example"'
    )
    assert target.count(Organization) == 0
    recipients = {
        line for mail in target.mails() for line in mail.splitlines() if line[:3] == "To:"
    }
    assert recipients == {f"To: {OWNER}"}  # started and failed, to the owner alone


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("kim@acme.example", None),
        ("bøb@acme.example", None),
        ("kim@bücher.example", None),
        ("kim@acme.example,attacker@evil.example", "not a list of 2"),
        ("a@b.example; c@d.example", "must be an email address"),
        ("g: a@b.example, c@d.example;", "not a list of 2"),
        ("Kim <kim@acme.example>", "must be a bare email address"),
        ("kim(comment)@acme.example", "must be a bare email address"),
        ("kim@", "must be an email address"),
        ("kim", "must be an email address"),
        ("a..b@acme.example", "must be an email address"),
    ],
)
def test_addresses_are_one_address_each(value: str, problem: str | None) -> None:
    """An address is exactly one bare address; UTF-8 is allowed as the email package allows."""
    found = address_problem(value)
    assert (found is None) if problem is None else (problem in (found or "")), found


@settings(max_examples=400, deadline=None)
@given(st.from_regex(PLAIN_ADDRESS, fullmatch=True))
def test_the_plain_address_shortcut_accepts_only_what_the_parser_accepts(value: str) -> None:
    """Every address the fast check accepts, the email package's parser accepts as it is."""
    header = SMTPUTF8.header_factory("To", value)
    assert [a.addr_spec for a in header.addresses] == [value]
    assert not header.defects
