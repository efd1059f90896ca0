"""The console's ASGI application: routes, page rendering and operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from statewright.api import Engine
from statewright.console.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    REALM,
    Access,
    AccessDeniedError,
    csrf_token,
)
from statewright.console.events import run_events
from statewright.console.operations import IRREVERSIBLE, OperationRequest, perform
from statewright.console.pages import run_view, runs_view, workflow_view
from statewright.console.templates import environment
from statewright.diagrams import render
from statewright.errors import (
    IllegalOperationError,
    RunNotFoundError,
    StatewrightError,
    UnknownWorkflowError,
)

STATIC = Path(__file__).parent / "static"
#: No inline script or style, nothing from elsewhere: a value that slipped through
#: escaping still could not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"

Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """The console's request handlers for one engine; ``access`` says who may do what."""

    def __init__(self, engine: Engine, access: Access, *, interval: float = 1.0) -> None:
        self.engine = engine
        self.access = access
        #: Seconds between looks at a run for its page's live updates.
        self.interval = interval
        self.templates = environment()

    def routes(self) -> list[BaseRoute]:
        read = self.reader
        return [
            Route("/", lambda request: RedirectResponse("/runs")),
            Route("/runs", read(self.runs)),
            Route("/runs/{run_id}", read(self.run)),
            Route("/runs/{run_id}/diagram.svg", read(self.run_diagram)),
            Route("/runs/{run_id}/events", self.events),
            Route("/runs/{run_id}/{operation}", self.operate, methods=["POST"]),
            Route("/workflows", read(self.workflows)),
            Route("/workflows/{name}", read(self.workflow)),
            Route("/workflows/{name}/diagram.svg", read(self.workflow_diagram)),
            Route("/login", read(self.login)),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    # -- rendering and refusing --------------------------------------------------

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        """A rendered template; sets the form-token cookie on a browser's first page."""
        token, new = csrf_token(request)
        html = self.templates.get_template(name).render(
            request=request, csrf=token, csrf_field=CSRF_FIELD, access=self.access, **values
        )
        response = HTMLResponse(html, status_code=status)
        if new:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    def message(self, request: Request, error: StatewrightError) -> Response:
        if isinstance(error, RunNotFoundError | UnknownWorkflowError):
            return self.page(request, "message.html", 404, title="Not found", message=str(error))
        return self.page(request, "message.html", 400, title="Refused", message=str(error))

    def refused(self, denied: AccessDeniedError) -> Response:
        html = self.templates.get_template("denied.html").render(
            message=str(denied), sign_in=denied.sign_in
        )
        headers = {"WWW-Authenticate": REALM} if denied.challenge else {}
        return HTMLResponse(html, status_code=denied.status, headers=headers)

    def reader(self, handler: Callable[[Request], Response]) -> Handler:
        """An endpoint that checks read access, then runs ``handler`` off the event loop."""

        async def endpoint(request: Request) -> Response:
            try:
                self.access.check_read(request)
                return await run_in_threadpool(handler, request)
            except AccessDeniedError as denied:
                return self.refused(denied)
            except StatewrightError as error:
                return self.message(request, error)

        return endpoint

    # -- pages ---------------------------------------------------------------------

    def runs(self, request: Request) -> Response:
        view = runs_view(self.engine, dict(request.query_params))
        partial = request.query_params.get("partial") == "1"
        return self.page(request, "runs_rows.html" if partial else "runs.html", view=view)

    def run(self, request: Request) -> Response:
        view = run_view(self.engine, request.path_params["run_id"])
        partial = request.query_params.get("partial") == "1"
        return self.page(
            request,
            "run_live.html" if partial else "run.html",
            view=view,
            notice=request.query_params.get("done"),
            error=None,
            irreversible=IRREVERSIBLE,
        )

    def run_diagram(self, request: Request) -> Response:
        info = self.engine.get(request.path_params["run_id"])
        definition = self.engine.registry.get(info.workflow)
        return _svg(render(definition, "svg", run=info, history=self.engine.history(info.id)))

    def workflows(self, request: Request) -> Response:
        names = sorted(self.engine.registry.definitions)
        views = [workflow_view(self.engine, name) for name in names]
        return self.page(request, "workflows.html", views=views)

    def workflow(self, request: Request) -> Response:
        view = workflow_view(self.engine, request.path_params["name"])
        return self.page(request, "workflow.html", view=view)

    def workflow_diagram(self, request: Request) -> Response:
        return _svg(render(self.engine.registry.get(request.path_params["name"]), "svg"))

    def login(self, request: Request) -> Response:
        if self.access.who(request) is None:
            raise AccessDeniedError(401, "Sign in to operate runs.", challenge=True)
        return RedirectResponse("/runs", status_code=303)

    async def events(self, request: Request) -> Response:
        try:
            self.access.check_read(request)
        except AccessDeniedError as denied:
            return self.refused(denied)
        run_id = request.path_params["run_id"]
        stream = run_events(request, lambda: self.engine.get(run_id), interval=self.interval)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    # -- operations ----------------------------------------------------------------

    async def operate(self, request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            who = self.access.check_operate(request, fields.get(CSRF_FIELD))
        except AccessDeniedError as denied:
            return self.refused(denied)
        params = request.path_params
        wanted = OperationRequest(params["run_id"], params["operation"], fields, who)
        return await run_in_threadpool(self.operation_result, request, wanted)

    def operation_result(self, request: Request, wanted: OperationRequest) -> Response:
        """Ask first for what cannot be undone; then do it, or show the engine's refusal."""
        try:
            if wanted.name in IRREVERSIBLE and wanted.fields.get("confirm") != "yes":
                view = run_view(self.engine, wanted.run_id)
                return self.page(request, "confirm.html", view=view, wanted=wanted)
            perform(self.engine, wanted)
        except RunNotFoundError as error:
            return self.message(request, error)
        except StatewrightError as error:
            return self.page(
                request,
                "run.html",
                _status_of(error),
                view=run_view(self.engine, wanted.run_id),
                notice=None,
                error=str(error),
                irreversible=IRREVERSIBLE,
            )
        return RedirectResponse(f"/runs/{wanted.run_id}?done={wanted.name}", status_code=303)


def create_app(engine: Engine, access: Access, *, interval: float = 1.0) -> Starlette:
    """The console for ``engine``; ``access`` says who may read and operate."""
    console = Console(engine, access, interval=interval)
    app = Starlette(routes=console.routes())
    app.add_middleware(_SecurityHeaders)
    return app


def _status_of(error: StatewrightError) -> int:
    return 409 if isinstance(error, IllegalOperationError) else 400


def _svg(data: bytes) -> Response:
    return Response(data, media_type="image/svg+xml", headers={"Content-Security-Policy": SVG_CSP})


class _SecurityHeaders:
    """Headers on every response: no framing, no sniffing, the page's own scripts only."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"content-security-policy": CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin",
                    b"x-frame-options": b"DENY",
                }
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
