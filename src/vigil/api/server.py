"""``create_app``: the FastAPI application over built ``Components``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vigil import __version__
from vigil.api import alerting, analytics, errors, ingest, ops, query, tasks
from vigil.app import Components


def create_app(c: Components, *, close_on_shutdown: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:  # graceful shutdown: flush queued writes, checkpoint
            c.close()

    app = FastAPI(
        title="Vigil", version=__version__, lifespan=lifespan,
        description="Real-time analytics and monitoring: ingest, rollups, query.",
    )
    app.state.components = c
    errors.install(app)
    for module in (ingest, query, analytics, tasks, alerting, ops):
        app.include_router(module.router)
    return app
