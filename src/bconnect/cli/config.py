"""``bconnect config ssh``: an ``ssh_config`` block for plain ``ssh web.prod``.

Like ``tsh config``: it lists the signed-in user's target aliases (``users
<id>:list-resolvable-aliases``, what Boundary's client cache asks), reads each alias'
target (name, brokered credential sources) and prints one ``Host`` entry per alias
whose ``ProxyCommand`` is ``bconnect connect -stdio %h``; the text itself is built by
:mod:`bconnect.core.sshconfig`. ``-format json`` lists the entries instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

import click

from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    GlobalOptions,
    UserError,
    api_command,
    controller_call,
    string_option,
)
from bconnect.cli.resources import help_text

if TYPE_CHECKING:
    from bconnect.core.api import Client
    from bconnect.core.sshconfig import SshEntry

__all__ = ["config", "this_program"]


def this_program() -> list[str]:
    """The command that runs this bconnect, with absolute paths: the console script, or
    ``python -m bconnect`` when run that way."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0.endswith(("__main__.py", "-c")) or argv0 == "-m":
        return [sys.executable, "-m", "bconnect"]
    found = argv0 if os.sep in argv0 else shutil.which(argv0)
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "bconnect"]


def _global_flags(opts: GlobalOptions) -> list[str]:
    """The flags that make the ProxyCommand reach the same controller the same way
    (references and paths only: never a secret)."""
    flags = ["-addr", opts.addr]
    if opts.token:  # env://VAR or file://PATH: a reference, not the token
        flags += ["-token", opts.token]
    if opts.keyring_type not in ("", "auto"):
        flags += ["-keyring-type", opts.keyring_type]
    if opts.ca_cert:
        flags += ["-ca-cert", os.path.abspath(opts.ca_cert)]
    if opts.tls_insecure:
        flags += ["-tls-insecure"]
    return flags


def _try_read(client: Client, collection: str, id_: str) -> dict[str, Any]:
    """A resource, or {} when the user may not read it (the entry is then plainer)."""
    from bconnect.core.api import ApiError

    try:
        return dict(client.read(collection, id_))
    except ApiError as exc:
        if exc.status in (403, 404):
            return {}
        raise


def _user_id(client: Client, token: str) -> str:
    from bconnect.core.api import token_id

    try:
        tid = token_id(token)
    except ValueError:
        raise UserError("The stored token is not a Boundary token: authenticate again") from None
    with controller_call("read", "auth token"):
        return str(client.read("auth-tokens", tid).get("user_id", ""))


def _entries(opts: GlobalOptions, client: Client, user_id: str) -> list[SshEntry]:
    from bconnect.core.sshconfig import (
        SshEntry,
        known_hosts_command,
        proxy_command,
        worker_host_key,
    )

    with controller_call("list-resolvable-aliases", "user"):
        listed = client.list_all(f"users/{user_id}:list-resolvable-aliases")
    program, flags = this_program(), _global_flags(opts)
    command = proxy_command(program, flags)
    entries = []
    for alias in sorted(listed.get("items") or [], key=lambda a: str(a.get("value", ""))):
        target_id = str(alias.get("destination_id") or "")
        if alias.get("type", "target") != "target" or not target_id:
            continue
        with controller_call("read", "alias"):
            full = _try_read(client, "aliases", str(alias.get("id", "")))
        arguments = (full.get("attributes") or {}).get("authorize_session_arguments") or {}
        with controller_call("read", "target"):
            target = _try_read(client, "targets", target_id)
        credentials, user = [], ""
        for source in target.get("brokered_credential_source_ids") or []:
            with controller_call("read", "credential"):
                credential = _try_read(client, "credentials", str(source))
            ctype = str(credential.get("type", ""))
            credentials.append((str(source), ctype))
            user = user or str((credential.get("attributes") or {}).get("username") or "")
        worker_key = worker_host_key(target)
        entries.append(
            SshEntry(
                host=str(alias.get("value", "")),
                target_id=target_id,
                proxy_command=command,
                # an ssh target's server is the worker, with one key for the target
                host_key_alias=target_id
                if worker_key
                else str(arguments.get("host_id") or target_id),
                user=user,
                alias_id=str(alias.get("id", "")),
                target_name=str(target.get("name", "")),
                scope_id=str(target.get("scope_id", "")),
                credentials=tuple(credentials),
                worker_host_key=worker_key,
                known_hosts_command=known_hosts_command(program, flags, target_id)
                if worker_key
                else "",
            )
        )
    return entries


