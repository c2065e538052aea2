"""Table and JSON output in the exact shapes the ``boundary`` CLI prints.

Table output follows Boundary's ``internal/cmd/base/format.go``: key/value maps
sorted by key and aligned (``WrapMap``), indented lists (``WrapSlice``), every
block passed through ``WrapForHelpText`` (word-wrapped to the terminal width of
stdin, 80 columns when stdin is not a terminal), times in RFC 1123 local time.
JSON output is Boundary's ``{"status_code": N, "item": ...}`` /
``{"status_code": N, "items": [...]}``, compact, on one line.

A :class:`ResourceView` describes how one resource type is printed; the
per-group CLI modules define theirs with the building blocks below.
"""

from __future__ import annotations

import decimal
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bconnect.core.api import ApiError
from bconnect.rfc3339 import parse_time

__all__ = [
    "COMMON_ITEM_FIELDS",
    "COMMON_LIST_FIELDS",
    "UNTYPED_ITEM_FIELDS",
    "UNTYPED_LIST_FIELDS",
    "ItemField",
    "ListField",
    "RenderContext",
    "ResourceView",
    "Section",
    "actions_section",
    "api_error_json",
    "api_error_text",
    "attributes_section",
    "cli_error_json",
    "collection_actions_section",
    "dumps_compact",
    "escape_controls",
    "format_time",
    "go_value",
    "go_wordwrap",
    "json_item",
    "json_items",
    "lookup",
    "maps_section",
    "scope_info",
    "scope_section",
    "slice_section",
    "term_width",
    "wrap_for_help_text",
    "wrap_map",
    "wrap_slice",
]

DEFAULT_WIDTH = 80
_SCOPE_MIN_WIDTH = len("Parent Scope ID") + 2
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 UTC"


# -- terminal safety ---------------------------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def escape_controls(text: str, keep: str = "") -> str:
    """*text* with C0 controls, DEL and C1 controls written as Go's ``%q`` escapes
    (``\\x1b``, ``\\a``, ``\\n``, ``\\u009b``), except the characters in *keep*.

    Names, descriptions and messages come from the controller: printed raw, an ESC or
    BEL in one could set the terminal's title, clear the screen or forge output lines.
    Values are escaped whole; the CLI's finished text keeps its own line breaks
    (``keep="\\n"``).
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        code = ord(char)
        return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")

    return _CONTROLS.sub(escape, text)


# -- text layout (Boundary's WrapForHelpText / WrapMap / WrapSlice) ----------------------------


def term_width() -> int:
    """Width used for wrapping: stdin's terminal width, else 80 (as Boundary does)."""
    try:
        return os.get_terminal_size(sys.stdin.fileno()).columns or DEFAULT_WIDTH
    except (OSError, ValueError, AttributeError):
        return DEFAULT_WIDTH


def go_wordwrap(text: str, lim: int) -> str:
    """Wrap *text* at whitespace within *lim* columns, like ``mitchellh/go-wordwrap``.

    Words longer than the limit are not broken; explicit newlines are kept.
    """
    out: list[str] = []
    current = 0
    word: list[str] = []
    space: list[str] = []
    for char in text:
        if char == "\n":
            if not word:
                if current + len(space) > lim:
                    current = 0
                else:
                    out.extend(space)
            else:
                out.extend(space)
                out.extend(word)
                word = []
            space = []
            out.append("\n")
            current = 0
        elif char.isspace() and char != "\u00a0":
            if not space or word:
                current += len(space) + len(word)
                out.extend(space)
                out.extend(word)
                space, word = [], []
            space.append(char)
        else:
            word.append(char)
            if current + len(space) + len(word) > lim and len(word) < lim:
                out.append("\n")
                current = 0
                space = []
    if not word:
        if current + len(space) <= lim:
            out.extend(space)
    else:
        out.extend(space)
        out.extend(word)
    return "".join(out)


