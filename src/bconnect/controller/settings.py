"""Controller settings (filled from `bconnect dev` flags or, later, a config file)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    database_url: str
    # proxy addresses ("host:port") handed to clients in worker_info until workers register
    worker_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1:9202"])
    api_address: str = "127.0.0.1:9200"
    job_interval: float = 5.0
    max_body_bytes: int = 1024 * 1024
    # workers authenticate to the cluster API with this key (None: no worker may connect)
    worker_auth_key: str | None = None
    # the local port of the cluster listener: /v1/cluster is served there and only there
    cluster_port: int | None = None
