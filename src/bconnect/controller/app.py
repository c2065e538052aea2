"""The controller's ASGI application (FastAPI), assembled from one router per collection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from bconnect import __version__
from bconnect.controller import errors
from bconnect.controller.context import Ctx, make_ctx
from bconnect.controller.jobs import job_loop
from bconnect.controller.settings import Settings

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer at_…")


@contextmanager
def transaction(request: Request) -> Iterator[Ctx]:
    """One database transaction per request, with the caller resolved and their ACL built."""
    engine: Engine = request.app.state.engine
    with engine.begin() as conn:
        yield make_ctx(conn, request.headers.get("authorization"), request.app.state.settings)


def _op(request: Request) -> str:
    route = request.scope.get("route")
    name = getattr(route, "name", "") or ""
    return f"controller.api.{name}" if name else ""


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    from bconnect.controller.routes import ROUTERS

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(job_loop(engine, settings.job_interval))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        lifespan=lifespan,
        title="bconnect controller API",
        version=__version__,
        description="Boundary-compatible controller API (see PROTOCOL.md §1).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(errors.ApiException)
    async def _api_error(request: Request, exc: errors.ApiException) -> JSONResponse:
        return JSONResponse(exc.body(_op(request)), status_code=exc.status)

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
        body = {
            "kind": kinds.get(exc.status_code, "InvalidArgument"),
            "op": _op(request),
            "message": str(exc.detail),
        }
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error serving %s %s", request.method, request.url.path)
        body = errors.Internal("Internal error.").body(_op(request))
        return JSONResponse(body, status_code=500)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):  # noqa: ANN001, ANN202
        # Boundary reads every body as JSON whatever the Content-Type (curl -d sends
        # form encoding by default); do the same.
        if request.method in ("POST", "PATCH", "PUT"):
            headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-type"]
            request.scope["headers"] = [*headers, (b"content-type", b"application/json")]
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            body = errors.PayloadTooLarge("Request body too large.").body()
            return JSONResponse(body, status_code=413)
        return await call_next(request)

    return app
