"""One router per collection; the app includes them all."""

from bconnect.controller.routes import (
    authmethods,
    cluster,
    credentials,
    hosts,
    iam,
    scopes,
    sessions,
    targets,
    workers,
)

ROUTERS = [
    scopes.router,
    authmethods.router,
    iam.router,
    hosts.router,
    targets.router,
    credentials.router,
    sessions.router,
    workers.router,
    cluster.router,
]
