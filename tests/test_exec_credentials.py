"""Brokered credentials in ``-exec``: ``{{credential.NAME.FIELD}}`` templates, secrets only
through ``-exec-env`` or a 0600 key file, never on a command line — checked in
``/proc/*/cmdline`` while the program runs, through the CLI and the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_bconnect
from support.constants import PROJECT
from support.dataplane import add_credential, make_target
from support.plugin_dists import admin_env

from bconnect import Client
from bconnect.core.credentials import SessionCredential
from bconnect.core.credtemplates import TemplateError, check_argv, parse_exec_env, render

PASSWORD = "s3cret-pa55word-7f1c"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key-0d9e\n-----END OPENSSH PRIVATE KEY-----"

#: the program run with -exec: looks for the secret in every process's command line
#: while it runs, and reports what it was given
CHILD = r"""
import json, os, pathlib, stat, sys
secret = os.environ["SECRET_PW"]
seen = []
for proc in pathlib.Path("/proc").iterdir():
    try:
        if secret.encode() in (proc / "cmdline").read_bytes():
            seen.append(proc.name)
    except OSError:
        pass
key = pathlib.Path(sys.argv[2])
print(json.dumps({
    "user": sys.argv[1],
    "password": secret,
    "in_cmdlines": seen,
    "key": key.read_text(),
    "key_mode": oct(stat.S_IMODE(key.stat().st_mode)),
    "key_path": str(key),
    "argv": sys.argv[1:],
}))
"""


def _credential(name: str, **fields: Any) -> SessionCredential:
    return SessionCredential(source_id=f"cred_{name}", source_name=name, fields=fields)


# ---------------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    "arg",
    [
        "{{credential.db.password}}",
        "--password={{ credential.db.password }}",
        "{{credential.key.private_key}}",
        "{{credential.key.private_key_passphrase}}",
        "{{credential.api.token}}",  # a JSON credential's field: secret unless known not
    ],
)
def test_a_secret_in_argv_is_refused_naming_the_safe_form(arg) -> None:
    with pytest.raises(TemplateError) as info:
        check_argv(["-h", "127.0.0.1", arg])
    message = str(info.value)
    assert "\n" not in message and "-exec-env VAR={{credential." in message
    if arg.endswith("private_key}}"):
        assert "private_key_file" in message


def test_what_argv_may_carry() -> None:
    check_argv(["{{credential.db.username}}", "-i", "{{credential.key.private_key_file}}"])
    check_argv(["{{credential.db.domain}}", "{{boundary.port}}", "plain"])


def test_parse_exec_env() -> None:
    assert parse_exec_env(["A=1", "PGPASSWORD={{credential.db.password}}", "A=2=x"]) == {
        "A": "2=x",
        "PGPASSWORD": "{{credential.db.password}}",
    }
    for bad in ("NOEQUALS", "1X=y", "=v", "BAD-NAME=v"):
        with pytest.raises(TemplateError):
            parse_exec_env([bad])


def test_render_by_name_or_id_and_clear_failures() -> None:
    creds = [
        _credential("db", username="app", password=PASSWORD),
        _credential("key", private_key=KEY),
    ]
    written: list[str] = []

    def key_file(credential: SessionCredential) -> str:
        written.append(credential.source_id)
        return "/tmp/k"

    assert render(
        "{{credential.db.username}}@{{credential.cred_db.password}}", creds, key_file
    ) == (f"app@{PASSWORD}")
    assert render("-i{{credential.key.private_key_file}}", creds, key_file) == "-i/tmp/k"
    assert written == ["cred_key"]
    for text, words in (
        (
            "{{credential.nope.username}}",
            'no brokered credential is named "nope" (brokered: db, key)',
        ),
        ("{{credential.db.domain}}", 'no field "domain" (fields: password, username)'),
        ("{{credential.db.private_key_file}}", "has no private key"),
    ):
        with pytest.raises(TemplateError, match="credential") as info:
            render(text, creds, key_file)
        assert words in str(info.value)
    twins = [_credential("db", username="a"), _credential("db", username="b")]
    with pytest.raises(TemplateError, match="use the credential's id"):
        render("{{credential.db.username}}", twins, key_file)


# ---------------------------------------------------------------------- end to end
def _target_with_credentials(ctl: Any, port: int) -> str:
    target = make_target(ctl, port)
    add_credential(ctl, target, "username_password", {"username": "app", "password": PASSWORD})
    add_credential(ctl, target, "ssh_private_key", {"username": "deploy", "private_key": KEY})
    return target


def _named(ctl: Any, target: str) -> tuple[str, str]:
    """The two credentials' ids (by type): templates may use ids as names."""
    ids = ctl.request("GET", f"/v1/targets/{target}").json()["brokered_credential_source_ids"]
    by_type = {}
    for cid in ids:
        by_type[ctl.request("GET", f"/v1/credentials/{cid}").json()["type"]] = cid
    return by_type["username_password"], by_type["ssh_private_key"]