def _config_ssh(opts: GlobalOptions, suffix: str | None) -> None:
    from bconnect.cli import output
    from bconnect.core.sshconfig import proxy_command, render_ssh_config

    token = opts.find_token()
    if not token:
        raise UserError("Not authenticated: run `bconnect authenticate` first")
    client = opts.client()
    entries = _entries(opts, client, _user_id(client, token))
    suffix = (suffix or "").strip().strip(".")
    if opts.json:
        opts.echo(output.dumps_compact({"items": [e.to_json() for e in entries]}))
        return
    program = this_program()
    suffix_command = proxy_command(program, _global_flags(opts), "-name-suffix", suffix)
    header = [
        f"bconnect ssh configuration for {opts.addr} ({len(entries)} alias(es)).",
        "Save it and include it at the top of ~/.ssh/config:",
        "  bconnect config ssh > ~/.ssh/bconnect.conf",
        "  Include bconnect.conf",
        "Then: ssh web.prod, scp, rsync -e ssh, git and IDEs use these hosts.",
    ]
    click.echo(
        render_ssh_config(entries, header=header, suffix=suffix, suffix_command=suffix_command),
        nl=False,
    )


@click.group(
    "config",
    context_settings=CONTEXT_SETTINGS,
    help=help_text(
        "Print configuration for other programs (ssh).",
        "bconnect config ssh > ~/.ssh/bconnect.conf",
    ),
)
def config() -> None:
    pass


@config.command(
    "ssh",
    context_settings=CONTEXT_SETTINGS,
    help=help_text(
        "Print an ssh_config block for plain ssh, scp, rsync, git and IDEs: one Host "
        "entry per target alias you may use, whose ProxyCommand is `bconnect connect "
        "-stdio %h` (this bconnect's absolute path, this controller's address) and whose "
        "HostKeyAlias is the target's (or the alias' host) id, as `bconnect ssh` uses; "
        "for an ssh target (tssh_…) ssh checks the worker's key for the target with "
        "KnownHostsCommand `bconnect config known-hosts -target-id tssh_…`. "
        "-suffix adds an entry mapping NAME.PROJECT.SUFFIX to the target named NAME in "
        "the project named PROJECT. No secret is written: a brokered user name becomes "
        "User. -format json lists the entries.",
        "bconnect config ssh > ~/.ssh/bconnect.conf   # then: Include bconnect.conf",
        "bconnect config ssh -suffix bconnect",
        "bconnect config ssh -format json",
    ),
)
@string_option(
    "suffix",
    help="Also map NAME.PROJECT.SUFFIX host names to targets by name (e.g. bconnect).",
)
@api_command
def config_ssh(opts: GlobalOptions, suffix: str | None) -> None:
    _config_ssh(opts, suffix)


def _known_hosts(opts: GlobalOptions, target_id: str | None) -> None:
    from bconnect.core.sshconfig import known_hosts_line, worker_host_key

    client = opts.client()
    if target_id:
        with controller_call("read", "target"):
            targets = [dict(client.read("targets", target_id))]
        if not worker_host_key(targets[0]):
            raise UserError(f"Target {target_id} is not an ssh target: it has no worker host key")
    else:
        with controller_call("list", "targets"):
            listed = client.list_all("targets", scope_id="global", recursive=True)
        targets = []
        for item in listed.get("items") or []:
            if str(item.get("type", "")) == "ssh":
                with controller_call("read", "target"):
                    targets.append(_try_read(client, "targets", str(item.get("id", ""))))
    lines = [
        known_hosts_line(str(t["id"]), key)
        for t in sorted(targets, key=lambda t: str(t.get("id", "")))
        if (key := worker_host_key(t))
    ]
    for line in lines:
        click.echo(line)


@config.command(
    "known-hosts",
    context_settings=CONTEXT_SETTINGS,
    help=help_text(
        "Print known_hosts lines for ssh targets (tssh_…): the key of the SSH server the "
        "worker runs for each target, under the target id (the HostKeyAlias that "
        "`bconnect ssh` and `bconnect config ssh` use), as the controller serves it to "
        "users who may read the target. `bconnect config ssh` makes ssh run it as "
        "KnownHostsCommand; or append its output to ~/.ssh/known_hosts.",
        "bconnect config known-hosts >> ~/.ssh/known_hosts",
        "bconnect config known-hosts -target-id tssh_1234567890",
    ),
)
@string_option("target-id", help="Only this ssh target.")
@api_command
def config_known_hosts(opts: GlobalOptions, target_id: str | None) -> None:
    _known_hosts(opts, target_id)
