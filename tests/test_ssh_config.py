"""``bconnect config ssh``: the ssh_config block, read by a real ``ssh -F`` that then
reaches a real sshd by alias and by NAME.PROJECT.SUFFIX through ``connect -stdio``."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from support.cli import run_bconnect
from support.constants import GUARD, ORG
from support.dataplane import add_credential, make_alias, make_target
from support.plugin_dists import admin_env, bconnect_env
from support.servers import require

from bconnect.core.sshconfig import (
    SshEntry,
    known_hosts_command,
    render_ssh_config,
    split_suffixed_name,
)

SECRET = "do-not-print-me-9431"


# ---------------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    ("host", "suffix", "expected"),
    [
        ("web.labs.bconnect", "bconnect", ("web", "labs")),
        ("api.v2.labs.bconnect", ".bconnect", ("api.v2", "labs")),
        ("WEB.labs.BConnect", "bconnect", ("WEB", "labs")),
        ("labs.bconnect", "bconnect", None),
        ("web.labs.example", "bconnect", None),
        ("web.labs.bconnect", "", None),
    ],
)
def test_split_suffixed_name(host, suffix, expected) -> None:
    assert split_suffixed_name(host, suffix) == expected


def test_render_skips_unsafe_hosts_and_never_takes_secrets() -> None:
    entries = [
        SshEntry("web.prod", "ttcp_1", "bc connect -stdio %h", "ttcp_1", "ubuntu"),
        SshEntry("bad host", "ttcp_2", "bc connect -stdio %h"),
    ]
    text = render_ssh_config(entries, suffix="bc", suffix_command="bc -name-suffix bc %h")
    assert "Host web.prod\n    ProxyCommand bc connect -stdio %h\n" in text
    assert "    HostKeyAlias ttcp_1\n    User ubuntu\n" in text
    assert "Host bad host" not in text and "# skipped alias 'bad host'" in text
    assert "Host *.bc\n" in text and "ProxyCommand bc -name-suffix bc %h" in text


def test_an_ssh_targets_entry_checks_the_workers_key() -> None:
    command = known_hosts_command(["/opt/b c/bconnect"], ["-addr", "http://h:9200"], "tssh_1Ab")
    assert command == (
        "'/opt/b c/bconnect' config known-hosts -target-id tssh_1Ab -addr http://h:9200"
    )
    assert known_hosts_command(["/tmp/50%/bconnect"], [], "tssh_1") == (
        "/tmp/50%%/bconnect config known-hosts -target-id tssh_1"  # ssh's % tokens
    )
    entry = SshEntry(
        "box",
        "tssh_1Ab",
        "bc connect -stdio %h",
        "tssh_1Ab",
        worker_host_key="ssh-ed25519 AAAAkey",
        known_hosts_command=command,
    )
    text = render_ssh_config([entry])
    assert text.splitlines() == [
        "Host box",
        "    # the worker's key for this ssh target: ssh-ed25519 AAAAkey",
        "    ProxyCommand bc connect -stdio %h",
        "    HostKeyAlias tssh_1Ab",
        f"    KnownHostsCommand {command}",
    ]


# ---------------------------------------------------------------------- end to end
def test_ssh_by_alias_and_by_suffix_with_the_generated_block(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    env = admin_env(dataplane, tmp_path)
    target = make_target(dataplane, openssh.port)
    host = f"web{time.monotonic_ns()}.prod"
    make_alias(dataplane, host, target)
    keyed = make_target(dataplane, openssh.port)
    add_credential(
        dataplane, keyed, "username_password", {"username": "deploy", "password": SECRET}
    )
    keyed_host = f"db{time.monotonic_ns()}.prod"
    make_alias(dataplane, keyed_host, keyed, host_id="hst_1234567890")
    project = dataplane.request("POST", "/v1/scopes", json={"scope_id": ORG, "name": "labs"})
    assert project.status_code == 200, project.text
    named = dataplane.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": project.json()["id"],
            "name": "box",
            "type": "tcp",
            "address": "127.0.0.1",
            "attributes": {"default_port": openssh.port},
        },
    )
    assert named.status_code == 200, named.text

    made = run_bconnect("config", "ssh", "-suffix", "bconnect", env=env)
    assert made.returncode == 0, made.stderr
    text = made.stdout
    assert SECRET not in text and dataplane.token("admin") not in text
    assert f"Host {host}\n" in text and f"HostKeyAlias {target}\n" in text
    assert f"Host {keyed_host}\n" in text
    assert "HostKeyAlias hst_1234567890\n" in text and "User deploy\n" in text
    assert "ssh will ask for it" in text
    assert f"-addr {dataplane.addr}" in text
    assert "Host *.bconnect\n" in text

    config = tmp_path / "ssh_config"
    options = "\n".join(
        [
            "Host *",
            f"    User {openssh.user}",
            f"    IdentityFile {openssh.client_key}",
            "    IdentitiesOnly yes",
            "    IdentityAgent none",
            "    BatchMode yes",
            f"    UserKnownHostsFile {tmp_path / 'known_hosts'}",
            "    StrictHostKeyChecking accept-new",
            "    LogLevel ERROR",
        ]
    )
    config.write_text(text + "\n" + options + "\n")
    for name in (host, "box.labs.bconnect"):
        result = subprocess.run(
            ["ssh", "-F", str(config), name, "echo reached $((40+2))"],
            env=env,
            capture_output=True,
            text=True,
            timeout=GUARD * 2,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout == "reached 42\n"
    # the host key was pinned under the target id (HostKeyAlias), as bconnect ssh pins
    # it; ssh writes host names in lower case
    names = [line.split()[0] for line in (tmp_path / "known_hosts").read_text().splitlines()]
    assert target.lower() in names, names

    listed = run_bconnect("config", "ssh", "-format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    items = {i["host"]: i for i in json.loads(listed.stdout)["items"]}
    assert items[host]["target_id"] == target
    assert items[keyed_host]["user"] == "deploy"
    assert items[keyed_host]["credentials"][0]["credential_type"] == "username_password"
    assert "connect -stdio" in items[host]["proxy_command"]
    assert SECRET not in listed.stdout


def test_config_ssh_without_a_token_is_one_line(dataplane, tmp_path) -> None:
    env = bconnect_env(tmp_path / "cache", BOUNDARY_ADDR=dataplane.addr)
    result = run_bconnect("config", "ssh", env=env)
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_name_suffix_needs_a_project_part(dataplane, tmp_path) -> None:
    env = admin_env(dataplane, tmp_path)
    result = run_bconnect("connect", "-stdio", "-name-suffix", "bconnect", "web.bconnect", env=env)
    assert result.returncode != 0 and result.stdout == ""
    assert "expected an argument NAME.PROJECT.bconnect" in result.stderr
