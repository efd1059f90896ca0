"""Silo modes: where a task may be called and run."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from statewright.errors import ConfigurationError, SiloLimitError


class SiloMode(enum.StrEnum):
    """The part of a split deployment a process belongs to."""

    MONOLITH = "monolith"
    CONTROL = "control"
    REGION = "region"

    @classmethod
    def parse(cls, value: str) -> SiloMode:
        """Read a silo mode from text, naming the allowed values on failure."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ConfigurationError(f"unknown silo mode {value!r}; allowed: {allowed}") from None


def normalize_modes(
    modes: SiloMode | Iterable[SiloMode] | None,
) -> frozenset[SiloMode] | None:
    """A task's allowed modes as a set; ``None`` means anywhere."""
    if modes is None:
        return None
    if isinstance(modes, SiloMode):
        return frozenset({modes})
    return frozenset(modes)


def check_silo(task_name: str, allowed: frozenset[SiloMode] | None, current: SiloMode) -> None:
    """Raise ``SiloLimitError`` if a task limited to ``allowed`` may not run in ``current``.

    A monolith runs everything; so does a task with no limit.
    """
    if allowed is None or current is SiloMode.MONOLITH or current in allowed:
        return
    names = ", ".join(sorted(m.value for m in allowed))
    raise SiloLimitError(
        f"task {task_name!r} may run only in silo mode {names}; this process runs in "
        f"{current.value!r} (set by Settings.silo_mode / STATEWRIGHT_SILO_MODE)"
    )


def silo_queue(default: str, modes: frozenset[SiloMode] | None) -> str:
    """The queue of a task that names none: ``<default>.<mode>`` for a task limited to
    one silo (control or region), so only that silo's workers consume it; ``default``
    for a task that may run anywhere."""
    if modes is None or len(modes) != 1:
        return default
    (mode,) = modes
    return default if mode is SiloMode.MONOLITH else f"{default}.{mode.value}"
