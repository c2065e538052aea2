"""The bconnect worker: Boundary's TLS + WebSocket proxy, reporting to a controller.

* ``server``: ``Worker`` (register, accept, status loop, clean shutdown)
* ``tls``: ClientHello peeking and per-session TLS contexts
* ``sessions``: the session cache
* ``proxy``: one proxied connection, after mutual TLS
* ``connections``: live connections, byte counters, close reports
* ``cluster``: the client for the controller's cluster API (docs/cluster-api.md)
"""
