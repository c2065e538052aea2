"""Numbers and ids the tests share."""

from __future__ import annotations

#: seconds: the one hang guard of the suite. Every wait for a process, a socket or a
#: condition is bounded by it so that a hang fails the test instead of the run; it is
#: never a timing assertion (nothing should take near this long).
GUARD = 60

#: what `bconnect dev` (and a controller started with ``dev_seed``) creates
ORG = "o_1234567890"
PROJECT = "p_1234567890"
AUTH_METHOD = "ampw_1234567890"

#: the ports `bconnect dev` and `bconnect server` listen on by default (API, cluster,
#: worker proxy, ops): no test binds them (conftest.py holds them for the session)
DEV_PORTS = (9200, 9201, 9202, 9203)
