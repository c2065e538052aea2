"""The plugin manager and the helper index: loading, BCONNECT_LOAD_PLUGINS, broken plugins.

Third-party plugins are fake distributions (a dist-info with an entry point) written to
a temporary directory put on ``sys.path`` (in process) or ``PYTHONPATH`` (subprocesses).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.cli import run_bconnect
from support.constants import GUARD
from support.plugin_dists import bconnect_env, make_dist, sample

from bconnect.plugins import HelperError, HelperInfo, HelperOption
from bconnect.plugins.hookspecs import ConnectContext
from bconnect.plugins.manager import (
    BUILTINS,
    PluginFailure,
    load_plugins,
    parse_load_filter,
    validate_helpers,
)

TCP_ONLY = ["bconnect.plugins.tcp"]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for fake distributions (imports from it are undone)."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(root) in sys.modules[name].__file__:
            del sys.modules[name]


def load(load_filter: str | None = None, builtins: list[str] | None = None):  # noqa: ANN201
    warnings: list[str] = []
    host = load_plugins(
        warn=warnings.append,
        load_filter=load_filter,
        builtins=TCP_ONLY if builtins is None else builtins,
    )
    return host, warnings


def context(helper: str, **options: object) -> ConnectContext:
    return ConnectContext(
        helper=helper,
        host="127.0.0.1",
        port=4242,
        session_id="s_1234567890",
        target_id="ttcp_1234567890",
        host_id="",
        endpoint="tcp://127.0.0.1:22",
        expiration=datetime(2030, 1, 1, tzinfo=UTC),
        options=options,
    )


# ---------------------------------------------------------------------- pure parts
def test_parse_load_filter() -> None:
    assert parse_load_filter(None) is None
    assert parse_load_filter("") == frozenset()
    assert parse_load_filter(" , ") == frozenset()
    assert parse_load_filter("Bconnect_NC, other.pkg") == {"bconnect-nc", "other-pkg"}


def test_validate_helpers() -> None:
    good = HelperInfo("db-shell", "One line", "bconnect db-shell", [HelperOption("user", "u")])
    assert validate_helpers([good]) == [good]
    assert validate_helpers(None) == []
    assert validate_helpers((good,)) == [good]
    for garbage, message in [
        ("ssh", "returned str"),
        ({"name": "x"}, "returned dict"),
        ([{"name": "x"}], "a dict in its list"),
        ([HelperInfo("Bad Name", "s", "e")], "invalid helper name"),
        ([HelperInfo("x", "", "e")], "summary"),
        ([HelperInfo("x", "two\nlines", "e")], "summary"),
        ([HelperInfo("x", "s", "e", ["user"])], "not a HelperOption"),
        ([HelperInfo("x", "s", "e", [HelperOption("-user", "h")])], "invalid option name"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            validate_helpers(garbage)


# ---------------------------------------------------------------------- loading
def test_builtins_load_and_missing_builtins_are_skipped_silently() -> None:
    host, warnings = load("", builtins=[*TCP_ONLY, "bconnect.plugins.not_written_yet"])
    assert warnings == []
    assert [p.name for p in host.plugins] == ["bconnect.plugins.tcp"]
    record = host.plugins[0]
    assert (record.package, record.builtin, record.helpers) == ("bconnect", True, ("tcp",))
    assert record.hooks == ("bconnect_connect_helpers",)
    assert host.helper("tcp").info.example.startswith("bconnect tcp")


def test_default_builtins_include_tcp_first() -> None:
    assert BUILTINS[0] == "bconnect.plugins.tcp"
    host = load_plugins(warn=lambda line: None, load_filter="", fresh=True)
    assert host.plugins[0].name == "bconnect.plugins.tcp"
    assert all(p.builtin for p in host.plugins)


def test_builtin_with_a_missing_dependency_warns(site: Path) -> None:
    (site / "needs_missing_dep.py").write_text("import bconnect_no_such_dependency\n")
    host, warnings = load("", builtins=[*TCP_ONLY, "needs_missing_dep"])
    assert len(warnings) == 1
    assert warnings[0].startswith('Warning: plugin "needs_missing_dep" (from package bconnect)')
    assert "bconnect_no_such_dependency" in warnings[0]
    assert "tcp" in host.helpers


def test_third_party_plugin_is_discovered(site: Path) -> None:
    make_dist(site, "hello-pkg", {"good_plugin": sample("good_plugin")}, {"hello": "good_plugin"})
    host, warnings = load(None)
    assert warnings == []
    record = next(p for p in host.plugins if p.name == "hello")
    assert (record.package, record.version, record.builtin) == ("hello-pkg", "1.0", False)
    assert record.hooks == (
        "bconnect_connect_helpers",
        "bconnect_connect_launch",
        "bconnect_session_event",
    )
    assert record.helpers == ("hello",)
    assert record.source == {"entry_point": "hello", "value": "good_plugin"}
    assert record.files and record.files[0].endswith("good_plugin.py")
    launch = host.launch("hello", context("hello", greeting="hey"))
    assert launch.argv == ["echo", "hey", "127.0.0.1:4242"]
    assert record.as_dict()["package"] == "hello-pkg"


@pytest.mark.parametrize(
    ("value", "loaded"),
    [
        (None, {"one", "two"}),
        ("", set()),
        ("one", {"one"}),  # by entry-point name
        ("pkg-two", {"two"}),  # by distribution
        ("PKG_one , two", {"one", "two"}),  # normalized
        ("something-else", set()),
    ],
)
def test_load_filter(site: Path, value: str | None, loaded: set[str]) -> None:
    make_dist(site, "pkg-one", {"good_plugin": sample("good_plugin")}, {"one": "good_plugin"})
    make_dist(site, "pkg-two", {"tcp_clash": sample("tcp_clash")}, {"two": "tcp_clash"})
    host, _ = load(value)
    assert {p.name for p in host.plugins if not p.builtin} == loaded
    assert "tcp" in host.helpers  # built-ins always load


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("broken_import", "RuntimeError: this plugin is broken on purpose"),
        ("bad_signature", "bogus"),
        ("unknown_hook", 'unknown hook "bconnect_conect_helpers"'),
        ("garbage_helpers", "not a HelperInfo"),
        ("raising_helpers", "ValueError: no helpers today"),
    ],
)
def test_broken_plugin_gives_one_warning_and_builtins_keep_working(
    site: Path, module: str, reason: str
) -> None:
    make_dist(site, "broken-pkg", {module: sample(module)}, {"broken": module})
    make_dist(site, "hello-pkg", {"good_plugin": sample("good_plugin")}, {"hello": "good_plugin"})
    host, warnings = load(None)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        'Warning: plugin "broken" (from package broken-pkg) was not loaded: '
    )
    assert reason in warnings[0]
    assert "\n" not in warnings[0]
    assert {p.name for p in host.plugins} == {"bconnect.plugins.tcp", "hello"}
    assert set(host.helpers) == {"tcp", "hello"}
    assert host.pm.get_plugin("broken") is None


def test_first_plugin_keeps_a_helper_name(site: Path) -> None:
    make_dist(site, "clash-pkg", {"tcp_clash": sample("tcp_clash")}, {"clash": "tcp_clash"})
    host, warnings = load(None)
    assert warnings == [
        'Warning: helper "tcp" of plugin "clash" (from package clash-pkg) is ignored: '
        'plugin "bconnect.plugins.tcp" (from package bconnect) already provides it'
    ]
    assert host.helper("tcp").plugin.builtin
    assert host.helper("clash").plugin.name == "clash"
    assert next(p for p in host.plugins if p.name == "clash").helpers == ("clash",)


def test_launch_failures_name_the_plugin(site: Path) -> None:
    make_dist(
        site, "fail-pkg", {"failing_launch": sample("failing_launch")}, {"f": "failing_launch"}
    )
    host, _ = load(None)
    label = 'plugin "f" (from package fail-pkg)'
    with pytest.raises(PluginFailure, match=re.escape(f"{label} failed: KeyError: 'missing'")):
        host.launch("fail-raise", context("fail-raise"))
    with pytest.raises(PluginFailure, match="returned no launch"):
        host.launch("fail-none", context("fail-none"))
    with pytest.raises(PluginFailure, match="returned a str, not a Launch"):
        host.launch("fail-type", context("fail-type"))
    with pytest.raises(HelperError, match="^pass -username$") as info:
        host.launch("fail-user", context("fail-user"))
    assert not isinstance(info.value, PluginFailure)
    with pytest.raises(PluginFailure, match="no bconnect_connect_launch hook"):
        host.launch("tcp", context("tcp"))


def test_session_event_failures_are_ignored(site: Path) -> None:
    make_dist(
        site, "probe-pkg", {"probe_plugin": sample("probe_plugin")}, {"probe": "probe_plugin"}
    )
    make_dist(site, "hello-pkg", {"good_plugin": sample("good_plugin")}, {"hello": "good_plugin"})
    host, _ = load(None)
    host.emit("started", "s_1", {"helper": "probe", "address": "127.0.0.1:1"})  # probe raises
    good = sys.modules["good_plugin"]
    assert good.EVENTS == [("started", "s_1", {"helper": "probe", "address": "127.0.0.1:1"})]


# ---------------------------------------------------------------------- the CLI side
def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_bconnect(*args, env=env)


def test_plugins_list_with_a_broken_plugin(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site",
        "broken-pkg",
        {"broken_import": sample("broken_import")},
        {"b": "broken_import"},
    )
    make_dist(site, "hello-pkg", {"good_plugin": sample("good_plugin")}, {"hello": "good_plugin"})
    env = bconnect_env(tmp_path / "cache", site)
    result = run(env, "plugins", "list")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        'Warning: plugin "b" (from package broken-pkg) was not loaded: '
        "RuntimeError: this plugin is broken on purpose"
    ]
    assert "Name:     bconnect.plugins.tcp" in result.stdout
    assert "Package:  hello-pkg 1.0" in result.stdout

    listed = run(env, "plugins", "list", "-format", "json")
    items = {item["name"]: item for item in json.loads(listed.stdout)["items"]}
    assert items["hello"] == {
        "name": "hello",
        "package": "hello-pkg",
        "version": "1.0",
        "builtin": False,
        "hooks": ["bconnect_connect_helpers", "bconnect_connect_launch", "bconnect_session_event"],
        "helpers": ["hello"],
    }
    assert items["bconnect.plugins.tcp"]["builtin"] is True
    assert "b" not in items

    help_result = run(env, "--help")  # the helper list and the warning, from the cache
    assert re.search(r"\n  hello +Say hello through the proxy\n", help_result.stdout)
    assert len(help_result.stderr.splitlines()) == 1

    hidden = run({**env, "BCONNECT_LOAD_PLUGINS": ""}, "plugins", "list", "-format", "json")
    assert hidden.stderr == ""
    assert [i["name"] for i in json.loads(hidden.stdout)["items"]] == [
        i for i in items if i.startswith("bconnect.")
    ]


HELP_PROBE = """
import sys
from bconnect.cli.main import cli
try:
    cli.main(sys.argv[1:], prog_name="bconnect")