def wrap_for_help_text(lines: Iterable[str], width: int | None = None) -> str:
    """Join *lines*, wrapping each to *width* and keeping its indentation.

    A multi-line element is re-indented as a whole with the indentation of its
    first line (that is how Boundary's output gets its aligned blocks).
    """
    width = term_width() if width is None else width
    result: list[str] = []
    for line in lines:
        line = line.rstrip()
        trimmed = line.strip()
        indent = len(line) - len(trimmed)
        lim = width - indent if width > indent else 1 << 62
        wrapped = go_wordwrap(trimmed, lim).split("\n")
        result.append("\n".join(" " * indent + part.strip() for part in wrapped))
    return "\n".join(result)


def wrap_slice(prefix: int, items: Iterable[Any]) -> str:
    """One item per line, indented by *prefix* spaces."""
    return "\n".join(" " * prefix + go_value(v) for v in items)


def wrap_map(prefix: int, max_len: int, mapping: Mapping[str, Any]) -> str:
    """``Key: value`` lines sorted by key, values aligned after *max_len* columns."""
    if not max_len:
        max_len = max((len(k) for k in mapping), default=0)
    lines = []
    for key in sorted(mapping):
        pad = " " * max(max_len - len(key), 0)
        value = mapping[key]
        if isinstance(value, dict):  # Go's WrapMap: the map as indented JSON, below the key
            text = json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n" + " " * prefix)
            shown = "\n" + " " * prefix + text
        else:
            shown = go_value(value)
        lines.append(f"{' ' * prefix}{escape_controls(key)}: {pad}{shown}")
    return "\n".join(lines)


# -- values ------------------------------------------------------------------------------------


def _go_float(value: float) -> str:
    """Format a float like Go's ``%v``: shortest digits, exponent form when exp < -4 or >= 6."""
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exp = decimal.Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exp)  # position of the decimal point
    e10 = point - 1
    minus = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mant}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def go_value(value: Any) -> str:
    """Render a JSON value the way Go's ``fmt`` ``%v`` renders it, control characters
    escaped (:func:`escape_controls`)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_value(k)}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return escape_controls(str(value))


def _any_value(value: Any) -> Any:
    """A value decoded into Go's ``any``: JSON numbers are float64."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [_any_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _any_value(v) for k, v in value.items()}
    return value


def format_time(value: Any) -> str:
    """RFC 1123 in local time (Go's ``time.RFC1123``), e.g. ``Mon, 02 Jan 2006 15:04:05 UTC``."""
    if not value:
        return _ZERO_TIME
    try:
        local = parse_time(str(value), assume_utc=True).astimezone()
    except ValueError:
        return go_value(value)
    zone = local.tzname() or local.strftime("%z")
    return (
        f"{_DAYS[local.weekday()]}, {local.day:02d} {_MONTHS[local.month - 1]} {local.year:04d} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d} {zone}"
    )


def lookup(item: Mapping[str, Any], key: str) -> Any:
    """``item[key]`` where *key* may be dotted (``scope.id``); None when missing."""
    value: Any = item
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def scope_info(scope: Mapping[str, Any] | None, max_len: int) -> str:
    """The indented ``Scope:`` block of an item table."""
    if not scope:
        return "    <not included in response>"
    values = {
        "ID": scope.get("id", ""),
        "Type": scope.get("type", ""),
        "Name": scope.get("name", ""),
    }
    if scope.get("parent_scope_id"):
        values["Parent Scope ID"] = scope["parent_scope_id"]
    return wrap_map(4, max_len, values)


# -- JSON --------------------------------------------------------------------------------------


