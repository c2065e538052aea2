"""bconnect.core.api.Client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_controller import FakeController, login_attributes, unused_addr

import bconnect
from bconnect.core.api import ApiError, Client, ControllerUnreachable, token_id

pytestmark = pytest.mark.all_databases

TOKEN = "at_1234567890_s1abcdefghijk"


@pytest.fixture
def client(fake: FakeController) -> Iterator[Client]:
    with Client(fake.addr, TOKEN) as c:
        yield c


def test_lazy_exports() -> None:
    assert bconnect.Client is Client
    assert bconnect.ApiError is ApiError
    with pytest.raises(AttributeError):
        _ = bconnect.NoSuchThing  # type: ignore[attr-defined]


def test_get_sends_bearer_token_and_query(fake: FakeController, client: Client) -> None:
    fake.route("GET", "/v1/targets/ttcp_1234567890", (200, {"id": "ttcp_1234567890"}))
    item = client.read("targets", "ttcp_1234567890")
    assert item == {"id": "ttcp_1234567890"}
    assert item.status_code == 200
    req = fake.requests[-1]
    assert req.headers["authorization"] == f"Bearer {TOKEN}"

    fake.route("GET", "/v1/sessions", (200, {"items": [], "response_type": "complete"}))
    client.get("sessions", scope_id="global", recursive=True, filter=None)
    assert fake.requests[-1].query == {"scope_id": "global", "recursive": "true"}


def test_error_body_becomes_api_error(fake: FakeController, client: Client) -> None:
    body = {
        "kind": "InvalidArgument",
        "op": "targets.(Service).CreateTarget",
        "message": "Error in provided request.",
        "details": {"request_fields": [{"name": "name", "description": "Name is required."}]},
    }
    fake.route("POST", "/v1/targets", (400, body))
    with pytest.raises(ApiError) as info:
        client.create("targets", {"scope_id": "p_1234567890", "type": "tcp"})
    err = info.value
    assert (err.status, err.kind, err.op, err.message) == (
        400,
        "InvalidArgument",
        "targets.(Service).CreateTarget",
        "Error in provided request.",
    )
    assert err.details == body["details"]
    assert err.request_fields == [{"name": "name", "description": "Name is required."}]
    assert "\n" not in str(err)
    assert "InvalidArgument (400): Error in provided request." in str(err)
    assert "name: Name is required." in str(err)


def test_non_json_error_body(fake: FakeController, client: Client) -> None:
    fake.route("GET", "/v1/scopes/global", lambda req: (502, None))
    with pytest.raises(ApiError) as info:
        client.read("scopes", "global")
    assert info.value.status == 502


def test_list_all_follows_list_token(fake: FakeController, client: Client) -> None:
    pages = {
        None: {
            "items": [{"id": "s_3", "created_time": "2024-01-03T00:00:00Z"}],
            "response_type": "delta",
            "list_token": "tok1",
            "est_item_count": 3,
        },
        "tok1": {
            "items": [{"id": "s_2", "created_time": "2024-01-02T00:00:00Z"}],
            "response_type": "delta",
            "list_token": "tok2",
        },
        "tok2": {
            "items": [{"id": "s_1", "created_time": "2024-01-01T00:00:00Z"}],
            "response_type": "complete",
            "list_token": "tok3",
        },
    }
    fake.route("GET", "/v1/sessions", lambda req: (200, pages[req.query.get("list_token")]))
    result = client.list("sessions", scope_id="p_1234567890")
    assert [i["id"] for i in result["items"]] == ["s_3", "s_2", "s_1"]
    assert result["response_type"] == "complete"
    seen = [r.query for r in fake.requests]
    assert seen == [
        {"scope_id": "p_1234567890"},
        {"scope_id": "p_1234567890", "list_token": "tok1"},
        {"scope_id": "p_1234567890", "list_token": "tok2"},
    ]


def test_list_all_applies_updates_and_removals(fake: FakeController, client: Client) -> None:
    pages = {
        None: {
            "items": [
                {"id": "a", "created_time": "2024-01-02T00:00:00Z", "v": 1},
                {"id": "b", "created_time": "2024-01-01T00:00:00Z"},
            ],
            "response_type": "delta",
            "list_token": "t",
        },
        "t": {
            "items": [{"id": "a", "created_time": "2024-01-02T00:00:00Z", "v": 2}],
            "removed_ids": ["b"],
            "response_type": "complete",
        },
    }
    fake.route("GET", "/v1/targets", lambda req: (200, pages[req.query.get("list_token")]))
    items = client.list_all("targets", scope_id="global")["items"]
    assert items == [{"id": "a", "created_time": "2024-01-02T00:00:00Z", "v": 2}]


def test_unreachable_controller() -> None:
    addr = unused_addr()
    with Client(addr, timeout=5) as c, pytest.raises(ControllerUnreachable) as info:
        c.get("scopes")
    assert str(info.value) == f"unable to reach the controller at {addr}"
    assert info.value.message == f"unable to reach the controller at {addr}"
    assert isinstance(info.value, ApiError)


def test_invalid_address() -> None:
    with pytest.raises(ValueError):
        Client("127.0.0.1:9200")


def test_cancel_reads_version_first(fake: FakeController, client: Client) -> None:
    fake.route("GET", "/v1/sessions/s_1234567890", (200, {"id": "s_1234567890", "version": 7}))
    fake.route(
        "POST",
        "/v1/sessions/s_1234567890:cancel",
        lambda req: (200, {"id": "s_1234567890", "status": "canceling", "sent": req.body}),
    )
    item = client.cancel_session("s_1234567890")
    assert item["status"] == "canceling"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/sessions/s_1234567890"),
        ("POST", "/v1/sessions/s_1234567890:cancel"),
    ]
    assert fake.requests[-1].body == {"version": 7}

    fake.requests.clear()
    client.cancel_session("s_1234567890", version=3)
    assert [r.method for r in fake.requests] == ["POST"]
    assert fake.requests[-1].body == {"version": 3}


def test_update_reads_version_first(fake: FakeController, client: Client) -> None:
    fake.route("GET", "/v1/targets/ttcp_1", (200, {"id": "ttcp_1", "version": 2}))
    fake.route("PATCH", "/v1/targets/ttcp_1", lambda req: (200, {"id": "ttcp_1", **req.body}))
    item = client.update("targets", "ttcp_1", {"name": "new"})
    assert item["version"] == 2 and item["name"] == "new"
    assert fake.requests[-1].body == {"name": "new", "version": 2}


def test_authenticate_password(fake: FakeController) -> None:
    attributes = login_attributes(TOKEN)
    fake.route(
        "POST",
        "/v1/auth-methods/ampw_1234567890:authenticate",
        (200, {"command": "login", "attributes": attributes}),
    )
    with Client(fake.addr) as c:
        assert c.authenticate_password("ampw_1234567890", "admin", "password") == attributes
    req = fake.requests[-1]
    assert "authorization" not in req.headers
    assert req.body == {
        "command": "login",
        "attributes": {"login_name": "admin", "password": "password"},
    }


def test_authorize_session_by_id_and_by_name(fake: FakeController, client: Client) -> None:
    auth = {"session_id": "s_1", "authorization_token": "tok", "endpoint": "tcp://localhost:22"}
    fake.route("POST", "/v1/targets/ttcp_1234567890:authorize-session", (200, auth))
    item = client.authorize_session("ttcp_1234567890", host_id="hst_1")
    assert item == auth
    assert fake.requests[-1].body == {"host_id": "hst_1"}

    # An {"item": ...} envelope is accepted too.
    fake.route("POST", "/v1/targets/my target:authorize-session", (200, {"item": auth}))
    item = client.authorize_session(target_name="my target", scope_name="Generated project")
    assert item == auth
    assert fake.requests[-1].body == {"scope_name": "Generated project", "name": "my target"}

    with pytest.raises(ValueError):
        client.authorize_session(target_name="x")


def test_delete_and_action(fake: FakeController, client: Client) -> None:
    fake.route("DELETE", "/v1/hosts/hst_1", (204, None))
    result = client.delete_resource("hosts", "hst_1")
    assert result == {} and result.status_code == 204 and not result.has_body

    fake.route("GET", "/v1/host-sets/hsst_1", (200, {"id": "hsst_1", "version": 4}))
    fake.route("POST", "/v1/host-sets/hsst_1:add-hosts", lambda req: (200, req.body))
    assert client.action("host-sets", "hsst_1", "add-hosts", {"host_ids": ["h"]}, auto_version=True)
    assert fake.requests[-1].body == {"host_ids": ["h"], "version": 4}


def test_token_id() -> None:
    assert token_id("at_1234567890_s1xyz") == "at_1234567890"
    with pytest.raises(ValueError):
        token_id("garbage")


def test_tls_failures_read_as_openssl_reason() -> None:
    import requests

    from bconnect.core.tlserrors import tls_failure

    wrapped = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='127.0.0.1', port=9200): Max retries exceeded with url: "
        "/v1/scopes (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
        "CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
        "certificate (_ssl.c:1010)')))"
    )
    assert tls_failure(wrapped) == (
        "certificate verify failed: unable to get local issuer certificate"
    )
    mismatch = requests.exceptions.SSLError(
        '(Caused by SSLError(SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] '
        "certificate verify failed: Hostname mismatch, certificate is not valid for "
        "'127.0.0.2'. (_ssl.c:1010)\")))"
    )
    assert tls_failure(mismatch) == (
        "certificate verify failed: Hostname mismatch, certificate is not valid for '127.0.0.2'"
    )
    plain = requests.exceptions.SSLError("[SSL] record layer failure (_ssl.c:1000)")
    assert tls_failure(plain) == "record layer failure"
    assert tls_failure(requests.exceptions.SSLError("EOF occurred")) == "TLS handshake failed"
