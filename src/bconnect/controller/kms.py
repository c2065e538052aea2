"""Secrets at rest: brokered credentials and session private keys, encrypted with keys
the database cannot give away on its own.

Two levels, as Boundary's KMS has them:

- the **root key** comes from the operator (``[[kms]] purpose = "root"`` in the config
  file, Boundary's ``kms "aead"`` block; ``bconnect dev`` makes one) and never touches
  the database;
- **data keys** (``kdk_…``, AES-256-GCM) live in the ``kms_keys`` table, each wrapped
  (encrypted) with a root key. The newest encrypts; every one decrypts.

A value is stored as ``MAGIC | data key id | nonce | AES-GCM(value)``, with the table,
column and row id as associated data, so a ciphertext copied to another row does not
decrypt. Text columns hold it base64-encoded behind ``enc:v1:``. Values written before
encryption existed (no magic) are read as they are, and ``bconnect database
rotate-keys`` encrypts them.

Rotating the root key: make the new key ``purpose = "root"`` and the old one
``purpose = "previous-root"``, run ``bconnect database rotate-keys`` (it re-wraps every
data key with the new root key, makes a new data key and re-encrypts every secret with
it), restart the controllers, then drop the old key from the config.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, insert, select, update

from bconnect.controller.storage import schema as t
from bconnect.ids import new_id

log = logging.getLogger(__name__)

MAGIC = b"bck1"
TEXT_PREFIX = "enc:v1:"
_ID_LEN = len("kdk_") + 10
_NONCE = 12
KEY_SIZES = (16, 24, 32)


class KeyringError(Exception):
    """A secret cannot be decrypted or the keys cannot be used; one line, no secret."""


@dataclass(frozen=True)
class RootKey:
    """An operator's AEAD key (AES-GCM) and the id it is known by."""

    key_id: str
    key: bytes = field(repr=False)

    @classmethod
    def from_text(cls, key_id: str, text: str) -> RootKey:
        """Boundary's form: the key base64-encoded (16, 24 or 32 bytes)."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise ValueError("key must be base64 (e.g. from: openssl rand -base64 32)") from None
        if len(key) not in KEY_SIZES:
            raise ValueError(f"key must be 16, 24 or 32 bytes, not {len(key)}")
        return cls(key_id, key)

    @classmethod
    def generate(cls, key_id: str = "dev_root") -> RootKey:
        return cls(key_id, os.urandom(32))

    def text(self) -> str:
        return base64.b64encode(self.key).decode()


def _aad(table: str, column: str, row_id: str) -> bytes:
    return f"bconnect:{table}.{column}:{row_id}".encode()


class Keyring:
    """The data keys of one database, unwrapped with the operator's root key(s)."""

    def __init__(self, engine: Engine, root: RootKey, previous: Sequence[RootKey] = ()) -> None:
        self._engine = engine
        self.root = root
        self._roots = {k.key_id: k for k in (*previous, root)}
        self._keys: dict[str, AESGCM] = {}
        self._active = ""
        self._lock = threading.Lock()
        #: signs list tokens; every controller with this root key derives the same
        self.list_token_key = hmac.new(root.key, b"bconnect list tokens", "sha256").digest()

    # ------------------------------------------------------------ data keys
    def load(self, conn: Connection | None = None) -> None:
        """Unwrap the database's data keys; make the first one if there is none."""
        if conn is None:
            with self._engine.begin() as own:
                self.load(own)
            return
        rows = conn.execute(select(t.kms_keys).order_by(t.kms_keys.c.created_time)).all()
        if not rows:
            self.new_data_key(conn)
            return
        keys = {row.id: AESGCM(self._unwrap(row)) for row in rows}
        with self._lock:
            self._keys = keys
            self._active = rows[-1].id

    def new_data_key(self, conn: Connection) -> str:
        """Make a data key, wrapped with the root key; it encrypts from now on."""
        dek_id, dek = new_id("kdk"), AESGCM.generate_key(256)
        conn.execute(
            insert(t.kms_keys).values(
                id=dek_id,
                root_key_id=self.root.key_id,
                wrapped_key=self._wrap(dek_id, dek),
                created_time=datetime.now(UTC),
            )
        )
        with self._lock:
            self._keys[dek_id] = AESGCM(dek)
            self._active = dek_id
        return dek_id

    def rewrap(self, conn: Connection) -> int:
        """Wrap every data key with the current root key; returns how many changed."""
        changed = 0
        for row in conn.execute(select(t.kms_keys)).all():
            if row.root_key_id == self.root.key_id:
                continue
            conn.execute(
                update(t.kms_keys)
                .where(t.kms_keys.c.id == row.id)
                .values(
                    root_key_id=self.root.key_id, wrapped_key=self._wrap(row.id, self._unwrap(row))
                )
            )
            changed += 1
        return changed

    def _wrap(self, dek_id: str, dek: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.root.key).encrypt(nonce, dek, f"dek:{dek_id}".encode())

    def _unwrap(self, row: Any) -> bytes:
        root = self._roots.get(row.root_key_id)
        if root is None:
            raise KeyringError(
                f"data key {row.id} is wrapped with root key {row.root_key_id!r}, which the "
                'configuration does not have (add it as purpose = "previous-root")'
            )
        blob = bytes(row.wrapped_key)
        try:
            return AESGCM(root.key).decrypt(blob[:_NONCE], blob[_NONCE:], f"dek:{row.id}".encode())
        except InvalidTag:
            raise KeyringError(
                f"root key {root.key_id!r} does not unwrap data key {row.id}: "
                "is it the same key that wrapped it?"
            ) from None

    # ------------------------------------------------------------ values
    def encrypt(self, value: bytes, table: str, column: str, row_id: str) -> bytes:
        with self._lock:
            dek_id, key = self._active, self._keys[self._active]
        nonce = os.urandom(_NONCE)
        sealed = key.encrypt(nonce, value, _aad(table, column, row_id))
        return MAGIC + dek_id.encode() + nonce + sealed

    def decrypt(self, blob: bytes, table: str, column: str, row_id: str) -> bytes:
        """The value; a value stored before encryption (no magic) as it is."""
        blob = bytes(blob)
        if not blob.startswith(MAGIC):
            return blob
        dek_id = blob[len(MAGIC) : len(MAGIC) + _ID_LEN].decode("ascii", "replace")
        key = self._keys.get(dek_id)
        if key is None:  # made by another controller since this one loaded: look again
            self.load()
            key = self._keys.get(dek_id)
            if key is None:
                raise KeyringError(f"{table}.{column} of {row_id}: unknown data key {dek_id}")
        rest = blob[len(MAGIC) + _ID_LEN :]
        try:
            return key.decrypt(rest[:_NONCE], rest[_NONCE:], _aad(table, column, row_id))
        except InvalidTag:
            raise KeyringError(f"{table}.{column} of {row_id} does not decrypt") from None

    def encrypt_text(self, value: str, table: str, column: str, row_id: str) -> str:
        sealed = self.encrypt(value.encode(), table, column, row_id)
        return TEXT_PREFIX + base64.b64encode(sealed).decode()

    def decrypt_text(self, value: str, table: str, column: str, row_id: str) -> str:
        if not value.startswith(TEXT_PREFIX):
            return value
        blob = base64.b64decode(value[len(TEXT_PREFIX) :])
        return self.decrypt(blob, table, column, row_id).decode()