def _check_child_output(out: str) -> None:
    report = json.loads(out)
    assert report["user"] == "app" and report["password"] == PASSWORD
    assert report["in_cmdlines"] == []  # the secret was in no process's command line
    assert PASSWORD not in " ".join(report["argv"]) and KEY not in " ".join(report["argv"])
    assert report["key"] == KEY + "\n" and report["key_mode"] == "0o600"
    assert not Path(report["key_path"]).exists()  # removed when the run ended


def test_connect_exec_with_credential_templates(dataplane, echo_server, tmp_path) -> None:
    target = _target_with_credentials(dataplane, echo_server.port)
    login, key = _named(dataplane, target)
    env = admin_env(dataplane, tmp_path)
    result = run_bconnect(
        "connect",
        "-target-id",
        target,
        "-exec",
        sys.executable,
        "-exec-env",
        f"SECRET_PW={{{{credential.{login}.password}}}}",
        "--",
        "-c",
        CHILD,
        f"{{{{credential.{login}.username}}}}",
        f"{{{{ credential.{key}.private_key_file }}}}",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    # the child's report is the last line (connect printed its listening block first)
    _check_child_output(result.stdout.strip().splitlines()[-1])


def test_a_secret_template_in_argv_is_refused_before_any_session(
    dataplane, echo_server, tmp_path
) -> None:
    target = _target_with_credentials(dataplane, echo_server.port)
    env = admin_env(dataplane, tmp_path)
    for command in (
        ["connect", "-target-id", target, "-exec", "echo", "--", "{{credential.db.password}}"],
        ["ssh", "-target-id", target, "--", "-o", "X={{credential.db.private_key}}"],
    ):
        result = run_bconnect(*command, env=env)
        assert result.returncode != 0 and result.stdout == ""
        assert "would put a secret on the command line" in result.stderr
        assert "-exec-env VAR=" in result.stderr
        assert "Traceback" not in result.stderr
    listed = dataplane.request(
        "GET", "/v1/sessions", params={"scope_id": PROJECT, "include_terminated": "true"}
    ).json()
    assert [s for s in listed.get("items", []) if s["target_id"] == target] == []


def test_an_unknown_credential_name_ends_the_run_with_one_line(
    dataplane, echo_server, tmp_path
) -> None:
    target = _target_with_credentials(dataplane, echo_server.port)
    env = admin_env(dataplane, tmp_path)
    result = run_bconnect(
        "connect",
        "-target-id",
        target,
        "-exec",
        "echo",
        "--",
        "{{credential.nope.username}}",
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert (
        'Failed to collect args: {{credential.nope...}}: no brokered credential is named "nope"'
        in result.stderr
    )


def test_library_run_with_execadmin_env(dataplane, echo_server) -> None:
    target = _target_with_credentials(dataplane, echo_server.port)
    login, key = _named(dataplane, target)
    with Client(dataplane.addr, dataplane.token("admin")) as client:
        done = client.run(
            [
                sys.executable,
                "-c",
                CHILD,
                f"{{{{credential.{login}.username}}}}",
                f"{{{{credential.{key}.private_key_file}}}}",
            ],
            target,
            exec_env={"SECRET_PW": f"{{{{credential.{login}.password}}}}"},
            capture_output=True,
        )
        assert done.exit_code == 0, done.stderr
        _check_child_output(str(done.stdout).strip())
        with pytest.raises(TemplateError):
            client.run(["echo", "{{credential.x.password}}"], target)


def test_a_secret_template_through_a_helper_option_is_refused(
    dataplane, echo_server, tmp_path
) -> None:
    """A helper builds arguments from its options: those are checked too, at launch."""
    target = _target_with_credentials(dataplane, echo_server.port)
    login, _key = _named(dataplane, target)
    env = admin_env(dataplane, tmp_path)
    result = run_bconnect(
        "ssh",
        "-target-id",
        target,
        "-style",
        "ssh",
        "-username",
        f"{{{{credential.{login}.password}}}}",
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "would put a secret on the command line" in result.stderr
