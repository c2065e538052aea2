"""Brokered credentials in ``-exec`` arguments and environment: ``{{credential.NAME.FIELD}}``.

``NAME`` is a brokered credential's source name or id (``{{credential.db.username}}``,
``{{credential.credup_1234567890.username}}``); ``FIELD`` one of its fields. Only what
is not secret may go in a command line, which every user of the machine can read in
``ps`` and ``/proc/*/cmdline``: ``username``, ``domain``, and ``private_key_file`` —
the path of a 0600 file holding the private key, removed when the run ends. Every other
field (``password``, ``private_key``, ``private_key_passphrase``, a JSON credential's
keys) is refused there, and allowed only in a variable set with ``-exec-env
NAME=TEMPLATE``.

Pure functions: :func:`check_argv` and :func:`parse_exec_env` run before a session is
authorized (a refused template creates no session); :func:`render` runs once the
session's credentials are known, with a callable that writes key files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from bconnect.core.credentials import SessionCredential

__all__ = [
    "ARGV_FIELDS",
    "TemplateError",
    "check_argv",
    "has_templates",
    "parse_exec_env",
    "render",
]

TEMPLATE = re.compile(r"\{\{\s*credential\.(?P<ref>[^{}\s]+?)\.(?P<field>[A-Za-z_]+)\s*\}\}")
#: fields a command line may carry (a key file's path is not the key)
ARGV_FIELDS = frozenset({"username", "domain", "private_key_file"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """A template that cannot be used; the message is one line naming the safe form."""


def has_templates(texts: Iterable[str]) -> bool:
    return any(TEMPLATE.search(text) for text in texts)


def check_argv(args: Iterable[str]) -> None:
    """Refuse a secret field in a command-line argument (before anything is authorized)."""
    for arg in args:
        for match in TEMPLATE.finditer(arg):
            ref, field = match.group("ref"), match.group("field")
            if field in ARGV_FIELDS:
                continue
            hint = f"pass it in the environment: -exec-env VAR={{{{credential.{ref}.{field}}}}}"
            if field == "private_key":
                hint += (
                    f", or give the program a key file: {{{{credential.{ref}.private_key_file}}}}"
                )
            raise TemplateError(
                f"{{{{credential.{ref}.{field}}}}} would put a secret on the command line, "
                f"where every user of this machine can read it: {hint}"
            )


def parse_exec_env(items: Sequence[str]) -> dict[str, str]:
    """``-exec-env NAME=TEMPLATE`` values as ``{NAME: TEMPLATE}`` (later ones win)."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise TemplateError(
                f'invalid -exec-env "{item}": expected NAME=VALUE with NAME a variable name, '
                "e.g. PGPASSWORD={{credential.db.password}}"
            )
        env[name] = value
    return env


def _find(credentials: Sequence[SessionCredential], ref: str) -> SessionCredential:
    matches = [c for c in credentials if ref in (c.source_id, c.source_name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise TemplateError(
            f'{{{{credential.{ref}...}}}}: several brokered credentials are named "{ref}": '
            "use the credential's id"
        )
    known = sorted({c.source_name or c.source_id for c in credentials})
    brokered = ", ".join(known) if known else "none"
    raise TemplateError(
        f'{{{{credential.{ref}...}}}}: no brokered credential is named "{ref}" '
        f"(brokered: {brokered})"
    )


def render(
    text: str,
    credentials: Sequence[SessionCredential],
    key_file: Callable[[SessionCredential], str],
) -> str:
    """``text`` with every ``{{credential.NAME.FIELD}}`` replaced; ``key_file`` writes a
    credential's private key to a 0600 file and returns its path (``private_key_file``).
    Whether a secret may go where ``text`` goes was decided before (:func:`check_argv`)."""

    def replace(match: re.Match[str]) -> str:
        ref, field = match.group("ref"), match.group("field")
        credential = _find(credentials, ref)
        if field == "private_key_file":
            if not isinstance(credential.private_key, str) or not credential.private_key:
                raise TemplateError(
                    f"{{{{credential.{ref}.private_key_file}}}}: the credential has no private key"
                )
            return key_file(credential)
        value = credential.fields.get(field)
        if value is None:
            fields = ", ".join(sorted(credential.fields)) or "none"
            raise TemplateError(
                f'{{{{credential.{ref}.{field}}}}}: the credential has no field "{field}" '
                f"(fields: {fields})"
            )
        return value if isinstance(value, str) else str(value)

    return TEMPLATE.sub(replace, text)


def render_all(
    args: Sequence[str],
    env: Mapping[str, str],
    credentials: Sequence[SessionCredential],
    key_file: Callable[[SessionCredential], str],
) -> tuple[list[str], dict[str, str]]:
    """:func:`render` over a program's arguments and its ``-exec-env`` variables."""
    return (
        [render(arg, credentials, key_file) for arg in args],
        {name: render(value, credentials, key_file) for name, value in env.items()},
    )