except SystemExit:
    pass
print("PLUGGY", "pluggy" in sys.modules, "good_plugin" in sys.modules)
heavy = ("bconnect.controller", "bconnect.worker", "fastapi", "sqlalchemy", "bconnect.core.proxy")
print("HEAVY", sorted(m for m in sys.modules if m.startswith(heavy)))
"""


def test_help_uses_the_cached_index_and_notices_new_plugins(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site",
        "hello-pkg",
        {"good_plugin": sample("good_plugin")},
        {"hello": "good_plugin"},
    )
    env = bconnect_env(tmp_path / "cache", site)

    def help_of(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", HELP_PROBE, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=GUARD,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = help_of("--help")  # discovers and writes the cache
    assert re.search(r"\n  hello +Say hello through the proxy\n", first)
    assert "PLUGGY True True" in first
    assert (tmp_path / "cache" / "bconnect" / "plugin-index.json").is_file()

    second = help_of("--help")  # from the cache: no pluggy, no plugin imported
    assert re.search(r"\n  hello +Say hello through the proxy\n", second)
    assert "PLUGGY False False" in second
    assert "HEAVY []" in second

    helper_help = help_of("hello", "--help")  # imports only that plugin
    assert "-greeting, --greeting TEXT" in helper_help
    assert "bconnect hello -target-id ttcp_1234567890" in helper_help
    assert "-target-id, --target-id" in helper_help
    assert "PLUGGY True True" in helper_help
    assert "HEAVY []" in helper_help  # no server code, no proxy stack for --help

    connect_help = help_of("connect", "hello", "--help")
    assert "Usage: bconnect connect hello [OPTIONS]" in connect_help

    # installing another distribution changes the directory: the cache is redone
    make_dist(site, "pkg-two", {"tcp_clash": sample("tcp_clash")}, {"two": "tcp_clash"})
    third = help_of("--help")
    assert re.search(r"\n  clash +A helper of its own\n", third)
    assert re.search(r"\n  tcp +Proxy a session on a local port", third)


def test_unknown_command_is_still_an_error(tmp_path: Path) -> None:
    result = run(bconnect_env(tmp_path / "cache"), "no-such-helper", "-target-id", "x")
    assert result.returncode == 2
    assert "No such command 'no-such-helper'" in result.stderr


def test_cache_off_and_a_corrupt_cache_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index_file = cache / "bconnect" / "plugin-index.json"
    off = run({**bconnect_env(cache), "BCONNECT_PLUGIN_CACHE": "off"}, "--help")
    assert off.returncode == 0 and re.search(r"\n  tcp +Proxy", off.stdout)
    assert not index_file.exists()

    index_file.parent.mkdir(parents=True)
    index_file.write_text("{not json")
    corrupt = run(bconnect_env(cache), "--help")
    assert corrupt.returncode == 0 and re.search(r"\n  tcp +Proxy", corrupt.stdout)
    assert corrupt.stderr == ""
    assert json.loads(index_file.read_text())["version"] == 1  # rewritten
