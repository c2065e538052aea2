"""``host:port`` text (pure)."""

from __future__ import annotations


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 host (Go's ``net.JoinHostPort``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
