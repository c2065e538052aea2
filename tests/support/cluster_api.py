"""The controller's worker-facing cluster API, called by hand as a worker would."""

from __future__ import annotations

from typing import Any

import requests


class WorkerClient:
    """What a worker sends, by hand, to ``ctl``'s cluster listener."""

    def __init__(self, ctl: Any, key: str | None = None) -> None:
        self.base = ctl.cluster_addr
        self.key = key if key is not None else ctl.worker_key
        self.worker_id = ""

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        if self.worker_id:
            headers["X-Bconnect-Worker-Id"] = self.worker_id
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def register(
        self,
        name: str = "w1",
        address: str = "127.0.0.1:9202",
        tags: dict[str, list[str]] | None = None,
    ) -> str:
        """Registers under ``name`` at ``address`` (a name in the records: nothing listens
        there); the worker id."""
        body = {"name": name, "address": address, "tags": tags or {}}
        resp = self.call("POST", "/v1/cluster/workers:register", json=body)
        resp.raise_for_status()
        self.worker_id = resp.json()["worker_id"]
        return self.worker_id


def new_session(ctl: Any, target: str = "ttcp_1234567890") -> str:
    """A session authorized on the dev target (or ``target``); its id."""
    resp = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    return resp.json()["session_id"]
