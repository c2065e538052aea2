"""bconnect: reach private hosts through an identity-aware proxy, wire-compatible with Boundary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["ApiError", "Client", "ControllerUnreachable", "__version__"]

if TYPE_CHECKING:
    from bconnect.core.api import ApiError, Client, ControllerUnreachable

# Public names imported on first use, so ``import bconnect`` stays cheap.
_LAZY = {
    "Client": "bconnect.core.api",
    "ApiError": "bconnect.core.api",
    "ControllerUnreachable": "bconnect.core.api",
}


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
