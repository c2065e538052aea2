"""An ``ssh`` session's connection at the worker: the controller's session data turned
into the relay's settings (worker/sshrelay.py), with first-use pinning of the host's key
through the controller, and the session's recorder (worker/recorder.py) when the target
records: a bucket that cannot be written refuses the connection with the reason."""

from __future__ import annotations

import logging
import socket

from bconnect.clusterwire import RefusalKind
from bconnect.hostport import join_host_port
from bconnect.objectstore import BucketError
from bconnect.sshlib import asyncssh
from bconnect.worker.cluster import ClusterClient, ClusterError, ClusterRefused, SessionInfo
from bconnect.worker.recorder import RecordingFailed, SessionRecorder
from bconnect.worker.sshrelay import Ending, Upstream, UpstreamRefused, serve_relay

__all__ = ["serve", "upstream_for"]

log = logging.getLogger(__name__)


def upstream_for(
    session: SessionInfo, host: str, port: int, cluster: ClusterClient | None
) -> Upstream:
    """How the worker logs in to ``host:port`` for ``session``: its first injected
    credential (a private key before a password), and first-use pinning through the
    controller when the target's known hosts name no key for the host."""
    assert session.ssh is not None
    if not session.ssh.credentials:
        raise UpstreamRefused("the target has no injected credential to log in with")
    credential = session.ssh.credentials[0]

    async def pin(key_line: str) -> None:
        assert cluster is not None
        try:
            added = await cluster.pin_host_key(session.session_id, host, port, key_line)
        except ClusterRefused as exc:
            if exc.kind == RefusalKind.HOST_KEY_MISMATCH:
                raise UpstreamRefused(
                    f"{exc.message}: refusing to connect (the key it presented now is "
                    f"{key_line.split()[0]})"
                ) from None
            raise UpstreamRefused(f"the controller refused the host key: {exc.message}") from None
        except ClusterError as exc:
            raise UpstreamRefused(
                f"cannot record the host key of {join_host_port(host, port)}: {exc.message}"
            ) from None
        if added:
            log.info(
                "session %s: pinned the host key of %s at first use: %s",
                session.session_id,
                join_host_port(host, port),
                key_line,
            )

    return Upstream(
        host=host,
        port=port,
        username=credential.username,
        known_hosts=session.ssh.known_hosts,
        password=credential.password,
        private_key=credential.private_key,
        passphrase=credential.passphrase,
        pin=pin if cluster is not None else None,
    )


async def serve(
    sock: socket.socket,
    session: SessionInfo,
    host: str,
    port: int,
    cluster: ClusterClient,
    connection_id: str,
) -> Ending | None:
    """Serve one connection of an ssh session on ``sock``; returns why the worker ended
    it itself (the host refused, the recording failed), or ``None``."""
    assert session.ssh is not None
    try:
        host_key = asyncssh.import_private_key(session.ssh.host_key)
    except asyncssh.KeyImportError as exc:
        log.warning("connection %s: cannot serve ssh: %s", connection_id, exc)
        sock.close()
        return Ending(str(exc))
    refusal: str | None = None
    try:
        upstream = upstream_for(session, host, port, cluster)
    except UpstreamRefused as exc:
        upstream, refusal = Upstream(host, port, "", ""), str(exc)
    recorder = None
    if session.ssh.recording is not None and refusal is None:
        try:
            recorder = SessionRecorder(cluster, session.ssh.recording, connection_id)
            await recorder.check()
        except (RecordingFailed, BucketError) as exc:
            log.warning("connection %s: %s", connection_id, exc)
            refusal = str(exc)
    try:
        return await serve_relay(sock, upstream, host_key, recorder, refusal)
    finally:
        if recorder is not None:
            await recorder.drain()
