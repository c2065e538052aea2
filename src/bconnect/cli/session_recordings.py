"""``bconnect session-recordings``: list, read, download and play what workers recorded
of ssh sessions."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, UserError, controller_call, string_option
from bconnect.cli.output import ItemField, ListField, RenderContext, Section
from bconnect.cli.resources import SCOPE, command, help_text, id_option, require_id, resource_group
from bconnect.core.api import Client, RecordingDownload
from bconnect.core.asciicast import AsciicastError, playback


def _connections(ctx: RenderContext) -> list[str]:
    lines: list[str] = []
    for connection in ctx.item.get("connection_recordings") or []:
        lines += ["", "  Connection Recording:"]
        lines.append(
            output.wrap_map(
                4,
                ctx.max_len,
                {
                    "ID": connection.get("id", ""),
                    "Connection ID": connection.get("connection_id", ""),
                    "Bytes Down": connection.get("bytes_down", 0),
                    "Start Time": output.format_time(connection.get("start_time")),
                },
            )
        )
        for channel in connection.get("channel_recordings") or []:
            values: dict[str, Any] = {
                "ID": channel.get("id", ""),
                "Type": channel.get("type", ""),
                "State": channel.get("state", ""),
                "Bytes": channel.get("bytes", 0),
                "Start Time": output.format_time(channel.get("start_time")),
            }
            for key, label in (
                ("command", "Command"),
                ("end_time", "End Time"),
                ("duration", "Duration"),
                ("sha256", "SHA-256"),
                ("error", "Error"),
            ):
                if channel.get(key):
                    raw = channel[key]
                    values[label] = output.format_time(raw) if key == "end_time" else raw
            lines += ["", "    Channel Recording:", output.wrap_map(6, ctx.max_len, values)]
    return lines


def _created_by(ctx: RenderContext) -> list[str]:
    values = ctx.item.get("create_time_values") or {}
    user, target = values.get("user") or {}, values.get("target") or {}
    shown = {
        "User ID": user.get("id", ""),
        "User Name": user.get("name", ""),
        "Target ID": target.get("id", ""),
        "Target Name": target.get("name", ""),
        "Target Scope ID": target.get("scope_id", ""),
    }
    shown = {k: v for k, v in shown.items() if v}
    return ["", "  Recorded:", output.wrap_map(4, ctx.max_len, shown)] if shown else []


def _width(item: Mapping[str, Any]) -> int:
    return len("Target Scope ID")


SESSION_RECORDING_VIEW = output.ResourceView(
    collection="session-recordings",
    singular="session recording",
    example_id="sr_1234567890",
    list_fields=(
        ListField("Scope ID", "scope.id", recursive_only=True),
        ListField("Session ID", "session_id"),
        ListField("State", "state"),
        ListField("User ID", "create_time_values.user.id"),
        ListField("Target ID", "create_time_values.target.id"),
        ListField("Start Time", "start_time", "time"),
        ListField("Duration", "duration"),
    ),
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Session ID", "session_id"),
        ItemField("Storage Bucket ID", "storage_bucket_id"),
        ItemField("Type", "type"),
        ItemField("State", "state"),
        ItemField("Endpoint", "endpoint"),
        ItemField("Bytes Down", "bytes_down", "present"),
        ItemField("Start Time", "start_time", "time"),
        ItemField("End Time", "end_time", "time"),
        ItemField("Duration", "duration"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        Section(_created_by, _width),
        Section(_connections, _width),
    ),
)

session_recordings = resource_group(
    SESSION_RECORDING_VIEW,
    SCOPE,
    help_text(
        "List, read, download and play recordings of ssh sessions.",
        "bconnect session-recordings list -scope-id global -recursive",
        "bconnect session-recordings read -id sr_1234567890",
        "bconnect session-recordings play -id chr_1234567890",
    ),
)


def _channel_id(value: str | None) -> str:
    cid = require_id(value)
    if not cid.startswith("chr_"):
        raise UserError(
            f"{cid} is not a channel recording: give a chr_ id "
            "(bconnect session-recordings read -id sr_… lists them)"
        )
    return cid


def _download(client: Client, channel_id: str, out: Any) -> RecordingDownload:
    with controller_call("download", "session recording"):
        result = client.download_recording(channel_id, out)
    if result.complete and not result.verified:
        raise UserError(
            f"The download of {channel_id} does not match the SHA-256 the controller sent: "
            "refusing it"
        )
    return result


@command(
    "download",
    help_text(
        "Download a channel recording (asciicast v2) to a file, checked against the SHA-256 "
        "recorded when the worker finished it.",
        "bconnect session-recordings download -id chr_1234567890 -output session.cast",
        "bconnect session-recordings download -id chr_1234567890 -output - | asciinema play -",
    ),
    [
        id_option("channel recording"),
        string_option("output", help='Where to write it ("-" for stdout). Default: <ID>.cast'),
    ],
)
def download(opts: GlobalOptions, id_: str | None, output: str | None) -> None:
    channel_id = _channel_id(id_)
    client = opts.client()
    if output == "-":
        buffer = io.BytesIO()
        result = _download(client, channel_id, buffer)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
    else:
        path = Path(output or f"{channel_id}.cast")
        fd, name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".dl-")
        try:
            with os.fdopen(fd, "wb") as out:
                result = _download(client, channel_id, out)
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        if not opts.json:
            click.echo(f"Wrote {path} ({result.size} bytes, sha256 {result.sha256})", err=True)
    if not result.complete:
        click.echo(
            f"Warning: {channel_id} is incomplete (the worker stopped writing it): "
            "it plays up to its last whole event.",
            err=True,
        )


@command(
    "play",
    help_text(
        "Play a channel recording in this terminal (its output, with its timing).",
        "bconnect session-recordings play -id chr_1234567890",
        "bconnect session-recordings play -id chr_1234567890 -speed 4 -idle-time-limit 1",
    ),
    [
        id_option("channel recording"),
        string_option("speed", help="Play this many times faster (default 1)."),
        string_option(
            "idle-time-limit", help="Cut pauses longer than this many seconds (default: none)."
        ),
    ],
)
def play(
    opts: GlobalOptions, id_: str | None, speed: str | None, idle_time_limit: str | None
) -> None:
    channel_id = _channel_id(id_)
    try:
        factor = float(speed) if speed else 1.0
        limit = float(idle_time_limit) if idle_time_limit else None
    except ValueError:
        raise UserError("-speed and -idle-time-limit take numbers") from None
    if factor <= 0 or (limit is not None and limit < 0):
        raise UserError("-speed must be positive and -idle-time-limit not negative")
    buffer = io.BytesIO()
    _download(opts.client(), channel_id, buffer)
    text = buffer.getvalue().decode("utf-8", "replace")
    out = sys.stdout
    try:
        for wait, data in playback(text.splitlines(keepends=True), speed=factor, idle_limit=limit):
            if wait:
                out.flush()
                time.sleep(wait)
            out.write(data)
    except AsciicastError as exc:
        raise UserError(f"{channel_id}: {exc}") from None
    out.flush()


session_recordings.add_command(download)
session_recordings.add_command(play)
