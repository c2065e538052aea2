"""The seeds' scenario over real HTTP: authenticate, browse, authorize, list, read, cancel."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bconnect.core.token import decode_authz_token

pytestmark = pytest.mark.all_databases


def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_scopes_list_recursive(controller) -> None:
    resp = controller.request("GET", "/v1/scopes?scope_id=global&recursive=true")
    assert resp.status_code == 200
    body = resp.json()
    ids = {i["id"] for i in body["items"]}
    assert {"o_1234567890", "p_1234567890"} <= ids
    assert body["response_type"] == "complete"
    assert body["sort_by"] == "created_time" and body["sort_dir"] == "desc"


def test_authorize_read_cancel_terminate(controller) -> None:
    resp = controller.request("POST", "/v1/targets/ttcp_1234567890:authorize-session", json={})
    assert resp.status_code == 200, resp.text
    auth = resp.json()
    assert auth["target_id"] == "ttcp_1234567890"
    assert auth["endpoint"] == "tcp://127.0.0.1:22"
    assert auth["endpoint_port"] == 22
    assert auth["connection_limit"] == -1
    assert auth["scope"]["id"] == "p_1234567890"

    data = decode_authz_token(auth["authorization_token"])
    assert data.session_id == auth["session_id"]
    assert data.endpoint == auth["endpoint"]
    assert data.connection_limit == -1
    assert data.endpoint_port == 22
    assert data.worker_addresses == ("127.0.0.1:9202",)
    assert data.expiration == datetime.fromisoformat(auth["expiration"].replace("Z", "+00:00"))

    cert = x509.load_der_x509_certificate(data.certificate)
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    pub = cert.public_key()
    assert isinstance(pub, Ed25519PublicKey)
    pub.verify(cert.signature, cert.tbs_certificate_bytes)  # self-signed
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName)[0] == data.session_id
    # a certificate's NotAfter has whole seconds; the session keeps its fraction
    assert cert.not_valid_after_utc == data.expiration.replace(microsecond=0)
    assert data.private_key[32:] == pub.public_bytes_raw()

    listed = controller.request("GET", "/v1/sessions?scope_id=p_1234567890").json()["items"]
    assert auth["session_id"] in {s["id"] for s in listed}

    read = controller.request("GET", f"/v1/sessions/{auth['session_id']}")
    assert read.status_code == 200
    session = read.json()
    assert session["status"] == "pending"
    assert session["states"][0]["status"] == "pending"
    assert session["user_id"] == "u_1234567890"
    assert session["expiration_time"] == auth["expiration"]

    cancel = controller.request(
        "POST",
        f"/v1/sessions/{auth['session_id']}:cancel",
        json={"version": session["version"]},
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "canceling"

    def terminated():  # noqa: ANN202
        item = controller.request("GET", f"/v1/sessions/{auth['session_id']}").json()
        return item if item["status"] == "terminated" else None

    final = wait_for(terminated)
    assert final, "session never terminated"
    assert final["termination_reason"] == "canceled"
    assert [s["status"] for s in final["states"]] == ["terminated", "canceling", "pending"]
    assert all("end_time" in s for s in final["states"][1:])

    # terminated sessions are hidden unless asked for
    listed = controller.request("GET", "/v1/sessions?scope_id=p_1234567890").json()["items"]
    assert auth["session_id"] not in {s["id"] for s in listed}
    listed = controller.request(
        "GET", "/v1/sessions?scope_id=p_1234567890&include_terminated=true"
    ).json()["items"]
    assert auth["session_id"] in {s["id"] for s in listed}


def test_authorize_by_name_and_host_source(controller) -> None:
    by_name = controller.request(
        "POST",
        "/v1/targets/Generated target using host sources:authorize-session",
        json={"scope_id": "p_1234567890"},
    )
    assert by_name.status_code == 200, by_name.text
    item = by_name.json()
    assert item["target_id"] == "ttcp_0987654321"
    assert item["host_id"] == "hst_1234567890"
    assert item["host_set_id"] == "hsst_1234567890"
    assert item["endpoint"] == "tcp://localhost:22"


def test_user_cannot_touch_admin_session(controller) -> None:
    auth = controller.request(
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={}
    ).json()
    sid = auth["session_id"]
    assert controller.request("GET", f"/v1/sessions/{sid}", who="user").status_code == 403
    cancel = controller.request(
        "POST", f"/v1/sessions/{sid}:cancel", who="user", json={"version": 1}
    )
    assert cancel.status_code == 403
    assert cancel.json()["kind"] == "PermissionDenied"
    listed = controller.request("GET", "/v1/sessions?scope_id=p_1234567890", who="user")
    assert listed.status_code == 200
    assert sid not in {s["id"] for s in listed.json()["items"]}

    # but the user's own session is theirs to read and cancel
    own = controller.request(
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", who="user", json={}
    ).json()
    listed = controller.request("GET", "/v1/sessions?scope_id=p_1234567890", who="user").json()
    assert [s["id"] for s in listed["items"]] == [own["session_id"]]
    assert listed["items"][0]["authorized_actions"] == ["read:self", "cancel:self"]
    read = controller.request("GET", f"/v1/sessions/{own['session_id']}", who="user")
    assert read.status_code == 200
    cancel = controller.request(
        "POST", f"/v1/sessions/{own['session_id']}:cancel", who="user", json={"version": 1}
    )
    assert cancel.status_code == 200
    # user cannot create things or read the org's users
    assert controller.request("GET", "/v1/users", who="user").status_code == 403
    create = controller.request(
        "POST", "/v1/targets", who="user", json={"scope_id": "p_1234567890", "name": "x"}
    )
    assert create.status_code == 403


def test_session_expires(controller) -> None:
    target = controller.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": "p_1234567890",
            "name": "short-lived",
            "address": "127.0.0.1",
            "session_max_seconds": 1,
            "attributes": {"default_port": 5432},
        },
    )
    assert target.status_code == 200, target.text
    tid = target.json()["id"]
    sid = controller.request("POST", f"/v1/targets/{tid}:authorize-session", json={}).json()[
        "session_id"
    ]

    def done():  # noqa: ANN202
        item = controller.request("GET", f"/v1/sessions/{sid}").json()
        return item if item["status"] == "terminated" else None

    final = wait_for(done, timeout=15)
    assert final and final["termination_reason"] == "timed out"
    assert datetime.fromisoformat(final["expiration_time"].replace("Z", "+00:00")) <= datetime.now(
        UTC
    )
