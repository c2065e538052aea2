"""The cached index of connect helpers, so ``bconnect --help`` stays fast.

Discovering plugins means importing ``importlib.metadata`` and pluggy, scanning every
installed distribution for ``bconnect`` entry points and importing every plugin (about
70 ms before any plugin code). ``bconnect --help`` only needs each helper's name and
summary, so the result of a discovery is kept in
``$XDG_CACHE_HOME/bconnect/plugin-index.json`` (``~/.cache`` by default)::

    {"version": 1, "entries": {KEY: {"stamps": [[path, mtime_ns], ...],
                                     "helpers": {name: {summary, plugin, package,
                                                        version, builtin, source}},
                                     "warnings": [...], "written": time}}}

``KEY`` is (the JSON of) what decides the result without touching the disk: the bconnect version,
the interpreter, ``sys.path`` (minus the current directory ``python -m`` puts first) and
``BCONNECT_LOAD_PLUGINS``. The ``stamps`` are the modification times of the ``sys.path``
directories (installing or removing a distribution changes its directory), of the
built-in plugins directory and of every loaded plugin's source file; an entry is used
only when all still match, else plugins are discovered again and the entry rewritten.
A few entries are kept (different filters, virtualenvs).

This module imports neither pluggy nor any plugin on a cache hit. Set
``BCONNECT_PLUGIN_CACHE=off`` to always discover. Warnings from the discovery (a broken
plugin, a helper name taken twice) are stored too and printed again, once per process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import bconnect

__all__ = [
    "CACHE_ENV",
    "HelperIndex",
    "IndexEntry",
    "cache_path",
    "helper_names",
    "helper_rows",
    "load_index",
    "plugin_host",
    "warn_once",
]

CACHE_VERSION = 1
CACHE_ENV = "BCONNECT_PLUGIN_CACHE"
LOAD_ENV = "BCONNECT_LOAD_PLUGINS"  # the same as bconnect.plugins.manager.LOAD_ENV
MAX_ENTRIES = 8

_PRINTED: set[str] = set()
_INDEXES: dict[str | None, HelperIndex] = {}


class IndexEntry(NamedTuple):
    """A helper as the index knows it (no plugin imported)."""

    name: str
    summary: str
    plugin: str
    package: str
    version: str
    builtin: bool
    source: dict[str, str]


class HelperIndex(NamedTuple):
    """Every helper by name, and the warnings the discovery produced."""

    helpers: dict[str, IndexEntry]
    warnings: tuple[str, ...] = ()
    cached: bool = False  # True when read from the cache file


def warn_once(line: str) -> None:
    """Print a warning line to stderr, at most once per process."""
    if line not in _PRINTED:
        _PRINTED.add(line)
        print(line, file=sys.stderr)


def cache_path() -> Path | None:
    """``$XDG_CACHE_HOME/bconnect/plugin-index.json`` (``~/.cache`` by default); None
    when there is no absolute place for it."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return Path(base) / "bconnect" / "plugin-index.json"


def _cache_enabled() -> bool:
    if cache_path() is None:
        return False
    return os.environ.get(CACHE_ENV, "").strip().lower() not in ("0", "off", "false", "no")


def _tracked_paths() -> list[str]:
    """``sys.path`` without the current directory ``python -m``/``-c`` put first."""
    paths = list(sys.path)
    if paths and paths[0] in ("", os.getcwd()):
        paths = paths[1:]
    return [os.path.abspath(p) for p in paths if p]


def _plugins_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(bconnect.__file__)), "plugins")


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _key(paths: list[str]) -> str:
    material = [
        CACHE_VERSION,
        bconnect.__version__,
        sys.version,
        sys.executable,
        paths,
        os.environ.get(LOAD_ENV),
    ]
    return json.dumps(material, separators=(",", ":"))


def _dir_stamps(paths: list[str]) -> list[list[Any]]:
    return [[p, _mtime(p)] for p in [*paths, _plugins_dir()]]


