"""A worker's own credential, kept in its auth storage directory.

Controller-led registration (``bconnect workers create controller-led``) gives the worker
a one-time activation token; on its first start the worker trades it for a credential of
its own and keeps that here, in ``auth_storage_path/worker-credential.json`` (directory
0700, file 0600), encrypted with the ``[[kms]] purpose = "worker-auth"`` key when the
config has one. Later starts use the stored credential and need no token.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "worker-credential.json"


class IdentityError(Exception):
    """The stored credential cannot be read or written; one line, no secret."""


@dataclass(frozen=True)
class WorkerIdentity:
    worker_id: str
    name: str
    credential: str = field(repr=False)


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def load(directory: str | os.PathLike[str], key: bytes | None = None) -> WorkerIdentity | None:
    """The stored identity, or None when there is none yet."""
    path = Path(directory) / FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
        if "sealed" in doc:
            if key is None:
                raise IdentityError(
                    f'{path} is encrypted: the config needs its [[kms]] purpose = "worker-auth" key'
                )
            blob = base64.b64decode(doc["sealed"])
            doc = json.loads(_aead(key).decrypt(blob[:12], blob[12:], b"worker-credential"))
        return WorkerIdentity(str(doc["worker_id"]), str(doc["name"]), str(doc["credential"]))
    except IdentityError:
        raise
    except Exception:  # noqa: BLE001 - any damage: one clear line
        raise IdentityError(f"{path} is not a worker credential this key can read") from None


def save(
    directory: str | os.PathLike[str], identity: WorkerIdentity, key: bytes | None = None
) -> Path:
    """Store the identity (replacing any), readable by this user only."""
    folder = Path(directory)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        doc: dict[str, Any] = {
            "worker_id": identity.worker_id,
            "name": identity.name,
            "credential": identity.credential,
        }
        data = json.dumps(doc).encode()
        if key is not None:
            nonce = os.urandom(12)
            sealed = nonce + _aead(key).encrypt(nonce, data, b"worker-credential")
            data = json.dumps({"sealed": base64.b64encode(sealed).decode()}).encode()
        path = folder / FILE_NAME
        temporary = folder / (FILE_NAME + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise IdentityError(f"cannot store the worker credential in {folder}: {exc}") from None
    return path


@dataclass
class OwnCredential:
    """How a worker with its own credential registers: with the stored credential, else
    (first start) by trading the activation token for one and storing it.

    ``storage``: the auth storage directory; ``activation_token``: the one-time token
    (only needed until a credential is stored); ``key``: the worker-auth key that
    encrypts the stored credential (None: stored as is, the file being 0600)."""

    storage: str
    activation_token: str | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)

    async def register(self, cluster: Any, name: str, address: str, tags: Any) -> str:
        """Log the cluster client in as this worker and report where it listens; returns
        its id. Raises ``IdentityError`` for what retrying cannot fix."""
        identity = load(self.storage, self.key)
        if identity is None:
            if not self.activation_token:
                raise IdentityError(
                    f"no worker credential in {self.storage} and no activation token: create "
                    "the worker with `bconnect workers create controller-led` and give its "
                    "token (controller_generated_activation_token / -activation-token)"
                )
            try:
                worker_id, worker_name, credential = await cluster.activate(
                    self.activation_token, address, tags
                )
            except Exception as exc:
                if getattr(exc, "status", 0) == 401:
                    raise IdentityError(
                        "the controller refused the activation token (unknown, or used already)"
                    ) from None
                raise
            identity = WorkerIdentity(worker_id, worker_name, credential)
            save(self.storage, identity, self.key)
        cluster.use_credential(identity.worker_id, identity.credential)
        try:
            return await cluster.register(identity.name or name, address, tags)
        except Exception as exc:
            if getattr(exc, "status", 0) == 401:
                raise IdentityError(
                    f"the controller refused this worker's credential ({identity.worker_id}: "
                    "deleted at the controller?); remove "
                    f"{Path(self.storage) / FILE_NAME} and activate it again"
                ) from None
            raise
