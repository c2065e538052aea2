"""The ``ssh_config`` block ``bconnect config ssh`` prints: pure functions, no I/O.

Each of the user's target aliases becomes a ``Host`` entry whose ``ProxyCommand`` is
``bconnect connect -stdio %h`` (the absolute path of this bconnect, and the controller
address it was run against, so that ssh started from anywhere — an IDE, cron — reaches
the same controller). ``HostKeyAlias`` is the host id the alias pins, else the target
id: the name ``bconnect ssh`` checks host keys under too, so one ``known_hosts`` entry
serves both. With a suffix, one more entry maps ``NAME.PROJECT.SUFFIX`` to the target
named NAME in the project named PROJECT. Nothing secret is ever written: a brokered
user name becomes ``User``, and a comment says what to do about the password or key.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "SshEntry",
    "known_hosts_command",
    "known_hosts_line",
    "proxy_command",
    "render_ssh_config",
    "split_suffixed_name",
    "worker_host_key",
]

#: characters ssh_config's Host patterns and our ProxyCommand can carry unquoted
_HOST_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SshEntry:
    """One ``Host`` entry. ``credentials`` are ``(source id, credential type)`` of the
    target's brokered credentials (what the comment explains)."""

    host: str
    target_id: str
    proxy_command: str
    host_key_alias: str = ""
    user: str = ""
    alias_id: str = ""
    target_name: str = ""
    scope_id: str = ""
    credentials: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: an ssh target's: the worker's host key (``ssh-ed25519 AAAA…``), checked through
    #: ``known_hosts_command`` (``KnownHostsCommand``)
    worker_host_key: str = ""
    known_hosts_command: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["credentials"] = [{"id": i, "credential_type": t} for i, t in self.credentials]
        return {k: v for k, v in data.items() if v not in ("", [], None)}


def proxy_command(program: Sequence[str], global_flags: Sequence[str], *extra: str) -> str:
    """``<program> connect -stdio %h <extra> <flags>``, shell-quoted (ssh runs it with
    the user's shell); ``%h`` (right after ``-stdio``, where ``connect`` takes the
    alias) is left for ssh to fill in."""
    return " ".join(
        [
            shlex.join([*program, "connect", "-stdio"]),
            "%h",
            shlex.join([*extra, *global_flags]),
        ]
    ).rstrip()


def known_hosts_command(program: Sequence[str], global_flags: Sequence[str], target_id: str) -> str:
    """``<program> config known-hosts -target-id ID <flags>``: ssh's ``KnownHostsCommand``
    (OpenSSH 8.5+) for an ssh target's entry. The id is written out, not ``%H``: ssh
    lower-cases the ``HostKeyAlias`` it passes, and ids are case-sensitive (known_hosts
    matching is not). A ``%`` would be a token to ssh: doubled."""
    command = shlex.join(
        [*program, "config", "known-hosts", "-target-id", target_id, *global_flags]
    )
    return command.replace("%", "%%")


def worker_host_key(target: Mapping[str, Any]) -> str:
    """An ssh target's worker host key (``ssh-ed25519 AAAA…``) from the target as the
    API renders it, else ""."""
    if str(target.get("type", "")) != "ssh":
        return ""
    key = str((target.get("attributes") or {}).get("worker_host_key") or "").strip()
    return key if key.startswith("ssh-") else ""


def known_hosts_line(target_id: str, key: str) -> str:
    """The known_hosts line of an ssh target's worker key, under the target id."""
    return f"{target_id} {key.strip()}"


def split_suffixed_name(host: str, suffix: str) -> tuple[str, str] | None:
    """``NAME.PROJECT.SUFFIX`` → ``(NAME, PROJECT)``; None when ``host`` does not end in
    ``.SUFFIX`` or has no project part. The project is the part before the suffix (no
    dots in it); the target name is everything in front (dots allowed)."""
    suffix = suffix.strip(".").lower()
    if not suffix or not host.lower().endswith("." + suffix):
        return None
    stem = host[: -(len(suffix) + 1)]
    name, dot, project = stem.rpartition(".")
    if not dot or not name or not project:
        return None
    return name, project


def _comment(entry: SshEntry) -> list[str]:
    lines = []
    types = {t for _, t in entry.credentials}
    ids = ", ".join(i for i, _ in entry.credentials)
    if "ssh_private_key" in types:
        lines.append(
            f"# brokers a private key ({ids}): plain ssh uses your own keys; "
            f"`bconnect ssh {entry.host}` logs in with the brokered one"
        )
    elif "username_password" in types:
        lines.append(
            f"# brokers a password ({ids}): ssh will ask for it; "
            f"`bconnect ssh {entry.host}` enters it for you"
        )
    elif entry.credentials:
        lines.append(f"# brokers credentials ({ids}): see `bconnect ssh {entry.host}`")
    return lines


def _block(patterns: str, entry_lines: Iterable[str]) -> list[str]:
    return [f"Host {patterns}", *(f"    {line}" for line in entry_lines), ""]


def render_ssh_config(
    entries: Sequence[SshEntry],
    *,
    header: Sequence[str] = (),
    suffix: str = "",
    suffix_command: str = "",
) -> str:
    """The text of the block: ``header`` comment lines, one ``Host`` per entry (hosts
    ssh_config cannot take as a pattern are skipped with a comment), then the suffix
    entry when ``suffix`` is given."""
    lines = [f"# {line}" if line else "#" for line in header]
    if header:
        lines.append("")
    for entry in entries:
        if not _HOST_SAFE.match(entry.host):
            lines += [f"# skipped alias {entry.host!r}: not usable as an ssh host name", ""]
            continue
        body = [*_comment(entry)]
        if entry.target_name:
            body.insert(0, f"# target {entry.target_id} ({entry.target_name})")
        checks_worker_key = bool(entry.worker_host_key and entry.known_hosts_command)
        if checks_worker_key:
            body.append(f"# the worker's key for this ssh target: {entry.worker_host_key}")
        body.append(f"ProxyCommand {entry.proxy_command}")
        if entry.host_key_alias:
            body.append(f"HostKeyAlias {entry.host_key_alias}")
        if checks_worker_key:
            body.append(f"KnownHostsCommand {entry.known_hosts_command}")
        if entry.user:
            body.append(f"User {entry.user}")
        lines += _block(entry.host, body)
    if suffix:
        body = [
            f"# NAME.PROJECT.{suffix}: the target named NAME in the project named PROJECT",
            f"ProxyCommand {suffix_command}",
        ]
        lines += _block(f"*.{suffix}", body)
    return "\n".join(lines).rstrip("\n") + "\n"