def _stamps_match(stamps: Any) -> bool:
    if not isinstance(stamps, list):
        return False
    try:
        return all(_mtime(str(path)) == int(mtime) for path, mtime in stamps)
    except (TypeError, ValueError):
        return False


def _read_cache() -> dict[str, Any]:
    path = cache_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    if not isinstance(data.get("entries"), dict):
        return {}
    return data


def _written(entry: Any) -> float:
    value = entry.get("written", 0) if isinstance(entry, dict) else 0
    return value if isinstance(value, int | float) else 0


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    path = cache_path()
    if path is None:
        return
    data = _read_cache() or {"version": CACHE_VERSION, "entries": {}}
    entries = data["entries"]
    entries[key] = entry
    for old in sorted(entries, key=lambda k: _written(entries[k]))[:-MAX_ENTRIES]:
        del entries[old]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: discover every time


def _from_entry(entry: dict[str, Any]) -> HelperIndex | None:
    try:
        helpers = {
            name: IndexEntry(name=name, **values) for name, values in entry["helpers"].items()
        }
        warnings = tuple(str(w) for w in entry.get("warnings", ()))
    except (KeyError, TypeError, AttributeError):
        return None
    return HelperIndex(helpers, warnings, cached=True)


def plugin_host() -> Any:
    """The process's loaded :class:`~bconnect.plugins.manager.PluginHost` (imports
    pluggy and every selected plugin), warnings printed once."""
    from bconnect.plugins.manager import load_plugins

    return load_plugins(warn=warn_once)


def _discover() -> tuple[HelperIndex, list[str]]:
    host = plugin_host()
    helpers = {
        name: IndexEntry(
            name=name,
            summary=entry.info.summary.strip(),
            plugin=entry.plugin.name,
            package=entry.plugin.package,
            version=entry.plugin.version,
            builtin=entry.plugin.builtin,
            source=dict(entry.plugin.source),
        )
        for name, entry in host.helpers.items()
    }
    files = sorted({f for record in host.plugins for f in record.files})
    return HelperIndex(helpers, tuple(host.warnings)), files


def load_index(*, refresh: bool = False, warn: bool = True) -> HelperIndex:
    """The helper index: from the cache when it is current, else by discovering the
    plugins (and rewriting the cache). ``warn`` prints the stored warnings once."""
    filter_value = os.environ.get(LOAD_ENV)
    if not refresh and filter_value in _INDEXES:
        return _INDEXES[filter_value]
    index: HelperIndex | None = None
    paths = _tracked_paths()
    key = _key(paths)
    use_cache = _cache_enabled()
    if use_cache and not refresh:
        entry = _read_cache().get("entries", {}).get(key)
        if isinstance(entry, dict) and _stamps_match(entry.get("stamps")):
            index = _from_entry(entry)
    if index is None:
        stamps = _dir_stamps(paths)  # before importing: a change meanwhile is seen next time
        index, files = _discover()
        if use_cache:
            helpers = {
                name: {
                    "summary": e.summary,
                    "plugin": e.plugin,
                    "package": e.package,
                    "version": e.version,
                    "builtin": e.builtin,
                    "source": e.source,
                }
                for name, e in index.helpers.items()
            }
            _write_cache(
                key,
                {
                    "stamps": stamps + [[f, _mtime(f)] for f in files],
                    "helpers": helpers,
                    "warnings": list(index.warnings),
                    "written": time.time(),
                },
            )
    if warn:
        for line in index.warnings:
            warn_once(line)
    _INDEXES[filter_value] = index
    return index


def helper_names() -> list[str]:
    """Every helper's name, from the index."""
    return sorted(load_index().helpers)


def helper_rows(exclude: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """``(name, summary)`` of every helper, for command lists (no plugin imported)."""
    helpers = load_index().helpers
    return [(name, helpers[name].summary) for name in sorted(helpers) if name not in exclude]
