"""The console's pages (see the package docstring). Each handler asks the API as the
signed-in user (:class:`~.apicall.ConsoleApi`) and renders a template; a page with live
parts also answers ``…/live`` with just those parts, which ``console.js`` fetches every
second. A 401 from the API (no, expired or revoked token) sends the browser to the
sign-in page; a 403 or 404 is a page saying so.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bconnect.controller.console import security
from bconnect.controller.console.apicall import ApiAnswer, ConsoleApi, RawAnswer

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("bconnect.controller.console", "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,  # API fields are often absent
    trim_blocks=True,
    lstrip_blocks=True,
)
#: at most this many sessions are read one by one for their connections and bytes
MAX_DETAILED = 200
_LIVE = ("pending", "active")
_STATIC = {
    "console.js": "text/javascript",
    "player.js": "text/javascript",
    "console.css": "text/css",
}


# ---------------------------------------------------------------------- formatting
def _when(value: Any) -> str:
    """An RFC 3339 time as ``2026-12-03 20:31:05 UTC``."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(value: Any) -> int:
    """A byte count from the API (a string of digits), 0 for anything else."""
    try:
        return max(0, int(str(value or 0), 10))
    except (TypeError, ValueError):
        return 0


def _bytes(value: Any) -> str:
    number = _count(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number = number / 1024  # type: ignore[assignment]
    return str(number)


_env.filters["when"] = _when
_env.filters["size"] = _bytes


# ---------------------------------------------------------------------- plumbing
def _token(request: Request) -> str | None:
    return request.cookies.get(security.TOKEN_COOKIE) or None


def _render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    token = _token(request)
    values.setdefault("signed_in", bool(token))
    values.setdefault("csrf", security.csrf_for(token) if token else "")
    values.setdefault("path", request.url.path)
    html = _env.get_template(template).render(**values)
    return security.headers(HTMLResponse(html, status_code=status))


#: what the sign-in page may say when sent there (a code in the URL, never free text:
#: a link must not put words of its own on the controller's page)
MESSAGES = {
    "expired": "Your session with the controller has ended: sign in again.",
    "signed-out": "Signed out.",
}


def _to_login(request: Request, message: str = "") -> Response:
    query = {"next": request.url.path}
    if message:
        query["message"] = message
    response = RedirectResponse(f"/login?{urlencode(query)}", status_code=303)
    if _token(request):
        response.delete_cookie(security.TOKEN_COOKIE, path="/")
    return security.headers(response)


def _problem(request: Request, answer: ApiAnswer) -> Response:
    """The page for an API answer that is not a success."""
    if answer.status == 401:
        return _to_login(request, "expired")
    titles = {403: "Not permitted", 404: "Not found"}
    title = titles.get(answer.status, "The controller could not do that")
    return _render(
        request, "problem.html", status=answer.status, title=title, message=answer.message
    )


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    token = _token(request)
    return (
        token is not None
        and security.origin_ok(request)
        and security.same(form.get("csrf", ""), security.csrf_for(token))
    )


def _forbidden(request: Request) -> Response:
    return _render(
        request,
        "problem.html",
        status=403,
        title="Request refused",
        message="The form was not sent from this console (missing or wrong CSRF token).",
    )


def _api(request: Request) -> ConsoleApi:
    return ConsoleApi(request, _token(request))


async def _signed_in(request: Request) -> bool:
    """A token that the controller still honours (not expired, not revoked): the API
    reads it for its owner; for anyone else (an invalid token is the anonymous user)
    it answers 401 or 403. Any other failure (the database away: 503) is not a reason
    to forget the token: the page goes on and shows the API's own answer."""
    token = _token(request)
    if not token:
        return False
    token_id = "_".join(token.split("_")[:2])
    answer = await _api(request).get(f"/v1/auth-tokens/{quote(token_id, safe='')}")
    return answer.status not in (401, 403, 404)


def _names(answer: ApiAnswer, *fields: str) -> dict[str, str]:
    names = {}
    for item in answer.items if answer.ok else []:
        label = next((str(item[f]) for f in fields if item.get(f)), "")
        names[str(item.get("id"))] = label
    return names


# ---------------------------------------------------------------------- static files
@router.get("/static/{name}")
async def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return security.headers(Response("not found", status_code=404, media_type="text/plain"))
    data = resources.files("bconnect.controller.console").joinpath("static", name).read_bytes()
    response = Response(data, media_type=media)
    security.headers(response)
    response.headers["Cache-Control"] = "no-cache"
    return response


# ---------------------------------------------------------------------- signing in and out
@router.get("/")
async def home(request: Request) -> Response:
    target = "/scopes" if _token(request) else "/login"
    return security.headers(RedirectResponse(target, status_code=303))


async def _login_page(
    request: Request, message: str = "", status: int = 200, login_name: str = "", chosen: str = ""
) -> Response:
    listed = await ConsoleApi(request, None).get(
        "/v1/auth-methods", scope_id="global", recursive=True
    )
    methods = [m for m in listed.items if m.get("type") == "password"]
    csrf = security.new_login_csrf()
    response = _render(
        request,
        "login.html",
        status=status,
        methods=methods,
        chosen=chosen or next((m["id"] for m in methods if m.get("is_primary")), ""),
        login_name=login_name,
        message=message or MESSAGES.get(request.query_params.get("message", ""), ""),
        login_csrf=csrf,
        next=_safe_next(request.query_params.get("next", "")),
        signed_in=False,
    )
    response.set_cookie(
        security.LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=security.tls(request),
        path="/login",
    )
    return response


def _safe_next(value: str) -> str:
    """Where to go after signing in: a path on this console only."""
    if (
        value.startswith("/")
        and not value.startswith(("//", "/\\", "/v1/"))
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return "/scopes"


@router.get("/login")
async def login_page(request: Request) -> Response:
    return await _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    cookie = request.cookies.get(security.LOGIN_CSRF_COOKIE, "")
    if not security.origin_ok(request) or not security.same(form.get("csrf", ""), cookie):
        return _forbidden(request)
    method, name = form.get("auth_method_id", ""), form.get("login_name", "").strip()
    password = form.get("password", "")
    if not method or not name or not password:
        return await _login_page(
            request,
            "Choose an auth method and give a login name and a password.",
            400,
            name,
            method,
        )
    answer = await ConsoleApi(request, None).call(
        "POST",
        f"/v1/auth-methods/{quote(method, safe='')}:authenticate",
        body={"command": "login", "attributes": {"login_name": name, "password": password}},
    )
    if answer.status == 429:
        return await _login_page(
            request,
            "Too many failed sign-ins from this address: wait a little and try again.",
            429,
            name,
            method,
        )
    if answer.status in (400, 401, 403, 404):
        return await _login_page(
            request, "Sign-in failed: wrong login name or password.", 401, name, method
        )
    token = str((answer.body.get("attributes") or {}).get("token", "")) if answer.ok else ""
    if not token:
        return await _login_page(request, f"Sign-in failed: {answer.message}", 502, name, method)
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    security.set_token_cookie(response, request, token)
    response.delete_cookie(security.LOGIN_CSRF_COOKIE, path="/login")
    return security.headers(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    if not _csrf_ok(request, form):
        return _forbidden(request)
    token = _token(request) or ""
    token_id = "_".join(token.split("_")[:2])
    answer = await _api(request).call("DELETE", f"/v1/auth-tokens/{quote(token_id, safe='')}")
    if not answer.ok and answer.status not in (401, 404):  # gone already: signed out
        return _render(
            request,
            "problem.html",
            status=answer.status,
            title="Not signed out",
            message=f"The controller could not revoke your token: {answer.message}",
        )
    response = RedirectResponse("/login?message=signed-out", status_code=303)
    response.delete_cookie(security.TOKEN_COOKIE, path="/")
    return security.headers(response)


# ---------------------------------------------------------------------- scopes
@router.get("/scopes")
async def scopes(request: Request) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    listed = await _api(request).get("/v1/scopes", scope_id="global", recursive=True)
    if not listed.ok:
        return _problem(request, listed)
    orgs = [s for s in listed.items if s.get("type") == "org"]
    projects = [s for s in listed.items if s.get("type") == "project"]
    tree = [
        (org, [p for p in projects if p.get("scope_id") == org["id"]])
        for org in sorted(orgs, key=lambda s: str(s.get("name") or s["id"]))
    ]
    known = {o["id"] for o in orgs}
    orphans = [p for p in projects if p.get("scope_id") not in known]
    return _render(request, "scopes.html", tree=tree, orphans=orphans)


# ---------------------------------------------------------------------- sessions
async def _sessions(request: Request, project: str) -> dict[str, Any] | ApiAnswer:
    api = _api(request)
    listed, users, targets = await asyncio.gather(
        api.get("/v1/sessions", scope_id=project, include_terminated=True),
        api.get("/v1/users", scope_id="global", recursive=True),
        api.get("/v1/targets", scope_id=project),
    )
    if not listed.ok:
        return listed
    status = request.query_params.get("status", "")
    user = request.query_params.get("user", "")
    target = request.query_params.get("target", "")
    rows = [
        s
        for s in listed.items
        if (not status or s.get("status") == status)
        and (not user or s.get("user_id") == user)
        and (not target or s.get("target_id") == target)
    ]
    reads = await asyncio.gather(
        *(api.get(f"/v1/sessions/{quote(str(s.get('id')), safe='')}") for s in rows[:MAX_DETAILED])
    )
    detail = {r.body.get("id"): r.body for r in reads if r.ok}
    for row in rows:
        conns = (detail.get(row.get("id")) or {}).get("connections") or []
        conns = [c for c in conns if isinstance(c, dict)]
        row["_live"] = sum(1 for c in conns if not c.get("closed_reason"))
        row["_total"] = len(conns)
        row["_up"] = sum(_count(c.get("bytes_up")) for c in conns)
        row["_down"] = sum(_count(c.get("bytes_down")) for c in conns)
    return {
        "sessions": rows,
        "users": _names(users, "name", "login_name"),
        "targets": _names(targets, "name"),
        "filters": {"status": status, "user": user, "target": target},
        "statuses": ("pending", "active", "canceling", "terminated"),
        "query": urlencode(
            {k: v for k, v in (("status", status), ("user", user), ("target", target)) if v}
        ),
    }


@router.get("/projects/{project}/sessions")
async def sessions_page(request: Request, project: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    scope = await _api(request).get(f"/v1/scopes/{quote(project, safe='')}")
    if not scope.ok:
        return _problem(request, scope)
    data = await _sessions(request, project)
    if isinstance(data, ApiAnswer):
        return _problem(request, data)
    return _render(request, "sessions.html", scope=scope.body, project=project, **data)


@router.get("/projects/{project}/sessions/live")
async def sessions_live(request: Request, project: str) -> Response:
    if not await _signed_in(request):
        return security.headers(Response(status_code=401))
    data = await _sessions(request, project)
    if isinstance(data, ApiAnswer):
        return security.headers(Response(status_code=data.status))
    return _render(request, "_sessions_table.html", project=project, **data)


async def _session(request: Request, session_id: str) -> dict[str, Any] | ApiAnswer:
    api = _api(request)
    read = await api.get(f"/v1/sessions/{quote(session_id, safe='')}")
    if not read.ok:
        return read
    item = read.body
    user, target = await asyncio.gather(
        api.get(f"/v1/users/{quote(str(item.get('user_id', '')), safe='')}"),
        api.get(f"/v1/targets/{quote(str(item.get('target_id', '')), safe='')}"),
    )
    actions = set(item.get("authorized_actions") or [])
    return {
        "s": item,
        "user_name": str(user.body.get("name") or user.body.get("login_name") or "")
        if user.ok
        else "",
        "target_name": str(target.body.get("name") or "") if target.ok else "",
        "can_cancel": bool(actions & {"cancel", "cancel:self"}) and item.get("status") in _LIVE,
    }


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    data = await _session(request, session_id)
    if isinstance(data, ApiAnswer):
        return _problem(request, data)
    return _render(request, "session.html", **data)


@router.get("/sessions/{session_id}/live")
async def session_live(request: Request, session_id: str) -> Response:
    if not await _signed_in(request):
        return security.headers(Response(status_code=401))
    data = await _session(request, session_id)
    if isinstance(data, ApiAnswer):
        return security.headers(Response(status_code=data.status))
    return _render(request, "_session_detail.html", **data)


@router.post("/sessions/{session_id}/cancel")
async def cancel_session(request: Request, session_id: str) -> Response:
    form = await _form(request)
    if not _csrf_ok(request, form):
        return _forbidden(request)
    api = _api(request)
    path = f"/v1/sessions/{quote(session_id, safe='')}"
    read = await api.get(path)
    if not read.ok:
        return _problem(request, read)
    answer = await api.call("POST", f"{path}:cancel", body={"version": read.body.get("version")})
    if not answer.ok:
        return _problem(request, answer)
    return security.headers(RedirectResponse(f"/sessions/{quote(session_id)}", status_code=303))


async def _project_and_list(
    request: Request, project: str, path: str, **params: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]] | Response:
    """A project page's two reads at once: the project's scope and the list at ``path``
    (its items), or the page explaining why either failed."""
    api = _api(request)
    scope, listed = await asyncio.gather(
        api.get(f"/v1/scopes/{quote(project, safe='')}"), api.get(path, **params)
    )
    for answer in (scope, listed):
        if not answer.ok:
            return _problem(request, answer)
    return scope.body, listed.items


# ---------------------------------------------------------------------- targets
@router.get("/projects/{project}/targets")
async def targets_page(request: Request, project: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    found = await _project_and_list(request, project, "/v1/targets", scope_id=project)
    if isinstance(found, Response):
        return found
    scope, targets = found
    return _render(request, "targets.html", scope=scope, project=project, targets=targets)


def _commands(target: dict[str, Any], aliases: list[str]) -> list[str]:
    tid = str(target.get("id", ""))
    commands = [f"bconnect connect -target-id {tid}"]
    port = (target.get("attributes") or {}).get("default_port")
    if tid.startswith("tssh_") or port == 22:
        commands.append(f"bconnect connect ssh -target-id {tid}")
    commands += [f"bconnect connect {alias}" for alias in aliases]
    return commands


@router.get("/targets/{target_id}")
async def target_page(request: Request, target_id: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    api = _api(request)
    read = await api.get(f"/v1/targets/{quote(target_id, safe='')}")
    if not read.ok:
        return _problem(request, read)
    target = read.body
    host_sources = list(target.get("host_source_ids") or [])
    brokered = list(target.get("brokered_credential_source_ids") or [])
    injected = list(target.get("injected_application_credential_source_ids") or [])
    answers = await asyncio.gather(
        *(api.get(f"/v1/host-sets/{quote(h, safe='')}") for h in host_sources),
        *(api.get(f"/v1/credentials/{quote(c, safe='')}") for c in brokered + injected),
        api.get("/v1/aliases", scope_id="global"),
    )
    names = {a.body.get("id"): a.body.get("name") or "" for a in answers[:-1] if a.ok}
    aliases = [
        str(a.get("value"))
        for a in answers[-1].items
        if answers[-1].ok and a.get("destination_id") == target.get("id")
    ]
    return _render(
        request,
        "target.html",
        t=target,
        host_sources=[(h, names.get(h, "")) for h in host_sources],
        brokered=[(c, names.get(c, "")) for c in brokered],
        injected=[(c, names.get(c, "")) for c in injected],
        aliases=aliases,
        commands=_commands(target, aliases),
    )


# ---------------------------------------------------------------------- recordings
def _recording_project(item: dict[str, Any]) -> str:
    target = (item.get("create_time_values") or {}).get("target") or {}
    return str(target.get("scope_id") or "")


@router.get("/projects/{project}/recordings")
async def recordings_page(request: Request, project: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    found = await _project_and_list(
        request, project, "/v1/session-recordings", scope_id="global", recursive=True
    )
    if isinstance(found, Response):
        return found
    scope, listed = found
    rows = [r for r in listed if _recording_project(r) == project]
    rows.sort(key=lambda r: str(r.get("start_time") or ""), reverse=True)
    return _render(request, "recordings.html", scope=scope, project=project, recordings=rows)


def _channels(recording: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        channel
        for connection in recording.get("connection_recordings") or []
        for channel in connection.get("channel_recordings") or []
    ]


@router.get("/recordings/{recording_id}")
async def recording_page(request: Request, recording_id: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    read = await _api(request).get(f"/v1/session-recordings/{quote(recording_id, safe='')}")
    if not read.ok:
        return _problem(request, read)
    return _render(
        request,
        "recording.html",
        r=read.body,
        project=_recording_project(read.body),
        channels=_channels(read.body),
    )


@router.get("/recordings/{recording_id}/channels/{channel_id}.cast")
async def channel_cast(request: Request, recording_id: str, channel_id: str) -> Response:
    """The channel's asciicast as the API serves it (checked against its SHA-256); an
    error is one line of text (the player shows it)."""
    if not await _signed_in(request):
        return security.headers(Response("Sign in again.", status_code=401))
    raw: RawAnswer = await _api(request).raw(
        "GET", f"/v1/session-recordings/{quote(channel_id, safe='')}:download"
    )
    if not 200 <= raw.status < 300:
        message = raw.json().message
        return security.headers(Response(message, status_code=raw.status, media_type="text/plain"))
    response = Response(raw.body, media_type="application/x-asciicast")
    for name in ("x-bconnect-sha256", "x-bconnect-recording-state"):
        if name in raw.headers:
            response.headers[name] = raw.headers[name]
    if request.query_params.get("download"):
        name = f"{channel_id}.cast".replace('"', "")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return security.headers(response)


@router.get("/recordings/{recording_id}/channels/{channel_id}")
async def player_page(request: Request, recording_id: str, channel_id: str) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    read = await _api(request).get(f"/v1/session-recordings/{quote(recording_id, safe='')}")
    if not read.ok:
        return _problem(request, read)
    channel = next((c for c in _channels(read.body) if c.get("id") == channel_id), None)
    if channel is None:
        return _problem(request, ApiAnswer(404, {"message": f"No channel {channel_id} here."}))
    return _render(request, "player.html", r=read.body, c=channel)


# ---------------------------------------------------------------------- workers, users, roles
@router.get("/workers")
async def workers_page(request: Request) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    listed = await _api(request).get("/v1/workers", scope_id="global")
    if not listed.ok:
        return _problem(request, listed)
    return _render(request, "workers.html", workers=listed.items)


@router.get("/users")
async def users_page(request: Request) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    listed = await _api(request).get("/v1/users", scope_id="global", recursive=True)
    if not listed.ok:
        return _problem(request, listed)
    return _render(request, "users.html", users=listed.items)


@router.get("/roles")
async def roles_page(request: Request) -> Response:
    if not await _signed_in(request):
        return _to_login(request)
    api = _api(request)
    listed = await api.get("/v1/roles", scope_id="global", recursive=True)
    if not listed.ok:
        return _problem(request, listed)
    reads = await asyncio.gather(
        *(api.get(f"/v1/roles/{quote(str(r.get('id')), safe='')}") for r in listed.items)
    )
    roles = [r.body if r.ok else item for r, item in zip(reads, listed.items, strict=True)]
    return _render(request, "roles.html", roles=roles)
