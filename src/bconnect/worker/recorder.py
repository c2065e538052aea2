"""Recording an ssh session's channels at the worker (asciicast v2 into a storage bucket).

:class:`SessionRecorder` belongs to one connection. Before the connection is served it
checks that the bucket can be written (:meth:`check`; a session that cannot be recorded
is refused, as Boundary does). Each channel then asks the controller for its recording
(id and object key), writes its events as they pass, and on close reports the size and
SHA-256 of what reached the bucket. If writing fails mid-session the channel is closed
with the reason and the recording is reported incomplete: bytes never flow unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bconnect import objectstore
from bconnect.core.asciicast import AsciicastEncoder
from bconnect.worker.cluster import ClusterClient, ClusterError, RecordingSettings

__all__ = ["ChannelLog", "RecordingFailed", "SessionRecorder"]

log = logging.getLogger(__name__)


class RecordingFailed(Exception):
    """The recording cannot be written; the message is one line for the user."""


class ChannelLog:
    """One channel's recording: events in, an asciicast object out."""

    def __init__(
        self,
        recorder: SessionRecorder,
        channel_id: str,
        writer: objectstore.Writer,
        encoder: AsciicastEncoder,
        record_input: bool,
    ) -> None:
        self.recorder = recorder
        self.channel_id = channel_id
        self.writer = writer
        self.encoder = encoder
        self.record_input = record_input
        #: told when a write fails mid-session (set once the header is written: a
        #: header that cannot be written refuses the channel instead)
        self.failed: Callable[[str], None] | None = None
        self.error: str | None = None
        self.closed = False

    def _write(self, data: bytes) -> None:
        if not data or self.error is not None:
            return
        try:
            self.writer.write(data)
        except objectstore.BucketError as exc:
            self.error = str(exc)
            log.warning("recording %s: %s", self.channel_id, exc)
            if self.failed is not None:
                self.failed(
                    f"session recording failed: storage bucket {self.recorder.bucket_id} "
                    f"cannot be written ({exc}): ending the session"
                )

    def output(self, data: bytes) -> None:
        self._write(self.encoder.output(data, time.time()))

    def input(self, data: bytes) -> None:
        if self.record_input:
            self._write(self.encoder.input(data, time.time()))

    def resize(self, width: int, height: int) -> None:
        self._write(self.encoder.resize(width, height, time.time()))

    def event(self, label: str) -> None:
        """A marker event: what happened that is not terminal output (an sftp transfer)."""
        self._write(self.encoder.marker(label, time.time()))
        self._write(self.encoder.output((label + "\r\n").encode(), time.time()))

    def close(self) -> None:
        """Finish the object and report it (in the background; the recorder waits)."""
        if self.closed:
            return
        self.closed = True
        self._write(self.encoder.flush(time.time()))
        self.recorder.track(self._finish())

    async def _finish(self) -> None:
        size, digest = 0, None
        if self.error is None:
            try:
                size, digest = await asyncio.to_thread(self.writer.finish)
            except objectstore.BucketError as exc:
                self.error = str(exc)
        else:
            self.writer.abort()
        try:
            await self.recorder.cluster.channel_finished(self.channel_id, size, digest, self.error)
        except ClusterError as exc:
            log.warning("recording %s: finish not recorded: %s", self.channel_id, exc)


class SessionRecorder:
    """The recordings of one connection of a recorded session."""

    def __init__(
        self, cluster: ClusterClient, settings: RecordingSettings, connection_id: str
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.connection_id = connection_id
        bucket = settings.bucket
        self.bucket = objectstore.open_bucket(
            str(bucket.get("plugin_name", "")),
            str(bucket.get("bucket_name", "")),
            bucket.get("bucket_prefix"),
            bucket.get("attributes"),
            bucket.get("secrets"),
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bucket_id(self) -> str:
        return str(self.settings.bucket.get("id", ""))

    async def check(self) -> None:
        """``RecordingFailed`` when the bucket cannot be written."""
        try:
            await asyncio.to_thread(self.bucket.check_writable)
        except objectstore.BucketError as exc:
            raise RecordingFailed(
                f"session recording is required but storage bucket {self.bucket_id} cannot "
                f"be written: {exc}"
            ) from None

    async def start(
        self,
        kind: str,
        command: str | None,
        term: tuple[str, tuple[int, int, int, int]] | None,
        env: Mapping[str, str],
        failed: Callable[[str], None] | None = None,
    ) -> ChannelLog:
        """Begin a channel's recording; ``RecordingFailed`` if it cannot be. A write
        that fails later calls ``failed`` (once) with a line for the user."""
        try:
            answer = await self.cluster.channel_started(
                self.settings.session_recording_id, self.connection_id, kind, command
            )
        except ClusterError as exc:
            raise RecordingFailed(f"the controller refused the recording: {exc.message}") from None
        try:
            writer = await asyncio.to_thread(self.bucket.writer, answer["object_key"])
        except objectstore.BucketError as exc:
            with contextlib.suppress(ClusterError):
                await self.cluster.channel_finished(answer["id"], 0, None, str(exc))
            raise RecordingFailed(f"cannot write the session recording: {exc}") from None
        width, height = (term[1][0], term[1][1]) if term is not None else (80, 24)
        shown_env: dict[str, Any] = {"TERM": term[0]} if term is not None else {}
        encoder = AsciicastEncoder(
            width=width or 80,
            height=height or 24,
            timestamp=time.time(),
            command=command,
            title=f"{kind} {self.connection_id}",
            env=shown_env,
        )
        channel = ChannelLog(self, answer["id"], writer, encoder, self.settings.record_input)
        channel._write(encoder.header())
        channel.failed = failed
        if channel.error is not None:
            raise RecordingFailed(f"cannot write the session recording: {channel.error}")
        return channel

    def track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every finished channel is written and reported."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
