"""``statewright demo``: a relocation end to end on the embedded default.

Builds a sample source installation, exports it encrypted, relocates it into an
embedded target (SQLite and an in-process worker), follows it state by state and
prints what arrived, how long each state took, and writes the run's diagram.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select

from statewright.api import Engine
from statewright.config import Settings
from statewright.console import ConsoleServer
from statewright.diagrams import mermaid
from statewright.embedded import EmbeddedWorker
from statewright.migrate import upgrade
from statewright.models import Organization, OrganizationMember, Project, ProjectTeam, Team, User
from statewright.models.relocation import RelocationEmail
from statewright.progress import follow, follow_tasks, state_times
from statewright.workflows.relocation import Relocation, RelocationConfig, start_relocation
from statewright.workflows.relocation.crypto import generate_keypair, load_public_key
from statewright.workflows.relocation.exporter import export_organizations
from statewright.workflows.relocation.sample import SampleShape, build_sample

TABLES = {
    "organizations": Organization,
    "users": User,
    "members": OrganizationMember,
    "teams": Team,
    "projects": Project,
    "project_teams": ProjectTeam,
}
OWNER = "owner@target.example"


def run_demo(
    console: Console, *, orgs: int, users: int, workdir: Path, web_port: int | None = None
) -> int:
    """Relocate a sample installation; 0 if the run succeeded.

    With ``web_port``, the console serves the target on that port while the relocation
    runs, and goes on serving until interrupted.
    """
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    source_url = f"sqlite:///{workdir / 'source.db'}"
    target_url = f"sqlite:///{workdir / 'target.db'}"
    console.rule("1. a source installation")
    upgrade(source_url)
    slugs = build_sample(source_url, SampleShape(orgs=orgs, users=users, orgs_per_user=2))
    console.print(f"{source_url}: {orgs} organizations, {users} users")
    console.rule("2. an encrypted export")
    private, public = generate_keypair(workdir / "keys")
    export = workdir / "export.swr"
    with export.open("wb") as handle:
        counts = export_organizations(
            source_url, slugs, handle, public_key=load_public_key(public.read_bytes())
        )
    console.print(
        f"{export} ({export.stat().st_size:,} bytes, gzip + RSA-OAEP/AES-256-GCM): "
        + ", ".join(f"{n} {section}" for section, n in counts.items())
    )
    console.rule("3. relocating into the target")
    upgrade(target_url)
    engine = Engine(
        Settings(database_url=target_url),
        [
            Relocation(
                RelocationConfig(
                    private_key_path=private,
                    email_backend=f"file:{workdir / 'mail'}",
                    validation_interval=timedelta(seconds=0.2),
                )
            )
        ],
    )
    with engine.db.transaction() as session:
        session.add(User(username="owner", email=OWNER, name="Owner", created_at=datetime.now(UTC)))
    server = ConsoleServer(engine, port=web_port).start() if web_port is not None else None
    with EmbeddedWorker(engine):
        info = start_relocation(engine, export, owner=OWNER)
        if server is not None:
            console.print(f"watch it in the browser: {server.url}/runs/{info.id}")
        info = follow(engine, info, console)
        follow_tasks(engine, info.id, console)
    console.print()
    _summary(console, engine, info.id, source_url, workdir)
    if server is None:
        console.print(
            f"to browse it: STATEWRIGHT_DATABASE_URL={target_url} statewright web "
            "(or `make demo WEB=1`), then open http://127.0.0.1:8080"
        )
    else:
        console.print(f"console on {server.url}/runs/{info.id} until Ctrl-C")
        _serve_until_interrupted(server)
    engine.close()
    return 0 if info.status == "succeeded" else 1


def _serve_until_interrupted(server: ConsoleServer) -> None:
    try:
        while server.server.started and not server.server.should_exit:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _summary(console: Console, engine: Engine, run_id: str, source_url: str, workdir: Path) -> None:
    info = engine.get(run_id)
    history = engine.history(run_id)
    rows = Table("table", "source", "target", title="rows")
    source = create_engine(source_url)
    with source.connect() as src, engine.db.reads() as dst:
        for name, model in TABLES.items():
            count = select(func.count()).select_from(model)
            rows.add_row(name, str(src.execute(count).scalar()), str(dst.execute(count).scalar()))
    source.dispose()
    console.print(rows)
    times = Table("state", "time", title="time per state")
    spent = state_times(history, info.finished_at or engine.clock.now())
    for state in engine.registry.get("relocation").steps:
        times.add_row(state, f"{spent.get(state, timedelta()).total_seconds():.3f}s")
    console.print(times)
    diagram = workdir / "relocation-run.mmd"
    diagram.write_text(mermaid(engine.registry.get("relocation"), info, history))
    mails = sorted((workdir / "mail").glob("*.eml")) if (workdir / "mail").exists() else []
    console.print(
        f"run {run_id}: [bold]{info.status}[/bold]"
        + (f" — {info.failure_reason}" if info.failure_reason else "")
    )
    sent, unsent = _email_counts(engine)
    console.print(
        f"{sent} emails sent ({len(mails)} in {workdir / 'mail'}), {unsent} not sent; "
        f"diagram: {diagram}"
    )


def _email_counts(engine: Engine) -> tuple[int, int]:
    """Emails of the relocation that were sent, and those still unsent."""
    with engine.db.reads() as session:
        rows = session.execute(
            select(RelocationEmail.sent_at.is_not(None), func.count()).group_by(
                RelocationEmail.sent_at.is_not(None)
            )
        ).all()
    counts = {bool(sent): int(n) for sent, n in rows}
    return counts.get(True, 0), counts.get(False, 0)
