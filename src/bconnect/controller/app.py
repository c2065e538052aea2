"""The controller's ASGI application (FastAPI), assembled from one router per collection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bconnect import __version__, clusterwire
from bconnect.controller import errors
from bconnect.controller.jobs import job_loop
from bconnect.controller.passwords import PasswordChecker
from bconnect.controller.routes.cluster import CLUSTER_AUTH, cluster_auth
from bconnect.controller.settings import Settings
from bconnect.controller.storage.db import database_unreachable, error_line
from bconnect.controller.throttle import LoginThrottle, TokenBucket

log = logging.getLogger(__name__)

#: The ASGI scope key the cluster listener's server sets (see :func:`on_cluster_listener`).
CLUSTER_LISTENER = "bconnect.cluster_listener"
#: How a caller proves who they are: ``Authorization: Bearer at_…`` (the token from
#: ``:authenticate``). Every operation also answers without one, as the anonymous user
#: ``u_anon``, within whatever the grants give it (docs/permissions.md).
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An auth token from `POST /v1/auth-methods/{id}:authenticate`.",
    }
}


def _op(request: Request) -> str:
    route = request.scope.get("route")
    name = getattr(route, "name", "") or ""
    return f"controller.api.{name}" if name else ""


class RequestShape:
    """ASGI middleware: ``/v1/cluster`` only on the cluster listener and only with a
    worker's credential or the shared worker key (:func:`cluster_auth`); bodies are
    JSON whatever their Content-Type (as in Boundary, so ``curl -d`` works), and no body
    may exceed ``max_body_bytes``: counted as it arrives, so a chunked upload without
    Content-Length is cut off too."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, settings: Settings) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The cluster API lives on the cluster listener only, and nothing else does.
        on_cluster = bool(scope.get(CLUSTER_LISTENER))
        if on_cluster != scope["path"].startswith(f"{clusterwire.PREFIX}/"):
            body = errors.not_found(scope["path"]).body()
            await JSONResponse(body, status_code=404)(scope, receive, send)
            return
        if on_cluster:
            auth = cluster_auth(self.settings, scope)
            if auth is None:
                message = "A valid worker credential or worker auth key is required."
                body = errors.Unauthenticated(message).body()
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
            scope = {**scope, CLUSTER_AUTH: auth}
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # PostgreSQL cannot compare text with a NUL in it (a 500); nothing has one
            body = errors.invalid_field("id", "Must not contain NUL characters.").body()
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        limit = self.max_body_bytes
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = errors.PayloadTooLarge("Request body too large.").body()
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        if scope["method"] in ("POST", "PATCH", "PUT"):
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, "Request body too large.")
            return message

        await self.app(scope, limited, send)


ERROR_RESPONSES = {
    "400": "InvalidArgument: a field is wrong (details.request_fields names it)",
    "401": "Unauthenticated: no, expired or revoked token where one is needed",
    "403": "PermissionDenied: the caller's grants do not allow this",
    "404": "NotFound: no such resource",
    "413": "Request body larger than the limit",
    "429": "ResourceExhausted: too many failed logins from this address (Retry-After)",
    "503": "Unavailable: the database cannot be reached right now; retry shortly",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the controller really sends: errors use
    Boundary's body with 400/401/403/404 (never FastAPI's 422); every operation takes
    an optional bearer token (without one the caller is the anonymous user)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    from bconnect.controller.models import ErrorBody

    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in error_schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["Error"] = error_schema
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = [{"bearerAuth": []}, {}]
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path in doc.get("paths", {}).values():
        for op in path.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for code, text in ERROR_RESPONSES.items():
                responses.setdefault(code, {"description": text, **ref})
    app.openapi_schema = doc
    return doc


def on_cluster_listener(app: ASGIApp) -> ASGIApp:
    """What the cluster listener serves: the cluster API alone (:func:`cluster_app`) of
    the API's ``app`` (found under the API listener's own middleware), its requests
    marked, so that the cluster API answers there and only there (whatever the
    addresses and ports)."""
    api = app
    while not isinstance(api, FastAPI):
        api = api.app  # type: ignore[attr-defined]  # an ASGI middleware's wrapped app
    lean = cluster_app(api)

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        await lean({**scope, CLUSTER_LISTENER: True}, receive, send)

    return marked


def cluster_app(app: FastAPI) -> FastAPI:
    """The cluster API's routes alone, sharing ``app``'s state (settings, database,
    threads), with the same error bodies and request checks: a worker's call, on a
    connection's path, is matched among a dozen routes instead of the whole API's."""
    from bconnect.controller.routes.cluster import router

    lean = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    lean.state = app.state
    lean.include_router(router)
    _install_error_handlers(lean)
    settings: Settings = app.state.settings
    lean.add_middleware(RequestShape, max_body_bytes=settings.max_body_bytes, settings=settings)
    return lean


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    from bconnect.controller.routes import ROUTERS

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(job_loop(engine, settings))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            _app.state.password_checker.close()
            _app.state.cluster_executor.shutdown(wait=False)

    app = FastAPI(
        lifespan=lifespan,
        title="bconnect controller API",
        version=__version__,
        description="Boundary-compatible controller API (see docs/protocol.md §1).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.login_throttle = LoginThrottle(
        attempts=TokenBucket(rate=settings.login_rate, burst=settings.login_burst)
    )
    app.state.password_checker = PasswordChecker(
        settings.password_hash_workers, settings.password_hash_backlog
    )
    # the cluster API's handlers run here, never behind the public API's (routes/cluster)
    app.state.cluster_executor = ThreadPoolExecutor(
        settings.cluster_threads, thread_name_prefix="cluster"
    )
    for router in ROUTERS:
        app.include_router(router)
    # the admin console's pages, at / (the API stays under /v1/)
    from bconnect.controller.console import router as console_router

    app.include_router(console_router)
    _install_error_handlers(app)
    app.add_middleware(RequestShape, max_body_bytes=settings.max_body_bytes, settings=settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Boundary's error bodies for every failure (never FastAPI's own)."""

    @app.exception_handler(errors.ApiException)
    async def _api_error(request: Request, exc: errors.ApiException) -> JSONResponse:
        return JSONResponse(exc.body(_op(request)), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            name = ".".join(loc) or "body"
            fields.setdefault(name, str(err.get("msg", "invalid value")))
        body = errors.InvalidArgument("Errors in provided fields.", fields=fields)
        return JSONResponse(body.body(_op(request)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthenticated"}
        if exc.status_code >= 500:
            kinds[exc.status_code] = "Internal"
        body = {
            "kind": kinds.get(exc.status_code, "InvalidArgument"),
            "op": _op(request),
            "message": str(exc.detail),
        }
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not database_unreachable(exc):
            return await _internal(request, exc)
        log.warning(
            "database unavailable serving %s %s: %s",
            request.method,
            request.url.path,
            error_line(exc),
        )
        body = errors.Unavailable("The database is unavailable; retry shortly.").body(_op(request))
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error serving %s %s", request.method, request.url.path)
        body = errors.Internal("Internal error.").body(_op(request))
        return JSONResponse(body, status_code=500)
