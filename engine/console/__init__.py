"""The operator console: runs, timelines, live diagrams and operations in a browser.

Server-rendered pages (Starlette, Jinja2 with autoescape) served by uvicorn, reading
and operating through the engine's own query and operation functions.
"""

from __future__ import annotations

from statewright.console.app import create_app
from statewright.console.auth import Access, is_loopback
from statewright.console.server import ConsoleServer, access_for

__all__ = ["Access", "ConsoleServer", "access_for", "create_app", "is_loopback"]
