"""A small client for the Boundary controller HTTP API.

The client speaks the controller API (docs/protocol.md) and works against a real
Boundary controller as well as bconnect's own (docs/library.md)::

    from bconnect import Client

    with Client("http://127.0.0.1:9200", token=token) as client:
        for session in client.list("sessions", scope_id="p_1234567890")["items"]:
            print(session["id"], session["status"])

Every call returns the decoded JSON body as an :class:`ApiResponse` (a ``dict``
that also carries the HTTP status code). Errors from the controller raise
:class:`ApiError`; a controller that cannot be reached raises
:class:`ControllerUnreachable`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack
from urllib.parse import quote, urlsplit

from bconnect.core.tlserrors import tls_failure

if TYPE_CHECKING:  # imported when a Client is made: `--help` never pays for requests
    import requests

    from bconnect.core.session import TargetRef
    from bconnect.core.tunnel import AsyncTunnel, Completed, RunSpec, SessionArgs, Tunnel

__all__ = [
    "DEFAULT_ADDR",
    "ApiError",
    "ApiResponse",
    "Client",
    "ControllerUnreachable",
    "ResponseRefused",
    "token_id",
]

log = logging.getLogger(__name__)

DEFAULT_ADDR = "http://127.0.0.1:9200"
USER_AGENT = "bconnect"
#: The largest answer body the client reads (a larger one is refused, never held whole).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: A list that has not ended after this many pages, or holds more items, is refused.
MAX_LIST_PAGES = 10_000
MAX_LIST_ITEMS = 1_000_000


@dataclass(frozen=True)
class RecordingDownload:
    """What :meth:`Client.download_recording` wrote: its size and SHA-256, whether that is
    the hash the controller checked (``verified``), and whether the worker finished
    writing it (``complete``: an incomplete recording has no recorded hash)."""

    size: int
    sha256: str
    verified: bool
    complete: bool


class ApiError(Exception):
    """An error returned by the controller (or raised while talking to it).

    Attributes mirror Boundary's error body: ``kind`` (``NotFound``,
    ``PermissionDenied``, ``Unauthenticated``, ``InvalidArgument``, ...), ``op``,
    ``message`` and ``details`` (``{"request_fields": [{"name", "description"}]}``),
    plus the HTTP ``status`` and the raw decoded ``body``.
    """

    def __init__(
        self,
        status: int,
        kind: str = "",
        op: str = "",
        message: str = "",
        details: dict[str, Any] | None = None,
        *,
        body: Any = None,
    ) -> None:
        self.status = status
        self.kind = kind
        self.op = op
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.body = body
        #: seconds from the answer's ``Retry-After`` header (429, 503), if any
        self.retry_after: float | None = None
        #: whether the request carried an auth token (a 401 then means it is stale)
        self.token_sent = False
        super().__init__(message)

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        """Build an error from a non-2xx response, tolerating non-JSON bodies."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            details = body.get("details")
            error = cls(
                response.status_code,
                kind=str(body.get("kind") or ""),
                op=str(body.get("op") or ""),
                message=str(body.get("message") or response.reason or ""),
                details=details if isinstance(details, dict) else None,
                body=body,
            )
        else:
            text = (response.text or "").strip().splitlines()
            message = text[0][:200] if text else (response.reason or "")
            error = cls(response.status_code, kind="Unknown", message=message, body=None)
        retry = (response.headers.get("Retry-After") or "").strip()
        if retry.isdigit():
            error.retry_after = float(retry)
        return error

    @property
    def request_fields(self) -> list[dict[str, str]]:
        """Field-specific errors (``[{"name": ..., "description": ...}]``)."""
        fields = self.details.get("request_fields") or []
        return [f for f in fields if isinstance(f, dict)]

    def __str__(self) -> str:
        head = f"{self.kind or 'Error'} ({self.status})" if self.status else self.kind or "Error"
        parts = [f"{head}: {self.message}" if self.message else head]
        for field in self.request_fields:
            parts.append(f"{field.get('name', '?')}: {field.get('description', '')}")
        return "; ".join(parts)


