"""Controller settings, filled from `bconnect dev` flags or a `bconnect server` config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Settings:
    database_url: str = field(repr=False)  # may hold a password
    # proxy addresses ("host:port") handed to clients in worker_info until workers register
    worker_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1:9202"])
    api_address: str = "127.0.0.1:9200"
    # the controller's name, for logs and /health (several controllers share one database)
    name: str = "controller"
    # seconds between runs of each periodic job (each runs once per interval, cluster-wide)
    job_interval: float = 5.0
    max_body_bytes: int = 1024 * 1024
    # workers authenticate to the cluster API with this key (None: no worker may connect)
    worker_auth_key: str | None = field(default=None, repr=False)
    # a worker silent for this long is unhealthy: not offered to clients, and its open
    # connections are closed with "system error" (Boundary's status grace period)
    worker_grace: float = 15.0
    # terminated sessions (and their connections) are deleted this long after they ended
    session_retention: float = 3600.0
    # ids of deleted resources are kept this long for list-token refreshes
    deleted_retention: float = 30 * 86400.0
    # password hashes (argon2id, 64 MiB each) run on this many threads of their own, with
    # at most this many more waiting; a login beyond that is a 503 with Retry-After
    password_hash_workers: int = 2
    password_hash_backlog: int = 8
    # sessions a user may hold authorized and never connected (0: no limit; `bconnect
    # server` defaults to 100, `bconnect dev` has none)
    max_pending_sessions_per_user: int = 0
    # threads of the cluster API's own (workers' reports never wait behind the public API)
    cluster_threads: int = 8
    # login attempts per client address: on average per second, and at once
    login_rate: float = 2.0
    login_burst: int = 20
    # the operator's root key (kms.RootKey) that wraps the data keys encrypting secrets at
    # rest, and earlier root keys still wrapping some (while rotating); None: a key made
    # for this process only (tests, a throwaway `bconnect dev`)
    kms_root: Any = field(default=None, repr=False)
    kms_previous: tuple[Any, ...] = field(default=(), repr=False)
    # set by Controller.open: the kms.Keyring of the database
    keyring: Any = field(default=None, repr=False, compare=False)
