"""Controller settings, filled from `bconnect dev` flags or a `bconnect server` config file."""

from __future__ import annotations

from dataclasses import dataclass, field


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
