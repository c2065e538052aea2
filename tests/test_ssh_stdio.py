"""Plain OpenSSH through bconnect: ``ssh -o ProxyCommand='bconnect connect -stdio …'``,
``scp``, ``rsync -e ssh`` and ``git`` over ssh, against a real ``sshd`` on 127.0.0.1
(the ``openssh`` fixture) through a real controller and worker (``dataplane``)."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from support.constants import GUARD
from support.dataplane import all_ended, make_alias, make_target, sessions_of
from support.openssh import OpenSSH
from support.plugin_dists import admin_env
from support.servers import require
from support.wait import wait_for

BCONNECT = f"{shlex.quote(sys.executable)} -m bconnect"


def _proxy_command(target: str) -> str:
    return f"ProxyCommand={BCONNECT} connect -stdio -target-id {target}"


def _ssh(server: OpenSSH, target: str) -> list[str]:
    """ssh through bconnect: the host name is only a name (the ProxyCommand decides)."""
    return ["ssh", *server.ssh_options(), "-o", _proxy_command(target), "-l", server.user]


def _run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD * 2,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def test_ssh_runs_a_command_and_returns_its_output_and_status(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    target = make_target(dataplane, openssh.port)
    result = _run(
        [*_ssh(openssh, target), "web.prod", "echo MARKER-$((6*7)); exit 7"],
        admin_env(dataplane, tmp_path),
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout == "MARKER-42\n"
    assert result.stderr == ""
    assert wait_for(lambda: all_ended(dataplane, target)), sessions_of(dataplane, target)
    assert len(sessions_of(dataplane, target)) == 1


def test_scp_copies_10_mb_there_and_back(dataplane, openssh, tmp_path) -> None:
    require("scp")
    target = make_target(dataplane, openssh.port)
    env = admin_env(dataplane, tmp_path)
    data = os.urandom(10 * 1024 * 1024)
    local = tmp_path / "ten.bin"
    local.write_bytes(data)
    remote = openssh.home / f"ten-{time.monotonic_ns()}.bin"
    scp = ["scp", *openssh.ssh_options(), "-o", _proxy_command(target)]
    up = _run([*scp, str(local), f"{openssh.user}@web.prod:{remote}"], env)
    assert up.returncode == 0, up.stderr
    assert hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(data).digest()
    back = tmp_path / "back.bin"
    down = _run([*scp, f"{openssh.user}@web.prod:{remote}", str(back)], env)
    assert down.returncode == 0, down.stderr
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert wait_for(lambda: all_ended(dataplane, target))
    assert len(sessions_of(dataplane, target)) == 2  # one session per scp, both over


def test_sftp_and_rsync_over_ssh(dataplane, openssh, tmp_path) -> None:
    require("rsync")
    require("sftp")
    target = make_target(dataplane, openssh.port)
    env = admin_env(dataplane, tmp_path)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    dest = openssh.home / f"rsync-{time.monotonic_ns()}"
    ssh = shlex.join(["ssh", *openssh.ssh_options(), "-o", _proxy_command(target)])
    result = _run(["rsync", "-a", "-e", ssh, f"{tree}/", f"{openssh.user}@web.prod:{dest}/"], env)
    assert result.returncode == 0, result.stderr
    assert (dest / "a.txt").read_text() == "alpha\n"
    assert (dest / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()

    batch = tmp_path / "batch"
    batch.write_text(f"get {dest}/a.txt {tmp_path}/via-sftp.txt\n")
    sftp = ["sftp", *openssh.ssh_options(), "-o", _proxy_command(target), "-b", str(batch)]
    result = _run([*sftp, f"{openssh.user}@web.prod"], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "via-sftp.txt").read_text() == "alpha\n"
    assert wait_for(lambda: all_ended(dataplane, target))


def test_git_clones_and_pushes_over_ssh(dataplane, openssh, tmp_path) -> None:
    require("git")
    target = make_target(dataplane, openssh.port)
    env = admin_env(dataplane, tmp_path)
    env.update(
        GIT_SSH_COMMAND=shlex.join(["ssh", *openssh.ssh_options(), "-o", _proxy_command(target)]),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CONFIG_NOSYSTEM="1",
        HOME=str(tmp_path),
    )
    bare = openssh.home / f"repo-{time.monotonic_ns()}.git"
    assert _run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], env).returncode == 0
    url = f"ssh://{openssh.user}@web.prod{bare}"
    work = tmp_path / "work"
    clone = _run(["git", "clone", "-q", url, str(work)], env)
    assert clone.returncode == 0, clone.stderr
    (work / "README").write_text("through bconnect\n")
    assert _run(["git", "-C", str(work), "add", "README"], env).returncode == 0
    assert _run(["git", "-C", str(work), "commit", "-q", "-m", "first"], env).returncode == 0
    push = _run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], env)
    assert push.returncode == 0, push.stderr
    shown = _run(["git", "--git-dir", str(bare), "show", "main:README"], env)
    assert shown.stdout == "through bconnect\n"


def test_a_session_canceled_from_the_api_ends_ssh(dataplane, openssh, tmp_path) -> None:
    target = make_target(dataplane, openssh.port)
    proc = subprocess.Popen(
        [*_ssh(openssh, target), "web.prod", "echo started; sleep 120"],
        env=admin_env(dataplane, tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        (session,) = sessions_of(dataplane, target)
        resp = dataplane.request(
            "POST", f"/v1/sessions/{session['id']}:cancel", json={"version": session["version"]}
        )
        assert resp.status_code == 200, resp.text
        assert proc.wait(GUARD) == 255  # ssh: the connection went away
        err = proc.stderr.read() if proc.stderr else ""
        assert "canceled" in err, err  # bconnect's one line, then ssh's own
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert wait_for(lambda: all_ended(dataplane, target))


@pytest.mark.parametrize("how", ["alias", "target-id"])
def test_bconnect_ssh_stdio(dataplane, openssh, tmp_path, how) -> None:
    """``bconnect ssh -stdio`` is the same stream, under the helper's name."""
    target = make_target(dataplane, openssh.port)
    if how == "alias":
        value = f"box{time.monotonic_ns()}.prod"
        make_alias(dataplane, value, target)
        proxy = f"ProxyCommand={BCONNECT} ssh -stdio %h"
        host = value
    else:
        proxy = f"ProxyCommand={BCONNECT} ssh -target-id {target} -stdio"
        host = "anything"
    result = _run(
        ["ssh", *openssh.ssh_options(), "-o", proxy, "-l", openssh.user, host, "echo via-helper"],
        admin_env(dataplane, tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "via-helper\n"
    assert wait_for(lambda: all_ended(dataplane, target))


# ---------------------------------------------------------------------- bconnect ssh niceties
def test_bconnect_ssh_names_the_session_on_stderr(dataplane, openssh, tmp_path) -> None:
    target = make_target(dataplane, openssh.port)
    env = admin_env(dataplane, tmp_path)
    base = [
        sys.executable,
        "-m",
        "bconnect",
        "ssh",
        "-target-id",
        target,
        "-username",
        openssh.user,
    ]
    command = ["-remote-command", "echo hi", "--", *openssh.ssh_options()]
    result = _run([*base, *command], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    (line,) = result.stderr.splitlines()
    (session,) = sessions_of(dataplane, target)
    assert (
        line == f"Session {session['id']}; cancel with bconnect sessions cancel -id {session['id']}"
    )
    quiet = _run([*base, "-format", "json", *command], env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_missing_client_program_is_named_before_any_credential(
    dataplane, openssh, tmp_path
) -> None:
    from support.dataplane import add_credential

    target = make_target(dataplane, openssh.port)
    add_credential(
        dataplane, target, "username_password", {"username": "u", "password": "pw-never-shown-5521"}
    )
    env = {**admin_env(dataplane, tmp_path), "PATH": str(tmp_path / "empty")}
    for style, package in (("ssh", "openssh-client"), ("sshpass", "sshpass")):
        result = _run(
            [sys.executable, "-m", "bconnect", "ssh", "-target-id", target, "-style", style], env
        )
        assert result.returncode == 2, result.stderr
        assert "pw-never-shown-5521" not in result.stdout + result.stderr
        assert f'"{style}" was not found on PATH: install the {package} package' in result.stderr
        assert "Traceback" not in result.stderr
    assert wait_for(lambda: all_ended(dataplane, target))
