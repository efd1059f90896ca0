"""``statewright doctor``: what is wrong with this installation, and what fixes it."""

from __future__ import annotations

import typer
from rich.table import Table

from statewright.cli.common import JsonFlag, engine_without_database, out, print_json

MARKS = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "problem": "[red]problem[/]"}


def doctor(as_json: JsonFlag = False) -> None:
    """Check the database and its migrations, the broker, the relay and the workers.

    Prints each finding with the command that fixes it; exits 1 if any is a problem.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright doctor
    """
    from statewright.doctor import run_checks

    engine = engine_without_database()
    try:
        found = run_checks(engine)
    finally:
        engine.close()
    if as_json:
        print_json([c.to_json() for c in found])
    else:
        table = Table("check", "", "detail", "fix")
        table.columns[3].style = "bold"
        for c in found:
            table.add_row(c.name, MARKS[c.outcome], c.detail, c.fix)
        out.print(table)
    if any(c.outcome == "problem" for c in found):
        raise typer.Exit(1)