def dumps_compact(data: Any) -> str:
    """Serialize like Go's ``encoding/json``: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def json_item(status_code: int, item: Any = None) -> str:
    """``{"status_code": N, "item": {...}}``; ``item`` omitted when None (empty body)."""
    out: dict[str, Any] = {"status_code": status_code}
    if item is not None:
        out["item"] = item
    return dumps_compact(out)


def json_items(status_code: int, items: Sequence[Any] | None) -> str:
    """``{"status_code": N, "items": [...]}`` (``null`` when the controller sent none)."""
    return dumps_compact({"status_code": status_code, "items": items})


# -- errors ------------------------------------------------------------------------------------


def api_error_text(err: ApiError, context: str = "", width: int | None = None) -> str:
    """Boundary's table rendering of a controller error (``PrintApiError``)."""
    values: dict[str, Any] = {"Status": err.status, "Kind": err.kind, "Message": err.message}
    if context:
        values["context"] = context
    if err.op:
        values["Operation"] = err.op
    max_len = max([_SCOPE_MIN_WIDTH, *(len(k) for k in values)])
    lines = [context] if context else []
    lines += ["", "Error information:", wrap_map(2, max_len + 2, values)]
    wrapped = [w for w in err.details.get("wrapped_errors") or [] if isinstance(w, dict)]
    if wrapped:
        lines += ["", "  Wrapped Errors:"]
        for w in wrapped:
            lines += [
                f"    Message:             {go_value(w.get('message', ''))}",
                f"    Operation:           {go_value(w.get('op', ''))}",
            ]
    fields = [f for f in err.request_fields if f.get("name") != "update_mask"]
    if fields:
        lines += ["", "  Field-specific Errors:"]
        for f in fields:
            name = str(f.get("name", "")).removeprefix("attributes.").replace("_", "-")
            lines += [
                f"    Name:              -{go_value(name)}",
                f"      Error:           {go_value(f.get('description', ''))}",
            ]
    return wrap_for_help_text(lines, width)


def api_error_line(err: ApiError, context: str = "") -> str:
    """One line for a controller error: context, message, kind and status, and the
    fields the controller named (``-v`` prints Boundary's full block instead); a line
    break in what the controller said is escaped, so it stays one line."""
    head = f"{context}: " if context else "Error: "
    line = f"{head}{err.message or err.kind} ({err.kind}, {err.status})"
    fields = [f for f in err.request_fields if f.get("name") != "update_mask"]
    if fields:
        parts = []
        for f in fields:
            name = str(f.get("name", "")).removeprefix("attributes.").replace("_", "-")
            parts.append(f"-{name}: {f.get('description', '')}")
        line += " [" + "; ".join(parts) + "]"
    return escape_controls(line)


def api_error_json(err: ApiError, context: str = "") -> str:
    """Boundary's JSON rendering of a controller error."""
    out: dict[str, Any] = {}
    if context:
        out["context"] = context
    out["status_code"] = err.status
    out["api_error"] = (
        err.body
        if err.body is not None
        else {
            "kind": err.kind,
            "message": err.message,
        }
    )
    return dumps_compact(out)


def cli_error_json(message: str) -> str:
    """``{"error": "..."}``, Boundary's JSON form of a CLI (non-API) error."""
    return dumps_compact({"error": message})


# -- resource views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListField:
    """One line of a list entry.

    ``kind``: ``str`` (shown when non-empty), ``int`` (when > 0), ``time``,
    ``true`` (a boolean shown only when true); ``fmt`` overrides the rendering.
    """

    label: str
    key: str
    kind: str = "str"
    recursive_only: bool = False
    fmt: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class ItemField:
    """One entry of the aligned key/value block of an item table.

    ``kind``: ``str`` (shown when non-empty), ``nonzero``, ``time``, ``present``
    (shown whenever the key is in the response, even 0 or false), ``always``,
    ``always_time``; ``fmt`` overrides the rendering.
    """

    label: str
    key: str
    kind: str = "str"
    fmt: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class RenderContext:
    """What a :class:`Section` gets: the item, the key width, substituted attributes."""

    item: Mapping[str, Any]
    max_len: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Section:
    """A block after the key/value map (``Scope:``, ``Authorized Actions:``, ...)."""

    render: Callable[[RenderContext], list[str]]
    min_width: Callable[[Mapping[str, Any]], int] = lambda item: 0


