"""Where ``bconnect authenticate`` keeps the auth token, and how commands find it.

Tokens are stored per controller address. The store is the OS keyring (via the
optional ``keyring`` package, service name ``bconnect``) when a usable backend
exists, else a JSON file readable only by its owner::

    $BCONNECT_TOKEN_FILE  or  $XDG_CONFIG_HOME/bconnect/token  or  ~/.config/bconnect/token

``{"tokens": {"http://127.0.0.1:9200": "at_..._s1..."}}``

The keyring type is chosen with ``-keyring-type`` or ``BCONNECT_KEYRING_TYPE`` /
``BOUNDARY_KEYRING_TYPE``: ``auto`` (default: keyring if usable, else file),
``keyring``, ``file`` or ``none`` (never store; ``authenticate`` prints the token).

Commands look the token up in this order (:func:`resolve_token`): the ``-token``
flag (``env://VAR`` or ``file://PATH``), ``BCONNECT_TOKEN`` / ``BOUNDARY_TOKEN``,
then the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Protocol

from bconnect.core.secrets import NotASecretRef, SecretRefError, resolve_secret_ref

__all__ = [
    "ENV_KEYRING_TYPE",
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "KEYRING_SERVICE",
    "KEYRING_TYPES",
    "FileTokenStore",
    "KeyringTokenStore",
    "NullTokenStore",
    "TokenStore",
    "TokenStoreError",
    "default_token_file",
    "keyring_type_from_env",
    "normalize_addr",
    "open_store",
    "resolve_token",
]

log = logging.getLogger(__name__)

KEYRING_TYPES = ("auto", "none", "file", "keyring")
KEYRING_SERVICE = "bconnect"
ENV_TOKEN_FILE = "BCONNECT_TOKEN_FILE"
ENV_KEYRING_TYPE = ("BCONNECT_KEYRING_TYPE", "BOUNDARY_KEYRING_TYPE")
ENV_TOKEN = ("BCONNECT_TOKEN", "BOUNDARY_TOKEN")


class TokenStoreError(Exception):
    """The token store cannot be used (bad keyring type, keyring failure, bad file)."""


class TokenStore(Protocol):
    """Stores one token per controller address."""

    kind: str

    def get(self, addr: str) -> str | None:
        """Return the token stored for *addr*, or None."""

    def set(self, addr: str, token: str) -> None:
        """Store *token* for *addr*, replacing any previous one."""

    def delete(self, addr: str) -> bool:
        """Forget the token for *addr*; return True if there was one."""


def normalize_addr(addr: str) -> str:
    """Canonical form of a controller address used as the store key."""
    return addr.strip().rstrip("/").lower()


def default_token_file(environ: Mapping[str, str] | None = None) -> Path:
    """The token file path: ``$BCONNECT_TOKEN_FILE``, else under ``$XDG_CONFIG_HOME``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_TOKEN_FILE):
        return Path(env[ENV_TOKEN_FILE]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "bconnect" / "token"


def keyring_type_from_env(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The keyring type from the flag, else the environment, else ``auto``; validated."""
    env = os.environ if environ is None else environ
    value = flag
    if not value:
        value = next((env[name] for name in ENV_KEYRING_TYPE if env.get(name)), "auto")
    value = value.strip().lower()
    if value not in KEYRING_TYPES:
        raise TokenStoreError(
            f"Given keyring type {value!r} is not valid; use one of: {', '.join(KEYRING_TYPES)}"
        )
    return value


class NullTokenStore:
    """``-keyring-type none``: nothing is stored or found."""

    kind = "none"

    def get(self, addr: str) -> str | None:
        return None

    def set(self, addr: str, token: str) -> None:
        return None

    def delete(self, addr: str) -> bool:
        return False


class FileTokenStore:
    """Tokens in a JSON file created with mode 0600 (its directory 0700)."""

    kind = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_token_file()

    def _load(self) -> dict[str, str]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenStoreError(f"cannot read token file {self.path}: {exc.strerror}") from None
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise TokenStoreError(f"token file {self.path} is not valid JSON") from None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, dict):
            return {}
        return {str(k): str(v) for k, v in tokens.items() if isinstance(v, str)}

    def _save(self, tokens: dict[str, str]) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.path.exists():
                os.chmod(self.path, 0o600)
            fd, tmp = tempfile.mkstemp(prefix=".token-", dir=directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"tokens": tokens}, fh, indent=2, sort_keys=True)
                    fh.write("\n")
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise TokenStoreError(f"cannot write token file {self.path}: {exc.strerror}") from None

    def get(self, addr: str) -> str | None:
        return self._load().get(normalize_addr(addr))

    def set(self, addr: str, token: str) -> None:
        tokens = self._load()
        tokens[normalize_addr(addr)] = token
        self._save(tokens)

    def delete(self, addr: str) -> bool:
        tokens = self._load()
        if tokens.pop(normalize_addr(addr), None) is None:
            return False
        self._save(tokens)
        return True


def _usable_keyring() -> ModuleType | None:
    """Return the ``keyring`` module if it is installed and has a real backend, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # noqa: BLE001 - any import problem means "no keyring"
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring


class KeyringTokenStore:
    """Tokens in the OS keyring: service ``bconnect``, user name = controller address."""

    kind = "keyring"

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        module = _usable_keyring()
        if module is None:
            raise TokenStoreError(
                "no usable OS keyring found (install the 'keyring' package and a backend, "
                "or use -keyring-type file)"
            )
        self._keyring = module
        self.service = service

    def get(self, addr: str) -> str | None:
        try:
            token: str | None = self._keyring.get_password(self.service, normalize_addr(addr))
            return token
        except Exception as exc:  # noqa: BLE001 - keyring backends raise many types
            raise TokenStoreError(f"error reading auth token from keyring: {exc}") from None

    def set(self, addr: str, token: str) -> None:
        try:
            self._keyring.set_password(self.service, normalize_addr(addr), token)
        except Exception as exc:  # noqa: BLE001
            raise TokenStoreError(f"error saving auth token to keyring: {exc}") from None

    def delete(self, addr: str) -> bool:
        try:
            if self._keyring.get_password(self.service, normalize_addr(addr)) is None:
                return False
            self._keyring.delete_password(self.service, normalize_addr(addr))
        except Exception as exc:  # noqa: BLE001
            raise TokenStoreError(f"error deleting auth token from keyring: {exc}") from None
        return True


def open_store(
    keyring_type: str | None = None, environ: Mapping[str, str] | None = None
) -> TokenStore:
    """Open the token store for a keyring type (``None`` = from the environment).

    ``auto`` uses the token file when ``BCONNECT_TOKEN_FILE`` is set, else the OS
    keyring when usable, else the token file.
    """
    env = os.environ if environ is None else environ
    kind = keyring_type_from_env(keyring_type, env)
    if kind == "none":
        return NullTokenStore()
    if kind == "file":
        return FileTokenStore(default_token_file(env))
    if kind == "keyring":
        return KeyringTokenStore()
    if not env.get(ENV_TOKEN_FILE) and _usable_keyring() is not None:
        return KeyringTokenStore()
    return FileTokenStore(default_token_file(env))


def resolve_token(
    token_flag: str | None = None,
    *,
    addr: str,
    keyring_type: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Find the token a command should use, or None.

    Order: *token_flag* (must be ``env://VAR`` or ``file://PATH``), then
    ``BCONNECT_TOKEN`` / ``BOUNDARY_TOKEN``, then the store for *addr*.
    """
    env = os.environ if environ is None else environ
    if token_flag:
        try:
            token = resolve_secret_ref(token_flag, environ=env)
        except NotASecretRef:
            raise SecretRefError("Token flag must be used with env:// or file:// syntax") from None
        return token or None
    for name in ENV_TOKEN:
        if env.get(name):
            return env[name].strip()
    store = open_store(keyring_type, env)
    stored = store.get(addr)
    log.debug("token for %s %s in %s store", addr, "found" if stored else "not found", store.kind)
    return stored
