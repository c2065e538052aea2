"""The plugin manager: built-in helpers and third-party plugins behind one pluggy manager.

Loading order (it decides which plugin wins a helper name, see :class:`PluginHost`):

1. the built-in modules of :data:`BUILTINS`, each imported by name (a built-in that does
   not exist yet is skipped silently);
2. the entry points of the ``bconnect`` group (``importlib.metadata``), sorted by
   distribution then entry-point name, filtered by ``BCONNECT_LOAD_PLUGINS``:
   unset → all of them, empty → none, ``pkg1,pkg2`` → only the entry points whose
   name or distribution is listed (compared case-insensitively, ``-``/``_``/``.`` alike).

A plugin that fails to import, whose hooks fail pluggy's validation or name no known
hook, or whose ``bconnect_connect_helpers`` raises or returns something else than a list
of :class:`~bconnect.plugins.hookspecs.HelperInfo` is not loaded: one warning line
names it (``Warning: plugin "X" (from package Y) was not loaded: <reason>``) and the
others keep working. Two plugins offering the same helper name: the first loaded keeps
it (built-ins first), one warning line.

The hooks are called plugin by plugin (not through pluggy's hook loop) so that a failure
is attributed to the plugin that caused it, ``bconnect_connect_launch`` reaches only the
plugin owning the helper (first wins), and a failing ``bconnect_session_event`` hook does
not stop the others.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from bconnect import __version__
from bconnect.plugins import HelperError, hookspecs
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch

__all__ = [
    "BUILTINS",
    "BUILTIN_PACKAGE",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "HelperEntry",
    "PluginFailure",
    "PluginHost",
    "PluginRecord",
    "load_plugins",
    "load_single_helper",
    "parse_load_filter",
    "validate_helpers",
]

log = logging.getLogger(__name__)

#: The built-in plugins, loaded first, in this order.
BUILTINS = [
    "bconnect.plugins.tcp",
    "bconnect.plugins.ssh",
    "bconnect.plugins.postgres",
    "bconnect.plugins.http",
    "bconnect.plugins.kube",
    "bconnect.plugins.mysql",
    "bconnect.plugins.redis",
]
BUILTIN_PACKAGE = "bconnect"
ENTRY_POINT_GROUP = hookspecs.PROJECT
LOAD_ENV = "BCONNECT_LOAD_PLUGINS"

HELPER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
OPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

Warn = Callable[[str], None]


class PluginFailure(HelperError):
    """A plugin misbehaved while building a launch (raised, returned garbage): the
    message names the plugin."""


# ---------------------------------------------------------------------- records
@dataclass
class PluginRecord:
    """One loaded plugin, as ``bconnect plugins list`` shows it.

    ``name`` is the name it is registered under: the module name for built-ins, the
    entry-point name for third-party plugins. ``source`` says how to load it again
    without discovering everything (the cached helper index keeps it):
    ``{"module": "bconnect.plugins.ssh"}`` or ``{"entry_point": NAME, "value":
    "pkg.mod:attr"}``.
    """

    name: str
    package: str
    version: str
    builtin: bool
    source: dict[str, str]
    plugin: Any = field(repr=False)
    hooks: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # source files, for the helper-index cache

    @property
    def label(self) -> str:
        """``plugin "X" (from package Y)``, as warnings name it."""
        return f'plugin "{self.name}" (from package {self.package})'

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``bconnect plugins list -format json``."""
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "helpers": list(self.helpers),
        }


@dataclass(frozen=True)
class HelperEntry:
    """A helper and the plugin that owns it."""

    info: HelperInfo
    plugin: PluginRecord


# ---------------------------------------------------------------------- pure parts
def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).strip().lower()


def parse_load_filter(value: str | None) -> frozenset[str] | None:
    """``BCONNECT_LOAD_PLUGINS``: None (unset) → every third-party plugin; "" → none;
    ``"pkg1, pkg2"`` → those entry-point names or distributions (normalized)."""
    if value is None:
        return None
    return frozenset(_normalize(part) for part in value.split(",") if part.strip())


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (a multi-line message joined with "; "), for
    warnings and errors."""
    parts = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = "; ".join(parts)
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def validate_helpers(value: object) -> list[HelperInfo]:
    """What ``bconnect_connect_helpers`` returned, checked: a list or tuple (None: no
    helpers) of :class:`HelperInfo` with a valid name, one-line summary and options.
    Raises :class:`TypeError` or :class:`ValueError` describing the first problem."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"bconnect_connect_helpers returned {type(value).__name__}, not a list of HelperInfo"
        )
    result = []
    for item in value:
        if not isinstance(item, HelperInfo):
            raise TypeError(
                f"bconnect_connect_helpers returned a {type(item).__name__} in its list, "
                "not a HelperInfo"
            )
        if not isinstance(item.name, str) or not HELPER_NAME.match(item.name):
            raise ValueError(f"invalid helper name {item.name!r}")
        for attr in ("summary", "example", "description"):
            if not isinstance(getattr(item, attr), str):
                raise TypeError(f'helper "{item.name}": {attr} is not a string')
        if not item.summary.strip() or "\n" in item.summary.strip():
            raise ValueError(f'helper "{item.name}": the summary must be one non-empty line')
        for option in item.options:
            if not isinstance(option, HelperOption):
                raise TypeError(f'helper "{item.name}": an option is not a HelperOption')
            if not isinstance(option.name, str) or not OPTION_NAME.match(option.name):
                raise ValueError(f'helper "{item.name}": invalid option name {option.name!r}')
            if not option.key.isidentifier():
                raise ValueError(f'helper "{item.name}": invalid option dest {option.key!r}')
        result.append(item)
    return result


