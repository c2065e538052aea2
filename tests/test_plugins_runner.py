"""Running a helper: temp files, secrets, passthrough, events and teardown on every path.

The end-to-end tests run ``python -m bconnect probe …`` against a real controller and
worker; the ``probe`` plugin (tests/plugin_samples) launches a child that reports what
it got (its own ``/proc/self/cmdline``, env, the 0600 file) and then exits or sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.cli import SESSION_LINE
from support.constants import GUARD
from support.dataplane import add_credential, make_target, session
from support.plugin_dists import bconnect_env, make_dist, sample
from support.wait import wait_for

from bconnect.core.credentials import SessionCredential, parse_credentials
from bconnect.core.launch import (
    LaunchFiles,
    build_context,
    check_launch,
    insert_passthrough,
    prepare_exec,
    substitute_files,
    unconsumed,
)
from bconnect.core.runner import ListenInfo, _signal_child
from bconnect.plugins.hookspecs import Launch

PASSWORD = "pr0be-s3cret-pw"


# ---------------------------------------------------------------------- pure parts
async def test_a_child_exiting_just_as_it_is_signaled_keeps_its_exit_code() -> None:
    """Signalling a child that is exiting that moment: asyncio's Process.send_signal
    polls, and a poll that reaps the child makes asyncio report 255 (7 % of tries here);
    the runner's own signalling leaves the reaping to asyncio."""
    codes = []
    for _ in range(100):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(7)")
        while _state(child.pid) not in ("Z", "gone"):  # exiting: signal it now
            await asyncio.sleep(0.0005)
        _signal_child(child, signal.SIGTERM)
        codes.append(await child.wait())
    assert set(codes) <= {7, -signal.SIGTERM}, codes


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def test_launch_files_are_private_and_removed() -> None:
    files = LaunchFiles()
    paths = files.write({"key": "secret\n", "raw": b"\x00\x01"})
    directory = Path(paths["key"]).parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Path(paths["key"]).read_text() == "secret\n"
    assert Path(paths["raw"]).read_bytes() == b"\x00\x01"
    files.cleanup()
    assert not directory.exists()
    files.cleanup()  # idempotent
    assert LaunchFiles().write({}) == {}  # no files, no directory


def test_substitute_and_prepare() -> None:
    paths = {"key": "/tmp/d/key", "cfg": "/tmp/d/cfg"}
    assert substitute_files("-i{{file.key}} {{ file.cfg }}", paths) == "-i/tmp/d/key /tmp/d/cfg"
    with pytest.raises(ValueError, match=r"\{\{file.nope\}\} names no file"):
        substitute_files("{{file.nope}}", paths)
    launch = Launch(
        argv=["psql", "-h", "{{boundary.ip}}"], env={"PGPASSFILE": "{{file.key}}", "A": "b"}
    )
    spec = prepare_exec(launch, paths, ["-c", "select 1"])
    assert (spec.program, list(spec.args)) == ("psql", ["-c", "select 1", "-h", "{{boundary.ip}}"])
    assert spec.env == {"PGPASSFILE": "/tmp/d/key", "A": "b"}
    assert prepare_exec(launch, paths, (), "/opt/psql").program == "/opt/psql"


def test_passthrough_goes_after_the_program_unless_placed() -> None:
    assert insert_passthrough(["ssh", "-p", "1"], ["-v"]) == ["ssh", "-v", "-p", "1"]
    assert insert_passthrough(["py", "-m", "x", "-v", "-q"], ["-v", "-q"]) == [
        "py",
        "-m",
        "x",
        "-v",
        "-q",
    ]
    assert insert_passthrough(["ssh"], []) == ["ssh"]


