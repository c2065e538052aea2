"""API fuzzing (schemathesis): every operation of the controller's own OpenAPI document
(``/v1/openapi.json``), fed generated requests, valid ones and invalid ones, as ``admin``
and as ``user``, against a live controller on 127.0.0.1. Every answer must be documented:

- no 5xx (``not_a_server_error``);
- its status code listed for the operation (``status_code_conformance``), its content
  type the documented one (``content_type_conformance``) and its body valid against the
  documented schema (``response_schema_conformance``);
- a request the document says is invalid is refused with a 4xx (``negative_data_rejection``,
  on the negative cases only).

``positive_data_acceptance`` (a schema-valid request must get a 2xx) is left out on
purpose: the document cannot say which IDs exist, who may act on them, or the business
rules (login name alphabet, uniqueness, a target's address or host sources, optimistic
locking versions), so valid-looking requests are rightly refused with 400/403/404; that
check would only measure the generator's luck. To reach the 200 answers anyway, positive
cases have their IDs replaced, half the time, by real ones of the right kind (seeded and
created below): their response bodies are then checked against the document too.

The fuzzer runs on a controller of this module's own (it renames, re-grants and cancels
what it finds; the session's shared ``controller`` must stay as other tests expect it).
Examples per operation and generation mode: ``CI_EXAMPLES`` in the ``ci`` hypothesis
profile, ``HARDENING_EXAMPLES`` in ``hardening`` (`nox -s hardening`);
``BCONNECT_FUZZ_API_EXAMPLES`` overrides both. With ``BCONNECT_HARDENING_REPORT`` set, the
totals are merged into that JSON file as ``{"api_fuzzing": {...}}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from support.controller import RunningController, new_database, start_controller

from bconnect.controller.seed import DEV

pytestmark = pytest.mark.all_databases

CI_EXAMPLES = 8
HARDENING_EXAMPLES = 150
WHO = ("admin", "user")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


def examples_per_operation() -> int:
    if override := os.environ.get("BCONNECT_FUZZ_API_EXAMPLES"):
        return int(override)
    if os.environ.get("HYPOTHESIS_PROFILE") == "hardening":
        return HARDENING_EXAMPLES
    return CI_EXAMPLES


# ---------------------------------------------------------------- the controller under test


@pytest.fixture(scope="module")
def fuzz_controller(
    request: pytest.FixtureRequest, db_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningController]:
    running = start_controller(new_database(request, db_backend, tmp_path_factory.mktemp("fuzz")))
    yield running
    running.stop()


def _created(ctl: RunningController, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = ctl.request("POST", path, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def real_ids(ctl: RunningController) -> dict[str, list[str]]:
    """IDs that exist, by collection: the dev seed's and a few of each kind made here, so
    that anchored cases reach the handlers' success paths. The identities the fuzzer
    uses (their users, accounts and tokens) are left out: it must not lock itself out."""
    ids: dict[str, list[str]] = {
        "scopes": ["global", DEV["org"], DEV["project"]],
        "auth-methods": [DEV["auth_method"]],
        "host-catalogs": [DEV["host_catalog"]],
        "host-sets": [DEV["host_set"]],
        "hosts": [DEV["host"]],
        "targets": [DEV["target"], DEV["host_target"]],
    }
    project = DEV["project"]
    user = _created(ctl, "/v1/users", {"scope_id": "global", "name": "fuzz user"})
    account = _created(
        ctl,
        "/v1/accounts",
        {
            "auth_method_id": DEV["auth_method"],
            "attributes": {"login_name": "fuzzer", "password": "fuzzer-password"},
        },
    )
    role = _created(ctl, "/v1/roles", {"scope_id": DEV["org"], "name": "fuzz role"})
    store = _created(ctl, "/v1/credential-stores", {"scope_id": project, "name": "fuzz"})
    cred = _created(
        ctl,
        "/v1/credentials",
        {
            "credential_store_id": store["id"],
            "type": "username_password",
            "attributes": {"username": "u", "password": "p"},
        },
    )
    session = ctl.request("POST", f"/v1/targets/{DEV['target']}:authorize-session", json={})
    assert session.status_code == 200, session.text
    ids.update(
        {
            "users": [user["id"]],
            "accounts": [account["id"]],
            "roles": [role["id"]],
            "credential-stores": [store["id"]],
            "credentials": [cred["id"]],
            "sessions": [session.json()["session_id"]],
        }
    )
    return ids


# Body and query fields naming a parent, and the collection their IDs come from.
PARENT_FIELDS = {
    "scope_id": "scopes",
    "auth_method_id": "auth-methods",
    "host_catalog_id": "host-catalogs",
    "credential_store_id": "credential-stores",
    "host_id": "hosts",
    "primary_auth_method_id": "auth-methods",
}
MEMBER_LISTS = {
    "account_ids": "accounts",
    "principal_ids": "users",
    "host_ids": "hosts",
    "host_source_ids": "host-sets",
    "brokered_credential_source_ids": "credentials",
    "injected_application_credential_source_ids": "credentials",
    "grant_scope_ids": "scopes",
}


GRANTS = [
    "ids=*;type=*;actions=read",
    "ids=*;type=target;actions=list,authorize-session",
    "ids={{.User.Id}};actions=read",
]
LOGINS = [("fuzzer", "fuzzer-password"), ("admin", "password")]


def anchor(case: Any, ids: dict[str, list[str]], draw: st.DrawFn, admin: requests.Session) -> None:
    """Point a positive case at real resources: its path ID (and then, mostly, the
    resource's current version), parent IDs in query and body, ID lists, grants, and a
    login that exists."""
    collection = case.operation.path.split("/")[2].split("{")[0].split(":")[0]
    body = case.body if isinstance(case.body, dict) else {}
    if case.path_parameters and "id" in case.path_parameters and case.method != "DELETE":
        pool = ids.get(collection)
        if pool:
            rid = case.path_parameters["id"] = draw(st.sampled_from(pool))
            if isinstance(body.get("version"), int | float) and draw(st.integers(0, 3)):
                current = admin.get(f"/v1/{collection}/{rid}")
                if current.status_code == 200:
                    body["version"] = current.json()["version"]
    declared = {p.name for p in case.operation.query}
    for name, coll in PARENT_FIELDS.items():
        if name in declared and ids.get(coll):
            case.query = {**(case.query or {}), name: draw(st.sampled_from(ids[coll]))}
    for name, coll in PARENT_FIELDS.items():
        if name in body and ids.get(coll):
            body[name] = draw(st.sampled_from(ids[coll]))
    for name, coll in MEMBER_LISTS.items():
        if isinstance(body.get(name), list) and ids.get(coll):
            body[name] = draw(st.lists(st.sampled_from(ids[coll]), max_size=2))
    if isinstance(body.get("grant_strings"), list):
        body["grant_strings"] = draw(st.lists(st.sampled_from(GRANTS), max_size=2))
    attrs = body.get("attributes")
    if isinstance(attrs, dict) and "login_name" in attrs and "password" in attrs:
        attrs["login_name"], attrs["password"] = draw(st.sampled_from(LOGINS))


# ---------------------------------------------------------------- the run


class _BaseUrlSession(requests.Session):
    def __init__(self, base_url: str, token: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", 30)
        return super().request(method, self.base_url + url, *args, **kwargs)


@dataclass
class Totals:
    operations: int = 0
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    # operation -> status -> count
    by_operation: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # (operation, check title, status) -> first message
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)
    failed_requests: int = 0

    def count(self, operation: str, status: int) -> None:
        code = str(status)
        self.requests += 1
        self.by_status[code] = self.by_status.get(code, 0) + 1
        per_op = self.by_operation.setdefault(operation, {})
        per_op[code] = per_op.get(code, 0) + 1

    def without_success(self) -> list[str]:
        return sorted(
            op for op, codes in self.by_operation.items() if not any(c[0] == "2" for c in codes)
        )

    def as_json(self, seconds: float) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "distinct_failures": len(self.failures),
            "status_codes": dict(sorted(self.by_status.items())),
            "operations_without_2xx": self.without_success(),
            "skipped": self.skipped,
            "seconds": round(seconds, 1),
            "failures": [
                {"operation": op, "check": title, "status": status}
                for (op, title, status) in sorted(self.failures)
            ],
        }


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    tokens: dict[str, str],
    ids: dict[str, list[str]],
    totals: Totals,
    examples: int,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    checks = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS
    session = requests.Session()
    admin = _BaseUrlSession(base_url, tokens["admin"])

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        who = data.draw(st.sampled_from(WHO), label="who")
        if mode == GenerationMode.POSITIVE and data.draw(st.integers(0, 3), label="anchored"):
            anchor(case, ids, data.draw, admin)
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        totals.count(operation.label, response.status_code)
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            totals.failed_requests += 1
            for failure in group.exceptions:
                _record(totals, operation, failure, response, case, who)

    try:
        run()
    except Unsatisfiable:
        totals.skipped.append(f"{operation.label} ({mode.value}: nothing to generate)")


def _record(totals: Totals, operation: Any, failure: Failure, response: Any, case: Any, who: str):
    key = (operation.label, failure.title, response.status_code)
    if key not in totals.failures:
        curl = case.as_curl_command(headers={"Authorization": f"Bearer <{who}>"})
        totals.failures[key] = f"{failure.message}\n    {response.text[:400]}\n    {curl[:600]}"


def write_report(backend: str, section: dict[str, Any]) -> None:
    path = os.environ.get("BCONNECT_HARDENING_REPORT")
    if not path:
        return
    report_path = Path(path)
    report: dict[str, Any] = {}
    if report_path.exists() and report_path.read_text().strip():
        report = json.loads(report_path.read_text())
    fuzzing = report.setdefault("api_fuzzing", {})
    fuzzing.setdefault("backends", {})[backend] = section
    backends = fuzzing["backends"].values()
    fuzzing.update(
        {
            "profile": os.environ.get("HYPOTHESIS_PROFILE", "ci"),
            "examples_per_operation_and_mode": examples_per_operation(),
            "operations": max(b["operations"] for b in backends),
            "requests": sum(b["requests"] for b in backends),
            "failed_requests": sum(b["failed_requests"] for b in backends),
            "distinct_failures": sum(b["distinct_failures"] for b in backends),
        }
    )
    report_path.write_text(json.dumps(report, indent=2) + "\n")


# about 10 ms a request on 2 shared cores; the suite's default timeout (120 s) fits the ci run
@pytest.mark.timeout(60 + 20 * examples_per_operation())
def test_api_conforms_to_its_document(fuzz_controller: RunningController, db_backend: str) -> None:
    ctl = fuzz_controller
    doc = requests.get(f"{ctl.addr}/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    # a body over the API's size limit is refused before it is parsed: 413 is a refusal
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    tokens = {who: ctl.token(who) for who in WHO}
    ids = real_ids(ctl)
    totals = Totals()
    examples = examples_per_operation()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        totals.operations += 1
        # a string path ID is all some operations take: nothing there can be made invalid
        # (and hypothesis would spend ~0.5 s finding that out, for each of them)
        negatable = len(operation.query) or operation.body
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for mode in modes if negatable else modes[:1]:
            fuzz_operation(operation, mode, ctl.addr, tokens, ids, totals, examples)
    seconds = time.monotonic() - started
    write_report(db_backend, totals.as_json(seconds))
    print(
        f"\napi fuzzing ({db_backend}): {totals.operations} operations, {totals.requests} "
        f"requests in {seconds:.1f}s, {totals.failed_requests} failed, "
        f"{len(totals.failures)} distinct failures; status codes {totals.by_status}; "
        f"never 2xx: {totals.without_success()}"
    )
    problems = [
        f"{op} [{title}, {status}]: {message}"
        for (op, title, status), message in sorted(totals.failures.items())
    ]
    assert not problems, f"{len(problems)} distinct failures:\n\n" + "\n\n".join(problems)


def test_longest_documented_query_reaches_the_api(fuzz_controller: RunningController) -> None:
    """Found by the fuzzer: a filter of the documented maximum (4096 characters) in 4-byte
    UTF-8 is 48 KiB percent-encoded, past h11's 16 KiB default request head; uvicorn
    answered that with a text/plain 400 the document does not describe."""
    resp = fuzz_controller.request("GET", "/v1/scopes", params={"filter": "\U0001f600" * 4096})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["kind"] == "InvalidArgument"


def test_nul_characters_are_refused(fuzz_controller: RunningController) -> None:
    """Found by the fuzzer: a NUL in a string was a 500 on PostgreSQL (its text type
    cannot hold one) and stored as-is on SQLite; now a 400 on both."""
    ctl = fuzz_controller
    for method, path, kw in [
        ("POST", "/v1/users", {"json": {"scope_id": "global", "description": "a\x00b"}}),
        ("POST", "/v1/users", {"json": {"scope_id": "glo\x00bal"}}),
        ("GET", "/v1/users/u_\x00", {}),
        ("GET", "/v1/scopes", {"params": {"scope_id": "global\x00"}}),
    ]:
        resp = ctl.request(method, path, **kw)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["kind"] == "InvalidArgument"


def test_authorize_session_with_a_newline_in_the_id(fuzz_controller: RunningController) -> None:
    """Found by the fuzzer: ``{id:path}`` (``.*``) stops at a newline, so the request fell
    through to the GET/DELETE route of /v1/targets/{id} and got an undocumented 405."""
    resp = fuzz_controller.request("POST", "/v1/targets/a%0Ab:authorize-session", json={})
    assert resp.status_code == 404, resp.text
    assert resp.json()["op"] == "controller.api.authorize"
