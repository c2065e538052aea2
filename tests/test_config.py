"""The `bconnect server` config file: durations, every rule, secret references, messages."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from support.tls_files import make_tls_files

from bconnect.config import (
    ConfigError,
    ListenerTls,
    ServerConfig,
    cluster_url,
    load_config,
    parse_duration,
    plaintext_warnings,
    split_host_port,
)

SECRET = "s3cret-worker-key-value"

ROOT_KEY = "c2VjcmV0LXJvb3Qta2V5LTMyLWJ5dGVzLWxvbmchISE="  # 32 bytes, base64
KMS = """
[[kms]]
type = "aead"
purpose = "root"
aead_type = "aes-gcm"
key = "env://BCONNECT_TEST_ROOT_KEY"
key_id = "global_root"
"""
CONTROLLER = (
    KMS
    + """
[controller]
database_url = "/var/lib/bconnect/bconnect.db"
worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"
"""
)
WORKER = """
[worker]
controllers = ["10.0.0.1:9201"]
auth_key = "env://BCONNECT_TEST_WORKER_KEY"
"""
API = '[[listener]]\npurpose = "api"\naddress = "0.0.0.0:9200"\n'
CLUSTER = '[[listener]]\npurpose = "cluster"\naddress = "0.0.0.0:9201"\n'
PROXY = '[[listener]]\npurpose = "proxy"\naddress = "0.0.0.0:9202"\n'
OPS = '[[listener]]\npurpose = "ops"\naddress = "127.0.0.1:9203"\n'


@pytest.fixture(autouse=True)
def _worker_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCONNECT_TEST_WORKER_KEY", SECRET)
    monkeypatch.setenv("SHORT_KEY", "too-short")
    monkeypatch.setenv("BCONNECT_TEST_ROOT_KEY", ROOT_KEY)


def load(tmp_path: Path, text: str) -> ServerConfig:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config.toml'}: ")
    assert "\n" not in message and SECRET not in message
    return message.split(": ", 1)[1]


# ---------------------------------------------------------------- durations and addresses
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("30d", 30 * 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        (" 2s ", 2.0),
        ("7", 7.0),
        (5, 5.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "s", "5x", "1 h", "h1", "-1s", -1, True, None, [1], "nan"])
def test_parse_duration_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_split_host_port_and_cluster_url() -> None:
    assert split_host_port("0.0.0.0:9200") == ("0.0.0.0", 9200)
    assert split_host_port("[::1]:9200") == ("::1", 9200)
    assert split_host_port("example.com", need_port=False) == ("example.com", None)
    for bad in ("example.com", "::1:9200", "host:99999", "host:x", ":9200", "a b:1"):
        with pytest.raises(ValueError):
            split_host_port(bad)
    assert cluster_url("10.0.0.1:9201") == "http://10.0.0.1:9201"
    assert cluster_url("ctl.example") == "http://ctl.example:9201"
    assert cluster_url("https://ctl.example:9201/") == "https://ctl.example:9201"
    for bad in ("ftp://ctl:9201", "http://", "http://ctl:9201/prefix", "http://ctl:bad"):
        with pytest.raises(ValueError):
            cluster_url(bad)


# ---------------------------------------------------------------- complete files
def test_controller_and_worker_with_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, CONTROLLER + "[worker]\n" + API + CLUSTER + PROXY)
    assert cfg.log_level is None
    c, w = cfg.controller, cfg.worker
    assert c is not None and w is not None
    assert c.name == socket.gethostname() and w.name == socket.gethostname()
    assert c.database_url == "/var/lib/bconnect/bconnect.db"
    assert c.worker_auth_key == SECRET
    assert (c.job_interval, c.worker_grace) == (5.0, 15.0)
    assert (c.session_retention, c.deleted_retention) == (3600.0, 30 * 86400.0)
    assert c.max_body_bytes == 1024 * 1024
    # the worker of the same file: that controller's key and cluster listener
    assert w.auth_key == SECRET and w.controllers == ()
    assert w.public_address is None and dict(w.tags) == {}
    assert (w.status_interval, w.controller_grace) == (1.0, 15.0)
    assert w.idle_timeout == 0.0  # connections are not closed for being idle
    assert (w.max_handshakes, w.max_handshakes_per_address) == (256, 32)
    assert dict(cfg.listeners) == {
        "api": "0.0.0.0:9200",
        "cluster": "0.0.0.0:9201",
        "proxy": "0.0.0.0:9202",
    }
    assert SECRET not in repr(cfg)


def test_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCONNECT_TEST_DB_URL", "postgresql://bc:pw@db.example/bconnect")
    key_file = tmp_path / "worker.key"
    key_file.write_text("other-key\n")
    cfg = load(
        tmp_path,
        f"""