def test_check_launch_refuses_secrets_in_argv_and_bad_shapes() -> None:
    cred = SessionCredential(source_id="credup_1", fields={"username": "u", "password": PASSWORD})
    check_launch(Launch(argv=["x", "-U", "u"], env={"PW": PASSWORD}, files={"f": PASSWORD}), [cred])
    with pytest.raises(ValueError, match="brokered password is in the command line"):
        check_launch(Launch(argv=["x", f"--password={PASSWORD}"]), [cred])
    short = SessionCredential(source_id="credup_2", fields={"password": "1234"})
    check_launch(Launch(argv=["x", "-p", "41234"]), [short])  # a port, not the secret
    with pytest.raises(ValueError, match="brokered password"):
        check_launch(Launch(argv=["x", "1234"]), [short])
    for launch, message in [
        (Launch(argv=[]), "non-empty list"),
        (Launch(argv=["x", 1]), "non-empty list"),  # type: ignore[list-item]
        (Launch(argv=[""]), "empty"),
        (Launch(argv=["x"], env={"A": 1}), "strings to strings"),  # type: ignore[dict-item]
        (Launch(argv=["x"], files={"../x": "y"}), "invalid Launch.files name"),
        (Launch(argv=["x"], files={"a/b": "y"}), "invalid Launch.files name"),
        (Launch(argv=["x"], files={"k": 3}), "str or bytes"),  # type: ignore[dict-item]
        (Launch(argv=["x"], consumed="credup_1"), "set of credential"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ValueError, match=message):
            check_launch(launch)


def test_context_and_unconsumed_credentials() -> None:
    items = [
        {
            "credential_source": {"id": "credup_1", "credential_type": "username_password"},
            "credential": {"username": "u", "password": PASSWORD},
        },
        {"credential_source": {"id": "credspk_2", "credential_type": "ssh_private_key"}},
    ]
    info = ListenInfo(
        "127.0.0.1", 4000, "127.0.0.1:4000", "s_1", "tcp", datetime(2030, 1, 1, tzinfo=UTC), -1
    )

    class Authz:
        target_id, host_id, endpoint = "ttcp_1", "hst_1", "tcp://10.0.0.1:22"

    ctx = build_context("x", info, Authz(), parse_credentials(items), {"user": "a"}, ["-v"])
    assert (ctx.address, ctx.target_id, ctx.host_id, ctx.endpoint) == (
        "127.0.0.1:4000",
        "ttcp_1",
        "hst_1",
        "tcp://10.0.0.1:22",
    )
    assert ctx.credentials[0].password == PASSWORD
    assert ctx.credentials[0].credential_type == "username_password"
    assert PASSWORD not in repr(ctx)
    assert ctx.passthrough == ("-v",)
    with pytest.raises(TypeError):
        ctx.options["user"] = "b"  # type: ignore[index]
    assert unconsumed(items, {"credup_1"}) == [items[1]]
    assert unconsumed(items, set()) == items


# ---------------------------------------------------------------------- end to end
@pytest.fixture
def probe(tmp_path: Path) -> dict[str, str]:
    """The environment for ``python -m bconnect probe``: the probe plugin installed as
    a fake distribution, private TMPDIR, report and event files."""
    site = make_dist(
        tmp_path / "site",
        "probe-pkg",
        {"probe_plugin": sample("probe_plugin"), "probe_child": sample("probe_child")},
        {"probe": "probe_plugin"},
    )
    (tmp_path / "tmp").mkdir()
    return bconnect_env(
        tmp_path / "cache",
        site,
        BCONNECT_LOAD_PLUGINS="probe-pkg",
        TMPDIR=str(tmp_path / "tmp"),
        PROBE_REPORT=str(tmp_path / "report.json"),
        PROBE_EVENTS=str(tmp_path / "events.jsonl"),
    )


@pytest.fixture
def target(dataplane, echo_server) -> str:  # noqa: ANN001
    """An echo target with a brokered username/password credential."""
    target_id = make_target(dataplane, echo_server.port, session_connection_limit=5)
    add_credential(
        dataplane, target_id, "username_password", {"username": "probe-user", "password": PASSWORD}
    )
    return target_id


class Probe:
    """A running ``python -m bconnect probe`` (or ``connect probe``)."""

    def __init__(self, ctl, env: dict[str, str], *args: str) -> None:  # noqa: ANN001
        self.env = {**env, "BOUNDARY_ADDR": ctl.addr, "BOUNDARY_TOKEN": ctl.token("admin")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bconnect", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def report(self) -> dict:
        path = Path(self.env["PROBE_REPORT"])
        assert wait_for(lambda: path.exists() or self.proc.poll() is not None)
        assert path.exists(), self.proc.communicate(timeout=GUARD)
        return json.loads(path.read_text())

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=GUARD)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def events(self) -> list[dict]:
        path = Path(self.env["PROBE_EVENTS"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def temp_dirs(self) -> list[str]:
        return sorted(os.listdir(self.env["TMPDIR"]))


@pytest.fixture
def probes():  # noqa: ANN201
    started: list[Probe] = []
    yield started
    for p in started:
        p.kill()


def start(probes, ctl, env, *args: str) -> Probe:  # noqa: ANN001
    p = Probe(ctl, env, *args)
    probes.append(p)
    return p


def assert_session_ended(ctl, p: Probe) -> str:  # noqa: ANN001
    """The events were started … ended, and the session is canceled/terminated."""
    events = p.events()
    assert [e["event"] for e in events][0] == "started"
    assert events[-1]["event"] == "ended"
    sid = events[0]["session_id"]
    assert all(e["session_id"] == sid for e in events)
    assert wait_for(lambda: session(ctl, sid)["status"] in ("canceling", "terminated"))
    return sid


def test_normal_run_secrets_files_and_exit_code(dataplane, target, probe, probes) -> None:
    p = start(
        probes,
        dataplane,
        {**probe, "PROBE_CONNECT": "1"},
        "probe",
        "-target-id",
        target,
        "-mode",
        "exit",
        "-code",
        "7",
        "--",
        "--extra",
        "{{boundary.port}}",
    )
    report = p.report()
    code, out, err = p.finish()
    assert code == 7, err
    assert report["echo"] == "ping"  # the child used the proxy once
    # the secret reached the child through env and a 0600 file, never its command line
    assert PASSWORD not in "\0".join(report["cmdline"])
    assert report["secret_env"] == PASSWORD
    assert report["key_content"] == PASSWORD
    assert report["key_mode"] == 0o600 and report["dir_mode"] == 0o700
    assert report["key_file_env"] == report["key_path"]
    assert report["key_path"].startswith(probe["TMPDIR"])
    # passthrough: placed by the plugin itself (after its own arguments), templated once
    assert report["argv"][-2:] == ["--extra", report["proxied_port"]]
    assert report["cmdline"].count("--extra") == 1
    # not consumed: the brokered credential is printed in Boundary's block
    assert "Credentials:" in out and "Credential Source ID:" in out
    assert "probe-user" in out
    assert p.temp_dirs() == []
    sid = assert_session_ended(dataplane, p)
    ended = p.events()[-1]["data"]
    assert ended == {"reason": "Program exited", "exit_code": 7}
    assert {"event": "connections_left", "session_id": sid, "data": {"count": 4}} in p.events()
    assert p.events()[0]["data"]["helper"] == "probe"
    assert sid.startswith("s_")


def test_connect_spelling_consumed_credentials_and_flags_before_the_helper(
    dataplane, target, probe, probes
) -> None:
    p = start(
        probes,
        dataplane,
        probe,
        "connect",
        "-target-id",
        target,
        "probe",
        "-consume",
        "-format",
        "json",
    )
    report = p.report()
    code, out, err = p.finish()
    assert code == 0, err
    assert report["secret_env"] == PASSWORD
    assert "credentials" not in out and PASSWORD not in out
    assert p.temp_dirs() == []
    assert_session_ended(dataplane, p)


def test_child_killed(dataplane, target, probe, probes) -> None:
    p = start(probes, dataplane, probe, "probe", "-target-id", target, "-mode", "sleep")
    report = p.report()
    assert len(p.temp_dirs()) == 1
    os.kill(report["pid"], signal.SIGKILL)
    code, _, err = p.finish()
    assert code == 128 + signal.SIGKILL, err
    assert p.temp_dirs() == []
    assert_session_ended(dataplane, p)


def test_sigterm_to_bconnect(dataplane, target, probe, probes) -> None:
    p = start(probes, dataplane, probe, "probe", "-target-id", target, "-mode", "sleep")
    report = p.report()
    assert os.path.exists(report["key_path"])
    p.proc.send_signal(signal.SIGTERM)
    code, out, err = p.finish()
    assert code == 128 + signal.SIGTERM, err  # the child got SIGTERM too
    assert "Received shutdown signal" in out
    assert not os.path.exists(report["key_path"])
    assert p.temp_dirs() == []
    assert_session_ended(dataplane, p)
    assert p.events()[-1]["data"]["reason"] == "Received shutdown signal"
    with pytest.raises(ProcessLookupError):
        os.kill(report["pid"], 0)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", 'plugin "probe" (from package probe-pkg) failed: RuntimeError: the probe broke'),
        ("helper-error", "probe says no"),
        (
            "bad-template",
            'plugin "probe" (from package probe-pkg): {{file.missing}} names no file of the launch',
        ),
    ],
)
def test_plugin_failure(dataplane, target, probe, probes, mode: str, message: str) -> None:
    p = start(probes, dataplane, probe, "probe", "-target-id", target, "-mode", mode)
    code, out, err = p.finish()
    assert code == 2
    lines = [line for line in err.splitlines() if "bconnect_session_event" not in line]
    assert lines[1:] == [f"Failed to collect args: {message}"]
    assert SESSION_LINE.fullmatch(lines[0] + "\n"), err
    assert "plugin \"probe\": bconnect_session_event('started') failed (ignored)" in err
    assert PASSWORD not in out + err
    assert p.temp_dirs() == []
    assert not Path(probe["PROBE_REPORT"]).exists()
    assert_session_ended(dataplane, p)
    assert p.events()[-1]["data"] == {"reason": "Failed to collect args", "exit_code": 2}


def test_tcp_helper_is_connect(dataplane, echo_server, tmp_path: Path) -> None:
    target_id = make_target(dataplane, echo_server.port)
    env = bconnect_env(tmp_path / "cache")
    env.update(BOUNDARY_ADDR=dataplane.addr, BOUNDARY_TOKEN=dataplane.token("admin"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bconnect", "tcp", "-target-id", target_id, "-format", "json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        listening = json.loads(proc.stdout.readline())
        assert listening["protocol"] == "tcp" and listening["port"] > 0
        from support.echo import echo_through

        assert echo_through(listening["port"], b"ping") == b"ping"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"termination_reason": "Received shutdown signal"}
    sid = listening["session_id"]
    assert wait_for(lambda: session(dataplane, sid)["status"] in ("canceling", "terminated"))


def test_kill_9_leaves_a_dir_the_next_run_removes(dataplane, target, probe, probes) -> None:
    p = start(probes, dataplane, probe, "probe", "-target-id", target, "-mode", "sleep")
    report = p.report()
    os.kill(report["pid"], signal.SIGKILL)  # the child, then bconnect, with no clean-up
    p.proc.kill()
    p.proc.wait()
    stale = os.path.basename(os.path.dirname(report["key_path"]))
    assert p.temp_dirs() == [stale]
    assert stale.startswith(f"bconnect-{p.proc.pid}-")
    tmp = Path(probe["TMPDIR"])
    live = tmp / f"bconnect-{os.getpid()}-abcdefgh"  # this test process is alive
    live.mkdir()
    elsewhere = tmp.parent / "elsewhere"
    elsewhere.mkdir()
    (tmp / f"bconnect-{p.proc.pid}-linkedxx").symlink_to(elsewhere)  # dead pid, a symlink
    (tmp / "bconnect-notapid").mkdir()
    (tmp / f"bconnect-{p.proc.pid}-toolongname").mkdir()
    kept = [live.name, f"bconnect-{p.proc.pid}-linkedxx", f"bconnect-{p.proc.pid}-toolongname"]
    kept.append("bconnect-notapid")
    if os.getuid() == 0:  # another user's directory, its process gone too
        other = tmp / f"bconnect-{p.proc.pid}-otheruid"
        other.mkdir()
        os.chown(other, 65534, 65534)
        kept.append(other.name)

    again = start(probes, dataplane, probe, "probe", "-target-id", target, "-mode", "exit")
    code, _, err = again.finish()
    assert code == 0, err
    left = again.temp_dirs()
    assert stale not in left  # removed: its process is gone
    assert sorted(left) == sorted(kept)  # and the second run removed its own directory
    assert elsewhere.is_dir()  # the symlink was not followed
