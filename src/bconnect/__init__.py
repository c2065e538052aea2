"""bconnect: reach private hosts through an identity-aware proxy, wire-compatible with Boundary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names imported on first use, so ``import bconnect`` stays cheap (docs/library.md).
_LAZY = {
    "Client": "bconnect.core.api",
    "ApiError": "bconnect.core.api",
    "ControllerUnreachable": "bconnect.core.api",
    "SessionError": "bconnect.core.session",
    "SessionExpired": "bconnect.core.session",
    "SessionEvents": "bconnect.core.session",
    "LaunchError": "bconnect.core.launch",
    "Tunnel": "bconnect.core.tunnel",
    "AsyncTunnel": "bconnect.core.tunnel",
    "Completed": "bconnect.core.tunnel",
    "RunResult": "bconnect.core.runner",
}

__all__ = [
    "ApiError",
    "AsyncTunnel",
    "Client",
    "Completed",
    "ControllerUnreachable",
    "LaunchError",
    "RunResult",
    "SessionError",
    "SessionEvents",
    "SessionExpired",
    "Tunnel",
    "__version__",
]

if TYPE_CHECKING:
    from bconnect.core.api import ApiError, Client, ControllerUnreachable
    from bconnect.core.launch import LaunchError
    from bconnect.core.runner import RunResult
    from bconnect.core.session import SessionError, SessionEvents, SessionExpired
    from bconnect.core.tunnel import AsyncTunnel, Completed, Tunnel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bconnect' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
