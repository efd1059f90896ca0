"""Serving the console with uvicorn: in the foreground, or in a thread beside a demo."""

from __future__ import annotations

import threading
import time

import uvicorn

from statewright.api import Engine
from statewright.console.app import create_app
from statewright.console.auth import Access, is_loopback
from statewright.errors import ConfigurationError, StatewrightError


def access_for(engine: Engine, host: str) -> Access:
    """The console's access rules for listening on ``host``.

    Beyond loopback every page needs credentials, so listening there without any
    configured is refused rather than serving a console nobody can open.
    """
    access = Access(
        token=engine.settings.console_token,
        user=engine.settings.console_user,
        loopback=is_loopback(host),
    )
    if not access.loopback and not access.can_operate:
        raise ConfigurationError(
            f"listening on {host!r} (beyond loopback) needs credentials: set "
            "STATEWRIGHT_CONSOLE_TOKEN or STATEWRIGHT_CONSOLE_USER=name:password, or listen "
            "on 127.0.0.1"
        )
    return access


#: Seconds a stopping console gives open requests (a live event stream never finishes).
SHUTDOWN_GRACE = 2


class ConsoleServer:
    """A uvicorn server for ``engine``'s console."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        app = create_app(engine, access_for(engine, host))
        # a run page's live event stream never ends by itself: on SIGTERM or Ctrl-C, give
        # requests this long, then close the streams (browsers reconnect to the next server)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self.server.run()

    def start(self, *, timeout: float = 10.0) -> ConsoleServer:
        """Serve in a background thread; returns once the port is open."""
        self._thread = threading.Thread(target=self.server.run, name="statewright-console")
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StatewrightError(f"the console did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
