"""Relocation against real outside parts: an SMTP server, the CLI, a large export."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from statewright import migrate
from statewright.workflows.relocation import Limits, start_relocation
from statewright.workflows.relocation.exporter import export_organizations
from statewright.workflows.relocation.sample import SampleShape, build_sample
from tests.helpers import free_port
from tests.workflows.conftest import OWNER, Keys, Target, TargetFactory, snapshot

ROOT = Path(__file__).resolve().parents[2]


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_smtp_server_receives_the_emails(make_target: TargetFactory) -> None:
    """Started, claim and succeeded emails arrive at a local SMTP server, once each."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        target = make_target(email_backend=f"smtp://127.0.0.1:{port}")
        document = {
            "format": "statewright.relocation",
            "version": 1,
            "source": {},
            "organizations": [{"id": 1, "slug": "mailers", "name": "Mailers"}],
            "users": [{"id": 1, "username": "ann", "email": "ann@x.example"}],
            "members": [{"organization_id": 1, "user_id": 1, "role": "member"}],
            "teams": [],
            "projects": [],
            "project_teams": [],
        }
        run = start_relocation(target.engine, json.dumps(document).encode(), owner=OWNER)
        assert target.harness.run(run.id).status == "succeeded"
        target.harness.run_all()
    finally:
        controller.stop()
    received = sorted((str(m["To"]), str(m["Subject"])) for m in inbox.messages)
    assert received == [
        ("ann@x.example", "Claim your account"),
        (OWNER, "Your relocation has started"),
        (OWNER, "Your relocation is complete"),
    ]


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_large_export_relocates_in_bounded_memory(
    make_target: TargetFactory, keys: Keys, tmp_path: Path, database_url: str
) -> None:
    """10,000 users in 100,000+ rows relocate record for record; the import holds a batch,
    not the file."""
    source_url = f"sqlite:///{tmp_path / 'big-source.db'}"
    migrate(source_url)
    slugs = build_sample(
        source_url,
        SampleShape(
            orgs=10,
            users=10_000,
            orgs_per_user=3,
            teams_per_org=500,
            projects_per_org=1500,
            teams_per_project=3,
            slug_prefix="big",
        ),
    )
    export = io.BytesIO()
    counts = export_organizations(source_url, slugs, export, public_key=keys.public_key())
    assert counts["users"] == 10_000
    assert sum(counts.values()) >= 100_000
    target = make_target(limits=Limits(max_users=20_000, max_file_bytes=50_000_000))
    run = start_relocation(target.engine, export.getvalue(), owner=OWNER)
    while target.engine.get(run.id).state != "importing":  # up to the sandbox validation
        assert target.harness.step() is not None
    tracemalloc.start()
    while target.engine.get(run.id).state == "importing":
        target.harness.step()
    _, import_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert target.harness.run(run.id).status == "succeeded"
    moved = snapshot(database_url, slugs)
    moved["members"] = {m for m in moved["members"] if m[1] != "owner"}
    moved["users"] = {u for u in moved["users"] if u[0] != "owner"}
    assert moved == snapshot(source_url)
    # reading the whole document at once would hold every record; the import holds a batch
    tracemalloc.start()
    from statewright.workflows.relocation.format import plaintext

    document = json.loads(
        b"".join(plaintext(export.getvalue(), target.config.private_key, target.config.limits))
    )
    _, whole_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del document
    print(f"import peak {import_peak:,} B; whole document {whole_peak:,} B")
    assert import_peak < whole_peak / 2, (import_peak, whole_peak)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "statewright"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.long
def test_cli_keys_export_and_start(tmp_path: Path, source_url: str) -> None:
    """keys generate, relocation export --encrypt-to and relocation start --wait work together."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'target.db'}",
        "STATEWRIGHT_RELOCATION_PRIVATE_KEY": str(tmp_path / "keys" / "private.pem"),
        "STATEWRIGHT_EMAIL_BACKEND": f"file:{tmp_path / 'mail'}",
        "STATEWRIGHT_RELOCATION_VALIDATION_INTERVAL": "1",
    }
    env.pop("STATEWRIGHT_BROKER_URL", None)
    made = cli("keys", "generate", "--out", str(tmp_path / "keys"), "--bits", "2048", env=env)
    assert made.returncode == 0, made.stderr
    assert "fingerprint:" in made.stdout
    again = cli("keys", "generate", "--out", str(tmp_path / "keys"), env=env)
    assert again.returncode == 1
    assert "refusing to overwrite a key" in again.stderr
    export = tmp_path / "org-1.swr"
    exported = cli(
        "relocation",
        "export",
        "--org",
        "org-1",
        "--from",
        source_url,
        "-o",
        str(export),
        "--encrypt-to",
        str(tmp_path / "keys" / "public.pem"),
        env=env,
    )
    assert exported.returncode == 0, exported.stderr
    missing = cli(
        "relocation",
        "export",
        "--org",
        "nope",
        "--from",
        source_url,
        "-o",
        str(tmp_path / "x.swr"),
        env=env,
    )
    assert missing.returncode == 1
    assert "organization 'nope' is not in the source database; it has: org-1" in missing.stderr
    assert cli("migrate", env=env).returncode == 0
    no_owner = cli("relocation", "start", str(export), "--owner", "who@x", env=env)
    assert no_owner.returncode == 1
    assert "no user with email 'who@x' exists" in no_owner.stderr
    _add_owner(env["STATEWRIGHT_DATABASE_URL"])
    started = cli("relocation", "start", str(export), "--owner", OWNER, "--wait", "--json", env=env)
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert (run["status"], run["state"]) == ("succeeded", "completed")
    assert "notifying" in started.stderr  # the live per-state view
    failing = tmp_path / "broken.swr"
    failing.write_bytes(b"garbage")
    failed = cli("relocation", "start", str(failing), "--owner", OWNER, "--wait", env=env)
    assert failed.returncode == 1
    assert "The export is not valid JSON" in failed.stdout


def _add_owner(url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, insert

    from statewright.models import User

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(User).values(
                username="owner", email=OWNER, name="Owner", created_at=datetime.now(UTC)
            )
        )
    engine.dispose()


def test_target_fixture_is_isolated(target: Target) -> None:
    """Each test starts from an installation holding only its owner."""
    from statewright.models import Organization, User

    assert target.count(Organization) == 0
    assert target.count(User) == 1
