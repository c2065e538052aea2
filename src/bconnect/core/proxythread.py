"""A :class:`~bconnect.core.proxy.ClientProxy` for synchronous code.

The proxy runs on its own event loop in a daemon thread::

    from bconnect.core.proxythread import run_in_thread

    with run_in_thread(authz) as proxy:          # listening when this returns
        psycopg.connect(host=proxy.host, port=proxy.port, ...)
    print(proxy.result.termination_reason)       # closed (and the session canceled)

Callbacks given to the proxy (``on_connections_left``, ``session_probe``) run on the
proxy's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import datetime
from typing import Any

from bconnect.core.proxy import ClientProxy, ProxyError, ProxyResult
from bconnect.core.token import AuthzData

__all__ = ["ProxyThread", "run_in_thread"]


class ProxyThread:
    """Runs a :class:`ClientProxy` in a background thread; a context manager.

    Keyword arguments are those of :class:`ClientProxy`. :meth:`start` returns once
    the listener is open (or raises :class:`ProxyError`); :meth:`close` stops the
    proxy and waits for it to end, session-cancel command included.
    """

    def __init__(self, authz: AuthzData, **proxy_options: Any) -> None:
        self.authz = authz
        self._options = proxy_options
        self._proxy: ClientProxy | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._start_error: BaseException | None = None
        self._result: ProxyResult | None = None

    # ------------------------------------------------------------------ info
    @property
    def host(self) -> str:
        return self._require().host

    @property
    def port(self) -> int:
        return self._require().port

    @property
    def address(self) -> str:
        return self._require().address

    @property
    def session_id(self) -> str:
        return self.authz.session_id

    @property
    def expiration(self) -> datetime:
        return self.authz.expiration

    @property
    def connections_left(self) -> int:
        return self._require().connections_left

    @property
    def result(self) -> ProxyResult | None:
        """How the proxy ended; None while it runs."""
        return self._result

    def _require(self) -> ClientProxy:
        if self._proxy is None or not self._ready.is_set() or self._start_error is not None:
            raise ProxyError("proxy is not running")
        return self._proxy

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> ProxyThread:
        """Start the thread and wait until the proxy listens."""
        if self._thread is not None:
            raise ProxyError("proxy was already started")
        self._thread = threading.Thread(
            target=self._main, name=f"bconnect-proxy-{self.session_id}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ProxyError("timed out starting the proxy")
        if self._start_error is not None:
            self._thread.join(timeout)
            raise self._start_error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        finally:
            self._ready.set()
            self._done.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._proxy = ClientProxy(self.authz, **self._options)
            await self._proxy.start()
        except BaseException as exc:  # handed to the thread that called start()
            self._start_error = exc
            return
        finally:
            self._ready.set()
        self._result = await self._proxy.wait()

    def wait(self, timeout: float | None = None) -> ProxyResult | None:
        """Wait for the proxy to end on its own; None if ``timeout`` passed first."""
        self._done.wait(timeout)
        return self._result

    def close(self, reason: str = "", timeout: float = 60.0) -> ProxyResult | None:
        """Stop the proxy (if running) and wait for it to end."""
        proxy, loop = self._proxy, self._loop
        if proxy is not None and loop is not None and not self._done.is_set():
            future = asyncio.run_coroutine_threadsafe(proxy.close(reason), loop)
            # The loop may finish first, or this may time out: the join below settles it.
            with contextlib.suppress(Exception):
                future.result(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        return self._result

    def __enter__(self) -> ProxyThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_in_thread(authz: AuthzData, **proxy_options: Any) -> ProxyThread:
    """Start a :class:`ClientProxy` for ``authz`` in a background thread, listening."""
    return ProxyThread(authz, **proxy_options).start()
