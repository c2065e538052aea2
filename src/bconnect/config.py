"""The `bconnect server` config file (TOML): parsed and checked into frozen dataclasses.

Nothing here starts anything: :func:`load_config` reads the file, checks every key (an
unknown key is an error, so a typo never passes silently) and resolves the secret
references it names. Errors are :class:`ConfigError`, one line naming the file and the key::

    config.toml: [worker] public_address: must be host:port

Secrets (the worker key) are kept out of ``repr`` and out of every message.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bconnect import durations
from bconnect.controller.forwarded import ForwardedFor, parse_networks
from bconnect.core.secrets import SecretRefError, resolve_secret_ref
from bconnect.hostport import join_host_port, split_host_port

__all__ = [
    "DEFAULT_PORTS",
    "LOG_LEVELS",
    "ConfigError",
    "ControllerConfig",
    "ServerConfig",
    "WorkerConfig",
    "cluster_url",
    "load_config",
    "parse_config",
    "parse_duration",
    "split_host_port",
]

# Boundary's default ports
DEFAULT_PORTS: dict[str, int] = {"api": 9200, "cluster": 9201, "proxy": 9202, "ops": 9203}
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The config file cannot be read or is wrong; the message is one line."""


#: the shared worker key's minimum length (it is full trust for whoever holds it)
MIN_WORKER_KEY = 16


@dataclass(frozen=True)
class ControllerConfig:
    name: str
    database_url: str = field(repr=False)  # may hold a password
    # the shared (legacy) worker key; None: workers register with their own credentials
    worker_auth_key: str | None = field(repr=False)
    job_interval: float = 5.0
    worker_grace: float = 15.0
    session_retention: float = 3600.0
    deleted_retention: float = 30 * 86400.0
    max_body_bytes: int = 1024 * 1024
    max_pending_sessions_per_user: int = 100


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    # the shared (legacy) worker key; None: the worker's own credential (auth_storage_path)
    auth_key: str | None = field(repr=False)
    # cluster listener URLs; empty: the [controller] of the same file (its bound address)
    controllers: tuple[str, ...] = ()
    # host:port clients dial; None: the proxy listener's bound address
    public_address: str | None = None
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    status_interval: float = 1.0
    controller_grace: float = 15.0
    # seconds without a byte either way before a connection is closed; 0: never
    idle_timeout: float = 0.0
    # seconds a client has from its turn to a finished TLS handshake
    handshake_timeout: float = 10.0
    # TLS handshakes in progress at once, overall and from one source address (IPv6: /64)
    max_handshakes: int = 256
    max_handshakes_per_address: int = 32
    # PEM CA bundle that signs https:// controllers' certificates; None: the system's
    tls_ca_file: str | None = None
    # controller-led registration: where the worker keeps its own credential, and the
    # one-time token from `bconnect workers create controller-led` that first gets it
    auth_storage_path: str | None = None
    activation_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ListenerTls:
    """A listener's server certificate (PEM, may hold the chain) and private key."""

    cert_file: str
    key_file: str


@dataclass(frozen=True)
class HttpListener:
    """An api or cluster listener's limits and X-Forwarded-For trust (Boundary's keys)."""

    http_read_header_timeout: float = 10.0
    max_connections: int = 1024
    forwarded: ForwardedFor = field(default_factory=ForwardedFor)


@dataclass(frozen=True)
class KmsKey:
    """A ``[[kms]]`` block: Boundary's ``kms "aead"`` (type aead, aead_type aes-gcm)."""

    purpose: str  # root, previous-root or worker-auth
    key: Any = field(repr=False)  # controller.kms.RootKey


@dataclass(frozen=True)
class ServerConfig:
    path: str
    controller: ControllerConfig | None
    worker: WorkerConfig | None
    # purpose ("api", "cluster", "proxy", "ops") -> listen address ("host:port")
    listeners: Mapping[str, str]
    log_level: str | None = None
    # purpose ("api", "cluster") -> its TLS certificate; absent: plain HTTP
    listener_tls: Mapping[str, ListenerTls] = field(default_factory=dict)
    # purpose ("api", "cluster") -> its limits and X-Forwarded-For trust
    listener_http: Mapping[str, HttpListener] = field(default_factory=dict)
    kms: tuple[KmsKey, ...] = ()

    def kms_key(self, purpose: str) -> Any:
        """The RootKey of the one [[kms]] block with this purpose, or None."""
        return next((k.key for k in self.kms if k.purpose == purpose), None)

    def kms_keys(self, purpose: str) -> tuple[Any, ...]:
        return tuple(k.key for k in self.kms if k.purpose == purpose)


