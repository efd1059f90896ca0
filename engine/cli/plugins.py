"""Commands that packages add to ``statewright``, through the ``statewright.cli`` entry
point group.

A workflow package lists its commands in its ``pyproject.toml``; the entry point's name
is the command's name, and it names either a ``typer.Typer`` (a group of commands) or a
command function::

    [project.entry-points."statewright.cli"]
    relocation = "statewright.workflows.relocation.cli:relocation_app"
    demo = "statewright.workflows.relocation.cli:demo"

The engine's own commands import no workflow. A plugin that does not load (an import
error, a wrong target, a name a built-in command has) costs only its own command: that
command answers with one line naming the entry point and what went wrong, and every
other command works as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import typer

from statewright.cli.common import err, fail

GROUP = "statewright.cli"


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """An entry point of ``statewright.cli`` that added no command, and why."""

    name: str
    value: str
    reason: str
    #: Left out, rather than replaced by a command that reports it.
    left_out: bool = False

    def __str__(self) -> str:
        return f"the {GROUP} entry point {self.name} = {self.value!r} {self.reason}"


def add_plugin_commands(
    app: typer.Typer, found: Iterable[EntryPoint] | None = None
) -> list[PluginProblem]:
    """Add each command of ``found`` (default: the installed entry points) to ``app``.

    A plugin that fails to load is replaced by a command of its name that says so; a
    plugin whose name is taken is left out. Both are returned.
    """
    taken = _command_names(app)
    problems: list[PluginProblem] = []
    for point in sorted(entry_points(group=GROUP) if found is None else found, key=_by_name):
        if point.name in taken:
            reason = "is left out: a command has that name already"
            problems.append(PluginProblem(point.name, point.value, reason, left_out=True))
            continue
        problem = _add(app, point)
        if problem is not None:
            problems.append(problem)
            app.command(point.name, **_BROKEN_SETTINGS)(_broken_command(problem))
        taken.add(point.name)
    return problems


def _add(app: typer.Typer, point: EntryPoint) -> PluginProblem | None:
    try:
        target = point.load()
    except Exception as error:  # any failure to import is the plugin's, named below
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        return PluginProblem(point.name, point.value, f"did not load ({reason})")
    if isinstance(target, typer.Typer):
        app.add_typer(target, name=point.name)
    elif callable(target):
        app.command(point.name)(target)
    else:
        kind = type(target).__name__
        return PluginProblem(
            point.name,
            point.value,
            f"names a {kind}; allowed: a typer.Typer or a command function",
        )
    return None


_BROKEN_SETTINGS: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "add_help_option": False,
}


def _broken_command(problem: PluginProblem) -> Callable[[typer.Context], None]:
    def broken(ctx: typer.Context) -> None:
        fail(str(problem))

    broken.__doc__ = f"(not available: {problem})"
    return broken


def warn_problems(problems: Iterable[PluginProblem]) -> None:
    """One line on stderr for each plugin left out because its name is taken."""
    for problem in problems:
        if problem.left_out:
            err.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)


def _command_names(app: typer.Typer) -> set[str]:
    names = {info.name or _default_name(info.callback) for info in app.registered_commands}
    return names | {group.name for group in app.registered_groups if group.name}


def _default_name(callback: Callable[..., Any] | None) -> str:
    return "" if callback is None else callback.__name__.replace("_", "-")


def _by_name(point: EntryPoint) -> str:
    return point.name
