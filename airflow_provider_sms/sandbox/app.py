"""The sandbox ASGI app: three gateway APIs, the admin API and the fault-injecting middleware."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_sms.sandbox import smsgateway24, smstools, textboost
from airflow_provider_sms.sandbox.admin import create_admin_router
from airflow_provider_sms.sandbox.common import gateway_of, respond
from airflow_provider_sms.sandbox.config import SandboxConfig
from airflow_provider_sms.sandbox.faults import FaultInjector, connection_of, fault_body, retry_after_header
from airflow_provider_sms.sandbox.page import create_page_router
from airflow_provider_sms.sandbox.persistence import SqliteStore
from airflow_provider_sms.sandbox.state import SandboxState

log = logging.getLogger(__name__)

Classifier = Callable[[str, str], tuple[str, bool]]


class ConnectionDropped(Exception):
    """Raised after a response has started, so the ASGI server aborts the connection."""


class GatewayMiddleware:
    """Counts gateway requests per endpoint and injects the configured faults (pure ASGI, for speed)."""

    def __init__(
        self, app: ASGIApp, state: SandboxState, injector: FaultInjector, classify: Classifier
    ) -> None:
        self.app, self.state, self.injector, self.classify = app, state, injector, classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = gateway_of(scope["path"]) if scope["type"] == "http" else None
        if gateway is None:
            await self.app(scope, receive, send)
            return
        if scope["path"].endswith("/"):
            # A trailing slash is optional on every gateway path (SmsGateway24's clients use both);
            # stripping it here spares a redirect round trip and keeps the statistics per endpoint.
            path = scope["path"].rstrip("/")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        endpoint, creates_messages = self.classify(scope["method"], scope["path"])
        self.state.requests[(gateway, endpoint)] += 1
        decision = self.injector.decide(scope["path"], creates_messages)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.status is not None:
            headers = None
            if decision.status == 429:
                headers = {"Retry-After": retry_after_header(self.injector.config.retry_after)}
            await respond(fault_body(gateway, decision.status), decision.status, headers)(
                scope, receive, send
            )
        elif decision.drop:
            await self._commit_then_drop(scope, receive, send)
        else:
            await self._serve(gateway, scope, receive, send)

    async def _serve(self, gateway: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; a bug's exception becomes a 500 in the gateway's own envelope.

        Answered here rather than by an app-wide handler, which re-raises and so makes the server
        close the keep-alive connection under the client's next request.
        """
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:
                raise  # too late for an answer: let the server abort the response
            log.exception("sandbox error on %s %s", scope["method"], scope["path"])
            await respond(fault_body(gateway, 500), 500)(scope, receive, send)

    async def _commit_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request to the end (the message is stored), then close the connection unanswered."""

        async def discard(message: Message) -> None:
            return None

        await self.app(scope, receive, discard)
        transport = connection_of(scope)
        if transport is not None:
            transport.close()
            # Let the server notice the disconnect before we return, so it does not answer a 500.
            for _ in range(3):
                await asyncio.sleep(0)
            return
        # Served by another ASGI server: promise a body, then fail, so the server cuts the connection.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise ConnectionDropped("commit then drop: connection closed before the response")


def _make_classifier(routes: list[APIRoute]) -> Classifier:
    creating = smstools.CREATES_MESSAGES | smsgateway24.CREATES_MESSAGES | textboost.CREATES_MESSAGES

    @lru_cache(maxsize=4096)
    def classify(method: str, path: str) -> tuple[str, bool]:
        """("METHOD /route/template", creates messages) for a request path; cached (ids make few misses)."""
        for route in routes:
            if method in route.methods and route.path_regex.match(path):
                key = f"{method} {route.path.rstrip('/')}"
                return key, key in creating
        return f"{method} (no such endpoint)", False

    return classify


HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def api_page(schema: dict[str, Any]) -> str:
    """``/docs``: the endpoints of the OpenAPI description as one self-contained HTML page.

    Why not Swagger UI or ReDoc: FastAPI's pages load their scripts and styles from a CDN, so they
    are blank without internet, and no packaged bundle is installed. This page has no external
    asset; the full description is ``/openapi.json``.
    """
    sections: dict[str, list[str]] = {}
    for path, operations in schema.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["Sandbox"])[0]
            sections.setdefault(tag, []).append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation.get('summary') or '')}</td></tr>"
            )
    body = "".join(
        f"<h2>{html.escape(tag)}</h2><table><tr><th>method</th><th>path</th><th>what it does</th></tr>"
        f"{''.join(rows)}</table>"
        for tag, rows in sections.items()
    )
    info = schema.get("info", {})
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(info.get('title', ''))}: API</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"
        "</style></head><body>"
        f"<h1>{html.escape(info.get('title', ''))}</h1><p>{html.escape(info.get('description', ''))}</p>"
        '<p>The full machine-readable description: <a href="/openapi.json">/openapi.json</a>. '
        'Status page: <a href="/">/</a>.</p>'
        f"{body}</body></html>"
    )


async def _gateway_http_error(request: Request, exc: Exception) -> JSONResponse:
    """404/405 in the style of the gateway the path belongs to."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = {404: "Not found", 405: "Method not allowed"}.get(status, str(exc.detail))
    gateway = gateway_of(request.url.path)
    if gateway == "smstools":
        body: dict[str, Any] = {"error": status, "errorMsg": message}
    elif gateway == "smsgateway24":
        body = {"error": 1, "message": message}
    elif gateway == "textboost":
        body = {"status": "error", "message": message}
    else:
        body = {"detail": exc.detail}
    return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))


