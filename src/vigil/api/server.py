"""``create_app``: the FastAPI application over built ``Components``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from vigil import __version__
from vigil.api import (
    alerting,
    analytics,
    audit,
    edge,
    errors,
    ingest,
    keys,
    ops,
    query,
    stream,
    tasks,
)
from vigil.api.auth import document, guard
from vigil.api.dashboard import install as install_dashboard
from vigil.api.raw_send import RawSend
from vigil.app import Components


def create_app(c: Components, *, close_on_shutdown: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await c.stream.close()  # tell live clients
        if close_on_shutdown:  # graceful shutdown: flush queued writes, checkpoint
            c.close()

    app = FastAPI(
        title="Vigil", version=__version__, lifespan=lifespan,
        description="Real-time analytics and monitoring: ingest, rollups, query.",
        dependencies=[Depends(guard)],  # every route authenticated unless declared PUBLIC
    )
    app.state.components = c
    errors.install(app)
    for module in (ingest, query, analytics, tasks, alerting, audit, keys, stream, ops):
        app.include_router(module.router)
    install_dashboard(app)
    app.add_middleware(audit.AuditMiddleware, components=c)
    edge.install(app, c.settings.cors_origins, c.settings.max_body_bytes)
    app.add_middleware(RawSend)  # outermost: sees the server's own ASGI send
    document(app)
    return app
