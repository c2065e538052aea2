"""Target and host addresses (pure): a host name or an IP address, never with a port
(the port comes from the target's default_port, as in Boundary)."""

from __future__ import annotations

import ipaddress
import re

from bconnect.hostport import join_host_port

_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def parse_address(text: str) -> str:
    """Normalise an address, or raise ValueError with a one-line reason."""
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if ":" in value:
        raise ValueError("Must be a host name or IP address without a port.")
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError("Must be a host name or IP address.")
    return value


def endpoint(address: str, port: int) -> str:
    """``tcp://host:port``, with IPv6 literals in brackets."""
    return f"tcp://{join_host_port(address, port)}"