def scope_section(title: str = "Scope", *, always: bool = False) -> Section:
    """``Scope:`` with the item's scope ID, type, name and parent."""

    def render(ctx: RenderContext) -> list[str]:
        scope = ctx.item.get("scope")
        if not scope and not always:
            return []
        return ["", f"  {title}:", scope_info(scope, ctx.max_len)]

    return Section(render)


def actions_section(*, trailing_blank: bool = False) -> Section:
    """``Authorized Actions:`` list."""

    def render(ctx: RenderContext) -> list[str]:
        actions = ctx.item.get("authorized_actions") or []
        if not actions:
            return []
        return ["", "  Authorized Actions:", wrap_slice(4, actions)] + (
            [""] if trailing_blank else []
        )

    return Section(render)


def collection_actions_section(noun: str, *, leading_blank: bool = True) -> Section:
    """``Authorized Actions on <noun>'s Collections:`` with one list per collection."""

    def render(ctx: RenderContext) -> list[str]:
        collections = ctx.item.get("authorized_collection_actions") or {}
        if not collections:
            return []
        lines = [""] if leading_blank else []
        lines.append(f"  Authorized Actions on {noun}'s Collections:")
        for key in sorted(collections):
            lines += [f"    {go_value(key)}:", wrap_slice(6, collections[key] or [])]
        return lines

    return Section(render)


def attributes_section(*, leading_blank: bool = True) -> Section:
    """``Attributes:`` map, with Boundary's per-type key substitutions applied."""

    def render(ctx: RenderContext) -> list[str]:
        if not ctx.attributes:
            return []
        return ([""] if leading_blank else []) + [
            "  Attributes:",
            wrap_map(4, ctx.max_len, ctx.attributes),
        ]

    return Section(render)


def slice_section(title: str, key: str) -> Section:
    """A titled list of strings (``Host IDs:``, ``Host Set IDs:``, ...)."""

    def render(ctx: RenderContext) -> list[str]:
        values = ctx.item.get(key) or []
        if not values:
            return []
        return ["", f"  {title}:", wrap_slice(4, values)]

    return Section(render)


def maps_section(
    title: str,
    key: str,
    fields: Sequence[tuple[str, str]],
    *,
    leading_blank: bool = True,
    value: Callable[[Mapping[str, Any], str], Any] | None = None,
) -> Section:
    """A titled list of small key/value maps, one per element of ``item[key]``."""
    labels = [label for label, _ in fields]

    def get(entry: Mapping[str, Any], sub: str) -> Any:
        return value(entry, sub) if value else entry.get(sub, "")

    def render(ctx: RenderContext) -> list[str]:
        entries = ctx.item.get(key) or []
        if not entries:
            return []
        lines = ([""] if leading_blank else []) + [f"  {title}:"]
        for entry in entries:
            lines += [wrap_map(4, ctx.max_len, {lb: get(entry, sub) for lb, sub in fields}), ""]
        return lines

    def min_width(item: Mapping[str, Any]) -> int:
        return max(len(label) for label in labels) if item.get(key) else 0

    return Section(render, min_width)


