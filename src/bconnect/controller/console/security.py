"""The console's defences: where the token lives, CSRF, and the response headers.

- The auth token is kept in the ``bconnect_console`` cookie: ``HttpOnly`` (no script
  can read it), ``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the
  listener has TLS, ``Path=/``.
- A state-changing request (every POST) must carry the CSRF token in its form, and its
  ``Origin`` (when the browser sends one) must be this listener's. Signed in, the CSRF
  token is an HMAC of a fixed label keyed by the auth token: unguessable without the
  cookie, the same on every controller of a cluster. Before signing in, the login form
  uses a random value that must match a ``SameSite=Strict`` cookie (double submit).
- Every console response carries a Content-Security-Policy without inline script or
  style, ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, no referrer
  to other sites,
  and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "TOKEN_COOKIE",
    "csrf_for",
    "headers",
    "new_login_csrf",
    "origin_ok",
    "set_token_cookie",
    "tls",
]

TOKEN_COOKIE = "bconnect_console"
LOGIN_CSRF_COOKIE = "bconnect_login_csrf"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
    # the console's own form posts, which the origin check must refuse
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


R = TypeVar("R", bound=Response)


def headers(response: R) -> R:
    """``response`` with the console's security headers."""
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def tls(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_for(token: str) -> str:
    """The CSRF token of a signed-in browser (derived from its auth token)."""
    return hmac.new(token.encode(), b"bconnect console csrf v1", hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def origin_ok(request: Request) -> bool:
    """The request's ``Origin`` (or, without one, ``Referer``) is this listener's, or
    the browser sent neither."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True
    if source == "null":
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def set_token_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=tls(request), path="/"
    )


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())
