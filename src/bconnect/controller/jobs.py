"""Periodic controller jobs: terminate expired and finished sessions."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from bconnect.controller.context import utcnow
from bconnect.controller.sessionops import terminate_due_sessions

log = logging.getLogger(__name__)


def run_session_job(engine: Engine) -> list[str]:
    """One tick of the session job, in one transaction."""
    with engine.begin() as conn:
        done = terminate_due_sessions(conn, utcnow())
    if done:
        log.info("terminated %d session(s)", len(done))
    return done


async def job_loop(engine: Engine, interval: float) -> None:
    """Run the jobs every ``interval`` seconds until cancelled; errors are logged, not fatal."""
    while True:
        try:
            await asyncio.to_thread(run_session_job, engine)
        except Exception:  # noqa: BLE001 - a failed tick must not stop later ones
            log.exception("session job failed")
        await asyncio.sleep(interval)
