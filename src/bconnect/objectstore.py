"""Storage buckets' objects (session recordings): a directory (plugin ``local``) or an
S3-compatible object store (plugin ``s3``, through boto3).

The worker writes recordings (:meth:`Bucket.writer`), the controller reads them back for
``session-recordings download`` (:meth:`Bucket.read`). A ``local`` bucket is a
directory on the machine that writes it: it suits ``bconnect dev`` and a controller and
worker on one host; anything else wants ``s3``. A writer hashes what it writes, so the
SHA-256 the controller records is the one of the bytes that reached the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "PLUGINS",
    "Bucket",
    "BucketError",
    "LocalBucket",
    "S3Bucket",
    "Writer",
    "open_bucket",
]

PLUGINS = ("local", "s3")


class BucketError(Exception):
    """The bucket cannot be written or read; the message says why, in one line."""


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def finish(self) -> tuple[int, str]: ...  # (size, sha256 hex)
    def abort(self) -> None: ...


class Bucket(Protocol):
    def check_writable(self) -> None: ...
    def writer(self, key: str) -> Writer: ...
    def read(self, key: str) -> bytes: ...


def _key_path(prefix: str, key: str) -> str:
    joined = "/".join(p.strip("/") for p in (prefix, key) if p and p.strip("/"))
    if ".." in joined.split("/"):
        raise BucketError(f"invalid object key {key!r}")
    return joined


class _HashingFile:
    """An append-only file that hashes what it writes and flushes every write (a worker
    that dies leaves every whole event on disk)."""

    def __init__(self, path: Path, on_finish: Any = None) -> None:
        self.path = path
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in finish/abort
        self._hash = hashlib.sha256()
        self._size = 0
        self._on_finish = on_finish

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise BucketError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._hash.update(data)
        self._size += len(data)

    def finish(self) -> tuple[int, str]:
        self._file.close()
        if self._on_finish is not None:
            self._on_finish(self.path)
        return self._size, self._hash.hexdigest()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


@dataclass(frozen=True)
class LocalBucket:
    """A directory (``bucket_name``, absolute) and an optional ``prefix`` under it."""

    directory: str
    prefix: str = ""

    def _path(self, key: str) -> Path:
        return Path(self.directory) / _key_path(self.prefix, key)

    def check_writable(self) -> None:
        base = Path(self.directory) / _key_path(self.prefix, "")
        try:
            base.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=base, prefix=".bconnect-check-"):
                pass
        except OSError as exc:
            raise BucketError(f"cannot write to {base}: {exc.strerror or exc}") from None

    def writer(self, key: str) -> _HashingFile:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _HashingFile(path)
        except OSError as exc:
            raise BucketError(f"cannot write {path}: {exc.strerror or exc}") from None

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BucketError(f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class S3Bucket:
    """An S3 bucket: ``attributes`` ``endpoint_url``/``region``, ``secrets``
    ``access_key_id``/``secret_access_key`` (else boto3's own credential chain). A
    writer spools to a temporary file and uploads it when finished."""

    bucket: str
    prefix: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def _client(self) -> Any:
        try:
            import boto3  # noqa: PLC0415 - only s3 buckets need it
            from botocore.config import Config  # noqa: PLC0415
        except ImportError:
            raise BucketError("s3 storage buckets need boto3: pip install 'bconnect[s3]'") from None
        return boto3.client(
            "s3",
            endpoint_url=self.attributes.get("endpoint_url") or None,
            region_name=self.attributes.get("region") or None,
            aws_access_key_id=self.secrets.get("access_key_id") or None,
            aws_secret_access_key=self.secrets.get("secret_access_key") or None,
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
        )

    def _error(self, action: str, exc: Exception) -> BucketError:
        detail = getattr(exc, "response", {}).get("Error", {}).get("Message") or str(exc)
        return BucketError(f"cannot {action} s3 bucket {self.bucket}: {detail}")

    def check_writable(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        key = _key_path(self.prefix, ".bconnect-write-check")
        try:
            self._client().put_object(Bucket=self.bucket, Key=key, Body=b"ok")
        except (BotoCoreError, ClientError) as exc:
            raise self._error("write to", exc) from None

    def writer(self, key: str) -> _HashingFile:
        fd, name = tempfile.mkstemp(prefix="bconnect-recording-")
        os.close(fd)
        object_key = _key_path(self.prefix, key)

        def upload(path: Path) -> None:
            from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

            try:
                self._client().upload_file(str(path), self.bucket, object_key)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise self._error("upload to", exc) from None
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()

        return _HashingFile(Path(name), on_finish=upload)

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            answer = self._client().get_object(Bucket=self.bucket, Key=_key_path(self.prefix, key))
            return bytes(answer["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise self._error("read from", exc) from None


def open_bucket(
    plugin_name: str,
    bucket_name: str,
    prefix: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> LocalBucket | S3Bucket:
    """The bucket a storage bucket resource names."""
    if plugin_name == "local":
        return LocalBucket(bucket_name, prefix or "")
    if plugin_name == "s3":
        return S3Bucket(bucket_name, prefix or "", dict(attributes or {}), dict(secrets or {}))
    raise BucketError(f"unknown storage bucket plugin {plugin_name!r}: use local or s3")
