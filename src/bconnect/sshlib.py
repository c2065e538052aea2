"""asyncssh as the controller (ssh targets' host keys) and the worker (the ssh relay)
import it: without the ``CryptographyDeprecationWarning`` lines about DSA that asyncssh
triggers on import (bconnect never makes or accepts DSA keys), which would otherwise
land in ``bconnect dev``'s and the worker's output."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*DSA.*")
    import asyncssh

__all__ = ["asyncssh"]
