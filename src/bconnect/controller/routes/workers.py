"""/v1/workers: workers known to the controller (they register in the data-plane work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from bconnect.controller import resources as res
from bconnect.controller.app import transaction
from bconnect.controller.authorize import worker_tags
from bconnect.controller.context import Ctx
from bconnect.controller.models import WorkerItem, WorkerResponse, WorkerUpdate
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.storage import schema as t

router = APIRouter(tags=["workers"])


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    tags = {k: list(v) for k, v in worker_tags(row.tags).items()}
    active = ctx.conn.execute(
        select(func.count())
        .select_from(t.session_connections)
        .where(
            t.session_connections.c.worker_id == row.id,
            t.session_connections.c.status != "closed",
        )
    ).scalar_one()
    return {
        "address": row.address,
        "canonical_tags": tags or None,
        "config_tags": tags or None,
        "last_status_time": res.fmt_time(row.last_status_time),
        "release_version": row.release_version,
        "active_connection_count": active,
    }


WORKERS = res.Kind("worker", "workers", t.workers, render=_render, model=WorkerItem)
add_standard_routes(router, WORKERS)


@router.patch("/v1/workers/{id}", response_model=WorkerResponse, response_model_exclude_none=True)
def update_worker(request: Request, id: str, body: WorkerUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, WORKERS, id, "update")
        row = res.patch_row(ctx, WORKERS, row, body.version, res.common_updates(body))
        return res.render(ctx, WORKERS, row)
