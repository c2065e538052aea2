"""/v1/workers: workers known to the controller (they register in the data-plane work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.authorize import worker_tags
from bconnect.controller.context import Ctx
from bconnect.controller.models import WorkerCreate, WorkerItem, WorkerResponse, WorkerUpdate
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.secrets import mint_activation_token, token_hash
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

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


@router.post(
    "/v1/workers:create:controller-led",
    response_model=WorkerResponse,
    response_model_exclude_none=True,
)
def create_controller_led(request: Request, body: WorkerCreate) -> dict[str, Any]:
    """A worker resource made ahead of its process, as Boundary's controller-led
    registration: the answer carries a one-time ``controller_generated_activation_token``
    that the worker presents once (``[worker] controller_generated_activation_token``) to
    get its own credential. Shown only here; only its hash is kept."""
    with transaction(request) as ctx:
        if body.scope_id != "global":
            raise errors.invalid_field("scope_id", "Workers live in the global scope.")
        ctx.require("global", "worker", "create")
        if not body.name:
            raise errors.invalid_field("name", "A worker made ahead of its process needs a name.")
        token = mint_activation_token()
        values = {
            "id": new_id("w"),
            "scope_id": "global",
            "type": "pki",
            "tags": "{}",
            "name": body.name,
            "description": body.description,
            "activation_token_hash": token_hash(token),
        }
        item = res.render(ctx, WORKERS, res.insert_row(ctx, WORKERS, values))
        return {**item, "controller_generated_activation_token": token}


@router.patch("/v1/workers/{id}", response_model=WorkerResponse, response_model_exclude_none=True)
def update_worker(request: Request, id: str, body: WorkerUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, WORKERS, id, "update")
        row = res.patch_row(ctx, WORKERS, row, body.version, res.common_updates(body))
        return res.render(ctx, WORKERS, row)
