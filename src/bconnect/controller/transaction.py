"""One API request's database transaction, with its caller and their ACL
(:class:`~bconnect.controller.context.Ctx`): what every route handler works in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from sqlalchemy import Engine

from bconnect.controller.context import Ctx, make_ctx, touch_token

__all__ = ["transaction"]


@contextmanager
def transaction(request: Request, *, write: bool | None = None) -> Iterator[Ctx]:
    """One database transaction per request, with the caller resolved and their ACL built.

    GET requests read in a plain transaction (on SQLite, WAL readers block nobody);
    others take the write lock at BEGIN. A read that finds the caller's token due for
    an approximate_last_used_time refresh writes it afterwards, in a short transaction.
    """
    engine: Engine = request.app.state.engine
    if write is None:
        write = request.method not in ("GET", "HEAD")
    header = request.headers.get("authorization")
    with engine.connect() as conn:
        if not write:
            conn.execution_options(bconnect_read_only=True)
        with conn.begin():
            ctx = make_ctx(conn, header, request.app.state.settings)
            if write and ctx.touch_token:
                touch_token(conn, ctx.auth_token.id, ctx.now)
            yield ctx
    if not write and ctx.touch_token:
        with engine.begin() as conn:
            touch_token(conn, ctx.auth_token.id, ctx.now)
