"""The built-in ``ssh`` helper: ``bconnect ssh -target-id ttcp_…``.

Matches Boundary's ``internal/cmd/commands/connect/ssh.go`` (``buildArgs``):

* style ``ssh``: ``ssh [ARGS AFTER --] -p PORT -o HostKeyAlias=<host id, else target id>
  [-i {{file.key}} -o IdentitiesOnly=yes] [-l USER] 127.0.0.1 [REMOTE COMMAND]``. For an
  ``ssh`` target (``tssh_…``, whose host key is the worker's) no credential is consumed
  and the worker's key is checked: ``-o HostKeyAlias=tssh_… -o
  UserKnownHostsFile={{file.known_hosts}} -o StrictHostKeyChecking=yes`` with the key the
  controller serves for the target (``ConnectContext.known_hosts``). Where the user may
  not read the target, ``-o NoHostAuthenticationForLocalhost=yes`` instead, as Boundary
  always does.
* style ``sshpass``: ``sshpass -e ssh [ARGS AFTER --] -p PORT -o
  NoHostAuthenticationForLocalhost=yes [-l USER] 127.0.0.1 [REMOTE COMMAND]`` with the
  first brokered username/password credential's password in ``SSHPASS``. Boundary puts
  the arguments after ``--`` in front of ``-e`` (where sshpass, not ssh, reads them);
  bconnect gives them to ssh.
* style ``putty``: ``putty [ARGS AFTER --] -P PORT [-i {{file.key}}] [-l USER] 127.0.0.1``.

Credentials (tcp targets): the first brokered ``ssh_private_key`` goes to the 0600 file
``key`` (``-i``; a newline is added when missing, as Boundary does) and is consumed,
unless it has a passphrase: then it is left for the "Credentials:" block so that the user
sees the passphrase ssh asks for. Otherwise the first ``username_password`` credential
gives the user name; its password is consumed only by the sshpass style. Without
``-style``, the helper uses sshpass when a username/password credential (and no private
key) is brokered, ssh otherwise. The user name is ``-username`` when given, else the
consumed credential's (Boundary lets a brokered key's user name win over ``-username``).
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.plugins import HelperError
from bconnect.plugins._common import (
    SSH_PRIVATE_KEY,
    USERNAME_PASSWORD,
    first_credential,
    option,
    with_passthrough,
)
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch, hookimpl

STYLES = ("ssh", "sshpass", "putty")

SSH = HelperInfo(
    name="ssh",
    summary="Authorize a session against a target and invoke an SSH client to connect",
    example="bconnect ssh -target-id ttcp_1234567890 -username ubuntu",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run an SSH client against it: ssh (the default), sshpass (the default "
        "when a username/password credential is brokered: the password reaches sshpass "
        "through SSHPASS) or putty. A brokered SSH private key is handed to the client in "
        "a temporary 0600 file (-i, IdentitiesOnly=yes). The host key is checked under "
        "the alias of the host (or target) id, so that the changing local port does not "
        "look like a changed host. Arguments after -- go to ssh, before its own."
    ),
    options=[
        HelperOption(
            "style",
            "How to invoke the SSH client: ssh, sshpass or putty (default: sshpass when "
            "only a username/password credential is brokered, else ssh).",
            choices=STYLES,
        ),
        HelperOption("username", "The user name to log in as (default: the brokered one)."),
        HelperOption("remote-command", "A command to run on the remote host."),
        HelperOption(
            "host-key-alias",
            "The name ssh checks the host key under (default: the host id, or the target "
            "id for a target with an address).",
        ),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``ssh`` helper."""
    return [SSH]


def _style(context: ConnectContext, consume: bool) -> str:
    style = option(context, "style").lower()
    if style:
        if style not in STYLES:
            raise HelperError(f'unknown -style "{style}": use ssh, sshpass or putty')
        return style
    if (
        consume
        and first_credential(context, SSH_PRIVATE_KEY, "private_key") is None
        and first_credential(context, USERNAME_PASSWORD, "password") is not None
    ):
        return "sshpass"
    return "ssh"


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the ssh, sshpass or putty command line for ``bconnect ssh``."""
    if helper != "ssh":
        return None
    # Boundary consumes credentials for tcp targets only; an ssh target injects them.
    consume = not context.target_id.startswith("tssh_")
    style = _style(context, consume)
    username = option(context, "username")
    alias = option(context, "host_key_alias")
    port = str(context.port)
    launch = Launch(argv=[])
    args: list[str] = []

    if style == "sshpass":
        if not consume:
            raise HelperError("Credentials must be consumed when using sshpass")
        credential = first_credential(context, USERNAME_PASSWORD, "password")
        if credential is None:
            raise HelperError(
                "Password is required when using sshpass (no username/password "
                "credential is brokered)"
            )
        launch.env["SSHPASS"] = str(credential.password)
        launch.consumed.add(credential.source_id)
        username = username or (credential.username or "")
        program = ["sshpass", "-e", "ssh"]
        # sshpass cannot answer a host key prompt: skip the check for localhost
        # (Boundary), unless the user asked for an alias, which re-enables it.
        args += ["-p", port, "-o", "NoHostAuthenticationForLocalhost=yes"]
        if alias:
            args += ["-o", f"HostKeyAlias={alias}"]
    else:
        program = [style]
        if style == "ssh":
            args += ["-p", port]
            if consume or alias:
                args += ["-o", f"HostKeyAlias={alias or context.host_id or context.target_id}"]
            elif context.known_hosts:  # the worker's key for the target, from the controller
                launch.files["known_hosts"] = context.known_hosts
                args += [
                    "-o",
                    f"HostKeyAlias={context.target_id}",
                    "-o",
                    "UserKnownHostsFile={{file.known_hosts}}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ]
            else:
                args += ["-o", "NoHostAuthenticationForLocalhost=yes"]
        else:  # putty
            args += ["-P", port]
        key = first_credential(context, SSH_PRIVATE_KEY, "private_key") if consume else None
        login = first_credential(context, USERNAME_PASSWORD) if consume else None
        if key is not None:
            content = str(key.private_key)
            launch.files["key"] = content if content.endswith("\n") else content + "\n"
            args += ["-i", "{{file.key}}"]
            if style == "ssh":
                args += ["-o", "IdentitiesOnly=yes"]
            username = username or (key.username or "")
            if not key.fields.get("private_key_passphrase"):
                launch.consumed.add(key.source_id)
        elif login is not None:
            # ssh cannot take a password: only the user name is used, the credential is
            # printed for the user to type the password (Boundary).
            username = username or (login.username or "")

    if username:
        args += ["-l", username]
    args.append(context.host)
    command = option(context, "remote_command")
    if command:
        args.append(command)
    launch.argv = with_passthrough(program, args, context.passthrough)
    return launch
