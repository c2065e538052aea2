"""Secret references: ``env://VAR``, ``file://PATH`` and ``string://LITERAL``.

Boundary never takes secrets (passwords, tokens, private keys) as literal flag
values, because argv is visible to every user of the machine. Instead a flag
names where the secret lives. This module resolves such references the way
Boundary's ``parseutil.MustParsePath`` does: surrounding whitespace is trimmed
from the reference and from the value it points to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NotASecretRef", "SecretRefError", "resolve_secret_ref"]


class SecretRefError(ValueError):
    """A secret reference could not be resolved (unset variable, unreadable file)."""


class NotASecretRef(SecretRefError):
    """The value is a literal, not an ``env://`` / ``file://`` reference."""


def resolve_secret_ref(
    value: str,
    *,
    must: bool = True,
    environ: Mapping[str, str] | None = None,
    strip: bool = True,
) -> str:
    """Resolve a secret reference to the secret itself.

    ``env://NAME`` reads environment variable NAME (it must be set),
    ``file://PATH`` reads the file at PATH (``~`` is expanded), ``string://X``
    is the literal X. With ``must=True`` anything else raises
    :class:`NotASecretRef`; with ``must=False`` it is returned unchanged.
    The resolved value is stripped of surrounding whitespace unless
    ``strip=False``.
    """
    env = os.environ if environ is None else environ
    ref = value.strip()
    if ref.startswith("env://"):
        name = ref[len("env://") :]
        if not name:
            raise SecretRefError("env:// reference without a variable name")
        if name not in env:
            raise SecretRefError(f"environment variable {name} is not set")
        secret = env[name]
    elif ref.startswith("file://"):
        path = Path(ref[len("file://") :]).expanduser()
        try:
            secret = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise SecretRefError(f"error reading file at {path}: {reason}") from None
    elif ref.startswith("string://"):
        secret = ref[len("string://") :]
    elif must:
        raise NotASecretRef("value must use env:// or file:// syntax")
    else:
        return value
    return secret.strip() if strip else secret