def parse_duration(value: str | float) -> float:
    """Seconds from a config value: a number of seconds or a string like ``500ms``,
    ``15s``, ``1h30m``, ``30d`` (:func:`bconnect.durations.parse_duration`).

    Raises :class:`ValueError` for anything else, or a negative duration.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a number of seconds or a string like 15s")
    if isinstance(value, str):
        try:
            seconds = durations.parse_duration(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a duration (like 500ms, 15s, 10m, 1h, 30d)"
            ) from None
    else:
        seconds = float(value)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError("must be a finite, non-negative duration")
    return seconds


def cluster_url(address: str) -> str:
    """A controller's cluster listener as a URL: a bare ``host[:port]`` means
    ``http://host:port`` (port 9201 when none is given)."""
    url = address.strip().rstrip("/")
    if "://" not in url:
        host, port = split_host_port(url, need_port=False)
        return f"http://{join_host_port(host, port or DEFAULT_PORTS['cluster'])}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise ValueError(address)
    parts.port  # noqa: B018 - raises ValueError for a bad port
    return url


class _Section:
    """One table of the file: typed getters that name the key in their errors."""

    def __init__(self, path: str, label: str, data: Any, known: tuple[str, ...]) -> None:
        self.path, self.label = path, label
        if not isinstance(data, dict):
            raise self.error("", "must be a table")
        self.data = data
        for key in data:
            if key not in known:
                raise self.error(key, f"unknown key (expected one of: {', '.join(known)})")

    def error(self, key: str, message: str) -> ConfigError:
        where = " ".join(p for p in (self.label, key) if p)
        return ConfigError(f"{self.path}: {where}: {message}")

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.error(key, "must be a non-empty string")
        return value.strip() if value is not None else None

    def required(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise self.error(key, "is required")
        return value

    def duration(self, key: str, default: float, *, zero: bool = False) -> float:
        """A duration; ``zero``: 0 is allowed (it means "never")."""
        if key not in self.data:
            return default
        try:
            seconds = parse_duration(self.data[key])
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if seconds <= 0 and not (zero and seconds == 0):
            raise self.error(key, "must be more than zero")
        return seconds

    def readable_file(self, key: str) -> str | None:
        path = self.string(key)
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise self.error(key, f"cannot read {path}: {exc.strerror or exc}") from None
        return path

    def integer(self, key: str, default: int, *, zero: bool = False) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
            raise self.error(
                key, "must be a non-negative integer" if zero else "must be a positive integer"
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def secret(self, key: str, *, ref_only: bool) -> str | None:
        """A secret: with ``ref_only`` only ``env://`` / ``file://``; else a literal too."""
        value = self.string(key)
        if value is None:
            return None
        if ref_only and not value.startswith(("env://", "file://")):
            raise self.error(key, "must be an env:// or file:// reference")
        try:
            secret = resolve_secret_ref(value, must=False)
        except SecretRefError as exc:
            raise self.error(key, str(exc)) from None
        if not secret:
            raise self.error(key, "the referenced value is empty")
        return secret


_TOP_KEYS = ("log_level", "controller", "worker", "listener", "kms")
_KMS_KEYS = ("type", "purpose", "aead_type", "key", "key_id")
KMS_PURPOSES = ("root", "previous-root", "worker-auth")
_CONTROLLER_KEYS = (
    "name",
    "database_url",
    "worker_auth_key",
    "job_interval",
    "worker_grace",
    "session_retention",
    "deleted_retention",
    "max_body_bytes",
    "max_pending_sessions_per_user",
)
_WORKER_KEYS = (
    "name",
    "public_address",
    "controllers",
    "auth_key",
    "tags",
    "status_interval",
    "controller_grace",
    "idle_timeout",
    "handshake_timeout",
    "max_handshakes",
    "max_handshakes_per_address",
    "tls_ca_file",
    "auth_storage_path",
    "controller_generated_activation_token",
)


def load_config(path: str | Path) -> ServerConfig:
    """Read, check and resolve the config file at *path*."""
    label = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    return parse_config(data, label)


def parse_config(data: dict[str, Any], path: str = "config") -> ServerConfig:
    """Check an already parsed TOML document (*path* only labels the errors)."""
    top = _Section(path, "", data, _TOP_KEYS)
    log_level = top.string("log_level")
    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        raise top.error("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    controller = _controller(path, data["controller"]) if "controller" in data else None
    worker = _worker(path, data["worker"], controller) if "worker" in data else None
    if controller is None and worker is None:
        raise ConfigError(f"{path}: needs a [controller] or a [worker] section (or both)")
    listeners, listener_tls, listener_http = _listeners(path, data.get("listener", []))
    kms = _kms(path, data.get("kms", []))
    if controller is not None and not any(k.purpose == "root" for k in kms):
        raise ConfigError(
            f'{path}: the controller needs a [[kms]] block with purpose = "root" (the key that '
            'encrypts secrets at rest), e.g.: [[kms]] type = "aead" purpose = "root" '
            'aead_type = "aes-gcm" key = "env://BCONNECT_ROOT_KEY" key_id = "global_root" '
            "(a key from: openssl rand -base64 32)"
        )
    needed = {"api": controller, "cluster": controller, "proxy": worker}
    for purpose, runs in needed.items():
        what = "controller" if purpose != "proxy" else "worker"
        if runs is not None and purpose not in listeners:
            raise ConfigError(f'{path}: the {what} needs a [[listener]] with purpose = "{purpose}"')
        if runs is None and purpose in listeners:
            raise ConfigError(
                f'{path}: [[listener]] purpose = "{purpose}": no [{what}] in this file uses it'
            )
    return ServerConfig(
        path=path,
        controller=controller,
        worker=worker,
        listeners=listeners,
        log_level=log_level.lower() if log_level else None,
        listener_tls=listener_tls,
        listener_http=listener_http,
        kms=kms,
    )


def _controller(path: str, data: Any) -> ControllerConfig:
    s = _Section(path, "[controller]", data, _CONTROLLER_KEYS)
    database_url = s.secret("database_url", ref_only=False)
    if database_url is None:
        raise s.error("database_url", "is required")
    worker_auth_key = s.secret("worker_auth_key", ref_only=True)
    if worker_auth_key is not None and len(worker_auth_key) < MIN_WORKER_KEY:
        raise s.error(
            "worker_auth_key", f"must be at least {MIN_WORKER_KEY} characters (it is full trust)"
        )
    return ControllerConfig(
        name=s.string("name") or socket.gethostname(),
        database_url=database_url,
        worker_auth_key=worker_auth_key,
        job_interval=s.duration("job_interval", ControllerConfig.job_interval),
        worker_grace=s.duration("worker_grace", ControllerConfig.worker_grace),
        session_retention=s.duration("session_retention", ControllerConfig.session_retention),
        deleted_retention=s.duration("deleted_retention", ControllerConfig.deleted_retention),
        max_body_bytes=s.integer("max_body_bytes", ControllerConfig.max_body_bytes),
        max_pending_sessions_per_user=s.integer(
            "max_pending_sessions_per_user",
            ControllerConfig.max_pending_sessions_per_user,
            zero=True,
        ),
    )


def _worker(path: str, data: Any, controller: ControllerConfig | None) -> WorkerConfig:
    s = _Section(path, "[worker]", data, _WORKER_KEYS)
    public = s.string("public_address")
    if public is not None:
        try:
            _, port = split_host_port(public)
        except ValueError:
            port = 0
        if not port:
            raise s.error("public_address", "must be host:port")
    controllers = _string_list(s, "controllers", s.data.get("controllers", []))
    urls: list[str] = []
    for entry in controllers:
        try:
            urls.append(cluster_url(entry))
        except ValueError:
            raise s.error(
                "controllers", f"{entry!r} is not host:port or an http(s):// URL"
            ) from None
    if not urls and controller is None:
        raise s.error("controllers", "is required when this file has no [controller]")
    auth_key = s.secret("auth_key", ref_only=True)
    storage = s.string("auth_storage_path")
    token = s.secret("controller_generated_activation_token", ref_only=False)
    if token is not None and storage is None:
        raise s.error(
            "controller_generated_activation_token",
            "needs auth_storage_path (where the worker keeps the credential it gets)",
        )
    if auth_key is None and storage is None:
        if controller is None or controller.worker_auth_key is None:
            raise s.error(
                "auth_storage_path",
                "is required (with controller_generated_activation_token for the first start), "
                "or the legacy shared auth_key",
            )
        auth_key = controller.worker_auth_key
    if auth_key is not None and storage is not None:
        raise s.error("auth_key", "use auth_storage_path (own credential) or auth_key, not both")
    tags = s.data.get("tags", {})
    if not isinstance(tags, dict):
        raise s.error("tags", "must be a table of key = value or key = [values]")
    tag_map = {
        key: tuple(dict.fromkeys(_string_list(s, f"tags.{key}", value, single=True)))
        for key, value in tags.items()
    }
    status_interval = s.duration("status_interval", WorkerConfig.status_interval)
    controller_grace = s.duration("controller_grace", WorkerConfig.controller_grace)
    # a worker must report several times within each grace period, or healthy workers
    # would be given up on
    if status_interval * 2 > controller_grace:
        raise s.error("status_interval", "must be at most half of controller_grace")
    if controller is not None and status_interval * 2 > controller.worker_grace:
        raise s.error("status_interval", "must be at most half of [controller] worker_grace")
    max_handshakes = s.integer("max_handshakes", WorkerConfig.max_handshakes)
    per_address = s.integer("max_handshakes_per_address", WorkerConfig.max_handshakes_per_address)
    if per_address > max_handshakes:
        raise s.error("max_handshakes_per_address", "must be at most max_handshakes")
    return WorkerConfig(
        name=s.string("name") or socket.gethostname(),
        auth_key=auth_key,
        controllers=tuple(dict.fromkeys(urls)),
        public_address=public,
        tags=tag_map,
        status_interval=status_interval,
        controller_grace=controller_grace,
        idle_timeout=s.duration("idle_timeout", WorkerConfig.idle_timeout, zero=True),
        handshake_timeout=s.duration("handshake_timeout", WorkerConfig.handshake_timeout),
        max_handshakes=max_handshakes,
        max_handshakes_per_address=per_address,
        tls_ca_file=_ca_file(s, "tls_ca_file"),
        auth_storage_path=storage,
        activation_token=token,
    )


def _kms(path: str, blocks: Any) -> tuple[KmsKey, ...]:
    from bconnect.controller.kms import RootKey

    if not isinstance(blocks, list):
        raise ConfigError(f"{path}: kms: must be [[kms]] blocks")
    keys: list[KmsKey] = []
    for number, block in enumerate(blocks, 1):
        s = _Section(path, f"[[kms]] #{number}", block, _KMS_KEYS)
        if s.string("type", "aead") != "aead":
            raise s.error("type", 'must be "aead" (the only KMS bconnect supports)')
        if s.string("aead_type", "aes-gcm") != "aes-gcm":
            raise s.error("aead_type", 'must be "aes-gcm"')
        purpose = s.required("purpose")
        if purpose not in KMS_PURPOSES:
            raise s.error("purpose", f"must be one of {', '.join(KMS_PURPOSES)}")
        if purpose != "previous-root" and any(k.purpose == purpose for k in keys):
            raise s.error("purpose", f'only one [[kms]] block may have purpose = "{purpose}"')
        key_id = s.required("key_id")
        text = s.secret("key", ref_only=False)
        if text is None:
            raise s.error("key", "is required (base64; env:// or file:// keeps it out of the file)")
        try:
            key = RootKey.from_text(key_id, text)
        except ValueError as exc:
            raise s.error("key", str(exc)) from None
        if any(k.key.key_id == key_id for k in keys):
            raise s.error("key_id", f"{key_id!r} is already used by another [[kms]] block")
        keys.append(KmsKey(purpose, key))
    return tuple(keys)


def _string_list(s: _Section, key: str, value: Any, *, single: bool = False) -> list[str]:
    if single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        what = "a string or a list of strings" if single else "a list of strings"
        raise s.error(key, f"must be {what}")
    return [v.strip() for v in value]


#: listeners that can serve TLS with a certificate of their own (the proxy listener's
#: TLS is each session's; the ops listener stays plain HTTP for load balancers' checks)
TLS_PURPOSES = ("api", "cluster")


#: the keys of an api or cluster listener besides purpose, address and TLS
_HTTP_KEYS = (
    "http_read_header_timeout",
    "max_connections",
    "x_forwarded_for_authorized_addrs",
    "x_forwarded_for_hop_skips",
    "x_forwarded_for_reject_not_authorized",
    "x_forwarded_for_reject_not_present",
)


def _listeners(
    path: str, blocks: Any
) -> tuple[dict[str, str], dict[str, ListenerTls], dict[str, HttpListener]]:
    if not isinstance(blocks, list):
        raise ConfigError(f"{path}: listener: must be [[listener]] blocks")
    listeners: dict[str, str] = {}
    tls: dict[str, ListenerTls] = {}
    http: dict[str, HttpListener] = {}
    for number, block in enumerate(blocks, 1):
        s = _Section(
            path,
            f"[[listener]] #{number}",
            block,
            ("purpose", "address", "tls_cert_file", "tls_key_file", *_HTTP_KEYS),
        )
        purpose = s.required("purpose")
        if purpose not in DEFAULT_PORTS:
            raise s.error("purpose", f"must be one of {', '.join(DEFAULT_PORTS)}")
        if purpose in listeners:
            raise s.error("purpose", f'"{purpose}" is already used by another [[listener]]')
        address = s.string("address") or "127.0.0.1"
        try:
            host, port = split_host_port(address, need_port=False)
        except ValueError:
            raise s.error("address", "must be host:port") from None
        if port is None:
            port = DEFAULT_PORTS[purpose]
        listeners[purpose] = join_host_port(host, port)
        files = _listener_tls(s, purpose)
        if files is not None:
            tls[purpose] = files
        http[purpose] = _http_listener(s, purpose)
    return listeners, tls, http


def _http_listener(s: _Section, purpose: str) -> HttpListener:
    used = [key for key in _HTTP_KEYS if key in s.data]
    if used and purpose not in TLS_PURPOSES:
        raise s.error(used[0], f"is for the {' and '.join(TLS_PURPOSES)} listeners")
    raw = s.data.get("x_forwarded_for_authorized_addrs", [])
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    addrs = _string_list(s, "x_forwarded_for_authorized_addrs", raw) if raw else []
    try:
        networks = parse_networks(addrs)
    except ValueError as exc:
        raise s.error("x_forwarded_for_authorized_addrs", str(exc)) from None
    return HttpListener(
        http_read_header_timeout=s.duration(
            "http_read_header_timeout", HttpListener.http_read_header_timeout
        ),
        max_connections=s.integer("max_connections", HttpListener.max_connections),
        forwarded=ForwardedFor(
            authorized_addrs=networks,
            hop_skips=s.integer("x_forwarded_for_hop_skips", 0, zero=True),
            reject_not_authorized=s.boolean("x_forwarded_for_reject_not_authorized", False),
            reject_not_present=s.boolean("x_forwarded_for_reject_not_present", False),
        ),
    )


def _listener_tls(s: _Section, purpose: str) -> ListenerTls | None:
    if "tls_cert_file" not in s.data and "tls_key_file" not in s.data:
        return None
    if purpose not in TLS_PURPOSES:
        given = "tls_cert_file" if "tls_cert_file" in s.data else "tls_key_file"
        raise s.error(given, f"TLS is for the {' and '.join(TLS_PURPOSES)} listeners")
    cert, key = s.readable_file("tls_cert_file"), s.readable_file("tls_key_file")
    if cert is None or key is None:
        missing = "tls_cert_file" if cert is None else "tls_key_file"
        raise s.error(missing, "is required with the other tls_ key")
    try:
        # an empty passphrase: OpenSSL must not prompt for one on the terminal
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=b"")
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        with open(key, "rb") as f:
            encrypted = b"ENCRYPTED" in f.read(4096)
        reason = "the key is encrypted (not supported: store it unencrypted, 0600)"
        raise s.error(
            "tls_key_file" if encrypted else "tls_cert_file",
            reason if encrypted else f"cannot use this certificate and key: {exc}",
        ) from None
    return ListenerTls(cert, key)


_IN_CLEAR = {
    "api": "passwords and auth tokens",
    "cluster": "session private keys and the worker key",
}


def plaintext_warnings(cfg: ServerConfig) -> list[str]:
    """What to warn about at start-up: an api or cluster listener reachable from other
    hosts without a certificate, and a worker CA bundle no controller uses."""
    warnings = []
    for purpose, what in _IN_CLEAR.items():
        address = cfg.listeners.get(purpose)
        if address is None or purpose in cfg.listener_tls:
            continue
        host = split_host_port(address)[0]
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            warnings.append(
                f'[[listener]] purpose = "{purpose}" on {address} has no tls_cert_file: {what} '
                "cross the network in clear (unless a TLS-terminating proxy is in front)"
            )
    w = cfg.worker
    if w is not None and w.tls_ca_file is not None:
        https = [u for u in w.controllers if u.startswith("https://")]
        if not https and not (not w.controllers and "cluster" in cfg.listener_tls):
            warnings.append("[worker] tls_ca_file: unused, no controller is an https:// URL")
    return warnings


def check_ca_file(path: str) -> None:
    """Raise :class:`ValueError` unless *path* is a readable PEM bundle of CA certificates."""
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:  # SSLError first: it is an OSError too
        raise ValueError(f"{path} is not a PEM CA bundle: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _ca_file(s: _Section, key: str) -> str | None:
    path = s.string(key)
    if path is not None:
        try:
            check_ca_file(path)
        except ValueError as exc:
            raise s.error(key, str(exc)) from None
    return path