def _impl_for(caller: pluggy.HookCaller, plugin: object) -> Any:
    """The plain (non-wrapper) hook implementation of ``plugin`` for a hook, or None."""
    for impl in caller.get_hookimpls():
        if impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper):
            return impl
    return None


def _call_impl(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation as pluggy does (only the arguments it declares)."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _source_files(obj: object) -> tuple[str, ...]:
    """The file a plugin object comes from (its module's), if any."""
    module = obj if isinstance(obj, ModuleType) else sys.modules.get(_module_name(obj))
    path = getattr(module, "__file__", None)
    return (os.path.abspath(path),) if isinstance(path, str) else ()


def _module_name(obj: object) -> str:
    name = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", None)
    return name if isinstance(name, str) else ""


def _stderr_warn(line: str) -> None:
    print(line, file=sys.stderr)


# ---------------------------------------------------------------------- the host
class PluginHost:
    """A loaded set of plugins: the pluggy manager, what each plugin is, the helpers.

    Use :func:`load_plugins` to get one. ``warnings`` are the one-line warnings produced
    while loading (already passed to the ``warn`` callback).
    """

    def __init__(self, warn: Warn | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginRecord] = []
        self.helpers: dict[str, HelperEntry] = {}
        self.warnings: list[str] = []
        self._warn = warn or _stderr_warn
        self._event_failures: set[str] = set()

    # -- loading ---------------------------------------------------------------------
    def warn(self, line: str) -> None:
        """Record and report one warning line."""
        self.warnings.append(line)
        self._warn(line)

    def add(self, record: PluginRecord) -> bool:
        """Register a plugin and take its helpers; False (and one warning) if it is not
        loaded."""
        plugin = record.plugin
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:  # PluginValidationError, or a name already taken
            self.warn(f"Warning: {record.label} was not loaded: {one_line(exc)}")
            return False
        try:
            hooks = []
            for caller in self.pm.get_hookcallers(plugin) or []:
                impl = _impl_for(caller, plugin)
                if not caller.has_spec() and not (impl is not None and impl.optionalhook):
                    raise ValueError(f'unknown hook "{caller.name}"')
                hooks.append(caller.name)
            infos: list[HelperInfo] = []
            impl = _impl_for(self.pm.hook.bconnect_connect_helpers, plugin)
            if impl is not None:
                infos = validate_helpers(_call_impl(impl))
        except Exception as exc:
            self.pm.unregister(plugin)
            self.warn(f"Warning: {record.label} was not loaded: {one_line(exc)}")
            return False
        owned = []
        for info in infos:
            holder = self.helpers.get(info.name)
            if holder is not None:
                if holder.plugin is not record:
                    self.warn(
                        f'Warning: helper "{info.name}" of {record.label} is ignored: '
                        f"{holder.plugin.label} already provides it"
                    )
                continue
            self.helpers[info.name] = HelperEntry(info, record)
            owned.append(info.name)
        record.hooks = tuple(sorted(hooks))
        record.helpers = tuple(owned)
        record.files = record.files or _source_files(plugin)
        self.plugins.append(record)
        return True

    def load_builtins(self, modules: Iterable[str] = BUILTINS) -> None:
        """Import and register the built-in modules that exist."""
        import importlib

        for name in modules:
            record = PluginRecord(name, BUILTIN_PACKAGE, __version__, True, {"module": name}, None)
            try:
                record.plugin = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:  # not written (yet): not an error
                    continue
                self.warn(f"Warning: {record.label} was not loaded: {one_line(exc)}")
                continue
            except Exception as exc:
                self.warn(f"Warning: {record.label} was not loaded: {one_line(exc)}")
                continue
            self.add(record)

    def load_entry_points(self, selected: frozenset[str] | None) -> None:
        """Discover the ``bconnect`` entry points and register the selected ones."""
        from importlib.metadata import entry_points

        found = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = (dist.metadata["Name"] if dist is not None else "") or "?"
            version = (dist.version if dist is not None else "") or "?"
            found.append((_normalize(package), ep.name, ep, package, version))
        for _, _, ep, package, version in sorted(found, key=lambda f: (f[0], f[1])):
            if selected is not None and not (
                _normalize(ep.name) in selected or _normalize(package) in selected
            ):
                log.debug("plugin %s (%s) not selected by %s", ep.name, package, LOAD_ENV)
                continue
            record = PluginRecord(
                ep.name,
                package,
                version,
                False,
                {"entry_point": ep.name, "value": ep.value},
                None,
            )
            try:
                record.plugin = ep.load()
            except (Exception, SystemExit) as exc:
                self.warn(f"Warning: {record.label} was not loaded: {one_line(exc)}")
                continue
            self.add(record)

    # -- using -----------------------------------------------------------------------
    def helper(self, name: str) -> HelperEntry | None:
        """The helper called ``name`` and its plugin, or None."""
        return self.helpers.get(name)

    def launch(self, helper: str, context: ConnectContext) -> Launch:
        """Ask the plugin owning ``helper`` what to launch.

        :class:`~bconnect.plugins.HelperError` from the plugin passes through; any other
        failure (an exception, no result, not a :class:`Launch`) becomes a
        :class:`PluginFailure` naming the plugin.
        """
        entry = self.helpers.get(helper)
        if entry is None:
            raise PluginFailure(f'no plugin offers the helper "{helper}"')
        record = entry.plugin
        impl = _impl_for(self.pm.hook.bconnect_connect_launch, record.plugin)
        if impl is None:
            raise PluginFailure(f"{record.label} has no bconnect_connect_launch hook")
        try:
            launch = _call_impl(impl, helper=helper, context=context)
        except HelperError:
            raise
        except Exception as exc:
            log.debug("%s failed building the launch", record.label, exc_info=True)
            raise PluginFailure(f"{record.label} failed: {one_line(exc)}") from None
        if launch is None:
            raise PluginFailure(f'{record.label} returned no launch for helper "{helper}"')
        if not isinstance(launch, Launch):
            raise PluginFailure(f"{record.label} returned a {type(launch).__name__}, not a Launch")
        return launch

    def emit(self, event: str, session_id: str, data: Mapping[str, Any]) -> None:
        """Call every ``bconnect_session_event`` hook; failures are logged (a warning the
        first time for each plugin, then at debug level) and ignored."""
        caller = self.pm.hook.bconnect_session_event
        for impl in reversed(caller.get_hookimpls()):  # pluggy's order: last registered first
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                _call_impl(impl, event=event, session_id=session_id, data=dict(data))
            except Exception as exc:
                level = (
                    logging.DEBUG if impl.plugin_name in self._event_failures else logging.WARNING
                )
                self._event_failures.add(impl.plugin_name)
                log.log(
                    level,
                    'plugin "%s": bconnect_session_event(%r) failed (ignored): %s',
                    impl.plugin_name,
                    event,
                    one_line(exc),
                )


_HOSTS: dict[str | None, PluginHost] = {}
_FROM_ENV: Any = object()


def load_plugins(
    *,
    warn: Warn | None = None,
    load_filter: str | None = _FROM_ENV,
    builtins: Sequence[str] | None = None,
    fresh: bool = False,
) -> PluginHost:
    """The process's :class:`PluginHost`: built-ins, then the selected entry points.

    ``load_filter`` defaults to ``BCONNECT_LOAD_PLUGINS`` (see the module docstring);
    hosts are memoized per filter value unless ``fresh``. ``warn`` receives each
    warning line (default: printed to stderr).
    """
    value = os.environ.get(LOAD_ENV) if load_filter is _FROM_ENV else load_filter
    if not fresh and builtins is None and value in _HOSTS:
        return _HOSTS[value]
    host = PluginHost(warn)
    host.load_builtins(BUILTINS if builtins is None else builtins)
    host.load_entry_points(parse_load_filter(value))
    if builtins is None:
        _HOSTS[value] = host
    return host


def load_single_helper(source: Mapping[str, str], helper: str) -> HelperInfo | None:
    """Import just one plugin (as the helper index recorded it) and return its helper
    ``helper``, without discovering the others; None when that does not work (the
    caller then falls back to :func:`load_plugins`)."""
    import importlib

    try:
        if "module" in source:
            plugin: Any = importlib.import_module(source["module"])
        else:
            from importlib.metadata import EntryPoint

            plugin = EntryPoint(source["entry_point"], source["value"], ENTRY_POINT_GROUP).load()
        function = getattr(plugin, "bconnect_connect_helpers", None)
        if function is None or not hasattr(function, f"{hookspecs.PROJECT}_impl"):
            return None
        for info in validate_helpers(function()):
            if info.name == helper:
                return info
    except (Exception, SystemExit) as exc:
        log.debug("loading the helper %s alone failed: %s", helper, one_line(exc))
    return None