def is_encrypted(value: bytes | str) -> bool:
    if isinstance(value, str):
        return value.startswith(TEXT_PREFIX)
    return bytes(value).startswith(MAGIC)


def rotate(engine: Engine, keyring: Keyring, batch: int = 500) -> dict[str, int]:
    """``bconnect database rotate-keys``: every data key wrapped with the current root
    key, a new data key, and every secret (credentials, session private keys, ssh targets'
    host keys) encrypted
    again with it, including any stored before encryption existed. Batches of ``batch``
    rows, each in a transaction of its own, so a large table does not hold locks long."""
    with engine.begin() as conn:
        rewrapped = keyring.rewrap(conn)
        keyring.load(conn)
        keyring.new_data_key(conn)
    counts = {"data keys rewrapped": rewrapped}
    for table, column, text in (
        (t.credentials, "secret", True),
        (t.storage_buckets, "secrets", True),
        (t.sessions, "private_key", False),
        (t.targets, "ssh_host_key", False),
    ):
        done, after = 0, ""
        while True:
            with engine.begin() as conn:
                rows = conn.execute(
                    select(table.c.id, table.c[column])
                    .where(table.c.id > after, table.c[column].is_not(None))
                    .order_by(table.c.id)
                    .limit(batch)
                ).all()
                for row in rows:
                    sealed: str | bytes
                    if text:
                        plain = keyring.decrypt_text(row[1], table.name, column, row.id)
                        sealed = keyring.encrypt_text(plain, table.name, column, row.id)
                    else:
                        raw = keyring.decrypt(row[1], table.name, column, row.id)
                        sealed = keyring.encrypt(raw, table.name, column, row.id)
                    conn.execute(update(table).where(table.c.id == row.id).values({column: sealed}))
            done += len(rows)
            if len(rows) < batch:
                break
            after = rows[-1].id
        counts[f"{table.name}.{column} encrypted"] = done
    return counts


# ---------------------------------------------------------------- the encrypted columns
def seal_credential(keyring: Keyring, credential_id: str, secret: dict[str, Any]) -> str:
    """A credential's secret fields as stored (``credentials.secret``)."""
    return keyring.encrypt_text(json.dumps(secret), "credentials", "secret", credential_id)


def open_credential(keyring: Keyring, row: Any) -> dict[str, Any]:
    """A credential row's secret fields."""
    return json.loads(keyring.decrypt_text(row.secret, "credentials", "secret", row.id))


def seal_session_key(keyring: Keyring, session_id: str, private_key: bytes) -> bytes:
    """A session's private key as stored (``sessions.private_key``)."""
    return keyring.encrypt(private_key, "sessions", "private_key", session_id)


def open_session_key(keyring: Keyring, row: Any) -> bytes:
    """A session row's private key."""
    return keyring.decrypt(row.private_key, "sessions", "private_key", row.id)
