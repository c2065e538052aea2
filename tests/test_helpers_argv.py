"""The built-in connect helpers as pure functions: argv, env, files and consumed
credentials for each credential type, the placement of the arguments after ``--``, and
the rule that no secret is ever on a command line."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from bconnect.core.credentials import SessionCredential
from bconnect.core.launch import check_launch, prepare_exec
from bconnect.plugins import ConnectContext, Credential, HelperError, Launch
from bconnect.plugins import http as http_helper
from bconnect.plugins import kube as kube_helper
from bconnect.plugins import mysql as mysql_helper
from bconnect.plugins import postgres as postgres_helper
from bconnect.plugins import redis as redis_helper
from bconnect.plugins import ssh as ssh_helper
from bconnect.plugins.manager import validate_helpers

PORT = 40123
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)  # no final newline, as Boundary stores keys read from files
PASSWORD = "s3cret:pass\\word#1"

UP = Credential(
    "credup_1111111111", "username_password", {"username": "alice", "password": PASSWORD}
)
UP2 = Credential(
    "credup_2222222222", "username_password", {"username": "carol", "password": "other-pw-2"}
)
SPK = Credential(
    "credspk_111111111", "ssh_private_key", {"username": "keyuser", "private_key": KEY}
)
SPK_PASSPHRASE = Credential(
    "credspk_222222222",
    "ssh_private_key",
    {"username": "keyuser", "private_key": KEY, "private_key_passphrase": "phrase-1234"},
)
PW = Credential("credpw_1111111111", "password", {"password": "just-a-password"})
JSON = Credential("credjson_11111111", "json", {"api_key": "json-secret-value"})

MODULES = {
    "ssh": ssh_helper,
    "postgres": postgres_helper,
    "http": http_helper,
    "kube": kube_helper,
    "mysql": mysql_helper,
    "redis": redis_helper,
}


def ctx(
    helper: str,
    *credentials: Credential,
    passthrough: tuple[str, ...] = (),
    target_id: str = "ttcp_1234567890",
    host_id: str = "",
    listen_host: str = "127.0.0.1",
    endpoint: str = "tcp://10.0.0.5:6443",
    known_hosts: str = "",
    **options: Any,
) -> ConnectContext:
    """A context as the core builds it; options named with ``_`` for ``-``."""
    return ConnectContext(
        helper=helper,
        host=listen_host,
        port=PORT,
        session_id="s_1234567890",
        target_id=target_id,
        host_id=host_id,
        endpoint=endpoint,
        expiration=datetime(2030, 1, 1, tzinfo=UTC),
        credentials=credentials,
        options=options,
        passthrough=passthrough,
        known_hosts=known_hosts,
    )


def launch(helper: str, *credentials: Credential, **kw: Any) -> Launch:
    """The helper's launch; the options given must be ones the helper declares (by the
    key the core hands them over under)."""
    (info,) = MODULES[helper].bconnect_connect_helpers()
    keys = {o.key for o in info.options}
    context_args = {"passthrough", "target_id", "host_id", "listen_host", "endpoint", "known_hosts"}
    assert set(kw) - context_args <= keys, f"{helper} has no option {set(kw) - keys}"
    result = MODULES[helper].bconnect_connect_launch(
        helper=helper, context=ctx(helper, *credentials, **kw)
    )
    assert isinstance(result, Launch)
    return result


# ---------------------------------------------------------------------- ssh
def test_ssh_plain_uses_the_target_id_as_host_key_alias() -> None:
    result = launch("ssh")
    assert result.argv == [
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "HostKeyAlias=ttcp_1234567890",
        "127.0.0.1",
    ]
    assert (result.env, result.files, result.consumed) == ({}, {}, set())


def test_ssh_host_id_alias_username_and_remote_command() -> None:
    result = launch("ssh", host_id="hst_1234567890", username="bob", remote_command="uptime -p")
    assert result.argv == [
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "HostKeyAlias=hst_1234567890",
        "-l",
        "bob",
        "127.0.0.1",
        "uptime -p",
    ]
    explicit = launch("ssh", host_id="hst_1234567890", host_key_alias="web-1")
    assert "HostKeyAlias=web-1" in explicit.argv


def test_ssh_passthrough_goes_first_as_in_boundary() -> None:
    result = launch(
        "ssh", passthrough=("-v", "-o", "StrictHostKeyChecking=no"), remote_command="id"
    )
    assert result.argv[:4] == ["ssh", "-v", "-o", "StrictHostKeyChecking=no"]
    assert result.argv[4:6] == ["-p", str(PORT)]
    assert result.argv[-2:] == ["127.0.0.1", "id"]


def test_ssh_private_key_goes_to_a_file() -> None:
    result = launch("ssh", SPK, UP)
    assert result.argv == [
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "HostKeyAlias=ttcp_1234567890",
        "-i",
        "{{file.key}}",
        "-o",
        "IdentitiesOnly=yes",
        "-l",
        "keyuser",
        "127.0.0.1",
    ]
    assert result.files == {"key": KEY + "\n"}  # ssh wants the final newline
    assert result.consumed == {SPK.source_id}  # the password one is printed
    assert result.env == {}


def test_ssh_username_option_wins_over_the_brokered_one() -> None:
    result = launch("ssh", SPK, username="root")
    assert result.argv[-3:] == ["-l", "root", "127.0.0.1"]


def test_ssh_key_with_a_passphrase_is_used_but_printed() -> None:
    result = launch("ssh", SPK_PASSPHRASE)
    assert "{{file.key}}" in result.argv
    assert result.consumed == set()  # the user needs to see the passphrase


def test_ssh_username_password_only_defaults_to_sshpass() -> None:
    result = launch("ssh", UP, JSON)
    assert result.argv == [
        "sshpass",
        "-e",
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "NoHostAuthenticationForLocalhost=yes",
        "-l",
        "alice",
        "127.0.0.1",
    ]
    assert result.env == {"SSHPASS": PASSWORD}
    assert result.files == {}
    assert result.consumed == {UP.source_id}


def test_sshpass_passthrough_goes_to_ssh_and_first_credential_wins() -> None:
    result = launch(
        "ssh",
        UP,
        UP2,
        style="sshpass",
        username="bob",
        remote_command="echo hi",
        passthrough=("-o", "UserKnownHostsFile=/dev/null"),
    )
    assert result.argv[:5] == ["sshpass", "-e", "ssh", "-o", "UserKnownHostsFile=/dev/null"]
    assert result.argv[-4:] == ["-l", "bob", "127.0.0.1", "echo hi"]
    assert result.env == {"SSHPASS": PASSWORD}
    assert result.consumed == {UP.source_id}
    aliased = launch("ssh", UP, style="sshpass", host_key_alias="web-1")
    assert "HostKeyAlias=web-1" in aliased.argv


def test_ssh_style_ssh_with_username_password_uses_only_the_name() -> None:
    result = launch("ssh", UP, style="ssh")
    assert result.argv[0] == "ssh"
    assert result.argv[-3:] == ["-l", "alice", "127.0.0.1"]
    assert (result.env, result.files, result.consumed) == ({}, {}, set())


def test_sshpass_needs_a_password() -> None:
    with pytest.raises(HelperError, match="Password is required when using sshpass"):
        launch("ssh", SPK, style="sshpass")
    with pytest.raises(HelperError, match="Password is required"):
        launch("ssh", style="sshpass")


def test_ssh_target_uses_no_host_authentication_and_consumes_nothing() -> None:
    result = launch("ssh", SPK, UP, target_id="tssh_1234567890")
    assert result.argv == [
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "NoHostAuthenticationForLocalhost=yes",
        "127.0.0.1",
    ]
    assert (result.files, result.consumed) == ({}, set())
    with pytest.raises(HelperError, match="Credentials must be consumed"):
        launch("ssh", UP, style="sshpass", target_id="tssh_1234567890")


def test_ssh_target_checks_the_workers_key_when_the_controller_serves_it() -> None:
    line = "tssh_1234567890 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPretend\n"
    result = launch("ssh", SPK, target_id="tssh_1234567890", known_hosts=line, username="bob")
    assert result.argv == [
        "ssh",
        "-p",
        str(PORT),
        "-o",
        "HostKeyAlias=tssh_1234567890",
        "-o",
        "UserKnownHostsFile={{file.known_hosts}}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-l",
        "bob",
        "127.0.0.1",
    ]
    assert (result.files, result.consumed) == ({"known_hosts": line}, set())
    # the user's own -host-key-alias wins, with their own known_hosts (as Boundary)
    aliased = launch("ssh", target_id="tssh_1234567890", known_hosts=line, host_key_alias="mine")
    assert "HostKeyAlias=mine" in aliased.argv and aliased.files == {}


def test_putty() -> None:
    result = launch("ssh", SPK, style="putty")
    assert result.argv == [
        "putty",
        "-P",
        str(PORT),
        "-i",
        "{{file.key}}",
        "-l",
        "keyuser",
        "127.0.0.1",
    ]
    assert result.consumed == {SPK.source_id}
    assert launch("ssh", style="putty", username="u").argv == [
        "putty",
        "-P",
        str(PORT),
        "-l",
        "u",
        "127.0.0.1",
    ]


# ---------------------------------------------------------------------- postgres
def test_postgres_without_credentials() -> None:
    result = launch("postgres", username="bob", dbname="app")
    assert result.argv == [
        "psql",
        "-p",
        str(PORT),
        "-h",
        "127.0.0.1",
        "-d",
        "app",
        "-U",
        "bob",
    ]
    assert (result.env, result.files, result.consumed) == ({}, {}, set())


def test_postgres_brokered_password_goes_to_a_pgpass_file() -> None:
    result = launch("postgres", UP, JSON, passthrough=("-c", "select 1"))
    assert result.argv == [
        "psql",
        "-c",
        "select 1",
        "-p",
        str(PORT),
        "-h",
        "127.0.0.1",
        "-U",
        "alice",
    ]
    assert result.env == {"PGPASSFILE": "{{file.pgpass}}"}
    assert "PGPASSWORD" not in result.env
    assert result.files == {"pgpass": f"127.0.0.1:{PORT}:*:alice:s3cret\\:pass\\\\word#1\n"}
    assert result.consumed == {UP.source_id}


def test_postgres_username_option_and_password_credential() -> None:
    result = launch("postgres", UP, username="bob")
    assert result.argv[-2:] == ["-U", "bob"]
    assert result.files["pgpass"].startswith(f"127.0.0.1:{PORT}:*:bob:")
    only_password = launch("postgres", PW, username="svc")
    assert only_password.files == {"pgpass": f"127.0.0.1:{PORT}:*:svc:just-a-password\n"}
    assert only_password.consumed == {PW.source_id}


def test_postgres_pgpass_escaping_and_newlines() -> None:
    assert postgres_helper.pgpass_line("::1", 5, "", "a:b\\c", "p") == "\\:\\:1:5:*:a\\:b\\\\c:p\n"
    bad = Credential(
        "credup_3333333333", "username_password", {"username": "u", "password": "a\nb"}
    )
    with pytest.raises(HelperError, match="newline"):
        launch("postgres", bad)


# ---------------------------------------------------------------------- http
def test_http_default_and_path() -> None:
    assert launch("http").argv == ["curl", f"http://127.0.0.1:{PORT}"]
    assert launch("http", path="/hello").argv == ["curl", f"http://127.0.0.1:{PORT}/hello"]
    assert launch("http", path="hello").argv == ["curl", f"http://127.0.0.1:{PORT}/hello"]


def test_http_host_scheme_method_and_passthrough() -> None:
    result = launch(
        "http",
        UP,
        scheme="https",
        host="app.internal/",
        path="/v1/x",
        method="POST",
        passthrough=("-sS", "-i"),
    )
    assert result.argv == [
        "curl",
        "-sS",
        "-i",
        "-X",
        "POST",
        "-H",
        "Host: app.internal",
        "--resolve",
        f"app.internal:{PORT}:127.0.0.1",
        f"https://app.internal:{PORT}/v1/x",
    ]
    assert (result.env, result.files, result.consumed) == ({}, {}, set())


def test_http_ipv6_listener() -> None:
    assert launch("http", listen_host="::1").argv == ["curl", f"http://[::1]:{PORT}"]
    named = launch("http", listen_host="::1", host="web")
    assert named.argv[-2:] == [f"web:{PORT}:[::1]", f"http://web:{PORT}"]


# ---------------------------------------------------------------------- kube
def test_kube() -> None:
    assert launch("kube", passthrough=("get", "pods")).argv == [
        "kubectl",
        "get",
        "pods",
        "--tls-server-name",
        "10.0.0.5",
        "--server",
        f"https://127.0.0.1:{PORT}",
    ]
    assert launch("kube", host="k8s.internal").argv[1:3] == ["--tls-server-name", "k8s.internal"]
    assert launch("kube", scheme="http").argv == ["kubectl", "--server", f"http://127.0.0.1:{PORT}"]
    assert launch("kube", endpoint="").argv == ["kubectl", "--server", f"https://127.0.0.1:{PORT}"]
    assert launch("kube", UP).consumed == set()


# ---------------------------------------------------------------------- mysql
def test_mysql_brokered_credential_goes_to_a_defaults_file() -> None:
    result = launch("mysql", UP, dbname="app", passthrough=("-e", "select 1"))
    assert result.argv == [
        "mysql",
        "--defaults-file={{file.cnf}}",  # must stay mysql's first argument
        "-e",
        "select 1",
        "-P",
        str(PORT),
        "-h",
        "127.0.0.1",
        "-D",
        "app",
    ]
    assert result.files == {
        "cnf": '[client]\nuser="alice"\npassword="s3cret:pass\\\\word#1"\n',
    }
    assert result.consumed == {UP.source_id}
    assert result.env == {}


def test_mysql_without_credentials_prompts() -> None:
    result = launch("mysql", username="bob")
    assert result.argv == ["mysql", "-p", "-P", str(PORT), "-h", "127.0.0.1", "-u", "bob"]
    assert (result.files, result.consumed) == ({}, set())
    assert mysql_helper.option_value('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


# ---------------------------------------------------------------------- redis
def test_redis() -> None:
    plain = launch("redis")
    assert plain.argv == ["redis-cli", "-h", "127.0.0.1", "-p", str(PORT)]
    assert plain.env == {}
    brokered = launch("redis", UP, passthrough=("ping",))
    assert brokered.argv == [
        "redis-cli",
        "ping",
        "-h",
        "127.0.0.1",
        "-p",
        str(PORT),
        "--user",
        "alice",
    ]
    assert brokered.env == {"REDISCLI_AUTH": PASSWORD}
    assert brokered.consumed == {UP.source_id}
    password_only = launch("redis", PW)
    assert password_only.argv == ["redis-cli", "-h", "127.0.0.1", "-p", str(PORT)]
    assert password_only.env == {"REDISCLI_AUTH": "just-a-password"}
    assert launch("redis", PW, username="default").argv[-2:] == ["--user", "default"]


# ---------------------------------------------------------------------- all helpers
CREDENTIAL_SETS = {
    "none": (),
    "username_password": (UP,),
    "ssh_private_key": (SPK,),
    "key_with_passphrase": (SPK_PASSPHRASE,),
    "password": (PW,),
    "everything": (SPK_PASSPHRASE, SPK, UP, UP2, PW, JSON),
}
SECRETS = [PASSWORD, "other-pw-2", KEY, "phrase-1234", "just-a-password", "json-secret-value"]


def _session_credential(c: Credential) -> SessionCredential:
    return SessionCredential(
        source_id=c.source_id, credential_type=c.credential_type, fields=dict(c.fields)
    )


@pytest.mark.parametrize("creds", CREDENTIAL_SETS, ids=list(CREDENTIAL_SETS))
@pytest.mark.parametrize(
    ("helper", "options"),
    [
        ("ssh", {}),
        ("ssh", {"style": "ssh"}),
        ("ssh", {"style": "putty"}),
        ("postgres", {"dbname": "db"}),
        ("http", {"path": "/x"}),
        ("kube", {}),
        ("mysql", {}),
        ("redis", {}),
    ],
)
def test_no_secret_in_argv_and_the_core_accepts_the_launch(
    helper: str, options: dict[str, str], creds: str
) -> None:
    credentials = CREDENTIAL_SETS[creds]
    passthrough = ("--pass", "through")
    result = launch(helper, *credentials, passthrough=passthrough, **options)
    command_line = "\n".join(result.argv)
    for secret in SECRETS:
        assert secret not in command_line
    for secret_part in ("s3cret", "b3BlbnNzaC1rZXkt", "phrase-1234"):
        assert secret_part not in command_line
    # the core's own check agrees, and its placement of `--` arguments changes nothing
    check_launch(result, [_session_credential(c) for c in credentials])
    paths = {name: f"/tmp/private/{name}" for name in result.files}
    spec = prepare_exec(result, paths, passthrough)
    final = [spec.program, *spec.args]
    assert final.count("--pass") == 1
    assert "{{" not in "".join(final) + "".join(spec.env.values())
    assert final == [a.replace("{{file.", "/tmp/private/").replace("}}", "") for a in result.argv]
    assert set(result.consumed) <= {c.source_id for c in credentials}


@pytest.mark.parametrize("name", list(MODULES))
def test_helpers_declare_themselves_and_ignore_other_helpers(name: str) -> None:
    module = MODULES[name]
    infos = validate_helpers(module.bconnect_connect_helpers())
    assert [info.name for info in infos] == [name]
    assert module.bconnect_connect_launch(helper="tcp", context=ctx("tcp")) is None
    assert module.bconnect_connect_launch(helper="other", context=ctx("other", UP)) is None


def test_helper_modules_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import bconnect.plugins.ssh, bconnect.plugins.postgres, bconnect.plugins.http\n"
        "import bconnect.plugins.kube, bconnect.plugins.mysql, bconnect.plugins.redis\n"
        "heavy = ('click', 'requests', 'cryptography', 'asyncssh', 'psycopg', 'sqlalchemy',\n"
        "         'fastapi', 'uvicorn', 'websockets', 'bconnect.cli',\n"
        "         'bconnect.core', 'bconnect.controller', 'bconnect.worker')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
