"""Pieces every router uses: list query parameters and response helpers.

No `from __future__ import annotations` here: the generated handlers close over
per-collection values in their annotations, which FastAPI must evaluate at once.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import ResponseValidationError

from bconnect.controller import errors
from bconnect.controller.filters import FilterError, compile_filter
from bconnect.controller.lists import ListQuery, list_items
from bconnect.controller.models import list_response
from bconnect.controller.resources import Kind
from bconnect.controller.transaction import transaction

PageSize = Annotated[int | None, Query(ge=0, description="Items per page (at most 1000 are sent)")]
ListToken = Annotated[str | None, Query(max_length=4096, description="From the previous page")]
Filter = Annotated[str | None, Query(max_length=4096, description="go-bexpr filter over /item")]
Recursive = Annotated[bool, Query(description="Include descendant scopes")]


def list_query(
    parent_id: str | None,
    recursive: bool = False,
    filter: str | None = None,
    page_size: int | None = None,
    list_token: str | None = None,
    include_terminated: bool = False,
) -> ListQuery:
    return ListQuery(
        parent_id=parent_id,
        recursive=recursive,
        filter=filter,
        page_size=page_size,
        list_token=list_token,
        include_terminated=include_terminated,
    )


def model_response(request: Request, content: Any) -> Any:
    """``content`` validated and serialized as the route's ``response_model``, exactly as
    FastAPI does it once a sync endpoint returns, but right here in the endpoint's worker
    thread: FastAPI would hand the validation to the thread pool once more (a second
    thread hop per request). Returns ``content`` itself (for FastAPI to serialize) where
    that is not possible."""
    route = request.scope.get("route")
    field = getattr(route, "response_field", None)
    if route is None or field is None or not hasattr(field, "serialize_json"):
        return content
    value, problems = field.validate(content, {}, loc=("response",))
    if problems:
        raise ResponseValidationError(errors=problems, body=content)
    body = field.serialize_json(
        value,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    return Response(
        content=body, media_type="application/json", status_code=route.status_code or 200
    )


def no_content() -> Response:
    return Response(status_code=204)


def add_standard_routes(router: APIRouter, kind: Kind, read: bool = True) -> None:
    """GET list, GET read and DELETE for a collection, named the Boundary way."""
    from bconnect.controller import resources as res

    path = f"/v1/{kind.collection}"
    recursive_ok = kind.parent == "scope_id"
    default_parent = "global" if recursive_ok else None

    def list_handler(
        request: Request,
        parent_id: Annotated[str | None, Query(alias=kind.parent)] = default_parent,
        recursive: Recursive = False,
        filter: Filter = None,
        page_size: PageSize = None,
        list_token: ListToken = None,
    ) -> dict[str, Any]:
        with transaction(request) as ctx:
            q = list_query(parent_id, recursive and recursive_ok, filter, page_size, list_token)
            return list_items(ctx, kind, q)

    def read_handler(request: Request, id: str) -> dict[str, Any]:
        with transaction(request) as ctx:
            return res.render(ctx, kind, res.read_checked(ctx, kind, id))

    def delete_handler(request: Request, id: str) -> Response:
        with transaction(request) as ctx:
            res.delete_row(ctx, kind, id)
        return no_content()

    name = kind.collection.replace("-", "_")
    router.add_api_route(
        path,
        list_handler,
        methods=["GET"],
        name=f"list_{name}",
        response_model=list_response(kind.model),
        response_model_exclude_none=True,
    )
    if read:
        router.add_api_route(
            path + "/{id}",
            read_handler,
            methods=["GET"],
            name=f"read_{name}",
            response_model=kind.model,
            response_model_exclude_none=True,
        )
    router.add_api_route(
        path + "/{id}",
        delete_handler,
        methods=["DELETE"],
        name=f"delete_{name}",
        status_code=204,
        response_class=Response,
    )


def validate_worker_filter(text: str | None) -> str | None:
    """A worker filter (a target's, a storage bucket's) must parse: go-bexpr over the
    worker's name and tags. "" is none."""
    if not text:
        return None
    try:
        compile_filter(text)
    except FilterError as exc:
        raise errors.invalid_field(
            "worker_filter", f"Unable to successfully parse filter expression: {exc}"
        ) from None
    return text
