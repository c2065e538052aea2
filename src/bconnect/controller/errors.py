"""API errors in Boundary's shape: ``{"kind", "op", "message", "details"}``."""

from __future__ import annotations

import math
from typing import Any


class ApiException(Exception):
    """An error the API reports to the client; never carries a secret."""

    status = 500
    kind = "Internal"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        op: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.op = op
        self.headers = headers or {}

    def body(self, op: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "op": self.op or op,
            "message": self.message,
        }
        if self.fields:
            body["details"] = {
                "request_fields": [
                    {"name": name, "description": desc} for name, desc in self.fields.items()
                ]
            }
        return body


class InvalidArgument(ApiException):
    status = 400
    kind = "InvalidArgument"


class Unauthenticated(ApiException):
    status = 401
    kind = "Unauthenticated"


class PermissionDenied(ApiException):
    status = 403
    kind = "PermissionDenied"


class NotFound(ApiException):
    status = 404
    kind = "NotFound"


class MethodNotAllowed(ApiException):
    status = 405
    kind = "MethodNotAllowed"


class FailedPrecondition(ApiException):
    """The request is fine but the system cannot serve it now (e.g. no worker fits)."""

    status = 400
    kind = "FailedPrecondition"


class PayloadTooLarge(ApiException):
    status = 413
    kind = "InvalidArgument"


class TooManyRequests(ApiException):
    """Refused for now (a throttled login); ``Retry-After`` says for how long."""

    status = 429
    kind = "ResourceExhausted"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Internal(ApiException):
    status = 500
    kind = "Internal"


def invalid_field(name: str, description: str) -> InvalidArgument:
    return InvalidArgument("Errors in provided fields.", fields={name: description})


def version_mismatch() -> InvalidArgument:
    return invalid_field(
        "version", "Version does not match the current version of the resource; read it again."
    )


def not_found(resource_id: str) -> NotFound:
    return NotFound(f"Resource not found: {resource_id}")


def denied() -> PermissionDenied:
    return PermissionDenied("Forbidden.")


class Unavailable(ApiException):
    """The database cannot be reached right now (restarting, failing over), or the
    controller is too busy for this request (``retry_after`` seconds): retry."""

    status = 503
    kind = "Unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
        super().__init__(message, headers=headers)
