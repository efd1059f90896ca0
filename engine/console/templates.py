"""Jinja2 templates with every value escaped (autoescape is on for every template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from statewright.console.pages import span, when

TEMPLATES = Path(__file__).parent / "templates"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _query(values: dict[str, str], **changes: str | None) -> str:
    merged = {**values, **changes}
    return urlencode({k: v for k, v in merged.items() if v})


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, span=span, pretty=_pretty, compact=_compact)
    env.globals.update(query=_query)
    return env
