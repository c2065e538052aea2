"""What the controller keeps for ``ssh`` targets (the worker terminates SSH for them).

* The target's own SSH host key: made once when the target is created, sealed at rest;
  the worker serving a session presents it to the user's ``ssh``, so the key a user
  verifies stays the same whichever worker serves them.
* The host keys the worker accepts from the target's hosts (``known_hosts``, OpenSSH
  text). A host with no line there is pinned at first use: the worker reports the key it
  saw, the controller appends it (visible in ``targets read``) and from then on a
  different key is refused. An operator who wants no first use at all writes the lines
  beforehand (``-known-hosts file://…``).
* The injected credentials handed to the worker with the session, never to the user.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from bconnect.controller.kms import Keyring, open_credential
from bconnect.controller.storage import schema as t
from bconnect.hostport import join_host_port
from bconnect.sshlib import asyncssh

__all__ = [
    "INJECTABLE_TYPES",
    "PinRefused",
    "host_pattern",
    "injected_credentials",
    "new_host_key",
    "open_host_key",
    "pin_host_key",
    "validate_known_hosts",
]

#: The credential types a worker can log in with.
INJECTABLE_TYPES = ("username_password", "ssh_private_key")

_INJECTED = (
    select(t.credentials)
    .join(
        t.target_credential_sources,
        t.target_credential_sources.c.credential_id == t.credentials.c.id,
    )
    .where(
        t.target_credential_sources.c.target_id == bindparam("target_id"),
        t.target_credential_sources.c.purpose == "injected_application",
    )
    .order_by(t.credentials.c.id)
)


def new_host_key(keyring: Keyring, target_id: str) -> tuple[bytes, str]:
    """A fresh Ed25519 host key for a target: (sealed OpenSSH private key, public line)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=target_id)
    private = key.export_private_key("openssh")
    public = key.export_public_key("openssh").decode().strip()
    return keyring.encrypt(private, "targets", "ssh_host_key", target_id), public


def open_host_key(keyring: Keyring, target: Any) -> bytes:
    """A target row's host key (OpenSSH private key)."""
    return keyring.decrypt(target.ssh_host_key, "targets", "ssh_host_key", target.id)


def injected_credentials(conn: Any, keyring: Keyring, target_id: str) -> list[dict[str, Any]]:
    """The target's injected credentials as the worker logs in with them (a private key
    first: a worker tries them in this order)."""
    out = []
    for row in conn.execute(_INJECTED, {"target_id": target_id}).all():
        if row.type not in INJECTABLE_TYPES:
            continue
        secret = open_credential(keyring, row)
        out.append(
            {
                "type": row.type,
                "username": row.username or "",
                "password": secret.get("password"),
                "private_key": secret.get("private_key"),
                "passphrase": secret.get("private_key_passphrase"),
            }
        )
    out.sort(key=lambda c: c["type"] != "ssh_private_key")
    return out


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names a host: ``host`` for port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host.strip('[]')}]:{port}"


class PinRefused(Exception):
    """The host's key differs from the one recorded for it."""


def pin_host_key(conn: Any, target_id: str, host: str, port: int, key_line: str) -> bool:
    """Record ``key_line`` (``ssh-ed25519 AAAA…``) for ``host:port`` of the target unless
    a key is already known for that host: then it must be this one (``PinRefused``
    otherwise). Returns whether a key was added."""
    row = conn.execute(
        select(t.targets.c.known_hosts).where(t.targets.c.id == target_id).with_for_update()
    ).first()
    if row is None:
        raise PinRefused(f"target {target_id} no longer exists")
    try:
        offered = asyncssh.import_public_key(key_line)
    except (asyncssh.KeyImportError, ValueError):
        raise PinRefused("the host sent a key that cannot be read") from None
    text = row.known_hosts or ""
    trusted = _trusted_keys(text, host, port)
    if trusted:
        if any(k.public_data == offered.public_data for k in trusted):
            return False
        raise PinRefused(
            f"the host key of {join_host_port(host, port)} does not match the one recorded "
            "for the target"
        )
    line = f"{host_pattern(host, port)} {offered.export_public_key('openssh').decode().strip()}"
    text = (text.rstrip("\n") + "\n" if text.strip() else "") + line + "\n"
    conn.execute(update(t.targets).where(t.targets.c.id == target_id).values(known_hosts=text))
    return True


def _trusted_keys(text: str, host: str, port: int) -> list[asyncssh.SSHKey]:
    if not text.strip():
        return []
    matched = asyncssh.import_known_hosts(text).match(host, "", port)
    return list(matched[0]) + list(matched[1])


def validate_known_hosts(text: str) -> str:
    """Known hosts text that asyncssh can read, else ``ValueError`` saying why."""
    try:
        asyncssh.import_known_hosts(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"not OpenSSH known_hosts text: {exc}") from None
    return text
