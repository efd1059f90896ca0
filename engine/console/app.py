"""The console's ASGI application: routes, page rendering and operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from engine.api import Engine
from engine.console.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    REALM,
    Access,
    AccessDeniedError,
    csrf_token,
)
from engine.console.events import run_events
from engine.console.operations import IRREVERSIBLE, OperationRequest, perform
from engine.console.pages import run_view, runs_view, workflow_view
from engine.console.templates import environment
from engine.diagrams import render
from engine.errors import (
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


@dataclass(frozen=True, slots=True)
class Console:
    """Everything a request handler needs."""

    engine: Engine
    access: Access
    #: Seconds between looks at a run for its page's live updates.
    interval: float = 1.0


def create_app(engine: Engine, access: Access, *, interval: float = 1.0) -> Starlette:
    """The console for ``engine``; ``access`` says who may read and operate."""
    console = Console(engine, access, interval)
    templates = environment()

    def page(request: Request, name: str, status: int = 200, **values: Any) -> Response:
        token, new = csrf_token(request)
        html = templates.get_template(name).render(
            request=request, csrf=token, csrf_field=CSRF_FIELD, access=access, **values
        )
        response = HTMLResponse(html, status_code=status)
        if new:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    def reader(handler: Callable[[Request], Response]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                access.check_read(request)
                return await run_in_threadpool(handler, request)
            except AccessDeniedError as denied:
                return refused(denied)
            except RunNotFoundError as error:
                return page(request, "message.html", 404, title="Not found", message=str(error))
            except UnknownWorkflowError as error:
                return page(request, "message.html", 404, title="Not found", message=str(error))
            except StatewrightError as error:
                return page(request, "message.html", 400, title="Refused", message=str(error))

        return endpoint

    def refused(denied: AccessDeniedError) -> Response:
        html = templates.get_template("denied.html").render(
            message=str(denied), sign_in=denied.sign_in
        )
        headers = {"WWW-Authenticate": REALM} if denied.challenge else {}
        return HTMLResponse(html, status_code=denied.status, headers=headers)

    def runs(request: Request) -> Response:
        view = runs_view(engine, dict(request.query_params))
        partial = request.query_params.get("partial") == "1"
        return page(request, "runs_rows.html" if partial else "runs.html", view=view)

    def run(request: Request) -> Response:
        view = run_view(engine, request.path_params["run_id"])
        partial = request.query_params.get("partial") == "1"
        name = "run_live.html" if partial else "run.html"
        notice = request.query_params.get("done")
        return page(request, name, view=view, notice=notice, error=None, irreversible=IRREVERSIBLE)

    def run_diagram(request: Request) -> Response:
        info = engine.get(request.path_params["run_id"])
        definition = engine.registry.get(info.workflow)
        svg = render(definition, "svg", run=info, history=engine.history(info.id))
        return _svg(svg)

    def workflows(request: Request) -> Response:
        views = [workflow_view(engine, name) for name in sorted(engine.registry.definitions)]
        return page(request, "workflows.html", views=views)

    def workflow(request: Request) -> Response:
        view = workflow_view(engine, request.path_params["name"])
        return page(request, "workflow.html", view=view)

    def workflow_diagram(request: Request) -> Response:
        return _svg(render(engine.registry.get(request.path_params["name"]), "svg"))

    async def events(request: Request) -> Response:
        try:
            access.check_read(request)
        except AccessDeniedError as denied:
            return refused(denied)
        run_id = request.path_params["run_id"]
        stream = run_events(request, lambda: engine.get(run_id), interval=console.interval)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def operate(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        name = request.path_params["operation"]
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            who = access.check_operate(request, fields.get(CSRF_FIELD))
        except AccessDeniedError as denied:
            return refused(denied)
        wanted = OperationRequest(run_id, name, fields, who)
        return await run_in_threadpool(operation_result, request, wanted)

    def operation_result(request: Request, wanted: OperationRequest) -> Response:
        try:
            if wanted.name in IRREVERSIBLE and wanted.fields.get("confirm") != "yes":
                view = run_view(engine, wanted.run_id)
                return page(request, "confirm.html", view=view, wanted=wanted)
            perform(engine, wanted)
        except StatewrightError as error:
            status = _status_of(error)
            if isinstance(error, RunNotFoundError):
                return page(request, "message.html", 404, title="Not found", message=str(error))
            view = run_view(engine, wanted.run_id)
            return page(
                request,
                "run.html",
                status,
                view=view,
                notice=None,
                error=str(error),
                irreversible=IRREVERSIBLE,
            )
        return RedirectResponse(f"/runs/{wanted.run_id}?done={wanted.name}", status_code=303)

    def login(request: Request) -> Response:
        if access.who(request) is None:
            raise AccessDeniedError(401, "Sign in to operate runs.", challenge=True)
        return RedirectResponse("/runs", status_code=303)

    routes = [
        Route("/", lambda request: RedirectResponse("/runs")),
        Route("/runs", reader(runs)),
        Route("/runs/{run_id}", reader(run)),
        Route("/runs/{run_id}/diagram.svg", reader(run_diagram)),
        Route("/runs/{run_id}/events", events),
        Route("/runs/{run_id}/{operation}", operate, methods=["POST"]),
        Route("/workflows", reader(workflows)),
        Route("/workflows/{name}", reader(workflow)),
        Route("/workflows/{name}/diagram.svg", reader(workflow_diagram)),
        Route("/login", reader(login)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_SecurityHeaders)
    app.state.console = console
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