class ControllerUnreachable(ApiError):
    """The controller could not be reached (connection refused, DNS, timeout, TLS).

    ``str(err)`` is exactly ``unable to reach the controller at <addr>``; the
    underlying cause is kept in ``reason``.
    """

    def __init__(self, addr: str, reason: str = "") -> None:
        super().__init__(0, kind="Unavailable", message=f"unable to reach the controller at {addr}")
        self.addr = addr
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class ResponseRefused(ApiError):
    """The controller's answer was refused: larger than :data:`MAX_RESPONSE_BYTES`, or
    a list that does not end (a ``list_token`` sent again, or more pages or items than
    :data:`MAX_LIST_PAGES` / :data:`MAX_LIST_ITEMS`). A broken or hostile controller must
    not make the client loop forever or fill its memory."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, kind="Unknown", message=message)


class ApiResponse(dict):  # type: ignore[type-arg]
    """A decoded JSON object that also remembers the HTTP status code.

    ``has_body`` is False when the controller answered with an empty body
    (for example ``204 No Content`` on delete).
    """

    status_code: int
    has_body: bool

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        has_body: bool = True,
    ) -> None:
        super().__init__(data or {})
        self.status_code = status_code
        self.has_body = has_body and data is not None


def token_id(token: str) -> str:
    """Return the public auth-token ID (``at_xxxxxxxxxx``) of a token ``at_<id>_s1<secret>``."""
    parts = token.split("_")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        raise ValueError("Unexpected stored token format")
    return "_".join(parts[:2])


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _path(path: str) -> str:
    path = path.strip()
    if path.startswith("/v1/"):
        return path
    return "/v1/" + path.lstrip("/")


def _seg(value: str) -> str:
    """Quote one path segment (an ID or a target name)."""
    return quote(str(value), safe="")


def _read_body(response: requests.Response, limit: int = MAX_RESPONSE_BYTES) -> None:
    """Read a streamed *response*'s body into ``response.content``, counting bytes as
    they come: a body over *limit* bytes (declared or sent) is refused without holding
    it, and its connection dropped.

    The body is stored where requests keeps a body it read itself, so ``json()`` and
    ``text`` work as usual.
    """

    def refuse() -> ResponseRefused:
        response.close()
        size = f"{limit // (1024 * 1024)} MiB"
        return ResponseRefused(
            response.status_code, f"the controller's answer is larger than {size}: refusing it"
        )

    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise refuse()
    body = bytearray()
    for chunk in response.iter_content(1 << 16):
        body += chunk
        if len(body) > limit:
            raise refuse()
    response._content = bytes(body)


def _unwrap_item(data: ApiResponse) -> ApiResponse:
    """Return the resource of a single-item response.

    Boundary's gateway returns the resource itself as the body
    (``response_body: "item"``); tolerate ``{"item": {...}}`` envelopes too.
    """
    item = data.get("item")
    if isinstance(item, dict) and set(data) <= {"item", "uri"}:
        return ApiResponse(item, status_code=data.status_code, has_body=data.has_body)
    return data


class Client:
    """A client for one controller, backed by a :class:`requests.Session`.

    ``addr`` is the controller's API address (``http(s)://host:port``); ``token``
    an auth token (``at_..._s1...``) sent as ``Authorization: Bearer``. The
    client is a context manager and can be reused for many calls.
    """

    def __init__(
        self,
        addr: str = DEFAULT_ADDR,
        token: str | None = None,
        *,
        timeout: float = 30,
        tls_insecure: bool = False,
        ca_cert: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        addr = (addr or DEFAULT_ADDR).strip().rstrip("/")
        parts = urlsplit(addr)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"invalid controller address {addr!r}: expected a URL such as {DEFAULT_ADDR}"
            )
        import requests

        self.addr = addr
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        # given with each request: a session's own verify loses to REQUESTS_CA_BUNDLE
        self._verify: bool | str = ca_cert or True
        if tls_insecure:
            self._verify = False
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    @classmethod
    def from_env(cls, addr: str | None = None, token: str | None = None, **kw: Any) -> Client:
        """A client set up as the CLI would be: the address from ``BCONNECT_ADDR`` or
        ``BOUNDARY_ADDR`` (else :data:`DEFAULT_ADDR`), the token from ``BCONNECT_TOKEN``
        or ``BOUNDARY_TOKEN``, else the one ``bconnect authenticate`` saved for that
        address; ``BOUNDARY_TLS_INSECURE`` and ``BOUNDARY_CACERT`` (or ``BCONNECT_…``)
        as the CLI reads them. Arguments given win over the environment."""
        import os

        from bconnect.core.tokenstore import resolve_token

        def env(name: str) -> str:
            return os.environ.get(f"BCONNECT_{name}") or os.environ.get(f"BOUNDARY_{name}") or ""

        addr = addr or env("ADDR") or DEFAULT_ADDR
        if token is None:
            token = resolve_token(addr=addr.strip().rstrip("/"))
        insecure = env("TLS_INSECURE").lower() in ("1", "true", "t", "yes", "y", "on")
        if "tls_insecure" not in kw and insecure:
            kw["tls_insecure"] = True
        if "ca_cert" not in kw and env("CACERT"):
            kw["ca_cert"] = env("CACERT")
        return cls(addr, token, **kw)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(addr={self.addr!r}, token={'***' if self.token else None})"

    # -- generic requests ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> ApiResponse:
        """Send one request and return the decoded JSON body.

        ``path`` is relative to ``/v1/`` (``"targets"``, ``"sessions/s_123:cancel"``).
        Parameters whose value is None are dropped; booleans become ``true``/``false``.
        An answer larger than :data:`MAX_RESPONSE_BYTES` raises :class:`ResponseRefused`.
        """
        import requests

        url = self.addr + _path(path)
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        log.debug("%s %s %s", method, url, sorted(query))
        try:
            response = self.session.request(
                method,
                url,
                params=query or None,
                json=json,
                headers=headers,
                timeout=self.timeout,
                verify=self._verify,
                stream=True,  # read by the hook, redirects' bodies included
                hooks={"response": lambda answer, **_: _read_body(answer)},
            )
        except requests.exceptions.SSLError as exc:
            log.debug("TLS error talking to %s: %s", self.addr, exc)
            raise ControllerUnreachable(self.addr, f"TLS error: {tls_failure(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.debug("cannot reach %s: %s", self.addr, exc)
            raise ControllerUnreachable(self.addr, str(exc)) from None
        log.debug("%s %s -> %s", method, url, response.status_code)
        if response.status_code >= 400:
            error = ApiError.from_response(response)
            error.token_sent = bool(self.token)
            raise error
        if not response.content.strip():
            return ApiResponse(None, status_code=response.status_code, has_body=False)
        try:
            data = response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                kind="Unknown",
                message="the controller returned a response that is not JSON",
            ) from None
        if not isinstance(data, dict):
            data = {"value": data}
        return ApiResponse(data, status_code=response.status_code)

    def get(self, path: str, **params: Any) -> ApiResponse:
        """``GET /v1/<path>?<params>``."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> ApiResponse:
        """``POST /v1/<path>`` with a JSON body."""
        return self.request("POST", path, json=json if json is not None else {})

    def patch(self, path: str, json: Any) -> ApiResponse:
        """``PATCH /v1/<path>`` with a JSON body."""
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> ApiResponse:
        """``DELETE /v1/<path>``; the result is usually empty (``status_code`` 204)."""
        return self.request("DELETE", path)

    def list_all(self, collection_path: str, **params: Any) -> ApiResponse:
        """List a collection, following ``list_token`` pagination to the end.

        While the controller answers ``response_type: "delta"`` the returned
        ``list_token`` is sent back for the next page. Items seen again are
        updated in place and ``removed_ids`` are dropped, as Boundary's own
        client does. The result has all ``items`` and the last page's metadata.

        A controller that sends a ``list_token`` again, or more than
        :data:`MAX_LIST_PAGES` pages or :data:`MAX_LIST_ITEMS` items, gets
        :class:`ResponseRefused` instead of a client that loops or fills its memory.
        """
        page = self.get(collection_path, **params)
        if page.get("response_type", "complete") != "delta" or not page.get("list_token"):
            return page
        items: list[dict[str, Any]] = list(page.get("items") or [])
        index = {item.get("id"): i for i, item in enumerate(items)}
        removed: set[str] = set()
        tokens: set[bytes] = set()  # digests: a token may be large
        pages = 1
        while page.get("response_type") == "delta" and page.get("list_token"):
            token = str(page["list_token"])
            digest = hashlib.sha256(token.encode()).digest()
            if digest in tokens:
                raise ResponseRefused(
                    page.status_code,
                    f"the controller repeated a list token after {pages} pages: refusing the list",
                )
            if pages >= MAX_LIST_PAGES or len(items) + len(removed) > MAX_LIST_ITEMS:
                raise ResponseRefused(
                    page.status_code,
                    f"the controller's list goes on past {MAX_LIST_PAGES:,} pages or "
                    f"{MAX_LIST_ITEMS:,} items: refusing it",
                )
            tokens.add(digest)
            page = self.get(collection_path, **{**params, "list_token": token})
            pages += 1
            for item in page.get("items") or []:
                pos = index.get(item.get("id"))
                if pos is None:
                    index[item.get("id")] = len(items)
                    items.append(item)
                else:
                    items[pos] = item
            gone = set(page.get("removed_ids") or [])
            removed |= gone
            if not gone.isdisjoint(index):  # one pass per page, not one per removed id
                items = [i for i in items if i.get("id") not in gone]
                index = {item.get("id"): i for i, item in enumerate(items)}
        items.sort(key=lambda i: str(i.get("created_time") or ""), reverse=True)
        log.debug("listed %s in %d pages", collection_path, pages)
        result = ApiResponse(dict(page), status_code=page.status_code)
        result["items"] = items
        result["removed_ids"] = sorted(set(removed))
        result["est_item_count"] = len(items)
        return result

    # -- typed helpers ---------------------------------------------------------------------

    def read(self, collection: str, id: str) -> ApiResponse:
        """Read one resource: ``GET /v1/<collection>/<id>``."""
        return _unwrap_item(self.get(f"{collection}/{_seg(id)}"))

    def create(
        self,
        collection: str,
        body: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
    ) -> ApiResponse:
        """Create a resource: ``POST /v1/<collection>`` with the resource as body.

        ``params`` are optional query parameters (e.g. ``skip_admin_role_creation``).
        """
        return _unwrap_item(self.request("POST", collection, params=params, json=dict(body)))

    def update(
        self, collection: str, id: str, body: Mapping[str, Any], version: int | None = None
    ) -> ApiResponse:
        """Update a resource with ``PATCH``; reads it first when ``version`` is None."""
        if version is None:
            version = self.read(collection, id).get("version")
        return _unwrap_item(self.patch(f"{collection}/{_seg(id)}", {**body, "version": version}))

    def delete_resource(self, collection: str, id: str) -> ApiResponse:
        """Delete a resource: ``DELETE /v1/<collection>/<id>``."""
        return self.delete(f"{collection}/{_seg(id)}")

    def action(
        self,
        collection: str,
        id: str,
        action: str,
        body: Mapping[str, Any] | None = None,
        *,
        auto_version: bool = False,
    ) -> ApiResponse:
        """Run a custom action: ``POST /v1/<collection>/<id>:<action>``.

        With ``auto_version=True`` and no ``version`` in *body*, the resource is
        read first and its current version is sent (check-and-set).
        """
        payload = dict(body or {})
        if auto_version and payload.get("version") is None:
            payload["version"] = self.read(collection, id).get("version")
        return _unwrap_item(self.post(f"{collection}/{_seg(id)}:{action}", payload))

    def authenticate_password(
        self, auth_method_id: str, login_name: str, password: str
    ) -> dict[str, Any]:
        """Log in with a password auth method and return the token's ``attributes``.

        The result holds ``id``, ``token``, ``user_id``, ``auth_method_id``,
        ``account_id``, ``expiration_time``, ...
        """
        body = self.authenticate_password_raw(auth_method_id, login_name, password)
        attributes = body.get("attributes")
        if not isinstance(attributes, dict) or not attributes.get("token"):
            raise ApiError(
                body.status_code,
                kind="Unknown",
                message="the controller's authenticate response has no token",
            )
        return attributes

    def authenticate_password_raw(
        self, auth_method_id: str, login_name: str, password: str
    ) -> ApiResponse:
        """Like :meth:`authenticate_password` but return the whole response body."""
        return self.post(
            f"auth-methods/{_seg(auth_method_id)}:authenticate",
            {"command": "login", "attributes": {"login_name": login_name, "password": password}},
        )

    def authorize_session(
        self,
        target_id: str | None = None,
        *,
        alias: str | None = None,
        target_name: str | None = None,
        scope_id: str | None = None,
        scope_name: str | None = None,
        host_id: str | None = None,
    ) -> ApiResponse:
        """Authorize a session on a target and return the session authorization.

        The target is named by ID, by an ``alias`` (``web.prod``; the alias's host is
        used unless ``host_id`` is given), or by ``target_name`` plus ``scope_id`` or
        ``scope_name``. The result holds ``session_id``, ``authorization_token``,
        ``endpoint``, ``credentials``, ...
        """
        if alias:
            if target_id or target_name or scope_id or scope_name:
                raise ValueError("an alias names the target: give no other lookup parameter")
            target_id = alias
        if not target_id:
            if not target_name:
                raise ValueError("a target ID, or a target name with a scope, is required")
            if bool(scope_id) == bool(scope_name):
                raise ValueError("a target name needs exactly one of scope_id or scope_name")
        body: dict[str, Any] = {}
        if host_id:
            body["host_id"] = host_id
        if scope_id:
            body["scope_id"] = scope_id
        if scope_name:
            body["scope_name"] = scope_name
        if target_name:
            body["name"] = target_name
        ident = target_id or target_name or ""
        return _unwrap_item(self.post(f"targets/{_seg(ident)}:authorize-session", body))

    def cancel_session(self, id: str, version: int | None = None) -> ApiResponse:
        """Cancel a session; reads it first for its version when ``version`` is None."""
        if version is None:
            version = self.read("sessions", id).get("version")
        return _unwrap_item(self.post(f"sessions/{_seg(id)}:cancel", {"version": version}))

    def download_recording(self, channel_id: str, out: BinaryIO) -> RecordingDownload:
        """Write a channel recording (``chr_…``) to ``out``; the controller has checked it
        against the SHA-256 the worker recorded, and this checks what arrived against the
        controller's (``RecordingDownload.verified``)."""
        import requests

        url = self.addr + _path(f"session-recordings/{_seg(channel_id)}:download")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.session.get(
                url, headers=headers, timeout=self.timeout, verify=self._verify, stream=True
            )
        except requests.exceptions.SSLError as exc:
            raise ControllerUnreachable(self.addr, f"TLS error: {tls_failure(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ControllerUnreachable(self.addr, str(exc)) from None
        with response:
            if response.status_code >= 400:
                _read_body(response)
                error = ApiError.from_response(response)
                error.token_sent = bool(self.token)
                raise error
            digest, size = hashlib.sha256(), 0
            for chunk in response.iter_content(64 * 1024):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            expected = response.headers.get("X-Bconnect-Sha256", "")
            return RecordingDownload(
                size=size,
                sha256=digest.hexdigest(),
                verified=bool(expected) and expected == digest.hexdigest(),
                complete=response.headers.get("X-Bconnect-Recording-State") != "incomplete",
            )

    # ------------------------------------------------------------------ sessions
    # (docs/library.md; the machinery is bconnect.core.tunnel)
    def connect(
        self,
        target_id: str | None = None,
        *,
        exec: Sequence[str] = (),  # noqa: A002 - Boundary's -exec
        **kw: Unpack[SessionArgs],
    ) -> AbstractContextManager[Tunnel]:
        """Authorize a session and proxy it on a local port for a ``with`` block::

            with client.connect(target_id="ttcp_1234567890") as tunnel:
                socket.create_connection((tunnel.host, tunnel.port))

        The :class:`~bconnect.core.tunnel.Tunnel` has ``host``, ``port``, ``address``,
        ``session_id``, ``credentials``, ``connections_left``; ``exec`` runs a program
        against it as ``-exec`` does (``tunnel.wait()`` waits for it). Leaving the block
        ends the session (through the worker, else the API); ``tunnel.result`` then
        says how. ``kw``: :class:`~bconnect.core.tunnel.SessionArgs`.
        """
        from bconnect.core.tunnel import open_tunnel, plan

        target, authz_token, spec = plan(target_id, kw, exec=_argv(exec) if exec else ())
        return open_tunnel(self, target, spec, authz_token=authz_token)

    def launch(
        self,
        helper: str,
        target_id: str | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        exec: str | None = None,  # noqa: A002
        capture_output: bool = False,
        **kw: Unpack[SessionArgs],
    ) -> Completed:
        """Run a connect helper (``ssh``, ``postgres``, a plugin's) against a new
        session to its end, as ``bconnect <helper>`` does: ``options`` are the helper's
        (``{"username": "app"}``), ``args`` what ``--`` passes to its program, ``exec``
        a program run instead of the helper's (as ``-exec``). Returns
        a :class:`~bconnect.core.tunnel.Completed` (``exit_code``, ``reason``, and
        ``stdout``/``stderr`` with ``capture_output``)."""
        from bconnect.core.tunnel import launch

        target, authz_token, spec = _plan_helper(target_id, kw, helper, options, args, exec)
        return launch(self, target, spec, authz_token=authz_token, capture_output=capture_output)

    def run(
        self,
        argv: Sequence[str],
        target_id: str | None = None,
        *,
        capture_output: bool = False,
        **kw: Unpack[SessionArgs],
    ) -> Completed:
        """Run a program against a new session to its end, as ``connect -exec`` does:
        ``{{boundary.addr}}`` (``.ip``, ``.port``) in ``argv`` is where the proxy
        listens, also in ``BOUNDARY_PROXIED_ADDR`` (``_IP``, ``_PORT``)."""
        from bconnect.core.tunnel import launch, plan

        target, authz_token, spec = plan(target_id, kw, exec=_argv(argv))
        return launch(self, target, spec, authz_token=authz_token, capture_output=capture_output)

    def aconnect(
        self,
        target_id: str | None = None,
        *,
        exec: Sequence[str] = (),  # noqa: A002
        **kw: Unpack[SessionArgs],
    ) -> AbstractAsyncContextManager[AsyncTunnel]:
        """:meth:`connect` for asyncio: ``async with client.aconnect(...) as tunnel``."""
        from bconnect.core.tunnel import aopen_tunnel, plan

        target, authz_token, spec = plan(target_id, kw, exec=_argv(exec) if exec else ())
        return aopen_tunnel(self, target, spec, authz_token=authz_token)

    async def alaunch(
        self,
        helper: str,
        target_id: str | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        exec: str | None = None,  # noqa: A002
        capture_output: bool = False,
        **kw: Unpack[SessionArgs],
    ) -> Completed:
        """:meth:`launch` for asyncio."""
        from bconnect.core.tunnel import alaunch

        target, authz_token, spec = _plan_helper(target_id, kw, helper, options, args, exec)
        return await alaunch(
            self, target, spec, authz_token=authz_token, capture_output=capture_output
        )

    async def arun(
        self,
        argv: Sequence[str],
        target_id: str | None = None,
        *,
        capture_output: bool = False,
        **kw: Unpack[SessionArgs],
    ) -> Completed:
        """:meth:`run` for asyncio."""
        from bconnect.core.tunnel import alaunch, plan

        target, authz_token, spec = plan(target_id, kw, exec=_argv(argv))
        return await alaunch(
            self, target, spec, authz_token=authz_token, capture_output=capture_output
        )

    def list(self, collection: str, **params: Any) -> ApiResponse:  # noqa: A003
        """List a collection (all pages); ``params`` are query parameters such as
        ``scope_id``, ``recursive``, ``filter``, ``include_terminated``."""
        return self.list_all(collection, **params)


def _plan_helper(
    target_id: str | None,
    kw: SessionArgs,
    helper: str,
    options: Mapping[str, Any] | None,
    args: Sequence[str],
    exec: str | None,  # noqa: A002
) -> tuple[TargetRef, str | None, RunSpec]:
    """:func:`~bconnect.core.tunnel.plan` for a helper launch."""
    from bconnect.core.tunnel import plan

    return plan(
        target_id,
        kw,
        helper=helper,
        options=dict(options or {}),
        args=tuple(args),
        exec=(exec,) if exec else (),
    )


def _argv(argv: Sequence[str]) -> tuple[str, ...]:
    """A program and its arguments, as a list (a string would run its first letter)."""
    if isinstance(argv, str) or not argv:
        raise ValueError("argv must be a non-empty list: the program, then its arguments")
    return tuple(argv)
