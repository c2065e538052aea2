"""ssh targets: the worker terminates SSH and logs in to the host with an injected
credential that never reaches the user's machine. A real ``sshd`` (the ``openssh``
fixture), the real ``ssh``/``scp`` as clients, a real controller and worker
(``dataplane``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from support import s3
from support.constants import GUARD
from support.dataplane import all_ended, make_alias, sessions_of
from support.dev import DevProcess
from support.plugin_dists import admin_env
from support.processes import end_process
from support.servers import require
from support.sshtargets import (
    CLIENT_OPTIONS,
    PROJECT,
    available_recording,
    bconnect_ssh,
    channels,
    credential,
    key_credential,
    local_bucket,
    recorded_target,
    recordings_of,
    settled_recording,
    ssh_target,
)
from support.wait import wait_for


def _run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=GUARD * 2, **kw)


def test_a_target_is_created_with_its_own_host_key_and_port_22(dataplane, openssh) -> None:
    cred = key_credential(dataplane, openssh)
    made = dataplane.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "type": "ssh",
            "name": "box",
            "address": "127.0.0.1",
            "injected_application_credential_source_ids": [cred],
        },
    ).json()
    assert made["id"].startswith("tssh_") and made["type"] == "ssh"
    attrs = made["attributes"]
    assert attrs["default_port"] == 22
    assert attrs["worker_host_key"].startswith("ssh-ed25519 ")
    assert attrs["enable_session_recording"] is False
    assert made["injected_application_credential_source_ids"] == [cred]
    again = dataplane.request("GET", f"/v1/targets/{made['id']}").json()
    assert again["attributes"]["worker_host_key"] == attrs["worker_host_key"]


def test_injected_credentials_are_refused_where_they_cannot_be_used(dataplane, openssh) -> None:
    cred = key_credential(dataplane, openssh)
    tcp = dataplane.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": "tcp-box",
            "address": "127.0.0.1",
            "attributes": {"default_port": 22},
            "injected_application_credential_source_ids": [cred],
        },
    )
    assert tcp.status_code == 400
    assert "Only ssh targets" in tcp.text
    json_cred = credential(dataplane, "username_password", "u", password="p")
    target = ssh_target(dataplane, openssh.port, None)
    # an ssh target with nothing to inject cannot be connected to: said at authorization
    refused = dataplane.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert refused.status_code == 400, refused.text
    assert "without an injected application credential source" in refused.text
    version = dataplane.request("GET", f"/v1/targets/{target}").json()["version"]
    added = dataplane.request(
        "POST",
        f"/v1/targets/{target}:add-credential-sources",
        json={"version": version, "injected_application_credential_source_ids": [json_cred]},
    )
    assert added.status_code == 200, added.text
    recording = dataplane.request(
        "PATCH",
        f"/v1/targets/{target}",
        json={"version": version + 1, "attributes": {"enable_session_recording": True}},
    )
    assert recording.status_code == 400
    assert "storage bucket" in recording.text


def test_the_user_lands_as_the_injected_user_without_the_secret(
    dataplane, openssh, tmp_path
) -> None:
    require("ssh")
    key_text = openssh.client_key.read_text()
    target = ssh_target(dataplane, openssh.port, key_credential(dataplane, openssh))
    auth = dataplane.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert auth.status_code == 200
    assert auth.json()["type"] == "ssh"
    assert "PRIVATE KEY" not in auth.text and "credentials" not in auth.json()
    session = auth.json()["session_id"]
    canceled = dataplane.request("POST", f"/v1/sessions/{session}:cancel", json={"version": 1})
    assert canceled.status_code == 200, canceled.text
    env = admin_env(dataplane, tmp_path)
    result = _run(
        bconnect_ssh(
            target,
            "-remote-command",
            "echo MARKER-$((6*7)) as $(id -un); exit 3",
            "--",
            *CLIENT_OPTIONS,
        ),
        env,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == f"MARKER-42 as {openssh.user}\n"
    # a live session: nothing of the key in any process of the client, its files or env
    proc = subprocess.Popen(
        bconnect_ssh(target, "-remote-command", "sleep 30", "--", *CLIENT_OPTIONS),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: _ssh_children(proc.pid)), "ssh never started"
        needle = key_text.strip().splitlines()[1].encode()  # a line of the key's body
        for pid in [proc.pid, *_ssh_children(proc.pid)]:
            for part in ("cmdline", "environ"):
                assert needle not in Path(f"/proc/{pid}/{part}").read_bytes()
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), path
        for path, body in _our_bconnect_temp_files():
            assert needle not in body, path
    finally:
        proc.terminate()  # bconnect cancels its session as it ends
        out, err = proc.communicate(timeout=GUARD)
    assert wait_for(lambda: all_ended(dataplane, target)), sessions_of(dataplane, target)


def _our_bconnect_temp_files() -> list[tuple[Path, bytes]]:
    """Our files in bconnect's temporary directories, read as they are now.

    Other processes of the suite (the other xdist worker) make and remove such
    directories all the time: one that goes while it is listed or read is skipped.
    """
    found = []
    for folder in Path(os.environ.get("TMPDIR", "/tmp")).glob("bconnect-*"):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_uid == os.getuid():
                    found.append((Path(entry.path), Path(entry.path).read_bytes()))
            except FileNotFoundError:
                continue
    return found


def _ssh_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def test_scp_10_mb_both_ways(dataplane, openssh, tmp_path) -> None:
    require("scp")
    target = ssh_target(dataplane, openssh.port, key_credential(dataplane, openssh))
    data = os.urandom(10 * 1024 * 1024)
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    remote = openssh.home / f"scp-{time.monotonic_ns()}.bin"
    env = admin_env(dataplane, tmp_path)
    proxy = f"ProxyCommand={sys.executable} -m bconnect connect -stdio -target-id {target}"
    scp = ["scp", *CLIENT_OPTIONS, "-o", "StrictHostKeyChecking=no", "-o"]
    scp += ["UserKnownHostsFile=/dev/null", "-o", proxy]
    up = _run([*scp, str(local), f"anyone@box:{remote}"], env)
    assert up.returncode == 0, up.stderr
    assert hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(data).digest()
    back = tmp_path / "down.bin"
    down = _run([*scp, f"anyone@box:{remote}", str(back)], env)
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == data


def test_a_changed_host_key_is_refused_with_a_clear_reason(dataplane, openssh, tmp_path) -> None:
    target = ssh_target(dataplane, openssh.port, key_credential(dataplane, openssh))
    env = admin_env(dataplane, tmp_path)
    first = _run(bconnect_ssh(target, "-remote-command", "true", "--", *CLIENT_OPTIONS), env)
    assert first.returncode == 0, first.stderr
    pinned = dataplane.request("GET", f"/v1/targets/{target}").json()["attributes"]
    key_type, key_body = openssh.host_public_key.split()[:2]
    assert pinned["known_hosts"] == f"[127.0.0.1]:{openssh.port} {key_type} {key_body}\n"
    # the host's key changes (or someone else answers on its address)
    other = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=GUARD
    )
    target2 = ssh_target(
        dataplane,
        openssh.port,
        key_credential(dataplane, openssh),
        known_hosts=f"[127.0.0.1]:{openssh.port} {other.with_suffix('.pub').read_text()}",
    )
    refused = _run(bconnect_ssh(target2, "-remote-command", "true", "--", *CLIENT_OPTIONS), env)
    assert refused.returncode != 0
    assert "does not match the one recorded for the target" in refused.stderr, refused.stderr
    (session,) = sessions_of(dataplane, target2)
    assert wait_for(lambda: all_ended(dataplane, target2))


@pytest.mark.parametrize("verb", ["create"])
def test_the_cli_creates_an_ssh_target(dataplane, openssh, tmp_path, verb) -> None:
    cred = key_credential(dataplane, openssh)
    env = admin_env(dataplane, tmp_path)
    made = _run(
        [
            sys.executable,
            "-m",
            "bconnect",
            "targets",
            "create",
            "ssh",
            "-scope-id",
            PROJECT,
            "-name",
            "cli-ssh",
            "-address",
            "127.0.0.1",
            "-default-port",
            str(openssh.port),
            "-injected-application-credential-source",
            cred,
        ],
        env,
    )
    assert made.returncode == 0, made.stderr
    assert "Worker Host Key" in made.stdout and "tssh_" in made.stdout
    assert "Injected Application Credential Sources" in made.stdout


# ---------------------------------------------------------------------- recording
def test_an_exec_channel_is_recorded_and_downloads_verified(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    bucket = local_bucket(dataplane, tmp_path / "recordings")
    target = ssh_target(
        dataplane,
        openssh.port,
        key_credential(dataplane, openssh),
        enable_session_recording=True,
        storage_bucket_id=bucket,
    )
    env = admin_env(dataplane, tmp_path)
    marker = f"MARKER-{time.monotonic_ns()}"
    result = _run(
        bconnect_ssh(target, "-remote-command", f"echo {marker}", "--", *CLIENT_OPTIONS), env
    )
    assert result.returncode == 0, result.stderr
    (session,) = sessions_of(dataplane, target)
    assert wait_for(lambda: all_ended(dataplane, target))

    def available() -> list[dict[str, Any]]:
        found = recordings_of(dataplane, session["id"])
        return found if found and found[0]["state"] == "available" else []

    assert wait_for(available), recordings_of(dataplane, session["id"])
    (listed,) = available()
    recording = dataplane.request("GET", f"/v1/session-recordings/{listed['id']}").json()
    assert recording["create_time_values"]["user"]["id"] == "u_1234567890"
    assert recording["create_time_values"]["target"]["id"] == target
    (connection,) = recording["connection_recordings"]
    (channel,) = connection["channel_recordings"]
    assert channel["command"] == f"echo {marker}" and channel["state"] == "available"
    download = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download")
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == channel["sha256"]
    lines = download.content.decode().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["command"] == f"echo {marker}"
    assert any(marker in line and '"o"' in line for line in lines[1:])
    # the player reads it
    cast = tmp_path / "rec.cast"
    cast.write_bytes(download.content)
    require("asciinema")
    played = _run(["asciinema", "cat", str(cast)], env)
    assert played.returncode == 0, played.stderr
    assert marker in played.stdout
    # a tampered object is refused
    (stored,) = (tmp_path / "recordings").rglob(f"{channel['id']}.cast")
    stored.write_bytes(stored.read_bytes().replace(marker.encode(), b"MARKER-forged"))
    refused = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download")
    assert refused.status_code == 400
    assert "does not match the SHA-256" in refused.text


def test_an_unwritable_bucket_refuses_the_session(dataplane, openssh, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bucket = local_bucket(dataplane, blocker / "recordings")
    target = ssh_target(
        dataplane,
        openssh.port,
        key_credential(dataplane, openssh),
        enable_session_recording=True,
        storage_bucket_id=bucket,
    )
    env = admin_env(dataplane, tmp_path)
    refused = _run(
        bconnect_ssh(target, "-remote-command", "echo should-not-run", "--", *CLIENT_OPTIONS), env
    )
    assert refused.returncode != 0
    assert "should-not-run" not in refused.stdout
    assert f"storage bucket {bucket} cannot be written" in refused.stderr, refused.stderr


def _bconnect(env: dict[str, str], *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "bconnect", *args], env, **kw)


def test_the_cli_records_lists_downloads_and_plays(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    env = admin_env(dataplane, tmp_path)
    made = _bconnect(
        env,
        "storage-buckets",
        "create",
        "plugin",
        "-scope-id",
        "global",
        "-name",
        "cli-bucket",
        "-plugin-name",
        "local",
        "-bucket-name",
        str(tmp_path / "cli-recordings"),
        "-format",
        "json",
    )
    assert made.returncode == 0, made.stderr
    bucket = json.loads(made.stdout)["item"]["id"]
    target = _bconnect(
        env,
        "targets",
        "create",
        "ssh",
        "-scope-id",
        PROJECT,
        "-name",
        "recorded",
        "-address",
        "127.0.0.1",
        "-default-port",
        str(openssh.port),
        "-injected-application-credential-source",
        key_credential(dataplane, openssh),
        "-enable-session-recording",
        "true",
        "-storage-bucket-id",
        bucket,
        "-format",
        "json",
    )
    assert target.returncode == 0, target.stderr
    target_id = json.loads(target.stdout)["item"]["id"]
    marker = f"PLAYED-{time.monotonic_ns()}"
    ran = _run(
        bconnect_ssh(target_id, "-remote-command", f"echo {marker}", "--", *CLIENT_OPTIONS), env
    )
    assert ran.returncode == 0, ran.stderr
    (session,) = sessions_of(dataplane, target_id)

    def recorded() -> str:
        listed = _bconnect(env, "session-recordings", "list", "-scope-id", "global")
        return (
            listed.stdout if session["id"] in listed.stdout and "available" in listed.stdout else ""
        )

    assert wait_for(recorded)
    recording = [r for r in recordings_of(dataplane, session["id"])][0]["id"]
    read = _bconnect(env, "session-recordings", "read", "-id", recording)
    assert read.returncode == 0, read.stderr
    assert "Channel Recording:" in read.stdout and f"echo {marker}" in read.stdout
    assert "User ID:" in read.stdout and "u_1234567890" in read.stdout
    channel = next(
        line.split()[-1]
        for line in read.stdout.splitlines()
        if line.strip().startswith("ID:") and "chr_" in line
    )
    out = tmp_path / "got.cast"
    got = _bconnect(env, "session-recordings", "download", "-id", channel, "-output", str(out))
    assert got.returncode == 0, got.stderr
    assert marker in out.read_text()
    played = _bconnect(env, "session-recordings", "play", "-id", channel, "-speed", "100")
    assert played.returncode == 0, played.stderr
    assert marker in played.stdout
    wrong = _bconnect(env, "session-recordings", "play", "-id", recording)
    assert wrong.returncode != 0 and "is not a channel recording" in wrong.stderr


def _read_until(fd: int, pattern: str, seen: bytearray) -> re.Match[str]:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        found = re.search(pattern, seen.decode(errors="replace"))
        if found:
            return found
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    raise AssertionError(f"{pattern!r} not seen in {seen.decode(errors='replace')!r}")


def test_an_interactive_pty_session_follows_a_window_change(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    bucket = local_bucket(dataplane, tmp_path / "pty-recordings")
    target = recorded_target(dataplane, openssh, bucket, record_input=True)
    env = admin_env(dataplane, tmp_path)
    argv = bconnect_ssh(target, "--", *CLIENT_OPTIONS, "-tt")
    pid, fd = pty.fork()
    if pid == 0:  # the child: on the new terminal, 24 x 80
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execve(sys.executable, argv, env)
    seen = bytearray()
    try:
        os.write(fd, b"echo SIZE=$(stty size)\n")
        assert _read_until(fd, r"SIZE=(\d+ \d+)", seen).group(1) == "24 80"
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        seen.clear()
        time.sleep(0.5)  # the SIGWINCH reaches ssh, which sends window-change

        def resized() -> bool:
            os.write(fd, b"echo SIZE=$(stty size)\n")
            found = _read_until(fd, r"SIZE=(\d+ \d+)", seen).group(1)
            seen.clear()
            return found == "40 100"

        assert wait_for(resized)
        os.write(fd, b"exit 5\n")
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5
    recording = available_recording(dataplane, target)
    (channel,) = channels(recording)
    cast = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download").text
    events = [json.loads(line) for line in cast.splitlines()[1:]]
    assert json.loads(cast.splitlines()[0])["width"] == 80
    assert [e[2] for e in events if e[1] == "r"] == ["100x40"]
    assert "SIZE=40 100" in "".join(e[2] for e in events if e[1] == "o")
    assert "exit 5" in "".join(e[2] for e in events if e[1] == "i")  # record_input is on


def test_an_api_cancel_ends_ssh_and_finishes_the_recording(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    bucket = local_bucket(dataplane, tmp_path / "cancel-recordings")
    target = recorded_target(dataplane, openssh, bucket)
    env = admin_env(dataplane, tmp_path)
    proc = subprocess.Popen(
        bconnect_ssh(
            target, "-remote-command", "echo BEFORE-CANCEL; sleep 60", "--", *CLIENT_OPTIONS
        ),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "BEFORE-CANCEL\n"
        (session,) = sessions_of(dataplane, target)
        canceled = dataplane.request(
            "POST", f"/v1/sessions/{session['id']}:cancel", json={"version": session["version"]}
        )
        assert canceled.status_code == 200, canceled.text
        proc.wait(GUARD)
    finally:
        end_process(proc)
    assert proc.returncode != 0
    recording = available_recording(dataplane, target)
    (channel,) = channels(recording)
    assert channel["state"] == "available" and channel["sha256"]
    cast = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download")
    assert cast.status_code == 200 and "BEFORE-CANCEL" in cast.text


def test_recording_grants(dataplane, openssh, tmp_path) -> None:
    """type=session-recording;actions=list,read,download lets a user see and download
    recordings, not delete them; without it, nothing."""
    bucket = local_bucket(dataplane, tmp_path / "grant-recordings")
    target = recorded_target(dataplane, openssh, bucket)
    ran = _run(
        bconnect_ssh(target, "-remote-command", "echo GRANTED", "--", *CLIENT_OPTIONS),
        admin_env(dataplane, tmp_path),
    )
    assert ran.returncode == 0, ran.stderr
    recording = available_recording(dataplane, target)
    (channel,) = channels(recording)
    paths = (
        ("GET", f"/v1/session-recordings/{recording['id']}"),
        ("GET", f"/v1/session-recordings/{channel['id']}:download"),
    )
    for method, path in paths:
        assert dataplane.request(method, path, who="user").status_code == 403
    role = dataplane.request("POST", "/v1/roles", json={"scope_id": "global", "name": "auditors"})
    assert role.status_code == 200, role.text
    role_id, version = role.json()["id"], role.json()["version"]
    for action, body in (
        ("add-principals", {"principal_ids": ["u_0987654321"]}),
        (
            "add-grants",
            {"grant_strings": ["ids=*;type=session-recording;actions=list,read,download"]},
        ),
    ):
        done = dataplane.request(
            "POST", f"/v1/roles/{role_id}:{action}", json={"version": version, **body}
        )
        assert done.status_code == 200, done.text
        version = done.json()["version"]
    for method, path in paths:
        assert dataplane.request(method, path, who="user").status_code == 200
    listed = dataplane.request("GET", "/v1/session-recordings?scope_id=global", who="user")
    assert recording["id"] in [r["id"] for r in listed.json()["items"]]
    refused = dataplane.request("DELETE", f"/v1/session-recordings/{recording['id']}", who="user")
    assert refused.status_code == 403


def test_an_s3_bucket_records_the_same_way(dataplane, openssh, s3_server, tmp_path) -> None:
    require("ssh")
    name = s3_server.make_bucket(f"rec-{time.monotonic_ns()}")
    made = dataplane.request(
        "POST",
        "/v1/storage-buckets?plugin_name=s3",
        json={
            "scope_id": "global",
            "bucket_name": name,
            "bucket_prefix": "bconnect",
            "attributes": {"endpoint_url": s3_server.endpoint_url, "region": s3.REGION},
            "secrets": {"access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY},
        },
    )
    assert made.status_code == 200, made.text
    shown = made.json()
    assert "secrets" not in shown and shown["secrets_hmac"]
    assert s3.SECRET_KEY not in made.text
    target = recorded_target(dataplane, openssh, shown["id"])
    marker = f"S3-MARKER-{time.monotonic_ns()}"
    ran = _run(
        bconnect_ssh(target, "-remote-command", f"echo {marker}", "--", *CLIENT_OPTIONS),
        admin_env(dataplane, tmp_path),
    )
    assert ran.returncode == 0, ran.stderr
    (channel,) = channels(available_recording(dataplane, target))
    got = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download")
    assert got.status_code == 200, got.text
    assert marker in got.text
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=name)["Contents"]]
    assert any(k.startswith("bconnect/") and k.endswith(f"{channel['id']}.cast") for k in keys)
    stored = s3_server.client().get_object(Bucket=name, Key=next(k for k in keys if "chr_" in k))
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == channel["sha256"]


def test_sftp_transfers_are_recorded_as_events_not_contents(dataplane, openssh, tmp_path) -> None:
    require("sftp")
    bucket = local_bucket(dataplane, tmp_path / "sftp-recordings")
    target = recorded_target(dataplane, openssh, bucket)
    secret = f"CONTENT-{time.monotonic_ns()}".encode() * 1000
    local = tmp_path / "payload.bin"
    local.write_bytes(secret)
    remote = openssh.home / f"sftp-{time.monotonic_ns()}.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} {remote}\nget {remote} {tmp_path / 'back.bin'}\nrm {remote}\n")
    proxy = f"ProxyCommand={sys.executable} -m bconnect connect -stdio -target-id {target}"
    ran = _run(
        [
            "sftp",
            *CLIENT_OPTIONS,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            proxy,
            "-b",
            str(batch),
            "anyone@box",
        ],
        admin_env(dataplane, tmp_path),
    )
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "back.bin").read_bytes() == secret
    (channel,) = channels(available_recording(dataplane, target))
    assert channel["type"] == "sftp" and channel["command"] == "sftp"
    cast = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download").text
    assert f"sftp upload {remote} {len(secret)} bytes" in cast
    assert f"sftp download {remote} {len(secret)} bytes" in cast
    assert f"sftp remove {remote}" in cast
    assert "CONTENT-" not in cast


def test_an_injected_password_logs_in_to_a_real_sshd(dataplane, openssh, tmp_path) -> None:
    require("ssh")
    user, password = openssh.password_user()
    cred = credential(dataplane, "username_password", user, password=password)
    target = ssh_target(dataplane, openssh.port, cred)
    ran = _run(
        bconnect_ssh(target, "-remote-command", "id -un", "--", *CLIENT_OPTIONS),
        admin_env(dataplane, tmp_path),
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{user}\n"
    assert password not in ran.stderr
    # a wrong password: refused at the worker, said to the user in one line
    wrong = credential(dataplane, "username_password", user, password="not-" + password)
    refused = _run(
        bconnect_ssh(
            ssh_target(dataplane, openssh.port, wrong),
            "-remote-command",
            "true",
            "--",
            *CLIENT_OPTIONS,
        ),
        admin_env(dataplane, tmp_path),
    )
    assert refused.returncode != 0
    assert f"refused the injected credential of '{user}'" in refused.stderr, refused.stderr


# ---------------------------------------------------------------------- recording faults
def test_a_bucket_that_fills_mid_session_ends_it_with_the_reason(openssh, tmp_path) -> None:
    """`bconnect dev` whose writes past 8 MiB fail (RLIMIT_FSIZE: EFBIG, as a full disk
    would): a session printing 16 MB is cut with the reason, never relayed unrecorded."""
    require("ssh")
    limit = 8 * 1024 * 1024
    dev = DevProcess(tmp_path, file_size_limit=limit)
    try:
        dev.start()
        bucket = local_bucket(dev, tmp_path / "recordings")
        target = recorded_target(dev, openssh, bucket)
        env = admin_env(dev, tmp_path)
        result = subprocess.run(
            bconnect_ssh(
                target,
                "-remote-command",
                "head -c 12000000 /dev/zero | base64 -w 100; echo NEVER-SHOWN",
                "--",
                *CLIENT_OPTIONS,
            ),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GUARD * 2,
        )
        assert result.returncode != 0
        err = result.stderr.decode(errors="replace")
        assert f"session recording failed: storage bucket {bucket} cannot be written" in err, err
        assert "File too large" in err and "Traceback" not in err
        assert b"NEVER-SHOWN" not in result.stdout
        # what the user saw is no more than what was recorded
        assert 0 < len(result.stdout) < limit
        (session,) = sessions_of(dev, target)

        def closed() -> dict[str, Any] | None:
            read = dev.request("GET", f"/v1/sessions/{session['id']}").json()
            conns = read.get("connections") or []
            return conns[0] if conns and conns[0].get("closed_reason") else None

        assert wait_for(closed)
        assert closed()["closed_reason"] == "system error"  # type: ignore[index]
        dev.request(
            "POST", f"/v1/sessions/{session['id']}:cancel", json={"version": session["version"]}
        )
        recording = settled_recording(dev, target)
        (channel,) = channels(recording)
        assert recording["state"] == channel["state"] == "incomplete"
        assert "File too large" in channel["error"]
        assert "Traceback" not in dev.log.read_text()
    finally:
        dev.kill()
    assert dev.db.stat().st_size < limit  # the limit hit the recording, not the database


def test_a_worker_killed_mid_session_leaves_an_incomplete_recording(openssh, tmp_path) -> None:
    """SIGKILL of `bconnect dev` while a channel is being recorded; started again on the
    same database: the recording is listed as incomplete, and what reached the bucket is
    whole asciicast events that download and play."""
    require("ssh")
    dev = DevProcess(tmp_path)
    proc = None
    try:
        dev.start()
        bucket = local_bucket(dev, tmp_path / "recordings")
        target = recorded_target(dev, openssh, bucket)
        env = admin_env(dev, tmp_path)
        proc = subprocess.Popen(
            bconnect_ssh(
                target,
                "-remote-command",
                "i=0; while [ $i -lt 1200 ]; do i=$((i+1)); echo line-$i; sleep 0.05; done",
                "--",
                *CLIENT_OPTIONS,
            ),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == "line-20\n":
                break
        dev.kill()
        proc.wait(GUARD)
        assert proc.returncode != 0
        dev.start()
        (session,) = sessions_of(dev, target)
        dev.request(
            "POST", f"/v1/sessions/{session['id']}:cancel", json={"version": session["version"]}
        )
        recording = settled_recording(dev, target)
        (channel,) = channels(recording)
        assert recording["state"] == channel["state"] == "incomplete"
        assert "sha256" not in channel
        download = dev.request("GET", f"/v1/session-recordings/{channel['id']}:download")
        assert download.status_code == 200, download.text
        assert download.headers["X-Bconnect-Recording-State"] == "incomplete"
        lines = download.text.splitlines()
        assert json.loads(lines[0])["version"] == 2
        events = [json.loads(line) for line in lines[1:]]  # every line whole
        assert "line-20" in "".join(e[2] for e in events if e[1] == "o")
        cast = tmp_path / "partial.cast"
        cast.write_bytes(download.content)
        require("asciinema")
        played = _run(["asciinema", "cat", str(cast)], env)
        assert played.returncode == 0 and "line-20" in played.stdout, played.stderr
    finally:
        if proc is not None:
            end_process(proc)
        dev.kill()


# ---------------------------------------------------------------------- the worker's key
def test_the_client_checks_the_workers_key_for_the_target(dataplane, openssh, tmp_path) -> None:
    """Boundary's ssh helper skips the check for localhost; bconnect checks the key the
    controller serves for the target: `bconnect ssh`, `config known-hosts`, and
    `config ssh` (KnownHostsCommand) with plain ssh; another target's key is refused."""
    require("ssh")
    env = admin_env(dataplane, tmp_path)
    target = ssh_target(dataplane, openssh.port, key_credential(dataplane, openssh))
    other = ssh_target(dataplane, openssh.port, key_credential(dataplane, openssh))
    key = dataplane.request("GET", f"/v1/targets/{target}").json()["attributes"]["worker_host_key"]

    one = _bconnect(env, "config", "known-hosts", "-target-id", target)
    assert one.returncode == 0, one.stderr
    assert one.stdout == f"{target} {key}\n"
    every = _bconnect(env, "config", "known-hosts")
    assert every.returncode == 0 and f"{target} {key}\n" in every.stdout, every.stderr
    assert other in every.stdout
    tcp = _bconnect(env, "config", "known-hosts", "-target-id", "ttcp_1234567890")
    assert tcp.returncode == 3  # a user error, as elsewhere
    assert tcp.stderr.strip().endswith("is not an ssh target: it has no worker host key")

    # bconnect ssh: ssh -v says the key was known and matched, under the target id
    verbose = [*CLIENT_OPTIONS[: CLIENT_OPTIONS.index("LogLevel=ERROR") - 1], "-v"]
    ran = _run(
        bconnect_ssh(target, "-remote-command", "echo checked", "--", *verbose),
        env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "checked\n"
    assert f"host '{target.lower()}' is known and matches the ed25519 host key" in (
        ran.stderr.lower()
    ), ran.stderr

    # config ssh: plain ssh by alias, the key from KnownHostsCommand, nothing on disk
    host = f"box{time.monotonic_ns()}.ssh"
    make_alias(dataplane, host, target)
    made = _bconnect(env, "config", "ssh")
    assert made.returncode == 0, made.stderr
    assert f"HostKeyAlias {target}\n" in made.stdout
    assert f"config known-hosts -target-id {target}" in made.stdout
    assert f"# the worker's key for this ssh target: {key}" in made.stdout
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    options = "\n".join(
        [
            "Host *",
            "    IdentityAgent none",
            "    IdentitiesOnly yes",
            "    IdentityFile /dev/null",
            "    BatchMode yes",
            f"    UserKnownHostsFile {empty}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    LogLevel ERROR",
        ]
    )
    config = tmp_path / "ssh_config"
    config.write_text(made.stdout + "\n" + options + "\n")
    plain = _run(["ssh", "-F", str(config), host, "echo via-config"], env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "via-config\n" and empty.read_text() == ""
    # the same entry checked against another target's key: refused
    config.write_text(
        made.stdout.replace(f"known-hosts -target-id {target}", f"known-hosts -target-id {other}")
        + "\n"
        + options
        + "\n"
    )
    refused = _run(["ssh", "-F", str(config), host, "echo should-not-run"], env)
    assert refused.returncode == 255 and "should-not-run" not in refused.stdout
    assert "Host key verification failed" in refused.stderr, refused.stderr


def test_a_buckets_worker_filter_chooses_the_workers(dataplane, openssh, tmp_path) -> None:
    """Only workers matching the bucket's worker filter (and the target's) may serve a
    recorded session: none matching refuses it at authorize time, as Boundary does."""
    made = dataplane.request(
        "POST",
        "/v1/storage-buckets?plugin_name=local",
        json={
            "scope_id": "global",
            "bucket_name": str(tmp_path / "filtered"),
            "worker_filter": '"recorders" in "/tags/type"',
        },
    )
    assert made.status_code == 200, made.text
    bucket = made.json()
    target = recorded_target(dataplane, openssh, bucket["id"])
    refused = dataplane.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert refused.status_code == 400, refused.text
    assert "all have been filtered" in refused.json()["message"]
    updated = dataplane.request(
        "PATCH",
        f"/v1/storage-buckets/{bucket['id']}",
        json={"version": bucket["version"], "worker_filter": '"/name" == "test-worker"'},
    )
    assert updated.status_code == 200, updated.text
    allowed = dataplane.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert allowed.status_code == 200, allowed.text


def test_a_forward_through_a_recorded_target(dataplane, openssh, echo_server, tmp_path) -> None:
    """`bconnect ssh -- -W` (a direct-tcpip channel, as -L and -D open): the host dials
    the destination; the recording has the forward with its byte counts, not the bytes."""
    require("ssh")
    bucket = local_bucket(dataplane, tmp_path / "forward-recordings")
    target = recorded_target(dataplane, openssh, bucket)
    payload = b"FORWARDED-" + os.urandom(256 * 1024).hex().encode()
    where = f"127.0.0.1:{echo_server.port}"
    done = subprocess.run(
        bconnect_ssh(target, "--", *CLIENT_OPTIONS, "-W", where),
        env=admin_env(dataplane, tmp_path),
        input=payload,
        capture_output=True,
        timeout=GUARD * 2,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == payload
    (channel,) = channels(available_recording(dataplane, target))
    assert channel["type"] == "direct-tcpip" and channel["command"] == f"forward to {where}"
    cast = dataplane.request("GET", f"/v1/session-recordings/{channel['id']}:download").text
    assert f"forward to {where} opened" in cast
    n = len(payload)
    assert f"forward to {where} closed: {n} bytes sent, {n} bytes received" in cast
    assert "FORWARDED-" not in cast