def _served(router: APIRouter) -> list[Route]:
    """The router's endpoints as plain Starlette routes, to be mounted under the gateway's prefix.

    Why: one Mount per API means a request is matched against its own gateway's routes only, and
    the endpoints take the ``Request`` and return a ``Response`` themselves, so FastAPI's
    per-request dependency solving is pure overhead. Together these were half the cost of a
    small request. The FastAPI routes still describe the API in ``/openapi.json`` and ``/docs``.
    """
    return [
        Route(route.path, route.endpoint, methods=sorted(route.methods))
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """A new sandbox app; with ``config.state_file`` it loads that file and keeps it up to date."""
    config = config or SandboxConfig()
    state = SandboxState(config)
    injector = FaultInjector(config.faults)
    store = SqliteStore(config.state_file) if config.state_file else None
    if store is not None:
        state.restore(*store.load())
        state.reserve_ids = store.reserve_ids

    saved_version = state.version
    save_lock = asyncio.Lock()

    async def save() -> None:
        nonlocal saved_version
        assert store is not None
        async with save_lock:
            if state.version == saved_version:
                return
            version = state.version
            batch = state.collect_changes()  # on the event loop: a consistent view
            try:
                await asyncio.to_thread(store.write, batch)
            except Exception:
                log.exception("could not save the sandbox state to %s", store.path)
                state.mark_all_dirty()
                return
            saved_version = version

    async def autosave() -> None:
        while True:
            await asyncio.sleep(config.save_interval)
            await save()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(autosave()) if store is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await save()

    app = FastAPI(
        title="SMS sandbox gateway",
        description="Smstools, SmsGateway24 and TextBoost APIs on one port, for tests, demos and benchmarks.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's Swagger UI and ReDoc load from a CDN: /docs is served below instead
        redoc_url=None,
    )
    app.state.sandbox = state
    app.state.faults = injector
    textboost_router = textboost.create_router(state)
    gateways = [
        (smstools.PREFIX, smstools.create_router(state)),
        (smsgateway24.PREFIX, smsgateway24.create_router(state)),
        *((prefix, textboost_router) for prefix in textboost.PREFIXES),
    ]
    described = APIRouter()
    for prefix, router in gateways:
        app.router.routes.append(Mount(prefix, routes=_served(router)))
        described.include_router(router, prefix=prefix)  # full paths, for /docs and request statistics
    app.include_router(create_admin_router(state, injector))
    app.include_router(create_page_router(state, injector))
    app.add_exception_handler(StarletteHTTPException, _gateway_http_error)
    gateway_routes = [route for route in described.routes if isinstance(route, APIRoute)]
    app.add_middleware(
        GatewayMiddleware, state=state, injector=injector, classify=_make_classifier(gateway_routes)
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = [*gateway_routes, *app.routes]
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=routes
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(api_page(app.openapi()))

    return app