@dataclass(frozen=True)
class ResourceView:
    """How one resource type is named and printed.

    ``collection`` is the API collection (``host-sets``); ``singular`` and
    ``plural`` are used in messages (``Error from controller when performing read
    on host set``); ``title`` heads tables (``Host Set information:``); ``empty``
    is printed for an empty list (``No host sets found``). ``plural``, ``title``
    and ``empty`` default to those forms of ``singular``.
    """

    collection: str
    singular: str
    plural: str = ""
    title: str = ""
    empty: str = ""
    list_fields: tuple[ListField, ...] = ()
    item_fields: tuple[ItemField, ...] = ()
    sections: tuple[Section, ...] = ()
    key_subst: Mapping[str, str] = field(default_factory=dict)
    #: whether attribute names widen the key column (Boundary's views differ)
    attributes_in_width: bool = True
    list_value_col: int = 25
    example_id: str = ""

    def __post_init__(self) -> None:
        plural = self.plural or f"{self.singular}s"
        object.__setattr__(self, "plural", plural)
        object.__setattr__(self, "title", self.title or f"{self.singular.title()} information:")
        object.__setattr__(self, "empty", self.empty or f"No {plural} found")

    # -- list --

    def _list_value(self, spec: ListField, item: Mapping[str, Any]) -> str | None:
        value = lookup(item, spec.key)
        if spec.kind == "int":
            shown = isinstance(value, int) and value > 0
        elif spec.kind == "true":
            shown = value is True
        else:
            shown = bool(value)
        if not shown:
            return None
        if spec.fmt:
            return escape_controls(spec.fmt(value))
        return format_time(value) if spec.kind == "time" else go_value(value)

    def list_table(
        self, items: Sequence[Mapping[str, Any]], *, recursive: bool = False, width=None
    ) -> str:
        """The table ``<resource> list`` prints."""
        if not items:
            return self.empty
        col = self.list_value_col
        lines = ["", self.title]
        for i, item in enumerate(items):
            if i:
                lines.append("")
            lines.append(
                ("  ID:".ljust(col - 1)) + " " + go_value(item.get("id") or "(not available)")
            )
            for spec in self.list_fields:
                if spec.recursive_only and not recursive:
                    continue
                value = self._list_value(spec, item)
                if value is not None:
                    lines.append(f"    {spec.label}:".ljust(col - 1) + " " + value)
            actions = item.get("authorized_actions") or []
            if actions:
                lines += ["    Authorized Actions:", wrap_slice(6, actions)]
        return wrap_for_help_text(lines, width)

    # -- item --

    def _item_values(self, item: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in self.item_fields:
            value = lookup(item, spec.key)
            if spec.kind == "present":
                if not isinstance(item, Mapping) or spec.key not in item:
                    continue
            elif spec.kind == "always":
                value = "" if value is None else value
            elif spec.kind == "always_time":
                value = format_time(value)
            elif not value:
                continue
            if spec.fmt:
                value = spec.fmt(value)
            elif spec.kind == "time":
                value = format_time(value)
            values[spec.label] = value
        return values

    def substituted_attributes(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``item["attributes"]`` with Boundary's display names for known keys."""
        attributes = item.get("attributes")
        if not isinstance(attributes, Mapping):
            return {}
        return {self.key_subst.get(k, k): _any_value(v) for k, v in attributes.items()}

    def item_table(self, item: Mapping[str, Any], *, width: int | None = None) -> str:
        """The table ``<resource> read|create|update`` prints."""
        values = self._item_values(item)
        attributes = self.substituted_attributes(item)
        max_len = max(
            [
                _SCOPE_MIN_WIDTH,
                *(len(k) for k in values),
                *(len(k) for k in attributes if self.attributes_in_width),
                *(section.min_width(item) for section in self.sections),
            ]
        )
        lines = ["", self.title, wrap_map(2, max_len + 2, values)]
        ctx = RenderContext(item, max_len, attributes)
        for section in self.sections:
            lines += section.render(ctx)
        return wrap_for_help_text(lines, width)


# The common key/value block of most resources.
COMMON_ITEM_FIELDS = (
    ItemField("ID", "id"),
    ItemField("Version", "version", "nonzero"),
    ItemField("Type", "type"),
    ItemField("Created Time", "created_time", "time"),
    ItemField("Updated Time", "updated_time", "time"),
    ItemField("Name", "name"),
    ItemField("Description", "description"),
)

# The common list lines of most resources.
COMMON_LIST_FIELDS = (
    ListField("Scope ID", "scope_id", recursive_only=True),
    ListField("Version", "version", "int"),
    ListField("Type", "type"),
    ListField("Name", "name"),
    ListField("Description", "description"),
)

# The same for resources that have no type (roles, scopes, users).
UNTYPED_ITEM_FIELDS = tuple(spec for spec in COMMON_ITEM_FIELDS if spec.key != "type")
UNTYPED_LIST_FIELDS = tuple(spec for spec in COMMON_LIST_FIELDS if spec.key != "type")
