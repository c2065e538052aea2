"""``host:port`` text (pure): the one place that joins and splits it.

IPv6 hosts go in brackets (``[::1]:9200``), as Go's ``net.JoinHostPort`` writes them.
"""

from __future__ import annotations

__all__ = ["bracket_host", "join_host_port", "split_host_port"]


def bracket_host(host: str) -> str:
    """``host`` as it goes into a URL or ``HOST:PORT``: an IPv6 address in brackets
    (left alone when it already has them)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def join_host_port(host: str, port: int | str) -> str:
    """``host:port``, with brackets around an IPv6 host (Go's ``net.JoinHostPort``)."""
    return f"{bracket_host(host)}:{port}"


def split_host_port(
    address: str, *, need_port: bool = True, bare_ipv6: bool = False
) -> tuple[str, int | None]:
    """``host:port`` (IPv6 as ``[::1]:9200``) → ``(host, port)``; ValueError when malformed.

    ``need_port=False`` also takes a lone ``host`` or ``[v6]`` (port None). An address
    with several colons and no brackets is refused as ambiguous, unless ``bare_ipv6``:
    then it is an IPv6 host without a port (``::1``). The host may not be empty or hold
    spaces, ``/`` or ``@``; the port is 0 to 65535.
    """
    text = address.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(address)
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text and not bare_ipv6:
        raise ValueError(address)  # a bare IPv6 address needs brackets
    else:
        host, port_text = text, None
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(address)
    if port_text is None:
        if need_port:
            raise ValueError(address)
        return host, None
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(address)
    return host, int(port_text)
