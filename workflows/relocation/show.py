"""``statewright relocation show`` as tables: the relocation, files, validations, emails."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table

from statewright.workflows.relocation.details import RelocationInfo


def print_relocation(console: Console, info: RelocationInfo) -> None:
    """Print ``info`` as one summary and a table each for files, validations and emails."""
    summary = Table(show_header=False, box=None, title="relocation", title_justify="left")
    for label, value in [
        ("run", info.run.id),
        ("status", f"{info.run.status} in {info.run.state}"),
        ("owner", info.owner),
        ("creator", info.creator),
        ("organizations", ", ".join(info.organizations) or "(all in the export)"),
        ("usernames", ", ".join(info.usernames) if info.usernames is not None else ""),
        ("retry of", info.retry_of or ""),
        ("failure", info.run.failure_reason or ""),
        ("created", _when(info.created_at)),
    ]:
        if value:
            summary.add_row(f"[bold]{label}[/bold]", value)
    console.print(summary)
    files = Table(
        "kind", "size", "stored", "sha256", "created", title="files", title_justify="left"
    )
    for f in info.files:
        files.add_row(f.kind, f"{f.size:,}", f"{f.stored:,}", f.sha256 or "", _when(f.created_at))
    console.print(files)
    title = f"validation: {info.validation_status or 'not started'}"
    validations = Table(
        "#", "status", "findings", "started", "finished", title=title, title_justify="left"
    )
    for a in info.validations:
        first = a.findings[0].get("problem", "") if a.findings else ""
        found = f"{len(a.findings)}: {first}" if a.findings else ""
        validations.add_row(
            str(a.number), a.status, found, _when(a.started_at), _when(a.finished_at)
        )
    console.print(validations)
    emails = Table("kind", "to", "subject", "written", "sent", title="emails", title_justify="left")
    for e in info.emails:
        sent = _when(e.sent_at) if e.sent else "[yellow]not yet[/yellow]"
        emails.add_row(e.kind, e.recipient, e.subject, _when(e.created_at), sent)
    console.print(emails)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""