log_level = "DEBUG"
[controller]
name = "controller-1"
database_url = "env://BCONNECT_TEST_DB_URL"
worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"
job_interval = "500ms"
worker_grace = 20
session_retention = "2h"
deleted_retention = "7d"
max_body_bytes = 2048
[worker]
name = "worker-1"
public_address = "worker1.example.com:9202"
controllers = ["10.0.0.1:9201", "http://10.0.0.2:9201", "10.0.0.1:9201"]
auth_key = "file://{key_file}"
tags = {{ region = "eu", type = ["prod", "web", "prod"] }}
status_interval = "2s"
controller_grace = "1m"
idle_timeout = "30m"
handshake_timeout = "5s"
max_handshakes = 64
max_handshakes_per_address = 8
"""
        + API
        + CLUSTER
        + PROXY
        + OPS
        + KMS
        + KMS.replace('"root"', '"previous-root"').replace("global_root", "old_root"),
    )
    c, w = cfg.controller, cfg.worker
    assert cfg.kms_key("root").key_id == "global_root" and len(cfg.kms_key("root").key) == 32
    assert [k.key_id for k in cfg.kms_keys("previous-root")] == ["old_root"]
    assert ROOT_KEY not in repr(cfg)
    assert c is not None and w is not None
    assert cfg.log_level == "debug"
    assert c.name == "controller-1"
    assert c.database_url == "postgresql://bc:pw@db.example/bconnect"
    assert (c.job_interval, c.worker_grace) == (0.5, 20.0)
    assert (c.session_retention, c.deleted_retention, c.max_body_bytes) == (7200.0, 604800.0, 2048)
    assert w.name == "worker-1" and w.public_address == "worker1.example.com:9202"
    assert w.controllers == ("http://10.0.0.1:9201", "http://10.0.0.2:9201")
    assert w.auth_key == "other-key"
    assert dict(w.tags) == {"region": ("eu",), "type": ("prod", "web")}
    assert (w.status_interval, w.controller_grace) == (2.0, 60.0)
    assert w.idle_timeout == 1800.0
    assert (w.handshake_timeout, w.max_handshakes, w.max_handshakes_per_address) == (5.0, 64, 8)
    assert cfg.listeners["ops"] == "127.0.0.1:9203"
    assert "pw@" not in repr(cfg)


def test_worker_only_and_listener_defaults(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, WORKER + '[[listener]]\npurpose = "proxy"\n[[listener]]\npurpose = "ops"\n'
    )
    assert cfg.controller is None and cfg.worker is not None
    assert cfg.worker.controllers == ("http://10.0.0.1:9201",)
    assert dict(cfg.listeners) == {"proxy": "127.0.0.1:9202", "ops": "127.0.0.1:9203"}
    cfg = load(tmp_path, WORKER + '[[listener]]\npurpose = "proxy"\naddress = "[::]"\n')
    assert cfg.listeners["proxy"] == "[::]:9202"


def test_controller_only(tmp_path: Path) -> None:
    cfg = load(tmp_path, CONTROLLER + API + CLUSTER)
    assert cfg.worker is None and set(cfg.listeners) == {"api", "cluster"}


# ---------------------------------------------------------------- rules
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs a [controller] or a [worker] section (or both)"),
        (API, "needs a [controller] or a [worker] section (or both)"),
        ('log_level = "loud"\n' + CONTROLLER + API + CLUSTER, "log_level: must be one of"),
        ("bogus = 1\n" + CONTROLLER + API + CLUSTER, "bogus: unknown key"),
        (CONTROLLER + "databse_url = 'x'\n" + API + CLUSTER, "[controller] databse_url: unknown"),
        ("controller = 1\n" + API + CLUSTER, "[controller]: must be a table"),
        (CONTROLLER + API, 'the controller needs a [[listener]] with purpose = "cluster"'),
        (CONTROLLER + CLUSTER, 'the controller needs a [[listener]] with purpose = "api"'),
        (WORKER, 'the worker needs a [[listener]] with purpose = "proxy"'),
        (CONTROLLER + API + CLUSTER + PROXY, 'purpose = "proxy": no [worker] in this file'),
        (WORKER + PROXY + API, 'purpose = "api": no [controller] in this file uses it'),
        (CONTROLLER + API + API + CLUSTER, '[[listener]] #2 purpose: "api" is already used'),
        (CONTROLLER + API + CLUSTER + '[[listener]]\npurpose = "admin"\n', "#3 purpose: must be"),
        (CONTROLLER + API + CLUSTER + "[[listener]]\naddress = ':1'\n", "#3 purpose: is required"),
        (
            CONTROLLER + API + '[[listener]]\npurpose = "cluster"\naddress = "::1:9201"\n',
            "[[listener]] #2 address: must be host:port",
        ),
        (
            CONTROLLER + API + CLUSTER + '[[listener]]\npurpose = "ops"\nport = 1\n',
            "[[listener]] #3 port: unknown key",
        ),
        (CONTROLLER + "[listener]\npurpose = 'api'\n", "listener: must be [[listener]] blocks"),
        (
            "[controller]\nworker_auth_key = 'env://X'\n" + API + CLUSTER,
            "database_url: is required",
        ),
        (
            KMS
            + "[controller]\ndatabase_url = 'x.db'\nworker_auth_key = 'env://SHORT_KEY'\n"
            + API
            + CLUSTER,
            "[controller] worker_auth_key: must be at least 16 characters",
        ),
        (
            "[controller]\ndatabase_url = 'x.db'\nworker_auth_key = 'literal-key'\n"
            + API
            + CLUSTER,
            "[controller] worker_auth_key: must be an env:// or file:// reference",
        ),
        (
            "[controller]\ndatabase_url = 'x.db'\nworker_auth_key = 'string://k'\n" + API + CLUSTER,
            "[controller] worker_auth_key: must be an env:// or file:// reference",
        ),
        (CONTROLLER + "job_interval = '5 seconds'\n" + API + CLUSTER, "[controller] job_interval:"),
        (CONTROLLER + "worker_grace = 0\n" + API + CLUSTER, "worker_grace: must be more than zero"),
        (CONTROLLER + "max_body_bytes = '1MB'\n" + API + CLUSTER, "max_body_bytes: must be a pos"),
        (CONTROLLER + "name = ''\n" + API + CLUSTER, "[controller] name: must be a non-empty"),
        (
            WORKER + "public_address = 'worker1.example.com'\n" + PROXY,
            "[worker] public_address: must be host:port",
        ),
        (WORKER + "public_address = 'w:0'\n" + PROXY, "[worker] public_address: must be host:port"),
        ("[worker]\nauth_key = 'env://X'\n" + PROXY, "[worker] controllers: is required when"),
        (
            "[worker]\ncontrollers = ['c:9201']\n" + PROXY,
            "[worker] auth_storage_path: is required (with controller_generated_activation_token",
        ),
        (
            "[worker]\ncontrollers = ['c:9201']\ncontroller_generated_activation_token = 'wat_x'\n"
            + PROXY,
            "controller_generated_activation_token: needs auth_storage_path",
        ),
        (
            "[worker]\ncontrollers = ['ftp://c']\nauth_key = 'env://X'\n" + PROXY,
            "[worker] controllers: 'ftp://c' is not host:port or an http(s):// URL",
        ),
        (
            "[worker]\ncontrollers = 'c:9201'\nauth_key = 'env://X'\n" + PROXY,
            "[worker] controllers: must be a list of strings",
        ),
        (
            "[worker]\ncontrollers = ['c']\nauth_key = 'hunter2'\n" + PROXY,
            "[worker] auth_key: must be an env:// or file:// reference",
        ),
        (WORKER + "tags = ['eu']\n" + PROXY, "[worker] tags: must be a table"),
        (WORKER + "tags = { region = 1 }\n" + PROXY, "tags.region: must be a string or a list"),
        (WORKER + "status_interval = '1y'\n" + PROXY, "[worker] status_interval: '1y' is not"),
        (WORKER + "tag = { a = 'b' }\n" + PROXY, "[worker] tag: unknown key"),
        (
            WORKER + "status_interval = '10s'\n" + PROXY,
            "[worker] status_interval: must be at most half of controller_grace",
        ),
        ("[controller\n", "invalid TOML"),
    ],
)
def test_rules(tmp_path: Path, text: str, message: str) -> None:
    assert message in error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read: No such file"):
        load_config(tmp_path / "nope.toml")


# ---------------------------------------------------------------- secret references
def test_unset_variable_is_named(tmp_path: Path) -> None:
    text = CONTROLLER.replace("BCONNECT_TEST_WORKER_KEY", "BCONNECT_TEST_UNSET") + API + CLUSTER
    assert error(tmp_path, text) == (
        "[controller] worker_auth_key: environment variable BCONNECT_TEST_UNSET is not set"
    )


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    text = CONTROLLER.replace("env://BCONNECT_TEST_WORKER_KEY", f"file://{tmp_path}/no.key")
    message = error(tmp_path, text + API + CLUSTER)
    assert message.startswith("[controller] worker_auth_key: error reading file at ")
    assert message.endswith("no.key: No such file or directory")


def test_empty_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCONNECT_TEST_WORKER_KEY", "  \n")
    message = error(tmp_path, CONTROLLER + API + CLUSTER)
    assert message == "[controller] worker_auth_key: the referenced value is empty"


def test_database_url_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url_file = tmp_path / "db.url"
    url_file.write_text("postgresql://u:pw@h/db\n")
    text = CONTROLLER.replace("/var/lib/bconnect/bconnect.db", f"file://{url_file}")
    cfg = load(tmp_path, text + API + CLUSTER)
    assert cfg.controller is not None
    assert cfg.controller.database_url == "postgresql://u:pw@h/db"
    text = CONTROLLER.replace("/var/lib/bconnect/bconnect.db", "env://BCONNECT_TEST_NO_DB")
    assert "environment variable BCONNECT_TEST_NO_DB is not set" in error(
        tmp_path, text + API + CLUSTER
    )


# ---------------------------------------------------------------- TLS on listeners


def _tls_listener(purpose: str, **keys: str) -> str:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    return f'[[listener]]\npurpose = "{purpose}"\naddress = "127.0.0.1:0"\n{lines}'


def test_listener_tls_and_the_workers_ca(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    files = {"tls_cert_file": str(tls.cert), "tls_key_file": str(tls.key)}
    cfg = load(
        tmp_path,
        CONTROLLER
        + WORKER
        + f"tls_ca_file = {json.dumps(str(tls.ca))}\nidle_timeout = '0s'\n"
        + _tls_listener("api", **files)
        + _tls_listener("cluster", **files)
        + PROXY,
    )
    expected = ListenerTls(str(tls.cert), str(tls.key))
    assert dict(cfg.listener_tls) == {"api": expected, "cluster": expected}
    assert cfg.worker is not None and cfg.worker.tls_ca_file == str(tls.ca)
    assert cfg.worker.idle_timeout == 0.0
    plain = load(tmp_path, CONTROLLER + API + CLUSTER)
    assert dict(plain.listener_tls) == {}


def test_listener_tls_rules(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    other = make_tls_files(tmp_path, "other")
    cert, key = str(tls.cert), str(tls.key)
    with_api = CONTROLLER + CLUSTER

    def api(**keys: str) -> str:
        return error(tmp_path, with_api + _tls_listener("api", **keys))

    assert "tls_key_file: is required with the other tls_ key" in api(tls_cert_file=cert)
    assert "tls_cert_file: is required with the other tls_ key" in api(tls_key_file=key)
    assert "tls_key_file: cannot read /nope.key: No such file" in api(
        tls_cert_file=cert, tls_key_file="/nope.key"
    )
    mismatch = api(tls_cert_file=cert, tls_key_file=str(other.key))
    assert "tls_cert_file: cannot use this certificate and key:" in mismatch
    assert "tls_cert_file: cannot use this certificate and key:" in api(
        tls_cert_file=key, tls_key_file=key
    )
    proxy = error(tmp_path, WORKER + _tls_listener("proxy", tls_cert_file=cert, tls_key_file=key))
    assert "tls_cert_file: TLS is for the api and cluster listeners" in proxy
    ops = error(tmp_path, with_api + API.replace('"api"', '"ops"') + 'tls_key_file = "/nope"\n')
    assert "tls_key_file: TLS is for the api and cluster listeners" in ops
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        serialization.load_pem_private_key(tls.key.read_bytes(), None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    assert "tls_key_file: the key is encrypted (not supported" in api(
        tls_cert_file=cert, tls_key_file=str(encrypted)
    )
    bad_ca = error(tmp_path, WORKER + f"tls_ca_file = {json.dumps(key)}\n" + PROXY)
    assert "[worker] tls_ca_file: " in bad_ca and "is not a PEM CA bundle" in bad_ca
    missing_ca = error(tmp_path, WORKER + "tls_ca_file = '/nope.pem'\n" + PROXY)
    assert "[worker] tls_ca_file: cannot read /nope.pem: No such file" in missing_ca
    negative = error(tmp_path, WORKER + "idle_timeout = '-1s'\n" + PROXY)
    assert "[worker] idle_timeout:" in negative


def test_plaintext_warnings(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    files = {"tls_cert_file": str(tls.cert), "tls_key_file": str(tls.key)}
    ca = f"tls_ca_file = {json.dumps(str(tls.ca))}\n"
    # wildcard api and cluster listeners without certificates, a CA no controller uses
    warnings = plaintext_warnings(load(tmp_path, CONTROLLER + WORKER + ca + API + CLUSTER + PROXY))
    assert warnings == [
        '[[listener]] purpose = "api" on 0.0.0.0:9200 has no tls_cert_file: passwords and '
        "auth tokens cross the network in clear (unless a TLS-terminating proxy is in front)",
        '[[listener]] purpose = "cluster" on 0.0.0.0:9201 has no tls_cert_file: session '
        "private keys and the worker key cross the network in clear (unless a "
        "TLS-terminating proxy is in front)",
        "[worker] tls_ca_file: unused, no controller is an https:// URL",
    ]
    # loopback listeners, certificates, an https controller: nothing to say
    local = CONTROLLER + API.replace("0.0.0.0", "127.0.0.1") + CLUSTER.replace("0.0.0.0", "[::1]")
    assert plaintext_warnings(load(tmp_path, local)) == []
    secured = (
        CONTROLLER
        + "[worker]\n"
        + ca
        + _tls_listener("api", **files)
        + _tls_listener("cluster", **files)
        + PROXY
    )
    assert plaintext_warnings(load(tmp_path, secured)) == []  # same-file worker: https
    remote = WORKER.replace('"10.0.0.1:9201"', '"https://ctl.example:9201"') + ca + PROXY
    assert plaintext_warnings(load(tmp_path, remote)) == []


def test_listener_limits_and_forwarded_for(tmp_path: Path) -> None:
    api = API + (
        'http_read_header_timeout = "3s"\nmax_connections = 200\n'
        'x_forwarded_for_authorized_addrs = ["10.0.0.0/8", "192.0.2.7"]\n'
        "x_forwarded_for_hop_skips = 1\nx_forwarded_for_reject_not_authorized = true\n"
    )
    cfg = load(tmp_path, CONTROLLER + api + CLUSTER)
    options = cfg.listener_http["api"]
    assert (options.http_read_header_timeout, options.max_connections) == (3.0, 200)
    assert [str(n) for n in options.forwarded.authorized_addrs] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert options.forwarded.hop_skips == 1
    assert options.forwarded.reject_not_authorized and not options.forwarded.reject_not_present
    # the defaults: limits on, nobody's X-Forwarded-For trusted
    cluster = cfg.listener_http["cluster"]
    assert not cluster.forwarded.enabled and cluster.http_read_header_timeout == 10.0
    # a comma-separated string, as Boundary also takes it
    text = CONTROLLER + API + 'x_forwarded_for_authorized_addrs = "10.1.0.0/16, ::1"\n' + CLUSTER
    assert len(load(tmp_path, text).listener_http["api"].forwarded.authorized_addrs) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('x_forwarded_for_authorized_addrs = ["not-a-net"]\n', "x_forwarded_for_authorized_addrs"),
        ("max_connections = 0\n", "max_connections: must be a positive integer"),
        ("x_forwarded_for_hop_skips = -1\n", "must be a non-negative integer"),
        ('x_forwarded_for_reject_not_authorized = "yes"\n', "must be true or false"),
    ],
)
def test_listener_limit_rules(tmp_path: Path, extra: str, message: str) -> None:
    assert message in error(tmp_path, CONTROLLER + API + extra + CLUSTER)


def test_forwarded_for_is_only_for_http_listeners(tmp_path: Path) -> None:
    proxy = PROXY + 'x_forwarded_for_authorized_addrs = ["10.0.0.0/8"]\n'
    message = error(tmp_path, WORKER + proxy)
    assert "is for the api and cluster listeners" in message


@pytest.mark.parametrize(
    ("kms", "message"),
    [
        ("", 'the controller needs a [[kms]] block with purpose = "root"'),
        (KMS.replace('"aead"', '"transit"'), 'type: must be "aead"'),
        (KMS.replace('"aes-gcm"', '"chacha"'), 'aead_type: must be "aes-gcm"'),
        (KMS.replace('"root"', '"recovery"'), "purpose: must be one of"),
        (KMS.replace("env://BCONNECT_TEST_ROOT_KEY", "not base64!"), "key: key must be base64"),
        (KMS.replace("env://BCONNECT_TEST_ROOT_KEY", "c2hvcnQ="), "must be 16, 24 or 32 bytes"),
        (
            KMS + KMS.replace("global_root", "second"),
            'only one [[kms]] block may have purpose = "root"',
        ),
        (KMS.replace('key_id = "global_root"\n', ""), "key_id: is required"),
    ],
)
def test_kms_rules(tmp_path: Path, kms: str, message: str) -> None:
    controller = CONTROLLER.replace(KMS, "")
    assert message in error(tmp_path, kms + controller + API + CLUSTER)


def test_a_worker_with_its_own_credential(tmp_path: Path) -> None:
    text = (
        "[worker]\ncontrollers = ['c:9201']\n"
        f"auth_storage_path = {json.dumps(str(tmp_path / 'auth'))}\n"
        "controller_generated_activation_token = 'env://BCONNECT_TEST_WORKER_KEY'\n" + PROXY
    )
    worker = load(tmp_path, text).worker
    assert worker is not None and worker.auth_key is None
    assert worker.auth_storage_path == str(tmp_path / "auth") and worker.activation_token == SECRET
    assert SECRET not in repr(worker)
    # a controller without the shared key: its workers all have credentials of their own
    cfg = load(
        tmp_path,
        CONTROLLER.replace('worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"\n', "")
        + API
        + CLUSTER,
    )
    assert cfg.controller is not None and cfg.controller.worker_auth_key is None
    both = text.replace("[worker]\n", "[worker]\nauth_key = 'env://BCONNECT_TEST_WORKER_KEY'\n")
    assert "not both" in error(tmp_path, both)
