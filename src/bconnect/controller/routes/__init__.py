"""One router per collection; the app includes them all."""

from bconnect.controller.routes import (
    aliases,
    authmethods,
    cluster,
    credentials,
    hosts,
    iam,
    recordings,
    scopes,
    sessions,
    targets,
    workers,
)

ROUTERS = [
    aliases.router,  # before iam: its /v1/users/{id}:list-resolvable-aliases
    scopes.router,
    authmethods.router,
    iam.router,
    hosts.router,
    targets.router,
    credentials.router,
    sessions.router,
    workers.router,
    recordings.router,
    cluster.router,
]
